//! Connecting like kubectl does: the same kubeconfig search, the same overriding flags.
//!
//! Order (kubectl's): `--kubeconfig` alone; else every file of `$KUBECONFIG` merged (first one
//! setting a value wins); else `~/.kube/config`; else the in-cluster service account.

use std::path::PathBuf;
use std::sync::Once;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::KubeFlags;
use crate::errors::CliError;

/// A client plus what the user should see about where it points.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    /// The namespace commands act in: `-n`, else the context's, else `default`.
    pub namespace: String,
    /// `-A`.
    pub all_namespaces: bool,
    pub context: String,
    pub cluster: String,
}

impl Connection {
    /// `None` for every namespace (`-A`), else the one namespace in scope.
    pub fn scope(&self) -> Option<&str> {
        if self.all_namespaces { None } else { Some(&self.namespace) }
    }

    /// The same connection scoped to one namespace.
    #[must_use]
    pub fn in_namespace(&self, namespace: &str) -> Self {
        Self { namespace: namespace.to_owned(), all_namespaces: false, ..self.clone() }
    }
}

/// kube and every other rustls user in the process must agree on ONE provider: ring.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed; that one is then used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Where the kubeconfig comes from, kubectl's way; `None` means in-cluster.
fn load_kubeconfig(flags: &KubeFlags) -> Result<Option<Kubeconfig>, CliError> {
    let read = |path: &PathBuf| {
        Kubeconfig::read_from(path).map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))
    };
    if let Some(path) = &flags.kubeconfig {
        return read(path).map(Some);
    }
    if let Some(merged) = from_env_list()? {
        return Ok(Some(merged));
    }
    let home = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube").join("config"));
    match home {
        Some(path) if path.exists() => read(&path).map(Some),
        _ => Ok(None),
    }
}

/// `$KUBECONFIG` as kubectl reads it: files that do not exist are skipped (kube's own reader
/// fails on them), the rest merged with the first file winning.
fn from_env_list() -> Result<Option<Kubeconfig>, CliError> {
    let Some(value) = std::env::var_os("KUBECONFIG") else { return Ok(None) };
    let paths: Vec<PathBuf> =
        std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty() && p.exists()).collect();
    if paths.is_empty() {
        return Ok(None);
    }
    let mut merged = Kubeconfig::default();
    for path in &paths {
        let next = Kubeconfig::read_from(path)
            .map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))?;
        merged = merged.merge(next).map_err(|e| CliError::Config(format!("$KUBECONFIG: {e}")))?;
    }
    Ok(Some(merged))
}

/// Builds the client the flags select.
pub async fn connect(flags: &KubeFlags) -> Result<Connection, CliError> {
    install_crypto_provider();
    let (mut config, context, cluster) = if let Some(kubeconfig) = load_kubeconfig(flags)? {
        check_entries(&kubeconfig, flags)?;
        let options = KubeConfigOptions {
            context: flags.context.clone(),
            cluster: flags.cluster.clone(),
            user: flags.user.clone(),
        };
        let context = flags.context.clone().or_else(|| kubeconfig.current_context.clone()).unwrap_or_default();
        let cluster = flags
            .cluster
            .clone()
            .or_else(|| {
                kubeconfig
                    .contexts
                    .iter()
                    .find(|c| c.name == context)
                    .and_then(|c| c.context.as_ref().map(|c| c.cluster.clone()))
            })
            .unwrap_or_else(|| context.clone());
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| CliError::Config(format!("kubeconfig: {e}")))?;
        (config, context, cluster)
    } else {
        let config = Config::incluster()
            .map_err(|e| CliError::Config(format!("no kubeconfig found and not running in a cluster ({e})")))?;
        (config, "(in-cluster)".to_owned(), "(in-cluster)".to_owned())
    };
    if let Some(user) = &flags.as_user {
        // `--as` replaces the kubeconfig's impersonation, as in kubectl.
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups = None;
    }
    let namespace = flags.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| CliError::Config(format!("building the client: {e}")))?;
    Ok(Connection { client, namespace, all_namespaces: flags.all_namespaces, context, cluster })
}

/// `--context`, `--cluster` and `--user` must name entries of the kubeconfig: say which exist
/// (kube's own error would be read as a kubeconfig that cannot be found).
fn check_entries(kubeconfig: &Kubeconfig, flags: &KubeFlags) -> Result<(), CliError> {
    let wanted = [
        ("context", &flags.context, kubeconfig.contexts.iter().map(|c| c.name.clone()).collect::<Vec<_>>()),
        ("cluster", &flags.cluster, kubeconfig.clusters.iter().map(|c| c.name.clone()).collect()),
        ("user", &flags.user, kubeconfig.auth_infos.iter().map(|a| a.name.clone()).collect()),
    ];
    for (kind, name, known) in wanted {
        if let Some(name) = name
            && !known.contains(name)
        {
            return Err(CliError::NoSuchEntry { kind, name: name.clone(), known });
        }
    }
    Ok(())
}
