//! Backends on the legacy HTTP+SSE transport (`transport: sse`): one GET stream per session
//! carries every message from the backend; requests are POSTed to the `endpoint` it names (its
//! path only: never another host). A reader task routes answers to their waiting requests by
//! id, progress notifications to the call that asked for them by progress token, and refuses
//! the backend's own requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::backend::{Failure, SideChannel, MAX_MESSAGE_BYTES};
use crate::bridge::hub::lock;
use crate::bridge::jsonrpc::{self, code};
use crate::bridge::remote::SseReader;

/// What the reader routes to.
#[derive(Default)]
struct Routes {
    answers: HashMap<String, oneshot::Sender<Bytes>>,
    progress: HashMap<String, SideChannel>,
    /// Set once the stream ended: requests fail at once.
    closed: bool,
}

/// One SSE session with a backend.
pub struct SseConn {
    /// The path and query to POST to.
    pub endpoint: String,
    routes: Arc<Mutex<Routes>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseConn {
    fn drop(&mut self) {
        // Dropping the stream ends the session on the backend.
        self.reader.abort();
    }
}

/// Reads the stream up to its `endpoint` event, then hands the rest to a reader task.
/// `notes` receives the method of each notification that is not progress; the receiver
/// returned gets the messages to POST back (refusals of the backend's requests).
pub async fn connect(
    mut body: axum::body::Body,
    notes: Option<mpsc::Sender<String>>,
) -> Result<(SseConn, mpsc::Receiver<Bytes>), Failure> {
    let mut events = SseReader::default();
    let endpoint = loop {
        match events
            .next(&mut body, MAX_MESSAGE_BYTES)
            .await
            .map_err(Failure::Protocol)?
        {
            Some(e) if e.kind == "endpoint" => break e.data,
            Some(_) => continue,
            None => {
                return Err(Failure::Protocol(
                    "the backend's SSE stream ended before its endpoint event".into(),
                ))
            }
        }
    };
    let endpoint = crate::bridge::remote::path_and_query(endpoint.trim());
    let routes = Arc::new(Mutex::new(Routes::default()));
    let (out_tx, outbox) = mpsc::channel(16);
    let reader = tokio::spawn(read(body, events, routes.clone(), out_tx, notes));
    Ok((
        SseConn {
            endpoint,
            routes,
            reader,
        },
        outbox,
    ))
}

impl SseConn {
    /// Registers a request before it is POSTed: its answer, and its progress token if any.
    pub fn expect(
        &self,
        id: &str,
        progress_token: Option<String>,
        side: Option<&SideChannel>,
    ) -> Result<oneshot::Receiver<Bytes>, Failure> {
        let (tx, rx) = oneshot::channel();
        let mut routes = lock(&self.routes);
        if routes.closed {
            return Err(Failure::SessionGone);
        }
        routes.answers.insert(id.to_owned(), tx);
        if let (Some(token), Some(side)) = (progress_token, side) {
            routes.progress.insert(token, side.clone());
        }
        Ok(rx)
    }

    /// Forgets a request (answered, failed or abandoned).
    pub fn forget(&self, id: &str, progress_token: Option<&str>) {
        let mut routes = lock(&self.routes);
        routes.answers.remove(id);
        if let Some(token) = progress_token {
            routes.progress.remove(token);
        }
    }
}

async fn read(
    mut body: axum::body::Body,
    mut events: SseReader,
    routes: Arc<Mutex<Routes>>,
    out: mpsc::Sender<Bytes>,
    notes: Option<mpsc::Sender<String>>,
) {
    while let Ok(Some(event)) = events.next(&mut body, MAX_MESSAGE_BYTES).await {
        if event.kind != "message" {
            continue;
        }
        let Ok(msg) = serde_json::from_str::<Value>(&event.data) else {
            continue;
        };
        let id = msg.get("id");
        let method = msg.get("method").and_then(Value::as_str);
        match (id, method) {
            (Some(Value::String(id)), None) => {
                if let Some(tx) = lock(&routes).answers.remove(id) {
                    let _ = tx.send(Bytes::from(event.data));
                }
            }
            (Some(id), Some(method)) => {
                let reply = jsonrpc::error_response(
                    Some(id.to_string().as_bytes()),
                    code::METHOD_NOT_FOUND,
                    &format!("{method} is not supported through the vmcp aggregator"),
                );
                let _ = out.try_send(reply);
            }
            (None, Some("notifications/progress")) => {
                let token = msg.pointer("/params/progressToken").map(token_key);
                let side = token.and_then(|t| lock(&routes).progress.get(&t).cloned());
                if let Some(side) = side {
                    let _ = side.try_send(Bytes::from(event.data));
                }
            }
            (None, Some(method)) => {
                if let Some(notes) = &notes {
                    let _ = notes.try_send(method.to_owned());
                }
            }
            _ => {}
        }
    }
    let mut routes = lock(&routes);
    routes.closed = true;
    // Waiting requests see their sender dropped: the session is gone.
    routes.answers.clear();
    routes.progress.clear();
}

/// A progress token (string or number) as a map key.
pub fn token_key(token: &Value) -> String {
    token.to_string()
}
