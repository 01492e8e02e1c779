//! WATCH: newline-delimited JSON events over a chunked response.
//!
//! Per the API concepts docs ("Efficient detection of changes", "Watch bookmarks", "Streaming
//! lists", "410 Gone responses"):
//! - no `resourceVersion` (or `0`): synthetic ADDED events for the current state first;
//! - `resourceVersion=N`: every change after N, or an ERROR event (410 Expired) when N has left
//!   the bounded history;
//! - `sendInitialEvents=true&resourceVersionMatch=NotOlderThan`: the current state as ADDED,
//!   then a BOOKMARK annotated `k8s.io/initial-events-end: "true"`;
//! - `allowWatchBookmarks=true`: periodic BOOKMARK events carrying the latest revision;
//! - selectors apply to both the old and new object: an object leaving the selection is
//!   reported DELETED, one entering it ADDED;
//! - `timeoutSeconds` ends the stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Shared;
use super::catalog::{ResourceDef, VersionDef};
use super::handlers::{Ctx, external};
use super::router::{Body, Reply};
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::{Change, EventType};
use super::table::{self, Include};

/// How a watch renders its events.
struct View {
    def: Arc<ResourceDef>,
    version: VersionDef,
    sel: Selectors,
    table: Option<Include>,
}

/// A watch event line, serialized from the borrowed object (no copy of it).
#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

fn line_of(kind: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl View {
    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        match self.table {
            Some(include) => line_of(kind, &table::render_one(&self.def, &self.version, obj, include)),
            None => line_of(kind, obj),
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.def.kind, "apiVersion": self.def.api_version(&self.version.name), "metadata": meta});
        let mut s = json!({"type": "BOOKMARK", "object": obj}).to_string();
        s.push('\n');
        Bytes::from(s)
    }

    fn ext<'a>(&self, obj: &'a Value) -> std::borrow::Cow<'a, Value> {
        external(&self.def, &self.version.name, obj)
    }

    /// The event (if any) a change produces for this watch. Every watch of the same version
    /// without a table shares one serialization of it (see [`Change::rendered`]).
    fn event(&self, c: &Change) -> Option<Bytes> {
        let new = self.ext(&c.obj);
        let now = self.sel.matches(&new);
        let kind = match c.kind {
            EventType::Modified => {
                let before = c.prev.as_ref().is_some_and(|p| self.sel.matches(&self.ext(p)));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            k if now => k.as_str(),
            _ => return None,
        };
        if self.table.is_some() {
            return Some(self.line(kind, &new));
        }
        Some(c.rendered(&self.version.name, kind, || line_of(kind, &new)))
    }
}

fn error_line(e: &ApiError) -> Bytes {
    let mut s = json!({"type": "ERROR", "object": e.to_status()}).to_string();
    s.push('\n');
    Bytes::from(s)
}

pub fn serve(ctx: &Ctx<'_>) -> Reply {
    match start(ctx) {
        Ok(r) => r,
        Err(e) => ctx.reply(e.code, e.to_status()),
    }
}

fn start(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let sel = ctx.selectors()?;
    let req = ctx.req;
    let bookmarks = req.flag("allowWatchBookmarks");
    let initial = req.flag("sendInitialEvents");
    if initial && req.param("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::new(
            422,
            "Invalid",
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let since = match req.param("resourceVersion") {
        None | Some("" | "0") => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?),
    };
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let view = View {
        def: Arc::clone(&ctx.def),
        version: ctx.version.clone(),
        sel,
        table: ctx.wants_table().then(|| Include::parse(req.param("includeObject"))),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let ns = ctx.rp.namespace.as_deref();
    let started = {
        let mut st = ctx.shared.lock();
        st.watch(&ctx.def.store, ns, if initial { None } else { since })
    };
    let mut first = Vec::new();
    let feed = match started {
        Err(too_old) => {
            let e = ApiError::gone(format!("too old resource version: {} ({})", too_old.requested, too_old.oldest));
            first.push(error_line(&e));
            None
        }
        Ok(ws) => {
            for obj in &ws.current {
                let o = view.ext(obj);
                if view.sel.matches(&o) {
                    first.push(view.line("ADDED", &o));
                }
            }
            if initial {
                first.push(view.bookmark(ws.rv, true));
            }
            first.extend(ws.replay.iter().filter_map(|c| view.event(c)));
            Some(ws.rx)
        }
    };
    let shared = Arc::clone(ctx.shared);
    tokio::spawn(pump(shared, view, first, feed, tx, timeout, bookmarks));
    Ok(Reply { status: 200, body: Body::Stream(rx, "application/json"), headers: Vec::new() })
}

async fn pump(
    shared: Arc<Shared>,
    view: View,
    first: Vec<Bytes>,
    feed: Option<mpsc::UnboundedReceiver<Arc<Change>>>,
    tx: mpsc::Sender<Bytes>,
    timeout: Duration,
    bookmarks: bool,
) {
    for line in first {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let Some(mut feed) = feed else { return };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(shared.bookmark_interval);
    tick.tick().await;
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            change = feed.recv() => {
                let Some(c) = change else { return };
                if let Some(line) = view.event(&c)
                    && tx.send(line).await.is_err()
                {
                    return;
                }
            }
            _ = tick.tick(), if bookmarks => {
                // Everything up to the current revision is either sent or queued in `feed`:
                // drain it first so the bookmark never runs ahead of an event.
                let mut lines = Vec::new();
                let rv = {
                    let st = shared.lock();
                    while let Ok(c) = feed.try_recv() {
                        lines.extend(view.event(&c));
                    }
                    st.rv()
                };
                lines.push(view.bookmark(rv, false));
                for line in lines {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            }
            () = &mut deadline => return,
            _ = shutdown.changed() => return,
            () = tx.closed() => return,
        }
    }
}
