//! The hub: many client sessions multiplexed onto one MCP server over a line-delimited stream.
//!
//! The bridge owns the MCP handshake with its server (it sends `initialize` itself at start-up and
//! caches the result), so every client's `initialize` is answered from the cache with the
//! client's own id. Every client request id is replaced by a bridge-unique integer before it
//! reaches the server and restored on the reply, so clients that all use `id: 1` never see each
//! other's results. Progress tokens are replaced by the same integer; a client's
//! `notifications/cancelled` is mapped through the same table.
//!
//! Routing of what the server sends:
//! - responses go only to the request that is waiting for them;
//! - `notifications/progress` goes only to the stream of the request that asked for progress;
//! - `notifications/*/list_changed` goes to every session's stream;
//! - `notifications/resources/updated` goes to the sessions that subscribed to that URI;
//! - log messages and other notifications cannot be attributed and are dropped;
//! - server-to-client requests (sampling, elicitation, roots) cannot be attributed either: they are
//!   answered with -32601 at once so the server never waits (a `ping` is answered with `{}`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

use super::filter::ToolPolicy;
use super::jsonrpc::{self, code, ServerEnvelope};
use super::metrics::Metrics;

/// The protocol revision the bridge asks its server for: the newest one with `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions a client may announce in `MCP-Protocol-Version`.
pub const KNOWN_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// How many messages may wait for the server's stdin before senders wait.
const TO_SERVER_QUEUE: usize = 1024;
/// How many messages may wait on one session's stream before new ones are dropped.
pub const STREAM_QUEUE: usize = 256;

/// Which front a session came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    StreamableHttp,
    LegacySse,
}

/// One client session. Its stream (the GET stream of streamable HTTP, or the legacy SSE stream)
/// receives the messages that are not replies to a POST.
#[derive(Debug)]
pub struct Session {
    pub id: Arc<str>,
    pub kind: SessionKind,
    stream: Mutex<Option<mpsc::Sender<Bytes>>>,
    subscriptions: Mutex<HashSet<String>>,
    last_seen_ms: AtomicU64,
}

impl Session {
    /// Attaches a new stream, replacing (and so closing) any previous one.
    pub fn attach_stream(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        *lock(&self.stream) = Some(tx);
        rx
    }

    /// Puts a message on the session's stream; dropped when no stream is open or it is full.
    pub fn push(&self, msg: Bytes) -> bool {
        match &*lock(&self.stream) {
            Some(tx) => tx.try_send(msg).is_ok(),
            None => false,
        }
    }

    /// The sender of the open stream, for replies that must not be dropped when it is full.
    pub fn stream_sender(&self) -> Option<mpsc::Sender<Bytes>> {
        lock(&self.stream).clone()
    }

    fn has_stream(&self) -> bool {
        lock(&self.stream)
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }
}

/// Why a request got no answer from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the MCP server did not answer in time")]
    Timeout,
    #[error("the MCP server has exited")]
    ServerGone,
}

struct Pending {
    /// The client's id as raw JSON text, put back on the reply.
    client_id: Bytes,
    session: Option<Arc<Session>>,
    reply: oneshot::Sender<Bytes>,
    /// The client's own progress token and where progress notifications go.
    progress: Option<(Value, mpsc::Sender<Bytes>)>,
    /// A `tools/list` whose result the tool policy rewrites.
    rewrite_tools: bool,
    /// `resources/subscribe` (true) or `resources/unsubscribe` (false) of this URI.
    subscription: Option<(bool, String)>,
}

/// The multiplexer. Cheap to share: every front holds an `Arc<Hub>`.
pub struct Hub {
    to_server: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<u64, Pending>>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    next_id: AtomicU64,
    init_result: OnceLock<Bytes>,
    ready: watch::Sender<bool>,
    last_ping_ok: AtomicBool,
    closed: AtomicBool,
    tools: Option<ToolPolicy>,
    started: Instant,
    pub metrics: Arc<Metrics>,
}

/// A request on its way; dropping it before the answer withdraws it and tells the server.
pub struct Call {
    hub: Arc<Hub>,
    id: u64,
    rx: oneshot::Receiver<Bytes>,
    done: bool,
}

impl Call {
    /// Waits for the reply (already carrying the client's id).
    pub async fn reply(mut self, timeout: Duration) -> Result<Bytes, CallError> {
        let result = match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(msg)) => Ok(msg),
            Ok(Err(_)) => Err(CallError::ServerGone),
            Err(_) => Err(CallError::Timeout),
        };
        self.done = result.is_ok();
        result
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if lock(&self.hub.pending).remove(&self.id).is_some() {
            // The client gave up (timeout or a closed connection): let the server stop working.
            let cancel = format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{},"reason":"the client went away"}}}}"#,
                self.id
            );
            let _ = self.hub.to_server.try_send(Bytes::from(cancel));
        }
    }
}

impl Hub {
    /// Starts the writer and reader tasks over the server's stdin and stdout.
    pub fn start<W, R>(
        stdin: W,
        stdout: R,
        max_line: usize,
        tools: Option<ToolPolicy>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self>
    where
        W: AsyncWrite + Unpin + Send + 'static,
        R: AsyncRead + Unpin + Send + 'static,
    {
        let (to_server, rx) = mpsc::channel(TO_SERVER_QUEUE);
        let hub = Arc::new(Hub {
            to_server,
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            init_result: OnceLock::new(),
            ready: watch::Sender::new(false),
            last_ping_ok: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            tools,
            started: Instant::now(),
            metrics,
        });
        tokio::spawn(write_lines(stdin, rx));
        tokio::spawn(read_lines(hub.clone(), stdout, max_line));
        hub
    }

    /// Performs the MCP handshake with the server and caches its `InitializeResult`.
    pub async fn handshake(self: &Arc<Self>, timeout: Duration) -> anyhow::Result<()> {
        let params = serde_json::json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-operator-bridge", "version": env!("CARGO_PKG_VERSION")},
        });
        let reply = self
            .call_internal("initialize", params, timeout)
            .await
            .map_err(|e| anyhow::anyhow!("initialize: {e}"))?;
        if let Some((start, end)) = jsonrpc::top_level_value_span(&reply, b"error") {
            let error = String::from_utf8_lossy(&reply[start..end]).into_owned();
            anyhow::bail!("the MCP server refused initialize: {error}");
        }
        let Some((start, end)) = jsonrpc::top_level_value_span(&reply, b"result") else {
            anyhow::bail!("the MCP server answered initialize without a result");
        };
        let _ = self.init_result.set(reply.slice(start..end));
        self.send_to_server(Bytes::from_static(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        ))
        .await
        .map_err(|e| anyhow::anyhow!("notifications/initialized: {e}"))?;
        self.ready.send_replace(true);
        Ok(())
    }

    /// Pings the server; readiness follows the answer.
    pub async fn ping(self: &Arc<Self>, timeout: Duration) -> bool {
        let ok = matches!(
            self.call_internal("ping", serde_json::json!({}), timeout).await,
            Ok(reply) if jsonrpc::top_level_value_span(&reply, b"result").is_some()
        );
        self.last_ping_ok.store(ok, Ordering::Relaxed);
        ok
    }

    /// Initialized, the last ping answered, and the server still there.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
            && self.last_ping_ok.load(Ordering::Relaxed)
            && !self.closed.load(Ordering::Relaxed)
    }

    /// Waits until the handshake is done; false when the server exits first or time runs out.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|r| *r)).await,
            Ok(Ok(_))
        ) && !self.closed.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The answer to a client's `initialize`, from the cache, with the client's id.
    pub fn initialize_reply(&self, client_id: &[u8]) -> Option<Bytes> {
        self.init_result
            .get()
            .map(|result| jsonrpc::result_response(client_id, result))
    }

    /// The allow-list and overrides, when any are configured.
    pub fn tool_policy(&self) -> Option<&ToolPolicy> {
        self.tools.as_ref()
    }

    /// Opens a session.
    pub fn open_session(&self, kind: SessionKind, max_sessions: usize) -> Option<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= max_sessions {
            return None;
        }
        let session = Arc::new(Session {
            id: new_session_id().into(),
            kind,
            stream: Mutex::new(None),
            subscriptions: Mutex::new(HashSet::new()),
            last_seen_ms: AtomicU64::new(self.now_ms()),
        });
        sessions.insert(session.id.clone(), session.clone());
        self.metrics.sessions.set(sessions.len() as i64);
        Some(session)
    }

    /// Looks a session up and marks it as used.
    pub fn session(&self, id: &str, kind: SessionKind) -> Option<Arc<Session>> {
        let session = lock(&self.sessions).get(id).cloned()?;
        if session.kind != kind {
            return None;
        }
        session.last_seen_ms.store(self.now_ms(), Ordering::Relaxed);
        Some(session)
    }

    /// Ends a session; its requests still in flight are withdrawn when their callers drop them.
    pub fn close_session(&self, id: &str) -> bool {
        let mut sessions = lock(&self.sessions);
        let removed = sessions.remove(id);
        self.metrics.sessions.set(sessions.len() as i64);
        if let Some(session) = &removed {
            *lock(&session.stream) = None;
        }
        removed.is_some()
    }

    /// Ends streamable-HTTP sessions idle for longer than `ttl` with no open stream.
    pub fn expire_sessions(&self, ttl: Duration) {
        let now = self.now_ms();
        let ttl = ttl.as_millis() as u64;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| {
            s.kind != SessionKind::StreamableHttp
                || s.has_stream()
                || now.saturating_sub(s.last_seen_ms.load(Ordering::Relaxed)) < ttl
        });
        self.metrics.sessions.set(sessions.len() as i64);
    }

    /// Sends a client's request to the server. `body` is the client's decoded message;
    /// `progress` receives the request's progress notifications, if it asked for any.
    pub async fn call(
        self: &Arc<Self>,
        session: &Arc<Session>,
        method: &str,
        mut body: Value,
        progress: Option<mpsc::Sender<Bytes>>,
    ) -> Result<Call, CallError> {
        if self.is_closed() {
            return Err(CallError::ServerGone);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client_id = body
            .get("id")
            .map(|v| Bytes::from(v.to_string()))
            .unwrap_or_else(|| Bytes::from_static(b"null"));
        body["id"] = Value::from(id);
        let progress = match body.pointer_mut("/params/_meta/progressToken") {
            Some(token) => {
                let original = std::mem::replace(token, Value::from(id));
                progress.map(|tx| (original, tx))
            }
            None => None,
        };
        let subscription = match method {
            "resources/subscribe" | "resources/unsubscribe" => body
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .map(|uri| (method == "resources/subscribe", uri.to_owned())),
            _ => None,
        };
        let line = serde_json::to_vec(&body).map_err(|_| CallError::ServerGone)?;
        let (reply, rx) = oneshot::channel();
        lock(&self.pending).insert(
            id,
            Pending {
                client_id,
                session: Some(session.clone()),
                reply,
                progress,
                rewrite_tools: method == "tools/list" && self.tools.is_some(),
                subscription,
            },
        );
        let call = Call {
            hub: self.clone(),
            id,
            rx,
            done: false,
        };
        self.send_to_server(Bytes::from(line)).await?;
        Ok(call)
    }

    /// Forwards a client's notification. `notifications/initialized` was already sent by the
    /// bridge and is swallowed; `notifications/cancelled` is mapped to the bridge's id.
    pub async fn notify(&self, session: &Arc<Session>, method: &str, mut body: Value) {
        match method {
            "notifications/initialized" => return,
            "notifications/cancelled" => {
                let Some(client_id) = body.pointer("/params/requestId").map(|v| v.to_string())
                else {
                    return;
                };
                let found = lock(&self.pending).iter().find_map(|(id, p)| {
                    let same_session = p.session.as_ref().is_some_and(|s| Arc::ptr_eq(s, session));
                    (same_session && p.client_id == client_id.as_bytes()).then_some(*id)
                });
                let Some(id) = found else { return };
                body["params"]["requestId"] = Value::from(id);
            }
            _ => {}
        }
        if let Ok(line) = serde_json::to_vec(&body) {
            let _ = self.send_to_server(Bytes::from(line)).await;
        }
    }

    async fn call_internal(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        if self.is_closed() {
            return Err(CallError::ServerGone);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (reply, rx) = oneshot::channel();
        lock(&self.pending).insert(
            id,
            Pending {
                client_id: Bytes::from(id.to_string()),
                session: None,
                reply,
                progress: None,
                rewrite_tools: false,
                subscription: None,
            },
        );
        let call = Call {
            hub: self.clone(),
            id,
            rx,
            done: false,
        };
        self.send_to_server(Bytes::from(body.to_string())).await?;
        call.reply(timeout).await
    }

    async fn send_to_server(&self, line: Bytes) -> Result<(), CallError> {
        self.to_server
            .send(line)
            .await
            .map_err(|_| CallError::ServerGone)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Routes one line the server wrote.
    fn route(&self, line: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<ServerEnvelope>(line) else {
            tracing::warn!(
                bytes = line.len(),
                "the MCP server wrote a line that is not a JSON-RPC message; skipped"
            );
            return;
        };
        match (&envelope.id, &envelope.method) {
            (Some(id), None) if envelope.result.is_some() || envelope.error.is_some() => {
                self.route_response(id, line)
            }
            (Some(id), Some(method)) => self.answer_server_request(id, method),
            (None, Some(method)) => self.route_notification(method, line),
            _ => tracing::warn!("the MCP server wrote a message of no known shape; skipped"),
        }
    }

    fn route_response(&self, id: &Value, line: &[u8]) {
        let Some(pending) = id.as_u64().and_then(|id| lock(&self.pending).remove(&id)) else {
            // A late reply to a withdrawn request, or an id the bridge never sent.
            tracing::debug!("dropped a reply nobody waits for");
            return;
        };
        let Some(mut msg) = jsonrpc::splice_id(line, &pending.client_id) else {
            return;
        };
        if pending.rewrite_tools {
            if let Some(tools) = &self.tools {
                msg = tools.rewrite_list_response(msg);
            }
        }
        if let (Some((subscribe, uri)), Some(session)) = (pending.subscription, &pending.session) {
            if jsonrpc::top_level_value_span(line, b"result").is_some() {
                let mut subs = lock(&session.subscriptions);
                if subscribe {
                    subs.insert(uri);
                } else {
                    subs.remove(&uri);
                }
            }
        }
        let _ = pending.reply.send(msg);
    }

    fn answer_server_request(&self, id: &Value, method: &str) {
        let id = id.to_string();
        let answer = if method == "ping" {
            jsonrpc::result_response(id.as_bytes(), b"{}")
        } else {
            tracing::info!(
                method,
                "refused a server-to-client request: it cannot be routed to one of many clients"
            );
            jsonrpc::error_response(
                Some(id.as_bytes()),
                code::METHOD_NOT_FOUND,
                "the bridge multiplexes many clients and cannot route server-to-client requests",
            )
        };
        let _ = self.to_server.try_send(answer);
    }

    fn route_notification(&self, method: &str, line: &[u8]) {
        if method == "notifications/progress" {
            self.route_progress(line);
        } else if method.ends_with("/list_changed") {
            let msg = Bytes::copy_from_slice(line);
            for session in lock(&self.sessions).values() {
                session.push(msg.clone());
            }
        } else if method == "notifications/resources/updated" {
            let Ok(value) = serde_json::from_slice::<Value>(line) else {
                return;
            };
            let Some(uri) = value.pointer("/params/uri").and_then(Value::as_str) else {
                return;
            };
            let msg = Bytes::copy_from_slice(line);
            for session in lock(&self.sessions).values() {
                if lock(&session.subscriptions).contains(uri) {
                    session.push(msg.clone());
                }
            }
        } else {
            // Log messages and the like belong to no session in particular.
            tracing::debug!(method, "dropped a server notification that has no session");
        }
    }

    fn route_progress(&self, line: &[u8]) {
        let Ok(mut value) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let Some(token) = value
            .pointer("/params/progressToken")
            .and_then(Value::as_u64)
        else {
            return;
        };
        let pending = lock(&self.pending);
        let Some((original, tx)) = pending.get(&token).and_then(|p| p.progress.as_ref()) else {
            return;
        };
        value["params"]["progressToken"] = original.clone();
        if let Ok(msg) = serde_json::to_vec(&value) {
            let _ = tx.try_send(Bytes::from(msg));
        }
    }

    /// The server is gone: every request still waiting gets an error with its own id, and new
    /// ones are refused.
    pub fn shut_down(&self) {
        self.fail_all();
    }

    fn fail_all(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.ready.send_replace(false);
        let drained: Vec<Pending> = lock(&self.pending).drain().map(|(_, p)| p).collect();
        for pending in drained {
            let error = jsonrpc::error_response(
                Some(&pending.client_id),
                code::INTERNAL_ERROR,
                "the MCP server exited before answering",
            );
            let _ = pending.reply.send(error);
        }
    }
}

/// Writes queued messages to the server, one per line, batching what is already queued into
/// one write.
async fn write_lines<W: AsyncWrite + Unpin>(stdin: W, mut rx: mpsc::Receiver<Bytes>) {
    let mut stdin = tokio::io::BufWriter::with_capacity(64 * 1024, stdin);
    while let Some(first) = rx.recv().await {
        let mut msg = Some(first);
        while let Some(line) = msg {
            if stdin.write_all(&line).await.is_err() || stdin.write_all(b"\n").await.is_err() {
                return;
            }
            msg = rx.try_recv().ok();
        }
        if stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Reads the server's stdout line by line (tolerating `\r\n`), skipping lines longer than
/// `max_line` bytes; at EOF fails every waiting request.
async fn read_lines<R: AsyncRead + Unpin>(hub: Arc<Hub>, stdout: R, max_line: usize) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut oversize = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => buf,
        };
        let (chunk, complete) = match buf.iter().position(|b| *b == b'\n') {
            Some(pos) => (&buf[..pos], true),
            None => (buf, false),
        };
        if !oversize && line.len() + chunk.len() > max_line {
            tracing::warn!(
                max_line,
                "the MCP server wrote a line over the size limit; skipped"
            );
            oversize = true;
            line = Vec::new();
        }
        if !oversize {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len() + usize::from(complete);
        reader.consume(used);
        if complete {
            if !oversize {
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                if !text.iter().all(u8::is_ascii_whitespace) {
                    hub.route(text);
                }
            }
            line.clear();
            oversize = false;
        }
    }
    tracing::info!("the MCP server closed its stdout");
    hub.fail_all();
}

fn new_session_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// Locks a mutex, recovering from poisoning: every critical section here leaves the data
/// consistent, so a panic elsewhere must not wedge the bridge.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    type ServerEnds = (
        tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
    );

    /// A hub over in-memory pipes, and the server's ends of them.
    fn hub_with_pipes(
        max_line: usize,
    ) -> (
        Arc<Hub>,
        tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
    ) {
        let (hub, (from_hub, to_hub)) = hub_with_tools(max_line, None);
        (hub, from_hub, to_hub)
    }

    fn hub_with_tools(max_line: usize, tools: Option<ToolPolicy>) -> (Arc<Hub>, ServerEnds) {
        let (hub_stdin, server_stdin) = tokio::io::duplex(1 << 16);
        let (server_stdout, hub_stdout) = tokio::io::duplex(1 << 16);
        let hub = Hub::start(
            hub_stdin,
            hub_stdout,
            max_line,
            tools,
            Arc::new(Metrics::new()),
        );
        (hub, (BufReader::new(server_stdin).lines(), server_stdout))
    }

    /// Only `tools/list` replies go through the tool policy; other replies pass byte for byte.
    #[tokio::test]
    async fn tools_list_replies_are_rewritten_and_nothing_else() {
        let overrides =
            serde_json::from_value(serde_json::json!({"echo": {"name": "say"}})).unwrap();
        let tools = ToolPolicy::new(Vec::<String>::new(), &overrides).unwrap();
        let (hub, (mut from_hub, mut to_hub)) = hub_with_tools(1 << 16, tools);
        let session = hub.open_session(SessionKind::StreamableHttp, 10).unwrap();
        let tools_result = r#"{"tools":[{"name":"echo"}]}"#;
        for (method, want) in [
            (
                "tools/list",
                r#"{"id":"c","jsonrpc":"2.0","result":{"tools":[{"name":"say"}]}}"#,
            ),
            (
                "other/method",
                r#"{"jsonrpc":"2.0","id":"c","result":{"tools":[{"name":"echo"}]}}"#,
            ),
        ] {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": "c", "method": method});
            let call = hub.call(&session, method, body, None).await.unwrap();
            let sent: Value =
                serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
            let reply = format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{tools_result}}}"#,
                sent["id"]
            );
            to_hub.write_all(reply.as_bytes()).await.unwrap();
            to_hub.write_all(b"\n").await.unwrap();
            let got = call.reply(Duration::from_secs(2)).await.unwrap();
            assert_eq!(std::str::from_utf8(&got).unwrap(), want, "{method}");
        }
    }

    #[tokio::test]
    async fn ids_are_rewritten_and_restored_and_bad_lines_skipped() {
        let (hub, mut from_hub, mut to_hub) = hub_with_pipes(1024);
        let session = hub.open_session(SessionKind::StreamableHttp, 10).unwrap();
        let body = serde_json::json!({"jsonrpc": "2.0", "id": "same", "method": "ping"});
        let a = hub
            .call(&session, "ping", body.clone(), None)
            .await
            .unwrap();
        let b = hub.call(&session, "ping", body, None).await.unwrap();
        let first: Value =
            serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
        let second: Value =
            serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
        assert_ne!(first["id"], second["id"], "bridge ids are unique");
        // Junk, an oversize line, a partial write, CRLF, and the replies out of order.
        to_hub.write_all(b"not json\n").await.unwrap();
        to_hub.write_all(&[b'x'; 2048]).await.unwrap();
        to_hub.write_all(b"\n").await.unwrap();
        let reply_b = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"b":1}}}}"#,
            second["id"]
        );
        let reply_a = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{{"a":1}}}}"#,
            first["id"]
        );
        to_hub.write_all(&reply_b.as_bytes()[..10]).await.unwrap();
        to_hub.flush().await.unwrap();
        to_hub.write_all(&reply_b.as_bytes()[10..]).await.unwrap();
        to_hub.write_all(b"\r\n").await.unwrap();
        to_hub.write_all(reply_a.as_bytes()).await.unwrap();
        to_hub.write_all(b"\n").await.unwrap();
        let timeout = Duration::from_secs(2);
        let a: Value = serde_json::from_slice(&a.reply(timeout).await.unwrap()).unwrap();
        let b: Value = serde_json::from_slice(&b.reply(timeout).await.unwrap()).unwrap();
        assert_eq!(
            (a["id"].as_str(), a["result"]["a"].as_i64()),
            (Some("same"), Some(1))
        );
        assert_eq!(
            (b["id"].as_str(), b["result"]["b"].as_i64()),
            (Some("same"), Some(1))
        );
    }

    #[tokio::test]
    async fn cancellations_reach_the_server_with_the_bridge_id() {
        async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::io::DuplexStream>>) -> Value {
            let line = lines.next_line().await.unwrap().unwrap();
            serde_json::from_str(&line).unwrap()
        }
        let (hub, mut from_hub, _to_hub) = hub_with_pipes(1024);
        let session = hub.open_session(SessionKind::StreamableHttp, 10).unwrap();
        // The client cancels its request 7 by its own id.
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call"});
        let _call = hub.call(&session, "tools/call", body, None).await.unwrap();
        let sent = next(&mut from_hub).await;
        let cancel = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                        "params": {"requestId": 7}});
        hub.notify(&session, "notifications/cancelled", cancel)
            .await;
        let cancelled = next(&mut from_hub).await;
        assert_eq!(cancelled["params"]["requestId"], sent["id"]);
        // A client that goes away (its call dropped unanswered) cancels too.
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call"});
        let call = hub.call(&session, "tools/call", body, None).await.unwrap();
        let sent = next(&mut from_hub).await;
        drop(call);
        let cancelled = next(&mut from_hub).await;
        assert_eq!(cancelled["method"], "notifications/cancelled");
        assert_eq!(cancelled["params"]["requestId"], sent["id"]);
    }

    #[tokio::test]
    async fn server_requests_are_refused_and_eof_fails_what_is_in_flight() {
        let (hub, mut from_hub, mut to_hub) = hub_with_pipes(1024);
        let session = hub.open_session(SessionKind::LegacySse, 10).unwrap();
        to_hub
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"sampling/createMessage\",\"params\":{}}\n")
            .await
            .unwrap();
        let refusal: Value =
            serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(refusal["id"], "s1");
        assert_eq!(refusal["error"]["code"], code::METHOD_NOT_FOUND);

        let body = serde_json::json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call"});
        let call = hub.call(&session, "tools/call", body, None).await.unwrap();
        drop(to_hub); // the server's stdout closes
        let reply: Value =
            serde_json::from_slice(&call.reply(Duration::from_secs(2)).await.unwrap()).unwrap();
        assert_eq!(reply["id"], 42);
        assert_eq!(reply["error"]["code"], code::INTERNAL_ERROR);
        assert!(hub.is_closed());
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 43, "method": "ping"});
        assert!(matches!(
            hub.call(&session, "ping", body, None).await,
            Err(CallError::ServerGone)
        ));
    }
}
