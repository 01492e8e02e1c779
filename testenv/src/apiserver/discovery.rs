//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`) in their plain
//! (unaggregated) forms, which kubectl and kube-rs accept when aggregated discovery is not
//! offered. See <https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api>.

use serde_json::{Value, json};

use super::catalog::Catalog;

/// The server version: minor 32 makes kubectl's dispatcher pick its 1.32 build.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

fn group_doc(cat: &Catalog, group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    // The preferred version is the storage version of the group's first resource.
    let preferred = cat
        .all()
        .iter()
        .find(|d| d.group == group)
        .and_then(|d| d.preferred_version())
        .map_or_else(|| versions.first().cloned().unwrap_or_default(), |v| v.name.clone());
    json!({
        "name": group,
        "versions": gvs,
        "preferredVersion": {"groupVersion": format!("{group}/{preferred}"), "version": preferred},
    })
}

pub fn api_groups(cat: &Catalog) -> Value {
    let groups: Vec<Value> =
        cat.groups().iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| group_doc(cat, g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(cat: &Catalog, group: &str) -> Option<Value> {
    let (g, vs) = cat.groups().into_iter().find(|(g, _)| g == group && !g.is_empty())?;
    let mut doc = group_doc(cat, &g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The `APIResourceList` of a group/version, or None when nothing is served there.
pub fn resources(cat: &Catalog, group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for d in cat.all().iter().filter(|d| d.group == group) {
        let Some(v) = d.version(version) else { continue };
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs,
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        list.push(r);
        if v.status {
            list.push(json!({
                "name": format!("{}/status", d.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for sub in &d.extra_subresources {
            list.push(if *sub == "binding" {
                json!({
                    "name": format!("{}/{sub}", d.plural),
                    "singularName": "",
                    "namespaced": d.namespaced,
                    "kind": "Binding",
                    "verbs": ["create"],
                })
            } else if *sub == "token" {
                // TokenRequest lives in another group, as the real discovery document says.
                json!({
                    "name": format!("{}/{sub}", d.plural),
                    "singularName": "",
                    "namespaced": d.namespaced,
                    "group": "authentication.k8s.io",
                    "version": "v1",
                    "kind": "TokenRequest",
                    "verbs": ["create"],
                })
            } else {
                json!({
                    "name": format!("{}/{sub}", d.plural),
                    "singularName": "",
                    "namespaced": d.namespaced,
                    "kind": d.kind,
                    "verbs": ["get"],
                })
            });
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}
