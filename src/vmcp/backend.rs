//! One backend reached over streamable HTTP, through the bridge's guarded client: every
//! address passes the address guard at connect time (literal IPs before), with the backend's
//! headers and bearer token, under its timeout, its answers bounded in size.
//!
//! A [`Link`] is shared by all client sessions; a [`BackendSession`] is one MCP session with the
//! backend (one per client session, so backends see their clients apart).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::breaker::{BackendState, Policy};
use super::settings::BackendSettings;
use crate::address::Allowance;
use crate::bridge::jsonrpc::{self, code};
use crate::bridge::remote::{self, GuardedClient, SseReader};

/// The largest message accepted from a backend (one JSON answer or one SSE event).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// The protocol revision asked of backends (they answer with theirs).
pub const REVISION: &str = "2025-06-18";

/// Why a request to a backend got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Unreachable(String),
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The backend no longer knows the session (it restarted): open a new one.
    #[error("the backend no longer knows the session")]
    SessionGone,
    #[error("the backend answered HTTP {0}")]
    Http(StatusCode),
    #[error("{0}")]
    Protocol(String),
    /// The circuit is open: nothing was sent.
    #[error("the circuit breaker is open")]
    CircuitOpen,
}

impl Failure {
    /// Whether this says something about the backend's health (a 4xx other than a lost
    /// session is the request's fault, not the backend's).
    pub fn counts(&self) -> bool {
        match self {
            Failure::Http(s) => s.is_server_error(),
            Failure::SessionGone | Failure::CircuitOpen => false,
            _ => true,
        }
    }
}

/// One backend, as every session reaches it.
pub struct Link {
    pub index: usize,
    pub settings: BackendSettings,
    client: GuardedClient,
    allow: Allowance,
    pub state: BackendState,
    /// Bumped whenever the backend came back or went away: sessions opened before are stale.
    generation: AtomicU64,
}

/// One MCP session with a backend.
pub struct BackendSession {
    id: Option<HeaderValue>,
    /// Legacy SSE backends: the session's stream.
    sse: Option<super::sse::SseConn>,
    pub revision: String,
    pub generation: u64,
    next_id: AtomicU64,
}

impl BackendSession {
    /// A fresh request id of this session.
    pub fn next_id(&self) -> String {
        format!("vmcp-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// Messages a backend sent while answering (progress, logging), for the client's stream.
pub type SideChannel = mpsc::Sender<Bytes>;

impl Link {
    pub fn new(
        index: usize,
        settings: BackendSettings,
        allow_loopback: bool,
        policy: Policy,
    ) -> anyhow::Result<Self> {
        let at = format!("backends[{index}].caBundle");
        let tls = remote::tls_config(
            settings
                .ca_bundle
                .as_deref()
                .map(|p| (at.as_str(), std::path::Path::new(p))),
        )?;
        let allow = Allowance {
            private: settings.allow_private,
            loopback: allow_loopback,
        };
        Ok(Self {
            index,
            client: remote::guarded_client(Some(allow), tls),
            allow,
            settings,
            state: BackendState::new(policy),
            generation: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Sessions opened before now are not used again.
    pub fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Opens a session: `initialize`, then `notifications/initialized`.
    pub async fn open(&self) -> Result<BackendSession, Failure> {
        self.open_with(None).await
    }

    /// [`Self::open`]; an SSE session also passes the methods of the backend's other
    /// notifications to `notes`.
    pub async fn open_with(
        &self,
        notes: Option<mpsc::Sender<String>>,
    ) -> Result<BackendSession, Failure> {
        let generation = self.generation();
        let mut session = BackendSession {
            id: None,
            sse: None,
            revision: String::new(),
            generation,
            next_id: AtomicU64::new(1),
        };
        if self.settings.sse {
            session.sse = Some(
                tokio::time::timeout(self.settings.timeout, self.connect_sse(notes))
                    .await
                    .unwrap_or(Err(Failure::Timeout(self.settings.timeout.as_millis())))?,
            );
        }
        let body = json!({
            "jsonrpc": "2.0", "id": "vmcp-init", "method": "initialize",
            "params": {
                "protocolVersion": REVISION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-operator-vmcp", "version": env!("CARGO_PKG_VERSION")},
            }
        });
        let (sid, answer) = self
            .exchange(
                session.sse.is_some().then_some(&session),
                Bytes::from(body.to_string()),
                "vmcp-init",
                None,
            )
            .await?;
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|_| Failure::Protocol("the initialize answer is not JSON".into()))?;
        let Some(revision) = answer
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
        else {
            let why = answer
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no result");
            return Err(Failure::Protocol(format!(
                "the backend refused initialize: {}",
                crate::controller::frame::truncate(why, 200)
            )));
        };
        session.id = sid;
        session.revision = revision.to_owned();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.notify(&session, Bytes::from(note.to_string())).await?;
        Ok(session)
    }

    /// Sends a request (its `id` already the session's own `id`) and returns the answer
    /// message; messages sent before it go to `side`.
    pub async fn request(
        &self,
        session: &BackendSession,
        body: Bytes,
        id: &str,
        side: Option<&SideChannel>,
    ) -> Result<Bytes, Failure> {
        self.exchange(Some(session), body, id, side)
            .await
            .map(|(_, answer)| answer)
    }

    /// The GET stream of a new SSE session, up to its `endpoint`; the refusals its reader
    /// makes are POSTed by a task of their own.
    async fn connect_sse(
        &self,
        notes: Option<mpsc::Sender<String>>,
    ) -> Result<super::sse::SseConn, Failure> {
        let resp = self.send(Method::GET, None, Bytes::new()).await?;
        if !resp.status().is_success() {
            return Err(Failure::Http(resp.status()));
        }
        let (conn, mut outbox) = super::sse::connect(resp.into_body(), notes).await?;
        let uri = self.endpoint_uri(&conn.endpoint)?;
        let (client, headers) = (self.client.clone(), self.settings.headers.clone());
        tokio::spawn(async move {
            while let Some(reply) = outbox.recv().await {
                let mut req = hyper::Request::post(uri.clone())
                    .header(header::CONTENT_TYPE, "application/json");
                for (name, value) in &headers {
                    req = req.header(name.clone(), value.clone());
                }
                if let Ok(req) = req.body(axum::body::Body::from(reply)) {
                    let _ = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await;
                }
            }
        });
        Ok(conn)
    }

    /// The backend's own scheme and host with the path of an `endpoint` event.
    fn endpoint_uri(&self, path_and_query: &str) -> Result<hyper::Uri, Failure> {
        let url = &self.settings.url;
        hyper::Uri::builder()
            .scheme(url.scheme_str().unwrap_or("http"))
            .authority(url.authority().map(|a| a.as_str()).unwrap_or_default())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| Failure::Protocol("the backend's endpoint event is not a path".into()))
    }

    /// A message POSTed to an SSE session's endpoint (202 expected).
    async fn post_sse(&self, conn: &super::sse::SseConn, body: Bytes) -> Result<(), Failure> {
        let mut req = self.build(Method::POST, None, None, body)?;
        *req.uri_mut() = self.endpoint_uri(&conn.endpoint)?;
        let host = self.settings.url.host().unwrap_or_default();
        remote::check_literal(host, self.allow).map_err(|e| Failure::Unreachable(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| Failure::Unreachable(crate::address::chain(&e)))?;
        match resp.status() {
            StatusCode::NOT_FOUND => Err(Failure::SessionGone),
            s if s.is_success() => Ok(()),
            s => Err(Failure::Http(s)),
        }
    }

    /// A request over an SSE session: POSTed, its answer read off the stream.
    async fn exchange_sse(
        &self,
        conn: &super::sse::SseConn,
        body: Bytes,
        id: &str,
        side: Option<&SideChannel>,
    ) -> Result<Bytes, Failure> {
        let token = side.and_then(|_| {
            serde_json::from_slice::<Value>(&body)
                .ok()?
                .pointer("/params/_meta/progressToken")
                .map(super::sse::token_key)
        });
        struct Forget<'a>(&'a super::sse::SseConn, &'a str, Option<String>);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget(self.1, self.2.as_deref());
            }
        }
        let answer = conn.expect(id, token.clone(), side)?;
        let _forget = Forget(conn, id, token);
        self.post_sse(conn, body).await?;
        answer.await.map_err(|_| Failure::SessionGone)
    }

    /// Sends a notification; the backend answers 202 with no body.
    pub async fn notify(&self, session: &BackendSession, body: Bytes) -> Result<(), Failure> {
        if let Some(conn) = &session.sse {
            return self.post_sse(conn, body).await;
        }
        let resp = self.send(Method::POST, Some(session), body).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && session.id.is_some() {
            return Err(Failure::SessionGone);
        }
        if !status.is_success() {
            return Err(Failure::Http(status));
        }
        Ok(())
    }

    /// Ends a session (best effort: the backend forgets idle ones anyway).
    pub async fn close(&self, session: &BackendSession) {
        if session.id.is_some() {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.send(Method::DELETE, Some(session), Bytes::new()),
            )
            .await;
        }
    }

    async fn exchange(
        &self,
        session: Option<&BackendSession>,
        body: Bytes,
        id: &str,
        side: Option<&SideChannel>,
    ) -> Result<(Option<HeaderValue>, Bytes), Failure> {
        let timeout = self.settings.timeout;
        if let Some(conn) = session.and_then(|s| s.sse.as_ref()) {
            return tokio::time::timeout(timeout, self.exchange_sse(conn, body, id, side))
                .await
                .unwrap_or(Err(Failure::Timeout(timeout.as_millis())))
                .map(|answer| (None, answer));
        }
        let work = async {
            let resp = self.send(Method::POST, session, body).await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND && session.is_some_and(|s| s.id.is_some()) {
                return Err(Failure::SessionGone);
            }
            if !status.is_success() {
                return Err(Failure::Http(status));
            }
            let sid = resp.headers().get("mcp-session-id").cloned();
            let sse = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
            let answer = if sse {
                self.read_stream(session, resp.into_body(), id, side, sid.as_ref())
                    .await?
            } else {
                let collected = http_body_util::Limited::new(resp.into_body(), MAX_MESSAGE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| Failure::Protocol(format!("the answer could not be read: {e}")))?;
                collected.to_bytes()
            };
            Ok((sid, answer))
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(Failure::Timeout(timeout.as_millis())))
    }

    /// Reads an SSE answer up to the message answering `id`.
    async fn read_stream(
        &self,
        session: Option<&BackendSession>,
        mut body: axum::body::Body,
        id: &str,
        side: Option<&SideChannel>,
        sid: Option<&HeaderValue>,
    ) -> Result<Bytes, Failure> {
        let mut events = SseReader::default();
        loop {
            let event = events
                .next(&mut body, MAX_MESSAGE_BYTES)
                .await
                .map_err(Failure::Protocol)?;
            let Some(event) = event else {
                return Err(Failure::Protocol(
                    "the backend closed its answer stream without an answer".into(),
                ));
            };
            if event.kind != "message" {
                continue;
            }
            let Ok(env) = serde_json::from_str::<jsonrpc::ServerEnvelope>(&event.data) else {
                continue;
            };
            let is_answer = env.method.is_none() && (env.result.is_some() || env.error.is_some());
            match (&env.id, &env.method) {
                (Some(Value::String(got)), None) if is_answer && got == id => {
                    return Ok(Bytes::from(event.data));
                }
                (Some(request_id), Some(method)) => {
                    self.refuse_server_request(session, sid, request_id, method);
                }
                (None, Some(_)) => {
                    if let Some(side) = side {
                        let _ = side.try_send(Bytes::from(event.data));
                    }
                }
                _ => {}
            }
        }
    }

    /// Sampling, elicitation and roots requests from backends are not built: the backend gets
    /// a JSON-RPC error at once instead of waiting.
    fn refuse_server_request(
        &self,
        session: Option<&BackendSession>,
        sid: Option<&HeaderValue>,
        id: &Value,
        method: &str,
    ) {
        tracing::info!(backend = %self.name(), method, "refused a request from a backend");
        let reply = jsonrpc::error_response(
            Some(id.to_string().as_bytes()),
            code::METHOD_NOT_FOUND,
            &format!("{method} is not supported through the vmcp aggregator"),
        );
        let sid = session.and_then(|s| s.id.clone()).or_else(|| sid.cloned());
        let (req, client) = (
            self.build(Method::POST, sid.as_ref(), None, reply),
            self.client.clone(),
        );
        if let Ok(req) = req {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await;
            });
        }
    }

    /// Opens the session's standalone GET stream (what the backend sends outside answers:
    /// `list_changed` notifications). `None` when the backend offers no such stream (405).
    pub async fn open_stream(
        &self,
        session: &BackendSession,
    ) -> Result<Option<axum::body::Body>, Failure> {
        if session.sse.is_some() {
            return Ok(None);
        }
        let resp = self.send(Method::GET, Some(session), Bytes::new()).await?;
        match resp.status() {
            StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            s if s.is_success() => Ok(Some(resp.into_body())),
            s => Err(Failure::Http(s)),
        }
    }

    async fn send(
        &self,
        method: Method,
        session: Option<&BackendSession>,
        body: Bytes,
    ) -> Result<hyper::Response<axum::body::Body>, Failure> {
        let sid = session.and_then(|s| s.id.as_ref());
        let revision = session.map(|s| s.revision.as_str());
        let req = self.build(method, sid, revision, body)?;
        let host = self.settings.url.host().unwrap_or_default();
        remote::check_literal(host, self.allow).map_err(|e| Failure::Unreachable(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| Failure::Unreachable(crate::address::chain(&e)))?;
        Ok(resp.map(axum::body::Body::new))
    }

    fn build(
        &self,
        method: Method,
        sid: Option<&HeaderValue>,
        revision: Option<&str>,
        body: Bytes,
    ) -> Result<hyper::Request<axum::body::Body>, Failure> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(self.settings.url.clone())
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(sid) = sid {
            req = req.header(HeaderName::from_static("mcp-session-id"), sid.clone());
        }
        if let Some(revision) = revision.and_then(|r| HeaderValue::from_str(r).ok()) {
            req = req.header(HeaderName::from_static("mcp-protocol-version"), revision);
        }
        for (name, value) in &self.settings.headers {
            req = req.header(name.clone(), value.clone());
        }
        req.body(axum::body::Body::from(body))
            .map_err(|e| Failure::Protocol(format!("cannot build the request: {e}")))
    }

    /// Records the outcome of a call in the breaker; true when the backend's usability changed.
    pub fn record<T>(&self, outcome: &Result<T, Failure>) -> bool {
        match outcome {
            Ok(_) => self.state.succeeded(),
            Err(f) if f.counts() => self.state.failed(Instant::now(), &f.to_string()),
            Err(_) => false,
        }
    }
}

/// A request body with its id replaced by `id`.
pub fn with_id(mut body: Value, id: &str) -> Bytes {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("id".into(), Value::from(id));
    }
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

pub type Links = Arc<Vec<Arc<Link>>>;
