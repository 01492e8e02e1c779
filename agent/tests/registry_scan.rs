//! Registry scanning against the real `docker-registry` (distribution 2.8) of testenv. Each
//! test starts its own registry (and proxies), so they run in parallel.
//!
//! Request counts come from a recording proxy (`support/proxy.rs`) between the scanner and
//! the registry; it also injects 429/503 answers and hangs.

// Test helpers outside `#[test]` functions may panic too: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/proxy.rs"]
mod proxy;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alustan_agent::registry::{
    Activity, ClientConfig, Constraint, Credentials, DockerConfig, ImageRef, OwnedScanRequest, RegistryClient,
    RetryPolicy, ScanError, ScanPoll, ScanReport, ScanRequest, ScanSettings, Scanner, SecretSource, WaiterId,
};
use alustan_shared::{RejectedTag, RejectionReason};
use alustan_testenv::registry::{ImageConfig, Registry, RegistryOptions};
use base64::Engine as _;
use proxy::Proxy;

const REPO: &str = "team/infra";
const HOUR: Duration = Duration::from_secs(3600);

fn image_dir(content: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deploy"), format!("#!/bin/sh\necho {content}\n")).unwrap();
    dir
}

async fn registry() -> Registry {
    Registry::start(RegistryOptions::anonymous()).await.unwrap()
}

/// Retries within milliseconds so failure tests stay fast.
fn fast_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(5), max_backoff: Duration::from_secs(2) }
}

fn scanner_with(config: ClientConfig) -> Scanner {
    Scanner::new(RegistryClient::new(config).unwrap())
}

/// A scanner speaking plain HTTP to `hosts`.
fn scanner(hosts: &[&str]) -> Scanner {
    scanner_with(ClientConfig {
        insecure_registries: hosts.iter().map(|h| (*h).to_owned()).collect(),
        retry: fast_retry(),
        ..ClientConfig::default()
    })
}

fn image(host: &str) -> ImageRef {
    ImageRef::parse(&format!("{host}/{REPO}"), None).unwrap()
}

async fn scan_with(
    scanner: &Scanner,
    image: &ImageRef,
    credentials: &Credentials,
    constraint: &str,
    force: bool,
) -> Result<ScanReport, ScanError> {
    let constraint = Constraint::parse(constraint).unwrap();
    scanner.scan(ScanRequest { image, credentials, constraint: &constraint, max_age: HOUR, force }).await
}

async fn scan(scanner: &Scanner, image: &ImageRef, constraint: &str) -> Result<ScanReport, ScanError> {
    scan_with(scanner, image, &Credentials::anonymous(), constraint, false).await
}

fn rejected(tag: &str, reason: RejectionReason) -> RejectedTag {
    RejectedTag { tag: tag.into(), reason }
}

const BUILD_TAG: &str = "v1.2.2.2022-01-15t161730814Z.9eabf5b5";

#[tokio::test]
async fn picks_the_newest_match_keeping_the_v_prefix_and_pins_its_digest() {
    let registry = registry().await;
    let tags = ["v1.0.0", "1.0.2", "v1.0.3", "v1.0.4-rc.1", "v1.1.0", "latest", "production", BUILD_TAG];
    let dir = image_dir("infra");
    let pushed = registry.push_distinct(REPO, &tags, dir.path(), &ImageConfig::default()).await.unwrap();
    let host = registry.host_port();
    let scanner = scanner(&[host]);
    let image = image(host);

    let report = scan(&scanner, &image, "~1.0.0").await.unwrap();
    let chosen = report.chosen().unwrap();
    let v103 = &pushed.iter().find(|(tag, _)| tag == "v1.0.3").unwrap().1;
    assert_eq!(chosen.tag, "v1.0.3", "the original tag, `v` included");
    assert_eq!(&chosen.digest, v103, "the digest of what was pushed under v1.0.3");
    assert_eq!(chosen.digest, registry.resolve(REPO, "v1.0.3").await.unwrap());
    assert_eq!(chosen.reference, format!("{host}/{REPO}@{v103}"));

    let status = report.to_status();
    assert_eq!(status.image, format!("{host}/{REPO}"));
    assert_eq!((status.tag_count, status.matching_count), (8, 3));
    assert_eq!(status.newest_matching, ["v1.0.3", "1.0.2", "v1.0.0"]);
    assert_eq!(status.selected_tag.as_deref(), Some("v1.0.3"));
    assert_eq!(status.selected_digest.as_ref(), Some(v103));
    assert_eq!(
        status.rejected,
        [
            rejected("v1.1.0", RejectionReason::OutsideConstraint),
            rejected("v1.0.4-rc.1", RejectionReason::Prerelease),
            rejected(BUILD_TAG, RejectionReason::NotSemver),
            rejected("production", RejectionReason::NotSemver),
            rejected("latest", RejectionReason::NotSemver),
        ]
    );

    // Another constraint on the same repository reuses the listing; a prerelease is chosen
    // only when the constraint names one of the same major.minor.patch.
    let pre = scan(&scanner, &image, ">=1.0.4-rc.0, <1.1").await.unwrap();
    assert_eq!(pre.chosen().unwrap().tag, "v1.0.4-rc.1");
    assert_eq!(scan(&scanner, &image, "^1").await.unwrap().chosen().unwrap().tag, "v1.1.0");
    assert_eq!(scanner.listings_started(), 1, "one listing served three constraints");
}

#[tokio::test]
async fn no_matching_tag_reports_the_newest_tags_seen() {
    let registry = registry().await;
    let dir = image_dir("infra");
    let tags = ["1.0.0", "v2.0.0", "2.1.0-rc.1", "latest"];
    registry.push_dir(REPO, &tags, dir.path(), &ImageConfig::default()).await.unwrap();
    let scanner = scanner(&[registry.host_port()]);
    let report = scan(&scanner, &image(registry.host_port()), "^3").await.unwrap();
    let err = report.chosen().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no tag of {}/{REPO} satisfies \"^3\" (4 tags seen; newest: 2.1.0-rc.1, v2.0.0, 1.0.0, latest)",
            registry.host_port()
        )
    );
    let status = report.to_status();
    assert_eq!((status.tag_count, status.matching_count, status.selected_tag), (4, 0, None));
}

#[tokio::test]
async fn empty_repository_with_null_tags() {
    let registry = registry().await;
    let dir = image_dir("gone");
    registry.push_dir(REPO, &["1.0.0"], dir.path(), &ImageConfig::default()).await.unwrap();
    registry.delete_tag(REPO, "1.0.0").await.unwrap();
    let raw = registry.client().get(&format!("/v2/{REPO}/tags/list")).await.unwrap();
    assert!(raw.text().contains("\"tags\":null"), "the registry answers null: {}", raw.text());

    let scanner = scanner(&[registry.host_port()]);
    let report = scan(&scanner, &image(registry.host_port()), "*").await.unwrap();
    assert!(report.listing.tags.is_empty());
    let err = report.chosen().unwrap_err();
    assert!(err.to_string().ends_with("(0 tags seen; newest: none)"), "{err}");
    assert_eq!(err.metric_label(), "no_matching_tag");
}

#[tokio::test]
async fn missing_repository_is_unknown() {
    let registry = registry().await;
    let scanner = scanner(&[registry.host_port()]);
    let err = scan(&scanner, &image(registry.host_port()), "*").await.unwrap_err();
    assert_eq!(
        err,
        ScanError::UnknownRepository { registry: registry.host_port().to_owned(), repository: REPO.into() }
    );
    assert_eq!(err.to_string(), format!("repository {REPO} does not exist on {} (NAME_UNKNOWN)", registry.host_port()));
    assert!(!err.is_transient());
}

fn docker_config(host: &str, user: &str, password: &str) -> DockerConfig {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#);
    let source = SecretSource::SecretRef { namespace: "team".into(), name: "regcred".into() };
    DockerConfig::parse(source, json.as_bytes()).unwrap()
}

#[tokio::test]
async fn htpasswd_wrong_missing_and_right_credentials() {
    let registry = Registry::start(RegistryOptions::htpasswd("alice", "correct-horse")).await.unwrap();
    let host = registry.host_port();
    let dir = image_dir("private");
    registry.push_dir(REPO, &["1.0.0"], dir.path(), &ImageConfig::default()).await.unwrap();
    let scanner = scanner(&[host]);
    let image = image(host);

    let wrong = docker_config(host, "alice", "battery-staple-WRONG").credentials_for(host).unwrap();
    let err = scan_with(&scanner, &image, &wrong, "*", false).await.unwrap_err();
    assert_eq!(err.metric_label(), "unauthorized");
    assert_eq!(
        err.to_string(),
        format!(
            "registry {host} refused access to {REPO} (HTTP 401): check the credentials of user \"alice\" for {host} \
             in Secret team/regcred (key .dockerconfigjson)"
        )
    );
    assert!(!format!("{err:?}{wrong:?}").contains("battery-staple-WRONG"), "no secret in errors or Debug");

    let err = scan(&scanner, &image, "*").await.unwrap_err();
    assert!(err.to_string().contains("(HTTP 401): no registry credentials are configured"), "{err}");
    let other_host = docker_config("ghcr.io", "alice", "x").credentials_for(host).unwrap();
    let err = scan_with(&scanner, &image, &other_host, "*", false).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!("Secret team/regcred (key .dockerconfigjson) has no entry for {host}")),
        "{err}"
    );

    let right = docker_config(host, "alice", "correct-horse").credentials_for(host).unwrap();
    let report = scan_with(&scanner, &image, &right, "*", false).await.unwrap();
    assert_eq!(report.chosen().unwrap().tag, "1.0.0");
    assert_eq!(report.chosen().unwrap().digest, registry.resolve(REPO, "1.0.0").await.unwrap());
}

#[tokio::test]
async fn bearer_token_flow_through_a_token_realm() {
    let registry = registry().await;
    let dir = image_dir("tokened");
    let digest = registry.push_dir(REPO, &["2.0.0"], dir.path(), &ImageConfig::default()).await.unwrap();
    let proxy = Proxy::start(registry.host_port()).await;
    proxy.require_bearer("bob", "token-pass");
    let host = proxy.host_port();
    let scanner = scanner(&[&host]);
    let image = image(&host);

    let wrong = docker_config(&host, "bob", "not-the-pass").credentials_for(&host).unwrap();
    let err = scan_with(&scanner, &image, &wrong, "*", false).await.unwrap_err();
    assert_eq!(err.metric_label(), "unauthorized");
    assert!(err.to_string().contains("check the credentials of user \"bob\""), "{err}");
    assert!(!err.to_string().contains("not-the-pass"));

    proxy.clear();
    let right = docker_config(&host, "bob", "token-pass").credentials_for(&host).unwrap();
    let report = scan_with(&scanner, &image, &right, "*", false).await.unwrap();
    assert_eq!(report.chosen().unwrap().digest, digest);
    let requests = proxy.requests();
    assert_eq!(
        requests,
        [
            format!("GET /v2/{REPO}/tags/list?n=1000"),
            "GET /v2/".to_owned(),
            "GET /token?scope=repository%3Ateam%2Finfra%3Apull&service=alustan-test".to_owned(),
            format!("GET /v2/{REPO}/tags/list?n=1000"),
            format!("HEAD /v2/{REPO}/manifests/2.0.0"),
        ],
        "challenge, handshake, token, then the token is reused for the digest"
    );
}

#[tokio::test]
async fn a_re_pushed_tag_resolves_to_its_new_digest_on_the_next_scan() {
    let registry = registry().await;
    let (first_dir, second_dir) = (image_dir("first"), image_dir("second"));
    let config = ImageConfig::default();
    let first = registry.push_dir(REPO, &["v1.0.0"], first_dir.path(), &config).await.unwrap();
    let scanner = scanner(&[registry.host_port()]);
    let image = image(registry.host_port());
    let credentials = Credentials::anonymous();
    assert_eq!(scan(&scanner, &image, "^1").await.unwrap().chosen().unwrap().digest, first);

    let second = registry.push_dir(REPO, &["v1.0.0"], second_dir.path(), &config).await.unwrap();
    assert_ne!(first, second);
    // Within the interval the scan (listing and digest) is reused...
    assert_eq!(scan(&scanner, &image, "^1").await.unwrap().chosen().unwrap().digest, first);
    // ...the rescan annotation (force) lists and resolves again.
    let forced = scan_with(&scanner, &image, &credentials, "^1", true).await.unwrap();
    assert_eq!(forced.chosen().unwrap().digest, second);
    assert_eq!(forced.chosen().unwrap().digest, registry.resolve(REPO, "v1.0.0").await.unwrap());
    // So does an expired interval.
    let constraint = Constraint::parse("^1").unwrap();
    let request = ScanRequest {
        image: &image,
        credentials: &credentials,
        constraint: &constraint,
        max_age: Duration::ZERO,
        force: false,
    };
    scanner.scan(request).await.unwrap();
    assert_eq!(scanner.listings_started(), 3);

    // Pruning forgets listings older than the given age; the next scan lists again.
    scanner.prune(HOUR);
    assert_eq!(scanner.cached(), 1);
    scanner.prune(Duration::ZERO);
    assert_eq!(scanner.cached(), 0);
    scan(&scanner, &image, "^1").await.unwrap();
    assert_eq!(scanner.listings_started(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_scans_cause_one_listing_and_one_digest_request() {
    let registry = registry().await;
    let dir = image_dir("shared");
    let tags: Vec<String> = (0..40).map(|i| format!("v1.{i}.0")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let digest = registry.push_dir(REPO, &tag_refs, dir.path(), &ImageConfig::default()).await.unwrap();
    let proxy = Proxy::start(registry.host_port()).await;
    let host = proxy.host_port();
    let scanner = Arc::new(scanner(&[&host]));
    let image = Arc::new(image(&host));
    let barrier = Arc::new(tokio::sync::Barrier::new(20));

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (scanner, image, barrier) = (Arc::clone(&scanner), Arc::clone(&image), Arc::clone(&barrier));
            // Different resources, different constraints, same repository and credentials.
            let constraint = if i % 2 == 0 { "^1" } else { ">=1.5, <2" };
            tokio::spawn(async move {
                barrier.wait().await;
                scan(&scanner, &image, constraint).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        let report = task.await.unwrap();
        assert_eq!(report.chosen().unwrap().tag, "v1.39.0");
        assert_eq!(report.chosen().unwrap().digest, digest);
    }
    let requests = proxy.requests();
    assert_eq!(proxy.count(&format!("GET /v2/{REPO}/tags/list")), 1, "{requests:#?}");
    assert_eq!(proxy.count(&format!("HEAD /v2/{REPO}/manifests/v1.39.0")), 1, "{requests:#?}");
    assert_eq!(requests.len(), 2, "nothing else: an open registry needs no handshake: {requests:#?}");
    assert_eq!(scanner.listings_started(), 1);
}

#[tokio::test]
async fn pagination_follows_link_headers_until_the_end() {
    let registry = registry().await;
    let dir = image_dir("paged");
    let tags: Vec<String> = (0..50).map(|i| format!("1.{}.{}", i / 10, i % 10)).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    registry.push_dir(REPO, &tag_refs, dir.path(), &ImageConfig::default()).await.unwrap();
    let paging = registry.paging_proxy(7).await.unwrap();
    let proxy = Proxy::start(&paging).await;
    let host = proxy.host_port();

    for page_size in [Some(1000), Some(7), None] {
        proxy.clear();
        let scanner = scanner_with(ClientConfig {
            insecure_registries: vec![host.clone()],
            page_size,
            ..ClientConfig::default()
        });
        let report = scan(&scanner, &image(&host), "^1").await.unwrap();
        let seen: BTreeSet<&str> = report.listing.tags.iter().map(String::as_str).collect();
        assert_eq!(report.listing.tags.len(), 50, "every tag exactly once ({page_size:?})");
        assert_eq!(seen, tag_refs.iter().copied().collect());
        assert_eq!(report.chosen().unwrap().tag, "1.4.9");
        // ceil(50 / 7) pages, one request each.
        assert_eq!(report.listing.pages, 8);
        assert_eq!(report.listing.requests, 8);
        let pages: Vec<String> = proxy.requests().into_iter().filter(|r| r.contains("/tags/list")).collect();
        assert_eq!(pages.len(), 8, "{pages:#?}");
        assert!(pages[1].ends_with("last=1.0.6"), "{pages:#?}");
        eprintln!("page_size {page_size:?}: {} tag-list requests: {pages:?}", pages.len());
    }
}

#[tokio::test]
async fn retries_503_then_succeeds_and_gives_up_after_max_attempts() {
    let registry = registry().await;
    let dir = image_dir("flaky");
    registry.push_dir(REPO, &["1.0.0"], dir.path(), &ImageConfig::default()).await.unwrap();
    let proxy = Proxy::start(registry.host_port()).await;
    let host = proxy.host_port();
    let scanner = scanner(&[&host]);
    let image = image(&host);

    proxy.fail_tag_lists(2, 503, None);
    let report = scan(&scanner, &image, "*").await.unwrap();
    assert_eq!(report.chosen().unwrap().tag, "1.0.0");
    assert_eq!(proxy.count("/tags/list"), 3, "two 503s, then success");
    assert_eq!(report.listing.requests, 3);

    proxy.fail_tag_lists(10, 503, None);
    let err = scan_with(&scanner, &image, &Credentials::anonymous(), "*", true).await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.metric_label(), "registry_error");
    assert_eq!(
        err.to_string(),
        format!(
            "registry {host} answered HTTP 503 for {REPO} after 3 attempt(s): \
             {{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"injected fault\"}}]}}"
        )
    );
    // A failure is shared by its flight only: the next scan tries again.
    proxy.fail_tag_lists(0, 503, None);
    assert!(scan(&scanner, &image, "*").await.is_ok());
}

#[tokio::test]
async fn retry_after_is_honoured_and_too_long_a_pause_ends_the_retries() {
    let registry = registry().await;
    let dir = image_dir("limited");
    registry.push_dir(REPO, &["1.0.0"], dir.path(), &ImageConfig::default()).await.unwrap();
    let proxy = Proxy::start(registry.host_port()).await;
    let host = proxy.host_port();
    let scanner = scanner(&[&host]);
    let image = image(&host);

    proxy.fail_tag_lists(1, 429, Some("1"));
    let started = Instant::now();
    scan(&scanner, &image, "*").await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}, not the 1 s asked", started.elapsed());
    assert_eq!(proxy.count("/tags/list"), 2);

    proxy.fail_tag_lists(1, 429, Some("120"));
    let started = Instant::now();
    let err = scan_with(&scanner, &image, &Credentials::anonymous(), "*", true).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err,
        ScanError::RateLimited {
            registry: host.clone(),
            repository: REPO.into(),
            attempts: 1,
            retry_after: Some(Duration::from_secs(120))
        }
    );
    assert!(err.to_string().ends_with("after 1 attempt(s); it asks to retry after 120s"), "{err}");
}

#[tokio::test]
async fn unreachable_hung_and_non_insecure_registries_fail_cleanly() {
    // Nothing listens on a port we just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let scanner = scanner(&[&closed]);
    let err = scan(&scanner, &image(&closed), "*").await.unwrap_err();
    assert_eq!(err.metric_label(), "transport");
    assert!(err.to_string().contains("after 3 attempt(s)"), "{err}");
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");

    let registry = registry().await;
    let proxy = Proxy::start(registry.host_port()).await;
    proxy.hang();
    let host = proxy.host_port();
    let scanner = scanner_with(ClientConfig {
        insecure_registries: vec![host.clone()],
        request_timeout: Duration::from_millis(300),
        retry: RetryPolicy { max_attempts: 2, ..fast_retry() },
        ..ClientConfig::default()
    });
    let started = Instant::now();
    let err = scan(&scanner, &image(&host), "*").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(err.to_string().contains("after 2 attempt(s)") && err.to_string().contains("timed out"), "{err}");
    assert!(err.is_transient());

    // Without --insecure-registry the scanner speaks TLS, which a plain-HTTP registry refuses.
    let scanner = scanner_with(ClientConfig { retry: RetryPolicy::never(), ..ClientConfig::default() });
    let err = scan(&scanner, &image(registry.host_port()), "*").await.unwrap_err();
    assert_eq!(err.metric_label(), "transport", "{err}");
    assert!(err.to_string().contains(&format!("https://{}", registry.host_port())), "{err}");
}

/// Accepts connections and never answers (nor reads): the registry of the fault test.
struct Silent {
    addr: std::net::SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn({
            let accepted = Arc::clone(&accepted);
            async move {
                let mut open = Vec::new();
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    open.push(stream);
                }
            }
        });
        Self { addr, accepted, task }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_registry_does_not_delay_scans_of_a_healthy_one() {
    const HUNG_SCANS: usize = 6;
    const PER_HOST: usize = 2;
    let deadline = Duration::from_secs(3);
    let slack = Duration::from_secs(10);

    let registry = registry().await;
    let dir = image_dir("healthy");
    let digest = registry.push_dir(REPO, &["1.0.0"], dir.path(), &ImageConfig::default()).await.unwrap();
    let healthy = registry.host_port().to_owned();
    let silent = Silent::start().await;
    let hung = silent.addr.to_string();
    let client = RegistryClient::new(ClientConfig {
        insecure_registries: vec![healthy.clone(), hung.clone()],
        ..ClientConfig::default()
    })
    .unwrap();
    let settings = ScanSettings { deadline, per_host: PER_HOST, ..ScanSettings::default() };
    let scanner = Scanner::with_settings(client, settings);
    let (tx, mut wakes) = tokio::sync::mpsc::unbounded_channel::<String>();
    let poll = |request: &OwnedScanRequest, waiter: &str| {
        let (tx, name) = (tx.clone(), waiter.to_owned());
        scanner.poll(request.clone(), WaiterId::new(waiter), move || tx.send(name).unwrap())
    };
    let request = |host: &str, repository: &str| OwnedScanRequest {
        image: ImageRef::parse(&format!("{host}/{repository}"), None).unwrap(),
        credentials: Credentials::anonymous(),
        constraint: Constraint::parse("*").unwrap(),
        max_age: HOUR,
        force: false,
    };

    // Resources on the hung registry, each its own repository (no shared listing).
    let started = Instant::now();
    let hung_requests: Vec<_> = (0..HUNG_SCANS).map(|i| request(&hung, &format!("team/stuck{i}"))).collect();
    for (i, request) in hung_requests.iter().enumerate() {
        assert!(matches!(poll(request, &format!("hung{i}")), ScanPoll::Pending { .. }));
    }
    // A resource on the healthy registry is scanned at once and is the first one woken.
    let healthy_request = request(&healthy, REPO);
    assert!(matches!(poll(&healthy_request, "healthy"), ScanPoll::Pending { .. }));
    let first = tokio::time::timeout(slack, wakes.recv()).await.unwrap().unwrap();
    assert_eq!(first, "healthy");
    let ScanPoll::Ready(Ok(report)) = poll(&healthy_request, "healthy") else { panic!("the woken scan is ready") };
    assert_eq!(report.chosen().unwrap().digest, digest);
    let healthy_done = started.elapsed();
    // ...while every hung scan is still pending, and only the pool's share is at the registry.
    assert!(healthy_done < deadline, "healthy scan took {healthy_done:?}");
    let queued = || {
        let mut queued = 0;
        for (i, request) in hung_requests.iter().enumerate() {
            match poll(request, &format!("hung{i}")) {
                ScanPoll::Pending { queued: true, .. } => queued += 1,
                ScanPoll::Pending { .. } => {}
                ScanPoll::Ready(result) => panic!("hung{i} finished before its deadline: {result:?}"),
            }
        }
        queued
    };
    // (Every task may not have reached the pool yet on a loaded machine: look until it has.)
    while queued() < HUNG_SCANS - PER_HOST {
        assert!(started.elapsed() < deadline, "the rest wait for a slot of the hung host");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(queued(), HUNG_SCANS - PER_HOST, "the rest wait for a slot of the hung host");
    assert_eq!(scanner.scans_running(), HUNG_SCANS);

    // The hung scans end at the deadline (those talking to the registry) or at once after it
    // (those queued, as the host is now paused), all within deadline + slack.
    let mut woken = BTreeSet::new();
    while woken.len() < HUNG_SCANS {
        let name = tokio::time::timeout(deadline + slack, wakes.recv()).await.unwrap().unwrap();
        assert!(woken.insert(name.clone()), "woken twice: {name}");
    }
    let ended = started.elapsed();
    assert!(ended >= deadline && ended < deadline + slack, "{ended:?}");
    let (mut deadlines, mut paused) = (0, 0);
    for (i, request) in hung_requests.iter().enumerate() {
        let ScanPoll::Ready(Err(err)) = poll(request, &format!("hung{i}")) else { panic!("hung{i} is ready") };
        match &err {
            ScanError::Deadline { activity: Activity::Listing { page: 1, .. }, .. } => {
                assert_eq!(
                    err.to_string().split(" (").next().unwrap(),
                    format!("registry {hung} did not finish listing team/stuck{i} within 3s")
                );
                deadlines += 1;
            }
            ScanError::HostBackoff { cause, .. } if matches!(**cause, ScanError::Deadline { .. }) => paused += 1,
            other => panic!("hung{i}: {other:?}"),
        }
    }
    assert_eq!((deadlines, paused), (PER_HOST, HUNG_SCANS - PER_HOST));
    assert_eq!(silent.accepted(), PER_HOST, "never more than the pool at the hung registry");
    // The healthy host is not paused by the hung one's failures.
    let forced = OwnedScanRequest { force: true, ..healthy_request };
    assert!(matches!(poll(&forced, "healthy"), ScanPoll::Pending { .. }));
    assert_eq!(tokio::time::timeout(slack, wakes.recv()).await.unwrap().unwrap(), "healthy");
    assert!(matches!(poll(&forced, "healthy"), ScanPoll::Ready(Ok(_))));
    eprintln!("healthy scan done after {healthy_done:?}; hung scans ended after {ended:?}");
}

#[tokio::test]
async fn a_blocking_scan_of_a_silent_registry_ends_at_the_deadline() {
    let silent = Silent::start().await;
    let host = silent.addr.to_string();
    let client =
        RegistryClient::new(ClientConfig { insecure_registries: vec![host.clone()], ..ClientConfig::default() })
            .unwrap();
    let deadline = Duration::from_millis(700);
    let scanner = Scanner::with_settings(client, ScanSettings { deadline, ..ScanSettings::default() });
    let started = Instant::now();
    let err = scan(&scanner, &image(&host), "*").await.unwrap_err();
    assert!(started.elapsed() >= deadline && started.elapsed() < deadline + Duration::from_secs(10));
    assert_eq!(
        err.to_string(),
        format!(
            "registry {host} did not finish listing {REPO} within 700ms (the scan deadline; waiting for tag page 1: \
             http://{host}/v2/{REPO}/tags/list?n=1000)"
        )
    );
    assert!(err.is_transient());
}
