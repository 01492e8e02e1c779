//! `alustan-agent`: the reconcile loop, run against the current kubeconfig (in a cluster, its
//! ServiceAccount). `/metrics`, `/healthz` and `/readyz` on `--metrics-addr`. With
//! `--leader-elect` (the default) the controller runs only while this process holds the Lease;
//! losing it exits non-zero (Kubernetes restarts the Pod as a standby), SIGTERM stops the
//! controller and releases the Lease.

use std::process::ExitCode;
use std::sync::Arc;

use alustan_agent::config::{Config, LogFormat};
use alustan_agent::error::StartupError;
use alustan_agent::leader::ElectionConfig;
use alustan_agent::{Context, check_crd, metrics, registry, run, run_with_leader_election};
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init(),
    }
    // One rustls provider (ring) for kube and the registry client, installed before either.
    registry::install_crypto_provider();
    match start(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(reason = err.metric_label(), error = %err, "alustan-agent stopped");
            ExitCode::FAILURE
        }
    }
}

async fn start(config: Config) -> Result<(), StartupError> {
    let client = kube::Client::try_default().await?;
    // The configuration first (no API call): a bad flag is reported before anything else.
    let election = config.leader_elect.then(|| ElectionConfig::from_config(&config, &client));
    let ctx = Arc::new(Context::new(client, config)?);
    check_crd(&ctx.client).await?;
    let listener = tokio::net::TcpListener::bind(ctx.config.metrics_addr).await.map_err(|err| {
        StartupError::Config(format!("cannot listen on --metrics-addr {}: {err}", ctx.config.metrics_addr))
    })?;
    tokio::spawn(metrics::serve(listener, Arc::clone(&ctx)));
    // Ready = the process is healthy, leader or standby (a standby must not be restarted).
    ctx.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "alustan-agent started");
    if let Some(election) = election {
        run_with_leader_election(ctx, election, shutdown_signal()).await?;
    } else {
        ctx.metrics.set_leader(true);
        run(ctx, shutdown_signal()).await;
    }
    tracing::info!("alustan-agent stopped");
    Ok(())
}

/// SIGTERM (Kubernetes) or Ctrl-C: stop taking work and finish what is in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
