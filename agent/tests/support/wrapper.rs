//! The Job wrapper run as a host process, as the kubelet would run the Job's command: shared by
//! the seal tests and the seal bench so both exercise exactly the same invocation.

use std::path::Path;
use std::process::Command;

use alustan_agent::runs::jobs::markers;
use alustan_shared::meta;

/// `shell -c script alustan-run sh ./deploy` in `dir` with only `PATH` (`search_path`), the
/// outputs file `dir/outputs.json`, the pad `dir/pad` and the markers of `job` in its env.
pub fn wrapper_command(shell: &Path, search_path: &str, dir: &Path, script: &str, job: &str) -> Command {
    let (begin, end) = markers(job);
    let mut command = Command::new(shell);
    command
        .args(["-c", script, "alustan-run", "sh", "./deploy"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", search_path)
        .env(meta::ENV_OUTPUTS_FILE, dir.join("outputs.json"))
        .env(meta::ENV_SEAL_FILE, dir.join("pad"))
        .env("ALUSTAN_OUTPUTS_BEGIN", begin)
        .env("ALUSTAN_OUTPUTS_END", end);
    command
}
