//! `logs NAME [--run N] [-f]`: the pod log of a run from `status.history` (newest first), found
//! through the Job's standard `job-name` label.

use std::time::Duration;

use alustan_shared::{Terraform, meta};
use futures::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};

use crate::errors::CliError;
use crate::kube_client::Connection;

/// Shows a run's sealed outputs block (hex only the agent can read: agent README, "Outputs")
/// as one line, `[sealed outputs: N bytes]`, instead of hex noise; other lines pass unchanged.
#[derive(Debug, Default)]
pub struct SealedBlocks {
    state: Fold,
}

#[derive(Debug, Default)]
enum Fold {
    #[default]
    Outside,
    /// After a begin marker (kept until the next line says whether the block is sealed).
    Opened(String),
    /// Inside a sealed block: the line shown for it once it ends.
    Sealed(String),
    /// Inside a block printed in clear (by a Job of an agent from before the seal).
    Plain,
}

fn is_marker(line: &str, prefix: &str) -> bool {
    let line = line.trim_end_matches('\r');
    line.starts_with(prefix) && line.ends_with(meta::MARKER_SUFFIX)
}

/// The line shown for a block whose first line is `header`; `None` if it is not sealed.
fn summary(header: &str) -> Option<String> {
    let words: Vec<&str> = header.split_whitespace().collect();
    match words.as_slice() {
        [word, size] if *word == meta::SEALED_HEADER => Some(format!("[sealed outputs: {size} bytes]")),
        [word, size, limit] if *word == meta::OVERSIZE_HEADER => {
            Some(format!("[outputs not printed: {size} bytes, more than the {limit}-byte seal]"))
        }
        _ => None,
    }
}

impl SealedBlocks {
    /// The lines to show for the log line `line` (none while a sealed block goes on).
    pub fn push(&mut self, line: String) -> Vec<String> {
        match std::mem::take(&mut self.state) {
            Fold::Outside if is_marker(&line, meta::OUTPUTS_BEGIN_PREFIX) => {
                self.state = Fold::Opened(line);
                Vec::new()
            }
            Fold::Outside => vec![line],
            Fold::Opened(begin) => {
                if let Some(summary) = summary(&line) {
                    self.state = Fold::Sealed(summary);
                    return Vec::new();
                }
                if !is_marker(&line, meta::OUTPUTS_END_PREFIX) {
                    self.state = Fold::Plain;
                }
                vec![begin, line]
            }
            Fold::Sealed(summary) if is_marker(&line, meta::OUTPUTS_END_PREFIX) => vec![summary],
            Fold::Sealed(summary) => {
                self.state = Fold::Sealed(summary);
                Vec::new()
            }
            Fold::Plain => {
                if !is_marker(&line, meta::OUTPUTS_END_PREFIX) {
                    self.state = Fold::Plain;
                }
                vec![line]
            }
        }
    }

    /// What is still to show when the log ends (a block cut short).
    pub fn finish(self) -> Option<String> {
        match self.state {
            Fold::Opened(line) | Fold::Sealed(line) => Some(line),
            Fold::Outside | Fold::Plain => None,
        }
    }
}

/// The Job of the `run`-th newest run (1 = latest).
pub fn job_of(object: &Terraform, run: u32) -> Result<String, CliError> {
    let status = object.status.as_ref();
    let history = status.map(|s| s.history.as_slice()).unwrap_or_default();
    let index = usize::try_from(run).unwrap_or(usize::MAX).saturating_sub(1);
    let name = object.metadata.name.as_deref().unwrap_or_default();
    history.get(index).map(|r| r.job_name.clone()).ok_or_else(|| {
        if history.is_empty() {
            let state = status.and_then(|s| s.state).map_or("Pending", alustan_shared::State::as_str);
            let message = status.and_then(|s| s.message.as_deref()).and_then(|m| m.lines().next()).unwrap_or_default();
            let said = if message.is_empty() { String::new() } else { format!(": {message}") };
            return CliError::Other(format!(
                "{} has no runs yet, so no log (state {state}{said})\n  fix: `kubectl alustan describe {name}` says why nothing ran",
                super::key(object)
            ));
        }
        CliError::Other(format!(
            "{} has {} recorded run(s) (the history keeps the latest 10); --run {run} goes further back\n  fix: pick --run 1 to {}; `kubectl alustan describe {name}` lists them",
            super::key(object),
            history.len(),
            history.len()
        ))
    })
}

/// The newest pod of a Job.
pub async fn pod_of(conn: &Connection, namespace: &str, job: &str) -> Result<String, CliError> {
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .map_err(|e| CliError::api(e, "list", "pods", Some(namespace)))?;
    let newest = list.items.into_iter().max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    newest.and_then(|p| p.metadata.name).ok_or_else(|| {
        CliError::Other(format!(
            "no pod left for Job \"{job}\" in namespace \"{namespace}\" (deleted, or the Job was cleaned up after its TTL)"
        ))
    })
}

/// Opens the log stream of the `run`-th run's pod.
pub async fn open(
    conn: &Connection,
    object: &Terraform,
    run: u32,
    follow: bool,
) -> Result<impl futures::AsyncBufRead + use<>, CliError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| conn.namespace.clone());
    open_job(conn, &namespace, &job_of(object, run)?, follow).await
}

/// Opens the log stream of Job `job`'s newest pod.
pub async fn open_job(
    conn: &Connection,
    namespace: &str,
    job: &str,
    follow: bool,
) -> Result<impl futures::AsyncBufRead + use<>, CliError> {
    let pod = pod_of(conn, namespace, job).await?;
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), namespace);
    pods.log_stream(&pod, &LogParams { follow, ..LogParams::default() })
        .await
        .map_err(|e| CliError::api(e, "get", "pods/log", Some(namespace)))
}

/// Prints a Job's log prefixed with `│ `, waiting (up to a minute) for its pod to start; used
/// by `sync --wait`. Problems are printed, not returned: the wait goes on without the log.
pub async fn follow_job(conn: Connection, namespace: String, job: String) {
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last_error = String::new();
    while tokio::time::Instant::now() < deadline {
        // The pod may not exist, or its container may not have started, yet.
        let opened = match pod_of(&conn, &namespace, &job).await {
            Ok(pod) => pods
                .log_stream(&pod, &LogParams { follow: true, ..LogParams::default() })
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match opened {
            Ok(stream) => {
                let mut lines = std::pin::pin!(stream.lines());
                let mut sealed = SealedBlocks::default();
                while let Some(Ok(line)) = lines.next().await {
                    sealed.push(line).iter().for_each(|line| crate::outln!("│ {line}"));
                }
                sealed.finish().iter().for_each(|line| crate::outln!("│ {line}"));
                return;
            }
            Err(error) => last_error = error,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    crate::errln!("(no log for Job {job}: {last_error})");
}

pub async fn run(conn: &Connection, name: &str, run: u32, follow: bool) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    let stream = open(conn, &object, run, follow).await?;
    let mut lines = std::pin::pin!(stream.lines());
    let mut sealed = SealedBlocks::default();
    while let Some(line) = lines.next().await {
        let line = line.map_err(|e| CliError::Other(format!("reading the log: {e}")))?;
        sealed.push(line).iter().for_each(|line| crate::outln!("{line}"));
    }
    sealed.finish().iter().for_each(|line| crate::outln!("{line}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(log: &str) -> Vec<String> {
        let mut sealed = SealedBlocks::default();
        let mut shown: Vec<String> = log.lines().flat_map(|line| sealed.push(line.to_owned())).collect();
        shown.extend(sealed.finish());
        shown
    }

    #[test]
    fn a_sealed_block_is_one_line_and_the_rest_passes() {
        let (begin, end) = meta::outputs_markers("tf-deploy-k-0");
        let log = format!("applying\n\n{begin}\nsealed 40\n{}\n{}\n{end}\ndone\n", "ab".repeat(32), "cd".repeat(8));
        assert_eq!(fold(&log), ["applying", "", "[sealed outputs: 40 bytes]", "done"]);
        let oversize = format!("{begin}\noversize 70000 65536\n{end}\n");
        assert_eq!(fold(&oversize), ["[outputs not printed: 70000 bytes, more than the 65536-byte seal]"]);
    }

    #[test]
    fn a_plain_block_or_a_cut_one_is_shown() {
        let (begin, end) = meta::outputs_markers("j");
        let plain = format!("{begin}\n{{\"a\": {{\"value\": 1}}}}\n{end}\nafter\n");
        assert_eq!(fold(&plain), plain.lines().collect::<Vec<_>>());
        assert_eq!(fold(&format!("{begin}\nsealed 9\n00ff")), ["[sealed outputs: 9 bytes]"]);
        assert_eq!(fold(&format!("x\n{begin}")), ["x".to_owned(), begin.clone()]);
        assert_eq!(fold(&format!("{begin}\n{end}\n")), [begin, end]);
    }
}
