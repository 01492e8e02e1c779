//! Registries that misbehave, scripted with [`FakeRegistry`]: pagination that loops or never
//! ends, hosts that hang, the per-host pool, the host backoff, and [`Scanner::poll`]'s
//! hand-over of background results. Bounds are generous; assertions are on counts and order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::sync::mpsc;

use super::testing::{Answer, FakeRegistry, digest_of, scanner};
use super::{
    Activity, ClientConfig, Constraint, Credentials, ImageRef, OwnedScanRequest, RegistryClient, ScanError, ScanPoll,
    ScanReport, ScanSettings, Scanner, WaiterId,
};

const HOUR: Duration = Duration::from_secs(3600);
/// Far beyond what any bounded step here should take, even on a loaded machine.
const SLACK: Duration = Duration::from_secs(10);

fn request(host: &str, repository: &str, constraint: &str) -> OwnedScanRequest {
    OwnedScanRequest {
        image: ImageRef::parse(&format!("{host}/{repository}"), None).unwrap(),
        credentials: Credentials::anonymous(),
        constraint: Constraint::parse(constraint).unwrap(),
        max_age: HOUR,
        force: false,
    }
}

async fn scan(scanner: &Scanner, request: &OwnedScanRequest) -> Result<ScanReport, ScanError> {
    scanner.scan(request.as_request()).await
}

fn settings() -> ScanSettings {
    ScanSettings { deadline: Duration::from_secs(30), ..ScanSettings::default() }
}

/// Tag pages `?n=1000`, `?n=1000&last=<page>`…, each linking to `next(page)`.
async fn paging(next: impl Fn(u32) -> Option<u32> + Send + Sync + 'static, delay: Duration) -> FakeRegistry {
    FakeRegistry::start(move |_, path| {
        let page: u32 = path.split("last=").nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        let link = next(page).map(|n| {
            if n == 0 {
                "/v2/team/infra/tags/list?n=1000".to_owned()
            } else {
                format!("/v2/team/infra/tags/list?n=1000&last={n}")
            }
        });
        let tags = Answer::Tags { tags: vec![format!("1.0.{page}")], next: link };
        Answer::After(delay, Box::new(tags))
    })
    .await
}

#[tokio::test]
async fn pagination_looping_a_b_a_stops_at_the_first_repeated_url() {
    // Page 0 → page 1 → page 0 again: not a self-link, which was all that used to be caught.
    let server = paging(|page| Some(1 - page.min(1)), Duration::ZERO).await;
    let host = server.host();
    let scanner = scanner(&[&host], settings());
    let err = scan(&scanner, &request(&host, "team/infra", "*")).await.unwrap_err();
    let first = format!("http://{host}/v2/team/infra/tags/list?n=1000");
    assert_eq!(
        err,
        ScanError::Pagination {
            registry: host.clone(),
            repository: "team/infra".into(),
            pages: 2,
            next: first.clone(),
            looped_to: Some(1),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "registry {host} sent tag pages for team/infra that loop: page 2 links to {first}, already fetched as \
             page 1; listing stopped"
        )
    );
    assert_eq!(server.count("/tags/list"), 2, "no page fetched twice: {:?}", server.requests());
    assert_eq!(err.metric_label(), "pagination");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn pagination_that_never_ends_stops_at_the_page_cap() {
    let server = paging(|page| Some(page + 1), Duration::ZERO).await;
    let host = server.host();
    let config = ClientConfig { insecure_registries: vec![host.clone()], max_tag_pages: 25, ..ClientConfig::default() };
    let scanner = Scanner::with_settings(RegistryClient::new(config).unwrap(), settings());
    let err = scan(&scanner, &request(&host, "team/infra", "*")).await.unwrap_err();
    let ScanError::Pagination { pages: 25, looped_to: None, ref next, .. } = err else { panic!("{err:?}") };
    assert_eq!(next, &format!("http://{host}/v2/team/infra/tags/list?n=1000&last=25"));
    assert!(err.to_string().contains("do not end: stopped after 25 pages (the limit)"), "{err}");
    assert_eq!(server.count("/tags/list"), 25);
}

#[tokio::test]
async fn slow_endless_pagination_stops_at_the_scan_deadline_naming_the_page() {
    let server = paging(|page| Some(page + 1), Duration::from_millis(40)).await;
    let host = server.host();
    let deadline = Duration::from_millis(800);
    let scanner = scanner(&[&host], ScanSettings { deadline, ..settings() });
    let started = Instant::now();
    let err = scan(&scanner, &request(&host, "team/infra", "*")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= deadline && elapsed < deadline + SLACK, "{elapsed:?}");
    let ScanError::Deadline { activity: Activity::Listing { page, ref url }, .. } = err else { panic!("{err:?}") };
    assert!(page > 1, "several pages before the deadline: {page}");
    // Every page before the one named was fetched and none after it; the named page's own
    // request may not have reached the server when the deadline struck (seen under CPU load).
    let named = usize::try_from(page).unwrap();
    let fetched = server.count("/tags/list");
    assert!(fetched == named || fetched == named - 1, "stopped on the page named: {fetched} requests, page {page}");
    assert!(url.ends_with(&format!("last={}", page - 1)), "{url}");
    assert_eq!(
        err.to_string(),
        format!(
            "registry {host} did not finish listing team/infra within 800ms (the scan deadline; waiting for tag \
             page {page}: {url})"
        )
    );
    assert_eq!(err.metric_label(), "deadline");
}

/// A server that hangs while `hung` is set, and serves `1.0.0` otherwise.
async fn switchable(hung: Arc<AtomicBool>) -> FakeRegistry {
    FakeRegistry::start(move |_, path| {
        if hung.load(Ordering::SeqCst) {
            Answer::Hang
        } else if path.contains("/tags/list") {
            Answer::Tags { tags: vec!["1.0.0".into()], next: None }
        } else {
            Answer::Digest(digest_of("1.0.0"))
        }
    })
    .await
}

#[tokio::test]
async fn a_hung_host_fails_at_the_deadline_then_fails_fast_until_its_backoff_ends() {
    let hung = Arc::new(AtomicBool::new(true));
    let server = switchable(Arc::clone(&hung)).await;
    let host = server.host();
    let deadline = Duration::from_millis(500);
    let settings = ScanSettings { deadline, host_backoff_initial: Duration::from_millis(300), ..settings() };
    let scanner = scanner(&[&host], settings);
    let request = request(&host, "team/infra", "*");

    let started = Instant::now();
    let err = scan(&scanner, &request).await.unwrap_err();
    assert!(started.elapsed() >= deadline && started.elapsed() < deadline + SLACK, "{:?}", started.elapsed());
    assert!(matches!(err, ScanError::Deadline { activity: Activity::Listing { page: 1, .. }, .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("registry {host} did not finish listing team/infra within 500ms")));
    let sent = server.requests().len();

    // Within the pause: an error at once, nothing sent, the next try named; poll the same.
    let err = scan(&scanner, &request).await.unwrap_err();
    let ScanError::HostBackoff { failures: 1, next_try, ref cause, .. } = err else { panic!("{err:?}") };
    assert!(matches!(**cause, ScanError::Deadline { .. }), "{cause:?}");
    assert!(err.to_string().contains(&format!("paused until {next_try}")), "{err}");
    let poll = scanner.poll(request.clone(), WaiterId::new("w"), || {});
    assert!(matches!(poll, ScanPoll::Ready(Err(ScanError::HostBackoff { .. }))), "{poll:?}");
    assert_eq!(scanner.scans_started(), 0, "no background scan for a paused host");
    assert_eq!(server.requests().len(), sent, "nothing reached the host");

    // After the pause the host is tried again; an answer resumes it for good.
    hung.store(false, Ordering::SeqCst);
    wait_until(next_try).await;
    assert_eq!(scan(&scanner, &request).await.unwrap().chosen().unwrap().tag, "1.0.0");
    // A new outage starts counting from one again.
    hung.store(true, Ordering::SeqCst);
    let forced = OwnedScanRequest { force: true, ..request.clone() };
    assert!(matches!(scan(&scanner, &forced).await, Err(ScanError::Deadline { .. })));
    assert!(matches!(scan(&scanner, &forced).await, Err(ScanError::HostBackoff { failures: 1, .. })));
}

async fn wait_until(at: jiff::Timestamp) {
    let left = at.duration_since(jiff::Timestamp::now());
    tokio::time::sleep(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_per_host_scans_talk_to_one_host_at_once() {
    let server = FakeRegistry::start(|_, path| {
        let answer = if path.contains("/tags/list") {
            Answer::Tags { tags: vec!["1.0.0".into()], next: None }
        } else {
            Answer::Digest(digest_of("1.0.0"))
        };
        Answer::After(Duration::from_millis(100), Box::new(answer))
    })
    .await;
    let host = server.host();
    let scanner = scanner(&[&host], ScanSettings { per_host: 2, ..settings() });
    // Eight repositories: eight listings (no single-flight sharing) and eight digests.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (scanner, request) = (scanner.clone(), request(&host, &format!("team/r{i}"), "*"));
            tokio::spawn(async move { scan(&scanner, &request).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().chosen().unwrap().digest, digest_of("1.0.0"));
    }
    assert_eq!(server.count("/tags/list"), 8);
    assert_eq!(server.count("/manifests/"), 8);
    assert_eq!(server.max_in_flight(), 2, "the pool was used, and never exceeded");
}

/// Polls until `Ready`, waiting for a wake between polls.
async fn poll_ready(
    scanner: &Scanner,
    request: &OwnedScanRequest,
    waiter: &str,
    wakes: &mut mpsc::UnboundedReceiver<String>,
    tx: &mpsc::UnboundedSender<String>,
) -> Result<ScanReport, ScanError> {
    loop {
        let wake = {
            let (tx, waiter) = (tx.clone(), waiter.to_owned());
            move || tx.send(waiter).unwrap()
        };
        match scanner.poll(request.clone(), WaiterId::new(waiter), wake) {
            ScanPoll::Ready(result) => return result,
            ScanPoll::Pending { .. } => {
                let woken = tokio::time::timeout(SLACK, wakes.recv()).await.unwrap().unwrap();
                assert_eq!(woken, waiter);
            }
        }
    }
}

fn slow_healthy(delay: Duration) -> impl Fn(&Method, &str) -> Answer + Send + Sync + 'static {
    move |_, path| {
        let answer = if path.contains("/tags/list") {
            Answer::Tags { tags: vec!["1.0.0".into(), "2.0.0".into()], next: None }
        } else {
            Answer::Digest(digest_of(path.rsplit('/').next().unwrap()))
        };
        Answer::After(delay, Box::new(answer))
    }
}

#[tokio::test]
async fn poll_scans_in_the_background_and_hands_the_result_over_once() {
    let server = FakeRegistry::start(slow_healthy(Duration::from_millis(100))).await;
    let host = server.host();
    let scanner = scanner(&[&host], settings());
    let (tx, mut wakes) = mpsc::unbounded_channel();
    let request = request(&host, "team/infra", "^1");

    let first = scanner.poll(request.clone(), WaiterId::new("a"), {
        let tx = tx.clone();
        move || tx.send("a".to_owned()).unwrap()
    });
    let ScanPoll::Pending { queued: false, since } = first else { panic!("{first:?}") };
    // Polled again while pending: the same scan, nothing new started.
    let again = scanner.poll(request.clone(), WaiterId::new("a"), {
        let tx = tx.clone();
        move || tx.send("again".into()).unwrap()
    });
    assert!(matches!(again, ScanPoll::Pending { since: s, .. } if s == since), "{again:?}");
    assert_eq!((scanner.scans_started(), scanner.scans_running()), (1, 1));

    assert_eq!(tokio::time::timeout(SLACK, wakes.recv()).await.unwrap().as_deref(), Some("a"));
    let report = poll_ready(&scanner, &request, "a", &mut wakes, &tx).await.unwrap();
    assert_eq!(report.chosen().unwrap().tag, "1.0.0");
    assert_eq!(scanner.scans_running(), 0);
    // Taken once; the next poll is answered from the cache without a task or a request.
    let cached = scanner.poll(request.clone(), WaiterId::new("a"), || panic!("answered at once"));
    assert!(matches!(&cached, ScanPoll::Ready(Ok(r)) if r.chosen().unwrap().tag == "1.0.0"), "{cached:?}");
    assert_eq!(scanner.scans_started(), 1);
    assert_eq!((server.count("/tags/list"), server.count("/manifests/")), (1, 1));
    assert!(wakes.try_recv().is_err(), "one wake in all");
}

#[tokio::test]
async fn a_changed_request_never_gets_the_old_requests_result() {
    let server = FakeRegistry::start(slow_healthy(Duration::from_millis(200))).await;
    let host = server.host();
    let scanner = scanner(&[&host], settings());
    let (tx, mut wakes) = mpsc::unbounded_channel();
    let (v1, v2) = (request(&host, "team/infra", "^1"), request(&host, "team/infra", "^2"));

    // Changed while running: the old task is cancelled (its wake never comes).
    let old = scanner.poll(v1.clone(), WaiterId::new("a"), {
        let tx = tx.clone();
        move || tx.send("old".into()).unwrap()
    });
    assert!(matches!(old, ScanPoll::Pending { .. }));
    let report = poll_ready(&scanner, &v2, "a", &mut wakes, &tx).await.unwrap();
    assert_eq!(report.chosen().unwrap().tag, "2.0.0");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(wakes.try_recv().is_err(), "the cancelled scan never wakes");

    // Changed after the result was stored: the stored result (of ^1) is dropped, not handed over.
    let (tx1, mut wakes1) = mpsc::unbounded_channel();
    let stored = scanner.poll(v1.clone(), WaiterId::new("b"), move || tx1.send(()).unwrap());
    assert!(matches!(stored, ScanPoll::Pending { .. }), "digest of 1.0.0 not resolved yet: {stored:?}");
    tokio::time::timeout(SLACK, wakes1.recv()).await.unwrap().unwrap();
    let report = poll_ready(&scanner, &v2, "b", &mut wakes, &tx).await.unwrap();
    assert_eq!(report.chosen().unwrap().tag, "2.0.0");
    // A rescan (force) is another request too: never answered by the cache or an older scan.
    let forced = OwnedScanRequest { force: true, ..v2.clone() };
    let listed = server.count("/tags/list");
    let report = poll_ready(&scanner, &forced, "b", &mut wakes, &tx).await.unwrap();
    assert_eq!(report.chosen().unwrap().tag, "2.0.0");
    assert_eq!(server.count("/tags/list"), listed + 1);
}

#[tokio::test]
async fn a_queued_scan_says_so_and_forget_cancels_it() {
    let server = FakeRegistry::start(|_, _| Answer::Hang).await;
    let host = server.host();
    let scanner = scanner(&[&host], ScanSettings { per_host: 1, ..settings() });
    let busy = scanner.poll(request(&host, "team/one", "*"), WaiterId::new("one"), || {});
    assert!(matches!(busy, ScanPoll::Pending { .. }));
    let waiting = request(&host, "team/two", "*");
    let queued = tokio::time::timeout(SLACK, async {
        loop {
            match scanner.poll(waiting.clone(), WaiterId::new("two"), || {}) {
                ScanPoll::Pending { queued: true, .. } => break,
                ScanPoll::Pending { .. } => tokio::time::sleep(Duration::from_millis(10)).await,
                ScanPoll::Ready(result) => panic!("{result:?}"),
            }
        }
    })
    .await;
    assert!(queued.is_ok(), "the second scan waits for the only slot");
    assert_eq!((server.count("/tags/list"), server.in_flight()), (1, 1));

    scanner.forget(&WaiterId::new("one"));
    scanner.forget(&WaiterId::new("two"));
    assert_eq!(scanner.scans_running(), 0);
    // The cancelled scan's request is abandoned (its connection closed), and the queued one
    // never started.
    tokio::time::timeout(SLACK, async {
        while server.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.count("/tags/list"), 1);
}

#[tokio::test]
async fn results_not_taken_are_pruned() {
    let server = FakeRegistry::healthy(&["1.0.0"]).await;
    let host = server.host();
    let scanner = scanner(&[&host], settings());
    let (tx, mut wakes) = mpsc::unbounded_channel();
    let poll = scanner.poll(request(&host, "team/infra", "*"), WaiterId::new("gone"), move || tx.send(()).unwrap());
    assert!(matches!(poll, ScanPoll::Pending { .. }));
    tokio::time::timeout(SLACK, wakes.recv()).await.unwrap().unwrap();
    assert_eq!(scanner.inner.waiters.len(), 1, "a result waits to be taken");
    scanner.prune(HOUR);
    assert_eq!(scanner.inner.waiters.len(), 1, "younger than the age given");
    scanner.prune(Duration::ZERO);
    assert_eq!(scanner.inner.waiters.len(), 0);
}

#[tokio::test]
async fn a_host_that_answers_with_errors_is_not_paused() {
    let server = FakeRegistry::start(|_, _| Answer::Status(503)).await;
    let host = server.host();
    let scanner = scanner(&[&host], settings());
    let request = request(&host, "team/infra", "*");
    for _ in 0..3 {
        let err = scan(&scanner, &request).await.unwrap_err();
        assert!(matches!(err, ScanError::RegistryStatus { status: 503, .. }), "{err:?}");
    }
    assert_eq!(server.count("/tags/list"), 6, "every scan reached the registry (two attempts each)");
}
