//! The generated `docker-registry` (distribution 2.8) configuration and htpasswd file.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::RegistryError;

/// Response header carrying a per-instance token, so the readiness probe knows it reached
/// *this* registry and not another one that grabbed the same port in the meantime.
pub(crate) const INSTANCE_HEADER: &str = "X-Alustan-Testenv-Instance";

/// Everything needed to render one configuration file.
pub(crate) struct ConfigParams<'a> {
    pub port: u16,
    pub storage: &'a Path,
    pub htpasswd: Option<&'a Path>,
    pub instance: &'a str,
}

/// Renders the YAML configuration (<https://distribution.github.io/distribution/about/configuration/>).
pub(crate) fn render(params: &ConfigParams<'_>) -> Result<String, RegistryError> {
    let mut config = serde_json::json!({
        "version": "0.1",
        // `info` would log every request; the access log is off for the same reason (benches
        // push thousands of tags).
        "log": { "level": "warn", "accesslog": { "disabled": true } },
        "storage": {
            "filesystem": { "rootdirectory": params.storage },
            // Needed to delete manifests (and so to show `"tags": null`).
            "delete": { "enabled": true },
        },
        "http": {
            "addr": format!("127.0.0.1:{}", params.port),
            // A fixed secret silences the "generated random secret" warning.
            "secret": params.instance,
            "headers": {
                "X-Content-Type-Options": ["nosniff"],
                INSTANCE_HEADER: [params.instance],
            },
        },
    });
    if let Some(path) = params.htpasswd {
        config["auth"] = serde_json::json!({
            "htpasswd": { "realm": "alustan-testenv", "path": path },
        });
    }
    serde_yaml::to_string(&config)
        .map_err(|err| RegistryError::io("rendering the registry configuration", std::io::Error::other(err)))
}

/// Writes `user:bcrypt-hash` with Apache's `htpasswd -Bbn` (distribution only accepts bcrypt).
pub(crate) fn write_htpasswd(dir: &Path, user: &str, password: &str) -> Result<PathBuf, RegistryError> {
    let output = Command::new("htpasswd").args(["-Bbn", user, password]).output().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => {
            RegistryError::ToolMissing { binary: "htpasswd".into(), package: "apache2-utils" }
        }
        _ => RegistryError::io("running htpasswd", err),
    })?;
    if !output.status.success() {
        return Err(RegistryError::Htpasswd {
            user: user.into(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, &output.stdout)
        .map_err(|err| RegistryError::io(format!("writing {}", path.display()), err))?;
    Ok(path)
}
