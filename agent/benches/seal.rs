//! Seal figures (printed, never asserted):
//!
//! 1. the agent's unseal of a full 64 KiB block (hex decode + XOR): throughput, and its ratio
//!    to a plain copy of the same block's bytes in the same run;
//! 2. the Job wrapper sealing a 64 KiB outputs file with `od` + `awk` (the host's, and
//!    busybox's when installed): time, and its ratio to the `cat` the wrapper used before.
//!
//! Run: `cargo bench -p alustan-agent --bench seal`.

#[path = "../tests/support/wrapper.rs"]
mod support_wrapper;

use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use alustan_agent::runs::jobs::{markers, wrapper};
use alustan_agent::runs::seal::{Pad, unseal};
use alustan_shared::meta;
use support_wrapper::wrapper_command;

const RUNS: usize = 201;
const SHELL_RUNS: usize = 11;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let pad = Pad::generate(meta::SEAL_BYTES)?;
    let outputs: Vec<u8> = (0..meta::SEAL_BYTES).map(|i| b"{\"k\": \"value\"}\n"[i % 15]).collect();
    std::fs::write(dir.path().join("pad"), pad.as_bytes())?;
    std::fs::write(dir.path().join("source"), &outputs)?;
    std::fs::write(dir.path().join("deploy"), "cat source > \"$ALUSTAN_OUTPUTS\"\n")?;

    let log = run(dir.path(), &wrapper(), "/bin/sh")?;
    let (begin, end) = markers("bench");
    let start = log.find(&begin).ok_or("no begin marker")? + begin.len() + 1;
    let block = &log[start..log.find(&end).ok_or("no end marker")?];
    assert_eq!(unseal(block, &pad)?, outputs, "the wrapper's block does not unseal");

    let unsealing = time(RUNS, || {
        black_box(unseal(black_box(block), &pad).ok());
    });
    let copying = time(RUNS, || {
        black_box(black_box(block.as_bytes()).to_vec());
    });
    let mib = f64::from(u32::try_from(meta::SEAL_BYTES)?) / f64::from(1 << 20);
    println!(
        "unseal 64 KiB: {unsealing:?} median ({:.0} MiB/s); plain copy of the block: {copying:?}; ratio {:.1}x",
        mib / unsealing.as_secs_f64(),
        unsealing.as_secs_f64() / copying.as_secs_f64()
    );

    let cat = r#"sh "$1"; printf '\n%s\n' "$ALUSTAN_OUTPUTS_BEGIN"; cat "$ALUSTAN_OUTPUTS"; printf '%s\n' "$ALUSTAN_OUTPUTS_END""#;
    let mut shells = vec![("host sh/od/mawk", "/bin/sh".to_owned())];
    if let Some(busybox) = which("busybox") {
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin)?;
        for applet in ["sh", "od", "awk", "wc", "cat"] {
            std::os::unix::fs::symlink(&busybox, bin.join(applet))?;
        }
        shells.push(("busybox", bin.join("sh").display().to_string()));
    } else {
        println!("(busybox not installed: its figure is skipped)");
    }
    for (name, shell) in shells {
        let sealing = time(SHELL_RUNS, || {
            black_box(run(dir.path(), &wrapper(), &shell).ok());
        });
        let plain = time(SHELL_RUNS, || {
            black_box(run(dir.path(), cat, &shell).ok());
        });
        println!(
            "wrapper sealing 64 KiB ({name}): {sealing:?} median; printing it in clear with cat: {plain:?}; ratio {:.1}x",
            sealing.as_secs_f64() / plain.as_secs_f64()
        );
    }
    Ok(())
}

/// The wrapper `script` run by `shell` in `dir` with its PATH (busybox: its applets only).
fn run(dir: &Path, script: &str, shell: &str) -> Result<String, Box<dyn Error>> {
    let path = Path::new(shell).parent().map(|p| p.display().to_string()).unwrap_or_default();
    let search = if shell == "/bin/sh" { std::env::var("PATH")? } else { path };
    let output = wrapper_command(Path::new(shell), &search, dir, script, "bench").output()?;
    Ok(String::from_utf8(output.stdout)?)
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(tool)).find(|p| p.is_file())
}
