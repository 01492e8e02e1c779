//! Flags and environment variables; the names match the Helm chart's values.

use std::path::PathBuf;
use std::time::Duration;

use alustan_shared::duration::parse_duration;
use clap::{ArgAction, Parser, ValueEnum};

/// `alustan-agent`: delivers `Terraform` resources from OCI images of IaC scripts.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// How often to rescan registries and re-apply to correct drift (Go-style: `30m`, `6h`).
    #[arg(long, env = "SYNC_INTERVAL", default_value = "6h", value_parser = parse_duration)]
    pub sync_interval: Duration,

    /// A registry served over plain HTTP, as `HOST:PORT` (repeatable).
    #[arg(long = "insecure-registry", env = "INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,

    /// A docker `config.json` with agent-wide registry credentials.
    #[arg(long, env = "REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,

    /// `activeDeadlineSeconds` of every Job.
    #[arg(long, env = "JOB_ACTIVE_DEADLINE_SECONDS", default_value_t = 3600)]
    pub job_active_deadline_seconds: i64,

    /// `ttlSecondsAfterFinished` of every Job.
    #[arg(long, env = "JOB_TTL_SECONDS_AFTER_FINISHED", default_value_t = 86_400)]
    pub job_ttl_seconds_after_finished: i32,

    /// The ServiceAccount Jobs run as unless the resource names one.
    #[arg(long, env = "JOB_SERVICE_ACCOUNT")]
    pub job_service_account: Option<String>,

    /// `imagePullSecrets` of every Job (repeatable).
    #[arg(long = "job-image-pull-secret", env = "JOB_IMAGE_PULL_SECRETS", value_delimiter = ',')]
    pub job_image_pull_secrets: Vec<String>,

    /// A `tracing` filter, e.g. `info` or `alustan_agent=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// `json` (one object per line) or `text`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,

    /// Watch only this namespace (all namespaces when absent).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// First retry delay after a failed run; doubles per failure.
    #[arg(long, env = "RETRY_BASE", default_value = "30s", value_parser = parse_duration)]
    pub retry_base: Duration,

    /// Longest retry delay.
    #[arg(long, env = "RETRY_MAX", default_value = "30m", value_parser = parse_duration)]
    pub retry_max: Duration,

    /// Failed runs of the same inputs before giving up (Stalled) until something changes. At
    /// most 8: `status.history` keeps 10 runs, and the failures in a row must fit in it.
    #[arg(long, env = "RETRY_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub retry_attempts: u32,

    /// Limit for one registry request (connecting, the answer and its body).
    #[arg(long, env = "REGISTRY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub registry_timeout: Duration,

    /// Limit for a whole registry scan (tag pages and digest, every retry included). Scans run
    /// in the background, outside the reconcile slots; a scan past it is an error in status.
    #[arg(long, env = "SCAN_DEADLINE", default_value = "60s", value_parser = parse_duration)]
    pub scan_deadline: Duration,

    /// Scans talking to one registry host at once (the rest wait their turn, holding nothing),
    /// so one slow or hung registry cannot starve the others.
    #[arg(long, env = "SCANS_PER_REGISTRY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub scans_per_registry: u16,

    /// Elect one active agent through a Lease (`--leader-elect=false` runs at once).
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub leader_elect: bool,

    /// The `coordination.k8s.io` Lease of the election.
    #[arg(long, env = "LEASE_NAME", default_value = "alustan-agent")]
    pub lease_name: String,

    /// The Lease's namespace (the Pod's own); absent: the kubeconfig's default namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Where tools keep admin passwords, for `status.credentials`: a JSON array as the Helm
    /// value `credentials`; `[]` disables; absent: the built-in argocd and grafana sources.
    /// Parsed at start-up (see `gather::CredentialSource::parse_list`), so a bad value is
    /// reported without being echoed.
    #[arg(long, env = "CREDENTIAL_SOURCES", hide_env_values = true)]
    pub credential_sources: Option<String>,

    /// Let `dependsOn` and `variablesFrom` name a `Terraform` in another namespace. Off by
    /// default: such a reference reads another team's outputs, which namespaces usually
    /// separate (Helm value `allowCrossNamespaceRefs`; Flux's `--no-cross-namespace-refs`
    /// inverted).
    #[arg(long, env = "ALLOW_CROSS_NAMESPACE_REFS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_cross_namespace_refs: bool,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_helm_values() {
        let config = Config::parse_from(["alustan-agent", "--insecure-registry", "a:1", "--insecure-registry", "b:2"]);
        assert_eq!(config.sync_interval, Duration::from_secs(6 * 3600));
        assert_eq!(config.insecure_registries, ["a:1", "b:2"]);
        assert_eq!(config.retry_attempts, 5);
        assert!(config.leader_elect);
        assert_eq!(config.lease_name, "alustan-agent");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.credential_sources, None);
        assert!(!config.allow_cross_namespace_refs, "cross-namespace references need the opt-in");
        assert!(Config::parse_from(["alustan-agent", "--allow-cross-namespace-refs"]).allow_cross_namespace_refs);
    }

    #[test]
    fn leader_election_can_be_switched_off() {
        let off = Config::parse_from(["alustan-agent", "--leader-elect=false"]);
        assert!(!off.leader_elect);
        let bare = Config::parse_from(["alustan-agent", "--leader-elect"]);
        assert!(bare.leader_elect);
        let text = Config::parse_from(["alustan-agent", "--log-format", "text"]);
        assert_eq!(text.log_format, LogFormat::Text);
        assert!(Config::try_parse_from(["alustan-agent", "--log-format", "xml"]).is_err());
    }
}
