//! Kubeconfig files for kubectl and kube-rs pointing at the test server (plain HTTP).

use std::path::Path;

use serde_json::json;

use super::auth::UserInfo;

/// Renders a kubeconfig with one cluster, one user (token or none) and a current context.
pub fn render(server: &str, user: &str, token: Option<&str>, namespace: &str, identity: Option<&UserInfo>) -> String {
    let mut user_entry = match token {
        Some(t) => json!({"token": t}),
        None => json!({}),
    };
    if let Some(who) = identity {
        user_entry["as"] = json!(who.name);
        let groups: Vec<&String> = who.groups.iter().filter(|g| *g != "system:authenticated").collect();
        if !groups.is_empty() && !who.name.starts_with("system:serviceaccount:") {
            user_entry["as-groups"] = json!(groups);
        }
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": server}}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": user, "namespace": namespace}}],
        "current-context": "testenv",
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

pub fn write(
    path: &Path,
    server: &str,
    user: &str,
    token: Option<&str>,
    identity: Option<&UserInfo>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(server, user, token, "default", identity))
}
