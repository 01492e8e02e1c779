//! Reading a run's results out of its log, in bounded memory whatever the log's size: only
//! the last lines, the marked outputs block and one JSON candidate are kept.
//!
//! Contract (see the README): a script may write `terraform output -json` to `$ALUSTAN_OUTPUTS`;
//! the Job's wrapper prints it between markers naming the Job. Without it, the `Outputs:`
//! block of `terraform apply` is parsed. A post-deploy script prints a JSON object with a
//! top-level `outputs` key; log lines around it are tolerated.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use crate::runs::jobs::markers;
use crate::runs::seal::{Pad, SealError};

const TAIL_LINES: usize = 20;
const LINE_CHARS: usize = 500;
/// The most the outputs block or a JSON candidate may hold.
const BLOCK_BYTES: usize = 256 * 1024;
/// The most a plan run's block may hold: its bundle, as hex lines, fills at most the plan
/// pad twice over, plus a newline per 32 bytes and the header.
pub const PLAN_BLOCK_BYTES: usize =
    alustan_shared::meta::PLAN_SEAL_BYTES * 2 + alustan_shared::meta::PLAN_SEAL_BYTES / 32 + 64;

/// Collects what matters from a log, line by line.
#[derive(Debug)]
pub struct LogCollector {
    begin: String,
    end: String,
    tail: VecDeque<String>,
    block: Option<String>,
    in_block: bool,
    block_overflow: bool,
    block_limit: usize,
    finished_block: Option<String>,
    terraform_outputs: Option<Vec<String>>,
    in_terraform_outputs: bool,
    candidate: Option<String>,
    json: Option<Value>,
    last_json_error: Option<String>,
}

/// What a log said.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Collected {
    /// The last lines (each truncated), oldest first; never includes the outputs block.
    pub tail: Vec<String>,
    /// Terraform outputs split by sensitivity.
    pub outputs: Outputs,
    /// The last JSON object with a top-level `outputs` key printed outside the block.
    pub post_deploy: Option<Value>,
    /// Why the outputs could not be read, if they could not.
    pub error: Option<String>,
    /// Why no post-deploy JSON was found (the last parse error and its excerpt).
    pub json_error: Option<String>,
    /// The outputs block as printed, still sealed: [`Collected::unseal`] reads it.
    pub sealed: Option<String>,
    /// A plan run's bundle, unsealed (see [`crate::runs::plan`]).
    pub bundle: Option<Vec<u8>>,
    /// The outputs file's size its sealed block announced (read or not).
    pub outputs_bytes: Option<u64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outputs {
    pub plain: BTreeMap<String, Value>,
    pub sensitive: BTreeMap<String, Value>,
}

impl LogCollector {
    pub fn new(job: &str) -> Self {
        let (begin, end) = markers(job);
        Self {
            begin,
            end,
            tail: VecDeque::new(),
            block: None,
            in_block: false,
            block_overflow: false,
            block_limit: BLOCK_BYTES,
            finished_block: None,
            terraform_outputs: None,
            in_terraform_outputs: false,
            candidate: None,
            json: None,
            last_json_error: None,
        }
    }

    /// A collector whose outputs block may hold `limit` bytes (a plan run's bundle).
    pub fn with_block_limit(job: &str, limit: usize) -> Self {
        Self { block_limit: limit, ..Self::new(job) }
    }

    pub fn push_line(&mut self, line: &str) {
        let line = line.trim_end_matches('\r');
        if self.in_block {
            if line == self.end {
                self.in_block = false;
                self.finished_block = self.block.take();
            } else if let Some(block) = &mut self.block {
                if block.len() + line.len() < self.block_limit {
                    block.push_str(line);
                    block.push('\n');
                } else {
                    self.block_overflow = true;
                }
            }
            return;
        }
        if line == self.begin {
            self.in_block = true;
            self.block = Some(String::new());
            return;
        }
        self.push_tail(line);
        self.terraform_line(line);
        self.json_line(line);
    }

    fn push_tail(&mut self, line: &str) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.chars().take(LINE_CHARS).collect());
    }

    /// `Outputs:` then `name = value` lines up to a blank line.
    fn terraform_line(&mut self, line: &str) {
        if line.trim() == "Outputs:" {
            self.in_terraform_outputs = true;
            self.terraform_outputs = Some(Vec::new());
        } else if self.in_terraform_outputs {
            if line.trim().is_empty() && self.terraform_outputs.as_ref().is_some_and(|o| !o.is_empty()) {
                self.in_terraform_outputs = false;
            } else if let Some(lines) = &mut self.terraform_outputs
                && lines.len() < 1000
                && !line.trim().is_empty()
            {
                lines.push(line.chars().take(4096).collect());
            }
        }
    }

    /// JSON objects starting at the beginning of a line, possibly spanning lines.
    fn json_line(&mut self, line: &str) {
        if self.candidate.is_none() && line.trim_start().starts_with('{') {
            self.candidate = Some(String::new());
        }
        let Some(candidate) = &mut self.candidate else { return };
        if candidate.len() + line.len() > BLOCK_BYTES {
            self.last_json_error = Some("a JSON object longer than 256 KiB".into());
            self.candidate = None;
            return;
        }
        candidate.push_str(line);
        candidate.push('\n');
        match serde_json::from_str::<Value>(candidate) {
            Ok(value) if value.get("outputs").is_some() => {
                self.json = Some(value);
                self.candidate = None;
            }
            Ok(_) => {
                self.last_json_error = Some(format!("JSON without an `outputs` key: {}", excerpt(candidate)));
                self.candidate = None;
            }
            Err(err) if err.is_eof() => {}
            Err(err) => {
                self.last_json_error = Some(format!("{err} in {}", excerpt(candidate)));
                self.candidate = None;
            }
        }
    }

    pub fn finish(mut self) -> Collected {
        if let Some(candidate) = self.candidate.take() {
            self.last_json_error = Some(format!("unterminated JSON: {}", excerpt(&candidate)));
        }
        let mut collected = Collected {
            tail: self.tail.into_iter().collect(),
            post_deploy: self.json,
            json_error: self.last_json_error,
            ..Collected::default()
        };
        if self.block_overflow {
            collected.error =
                Some(format!("the sealed block is larger than the {} KiB it may take", self.block_limit / 1024));
        } else if let Some(block) = self.finished_block {
            if crate::runs::seal::is_sealed(&block) {
                collected.sealed = Some(block);
            } else {
                // Only the wrapper's sealed block is the run's outputs: a block in clear can be
                // printed by anything that writes into the log.
                collected.error = Some(
                    "the log has an outputs block that is not sealed with this run's pad; it is not trusted (write outputs to $ALUSTAN_OUTPUTS)".into(),
                );
            }
        } else if let Some(lines) = self.terraform_outputs {
            collected.outputs = parse_apply_block(&lines);
        }
        collected
    }
}

impl Collected {
    /// Reads the sealed outputs block, if any, with the run's pad (or why it is unavailable).
    pub fn unseal(&mut self, pad: Result<Pad, SealError>) {
        match self.unseal_bytes(pad).map(String::from_utf8) {
            Some(Ok(text)) => self.set_outputs(&text),
            Some(Err(_)) => self.error = Some("the outputs file is not UTF-8 text".into()),
            None => {}
        }
    }

    /// Reads a plan run's sealed bundle into [`Collected::bundle`] (or why it is unavailable).
    pub fn unseal_bundle(&mut self, pad: Result<Pad, SealError>) {
        self.bundle = self.unseal_bytes(pad);
    }

    fn unseal_bytes(&mut self, pad: Result<Pad, SealError>) -> Option<Vec<u8>> {
        let block = self.sealed.take()?;
        self.outputs_bytes = crate::runs::seal::announced_size(&block);
        match pad.and_then(|pad| crate::runs::seal::unseal(&block, &pad)) {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                self.error = Some(err.to_string());
                None
            }
        }
    }

    fn set_outputs(&mut self, text: &str) {
        match parse_terraform_json(text) {
            Ok(outputs) => self.outputs = outputs,
            Err(err) => self.error = Some(err),
        }
    }
}

/// The longest log line kept: one byte over the block limit, so a longer (cut) line still
/// counts as an oversized outputs block or JSON object.
pub const MAX_LINE_BYTES: usize = BLOCK_BYTES + 1;

/// A log read to its end.
#[derive(Debug)]
pub struct Streamed {
    pub collected: Collected,
    /// Lines read.
    pub lines: usize,
    /// The most bytes of one line held at once (at most [`MAX_LINE_BYTES`]).
    pub peak_line_bytes: usize,
}

/// Streams a log through a [`LogCollector`]: memory stays bounded whatever the log's size.
pub async fn collect_lines(reader: impl futures::AsyncBufRead + Unpin, job: &str) -> std::io::Result<Streamed> {
    collect_with(reader, LogCollector::new(job)).await
}

/// [`collect_lines`] through a given collector (a plan run's, with its larger block).
pub async fn collect_with(
    reader: impl futures::AsyncBufRead + Unpin,
    mut collector: LogCollector,
) -> std::io::Result<Streamed> {
    let mut lines = crate::runs::log_lines::BoundedLines::new(reader, MAX_LINE_BYTES);
    let mut count = 0;
    while let Some(line) = lines.next_line().await? {
        count += 1;
        collector.push_line(&line.text);
    }
    Ok(Streamed { collected: collector.finish(), lines: count, peak_line_bytes: lines.peak() })
}

/// The end of a log for messages: its last [`LOG_TAIL_CHARS`] characters (an error is at the
/// end), so the message, the history record and the Event, each capped, all still show it.
pub fn log_tail(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= LOG_TAIL_CHARS {
        return text.to_owned();
    }
    let start = text.char_indices().nth(count - LOG_TAIL_CHARS).map_or(0, |(i, _)| i);
    format!("…{}", &text[start..])
}

/// Characters of a log tail quoted in a message: a history record keeps 1024, an Event 1000.
pub const LOG_TAIL_CHARS: usize = 800;

/// The one line of a failed run's log that says why, for status and Events (the whole tail is
/// in the run's history record): Terraform's first `Error:` line (its `│ ` box stripped), else
/// the last line that mentions an error, else the last line; at most 200 characters.
pub fn cause(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(|line| line.trim().trim_start_matches(['│', '╷', '╵', '…']).trim())
        .filter(|line| !line.is_empty())
        .collect();
    // From the word on: a line may carry a prefix (`exit code 1: Error: …`).
    let terraform = lines.iter().find_map(|line| line.find("Error:").map(|at| &line[at..]));
    let line = terraform
        .as_ref()
        .or_else(|| lines.iter().rev().find(|line| line.to_lowercase().contains("error")))
        .or_else(|| lines.last())
        .copied()
        .unwrap_or_default();
    excerpt(line)
}

/// At most 200 characters, for messages.
pub fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(200).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out.trim().to_owned()
}

/// `terraform output -json`: `{name: {value, sensitive, type}}`. Values are never quoted in
/// errors (they may be secrets).
pub fn parse_terraform_json(text: &str) -> Result<Outputs, String> {
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|err| format!("the outputs file is not JSON (line {}, column {})", err.line(), err.column()))?;
    let Value::Object(map) = value else {
        return Err("the outputs file is not a JSON object of outputs".into());
    };
    let mut outputs = Outputs::default();
    for (name, output) in map {
        let Some(value) = output.get("value") else {
            return Err(format!("output {name:?} has no `value` (expected `terraform output -json` format)"));
        };
        let sensitive = output.get("sensitive").and_then(Value::as_bool).unwrap_or(false);
        let target = if sensitive { &mut outputs.sensitive } else { &mut outputs.plain };
        target.insert(name, value.clone());
    }
    Ok(outputs)
}

/// `name = value` lines of `terraform apply`; `<sensitive>` values are unknown and skipped.
fn parse_apply_block(lines: &[String]) -> Outputs {
    let mut outputs = Outputs::default();
    for line in lines {
        let Some((name, value)) = line.split_once(" = ") else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || name.contains(char::is_whitespace)
            || value == "<sensitive>"
            || value == "(sensitive value)"
        {
            continue;
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        outputs.plain.insert(name.to_owned(), value);
    }
    outputs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_cause_is_terraforms_first_error_line_else_the_last_words() {
        let terraform = "Initializing the backend...\naws_vpc.main: Creating...\n╷\n│ Error: creating EC2 VPC: InvalidVpc.Range: The CIDR '10.0.0.0/8' is invalid.\n│ \n│   with aws_vpc.main,\n╵\n│ Error: second\n";
        assert_eq!(cause(terraform), "Error: creating EC2 VPC: InvalidVpc.Range: The CIDR '10.0.0.0/8' is invalid.");
        assert_eq!(cause("step 1\nconnection error: refused\ncleaning up\n"), "connection error: refused");
        assert_eq!(cause("step 1\ngave up\n\n"), "gave up");
        assert_eq!(cause("deploy failed (j-1): exit code 1: Error: quota\nmore"), "Error: quota");
        assert_eq!(cause(""), "");
    }

    fn collect(job: &str, log: &str) -> Collected {
        let mut collector = LogCollector::new(job);
        for line in log.lines() {
            collector.push_line(line);
        }
        collector.finish()
    }

    /// The log of a run whose wrapper sealed `outputs` with `pad`, and the collector's result.
    fn sealed_log(job: &str, outputs: &str, pad: &Pad) -> Collected {
        let (begin, end) = markers(job);
        let block = crate::runs::seal::seal(outputs.as_bytes(), pad);
        let mut collected = collect(job, &format!("Plan: 1 to add\nApply complete!\n\n{begin}\n{block}{end}\n"));
        collected.unseal(Ok(pad.clone()));
        collected
    }

    #[test]
    fn sealed_block_splits_sensitive_outputs() {
        let pad = Pad::from_bytes((0..=255u8).cycle().take(4096).collect());
        let outputs = r#"{"vpc":{"value":"vpc-1","sensitive":false,"type":"string"},"pw":{"value":"s3cret","sensitive":true,"type":"string"}}"#;
        let collected = sealed_log("j", outputs, &pad);
        assert_eq!(collected.outputs.plain, BTreeMap::from([("vpc".into(), json!("vpc-1"))]));
        assert_eq!(collected.outputs.sensitive, BTreeMap::from([("pw".into(), json!("s3cret"))]));
        assert!(collected.tail.iter().all(|l| !l.contains("s3cret")));
        assert_eq!(collected.error, None);
    }

    #[test]
    fn a_block_in_clear_is_not_trusted_as_outputs() {
        let (begin, end) = markers("j");
        let log = format!("{begin}\n{{\"vpc\":{{\"value\":\"forged\",\"sensitive\":false}}}}\n{end}\n");
        let collected = collect("j", &log);
        assert!(collected.outputs.plain.is_empty() && collected.outputs.sensitive.is_empty());
        assert!(collected.error.unwrap().contains("not sealed"));
    }

    #[test]
    fn markers_of_another_job_are_ignored() {
        let (begin, end) = markers("other");
        let collected = collect("j", &format!("{begin}\n{{}}\n{end}\n"));
        assert!(collected.outputs.plain.is_empty());
        assert_eq!(collected.error, None);
    }

    #[test]
    fn outputs_file_that_is_not_json_is_an_error_without_values() {
        let pad = Pad::from_bytes(vec![7; 4096]);
        let collected = sealed_log("j", "not json s3cret", &pad);
        let error = collected.error.unwrap();
        assert!(error.contains("not JSON") && !error.contains("s3cret"), "{error}");
    }

    #[test]
    fn apply_outputs_block_is_the_fallback() {
        let log = "Apply complete! Resources: 1 added.\n\nOutputs:\n\ncluster = \"staging\"\nnodes = 3\npw = <sensitive>\n\ndone\n";
        let collected = collect("j", log);
        assert_eq!(
            collected.outputs.plain,
            BTreeMap::from([("cluster".into(), json!("staging")), ("nodes".into(), json!(3))])
        );
    }

    #[test]
    fn post_deploy_json_among_log_lines() {
        let log = "connecting\n{\"outputs\": {\n  \"ec2\": [\"i-1\"]\n}}\nbye\n";
        let collected = collect("j", log);
        assert_eq!(collected.post_deploy, Some(json!({"outputs": {"ec2": ["i-1"]}})));
        let bad = collect("j", "hello\n{\"outputs\": [1,, 2]}\n");
        assert_eq!(bad.post_deploy, None);
        assert!(bad.json_error.unwrap().contains("{\"outputs\""));
    }

    #[test]
    fn log_tail_keeps_the_end() {
        assert_eq!(log_tail("  short\n"), "short");
        let long = format!("{}the error", "é".repeat(5000));
        let tail = log_tail(&long);
        assert_eq!(tail.chars().count(), LOG_TAIL_CHARS + 1);
        assert!(tail.starts_with('…') && tail.ends_with("the error"));
    }

    #[test]
    fn a_one_mib_log_keeps_only_a_bounded_tail() {
        let mut collector = LogCollector::new("j");
        let line = "x".repeat(1023);
        for _ in 0..1024 {
            collector.push_line(&line);
        }
        let collected = collector.finish();
        assert_eq!(collected.tail.len(), TAIL_LINES);
        assert!(collected.tail.iter().all(|l| l.len() == LINE_CHARS));
    }
}
