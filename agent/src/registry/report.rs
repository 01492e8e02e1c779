//! What a scan reports: the shared [`Listing`] of a repository, and per resource its
//! [`Selection`] and [`ChosenImage`], as `status.lastScan` shows them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alustan_shared::RegistryScan;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use reqwest::header::HeaderValue;

use super::error::ScanError;
use super::reference::ImageRef;
use super::scan::DigestCell;
use super::select::Selection;

/// One listing of a repository's tags.
#[derive(Debug)]
pub struct Listing {
    /// Every tag, each once, in registry order.
    pub tags: Vec<String>,
    /// When the listing started.
    pub time: jiff::Timestamp,
    /// Tag pages fetched.
    pub pages: u32,
    /// HTTP requests the listing sent (pages, retries and auth retries; not the handshake).
    pub requests: u32,
    /// How long the listing took.
    pub duration: Duration,
    pub(crate) started: Instant,
    /// The listing's authorization, reused to resolve digests (a sensitive header value:
    /// `Debug` shows `Sensitive`).
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) digests: Mutex<HashMap<String, DigestCell>>,
}

/// The image a Job will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenImage {
    /// The tag exactly as in the registry.
    pub tag: String,
    /// Its manifest digest at scan time.
    pub digest: String,
    /// `repository@digest`, e.g. `docker.io/alustan/infra@sha256:…`.
    pub reference: String,
}

/// One resource's view of a scan: the shared listing, its own selection, the pinned image.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub image: ImageRef,
    pub listing: Arc<Listing>,
    pub selection: Selection,
    /// `None` when no tag satisfies the constraint (see [`ScanReport::chosen`]).
    pub chosen: Option<ChosenImage>,
}

impl ScanReport {
    /// The chosen image, or the "no tag satisfies the constraint" error (with the newest tags
    /// seen) for the resource's status.
    pub fn chosen(&self) -> Result<&ChosenImage, ScanError> {
        self.chosen.as_ref().ok_or_else(|| ScanError::NoMatchingTag {
            image: self.image.canonical(),
            constraint: self.selection.constraint.clone(),
            tag_count: self.selection.tag_count,
            newest: self.selection.newest_seen.clone(),
        })
    }

    /// `status.lastScan`.
    pub fn to_status(&self) -> RegistryScan {
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        RegistryScan {
            time: Time(self.listing.time),
            image: self.image.canonical(),
            constraint: self.selection.constraint.clone(),
            tag_count: count(self.selection.tag_count),
            matching_count: count(self.selection.matching_count),
            newest_matching: self.selection.newest_matching.clone(),
            rejected: self.selection.rejected.clone(),
            selected_tag: self.chosen.as_ref().map(|c| c.tag.clone()),
            selected_digest: self.chosen.as_ref().map(|c| c.digest.clone()),
        }
    }
}
