//! Watches: a chunked stream of JSON lines (`{"type":"ADDED","object":{...}}`), resumed from a
//! resourceVersion out of the event log, with bookmarks, `sendInitialEvents`, `timeoutSeconds`,
//! selector transitions (an object leaving the selector is DELETED for this watch) and 410 Gone
//! for a compacted resourceVersion.

use crate::error::{ApiError, ApiResult};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{Inner, Req};
use crate::store::{Event, EventKind};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How a watch should render objects.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Render {
    Object,
    Table,
    /// `PartialObjectMetadata` (metadata-only watches, kube's `metadata_watcher`).
    Metadata,
}

struct Filter {
    namespace: String,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches_object(o) && self.fields.matches(o)
    }

    /// The event type this watcher sees, if any.
    fn view(&self, ev: &Event) -> Option<&'static str> {
        if !self.namespace.is_empty() && ev.namespace != self.namespace {
            return None;
        }
        let now = self.matches(&ev.obj);
        match ev.kind {
            EventKind::Added => now.then_some("ADDED"),
            EventKind::Deleted => now.then_some("DELETED"),
            EventKind::Modified => {
                let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = serde_json::to_vec(v).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

fn error_event(e: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": e.to_status()}))
}

/// Start a watch; the returned channel yields the stream's chunks until it ends.
pub fn start(
    inner: Arc<Inner>,
    req: Req,
    render: Render,
    bookmark_every: Duration,
) -> ApiResult<mpsc::Receiver<Bytes>> {
    let (labels, fields) = inner.selectors(&req)?;
    let filter = Filter {
        namespace: req.namespace.clone(),
        labels,
        fields,
    };
    let rv_param = req.q("resourceVersion").map(String::from);
    let send_initial = req.q("sendInitialEvents") == Some("true");
    let bookmarks = req.q("allowWatchBookmarks") == Some("true");
    if send_initial && (req.q("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks) {
        return Err(ApiError::new(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
        ));
    }
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let since: Option<u64> = match rv_param.as_deref() {
        None | Some("0") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };
    let (tx, out) = mpsc::channel::<Bytes>(256);
    let key = req.res.key();

    // Under the lock: the starting point and the subscription, so nothing falls in between.
    let (initial, replay, mut rx, start_rv, gone) = {
        let st = inner.lock();
        let rx = st.tx.subscribe();
        let start_rv = st.rv;
        match since {
            Some(rv) if !send_initial && rv < st.compacted => {
                (vec![], vec![], rx, start_rv, Some(rv))
            }
            Some(rv) if !send_initial => {
                // The log is in resourceVersion order: start after `rv`.
                let from = st.log.partition_point(|e| e.rv <= rv);
                let replay: Vec<Arc<Event>> = st
                    .log
                    .range(from..)
                    .filter(|e| e.res == key)
                    .cloned()
                    .collect();
                (vec![], replay, rx, start_rv, None)
            }
            _ => {
                let objs: Vec<Value> =
                    st.list_matching(&key, &req.namespace, |o| filter.matches(o));
                (objs, vec![], rx, start_rv, None)
            }
        }
    };
    let mut kill = inner.kill_watches.subscribe();
    tokio::spawn(async move {
        let res = req.res.clone();
        let version = req.version.clone();
        let send_obj = |kind: &'static str, obj: Value| {
            let object = match render {
                Render::Object => obj,
                Render::Metadata => crate::table::partial_metadata(&obj),
                Render::Table => crate::table::table(
                    &res,
                    &version,
                    &[obj],
                    json!({}),
                    req.q("includeObject").unwrap_or("PartialObjectMetadata"),
                ),
            };
            line(&json!({"type": kind, "object": object}))
        };
        let bookmark = |rv: u64, initial_end: bool| {
            let mut md = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                &json!({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version(&version), "metadata": md}}),
            )
        };
        if let Some(rv) = gone {
            let e = ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                inner.lock().compacted + 1
            ));
            let _ = tx.send(error_event(&e)).await;
            return;
        }
        let initial = match inner.to_version(&res, initial, &version).await {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(error_event(&e)).await;
                return;
            }
        };
        for o in initial {
            if tx.send(send_obj("ADDED", o)).await.is_err() {
                return;
            }
        }
        if send_initial && tx.send(bookmark(start_rv, true)).await.is_err() {
            return;
        }
        let mut last_rv = start_rv;
        for ev in replay {
            last_rv = last_rv.max(ev.rv);
            if let Some(kind) = filter.view(&ev) {
                match inner.to_version(&res, vec![ev.obj.clone()], &version).await {
                    Ok(mut v) => {
                        if tx
                            .send(send_obj(kind, v.pop().unwrap_or_default()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(error_event(&e)).await;
                        return;
                    }
                }
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let ev = match ev {
                        Ok(ev) => ev,
                        // Too slow a reader, or the server is gone: end the stream; clients resume.
                        Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if ev.rv <= last_rv { continue; }
                    last_rv = ev.rv;
                    if ev.res != key { continue; }
                    let Some(kind) = filter.view(&ev) else { continue };
                    match inner.to_version(&res, vec![ev.obj.clone()], &version).await {
                        Ok(mut v) => {
                            if tx.send(send_obj(kind, v.pop().unwrap_or_default())).await.is_err() { return; }
                        }
                        Err(e) => { let _ = tx.send(error_event(&e)).await; return; }
                    }
                }
                _ = tick.tick(), if bookmarks => {
                    if tx.send(bookmark(last_rv, false)).await.is_err() { return; }
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
                _ = kill.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(out)
}
