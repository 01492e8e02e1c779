//! One control-plane process: started in its own process group with its output in a log file,
//! and the whole group killed (and the process reaped) on drop. Where util-linux's `setpriv`
//! is installed, the process also gets SIGKILL when the thread that started it dies
//! (`--pdeathsig`), so a test binary killed by a timeout leaves no etcd or API server behind.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::ControlPlaneError;

/// How much of a log an error quotes.
const LOG_TAIL_BYTES: usize = 4000;

/// A running component (`name` is what errors call it).
pub struct Process {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `binary args…` writing stdout and stderr to `log`.
    pub fn spawn<I, S>(name: &'static str, binary: &Path, args: I, log: PathBuf) -> Result<Self, ControlPlaneError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = std::fs::File::create(&log).map_err(|source| ControlPlaneError::io(&log, source))?;
        let err = out.try_clone().map_err(|source| ControlPlaneError::io(&log, source))?;
        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.args(args).stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child =
            command.spawn().map_err(|source| ControlPlaneError::Spawn { binary: binary.to_path_buf(), source })?;
        Ok(Self { name, child, log })
    }

    /// `Some(status)` once the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The error for a process that ended while it should run.
    pub fn exited_error(&self, status: ExitStatus) -> ControlPlaneError {
        ControlPlaneError::Exited { component: self.name, status, log: log_tail(&self.log) }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The group id is the child's pid (process_group(0)); best effort, it may be gone.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setpriv() -> Option<&'static str> {
    ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().find(|path| Path::new(path).exists())
}

/// The end of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    format!("{}:\n{text}", path.display())
}
