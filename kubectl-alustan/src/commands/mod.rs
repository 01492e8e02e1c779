//! One file per command; shared look-ups (get with good errors, list, patch) live here.

pub mod credentials;
pub mod describe;
pub mod get;
pub mod logs;
pub mod outputs;
pub mod plan;
pub mod suspend;
pub mod sync;
pub mod template;
pub mod tree;
pub mod version;

use alustan_shared::Terraform;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};

use crate::cli::{Cli, Command, KubeFlags};
use crate::errors::{self, CliError};
use crate::kube_client::{self, Connection};
use crate::plans::Verdict;

/// The resource name used in messages (`kubectl auth can-i get terraforms.alustan.io`).
pub const RESOURCE: &str = "terraforms.alustan.io";

/// Runs every command that needs the cluster (not `completion`, not `tui`).
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if cli.command == Command::Version {
        return version::run(&cli.kube).await;
    }
    let mut conn = connect(&cli.kube).await?;
    // `-A NAME`: act in the one namespace holding NAME (the error says when none or several do).
    if let Some(name) = named(&cli.command).filter(|_| conn.all_namespaces) {
        let object = get_anywhere(&conn, name).await?;
        conn = conn.in_namespace(object.metadata.namespace.as_deref().unwrap_or_default());
    }
    match cli.command {
        Command::Get { name, watch, output, selector, show_managed_fields } => {
            let query = get::Query { name, selector, output, show_managed_fields };
            get::run(&conn, query, watch).await
        }
        Command::Describe { name } => describe::run(&conn, &name).await,
        Command::Tree { name } => tree::run(&conn, &name).await,
        Command::Sync { name, wait, timeout } => {
            let request = sync::Request { kind: sync::Kind::Sync, wait, timeout };
            sync::run(&conn, &name, request, cli.kube.agent_namespace.as_deref()).await
        }
        Command::Resync { name, wait, timeout } => {
            let request = sync::Request { kind: sync::Kind::Resync, wait, timeout };
            sync::run(&conn, &name, request, cli.kube.agent_namespace.as_deref()).await
        }
        Command::Plan { name, wait, timeout } => {
            plan::request(&conn, &name, plan::Follow { wait, timeout }, cli.kube.agent_namespace.as_deref()).await
        }
        Command::Approve(args) => {
            let follow = plan::Follow { wait: args.wait, timeout: args.timeout };
            let agent = cli.kube.agent_namespace.as_deref();
            plan::verdict(&conn, &args.name, Verdict::Approve, args.plan.as_deref(), follow, agent).await
        }
        Command::Reject { name, plan } => {
            let follow = plan::Follow { wait: false, timeout: std::time::Duration::ZERO };
            plan::verdict(&conn, &name, Verdict::Reject, plan.as_deref(), follow, None).await
        }
        Command::ShowPlan { name, output } => plan::show(&conn, &name, output).await,
        Command::Outputs { name, output, show_sensitive } => outputs::run(&conn, &name, output, show_sensitive).await,
        Command::Credentials { name, reveal, output } => credentials::run(&conn, &name, reveal, output).await,
        Command::Logs { name, run, follow } => logs::run(&conn, &name, run, follow).await,
        Command::Suspend(target) => suspend::run(&conn, target, true).await,
        Command::Resume(target) => suspend::run(&conn, target, false).await,
        Command::Version | Command::Tui { .. } | Command::Completion { .. } => {
            Err(CliError::Other("internal: this command does not use commands::run".into()))
        }
    }
}

/// The Terraform a command acts on by name (`get NAME` lists, so it is not one of them).
fn named(command: &Command) -> Option<&str> {
    match command {
        Command::Describe { name }
        | Command::Sync { name, .. }
        | Command::Resync { name, .. }
        | Command::Outputs { name, .. }
        | Command::Credentials { name, .. }
        | Command::Logs { name, .. }
        | Command::Plan { name, .. }
        | Command::ShowPlan { name, .. }
        | Command::Reject { name, .. } => Some(name),
        Command::Approve(args) => Some(&args.name),
        Command::Suspend(target) | Command::Resume(target) => target.name.as_deref(),
        _ => None,
    }
}

pub async fn connect(flags: &KubeFlags) -> Result<Connection, CliError> {
    kube_client::connect(flags).await
}

/// The Terraform API in the command's namespace.
pub fn namespaced(conn: &Connection) -> Api<Terraform> {
    Api::namespaced(conn.client.clone(), &conn.namespace)
}

/// The Terraform API over the scope (`-A`: every namespace).
pub fn scoped(conn: &Connection) -> Api<Terraform> {
    match conn.scope() {
        Some(namespace) => Api::namespaced(conn.client.clone(), namespace),
        None => Api::all(conn.client.clone()),
    }
}

/// Lists the Terraforms in scope; a 404 means the CRD is missing, a 400 a bad `-l` selector.
pub async fn list(conn: &Connection, params: &ListParams) -> Result<Vec<Terraform>, CliError> {
    match scoped(conn).list(params).await {
        Ok(list) => Ok(list.items),
        Err(e) if errors::is_not_found(&e) => Err(CliError::CrdMissing),
        Err(kube::Error::Api(status)) if status.code == 400 && params.label_selector.is_some() => {
            Err(CliError::BadSelector {
                selector: params.label_selector.clone().unwrap_or_default(),
                message: status.message.clone(),
            })
        }
        Err(e) => Err(CliError::api(e, "list", RESOURCE, conn.scope())),
    }
}

/// Gets one Terraform; on 404 tells a missing CRD from a missing object (with similar names).
/// With `-A` the name is looked for in every namespace: it must be in exactly one.
pub async fn get(conn: &Connection, name: &str) -> Result<Terraform, CliError> {
    if conn.all_namespaces {
        return get_anywhere(conn, name).await;
    }
    match namespaced(conn).get(name).await {
        Ok(object) => Ok(object),
        Err(e) if errors::is_not_found(&e) => Err(not_found(conn, name).await),
        Err(e) => Err(CliError::api(e, "get", RESOURCE, Some(&conn.namespace))),
    }
}

/// `-A NAME`: the one object of that name in any namespace.
async fn get_anywhere(conn: &Connection, name: &str) -> Result<Terraform, CliError> {
    let all = list(conn, &ListParams::default()).await?;
    let (mut named, others): (Vec<Terraform>, Vec<Terraform>) =
        all.into_iter().partition(|o| o.metadata.name.as_deref() == Some(name));
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => Err(CliError::NotFound {
            name: name.to_owned(),
            namespace: None,
            similar: errors::similar_names(name, others.iter().filter_map(|o| o.metadata.name.as_deref())),
            elsewhere: Vec::new(),
        }),
        _ => {
            let namespaces: Vec<String> = named.iter().filter_map(|o| o.metadata.namespace.clone()).collect();
            Err(CliError::Usage(format!(
                "terraform \"{name}\" exists in several namespaces ({}): pick one with -n instead of -A",
                namespaces.join(", ")
            )))
        }
    }
}

/// Why `name` is not there: the CRD is missing, or here are the namespaces holding that name
/// (when the user may list them) and the names that are in this one.
async fn not_found(conn: &Connection, name: &str) -> CliError {
    let elsewhere: Vec<String> = Api::<Terraform>::all(conn.client.clone())
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .map(|l| l.items.into_iter().filter_map(|o| o.metadata.namespace).collect())
        .unwrap_or_default();
    match namespaced(conn).list(&ListParams::default()).await {
        Err(e) if errors::is_not_found(&e) => CliError::CrdMissing,
        listed => {
            let names: Vec<String> =
                listed.map(|l| l.items.into_iter().filter_map(|o| o.metadata.name).collect()).unwrap_or_default();
            CliError::NotFound {
                name: name.to_owned(),
                namespace: Some(conn.namespace.clone()),
                similar: errors::similar_names(name, names.iter().map(String::as_str)),
                elsewhere,
            }
        }
    }
}

/// A JSON merge patch of one Terraform (only the fields given change).
pub async fn merge_patch(conn: &Connection, name: &str, patch: &serde_json::Value) -> Result<Terraform, CliError> {
    let result = namespaced(conn).patch(name, &PatchParams::default(), &Patch::Merge(patch)).await;
    patched(conn, name, result).await
}

/// A merge patch carrying `metadata.resourceVersion`, which the server applies only if the
/// object is still at that version: `None` when it changed meanwhile (409 Conflict).
pub async fn merge_patch_unchanged(
    conn: &Connection,
    name: &str,
    patch: &serde_json::Value,
) -> Result<Option<Terraform>, CliError> {
    match namespaced(conn).patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        result => patched(conn, name, result).await.map(Some),
    }
}

/// A patch's outcome, its errors explained.
async fn patched(conn: &Connection, name: &str, result: Result<Terraform, kube::Error>) -> Result<Terraform, CliError> {
    match result {
        Ok(object) => Ok(object),
        Err(e) if errors::is_not_found(&e) => Err(not_found(conn, name).await),
        Err(e) => Err(CliError::api(e, "patch", RESOURCE, Some(&conn.namespace))),
    }
}

/// `namespace/name` of an object, for messages.
pub fn key(object: &Terraform) -> String {
    format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}
