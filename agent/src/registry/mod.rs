//! Registry scanning and version selection.
//!
//! ```text
//! imageName + provider ──reference──▶ ImageRef ─┐
//! docker config.json ──credentials──▶ Credentials ├─▶ Scanner::poll ─▶ ScanReport ─▶ status.lastScan
//! semanticVersion ─────select──────▶ Constraint ─┘      │ (tags: one listing per repository and
//!                                                        │  credentials per interval, single-flight)
//!                                                        └─▶ ChosenImage: tag + digest + `repo@sha256:…`
//! ```
//!
//! - [`reference`]: image name rules (Docker Hub default, `library/`, hosts, providers).
//! - [`credentials`]: docker `config.json` Secrets; secret values never printed.
//! - [`client`]: HTTP, timeouts, retries (`Retry-After`), auth handshake, insecure registries.
//! - [`tags`]: every tag, following `Link` pagination.
//! - [`policy`]: `semanticVersion`, `policy`, `order` and `filterTags`, parsed.
//! - [`select`]: the choice and its explanation (the prerelease and build-metadata
//!   rules are documented there).
//! - [`digest`]: tag → manifest digest.
//! - [`report`]: what a scan reports ([`ScanReport`], `status.lastScan`).
//! - [`scan`]: the shared, cached, single-flight [`Scanner`], bounded by a scan deadline.
//! - [`hosts`]: per registry host, a bounded pool of scans and a backoff when it stops answering.
//! - [`background`]: [`Scanner::poll`], scans outside the reconcile loop that wake the resource.

pub mod background;
pub mod client;
pub mod credentials;
pub mod digest;
pub mod error;
mod hosts;
pub mod policy;
pub mod reference;
pub mod report;
pub mod retry;
pub mod scan;
pub mod select;
pub mod tags;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod testing;

pub use background::{OwnedScanRequest, ScanPoll, WaiterId};
pub use client::{ClientConfig, ClientSetupError, RegistryClient, install_crypto_provider};
pub use credentials::{Credentials, DockerConfig, Secret, SecretSource, credentials_for};
pub use error::{Activity, ScanError};
pub use reference::ImageRef;
pub use retry::RetryPolicy;
pub use scan::{ChosenImage, Listing, ScanReport, ScanRequest, ScanSettings, Scanner};
pub use select::{Constraint, RejectionCounts, Selection, select};
pub use tags::TagList;
