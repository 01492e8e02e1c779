//! Running one `docker-registry serve` process on a free loopback port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::RegistryError;
use super::config::{self, ConfigParams, INSTANCE_HEADER};
use super::raw::RawClient;

/// Ports are found by binding port 0 and releasing it, so another process may take the port
/// before the registry binds it: retry a few times with a new port.
const START_ATTEMPTS: u32 = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A started registry process; killed and reaped on drop.
pub(crate) struct Process {
    child: Child,
    pub host_port: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        // Best effort: the process may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary serve` with a config in `dir` (storage under `dir/storage`) and waits for
/// `GET /v2/` to answer from this very instance.
pub(crate) async fn start(
    binary: &Path,
    dir: &Path,
    htpasswd: Option<&Path>,
    fixed_port: Option<u16>,
) -> Result<Process, RegistryError> {
    let storage = dir.join("storage");
    let instance = instance_token(dir);
    // A pinned port gets one attempt: retrying could not change the outcome.
    let attempts = if fixed_port.is_some() { 1 } else { START_ATTEMPTS };
    for attempt in 0..attempts {
        let port = match fixed_port {
            Some(port) => port,
            None => free_port()?,
        };
        let config = config::render(&ConfigParams { port, storage: &storage, htpasswd, instance: &instance })?;
        let config_path = dir.join("config.yml");
        write(&config_path, config.as_bytes())?;
        let log_path = dir.join(format!("registry-{attempt}.log"));
        let process = spawn(binary, &config_path, &log_path, port)?;
        match wait_ready(process, &instance, &log_path).await {
            Ok(process) => return Ok(process),
            Err(RegistryError::Exited { log, .. })
                if fixed_port.is_none() && log.contains("address already in use") => {}
            Err(err) => return Err(err),
        }
    }
    Err(RegistryError::PortCollisions { attempts })
}

fn spawn(binary: &Path, config: &Path, log_path: &Path, port: u16) -> Result<Process, RegistryError> {
    let log = std::fs::File::create(log_path)
        .map_err(|err| RegistryError::io(format!("creating {}", log_path.display()), err))?;
    let log_err = log.try_clone().map_err(|err| RegistryError::io("duplicating the registry log handle", err))?;
    let child = Command::new(binary)
        .arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => {
                RegistryError::ToolMissing { binary: binary.display().to_string(), package: "docker-registry" }
            }
            _ => RegistryError::io(format!("starting {}", binary.display()), err),
        })?;
    Ok(Process { child, host_port: format!("127.0.0.1:{port}") })
}

async fn wait_ready(mut process: Process, instance: &str, log_path: &Path) -> Result<Process, RegistryError> {
    let client = RawClient::new(process.host_port.clone());
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = process.child.try_wait() {
            return Err(RegistryError::Exited {
                host_port: process.host_port.clone(),
                status,
                log: read_log(log_path),
            });
        }
        // Any answer counts (401 in htpasswd mode), but only from our instance.
        if let Ok(response) = client.get("/v2/").await
            && response.header(INSTANCE_HEADER) == Some(instance)
        {
            return Ok(process);
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(RegistryError::NotReady {
                host_port: process.host_port.clone(),
                waited: started.elapsed(),
                log: read_log(log_path),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn free_port() -> Result<u16, RegistryError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|err| RegistryError::io("finding a free loopback port", err))
}

/// Unique per instance: the temp dir name is unique on this machine, the pid and time make it
/// unique even if a temp dir name is reused.
fn instance_token(dir: &Path) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{}-{nanos}-{name}", std::process::id())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    std::fs::write(path, bytes).map_err(|err| RegistryError::io(format!("writing {}", path.display()), err))
}

/// The registry's log, for error messages (it is short: warnings and errors only).
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| format!("(no log: {err})"))
}
