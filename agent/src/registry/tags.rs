//! Listing every tag of a repository: `GET /v2/<name>/tags/list`, following
//! `Link: <…>; rel="next"` until the registry stops sending one (the distribution spec's
//! pagination, as Docker Hub and GHCR page). A registry that ignores `n` (distribution 2.8)
//! answers everything at once without a `Link`, which ends the walk after one request.

use std::collections::HashSet;

use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::client::Session;
use super::error::ScanError;

/// Far more pages than any real repository needs; a registry sending more is looping.
const MAX_PAGES: u32 = 100_000;

/// Every tag of a repository, in the order the registry listed them, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList {
    pub tags: Vec<String>,
    /// Pages fetched (successful tag-list responses).
    pub pages: u32,
}

#[derive(Deserialize)]
struct Page {
    /// `null` when every tag was deleted (distribution 2.8): an empty repository.
    #[serde(default)]
    tags: Option<Vec<String>>,
}

pub(crate) async fn list_all(session: &mut Session<'_>) -> Result<TagList, ScanError> {
    let mut page_size = session.config().page_size;
    let mut url = first_page(session, page_size);
    let mut tags = Vec::new();
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let reply = session.send(Method::GET, &url, "application/json").await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(ScanError::UnknownRepository {
                    registry: session.image.registry().to_owned(),
                    repository: session.image.repository().to_owned(),
                });
            }
            // A registry whose page limit is below our `n` may refuse it: let it choose.
            StatusCode::BAD_REQUEST
                if pages == 0 && page_size.is_some() && contains(&reply.body, b"PAGINATION_NUMBER_INVALID") =>
            {
                page_size = None;
                url = first_page(session, page_size);
                continue;
            }
            _ => return Err(session.status_error(&reply)),
        }
        pages += 1;
        let page: Page = serde_json::from_slice(&reply.body)
            .map_err(|err| session.protocol(format!("the tag list is not the expected JSON: {err}")))?;
        for tag in page.tags.unwrap_or_default() {
            if seen.insert(tag.clone()) {
                tags.push(tag);
            }
        }
        match next_page(&reply.headers, &url).map_err(|m| session.protocol(m))? {
            Some(next) if pages >= MAX_PAGES || next == url => {
                return Err(session.protocol(format!("tag pagination does not end (page {pages}: {next})")));
            }
            Some(next) => url = next,
            None => return Ok(TagList { tags, pages }),
        }
    }
}

fn first_page(session: &Session<'_>, page_size: Option<usize>) -> String {
    match page_size {
        Some(n) => session.url(&format!("tags/list?n={n}")),
        None => session.url("tags/list"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The `rel="next"` target of the `Link` headers, resolved against the current URL. Only
/// same-origin links are followed: credentials must not leak to another host.
fn next_page(headers: &HeaderMap, current: &str) -> Result<Option<String>, String> {
    let Some(target) = headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()).find_map(next_target) else {
        return Ok(None);
    };
    let base = Url::parse(current).map_err(|err| format!("bad URL {current}: {err}"))?;
    let next = base.join(target).map_err(|err| format!("bad Link target {target:?}: {err}"))?;
    if next.origin() != base.origin() {
        return Err(format!(
            "the next tag page is on another origin ({}); not following it",
            next.origin().ascii_serialization()
        ));
    }
    Ok(Some(next.into()))
}

/// Finds `<target>; rel="next"` (RFC 8288) in one header value, which may hold several links.
fn next_target(value: &str) -> Option<&str> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let params_end = rest[close..].find('<').map_or(rest.len(), |i| close + i);
        let params = &rest[close + 1..params_end];
        let is_next = params.split(';').filter_map(|p| p.split_once('=')).any(|(key, value)| {
            key.trim().eq_ignore_ascii_case("rel")
                && value.trim().trim_matches('"').split_ascii_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target);
        }
        rest = &rest[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn link_targets() {
        assert_eq!(next_target(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#), Some("/v2/a/tags/list?n=2&last=b"));
        assert_eq!(next_target(r#"<https://x/prev>; rel="prev", <https://x/next>; rel=next"#), Some("https://x/next"));
        assert_eq!(next_target(r#"<https://x/a>; rel="prev last""#), None);
        assert_eq!(next_target(r#"<https://x/a>; title="x"; rel="first next""#), Some("https://x/a"));
        assert_eq!(next_target("garbage"), None);
    }

    #[test]
    fn next_page_is_resolved_and_same_origin() {
        let current = "http://127.0.0.1:5000/v2/a/tags/list?n=2";
        let mut headers = HeaderMap::new();
        assert_eq!(next_page(&headers, current), Ok(None));
        headers.insert(LINK, HeaderValue::from_static(r#"</v2/a/tags/list?n=2&last=v1.0.0>; rel="next""#));
        assert_eq!(
            next_page(&headers, current),
            Ok(Some("http://127.0.0.1:5000/v2/a/tags/list?n=2&last=v1.0.0".into()))
        );
        headers.insert(LINK, HeaderValue::from_static(r#"<http://evil.example/v2/a/tags/list>; rel="next""#));
        assert!(next_page(&headers, current).unwrap_err().contains("another origin"));
    }

    #[test]
    fn null_tags_is_an_empty_page() {
        let page: Page = serde_json::from_str(r#"{"name":"a","tags":null}"#).unwrap();
        assert_eq!(page.tags, None);
        let page: Page = serde_json::from_str(r#"{"name":"a","tags":["1.0.0"]}"#).unwrap();
        assert_eq!(page.tags, Some(vec!["1.0.0".to_owned()]));
    }
}
