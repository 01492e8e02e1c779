//! Conformance: kube-rs 5 (client, watcher, Controller, finalizer helper) against the test
//! apiserver, plus the API semantics the issue lists (each test names the rule it proves).

// Helpers outside #[test] fns panic on purpose: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod apiserver_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alustan_shared::Terraform;
use alustan_testenv::apiserver::{ApiServerOptions, Match, UserInfo};
use apiserver_support::{EXAMPLE_CR, Env, env, env_with};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{Controller, controller::Action, finalizer, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

fn example(name: &str) -> Terraform {
    let mut tf: Terraform = serde_yaml::from_str(EXAMPLE_CR).unwrap();
    tf.metadata.name = Some(name.to_owned());
    tf
}

fn tf_api(e: &Env) -> Api<Terraform> {
    Api::namespaced(e.client(), "default")
}

fn code(err: &kube::Error) -> u16 {
    match err {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other:?}"),
    }
}

fn rv<K: kube::Resource>(o: &K) -> u64 {
    o.meta().resource_version.as_deref().unwrap().parse().unwrap()
}

/// A raw HTTP request (no kube retries on the embedded server; through the admin's kube client,
/// for its TLS and credentials, on the real one); returns (status, headers, body).
async fn raw(
    e: &Env,
    method: &str,
    path: &str,
    accept: &str,
    ctype: &str,
    body: &str,
) -> (u16, http::HeaderMap, Value) {
    let request = |base: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("accept", accept)
            .header("content-type", ctype)
    };
    let (status, headers, bytes) = if e.is_real() {
        let req = request("").body(kube::client::Body::from(body.as_bytes().to_vec())).unwrap();
        let resp = e.client().send(req).await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes())
    } else {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>();
        let req = request(&e.stack.server_url())
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes())
    };
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn version_discovery_and_openapi() {
    let e = env().await;
    let client = e.client();
    let v = client.apiserver_version().await.unwrap();
    // The embedded server says it is 1.32; the real one is the version built from the Go module.
    let expected = if e.is_real() { ("1", "34", "v1.34.") } else { ("1", "32", "v1.32.0") };
    assert_eq!((v.major.as_str(), v.minor.as_str()), (expected.0, expected.1));
    assert!(v.git_version.starts_with(expected.2), "{}", v.git_version);
    let d = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = d.resolve_gvk(&kube::api::GroupVersionKind::gvk("alustan.io", "v1alpha1", "Terraform")).unwrap();
    assert_eq!(ar.plural, "terraforms");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "terraforms/status" || s.plural == "status"), "{caps:?}");
    let (_, _, list) = raw(&e, "GET", "/apis/alustan.io/v1alpha1", "application/json", "", "").await;
    let names: Vec<&str> = list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["terraforms", "terraforms/status"]);
    assert_eq!(list["resources"][0]["shortNames"], json!(["altf"]));
    assert_eq!(list["resources"][0]["categories"], json!(["alustan"]));
    let (_, _, core) = raw(&e, "GET", "/api/v1", "application/json", "", "").await;
    assert!(core["resources"].as_array().unwrap().iter().any(|r| r["name"] == "pods/log"));
    let (_, _, index) = raw(&e, "GET", "/openapi/v3", "application/json", "", "").await;
    let url = index["paths"]["apis/alustan.io/v1alpha1"]["serverRelativeURL"].as_str().unwrap().to_owned();
    let (_, _, doc) = raw(&e, "GET", &url, "application/json", "", "").await;
    let patch = &doc["paths"]["/apis/alustan.io/v1alpha1/namespaces/{namespace}/terraforms/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Terraform");
    assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
    // Documented divergence: only the real server serves the legacy OpenAPI v2 document
    // (kubectl and kube-rs use v3).
    let v2 = if e.is_real() { 200 } else { 404 };
    assert_eq!(raw(&e, "GET", "/openapi/v2", "application/json", "", "").await.0, v2);
    assert_eq!(raw(&e, "GET", "/healthz", "*/*", "", "").await.0, 200);
}

#[tokio::test]
async fn crud_resource_versions_generation_and_conflicts() {
    let e = env().await;
    let api = tf_api(&e);
    let created = api.create(&PostParams::default(), &example("a")).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(code(&api.create(&PostParams::default(), &example("a")).await.unwrap_err()), 409);
    assert_eq!(code(&api.get("nope").await.unwrap_err()), 404);
    let mut gen_named = example("");
    gen_named.metadata.name = None;
    gen_named.metadata.generate_name = Some("gen-".into());
    let g = api.create(&PostParams::default(), &gen_named).await.unwrap();
    assert!(g.name_any().starts_with("gen-") && g.name_any().len() == 9);
    let missing_ns: Api<Terraform> = Api::namespaced(e.client(), "nope");
    let err = missing_ns.create(&PostParams::default(), &example("x")).await.unwrap_err();
    assert!(err.to_string().contains("namespaces \"nope\" not found"), "{err}");

    // Labels do not bump generation; spec changes do; status is ignored on the main resource.
    let mut obj = created.clone();
    obj.labels_mut().insert("a".into(), "b".into());
    obj.status = Some(serde_json::from_value(json!({"state": "Failed"})).unwrap());
    let relabeled = api.replace("a", &PostParams::default(), &obj).await.unwrap();
    assert_eq!(relabeled.metadata.generation, Some(1));
    assert!(relabeled.status.is_none());
    assert!(rv(&relabeled) > rv(&created));
    // Stale resourceVersion: 409 Conflict.
    let err = api.replace("a", &PostParams::default(), &obj).await.unwrap_err();
    assert_eq!(code(&err), 409);
    assert!(err.to_string().contains("the object has been modified"), "{err}");
    let mut next = relabeled.clone();
    next.spec.scripts.deploy = "deploy2".into();
    let respec = api.replace("a", &PostParams::default(), &next).await.unwrap();
    assert_eq!(respec.metadata.generation, Some(2));
    // Status writes change only status and never the generation.
    let mut st = respec.clone();
    st.spec.scripts.deploy = "ignored".into();
    st.status = Some(serde_json::from_value(json!({"state": "Success"})).unwrap());
    let after = api.replace_status("a", &PostParams::default(), &st).await.unwrap();
    assert_eq!(after.spec.scripts.deploy, "deploy2");
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(serde_json::to_value(&after.status).unwrap()["state"], "Success");
    assert_eq!(serde_json::to_value(api.get_status("a").await.unwrap().status).unwrap()["state"], "Success");
}

#[tokio::test]
async fn list_chunks_are_consistent_and_selectors_filter() {
    let e = env().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(e.client());
    for i in 0..7 {
        let tier = if i % 2 == 0 { "a" } else { "b" };
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}"), "labels": {"tier": tier}}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let plain: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "plain"}})).unwrap();
    cms.create(&PostParams::default(), &plain).await.unwrap();
    // A real cluster's controller-manager publishes `kube-root-ca.crt` into every namespace (a
    // moment after start); the embedded server does not (a documented divergence).
    let root_ca = usize::from(e.is_real());
    if e.is_real() {
        let published = tokio::time::timeout(Duration::from_secs(30), async {
            while cms.get_opt("kube-root-ca.crt").await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        assert!(published.await.is_ok(), "the controller-manager publishes kube-root-ca.crt");
    }
    let first = cms.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.metadata.remaining_item_count, Some(5 + i64::from(e.is_real())));
    let token = first.metadata.continue_.clone().unwrap();
    // Changes after the first chunk do not show up in later chunks (same snapshot).
    cms.delete("cm-5", &DeleteParams::default()).await.unwrap();
    let late: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cm-9"}})).unwrap();
    cms.create(&PostParams::default(), &late).await.unwrap();
    let mut names: Vec<String> = first.items.iter().map(ResourceExt::name_any).collect();
    let mut cont = Some(token);
    while let Some(t) = cont {
        let page = cms.list(&ListParams::default().limit(3).continue_token(&t)).await.unwrap();
        assert_eq!(page.metadata.resource_version, first.metadata.resource_version);
        names.extend(page.items.iter().map(ResourceExt::name_any));
        cont = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    let mut expected = vec!["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-5", "cm-6", "plain"];
    if e.is_real() {
        expected.insert(7, "kube-root-ca.crt");
    }
    assert_eq!(names, expected);
    let matching = |sel: &'static str| {
        let cms = cms.clone();
        async move { cms.list(&ListParams::default().labels(sel)).await.unwrap().items.len() }
    };
    assert_eq!(matching("tier=a").await, 4);
    assert_eq!(matching("tier==b").await, 2);
    assert_eq!(matching("tier!=a").await, 4 + root_ca);
    assert_eq!(matching("tier in (a,b)").await, 6);
    assert_eq!(matching("tier notin (a)").await, 4 + root_ca);
    assert_eq!(matching("tier").await, 6);
    assert_eq!(matching("!tier").await, 2 + root_ca);
    let by_name = cms.list(&ListParams::default().fields("metadata.name=cm-1")).await.unwrap();
    assert_eq!(by_name.items.len(), 1);
    assert!(by_name.metadata.resource_version.is_some());
    assert_eq!(code(&cms.list(&ListParams::default().fields("data.x=1")).await.unwrap_err()), 400);
}

#[tokio::test]
async fn watcher_list_watch_and_streaming_list() {
    let e = env().await;
    let api = tf_api(&e);
    api.create(&PostParams::default(), &example("before")).await.unwrap();
    for cfg in [watcher::Config::default(), watcher::Config::default().streaming_lists()] {
        let mut events = watcher(api.clone(), cfg).boxed();
        let mut seen_init = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.try_next()).await.unwrap().unwrap().unwrap() {
                watcher::Event::InitApply(o) => seen_init.push(o.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert!(seen_init.contains(&"before".to_owned()));
        let name = format!("after-{}", seen_init.len());
        api.create(&PostParams::default(), &example(&name)).await.unwrap();
        loop {
            let event =
                tokio::time::timeout(Duration::from_secs(5), events.try_next()).await.unwrap().unwrap().unwrap();
            if let watcher::Event::Apply(o) = event
                && o.name_any() == name
            {
                break;
            }
        }
    }
    assert!(e.requests().count(|r| r.verb == "watch" && r.query.contains("sendInitialEvents=true")) >= 1);
    assert!(e.requests().count(|r| r.verb == "list" && r.resource == "terraforms") >= 1);
}

#[tokio::test]
async fn watch_from_trimmed_history_is_410_and_watcher_relists() {
    let e = env_with(ApiServerOptions { watch_history: 5, ..ApiServerOptions::default() }).await;
    let api = tf_api(&e);
    let first = api.create(&PostParams::default(), &example("w0")).await.unwrap();
    for i in 1..10 {
        api.create(&PostParams::default(), &example(&format!("w{i}"))).await.unwrap();
    }
    let mut stream = api.watch(&WatchParams::default(), &rv(&first).to_string()).await.unwrap().boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    while !matches!(events.try_next().await.unwrap().unwrap(), watcher::Event::InitDone) {}
    let lists_before = e.requests().count_verb("list", "terraforms");
    // A change, then compaction past it, then the watch drops: the re-watch from the list's
    // resourceVersion gets 410 Gone, so the watcher relists (and sees "late" in the new list).
    api.create(&PostParams::default(), &example("late")).await.unwrap();
    e.embedded("compaction on demand").compact();
    e.embedded("closing watches on demand").close_watches();
    let relisted = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Some(watcher::Event::InitApply(o))) = events.try_next().await
                && o.name_any() == "late"
            {
                return;
            }
        }
    })
    .await;
    let log: Vec<String> =
        e.requests().records().iter().map(|r| format!("{} {} {}?{}", r.status, r.verb, r.path, r.query)).collect();
    assert!(relisted.is_ok(), "{log:#?}");
    assert!(e.requests().count_verb("list", "terraforms") > lists_before);
}

/// The controller's context.
struct Ctx {
    api: Api<Terraform>,
    cleaned: Arc<AtomicUsize>,
}

#[tokio::test]
async fn controller_with_finalizer_helper() {
    let e = env().await;
    let api = tf_api(&e);
    let cleaned = Arc::new(AtomicUsize::new(0));
    let ctx = Arc::new(Ctx { api: api.clone(), cleaned: Arc::clone(&cleaned) });
    let reconcile = |obj: Arc<Terraform>, ctx: Arc<Ctx>| async move {
        finalizer(&ctx.api, "alustan.io/test", obj, |ev| async {
            match ev {
                finalizer::Event::Apply(o) => {
                    let status = json!({"status": {"state": "Success", "observedGeneration": o.metadata.generation}});
                    ctx.api.patch_status(&o.name_any(), &PatchParams::default(), &Patch::Merge(status)).await?;
                    Ok::<_, kube::Error>(Action::await_change())
                }
                finalizer::Event::Cleanup(_) => {
                    ctx.cleaned.fetch_add(1, Ordering::SeqCst);
                    Ok(Action::await_change())
                }
            }
        })
        .await
    };
    let error_policy =
        |_: Arc<Terraform>, _: &finalizer::Error<kube::Error>, _: Arc<Ctx>| Action::requeue(Duration::from_millis(100));
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    api.create(&PostParams::default(), &example("ctl")).await.unwrap();
    let wait = |pred: Box<dyn Fn(Option<Terraform>) -> bool + Send>| {
        let api = api.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if pred(api.get_opt("ctl").await.unwrap()) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .unwrap();
        }
    };
    wait(Box::new(|o| o.is_some_and(|o| o.finalizers().contains(&"alustan.io/test".to_owned()) && o.status.is_some())))
        .await;
    api.delete("ctl", &DeleteParams::default()).await.unwrap();
    wait(Box::new(|o: Option<Terraform>| o.is_none())).await;
    assert_eq!(cleaned.load(Ordering::SeqCst), 1);
    controller.abort();
}

#[tokio::test]
async fn server_side_apply_of_status_and_no_op_writes() {
    let e = env().await;
    let api = tf_api(&e);
    api.create(&PostParams::default(), &example("ssa")).await.unwrap();
    let status = json!({"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "status": {"state": "Progressing", "message": "scanning"}});
    let pp = PatchParams::apply("alustan-agent").force();
    let one = api.patch_status("ssa", &pp, &Patch::Apply(&status)).await.unwrap();
    let mf = one.managed_fields();
    assert!(mf.iter().any(|m| m.manager.as_deref() == Some("alustan-agent")
        && m.operation.as_deref() == Some("Apply")
        && m.subresource.as_deref() == Some("status")));
    let mut watch = api.watch(&WatchParams::default(), &rv(&one).to_string()).await.unwrap().boxed();
    // Identical writes (apply and merge patch) keep the resourceVersion and emit nothing.
    let two = api.patch_status("ssa", &pp, &Patch::Apply(&status)).await.unwrap();
    assert_eq!(rv(&two), rv(&one));
    let merge = Patch::Merge(json!({"status": {"state": "Progressing"}}));
    let three = api.patch_status("ssa", &PatchParams::default(), &merge).await.unwrap();
    assert_eq!(rv(&three), rv(&one));
    let changed = json!({"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "status": {"state": "Success"}});
    let four = api.patch_status("ssa", &pp, &Patch::Apply(&changed)).await.unwrap();
    assert!(rv(&four) > rv(&one));
    // The field the manager stopped applying is removed.
    assert!(serde_json::to_value(&four.status).unwrap().get("message").is_none());
    match tokio::time::timeout(Duration::from_secs(2), watch.try_next()).await.unwrap().unwrap().unwrap() {
        WatchEvent::Modified(o) => assert_eq!(rv(&o), rv(&four)),
        other => panic!("{other:?}"),
    }
    // Fields set at create time belong to the creator (an Update manager): applying other
    // values conflicts with it, as in a real cluster, until forced.
    let spec = |v: &str| json!({"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "spec": {"scripts": {"deploy": v}, "containerRegistry": {"imageName": "x", "semanticVersion": "1"}}});
    let err = api.patch("ssa", &PatchParams::apply("one"), &Patch::Apply(spec("a"))).await.unwrap_err();
    assert_eq!(code(&err), 409);
    // Worded as the real server words it: an Update manager with its apiVersion (no time),
    // each conflicting field on a line of its own.
    let kube::Error::Api(status) = &err else { panic!("{err:?}") };
    assert_eq!(
        status.message,
        "Apply failed with 3 conflicts: conflicts with \"unknown\" using alustan.io/v1alpha1:\n- .spec.containerRegistry.imageName\n- .spec.containerRegistry.semanticVersion\n- .spec.scripts.deploy"
    );
    api.patch("ssa", &PatchParams::apply("one").force(), &Patch::Apply(spec("a"))).await.unwrap();
    let err = api.patch("ssa", &PatchParams::apply("two"), &Patch::Apply(spec("b"))).await.unwrap_err();
    assert_eq!(code(&err), 409);
    assert!(
        err.to_string().contains("Apply failed with 1 conflict: conflict with \"one\": .spec.scripts.deploy"),
        "{err}"
    );
    let forced = api.patch("ssa", &PatchParams::apply("two").force(), &Patch::Apply(spec("b"))).await.unwrap();
    assert_eq!(forced.spec.scripts.deploy, "b");
    // Create-if-absent.
    let mut fresh = serde_json::to_value(example("created-by-apply")).unwrap();
    fresh.as_object_mut().unwrap().remove("status");
    let made = api.patch("created-by-apply", &PatchParams::apply("one"), &Patch::Apply(&fresh)).await.unwrap();
    assert_eq!(made.metadata.generation, Some(1));
}

#[tokio::test]
async fn patch_types_and_their_errors() {
    let e = env().await;
    let api = tf_api(&e);
    let o = api.create(&PostParams::default(), &example("p")).await.unwrap();
    let ok = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]);
    let p =
        api.patch("p", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(ok).unwrap())).await.unwrap();
    assert_eq!(p.finalizers(), ["f"]);
    let bad = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]);
    let err = api
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(bad).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(code(&err), 422);
    let err = api.patch("p", &PatchParams::default(), &Patch::Strategic(json!({"spec": {}}))).await.unwrap_err();
    assert_eq!(code(&err), 415);
    let stale = json!({"metadata": {"resourceVersion": o.metadata.resource_version}, "spec": {"suspend": true}});
    assert_eq!(code(&api.patch("p", &PatchParams::default(), &Patch::Merge(stale)).await.unwrap_err()), 409);
    // Strategic merge patch is accepted for built-ins (approximated as a merge patch).
    let cms: Api<ConfigMap> = Api::default_namespaced(e.client());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let cm = cms.patch("c", &PatchParams::default(), &Patch::Strategic(json!({"data": {"b": "2"}}))).await.unwrap();
    assert_eq!(cm.data.unwrap().len(), 2);
}

#[tokio::test]
async fn schema_validation_pruning_and_status_bodies() {
    let e = env().await;
    let broken = json!({"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "metadata": {"name": "x"}, "spec": {"scripts": {"deploy": "d"}}});
    let (code422, _, body) = raw(
        &e,
        "POST",
        "/apis/alustan.io/v1alpha1/namespaces/default/terraforms",
        "application/json",
        "application/json",
        &broken.to_string(),
    )
    .await;
    assert_eq!(code422, 422);
    // The CRD has CEL rules: on an object the schema refuses they are not run, and a cause says so.
    let skipped = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("Terraform.alustan.io \"x\" is invalid: [spec.containerRegistry: Required value, <nil>: Invalid value: null: {skipped}]"),
            "reason": "Invalid",
            "details": {"name": "x", "group": "alustan.io", "kind": "Terraform",
                "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containerRegistry"},
                           {"reason": "FieldValueInvalid", "message": format!("Invalid value: null: {skipped}"), "field": "<nil>"}]},
            "code": 422})
    );
    let mut extra: Value = serde_yaml::from_str(EXAMPLE_CR).unwrap();
    extra["spec"]["foo"] = json!(1);
    let path = "/apis/alustan.io/v1alpha1/namespaces/default/terraforms";
    let (status, _, body) = raw(
        &e,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        "application/json",
        &extra.to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("strict decoding error: unknown field \"spec.foo\""), "{body}");
    let (status, headers, body) =
        raw(&e, "POST", path, "application/json", "application/json", &extra.to_string()).await;
    assert_eq!(status, 201);
    assert_eq!(headers["warning"], r#"299 - "unknown field \"spec.foo\"""#);
    assert!(body["spec"].get("foo").is_none());
    // Non-structural schemas are rejected when the CRD is created.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "things.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}}}]}});
    let (status, _, body) = raw(
        &e,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        "application/json",
        &crd.to_string(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // A valid one is Established and served at once.
    let mut good = crd.clone();
    good["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"] = json!("object");
    let (status, _, body) = raw(
        &e,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        "application/json",
        &good.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Established soon after (the real server's controller sets it a moment after the create;
    // the embedded one at once).
    let established = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.com";
            let (_, _, crd) = raw(&e, "GET", path, "application/json", "", "").await;
            let conditions = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
            if conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(established.await.is_ok(), "the CRD becomes Established");
    assert_eq!(
        raw(&e, "GET", "/apis/example.com/v1/namespaces/default/things", "application/json", "", "").await.0,
        200
    );
}

#[tokio::test]
async fn deletion_finalizers_gc_and_dry_run() {
    let e = env().await;
    let client = e.client();
    let api = tf_api(&e);
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = api.create(&PostParams::default(), &example("owner")).await.unwrap();
    let dependent = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "name": "owner", "uid": owner.metadata.uid}]}})).unwrap()
    };
    cms.create(&PostParams::default(), &dependent("dep")).await.unwrap();
    // dryRun: validated and returned, never stored.
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    cms.create(&dry, &dependent("dry")).await.unwrap();
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    api.delete("owner", &DeleteParams { dry_run: true, ..DeleteParams::default() }).await.unwrap();
    assert!(api.get_opt("owner").await.unwrap().is_some());
    // Finalizers hold the object; no new finalizer may be added meanwhile.
    api.patch("owner", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": ["x/y"]}})))
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("owner").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.metadata.deletion_grace_period_seconds, Some(0));
    let more = Patch::Merge(json!({"metadata": {"finalizers": ["x/y", "x/z"]}}));
    assert_eq!(code(&api.patch("owner", &PatchParams::default(), &more).await.unwrap_err()), 422);
    assert!(cms.get_opt("dep").await.unwrap().is_some());
    api.patch("owner", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    assert!(api.get_opt("owner").await.unwrap().is_none());
    // Background garbage collection removes the dependent promptly.
    tokio::time::timeout(Duration::from_secs(3), async {
        while cms.get_opt("dep").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    // Orphan keeps dependents and strips the owner reference.
    let owner = api.create(&PostParams::default(), &example("owner")).await.unwrap();
    let mut keep = dependent("keep");
    keep.metadata.owner_references.as_mut().unwrap()[0].uid.clone_from(owner.metadata.uid.as_ref().unwrap());
    cms.create(&PostParams::default(), &keep).await.unwrap();
    api.delete("owner", &DeleteParams::orphan()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let kept = cms.get("keep").await.unwrap();
    assert!(kept.metadata.owner_references.unwrap_or_default().is_empty());
}

/// Polls until `name` is gone; false after 10 s (the real collector runs in another process).
/// How long a garbage collection may take: the embedded collector acts at once; the real
/// controller-manager's starts watching a newly created CRD's resources only at its next
/// discovery (every 30 s), so on a fresh control plane its first collection can wait that long.
const COLLECTION: Duration = Duration::from_secs(60);

async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    tokio::time::timeout(COLLECTION, async {
        while api.get_opt(name).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok()
}

/// The collector wakes for the writes it must act on (and, for speed, only for those): a
/// dependent created with its owner already gone; a dependent being deleted that drops its
/// reference to an owner waiting in the foreground.
#[tokio::test]
async fn gc_collects_dangling_dependents_and_releases_foreground_owners() {
    let e = env().await;
    let api = tf_api(&e);
    let cms: Api<ConfigMap> = Api::default_namespaced(e.client());
    let dependent = |name: &str, uid: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "alustan.io/v1alpha1", "kind": "Terraform", "name": "owner", "uid": uid}]}})).unwrap()
    };
    cms.create(&PostParams::default(), &dependent("orphan", "no-such-uid")).await.unwrap();
    assert!(gone(&cms, "orphan").await, "a dependent of a missing owner is collected");

    let owner = api.create(&PostParams::default(), &example("owner")).await.unwrap();
    let uid = owner.metadata.uid.as_deref().unwrap();
    // Only a reference with blockOwnerDeletion holds an owner deleted in the foreground.
    let mut held = dependent("held", uid);
    held.metadata.owner_references.as_mut().unwrap()[0].block_owner_deletion = Some(true);
    let mut loose = dependent("loose", uid);
    for cm in [&mut held, &mut loose] {
        cm.metadata.finalizers = Some(vec!["x/hold".into()]);
        cms.create(&PostParams::default(), cm).await.unwrap();
    }
    api.delete("owner", &DeleteParams::foreground()).await.unwrap();
    for name in ["held", "loose"] {
        let deleting = tokio::time::timeout(COLLECTION, async {
            while cms.get(name).await.unwrap().metadata.deletion_timestamp.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        assert!(deleting.await.is_ok(), "the collector deletes {name}, a dependent of a foreground owner");
    }
    assert!(api.get_opt("owner").await.unwrap().is_some(), "a foreground owner waits for its blocking dependent");
    let drop_reference = json!({"metadata": {"ownerReferences": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(drop_reference)).await.unwrap();
    assert!(gone(&api, "owner").await, "the owner goes once its last blocking dependent drops the reference");
    for name in ["held", "loose"] {
        assert!(cms.get_opt(name).await.unwrap().is_some(), "{name}'s own finalizer still holds it");
    }
}

#[tokio::test]
async fn table_responses_use_printer_columns() {
    let e = env().await;
    let api = tf_api(&e);
    api.create(&PostParams::default(), &example("t")).await.unwrap();
    let status = json!({"status": {"state": "Success", "message": "m", "conditions": [{"type": "Ready", "status": "True", "reason": "r", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
    api.patch_status("t", &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (_, _, table) = raw(&e, "GET", "/apis/alustan.io/v1alpha1/namespaces/default/terraforms", accept, "", "").await;
    let cols: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cols, ["Name", "State", "Version", "Ready", "Age", "Message"]);
    assert_eq!(table["columnDefinitions"][5]["priority"], 1);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(
        (cells[0].as_str(), cells[1].as_str(), cells[3].as_str(), cells[5].as_str()),
        (Some("t"), Some("Success"), Some("True"), Some("m"))
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(table["metadata"]["resourceVersion"].is_string());
    let (_, _, full) = raw(
        &e,
        "GET",
        "/apis/alustan.io/v1alpha1/namespaces/default/terraforms/t?includeObject=Object",
        accept,
        "",
        "",
    )
    .await;
    assert_eq!(full["rows"][0]["object"]["kind"], "Terraform");
}

#[tokio::test]
async fn faults_and_request_log() {
    let e = env().await;
    let api = tf_api(&e);
    api.create(&PostParams::default(), &example("f")).await.unwrap();
    e.embedded("fault injection").faults().fail_next(2, Match::verb_resource("get", "terraforms").name("f"), 500);
    assert_eq!(code(&api.get("f").await.unwrap_err()), 500);
    assert_eq!(code(&api.get("f").await.unwrap_err()), 500);
    api.get("f").await.unwrap();
    // kube-rs retries a 503 by itself: the log shows the failure, the caller does not.
    e.embedded("fault injection").faults().fail_next(1, Match::verb_resource("get", "terraforms"), 503);
    api.get("f").await.unwrap();
    e.embedded("fault injection").faults().throttle_next(1, Match::verb_resource("PATCH", "terraforms"), 7);
    let (status, headers, body) = raw(
        &e,
        "PATCH",
        "/apis/alustan.io/v1alpha1/namespaces/default/terraforms/f",
        "application/json",
        "application/merge-patch+json",
        "{}",
    )
    .await;
    assert_eq!((status, headers["retry-after"].to_str().unwrap()), (429, "7"));
    assert_eq!(body["reason"], "TooManyRequests");
    e.embedded("fault injection")
        .faults()
        .delay(Match::verb_resource("list", "terraforms"), Duration::from_millis(200));
    let start = std::time::Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    e.embedded("fault injection").faults().clear();
    let log = e.requests();
    assert_eq!(log.count(|r| r.verb == "get" && r.resource == "terraforms" && r.status == 500), 2);
    assert_eq!(log.count(|r| r.verb == "get" && r.resource == "terraforms" && r.status == 503), 1);
    assert!(
        log.records()
            .iter()
            .any(|r| r.verb == "create" && r.namespace == "default" && r.status == 201 && r.user == "admin")
    );
    let _watch = api.watch(&WatchParams::default(), "0").await.unwrap();
    assert_eq!(e.embedded("watch count").watch_count(), 1);
    e.embedded("closing watches on demand").close_watches();
    assert_eq!(e.embedded("watch count").watch_count(), 0);
}

#[tokio::test]
async fn rbac_forbids_with_status_and_allows_bound_verbs() {
    let opts = ApiServerOptions {
        rbac: true,
        tokens: vec![
            ("admin".into(), UserInfo::admin()),
            ("agent".into(), UserInfo::service_account("alustan", "agent")),
        ],
        anonymous: UserInfo::anonymous(),
        ..ApiServerOptions::default()
    };
    let e = env_with(opts).await;
    let anonymous = e.anonymous();
    assert_eq!(
        code(&Api::<ConfigMap>::default_namespaced(anonymous).list(&ListParams::default()).await.unwrap_err()),
        403
    );
    let agent = e.client_for("agent");
    let api: Api<Terraform> = Api::default_namespaced(agent.clone());
    let err = api.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = &err else { panic!("{err:?}") };
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        r#"terraforms.alustan.io is forbidden: User "system:serviceaccount:alustan:agent" cannot list resource "terraforms" in API group "alustan.io" in the namespace "default""#
    );
    let admin = e.client_for("admin");
    let dynamic = |kind: &str, plural: &str, namespaced: bool| {
        let ar = kube::api::ApiResource {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        if namespaced {
            Api::<kube::api::DynamicObject>::namespaced_with(admin.clone(), "default", &ar)
        } else {
            Api::<kube::api::DynamicObject>::all_with(admin.clone(), &ar)
        }
    };
    let role: kube::api::DynamicObject = serde_json::from_value(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "agent"},
        "rules": [{"apiGroups": ["alustan.io"], "resources": ["terraforms"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": ["alustan.io"], "resources": ["terraforms/status"], "verbs": ["patch"]},
                  {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["allowed"]}]}),
    )
    .unwrap();
    dynamic("ClusterRole", "clusterroles", false).create(&PostParams::default(), &role).await.unwrap();
    let binding: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "agent", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "agent"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "alustan"}]})).unwrap();
    dynamic("RoleBinding", "rolebindings", true).create(&PostParams::default(), &binding).await.unwrap();
    Api::<Terraform>::default_namespaced(admin.clone()).create(&PostParams::default(), &example("r")).await.unwrap();
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let status = Patch::Merge(json!({"status": {"state": "Success"}}));
    api.patch_status("r", &PatchParams::default(), &status).await.unwrap();
    let spec = Patch::Merge(json!({"spec": {"suspend": true}}));
    assert_eq!(code(&api.patch("r", &PatchParams::default(), &spec).await.unwrap_err()), 403);
    // Other namespaces are not covered by the RoleBinding; resourceNames restrict by name.
    let elsewhere: Api<Terraform> = Api::namespaced(agent.clone(), "kube-system");
    assert_eq!(code(&elsewhere.list(&ListParams::default()).await.unwrap_err()), 403);
    let cms: Api<ConfigMap> = Api::default_namespaced(agent.clone());
    assert_eq!(code(&cms.get("allowed").await.unwrap_err()), 404);
    assert_eq!(code(&cms.get("other").await.unwrap_err()), 403);
    // SelfSubjectAccessReview answers for the caller.
    let ssar: k8s_openapi::api::authorization::v1::SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "patch", "group": "alustan.io", "resource": "terraforms", "subresource": "status"}}})).unwrap();
    let reviews: Api<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview> = Api::all(agent);
    let answer = reviews.create(&PostParams::default(), &ssar).await.unwrap();
    assert!(answer.status.unwrap().allowed);
}

#[tokio::test]
async fn rbac_server_side_apply_that_creates_needs_create_too() {
    let opts = ApiServerOptions {
        rbac: true,
        tokens: vec![("agent".into(), UserInfo::service_account("alustan", "agent"))],
        ..ApiServerOptions::default()
    };
    let e = env_with(opts).await;
    let admin = e.client();
    let rbac = |kind: &str, plural: &str| {
        let ar = kube::api::ApiResource {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<kube::api::DynamicObject>::all_with(admin.clone(), &ar)
    };
    let role = |verbs: &[&str]| -> kube::api::DynamicObject {
        serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "agent"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]}))
        .unwrap()
    };
    rbac("ClusterRole", "clusterroles").create(&PostParams::default(), &role(&["patch"])).await.unwrap();
    let binding: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "agent"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "agent"},
        "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "alustan"}]})).unwrap();
    rbac("ClusterRoleBinding", "clusterrolebindings").create(&PostParams::default(), &binding).await.unwrap();

    let agent = e.client_for("agent");
    let cms: Api<ConfigMap> = Api::default_namespaced(agent);
    let apply = PatchParams::apply("agent").force();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    // The real API server's authorizer learns RBAC changes from its informers, a moment after
    // the write: until the binding is seen, the refusal is about `patch`.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let err = loop {
        let err = cms.patch("c", &apply, &Patch::Apply(&config)).await.unwrap_err();
        let seen = matches!(&err, kube::Error::Api(s) if s.message.contains("cannot create"));
        if seen || std::time::Instant::now() > deadline {
            break err;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kube::Error::Api(s) = &err else { panic!("{err:?}") };
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            403,
            r#"configmaps "c" is forbidden: User "system:serviceaccount:alustan:agent" cannot create resource "configmaps" in API group "" in the namespace "default""#
        )
    );
    // With `create` as well it creates; updating an existing object needs `patch` only.
    let mut with_create = rbac("ClusterRole", "clusterroles").get("agent").await.unwrap();
    with_create.data["rules"] = role(&["patch", "create"]).data["rules"].clone();
    rbac("ClusterRole", "clusterroles").replace("agent", &PostParams::default(), &with_create).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while let Err(err) = cms.patch("c", &apply, &Patch::Apply(&config)).await {
        assert!(std::time::Instant::now() < deadline, "create was granted but is still refused: {err:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rbac("ClusterRole", "clusterroles").replace("agent", &PostParams::default(), &role(&["patch"])).await.unwrap();
    let changed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "w"}});
    let updated = cms.patch("c", &apply, &Patch::Apply(&changed)).await.unwrap();
    assert_eq!(updated.data.unwrap()["k"], "w");
}

#[tokio::test]
async fn events_share_storage_and_pod_logs_stream() {
    let e = env().await;
    let client = e.client();
    let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "e1"}, "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "alustan.io/agent",
        "reportingInstance": "a", "action": "Deploy", "reason": "Deployed", "note": "hello", "type": "Normal",
        "regarding": {"kind": "Terraform", "name": "t", "namespace": "default", "uid": "u1"}}))
    .unwrap();
    Api::<k8s_openapi::api::events::v1::Event>::default_namespaced(client.clone())
        .create(&PostParams::default(), &ev)
        .await
        .unwrap();
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let found = core.list(&ListParams::default().fields("involvedObject.name=t,involvedObject.uid=u1")).await.unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].message.as_deref(), Some("hello"));
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // No node has been assigned the Pod (no kubelet here): its log is empty, not an error.
    assert_eq!(pods.logs("p", &LogParams::default()).await.unwrap(), "");
    // A scheduler binds it (spec.nodeName cannot be updated); a second binding is a conflict.
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "elsewhere"}});
    let params = PostParams::default();
    pods.create_subresource::<Value, Value>("binding", "p", &params, &binding).await.unwrap();
    let again = pods.create_subresource::<Value, Value>("binding", "p", &params, &binding).await.unwrap_err();
    let kube::Error::Api(status) = &again else { panic!("{again:?}") };
    assert_eq!(
        (status.code, status.message.as_str()),
        (409, r#"Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "elsewhere""#)
    );
    let bound = pods.get("p").await.unwrap();
    assert_eq!(bound.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("elsewhere"));
    if e.is_real() {
        // The binding sets PodScheduled=True there too, but the real scheduler, which found no
        // node for the Pod, may write its own PodScheduled=False after it: not asserted.
        // The rest writes the Pod's log into the embedded server's store.
        return;
    }
    let conditions = bound.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(conditions.iter().any(|c| c.type_ == "PodScheduled" && c.status == "True"), "{conditions:?}");
    // Bound to a node whose container has not started: 400, "waiting to start".
    assert_eq!(code(&pods.logs("p", &LogParams::default()).await.unwrap_err()), 400);
    e.embedded("pod log injection").pod_logs().append("default", "p", "c", b"a\nb\n");
    assert_eq!(pods.logs("p", &LogParams { tail_lines: Some(1), ..LogParams::default() }).await.unwrap(), "b\n");
    let mut follow = pods.log_stream("p", &LogParams { follow: true, ..LogParams::default() }).await.unwrap();
    let logs = e.embedded("pod log injection").pod_logs().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        logs.append("default", "p", "c", b"c\n");
        logs.finish("default", "p", "c");
    });
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), futures::AsyncReadExt::read_to_end(&mut follow, &mut all))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8(all).unwrap(), "a\nb\nc\n");
}

#[tokio::test]
async fn token_request_issues_a_service_account_token_that_rbac_sees_as_that_account() {
    let opts = ApiServerOptions {
        rbac: true,
        tokens: vec![("admin".into(), UserInfo::admin())],
        anonymous: UserInfo::anonymous(),
        ..ApiServerOptions::default()
    };
    let e = env_with(opts).await;
    let admin = e.client_for("admin");
    let accounts: Api<ServiceAccount> = Api::default_namespaced(admin.clone());
    let request = |seconds: i64| -> TokenRequest {
        serde_json::from_value(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [], "expirationSeconds": seconds}}))
        .unwrap()
    };
    let ask = async |name: &str, seconds: i64| -> Result<TokenRequest, kube::Error> {
        accounts.create_subresource("token", name, &PostParams::default(), &request(seconds)).await
    };
    // The ServiceAccount must exist; lifetimes under ten minutes are refused.
    let missing = ask("runner", 3600).await.unwrap_err();
    assert_eq!(code(&missing), 404);
    let runner: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "runner"}})).unwrap();
    accounts.create(&PostParams::default(), &runner).await.unwrap();
    assert_eq!(code(&ask("runner", 60).await.unwrap_err()), 422);

    let issued = ask("runner", 3600).await.unwrap();
    assert_eq!(issued.spec.as_ref().unwrap().expiration_seconds, Some(3600));
    let token = issued.status.unwrap().token.unwrap();
    let as_runner = e.client_for(&token);
    let err = Api::<ConfigMap>::default_namespaced(as_runner.clone()).list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = &err else { panic!("{err:?}") };
    assert!(s.message.contains(r#"User "system:serviceaccount:default:runner" cannot list"#), "{}", s.message);
    // The same token is a stranger to a different server.
    let other =
        env_with(ApiServerOptions { rbac: true, anonymous: UserInfo::anonymous(), ..ApiServerOptions::default() })
            .await;
    let stranger = other.client_for(&token);
    assert_eq!(
        code(&Api::<ConfigMap>::default_namespaced(stranger).list(&ListParams::default()).await.unwrap_err()),
        401
    );
    // Discovery lists the subresource as the real server does.
    let resources = admin.list_core_api_resources("v1").await.unwrap();
    let sub = resources.resources.iter().find(|r| r.name == "serviceaccounts/token").unwrap();
    assert_eq!(
        (sub.kind.as_str(), sub.group.as_deref(), sub.verbs.clone()),
        ("TokenRequest", Some("authentication.k8s.io"), vec!["create".to_owned()])
    );
}
