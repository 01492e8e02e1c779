//! One container as a host process under bubblewrap: the Pod's copy of the image as `/`, the
//! host's `/usr` (and `/bin`, `/lib*`, `/sbin` through it) read-only so images need no shell of
//! their own (but the image's `/usr/local`, when it has one, over the host's), a private `/proc`, `/dev` and `/tmp`, a private PID namespace (so killing
//! bubblewrap kills the whole process tree), and volumes bound at their mount paths.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

use crate::apiserver::PodLogs;

/// Host files a process commonly needs (name resolution, users, CA bundle, Debian's
/// alternatives symlinks in `/usr/bin`), bound read-only when present.
const HOST_FILES: [&str; 7] = [
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/alternatives",
];

/// A directory bound into the container.
#[derive(Debug, Clone)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub root: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    pub mounts: Vec<Mount>,
    /// Host file bound at the container's `terminationMessagePath`.
    pub termination_log: (PathBuf, String),
}

/// Starts bubblewrap for `spec`. The child is killed when dropped.
pub fn spawn(spec: &Spec) -> std::io::Result<Child> {
    let mut command = Command::new("bwrap");
    command.arg("--bind").arg(&spec.root).arg("/");
    command.args(["--ro-bind", "/usr", "/usr"]);
    // The image's own `/usr/local` (where a Dockerfile puts its binary, e.g. the agent image's
    // `/usr/local/bin/alustan-agent`) over the host's, which would otherwise hide it.
    let local = spec.root.join("usr/local");
    if local.is_dir() {
        command.arg("--bind").arg(&local).arg("/usr/local");
    }
    for link in ["/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"] {
        add_usr_link(&mut command, &spec.root, link);
    }
    for file in HOST_FILES {
        if Path::new(file).exists() && !spec.root.join(&file[1..]).exists() {
            command.args(["--ro-bind", file, file]);
        }
    }
    command.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    for mount in &spec.mounts {
        let flag = if mount.read_only { "--ro-bind" } else { "--bind" };
        command.arg(flag).arg(&mount.host).arg(&mount.container);
    }
    command.arg("--bind").arg(&spec.termination_log.0).arg(&spec.termination_log.1);
    command.args([
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ]);
    for (key, value) in &spec.env {
        command.arg("--setenv").arg(key).arg(value);
    }
    let working_dir = if spec.working_dir.is_empty() { "/" } else { spec.working_dir.as_str() };
    command.args(["--chdir", working_dir, "--"]).args(&spec.argv);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command.spawn()
}

/// `/bin` and friends: a symlink into `/usr` like a merged-usr host, or the host directory over
/// the image's own when the image ships one.
fn add_usr_link(command: &mut Command, root: &Path, link: &str) {
    let host = Path::new(link);
    let Ok(meta) = std::fs::symlink_metadata(host) else {
        return;
    };
    let in_image = root.join(&link[1..]);
    if meta.file_type().is_symlink() {
        if let Ok(target) = std::fs::read_link(host)
            && std::fs::symlink_metadata(&in_image).is_err()
        {
            command.arg("--symlink").arg(target).arg(link);
        }
    } else if meta.is_dir() {
        command.args(["--ro-bind", link, link]);
    }
}

/// Copies the child's stdout and stderr into the pod log as they arrive, then waits for it.
/// Returns the exit code (128 + signal when killed by a signal, as container runtimes report).
pub async fn run_to_end(mut child: Child, logs: &PodLogs, (namespace, pod, container): (&str, &str, &str)) -> i32 {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let copy = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        let logs = logs.clone();
        async move {
            let Some(mut stream) = stream else { return };
            let mut buffer = vec![0_u8; 16 * 1024];
            while let Ok(read) = stream.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
                logs.append(namespace, pod, container, &buffer[..read]);
            }
        }
    };
    let out: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = stdout.map(|s| Box::new(s) as _);
    let err: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = stderr.map(|s| Box::new(s) as _);
    let ((), (), status) = tokio::join!(copy(out), copy(err), child.wait());
    logs.finish(namespace, pod, container);
    match status {
        Ok(status) => status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt as _;
            128 + status.signal().unwrap_or(9)
        }),
        Err(_) => 128 + 9,
    }
}

/// Sends `signal` to every descendant of `pid` (the bubblewrap process), not to `pid` itself:
/// a graceful stop sends SIGTERM to the container's processes, as a runtime does. bubblewrap's
/// own init in the PID namespace ignores it; once the command exits, bubblewrap exits too.
pub fn signal_descendants(pid: u32, signal: nix::sys::signal::Signal) {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces or parentheses.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some(parent) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)) else {
                continue;
            };
            if let Ok(parent) = parent.parse::<u32>() {
                parents.push((child, parent));
            }
        }
    }
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        index += 1;
    }
    for descendant in tree.into_iter().skip(1) {
        if let Ok(raw) = i32::try_from(descendant) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal);
        }
    }
}
