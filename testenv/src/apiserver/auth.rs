//! Authentication (bearer tokens) and RBAC authorization.
//! See <https://kubernetes.io/docs/reference/access-authn-authz/rbac/>: rules grant verbs on
//! (`apiGroups`, `resources` incl. `resource/subresource`, `resourceNames`); `RoleBindings` grant
//! a `Role` or `ClusterRole` within one namespace; `ClusterRoleBindings` grant everywhere. Service
//! account tokens authenticate as `system:serviceaccount:NS:NAME` with the groups
//! `system:serviceaccounts`, `system:serviceaccounts:NS` and `system:authenticated`.
//! Members of `system:masters` are always allowed (as in a real cluster). A server-side apply that
//! creates the object is authorized as `create` as well as `patch` (see `patching.rs`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::handlers::Ctx;
use super::router::Reply;
use super::status::ApiError;
use super::store::Store;
use super::tokens::IssuedTokens;

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A plain user in `system:authenticated` plus the given groups.
    pub fn user(name: &str, groups: &[&str]) -> Self {
        let mut g: Vec<String> = groups.iter().map(|s| (*s).to_owned()).collect();
        g.push("system:authenticated".into());
        Self { name: name.to_owned(), groups: g }
    }

    /// The identity of a ServiceAccount's token.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// A cluster admin (`system:masters`).
    pub fn admin() -> Self {
        Self::user("admin", &["system:masters"])
    }

    pub fn anonymous() -> Self {
        Self { name: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
    }
}

/// What is being asked for.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Set for non-resource URLs (`/version`, `/api`...).
    pub path: Option<String>,
}

/// The server's authentication/authorization settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Enforce RBAC; when false every request is an allowed admin (the default).
    pub rbac: bool,
    /// Bearer token → identity.
    pub tokens: Vec<(String, UserInfo)>,
    /// Who credential-less requests are in RBAC mode.
    pub anonymous: UserInfo,
    /// ServiceAccount tokens issued through `serviceaccounts/{name}/token`.
    pub issued: IssuedTokens,
}

impl AuthConfig {
    /// Resolves the `Authorization` header; Err = 401.
    pub fn authenticate(&self, header: &str) -> Result<UserInfo, ApiError> {
        let token = header.strip_prefix("Bearer ").map(str::trim);
        match token {
            Some(t) => {
                let configured = self.tokens.iter().find(|(k, _)| k == t).map(|(_, u)| u.clone());
                match configured.or_else(|| self.issued.lookup(t)) {
                    Some(u) => Ok(u),
                    None if self.rbac => Err(ApiError::unauthorized()),
                    None => Ok(UserInfo::admin()),
                }
            }
            None if self.rbac => Ok(self.anonymous.clone()),
            None => Ok(UserInfo::admin()),
        }
    }
}

/// Applies `Impersonate-User`/`Impersonate-Group` headers (kubectl's `--as`/`--as-group`, or
/// `as`/`as-groups` in a kubeconfig). In RBAC mode the caller needs the `impersonate` verb on
/// `users` (or `serviceaccounts`) unless it impersonates itself. A service account user with no
/// groups gets the service account groups, as the real server does.
pub fn impersonate(
    st: &Store,
    rbac: bool,
    caller: UserInfo,
    user: &str,
    groups: &[String],
) -> Result<UserInfo, ApiError> {
    if user.is_empty() {
        return Ok(caller);
    }
    let target = match user.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((ns, name)) if groups.is_empty() => UserInfo::service_account(ns, name),
        _ => {
            let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            UserInfo::user(user, &refs)
        }
    };
    if !rbac || target.name == caller.name {
        return Ok(target);
    }
    let attrs = match user.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((ns, name)) => Attributes {
            verb: "impersonate".into(),
            resource: "serviceaccounts".into(),
            namespace: ns.into(),
            name: name.into(),
            ..Attributes::default()
        },
        None => Attributes {
            verb: "impersonate".into(),
            resource: "users".into(),
            name: user.into(),
            ..Attributes::default()
        },
    };
    if allowed(st, &caller, &attrs) { Ok(target) } else { Err(forbidden(&caller, &attrs)) }
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn subject_matches(s: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let name = s.get("name").and_then(Value::as_str).unwrap_or("");
    match s.get("kind").and_then(Value::as_str) {
        Some("User") => name == user.name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = s.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule.get("verbs"));
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if let Some(path) = &a.path {
        return strs(rule.get("nonResourceURLs"))
            .iter()
            .any(|u| *u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p)));
    }
    let groups = strs(rule.get("apiGroups"));
    if !groups.iter().any(|g| *g == "*" || *g == a.group) {
        return false;
    }
    let full = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    let resources = strs(rule.get("resources"));
    let res_ok = resources
        .iter()
        .any(|r| *r == "*" || *r == full || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource)));
    if !res_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str()))
}

fn role_rules(st: &Store, role_ref: &Value, binding_ns: &str) -> Vec<Value> {
    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
    let obj = match role_ref.get("kind").and_then(Value::as_str) {
        Some("ClusterRole") => st.get("rbac.authorization.k8s.io/clusterroles", &(String::new(), name)),
        Some("Role") => st.get("rbac.authorization.k8s.io/roles", &(binding_ns.to_owned(), name)),
        _ => None,
    };
    obj.and_then(|o| o.get("rules").and_then(Value::as_array).cloned()).unwrap_or_default()
}

/// Whether RBAC allows the request.
pub fn allowed(st: &Store, user: &UserInfo, a: &Attributes) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    // Discovery, version and health are open to everyone (system:public-info-viewer,
    // system:discovery); SelfSubjectAccessReview to every authenticated user.
    if a.path.is_some() || (a.group == "authorization.k8s.io" && a.resource == "selfsubjectaccessreviews") {
        return true;
    }
    let check = |binding: &Arc<Value>, ns: &str| {
        strs_any(binding.get("subjects"), |s| subject_matches(s, user, ns))
            && binding.get("roleRef").is_some_and(|r| role_rules(st, r, ns).iter().any(|rule| rule_allows(rule, a)))
    };
    if st.list("rbac.authorization.k8s.io/clusterrolebindings", None).iter().any(|b| check(b, "")) {
        return true;
    }
    !a.namespace.is_empty()
        && st.list("rbac.authorization.k8s.io/rolebindings", Some(&a.namespace)).iter().any(|b| check(b, &a.namespace))
}

fn strs_any(v: Option<&Value>, f: impl Fn(&Value) -> bool) -> bool {
    v.and_then(Value::as_array).is_some_and(|a| a.iter().any(f))
}

/// The 403 a real apiserver sends, e.g. `jobs.batch is forbidden: User "x" cannot create
/// resource "jobs" in API group "batch" in the namespace "default"`.
pub fn forbidden(user: &UserInfo, a: &Attributes) -> ApiError {
    if let Some(path) = &a.path {
        return ApiError::forbidden(
            format!("forbidden: User \"{}\" cannot {} path \"{path}\"", user.name, a.verb),
            json!({}),
        );
    }
    let qualified = if a.group.is_empty() { a.resource.clone() } else { format!("{}.{}", a.resource, a.group) };
    let head = if a.name.is_empty() { qualified } else { format!("{qualified} \"{}\"", a.name) };
    let full = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let mut details = json!({"kind": a.resource});
    if !a.group.is_empty() {
        details["group"] = json!(a.group);
    }
    if !a.name.is_empty() {
        details["name"] = json!(a.name);
    }
    ApiError::forbidden(
        format!(
            "{head} is forbidden: User \"{}\" cannot {} resource \"{full}\" in API group \"{}\" {scope}",
            user.name, a.verb, a.group
        ),
        details,
    )
}

/// `SelfSubjectAccessReview` (what `kubectl auth can-i` asks).
pub fn self_subject_access_review(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let body = super::write::parse_body(ctx)?;
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let s = |p: &str| spec.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    let attrs = if spec.get("nonResourceAttributes").is_some() {
        Attributes {
            verb: s("/nonResourceAttributes/verb"),
            path: Some(s("/nonResourceAttributes/path")),
            ..Attributes::default()
        }
    } else {
        Attributes {
            verb: s("/resourceAttributes/verb"),
            group: s("/resourceAttributes/group"),
            resource: s("/resourceAttributes/resource"),
            subresource: s("/resourceAttributes/subresource"),
            namespace: s("/resourceAttributes/namespace"),
            name: s("/resourceAttributes/name"),
            path: None,
        }
    };
    let allowed = !ctx.shared.auth.rbac || allowed(&ctx.shared.lock(), ctx.user, &attrs);
    let mut status = json!({"allowed": allowed});
    if allowed && ctx.shared.auth.rbac {
        status["reason"] = json!("RBAC: allowed");
    }
    Ok(ctx.reply(
        201,
        json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }),
    ))
}
