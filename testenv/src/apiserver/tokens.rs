//! ServiceAccount tokens: the `serviceaccounts/{name}/token` subresource (`TokenRequest`,
//! `authentication.k8s.io/v1`), which the kubelet calls to fill a Pod's
//! `/var/run/secrets/kubernetes.io/serviceaccount/token`.
//!
//! As the real server: the ServiceAccount must exist (404 otherwise), `expirationSeconds`
//! defaults to one hour and may not be under ten minutes, and the token authenticates as
//! `system:serviceaccount:NS:NAME` until it expires. Approximation: tokens are opaque random
//! strings, not signed JWTs, and deleting the ServiceAccount or the bound Pod does not revoke
//! them (the real server checks the bound objects on every request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use super::auth::UserInfo;
use super::handlers::Ctx;
use super::router::Reply;
use super::status::ApiError;
use super::util::random_u64;
use super::write::parse_body;

/// The default and the shortest token lifetime the real server accepts.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MIN_EXPIRATION_SECONDS: i64 = 600;

/// Tokens issued so far: token → (identity, expiry in Unix seconds).
#[derive(Debug, Clone, Default)]
pub struct IssuedTokens(Arc<Mutex<HashMap<String, (UserInfo, i64)>>>);

impl IssuedTokens {
    /// The identity of a token that was issued and has not expired.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        let now = jiff::Timestamp::now().as_second();
        let tokens = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.get(token).filter(|(_, expires)| *expires > now).map(|(user, _)| user.clone())
    }

    fn issue(&self, user: UserInfo, expires: i64) -> String {
        let token = format!("testenv-sa-{:016x}{:016x}", random_u64(), random_u64());
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(token.clone(), (user, expires));
        token
    }
}

/// `POST …/serviceaccounts/{name}/token`.
pub fn token_request(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let (namespace, name) = ctx.key();
    if ctx.shared.lock().get(&ctx.def.store, &(namespace.clone(), name.clone())).is_none() {
        return Err(ApiError::not_found(&ctx.def.target(&name)));
    }
    let body = parse_body(ctx)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let seconds = spec.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            ),
        ));
    }
    let expires = jiff::Timestamp::now().as_second() + seconds;
    let token = ctx.shared.auth.issued.issue(UserInfo::service_account(&namespace, &name), expires);
    let expiration = jiff::Timestamp::from_second(expires).map(|t| t.to_string()).unwrap_or_default();
    let audiences = spec.get("audiences").cloned().filter(|a| a.as_array().is_some_and(|a| !a.is_empty()));
    Ok(ctx.reply(
        201,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
            "spec": {
                "audiences": audiences.unwrap_or_else(|| json!(["https://kubernetes.default.svc"])),
                "expirationSeconds": seconds,
                "boundObjectRef": spec.get("boundObjectRef").cloned().unwrap_or(Value::Null),
            },
            "status": {"token": token, "expirationTimestamp": expiration},
        }),
    ))
}
