//! The registry fixture against the real `docker-registry` (Debian package `docker-registry`,
//! distribution 2.8). Each test starts its own registry, so they run in parallel.

// Test helpers outside `#[test]` functions may panic too: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Instant;

use alustan_testenv::registry::{
    Credentials, ImageConfig, MANIFEST_MEDIA_TYPE, PushRequest, PushTarget, RawClient, Registry, RegistryError,
    RegistryOptions, TAG_FILE, push_command,
};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde_json::Value;

const ODD_TAGS: [&str; 5] = ["v1.2.3", "1.2.3-rc.1", "latest", "production", "v1.2.2.2022-01-15t161730814Z.9eabf5b5"];

/// A small image tree: an executable script, a plain file in a subdir, a symlink.
fn image_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("scripts")).unwrap();
    std::fs::write(root.join("scripts/deploy.sh"), "#!/bin/sh\necho deployed\n").unwrap();
    std::fs::set_permissions(root.join("scripts/deploy.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("main.tf"), "# terraform\n").unwrap();
    std::fs::set_permissions(root.join("main.tf"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("scripts/deploy.sh", root.join("run")).unwrap();
    dir
}

fn config() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/scripts/deploy.sh".into()],
        cmd: vec!["apply".into()],
        env: vec!["TF_IN_AUTOMATION=1".into()],
        working_dir: Some("/".into()),
    }
}

async fn anonymous() -> Registry {
    Registry::start(RegistryOptions::anonymous()).await.unwrap()
}

/// `GET /v2/<repo>/tags/list` as raw JSON.
async fn tags_json(client: &RawClient, repo: &str) -> Value {
    let response = client.get(&format!("/v2/{repo}/tags/list")).await.unwrap();
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json().unwrap()
}

fn tag_set(json: &Value) -> BTreeSet<String> {
    json["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

fn set(tags: &[&str]) -> BTreeSet<String> {
    tags.iter().map(|t| (*t).to_owned()).collect()
}

fn numbered_tags(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("1.{}.{}", i / 10, i % 10)).collect()
}

fn oci_client() -> oci_client::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    })
}

/// `(path, mode, entry type)` of every entry of a gzip'd tar layer.
fn layer_entries(layer: &[u8]) -> Vec<(String, u32, tar::EntryType)> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layer).read_to_end(&mut tar).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0, "mtimes are zeroed");
            assert_eq!(header.uid().unwrap(), 0);
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            (path, header.mode().unwrap(), header.entry_type())
        })
        .collect()
}

#[tokio::test]
async fn anonymous_push_list_and_pull_by_digest() {
    let registry = anonymous().await;
    let dir = image_dir();
    let digest = registry.push_dir("team/app", &["v1.0.0", "latest"], dir.path(), &config()).await.unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");

    let json = tags_json(&registry.client(), "team/app").await;
    assert_eq!(json["name"], "team/app");
    assert_eq!(tag_set(&json), set(&["v1.0.0", "latest"]));
    assert_eq!(registry.resolve("team/app", "latest").await.unwrap(), digest);

    // Without an Accept header listing the OCI media type, the manifest is hidden.
    let response = registry.client().get(&format!("/v2/team/app/manifests/{digest}")).await.unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    let json: Value = response.json().unwrap();
    assert_eq!(json["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let manifest = registry.manifest("team/app", "v1.0.0").await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&manifest).unwrap()["mediaType"], MANIFEST_MEDIA_TYPE);

    // Pull by digest with oci-client, as the process kubelet will.
    let client = oci_client();
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    let reference = oci_client::Reference::with_digest(registry.host_port().into(), "team/app".into(), digest.clone());
    let (manifest, pulled_digest) = client.pull_image_manifest(&reference, &auth).await.unwrap();
    assert_eq!(pulled_digest, digest);
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.media_type.as_deref(), Some(MANIFEST_MEDIA_TYPE));

    let mut config_json = Vec::new();
    client.pull_blob(&reference, &manifest.config, &mut config_json).await.unwrap();
    let config_json: Value = serde_json::from_slice(&config_json).unwrap();
    assert_eq!(config_json["config"]["Entrypoint"], serde_json::json!(["/scripts/deploy.sh"]));
    assert_eq!(config_json["config"]["Cmd"], serde_json::json!(["apply"]));
    assert_eq!(config_json["config"]["Env"], serde_json::json!(["TF_IN_AUTOMATION=1"]));
    assert_eq!(config_json["os"], "linux");

    // The layer keeps file modes and symlinks, in sorted order.
    let mut layer = Vec::new();
    client.pull_blob(&reference, &manifest.layers[0], &mut layer).await.unwrap();
    let entries = layer_entries(&layer);
    let summary: Vec<(&str, u32)> = entries.iter().map(|(p, m, _)| (p.as_str(), *m)).collect();
    assert_eq!(
        summary,
        [("main.tf", 0o640), ("run", 0o777), ("scripts", 0o755), ("scripts/deploy.sh", 0o755)],
        "{entries:?}"
    );
    assert_eq!(entries[1].2, tar::EntryType::Symlink);
}

#[tokio::test]
async fn htpasswd_mode_checks_credentials() {
    let registry = Registry::start(RegistryOptions::htpasswd("alice", "s3cret")).await.unwrap();
    assert_eq!(registry.credentials().unwrap().username, "alice");
    let dir = image_dir();

    // Right credentials: push and list work.
    let digest = registry.push_dir("private/app", &["1.0.0"], dir.path(), &config()).await.unwrap();
    let json = tags_json(&registry.client(), "private/app").await;
    assert_eq!(tag_set(&json), set(&["1.0.0"]));

    // Anonymous: 401 with a Basic challenge.
    let response = registry.anonymous_client().get("/v2/private/app/tags/list").await.unwrap();
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let challenge = response.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");

    // Wrong password: 401 on reads and a clear push error.
    let wrong = Some(Credentials::new("alice", "wrong"));
    let response = RawClient::new(registry.host_port())
        .with_credentials(wrong.as_ref())
        .get(&format!("/v2/private/app/manifests/{digest}"))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let target = PushTarget::new(registry.host_port(), wrong);
    let err = push_request(target, "private/app", &["1.0.1"], dir.path()).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, RegistryError::Push { .. }), "{err:?}");
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("private/app"), "{message}");
}

async fn push_request(target: PushTarget, repo: &str, tags: &[&str], dir: &Path) -> Result<String, RegistryError> {
    push_command(&PushRequest {
        target,
        repo: repo.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        dir: dir.to_owned(),
        config: config(),
    })
    .await
}

#[tokio::test]
async fn odd_tags_round_trip_and_plus_is_not_a_tag() {
    let registry = anonymous().await;
    let dir = image_dir();
    let digest = push_request(registry.target(), "odd", &ODD_TAGS, dir.path()).await.unwrap();
    let json = tags_json(&registry.client(), "odd").await;
    assert_eq!(tag_set(&json), set(&ODD_TAGS));
    for tag in ODD_TAGS {
        assert_eq!(registry.resolve("odd", tag).await.unwrap(), digest, "{tag}");
    }

    // `+` is outside the tag grammar: the pusher refuses it with an explanation…
    let err = registry.push_dir("odd", &["1.2.3+build"], dir.path(), &config()).await.unwrap_err();
    assert!(matches!(err, RegistryError::InvalidTag { .. }), "{err:?}");
    assert!(err.to_string().contains("1.2.3+build"));

    // …and the registry itself has no route for it, literal or percent-encoded: a plain-text
    // 404, not a JSON TAG_INVALID error.
    let manifest = registry.manifest("odd", &digest).await.unwrap();
    for path in ["/v2/odd/manifests/1.2.3+build", "/v2/odd/manifests/1.2.3%2Bbuild"] {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(MANIFEST_MEDIA_TYPE));
        let response = registry.client().request(Method::PUT, path, headers, manifest.clone()).await.unwrap();
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.text().trim(), "404 page not found", "{path}");
    }
    assert_eq!(tag_set(&tags_json(&registry.client(), "odd").await), set(&ODD_TAGS));
}

#[tokio::test]
async fn tag_list_quirks_unsorted_and_n_ignored() {
    let registry = anonymous().await;
    let tags = numbered_tags(30);
    let dir = image_dir();
    // Pushed out of lexical order (middle, high, low), so neither creation order nor its
    // reverse is sorted, whatever order the file system lists directories in.
    for batch in [&tags[10..20], &tags[20..], &tags[..10]] {
        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
        registry.push_dir("quirks", &batch, dir.path(), &config()).await.unwrap();
    }

    let listed: Vec<String> =
        serde_json::from_value(tags_json(&registry.client(), "quirks").await["tags"].clone()).unwrap();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, tags, "every tag exactly once");
    // Storage (directory listing) order, not lexical: clients must sort themselves.
    assert_ne!(listed, sorted, "distribution 2.8 does not sort tags/list");

    // `n` and `last` are ignored: everything comes back, without a Link header.
    let response = registry.client().get("/v2/quirks/tags/list?n=2&last=1.0.5").await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.header("link").is_none());
    let json: Value = response.json().unwrap();
    assert_eq!(json["tags"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn tags_become_null_once_all_are_deleted() {
    let registry = anonymous().await;
    let dir = image_dir();
    let shared = registry.push_dir("gone", &["a", "b"], dir.path(), &config()).await.unwrap();
    let distinct = registry.push_distinct("gone", &["c"], dir.path(), &config()).await.unwrap();
    assert_ne!(distinct[0].1, shared);

    // Deleting by tag deletes the manifest, so "b" goes with "a".
    assert_eq!(registry.delete_tag("gone", "a").await.unwrap(), shared);
    assert_eq!(tag_set(&tags_json(&registry.client(), "gone").await), set(&["c"]));
    registry.delete_tag("gone", "c").await.unwrap();
    let json = tags_json(&registry.client(), "gone").await;
    assert_eq!(json["name"], "gone");
    assert!(json["tags"].is_null(), "{json}");
}

#[tokio::test]
async fn missing_repository_is_name_unknown() {
    let registry = anonymous().await;
    let response = registry.client().get("/v2/nobody/here/tags/list").await.unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    let json: Value = response.json().unwrap();
    assert_eq!(json["errors"][0]["code"], "NAME_UNKNOWN");
}

/// Follows `Link` headers from the first page; returns the pages' tags.
async fn walk_pages(client: &RawClient, first: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next.take() {
        let response = client.get(&path).await.unwrap();
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let json: Value = response.json().unwrap();
        pages.push(serde_json::from_value(json["tags"].clone()).unwrap());
        next = response.header("link").map(|link| {
            assert!(link.ends_with(r#">; rel="next""#), "{link}");
            link.trim_start_matches('<').split_once('>').unwrap().0.to_owned()
        });
        assert!(pages.len() < 100, "Link headers loop");
    }
    pages
}

#[tokio::test]
async fn paging_proxy_pages_with_link_headers() {
    let registry = anonymous().await;
    let tags = numbered_tags(25);
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let dir = image_dir();
    registry.push_dir("paged", &tag_refs, dir.path(), &config()).await.unwrap();
    let proxy = RawClient::new(registry.paging_proxy(10).await.unwrap());

    let pages = walk_pages(&proxy, "/v2/paged/tags/list").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let all: Vec<String> = pages.concat();
    let mut expected = tags.clone();
    expected.sort();
    assert_eq!(all, expected, "every tag exactly once, in lexical order");

    // A smaller `n` is honoured, a larger one capped; `last` starts after that tag.
    let pages = walk_pages(&proxy, "/v2/paged/tags/list?n=7").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 7, 4]);
    let pages = walk_pages(&proxy, "/v2/paged/tags/list?n=1000").await;
    assert_eq!(pages[0].len(), 10);
    let pages = walk_pages(&proxy, &format!("/v2/paged/tags/list?n=3&last={}", expected[20])).await;
    assert_eq!(pages.concat(), expected[21..]);
    let response = proxy.get("/v2/paged/tags/list?n=x").await.unwrap();
    assert_eq!(response.status, StatusCode::BAD_REQUEST);

    // Everything else passes through: errors, and a full oci-client push and pull.
    let response = proxy.get("/v2/absent/tags/list").await.unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.json::<Value>().unwrap()["errors"][0]["code"], "NAME_UNKNOWN");
    let target = PushTarget::new(proxy.host_port(), None);
    let digest = push_request(target, "via-proxy", &["1.0.0"], dir.path()).await.unwrap();
    assert_eq!(registry.resolve("via-proxy", "1.0.0").await.unwrap(), digest);
}

#[tokio::test]
async fn paging_proxy_forwards_auth() {
    let registry = Registry::start(RegistryOptions::htpasswd("bob", "pw")).await.unwrap();
    let dir = image_dir();
    registry.push_dir("private", &["a", "b", "c"], dir.path(), &config()).await.unwrap();
    let proxy = registry.paging_proxy(2).await.unwrap();

    let response = RawClient::new(proxy.clone()).get("/v2/private/tags/list").await.unwrap();
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert!(response.header("www-authenticate").unwrap().starts_with("Basic "));

    let client = RawClient::new(proxy).with_credentials(registry.credentials());
    let pages = walk_pages(&client, "/v2/private/tags/list").await;
    assert_eq!(pages, [vec!["a", "b"], vec!["c"]]);
}

#[tokio::test]
async fn identical_dirs_give_identical_digests() {
    let registry = anonymous().await;
    let first = image_dir();
    // Different mtimes, same content and modes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = image_dir();
    let a = registry.push_dir("same/a", &["1"], first.path(), &config()).await.unwrap();
    let b = registry.push_dir("same/b", &["1"], second.path(), &config()).await.unwrap();
    assert_eq!(a, b);

    // Any change in content, mode or config changes the digest.
    std::fs::set_permissions(second.path().join("main.tf"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = registry.push_dir("same/b", &["2"], second.path(), &config()).await.unwrap();
    assert_ne!(a, c);
    let d = registry.push_dir("same/a", &["2"], first.path(), &ImageConfig::default()).await.unwrap();
    assert_ne!(a, d);
}

#[tokio::test]
async fn distinct_pushes_name_the_tag_in_the_image() {
    let registry = anonymous().await;
    let dir = image_dir();
    let pushed = registry.push_distinct("distinct", &["x", "y"], dir.path(), &config()).await.unwrap();
    assert_eq!(pushed.len(), 2);
    assert_ne!(pushed[0].1, pushed[1].1);
    for (tag, digest) in &pushed {
        assert_eq!(&registry.resolve("distinct", tag).await.unwrap(), digest);
    }

    // The extra file holds the tag.
    let client = oci_client();
    let reference =
        oci_client::Reference::with_digest(registry.host_port().into(), "distinct".into(), pushed[1].1.clone());
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    let (manifest, _) = client.pull_image_manifest(&reference, &auth).await.unwrap();
    let mut layer = Vec::new();
    client.pull_blob(&reference, &manifest.layers[0], &mut layer).await.unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layer.as_slice()).read_to_end(&mut tar).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut found = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(TAG_FILE) {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            found = Some(text);
        }
    }
    assert_eq!(found.as_deref(), Some("y"));
}

#[tokio::test]
async fn thousand_tags_push_quickly() {
    let registry = anonymous().await;
    let tags = numbered_tags(1000);
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let dir = image_dir();
    let started = Instant::now();
    registry.push_dir("many", &tag_refs, dir.path(), &config()).await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("pushed 1000 tags in {elapsed:?}");
    let json = tags_json(&registry.client(), "many").await;
    assert_eq!(tag_set(&json).len(), 1000);
    // Stopping includes deleting ~7,000 storage files: fast on tmpfs (see `temp_root`).
    let started = Instant::now();
    drop(registry);
    assert!(started.elapsed().as_secs() < 5, "stopping took {:?}", started.elapsed());
}

#[tokio::test]
async fn missing_binary_names_the_debian_package() {
    let options = RegistryOptions { binary: "/nonexistent/docker-registry".into(), ..RegistryOptions::anonymous() };
    let err = Registry::start(options).await.err().unwrap();
    assert!(matches!(err, RegistryError::ToolMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("apt-get install docker-registry"), "{err}");
}

#[tokio::test]
async fn invalid_requests_are_refused_before_any_network() {
    let target = PushTarget::new("127.0.0.1:1", None);
    let dir = image_dir();
    let err = push_request(target.clone(), "r", &[], dir.path()).await.unwrap_err();
    assert!(matches!(err, RegistryError::NoTags { .. }), "{err:?}");
    for bad in ["", ".hidden", "-x", "a+b", "a/b", &"x".repeat(129)] {
        let err = push_request(target.clone(), "r", &[bad], dir.path()).await.unwrap_err();
        assert!(matches!(err, RegistryError::InvalidTag { .. }), "{bad}: {err:?}");
    }
    assert!(alustan_testenv::registry::is_valid_tag(&"x".repeat(128)));
    assert!(alustan_testenv::registry::is_valid_tag("_x"));
}

#[tokio::test]
async fn push_subcommand_pushes_a_directory() {
    let registry = Registry::start(RegistryOptions::htpasswd("ci", "pw")).await.unwrap();
    let dir = image_dir();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_alustan-testenv"))
        .args(["push", "--registry", registry.host_port(), "--repo", "cli/app"])
        .args(["--tag", "v1.0.0", "--tag", "latest", "--user", "ci", "--password", "pw"])
        .args(["--entrypoint", "/scripts/deploy.sh", "--cmd", "apply", "--env", "TF_IN_AUTOMATION=1"])
        .args(["--workdir", "/"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let digest = registry.resolve("cli/app", "latest").await.unwrap();
    assert_eq!(stdout.trim(), format!("{}/cli/app@{digest}", registry.host_port()));
    assert_eq!(tag_set(&tags_json(&registry.client(), "cli/app").await), set(&["v1.0.0", "latest"]));
    // Same directory and config as the library call: same digest.
    assert_eq!(push_request(registry.target(), "cli/lib", &["x"], dir.path()).await.unwrap(), digest);

    // A failure exits non-zero with the reason.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_alustan-testenv"))
        .args(["push", "--registry", registry.host_port(), "--repo", "cli/app", "--tag", "1.2.3+build"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid tag \"1.2.3+build\""));
}

#[tokio::test]
async fn pinned_port_is_used_and_a_taken_one_is_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = RegistryOptions { port: Some(port), ..RegistryOptions::anonymous() };
    let registry = Registry::start(options.clone()).await.unwrap();
    assert_eq!(registry.host_port(), format!("127.0.0.1:{port}"));

    let err = Registry::start(options).await.err().unwrap();
    assert!(matches!(err, RegistryError::Exited { .. }), "{err:?}");
    assert!(err.to_string().contains("address already in use"), "{err}");
    // The first instance is unaffected.
    assert_eq!(registry.client().get("/v2/").await.unwrap().status, StatusCode::OK);
}
