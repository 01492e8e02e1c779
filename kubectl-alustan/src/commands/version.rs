//! `version`: the plugin's version, and the agent's when its Deployment (or Pod) is visible.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::ListParams;

use crate::cli::KubeFlags;
use crate::errors::CliError;
use crate::kube_client::Connection;

pub const AGENT_SELECTOR: &str = "app.kubernetes.io/name=alustan-agent";

pub async fn run(flags: &KubeFlags) -> Result<(), CliError> {
    println!("kubectl-alustan {}", env!("CARGO_PKG_VERSION"));
    let agent = match super::connect(flags).await {
        Ok(conn) => agent_version(&conn).await,
        Err(e) => Err(format!("not reachable ({})", e.to_string().lines().next().unwrap_or_default())),
    };
    match agent {
        Ok(version) => println!("agent {version}"),
        Err(why) => println!("agent: {why}"),
    }
    Ok(())
}

/// `version (namespace/name)` of the agent, or why it is unknown.
pub async fn agent_version(conn: &Connection) -> Result<String, String> {
    let params = ListParams::default().labels(AGENT_SELECTOR);
    let deployments: Api<Deployment> = Api::all(conn.client.clone());
    if let Ok(list) = deployments.list(&params).await
        && let Some(d) = list.items.first()
    {
        let image = d.spec.template.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
        return Ok(describe(&d.metadata, image.as_deref()));
    }
    let pods: Api<Pod> = Api::all(conn.client.clone());
    match pods.list(&params).await {
        Ok(list) => list
            .items
            .first()
            .map(|p| {
                describe(
                    &p.metadata,
                    p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.as_deref()),
                )
            })
            .ok_or_else(|| format!("not found (no Deployment or Pod labelled {AGENT_SELECTOR})")),
        Err(e) => Err(format!("not reachable ({e})")),
    }
}

/// The version label if set, else the image tag.
fn describe(meta: &ObjectMeta, image: Option<&str>) -> String {
    let label = meta.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/version")).cloned();
    let tag = image.and_then(|i| i.rsplit_once(':')).map(|(_, tag)| tag.to_owned());
    let version = label.or(tag).unwrap_or_else(|| "(unknown version)".to_owned());
    format!(
        "{version} ({}/{})",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}
