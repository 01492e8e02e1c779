//! Registry scanning figures (printed, never asserted):
//!
//! 1. tag selection over 10,000 tags: median time, and its ratio to merely parsing the same
//!    10,000 strings with `semver` in the same run;
//!    and over 10,000 build tags (`v1.2.2.2022-01-15t161730814Z.9eabf5b5`) through a
//!    `filterTags` pattern extracting the version (goal < 5 ms);
//! 2. a full scan (listing + selection + digest) of a 10,000-tag repository on the loopback
//!    `docker-registry`, directly (distribution 2.8 answers in one page) and through the
//!    testenv paging proxy at Docker Hub's page size (100): time and HTTP requests.
//!
//! Run: `cargo bench -p alustan-agent --bench registry`.

#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use alustan_agent::registry::{
    ClientConfig, Constraint, Credentials, ImageRef, RegistryClient, ScanRequest, Scanner, select, select::parse_tag,
};
use alustan_testenv::registry::{ImageConfig, Registry, RegistryOptions};
use proxy::Proxy;

const TAGS: usize = 10_000;
const RUNS: usize = 101;
const REPO: &str = "bench/infra";

fn main() -> Result<(), Box<dyn Error>> {
    selection()?;
    build_tag_selection()?;
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(full_scan())
}

/// A realistic mix: `v`-prefixed and bare releases, prereleases, and non-semver tags
/// (`latest`, build tags).
fn tag_mix(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i % 10 {
            0 => format!("1.{}.{}-rc.{}", i / 100, i % 7, i % 3),
            1 => format!("v1.2.2.2022-01-15t161730814Z.{i:08x}"),
            2 | 3 => format!("{}.{}.{}", i / 2000, (i / 20) % 100, i % 20),
            _ => format!("v{}.{}.{}", i / 2000, (i / 20) % 100, i % 20),
        })
        .chain(["latest".to_owned(), "production".to_owned()])
        .take(count)
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn time_runs(mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed()
            })
            .collect(),
    )
}

fn selection() -> Result<(), Box<dyn Error>> {
    let tags = tag_mix(TAGS);
    let constraint = Constraint::parse(">=1.2, <3")?;
    let parse_only = time_runs(|| {
        let parsed = tags.iter().filter_map(|t| parse_tag(black_box(t))).count();
        black_box(parsed);
    });
    let selecting = time_runs(|| {
        black_box(select(black_box(&tags), &constraint));
    });
    let result = select(&tags, &constraint);
    println!("selection over {} tags (median of {RUNS} runs):", tags.len());
    println!("  parse only (semver baseline): {parse_only:?}");
    println!(
        "  select + explain:             {selecting:?}  ({:.2}x the parse baseline; goal < 5 ms)",
        selecting.as_secs_f64() / parse_only.as_secs_f64()
    );
    println!(
        "  -> winner {:?}, {} matching, {} semver, rejected: {:?}",
        result.winner, result.matching_count, result.parsed_count, result.rejected_counts
    );
    Ok(())
}

/// 10,000 build tags: versions 1.0.0..1.9.49, 20 builds each, in a shuffled-looking order.
fn build_tags(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let (version, build) = (i / 20, (i * 7919) % 20);
            format!("v1.{}.{}.2022-01-{:02}t{:09}Z.{:08x}", version / 50, version % 50, 1 + build, build * 1000, i)
        })
        .collect()
}

fn build_tag_selection() -> Result<(), Box<dyn Error>> {
    let tags = build_tags(TAGS);
    let registry: alustan_shared::ContainerRegistry = serde_json::from_value(serde_json::json!({
        "imageName": REPO,
        "semanticVersion": "~1.4",
        "filterTags": {
            "pattern": r"^v(?P<version>\d+\.\d+\.\d+)\.(?P<build>\d{4}-\d{2}-\d{2}t\d{9}Z)\.(?P<sha>[0-9a-f]{8})$",
            "extract": "$version"
        }
    }))?;
    let constraint = Constraint::from_registry(&registry)?;
    let selecting = time_runs(|| {
        black_box(select(black_box(&tags), &constraint));
    });
    let result = select(&tags, &constraint);
    println!("\nselection over {} build tags through filterTags (median of {RUNS} runs):", tags.len());
    println!("  filter + extract + select + explain: {selecting:?}  (goal < 5 ms)");
    println!(
        "  -> winner {:?}, {} matching, rejected: {:?}",
        result.winner, result.matching_count, result.rejected_counts
    );
    Ok(())
}

async fn full_scan() -> Result<(), Box<dyn Error>> {
    let registry = Registry::start(RegistryOptions::anonymous()).await?;
    let tags: Vec<String> = (0..TAGS).map(|i| format!("v{}.{}.{}", i / 1000, (i / 10) % 100, i % 10)).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("deploy"), "#!/bin/sh\necho deploy\n")?;
    let started = Instant::now();
    registry.push_dir(REPO, &tag_refs, dir.path(), &ImageConfig::default()).await?;
    println!("\nfull scan of a {TAGS}-tag repository on the loopback registry (pushed in {:?}):", started.elapsed());

    let paging = registry.paging_proxy(100).await?;
    for (label, backend) in
        [("direct (distribution 2.8, one page)", registry.host_port()), ("paging proxy, 100 per page", &paging)]
    {
        let counter = Proxy::start(backend).await;
        let host = counter.host_port();
        let scanner = Scanner::new(RegistryClient::new(ClientConfig {
            insecure_registries: vec![host.clone()],
            ..ClientConfig::default()
        })?);
        let image = ImageRef::parse(&format!("{host}/{REPO}"), None)?;
        let constraint = Constraint::parse("^9")?;
        let credentials = Credentials::anonymous();
        let request = ScanRequest {
            image: &image,
            credentials: &credentials,
            constraint: &constraint,
            max_age: Duration::from_secs(3600),
            force: false,
        };
        let started = Instant::now();
        let report = scanner.scan(request).await?;
        let cold = started.elapsed();
        let requests = counter.requests().len();
        let started = Instant::now();
        scanner.scan(request).await?;
        let warm = started.elapsed();
        println!(
            "  {label}: {cold:?}, {requests} HTTP requests ({} tag pages + {} manifest HEAD); \
             {} tags, chose {}; cached re-scan {warm:?}",
            counter.count("/tags/list"),
            counter.count("HEAD "),
            report.listing.tags.len(),
            report.chosen()?.tag,
        );
    }
    Ok(())
}
