//! Listing every tag of a repository: `GET /v2/<name>/tags/list`, following
//! `Link: <…>; rel="next"` until the registry stops sending one (the distribution spec's
//! pagination, as Docker Hub and GHCR page). A registry that ignores `n` (distribution 2.8)
//! answers everything at once without a `Link`, which ends the walk after one request.
//!
//! A registry whose `Link`s loop (A → B → A) or never end must not keep a scan busy: the walk
//! stops at the first URL it has already fetched, after `ClientConfig::max_tag_pages` pages,
//! and when the scan deadline passes, each with an error naming the repository and the page.

use std::collections::{HashMap, HashSet};

use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::client::Session;
use super::error::{Activity, ScanError};

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

/// Lists every tag, following `Link` pagination. The walk stops with
/// [`ScanError::Pagination`] when a page links to a URL already fetched (any loop, not only a
/// page linking to itself) or after `max_tag_pages` pages, and with [`ScanError::Deadline`]
/// when the session's deadline passes (the time cap).
pub(crate) async fn list_all(session: &mut Session<'_>) -> Result<TagList, ScanError> {
    let max_pages = session.config().max_tag_pages.max(1);
    let mut page_size = session.config().page_size;
    let mut url = first_page(session, page_size);
    let mut tags = Vec::new();
    let mut seen = HashSet::new();
    // Every page fetched, by normalized URL, with its page number.
    let mut visited: HashMap<String, u32> = HashMap::new();
    let mut pages = 0;
    loop {
        let page = pages + 1;
        let reply = session
            .send_within(Method::GET, &url, "application/json", || Activity::Listing { page, url: shown(&url) })
            .await?;
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
        pages = page;
        visited.insert(normalized(&url), page);
        let body: Page = serde_json::from_slice(&reply.body)
            .map_err(|err| session.protocol(format!("the tag list is not the expected JSON: {err}")))?;
        for tag in body.tags.unwrap_or_default() {
            if seen.insert(tag.clone()) {
                tags.push(tag);
            }
        }
        let Some(next) = next_page(&reply.headers, &url).map_err(|m| session.protocol(m))? else {
            return Ok(TagList { tags, pages });
        };
        let looped_to = visited.get(&normalized(&next)).copied();
        if looped_to.is_some() || pages >= max_pages {
            return Err(ScanError::Pagination {
                registry: session.image.registry().to_owned(),
                repository: session.image.repository().to_owned(),
                pages,
                next: shown(&next),
                looped_to,
            });
        }
        url = next;
    }
}

/// The form URLs are compared in: parsed and serialized again, so `%7E` and `~` or an
/// explicit default port do not hide a loop.
fn normalized(url: &str) -> String {
    Url::parse(url).map_or_else(|_| url.to_owned(), String::from)
}

/// A URL as messages show it: without any user information a registry might have put in a
/// `Link`.
fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.into()
        }
        _ => url.to_owned(),
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
