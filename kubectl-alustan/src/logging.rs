//! Logs of the TUI go to a file: anything written to the terminal would corrupt the screen.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// `$ALUSTAN_LOG_FILE`, else `kubectl-alustan.log` in the temporary directory.
pub fn log_path() -> PathBuf {
    std::env::var_os("ALUSTAN_LOG_FILE").map_or_else(|| std::env::temp_dir().join("kubectl-alustan.log"), PathBuf::from)
}

/// Sends tracing output (level from `$ALUSTAN_LOG`, default `info`) to [`log_path`]. Logging
/// is best effort: without a writable file the TUI still runs.
pub fn to_file() -> Option<PathBuf> {
    let path = log_path();
    let file = File::create(&path).ok()?;
    let filter = EnvFilter::try_from_env("ALUSTAN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(Mutex::new(file)).try_init().ok()?;
    Some(path)
}
