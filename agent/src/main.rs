//! `alustan-agent`: the reconcile loop, run against the current kubeconfig (in a cluster, its
//! ServiceAccount). `/metrics`, `/healthz` and `/readyz` on `--metrics-addr`. Not yet here:
//! leader election (run one replica).

use std::process::ExitCode;
use std::sync::Arc;

use alustan_agent::config::Config;
use alustan_agent::error::Error;
use alustan_agent::{Context, check_crd, metrics, registry, run};
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().json().with_env_filter(filter).init();
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

async fn start(config: Config) -> Result<(), Error> {
    let client = kube::Client::try_default().await?;
    check_crd(&client).await?;
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|err| Error::InvalidSpec(format!("cannot listen on --metrics-addr {}: {err}", config.metrics_addr)))?;
    let ctx = Arc::new(Context::new(client, config)?);
    tokio::spawn(metrics::serve(listener, Arc::clone(&ctx)));
    ctx.metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "alustan-agent started");
    run(ctx, shutdown_signal()).await;
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
