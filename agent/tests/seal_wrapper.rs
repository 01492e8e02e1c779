//! The Job wrapper's seal, run for real: the wrapper script the agent puts in every Job runs
//! under Debian's `dash` + coreutils `od` + `mawk`, and under busybox alone (as in Alpine and
//! busybox images), and what it prints is read back by the agent's log collector.
//!
//! Needs `busybox` on PATH (`make deps` installs Debian's `busybox-static`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/wrapper.rs"]
mod support_wrapper;

use std::path::{Path, PathBuf};
use std::process::Command;

use alustan_agent::runs::jobs::{markers, wrapper};
use alustan_agent::runs::outputs::{LogCollector, PLAN_BLOCK_BYTES};
use alustan_agent::runs::seal::{Pad, SealError, unseal};
use alustan_shared::meta;
use serde_json::json;
use support_wrapper::wrapper_command;

const JOB: &str = "tf-deploy-abc-0";
const OUTPUTS: &str = r#"{"vpc":{"value":"vpc-1","sensitive":false,"type":"string"},"pw":{"value":"hunter2-s3cret","sensitive":true,"type":"string"}}"#;

/// Which shell and tools run the wrapper.
enum Tools {
    /// `/bin/sh` and the host's PATH (Debian: dash, coreutils, mawk).
    Host,
    /// Only busybox: `sh`, `od`, `awk`, `wc`, `cat` are its applets, nothing else on PATH.
    Busybox,
}

/// Runs the wrapper with a script copying `outputs` to `$ALUSTAN_OUTPUTS`; returns its stdout.
fn run_wrapper(tools: &Tools, outputs: &[u8], pad: &Pad) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    std::fs::write(path.join("source"), outputs).unwrap();
    std::fs::write(path.join("pad"), pad.as_bytes()).unwrap();
    std::fs::write(path.join("deploy"), "#!/bin/sh\necho applying\ncat source > \"$ALUSTAN_OUTPUTS\"\n").unwrap();
    let (shell, search_path) = shell_and_path(tools, path);
    let output = wrapper_command(&shell, &search_path, path, &wrapper(), JOB).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "{}: {stderr}", output.status);
    String::from_utf8(output.stdout).unwrap()
}

/// The shell running the wrapper and its PATH for `tools` (busybox's applets live in `dir/bin`).
fn shell_and_path(tools: &Tools, dir: &Path) -> (PathBuf, String) {
    match tools {
        Tools::Host => (PathBuf::from("/bin/sh"), std::env::var("PATH").unwrap()),
        Tools::Busybox => (busybox_bin(dir), dir.join("bin").display().to_string()),
    }
}

/// A `bin` directory in `dir` where every tool the wrapper uses is a busybox applet.
fn busybox_bin(dir: &Path) -> PathBuf {
    let busybox = which("busybox").expect("busybox is not installed (make deps installs busybox-static)");
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for applet in ["sh", "od", "awk", "wc", "cat"] {
        std::os::unix::fs::symlink(&busybox, bin.join(applet)).unwrap();
    }
    bin.join("sh")
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(tool)).find(|p| p.is_file())
}

/// The sealed block between the markers of `log`.
fn block(log: &str) -> String {
    let (begin, end) = markers(JOB);
    let start = log.find(&begin).unwrap() + begin.len() + 1;
    let stop = log.find(&end).unwrap();
    log[start..stop].to_owned()
}

fn sealed_outputs_are_hidden_in_the_log_and_read_back(tools: &Tools) {
    let pad = Pad::generate(meta::SEAL_BYTES).unwrap();
    let log = run_wrapper(tools, OUTPUTS.as_bytes(), &pad);
    assert!(log.starts_with("applying\n"), "{log}");
    let (begin, end) = markers(JOB);
    assert!(log.contains(&format!("\n{begin}\n")) && log.ends_with(&format!("\n{end}\n")), "{log}");
    for secret in ["hunter2", &hex::encode("hunter2"), "vpc-1"] {
        assert!(!log.contains(secret), "{secret:?} is in the log:\n{log}");
    }
    let mut collector = LogCollector::new(JOB);
    for line in log.lines() {
        collector.push_line(line);
    }
    let mut collected = collector.finish();
    assert_eq!(collected.tail, ["applying", ""]);
    collected.unseal(Ok(pad));
    assert_eq!(collected.error, None);
    assert_eq!(collected.outputs.sensitive["pw"], json!("hunter2-s3cret"));
    assert_eq!(collected.outputs.plain["vpc"], json!("vpc-1"));
}

/// Every (byte, key) pair: byte i is `i % 256`, its key `i / 256`, over the whole pad.
fn every_byte_pair_round_trips(tools: &Tools) {
    let pairs = || (0..=u8::MAX).flat_map(|key| (0..=u8::MAX).map(move |byte| (byte, key)));
    assert_eq!(pairs().count(), meta::SEAL_BYTES);
    let data: Vec<u8> = pairs().map(|(byte, _)| byte).collect();
    let pad = Pad::from_bytes(pairs().map(|(_, key)| key).collect());
    let log = run_wrapper(tools, &data, &pad);
    assert_eq!(unseal(&block(&log), &pad).unwrap(), data);
}

fn a_file_larger_than_the_pad_is_not_printed(tools: &Tools) {
    let big = format!("{{\"pw\":{{\"value\":\"hunter2{}\",\"sensitive\":true}}}}", "x".repeat(meta::SEAL_BYTES));
    let pad = Pad::generate(meta::SEAL_BYTES).unwrap();
    let log = run_wrapper(tools, big.as_bytes(), &pad);
    assert!(!log.contains("hunter2") && !log.contains("xxxx"), "{log}");
    let size = big.len() as u64;
    assert_eq!(block(&log), format!("oversize {size} {}\n", meta::SEAL_BYTES));
    let mut collector = LogCollector::new(JOB);
    log.lines().for_each(|line| collector.push_line(line));
    let mut collected = collector.finish();
    collected.unseal(Ok(pad));
    let limit = meta::SEAL_BYTES as u64;
    assert_eq!(collected.error, Some(SealError::Oversize { size, limit }.to_string()));
    assert!(collected.outputs.sensitive.is_empty());
}

#[test]
fn host_shell_seals_outputs_and_the_collector_reads_them() {
    sealed_outputs_are_hidden_in_the_log_and_read_back(&Tools::Host);
}

#[test]
fn busybox_seals_outputs_and_the_collector_reads_them() {
    sealed_outputs_are_hidden_in_the_log_and_read_back(&Tools::Busybox);
}

#[test]
fn host_shell_xor_is_right_for_every_byte_and_key() {
    every_byte_pair_round_trips(&Tools::Host);
}

#[test]
fn busybox_xor_is_right_for_every_byte_and_key() {
    every_byte_pair_round_trips(&Tools::Busybox);
}

#[test]
fn host_shell_refuses_outputs_larger_than_the_pad() {
    a_file_larger_than_the_pad_is_not_printed(&Tools::Host);
}

#[test]
fn busybox_refuses_outputs_larger_than_the_pad() {
    a_file_larger_than_the_pad_is_not_printed(&Tools::Busybox);
}

#[test]
fn a_missing_pad_prints_nothing_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy"),
        "#!/bin/sh\necho '{\"pw\":{\"value\":\"hunter2\"}}' > \"$ALUSTAN_OUTPUTS\"\n",
    )
    .unwrap();
    let (begin, end) = markers(JOB);
    let output = Command::new("/bin/sh")
        .args(["-c", &wrapper(), "alustan-run", "sh", "./deploy"])
        .current_dir(dir.path())
        .env(meta::ENV_OUTPUTS_FILE, dir.path().join("outputs.json"))
        .env(meta::ENV_SEAL_FILE, dir.path().join("no-such-pad"))
        .env("ALUSTAN_OUTPUTS_BEGIN", begin)
        .env("ALUSTAN_OUTPUTS_END", end)
        .output()
        .unwrap();
    let log = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success());
    assert!(!log.contains("hunter2"), "{log}");
    let block = block(&log);
    assert!(block.starts_with("oversize ") && block.ends_with(" 0\n"), "{log}");
}

#[test]
fn without_a_pad_the_wrapper_prints_no_block_at_all() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deploy"), "#!/bin/sh\necho '{\"pw\":\"hunter2\"}' > \"$ALUSTAN_OUTPUTS\"\n")
        .unwrap();
    let mut command =
        wrapper_command(Path::new("/bin/sh"), &std::env::var("PATH").unwrap(), dir.path(), &wrapper(), JOB);
    let output = command.env_remove(meta::ENV_SEAL_FILE).output().unwrap();
    assert!(output.status.success() && output.stderr.is_empty(), "{output:?}");
    let log = String::from_utf8(output.stdout).unwrap();
    assert_eq!(log, "", "a run without a pad (post-deploy, destroy) prints nothing of its outputs file");
}

#[test]
fn a_pad_smaller_than_the_largest_reports_its_own_size_when_too_small() {
    let pad = Pad::generate(100).unwrap();
    let log = run_wrapper(&Tools::Busybox, &[b'x'; 101], &pad);
    assert_eq!(block(&log), "oversize 101 100\n");
    let fits = run_wrapper(&Tools::Host, &[b'x'; 100], &pad);
    assert_eq!(unseal(&block(&fits), &pad).unwrap(), [b'x'; 100]);
}

/// A plan run: the wrapper bundles the summary and a 200 KiB plan file (larger than any
/// outputs pad) and seals them with the plan pad; the agent's collector reads them back whole.
fn a_plan_bundle_round_trips(tools: &Tools) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let plan_file: Vec<u8> = (0..200 * 1024).map(|i| u8::try_from(i % 251).unwrap()).collect();
    std::fs::write(path.join("source.bin"), &plan_file).unwrap();
    let summary = r#"{"resource_changes":[{"address":"aws_db.main","change":{"actions":["update"],"after":{"password":"hunter2"}}}]}"#;
    std::fs::write(path.join("source.json"), summary).unwrap();
    std::fs::write(
        path.join("deploy"),
        "#!/bin/sh\necho planning\ncat source.json > \"$ALUSTAN_PLAN\"\ncat source.bin > \"$ALUSTAN_PLAN_FILE\"\n",
    )
    .unwrap();
    let pad = Pad::generate(meta::PLAN_SEAL_BYTES).unwrap();
    std::fs::write(path.join("pad"), pad.as_bytes()).unwrap();
    let (shell, search_path) = shell_and_path(tools, path);
    let output = wrapper_command(&shell, &search_path, path, &wrapper(), JOB)
        .env("ALUSTAN_ACTION", "plan")
        .env(meta::ENV_PLAN, path.join("plan.json"))
        .env(meta::ENV_PLAN_FILE, path.join("plan.bin"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let log = String::from_utf8(output.stdout).unwrap();
    assert!(!log.contains("hunter2") && !log.contains(&hex::encode("hunter2")), "the summary's values stay sealed");
    let mut collector = LogCollector::with_block_limit(JOB, PLAN_BLOCK_BYTES);
    for line in log.lines() {
        collector.push_line(line);
    }
    let mut collected = collector.finish();
    collected.unseal_bundle(Ok(pad));
    assert_eq!(collected.error, None);
    let plan = alustan_agent::runs::plan::read_bundle(&collected.bundle.unwrap()).unwrap();
    assert_eq!(plan.counts.update, 1);
    assert_eq!(plan.artifact.as_deref(), Some(plan_file.as_slice()), "the plan file arrives byte for byte");
}

#[test]
fn host_shell_hands_back_a_plan_larger_than_an_outputs_pad() {
    a_plan_bundle_round_trips(&Tools::Host);
}

#[test]
fn busybox_hands_back_a_plan_larger_than_an_outputs_pad() {
    a_plan_bundle_round_trips(&Tools::Busybox);
}
