//! `version`: the plugin's version, the agent's health (from its Lease) and the agent's version
//! (from its Deployment or Pod). What cannot be seen is said, never an error.

use jiff::Timestamp;

use crate::agent;
use crate::cli::KubeFlags;
use crate::errors::CliError;

pub async fn run(flags: &KubeFlags) -> Result<(), CliError> {
    crate::outln!("kubectl-alustan {}", env!("CARGO_PKG_VERSION"));
    let conn = match super::connect(flags).await {
        Ok(conn) => conn,
        Err(e) => {
            crate::outln!("agent: not reachable ({})", e.to_string().lines().next().unwrap_or_default());
            return Ok(());
        }
    };
    let namespace = flags.agent_namespace.as_deref();
    let health = agent::health(&conn.client, namespace).await;
    crate::outln!("agent: {}", health.describe(Timestamp::now()));
    match agent::version(&conn.client, namespace).await {
        Ok(version) => crate::outln!("agent version: {version}"),
        Err(why) => crate::outln!("agent version: {why}"),
    }
    Ok(())
}
