//! HTTP to registries: timeouts, retries, and authentication.
//!
//! oci-client does the auth handshake (`GET /v2/`, then a bearer token from the realm the
//! challenge names, or basic auth when the registry asks for it). Tag pages and manifest
//! HEADs go through reqwest directly, because oci-client 0.18 keeps response headers to
//! itself: `Link` (pagination), `Retry-After` and `Docker-Content-Digest` are needed here.
//! Both share one TLS stack (rustls with ring).

use std::time::Duration;

use oci_client::RegistryOperation;
use oci_client::client::ClientProtocol;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use super::credentials::Credentials;
use super::error::{Activity, ScanError, excerpt};
use super::reference::ImageRef;
use super::retry::{RetryPolicy, parse_retry_after};

/// The largest response body read (a tag list of ~1M tags); more is a broken registry.
const MAX_BODY: usize = 32 << 20;
/// How much of an error body goes into a message.
const BODY_EXCERPT: usize = 200;

/// How the agent talks to registries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT`s served over plain HTTP (`--insecure-registry`, as Docker's daemon option).
    pub insecure_registries: Vec<String>,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one whole request, response body included.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// `n` asked for on tag pages; registries may cap it (Docker Hub at 100). `None` lets the
    /// registry choose.
    pub page_size: Option<usize>,
    /// The most tag pages one listing follows: a registry linking further is not ending its
    /// pagination ([`ScanError::Pagination`]). 10,000 pages of Docker Hub's 100 tags are a
    /// million tags, far beyond any real repository.
    pub max_tag_pages: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            page_size: Some(1000),
            max_tag_pages: 10_000,
        }
    }
}

/// The client could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the registry HTTP client: {0}")]
pub struct ClientSetupError(String);

/// Installs ring as the process's rustls provider. Idempotent: a second install fails
/// harmlessly, and whoever installed first (kube, a test) installed ring too.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A registry client shared by every scan.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    oci: oci_client::Client,
    config: ClientConfig,
}

impl RegistryClient {
    pub fn new(config: ClientConfig) -> Result<Self, ClientSetupError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("alustan-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ClientSetupError(err.to_string()))?;
        let oci = oci_client::Client::try_from(oci_client::client::ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure_registries.clone()),
            connect_timeout: Some(config.connect_timeout),
            read_timeout: Some(config.request_timeout),
            platform_resolver: None,
            ..Default::default()
        })
        .map_err(|err| ClientSetupError(err.to_string()))?;
        Ok(Self { http, oci, config })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `http` for `--insecure-registry` hosts, `https` otherwise.
    pub(crate) fn scheme(&self, registry: &str) -> &'static str {
        if self.config.insecure_registries.iter().any(|r| r == registry) { "http" } else { "https" }
    }

    /// A conversation with one repository, authenticating lazily on the first 401.
    /// `authorization` is one an earlier session obtained for the same repository and
    /// credentials: reused until the registry answers 401, then renewed.
    pub(crate) fn session<'a>(
        &'a self,
        image: &'a ImageRef,
        credentials: &'a Credentials,
        authorization: Option<HeaderValue>,
    ) -> Session<'a> {
        Session { client: self, image, credentials, authorization, requests: 0, deadline: None }
    }
}

/// When a session's requests must have ended, and the scan deadline that set it (for the
/// error message).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: tokio::time::Instant,
    pub budget: Duration,
}

/// A response read to its end.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Requests to one repository with one set of credentials, reusing the authorization the
/// handshake produced.
pub(crate) struct Session<'a> {
    client: &'a RegistryClient,
    pub image: &'a ImageRef,
    credentials: &'a Credentials,
    authorization: Option<HeaderValue>,
    /// HTTP requests this session sent itself (retries included, handshakes excluded).
    pub requests: u32,
    /// Requests sent with [`Session::send_within`] end by then, retries and handshake included.
    pub deadline: Option<Deadline>,
}

impl Session<'_> {
    /// `scheme://registry/v2/<repository>/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!(
            "{}://{}/v2/{}/{rest}",
            self.client.scheme(self.image.registry()),
            self.image.registry(),
            self.image.repository()
        )
    }

    pub fn config(&self) -> &ClientConfig {
        &self.client.config
    }

    /// The `Authorization` the handshake produced (marked sensitive: never printed).
    pub fn authorization(&self) -> Option<HeaderValue> {
        self.authorization.clone()
    }

    /// [`Session::send`] bounded by the session's deadline: when it passes, the request (or
    /// the wait before a retry) is abandoned with [`ScanError::Deadline`] naming `activity`.
    pub async fn send_within(
        &mut self,
        method: Method,
        url: &str,
        accept: &str,
        activity: impl FnOnce() -> Activity,
    ) -> Result<Reply, ScanError> {
        let Some(deadline) = self.deadline else {
            return self.send(method, url, accept).await;
        };
        match tokio::time::timeout_at(deadline.at, self.send(method, url, accept)).await {
            Ok(reply) => reply,
            Err(_) => Err(ScanError::Deadline {
                registry: self.image.registry().to_owned(),
                repository: self.image.repository().to_owned(),
                deadline: deadline.budget,
                activity: activity(),
            }),
        }
    }

    /// Sends one request, retrying 429, 5xx and connection failures per the retry policy and
    /// authenticating once on a 401. Other statuses are returned for the caller to judge.
    pub async fn send(&mut self, method: Method, url: &str, accept: &str) -> Result<Reply, ScanError> {
        let policy = self.client.config.retry.clone();
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            attempt += 1;
            self.requests += 1;
            let (retry_after, failure) = match self.attempt(&method, url, accept).await {
                Ok(reply) if reply.status == StatusCode::UNAUTHORIZED && !authenticated => {
                    // The first 401 is the normal start of the handshake, not a failure.
                    authenticated = true;
                    attempt -= 1;
                    self.authenticate().await?;
                    continue;
                }
                Ok(reply) if matches!(reply.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                    return Err(self.unauthorized(reply.status));
                }
                Ok(reply) if is_retryable(reply.status) => {
                    let retry_after = reply
                        .headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
                    (retry_after, self.status_failure(&reply, attempt, retry_after))
                }
                Ok(reply) => return Ok(reply),
                Err(message) => (None, self.transport(attempt, message)),
            };
            let Some(wait) = policy.delay(attempt, retry_after) else {
                return Err(failure);
            };
            tracing::debug!(
                registry = self.image.registry(),
                repository = self.image.repository(),
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %failure,
                "retrying registry request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, method: &Method, url: &str, accept: &str) -> Result<Reply, String> {
        let mut request = self.client.http.request(method.clone(), url).header(ACCEPT, accept);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let mut response = request.send().await.map_err(|err| describe(&err))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| describe(&err))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("response body larger than {} MiB", MAX_BODY >> 20));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, headers, body })
    }

    /// The oci-client handshake: a bearer token when the registry names a token realm, basic
    /// credentials when it asks for basic auth, nothing for an open registry.
    async fn authenticate(&mut self) -> Result<(), ScanError> {
        let auth = self.credentials.registry_auth();
        let reference = oci_client::Reference::with_tag(
            self.image.registry().to_owned(),
            self.image.repository().to_owned(),
            "latest".to_owned(),
        );
        let policy = self.client.config.retry.clone();
        let mut attempt = 0;
        let token = loop {
            attempt += 1;
            match self.client.oci.auth(&reference, &auth, RegistryOperation::Pull).await {
                Ok(token) => break token,
                Err(OciDistributionError::AuthenticationFailure(reason)) => {
                    tracing::debug!(registry = self.image.registry(), reason = %excerpt(reason.as_bytes(), BODY_EXCERPT), "token request refused");
                    return Err(self.unauthorized(StatusCode::UNAUTHORIZED));
                }
                Err(OciDistributionError::RequestError(err)) => {
                    let failure = self.transport(attempt, describe(&err));
                    match policy.delay(attempt, None) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => return Err(failure),
                    }
                }
                Err(other) => return Err(self.protocol(format!("authentication handshake: {other}"))),
            }
        };
        self.authorization = match (token, auth) {
            (Some(token), _) => Some(self.header(&format!("Bearer {token}"))?),
            (None, RegistryAuth::Basic(username, password)) => {
                let pair = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{username}:{password}"),
                );
                Some(self.header(&format!("Basic {pair}"))?)
            }
            (None, _) => None,
        };
        Ok(())
    }

    /// A header value built from a credential; the error never shows the value.
    fn header(&self, value: &str) -> Result<HeaderValue, ScanError> {
        let mut header = HeaderValue::from_str(value)
            .map_err(|_| self.protocol("the credentials contain characters an HTTP header cannot carry".into()))?;
        header.set_sensitive(true);
        Ok(header)
    }

    fn unauthorized(&self, status: StatusCode) -> ScanError {
        ScanError::Unauthorized {
            registry: self.image.registry().to_owned(),
            repository: self.image.repository().to_owned(),
            status: status.as_u16(),
            hint: self.credentials.unauthorized_hint(self.image.registry()),
        }
    }

    fn status_failure(&self, reply: &Reply, attempts: u32, retry_after: Option<Duration>) -> ScanError {
        let (registry, repository) = (self.image.registry().to_owned(), self.image.repository().to_owned());
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            ScanError::RateLimited { registry, repository, attempts, retry_after }
        } else {
            let body = excerpt(&reply.body, BODY_EXCERPT);
            ScanError::RegistryStatus { registry, repository, status: reply.status.as_u16(), attempts, body }
        }
    }

    fn transport(&self, attempts: u32, message: String) -> ScanError {
        ScanError::Transport {
            registry: self.image.registry().to_owned(),
            repository: self.image.repository().to_owned(),
            attempts,
            message,
        }
    }

    pub fn protocol(&self, message: String) -> ScanError {
        ScanError::Protocol {
            registry: self.image.registry().to_owned(),
            repository: self.image.repository().to_owned(),
            message,
        }
    }

    /// An answer the caller did not expect: a client error is a protocol problem (retrying
    /// will not help), a server error a registry failure.
    pub fn status_error(&self, reply: &Reply) -> ScanError {
        if reply.status.is_client_error() {
            self.protocol(format!("unexpected HTTP {}: {}", reply.status, excerpt(&reply.body, BODY_EXCERPT)))
        } else {
            self.status_failure(reply, 1, None)
        }
    }
}

/// 429 and the 5xx that may heal on their own (not 501 Not Implemented or 505).
fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && !matches!(status, StatusCode::NOT_IMPLEMENTED | StatusCode::HTTP_VERSION_NOT_SUPPORTED))
}

/// An error and its causes on one line ("…: connection refused"): reqwest's top-level message
/// alone rarely says what failed.
fn describe(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [200, 400, 401, 403, 404, 501, 505] {
            assert!(!is_retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn insecure_registries_use_plain_http() {
        let client = RegistryClient::new(ClientConfig {
            insecure_registries: vec!["127.0.0.1:5000".into()],
            ..ClientConfig::default()
        })
        .unwrap();
        assert_eq!(client.scheme("127.0.0.1:5000"), "http");
        assert_eq!(client.scheme("127.0.0.1:5001"), "https");
        assert_eq!(client.scheme("ghcr.io"), "https");
    }
}
