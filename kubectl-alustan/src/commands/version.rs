//! `version`: the plugin's version, the agent's health (from its Lease) and the agent's version
//! (from its Deployment or Pod). What cannot be seen is said, never an error.

use jiff::Timestamp;

use crate::agent;
use crate::cli::KubeFlags;
use crate::errors::CliError;

pub async fn run(flags: &KubeFlags) -> Result<(), CliError> {
    println!("kubectl-alustan {}", env!("CARGO_PKG_VERSION"));
    let conn = match super::connect(flags).await {
        Ok(conn) => conn,
        Err(e) => {
            println!("agent: not reachable ({})", e.to_string().lines().next().unwrap_or_default());
            return Ok(());
        }
    };
    let namespace = flags.agent_namespace.as_deref();
    let health = agent::health(&conn.client, namespace).await;
    println!("agent: {}", health.describe(Timestamp::now()));
    match agent::version(&conn.client, namespace).await {
        Ok(version) => println!("agent version: {version}"),
        Err(why) => println!("agent version: {why}"),
    }
    Ok(())
}
