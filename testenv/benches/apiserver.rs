//! The test API server must never be the bottleneck of our benchmarks. Prints:
//! - create throughput (10,000 ConfigMaps through kube-rs, 16 in flight), beside a baseline
//!   of `GET /version` round trips over the same client (the HTTP floor);
//! - the time of one LIST of those 10,000 objects, beside a baseline of merely serialising the
//!   same objects to JSON in-process.
//!
//! Goals (issue "testenv"): ≥ 1,000 creates/s and a LIST of 10,000 in < 200 ms on 2 cores.
//! Run: `cargo bench -p alustan-testenv --bench apiserver`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::cast_precision_loss)] // a bench binary

use std::time::{Duration, Instant};

use alustan_testenv::apiserver::{ApiServer, ApiServerOptions};
use futures::{StreamExt as _, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

const OBJECTS: usize = 10_000;
const IN_FLIGHT: usize = 16;

fn config_map(i: usize) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i:05}"), "labels": {"bench": "yes", "shard": (i % 10).to_string()}},
        "data": {"key": "value", "index": i.to_string()},
    }))
    .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = ApiServer::start(ApiServerOptions::default()).await.unwrap();
    let client = server.client().unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let started = Instant::now();
    stream::iter(0..OBJECTS)
        .map(|_| {
            let client = client.clone();
            async move { client.apiserver_version().await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|_| async {})
        .await;
    let floor = started.elapsed();

    let started = Instant::now();
    stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &config_map(i)).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|_| async {})
        .await;
    let creates = started.elapsed();

    let mut list_times = Vec::new();
    let mut listed = 0;
    for _ in 0..5 {
        let started = Instant::now();
        listed = api.list(&ListParams::default()).await.unwrap().items.len();
        list_times.push(started.elapsed());
    }
    list_times.sort();
    let list = list_times[list_times.len() / 2];
    assert_eq!(listed, OBJECTS, "the LIST must return every object");

    // The same LIST as raw text: the server's share, without kube-rs decoding into typed objects.
    let mut raw_times = Vec::new();
    for _ in 0..5 {
        let request = http::Request::get("/api/v1/namespaces/default/configmaps").body(Vec::new()).unwrap();
        let started = Instant::now();
        let text = client.request_text(request).await.unwrap();
        raw_times.push(started.elapsed());
        assert!(text.len() > OBJECTS * 100);
    }
    raw_times.sort();
    let raw_list = raw_times[raw_times.len() / 2];

    let objects: Vec<ConfigMap> = (0..OBJECTS).map(config_map).collect();
    let started = Instant::now();
    let bytes = serde_json::to_vec(&objects).unwrap().len();
    let serialise = started.elapsed();

    let rate = |d: Duration| OBJECTS as f64 / d.as_secs_f64();
    println!("apiserver bench ({OBJECTS} objects, {IN_FLIGHT} in flight, 2 worker threads)");
    println!("  GET /version baseline : {:>9.0} req/s", rate(floor));
    println!(
        "  create                : {:>9.0} creates/s  (ratio to baseline {:.2}; goal >= 1000/s)",
        rate(creates),
        rate(creates) / rate(floor)
    );
    println!(
        "  LIST {OBJECTS:>6} (median of 5): {:>7.1} ms  (serialising them in-process: {:.1} ms, ratio {:.1}; {} KiB; goal < 200 ms)",
        list.as_secs_f64() * 1e3,
        serialise.as_secs_f64() * 1e3,
        list.as_secs_f64() / serialise.as_secs_f64(),
        bytes / 1024
    );
    println!(
        "  LIST as raw text (median of 5): {:>5.1} ms  (the server's share; the rest is kube-rs decoding typed objects)",
        raw_list.as_secs_f64() * 1e3
    );
}
