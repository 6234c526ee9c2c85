//! The audit trail (`auth.audit.enabled`): one JSON line per MCP request on stdout, apart from
//! the logs (stderr), so a log pipeline can route it on its own.
//!
//! A line says who (the token's `sub`), what (method and tool, prompt or resource), the
//! decision and the outcome, and how long it took. Never the token, never arguments or results
//! (they may hold secrets).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// What the handler learnt about a request, for its audit line (filled in as it goes).
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub method: Option<String>,
    /// The tool, prompt or resource the request names.
    pub target: Option<String>,
    pub decision: Option<Decision>,
}

/// A slot the guard hands to the handler through the request's extensions.
#[derive(Debug, Clone, Default)]
pub struct Slot(pub Arc<Mutex<Note>>);

impl Slot {
    /// Records the method and target of the request.
    pub fn request(&self, method: &str, target: Option<&str>) {
        let mut note = self.0.lock().unwrap_or_else(|e| e.into_inner());
        note.method = Some(method.to_owned());
        note.target = target.filter(|t| !t.is_empty()).map(str::to_owned);
    }

    pub fn decide(&self, decision: Decision) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).decision = Some(decision);
    }

    pub fn take(&self) -> Note {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What the bridge decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The policy allowed it (or no policy applies to it).
    Allow,
    /// The policy denied it.
    Deny,
    /// No valid token.
    Unauthenticated,
}

#[derive(Serialize)]
struct Event<'a> {
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    subject: Option<&'a str>,
    method: Option<&'a str>,
    target: Option<&'a str>,
    decision: Decision,
    outcome: &'static str,
    status: u16,
    duration_ms: f64,
}

/// Writes one audit line.
pub fn record(subject: Option<&str>, note: &Note, status: u16, took: Duration) {
    let decision = note.decision.unwrap_or(Decision::Allow);
    let outcome = match status {
        200..=299 => "success",
        401 | 403 => "denied",
        _ => "error",
    };
    let event = Event {
        time: now_rfc3339(),
        kind: "mcp_request",
        subject,
        method: note.method.as_deref(),
        target: note.target.as_deref(),
        decision,
        outcome,
        status,
        duration_ms: (took.as_secs_f64() * 1e6).round() / 1e3,
    };
    let Ok(mut line) = serde_json::to_vec(&event) else {
        return;
    };
    line.push(b'\n');
    // One write of the whole line: lines of concurrent requests never interleave.
    let _ = std::io::stdout().lock().write_all(&line);
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
