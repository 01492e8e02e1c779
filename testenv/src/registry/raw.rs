//! A tiny plain-HTTP client for the loopback registry: raw requests let tests see exactly what
//! the registry answers (status, headers, `"tags": null`), which `oci-client` hides.

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::{Credentials, RegistryError};

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, RegistryError> {
        serde_json::from_slice(&self.body).map_err(|source| RegistryError::Json {
            what: format!("a {} response: {}", self.status, self.text()),
            source,
        })
    }

    /// A header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Plain-HTTP client bound to one `host:port`, optionally sending HTTP basic credentials.
#[derive(Clone)]
pub struct RawClient {
    host_port: String,
    authorization: Option<HeaderValue>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl RawClient {
    pub fn new(host_port: impl Into<String>) -> Self {
        Self {
            host_port: host_port.into(),
            authorization: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends `Authorization: Basic …` on every request.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Option<&Credentials>) -> Self {
        self.authorization = credentials.and_then(basic_authorization);
        self
    }

    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    pub async fn get(&self, path: &str) -> Result<RawResponse, RegistryError> {
        self.request(Method::GET, path, HeaderMap::new(), Bytes::new()).await
    }

    /// Sends one request (`path` includes the query) and reads the whole response.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<RawResponse, RegistryError> {
        let http_error = |source: Box<dyn std::error::Error + Send + Sync>| RegistryError::Http {
            method: method.clone(),
            host_port: self.host_port.clone(),
            path: path.to_owned(),
            source,
        };
        let mut builder = Request::builder().method(method.clone()).uri(format!("http://{}{path}", self.host_port));
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth);
        }
        let mut request = builder.body(Full::new(body)).map_err(|err| http_error(err.into()))?;
        request.headers_mut().extend(headers);
        let response = self.client.request(request).await.map_err(|err| http_error(err.into()))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|err| http_error(err.into()))?.to_bytes();
        Ok(RawResponse { status: parts.status, headers: parts.headers, body })
    }
}

fn basic_authorization(credentials: &Credentials) -> Option<HeaderValue> {
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", credentials.username, credentials.password));
    HeaderValue::from_str(&format!("Basic {token}")).ok()
}
