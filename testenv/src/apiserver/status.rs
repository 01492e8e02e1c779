//! `metav1.Status` errors shaped like the real apiserver's (`k8s.io/apimachinery` `errors`),
//! because clients branch on `reason` and `code` and users read `message`.
//! See <https://kubernetes.io/docs/reference/using-api/api-concepts/#http-status-codes>.

use serde_json::{Map, Value, json};

/// A failed request, rendered as a `Status` object with the given HTTP code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// The HTTP status code (also `Status.code`).
    pub code: u16,
    /// The `Status.reason` (`NotFound`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// The human-readable `Status.message`.
    pub message: String,
    /// `Status.details`, when the error concerns one object.
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header (429/503).
    pub retry_after: Option<u64>,
}

/// The object an error is about: what `details` and the message name.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    /// The plural resource name (`terraforms`).
    pub resource: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    /// `terraforms.alustan.io`, or `pods` in the core group.
    pub fn qualified_resource(&self) -> String {
        qualify(self.resource, self.group)
    }

    /// `Terraform.alustan.io`, or `Pod` in the core group.
    pub fn qualified_kind(&self) -> String {
        qualify(self.kind, self.group)
    }

    fn details(&self, kind: &str) -> Value {
        let mut d = Map::new();
        d.insert("name".into(), json!(self.name));
        if !self.group.is_empty() {
            d.insert("group".into(), json!(self.group));
        }
        d.insert("kind".into(), json!(kind));
        Value::Object(d)
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() { name.to_owned() } else { format!("{name}.{group}") }
}

/// One `StatusCause` of an Invalid error.
#[derive(Debug, Clone)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None, retry_after: None }
    }

    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(t: &Target<'_>) -> Self {
        Self::new(404, "NotFound", format!("{} \"{}\" not found", t.qualified_resource(), t.name))
            .with_details(t.details(t.resource))
    }

    /// A path no route or resource matches.
    pub fn no_route() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({}))
    }

    pub fn already_exists(t: &Target<'_>) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{}\" already exists", t.qualified_resource(), t.name))
            .with_details(t.details(t.resource))
    }

    /// The optimistic-concurrency failure of a write with a stale resourceVersion.
    pub fn conflict(t: &Target<'_>, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{}\": {why}", t.qualified_resource(), t.name),
        )
        .with_details(t.details(t.resource))
    }

    pub fn stale(t: &Target<'_>) -> Self {
        Self::conflict(t, "the object has been modified; please apply your changes to the latest version and try again")
    }

    /// 422 with field causes; the message lists them as `field.ErrorList` does.
    pub fn invalid(t: &Target<'_>, causes: &[Cause]) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
            .collect();
        let joined = if list.len() == 1 { list[0].clone() } else { format!("[{}]", list.join(", ")) };
        let mut details = t.details(t.kind);
        details["causes"] = Value::Array(
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect(),
        );
        Self::new(422, "Invalid", format!("{} \"{}\" is invalid: {joined}", t.qualified_kind(), t.name))
            .with_details(details)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(message: impl Into<String>, details: Value) -> Self {
        Self::new(403, "Forbidden", message).with_details(details)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    pub fn unsupported_media_type(got: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
        .with_details(json!({"causes": [{"reason": "", "message": got}]}))
    }

    /// 410: the requested resourceVersion has left the bounded history.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
            .with_details(json!({"causes": [{"message": message}]}))
    }

    /// A generic status for an injected fault with the given code.
    pub fn from_code(code: u16, retry_after: Option<u64>) -> Self {
        let (reason, message): (&'static str, &str) = match code {
            409 => ("Conflict", "Operation cannot be fulfilled: injected conflict"),
            429 => ("TooManyRequests", "Too many requests, please try again later."),
            500 => ("InternalError", "Internal error occurred: injected fault"),
            503 => ("ServiceUnavailable", "The server is currently unable to handle the request"),
            504 => ("Timeout", "The server was unable to return a response in the time allotted"),
            404 => ("NotFound", "the server could not find the requested resource"),
            403 => ("Forbidden", "forbidden: injected fault"),
            _ => ("Unknown", "injected fault"),
        };
        let mut e = Self::new(code, reason, message);
        if let Some(secs) = retry_after {
            e.retry_after = Some(secs);
            e.details = Some(json!({"retryAfterSeconds": secs}));
        }
        e
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}
