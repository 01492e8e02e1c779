//! A minimal OpenAPI v3 (`/openapi/v3`): an index of group-versions and, per group-version, a
//! document whose operations carry `x-kubernetes-group-version-kind` and the `fieldValidation`
//! query parameter. That is what kubectl 1.32 checks before trusting server-side field
//! validation (it then sends `fieldValidation=Strict` instead of validating client-side).
//! Component schemas are the CRD's `openAPIV3Schema` for custom resources and a bare object
//! for built-ins. `/openapi/v2` is a 404 (kubectl tolerates it once v3 answers).

use serde_json::{Map, Value, json};

use super::catalog::Catalog;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

pub fn index(cat: &Catalog) -> Value {
    let mut paths = Map::new();
    for (g, vs) in cat.groups() {
        for v in vs {
            let p = gv_path(&g, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", cat.generation)}),
            );
        }
    }
    json!({"paths": paths})
}

fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let g = if group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else {
        group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{g}.{version}.{kind}")
}

/// The document for `api/v1` or `apis/{group}/{version}`.
pub fn document(cat: &Catalog, path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), (*v).to_owned()),
        ["apis", g, v] => ((*g).to_owned(), (*v).to_owned()),
        _ => return None,
    };
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for d in cat.all().iter().filter(|d| d.group == group) {
        let Some(ver) = d.version(&version) else { continue };
        let gvk = json!({"group": group, "version": version, "kind": d.kind});
        let name = schema_name(&group, &version, &d.kind);
        let mut schema = ver.schema.clone().unwrap_or_else(|| json!({"type": "object"}));
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(name.clone(), schema);
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        let op = |id: &str, action: &str| {
            json!({
                "operationId": id,
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}},
            })
        };
        let base = format!("/{}", gv_path(&group, &version));
        let coll = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        paths.insert(
            coll.clone(),
            json!({"get": op(&format!("list{}", d.kind), "list"), "post": op(&format!("create{}", d.kind), "post")}),
        );
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": op(&format!("read{}", d.kind), "get"),
                "put": op(&format!("replace{}", d.kind), "put"),
                "patch": op(&format!("patch{}", d.kind), "patch"),
                "delete": op(&format!("delete{}", d.kind), "delete"),
            }),
        );
        if ver.status {
            paths.insert(
                format!("{coll}/{{name}}/status"),
                json!({"get": op(&format!("read{}Status", d.kind), "get"), "put": op(&format!("replace{}Status", d.kind), "put"), "patch": op(&format!("patch{}Status", d.kind), "patch")}),
            );
        }
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
