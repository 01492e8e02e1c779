//! `logs NAME [--run N] [-f]`: the pod log of a run from `status.history` (newest first), found
//! through the Job's standard `job-name` label.

use std::time::Duration;

use alustan_shared::Terraform;
use futures::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};

use crate::errors::CliError;
use crate::kube_client::Connection;

/// The Job of the `run`-th newest run (1 = latest).
pub fn job_of(object: &Terraform, run: u32) -> Result<String, CliError> {
    let history = object.status.as_ref().map(|s| s.history.as_slice()).unwrap_or_default();
    let index = usize::try_from(run).unwrap_or(usize::MAX).saturating_sub(1);
    history.get(index).map(|r| r.job_name.clone()).ok_or_else(|| {
        CliError::Other(format!(
            "{} has {} recorded run(s); --run {run} goes further back\n  fix: `kubectl alustan describe {}` lists the runs",
            super::key(object),
            history.len(),
            object.metadata.name.as_deref().unwrap_or_default()
        ))
    })
}

/// The newest pod of a Job.
pub async fn pod_of(conn: &Connection, namespace: &str, job: &str) -> Result<String, CliError> {
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .map_err(|e| CliError::api(e, "list", "pods", Some(namespace)))?;
    let newest = list.items.into_iter().max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    newest.and_then(|p| p.metadata.name).ok_or_else(|| {
        CliError::Other(format!(
            "no pod left for Job \"{job}\" in namespace \"{namespace}\" (deleted, or the Job was cleaned up after its TTL)"
        ))
    })
}

/// Opens the log stream of the `run`-th run's pod.
pub async fn open(
    conn: &Connection,
    object: &Terraform,
    run: u32,
    follow: bool,
) -> Result<impl futures::AsyncBufRead + use<>, CliError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| conn.namespace.clone());
    let job = job_of(object, run)?;
    let pod = pod_of(conn, &namespace, &job).await?;
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &namespace);
    pods.log_stream(&pod, &LogParams { follow, ..LogParams::default() })
        .await
        .map_err(|e| CliError::api(e, "get", "pods/log", Some(&namespace)))
}

/// Prints a Job's log prefixed with `│ `, waiting (up to a minute) for its pod to start; used
/// by `sync --wait`. Problems are printed, not returned: the wait goes on without the log.
pub async fn follow_job(conn: Connection, namespace: String, job: String) {
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last_error = String::new();
    while tokio::time::Instant::now() < deadline {
        // The pod may not exist, or its container may not have started, yet.
        let opened = match pod_of(&conn, &namespace, &job).await {
            Ok(pod) => pods
                .log_stream(&pod, &LogParams { follow: true, ..LogParams::default() })
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match opened {
            Ok(stream) => {
                let mut lines = std::pin::pin!(stream.lines());
                while let Some(Ok(line)) = lines.next().await {
                    println!("│ {line}");
                }
                return;
            }
            Err(error) => last_error = error,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("(no log for Job {job}: {last_error})");
}

pub async fn run(conn: &Connection, name: &str, run: u32, follow: bool) -> Result<(), CliError> {
    let object = super::get(conn, name).await?;
    let stream = open(conn, &object, run, follow).await?;
    let mut lines = std::pin::pin!(stream.lines());
    while let Some(line) = lines.next().await {
        let line = line.map_err(|e| CliError::Other(format!("reading the log: {e}")))?;
        println!("{line}");
    }
    Ok(())
}
