//! Health checks and the status report.
//!
//! Every `healthCheckIntervalMs` each backend gets a check of its own (not a client's
//! session): `initialize`, `tools/list`, then the session is closed. A check is a call like any
//! other for the circuit breaker: an open circuit is not checked until `circuitOpenMs` has
//! passed, and then the check is the half-open trial. A backend that comes back, goes away or
//! changes its tools makes connected clients receive `notifications/tools/list_changed`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::aggregator::{list_all, Aggregator};
use super::backend::{Failure, Link};
use super::breaker::{CheckFailed, Checked, Health};
use super::config::{BackendReport, StatusReport};
use super::merge;

/// Checks every backend now and then for ever.
pub async fn run(agg: Arc<Aggregator>) {
    let mut ticker = tokio::time::interval(agg.settings.health_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let checks: Vec<_> = (0..agg.links.len())
            .map(|b| tokio::spawn(check(agg.clone(), b)))
            .collect();
        for c in checks {
            let _ = c.await;
        }
    }
}

/// Listens to backend `b`'s own notifications on a session of the runtime's (one per backend,
/// not per client: the bridge and the SDK servers send `list_changed` to every session) and
/// passes its `list_changed` notifications on to every client. Reconnects after
/// `healthCheckIntervalMs`; stops for a backend without a GET stream.
pub async fn watch(agg: Arc<Aggregator>, b: usize) {
    let link = agg.links[b].clone();
    loop {
        match watch_once(&agg, &link).await {
            Ok(false) => {
                tracing::info!(backend = %link.name(), "the backend offers no GET stream; its list_changed notifications are not heard");
                return;
            }
            Ok(true) => {}
            Err(e) => {
                tracing::debug!(backend = %link.name(), error = %e, "the backend's GET stream ended")
            }
        }
        tokio::time::sleep(agg.settings.health_interval).await;
    }
}

/// One GET stream, to its end; false when the backend has none.
async fn watch_once(agg: &Aggregator, link: &Link) -> Result<bool, Failure> {
    if link.settings.sse {
        // The session's one stream carries everything; its reader passes the methods on.
        let (tx, mut notes) = tokio::sync::mpsc::channel(16);
        let _session = link.open_with(Some(tx)).await?;
        while let Some(method) = notes.recv().await {
            pass_on(agg, link, &method);
        }
        return Ok(true);
    }
    let session = link.open().await?;
    let Some(mut body) = link.open_stream(&session).await? else {
        link.close(&session).await;
        return Ok(false);
    };
    let mut events = crate::bridge::remote::SseReader::default();
    while let Some(event) = events
        .next(&mut body, super::backend::MAX_MESSAGE_BYTES)
        .await
        .map_err(Failure::Protocol)?
    {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&event.data) else {
            continue;
        };
        if msg.get("id").is_some() {
            continue;
        }
        if let Some(method) = msg.get("method").and_then(serde_json::Value::as_str) {
            pass_on(agg, link, method);
        }
    }
    link.close(&session).await;
    Ok(true)
}

/// A backend's notification outside any answer, passed on to every client when it is one
/// of the `list_changed` ones.
fn pass_on(agg: &Aggregator, link: &Link, method: &str) {
    match method {
        "notifications/tools/list_changed" => {
            tracing::info!(backend = %link.name(), "the backend's tools changed");
            agg.tools_changed();
        }
        "notifications/resources/list_changed" | "notifications/prompts/list_changed" => {
            agg.broadcast(method);
        }
        _ => {}
    }
}

/// One check of backend `b`.
pub async fn check(agg: Arc<Aggregator>, b: usize) {
    let link = agg.links[b].clone();
    if !link.state.admit(Instant::now()) {
        return;
    }
    let before = link.state.is_usable();
    let outcome = match tokio::time::timeout(agg.settings.health_timeout, probe(&link)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::Timeout(agg.settings.health_timeout.as_millis())),
    };
    link.record(&outcome);
    let tools_changed = link.state.checked(outcome.map_err(|e| CheckFailed {
        unauthenticated: matches!(&e, Failure::Http(s) if s.as_u16() == 401 || s.as_u16() == 403),
        why: e.to_string(),
    }));
    if tools_changed || before != link.state.is_usable() {
        tracing::info!(backend = %link.name(), "the backend's tools changed for clients");
    }
    agg.usability_changed(b, before, tools_changed);
}

async fn probe(link: &Link) -> Result<Checked, Failure> {
    let session = link.open().await?;
    let tools = list_all(link, &session, "tools/list", "tools").await;
    link.close(&session).await;
    let mut tool_names: Vec<String> = merge::select(&link.settings.selection, &tools?)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    tool_names.sort();
    Ok(Checked {
        revision: session.revision.clone(),
        tool_names,
    })
}

/// `GET /status`.
pub fn report(agg: &Aggregator) -> StatusReport {
    StatusReport {
        config_hash: Some(agg.settings.config_hash.clone()),
        backends: agg.links.iter().map(|l| backend_report(l)).collect(),
    }
}

fn backend_report(link: &Link) -> BackendReport {
    let s = link.state.snapshot();
    BackendReport {
        name: link.settings.name.clone(),
        url: Some(link.settings.url_text.clone()),
        status: match s.health {
            Health::Unknown => "unknown",
            Health::Ready => "ready",
            Health::Degraded => "degraded",
            Health::Unavailable => "unavailable",
            Health::Unauthenticated => "unauthenticated",
        }
        .into(),
        last_health_check: s.last_check.map(rfc3339),
        consecutive_failures: Some(s.check_failures),
        circuit_breaker_state: Some(s.circuit.as_str().into()),
        circuit_last_changed: s.circuit_changed.map(rfc3339),
        mcp_revision: s.revision,
        message: s.message,
        tool_count: s.tool_count,
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
