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
//! - `notifications/resources/updated` goes to the sessions that subscribed to that URI (the
//!   server hears only the first subscribe and the last unsubscribe of each URI);
//! - tasks belong to the session whose request created them: `tasks/list` is cut down to its own,
//!   other sessions' task ids are unknown, `notifications/tasks/status` goes to the owner;
//! - log messages and other notifications cannot be attributed and are dropped;
//! - server-to-client requests (sampling, elicitation, roots) cannot be attributed either: they are
//!   answered with -32601 at once so the server never waits (a `ping` is answered with `{}`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
/// How many messages may wait on one session's stream before new ones are dropped (the bytes
/// they hold are bounded too: `maxStreamQueueBytes`).
pub const STREAM_QUEUE: usize = 256;
/// Resource subscriptions one session may hold.
const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 1024;
/// Live tasks one session may own.
const MAX_TASKS_PER_SESSION: usize = 4096;
/// How much of an over-long server line is kept to find its `id` (written first by some SDKs,
/// last by others).
const OVERSIZE_HEAD: usize = 4096;
const OVERSIZE_TAIL: usize = 64;

/// The bounds the hub keeps, from the config.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    pub max_line_bytes: usize,
    pub max_stream_queue_bytes: usize,
}

/// The sending side of an SSE stream's queue, bounded by count and by bytes. A message that
/// does not fit is dropped, counted in `mcp_bridge_stream_messages_dropped_total` and logged
/// once per stream: a client that does not read its stream cannot make the bridge hold more.
#[derive(Clone)]
pub struct StreamTx {
    tx: mpsc::Sender<Bytes>,
    shared: Arc<StreamShared>,
    metrics: Arc<Metrics>,
}

struct StreamShared {
    queued: AtomicUsize,
    cap: usize,
    warned: AtomicBool,
}

/// The receiving side of an SSE stream's queue.
pub struct StreamRx {
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<StreamShared>,
}

/// A queue for one SSE stream holding at most [`STREAM_QUEUE`] messages and about `cap_bytes`
/// (a single message always fits into an empty queue).
pub fn stream_channel(cap_bytes: usize, metrics: Arc<Metrics>) -> (StreamTx, StreamRx) {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let shared = Arc::new(StreamShared {
        queued: AtomicUsize::new(0),
        cap: cap_bytes,
        warned: AtomicBool::new(false),
    });
    (
        StreamTx {
            tx,
            shared: shared.clone(),
            metrics,
        },
        StreamRx { rx, shared },
    )
}

impl std::fmt::Debug for StreamTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTx")
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl StreamTx {
    fn reserve(&self, n: usize) -> bool {
        let before = self.shared.queued.fetch_add(n, Ordering::Relaxed);
        if before > 0 && before.saturating_add(n) > self.shared.cap {
            self.shared.queued.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn unreserve(&self, n: usize) {
        self.shared.queued.fetch_sub(n, Ordering::Relaxed);
    }

    fn dropped(&self) {
        self.metrics.stream_messages_dropped.inc();
        if !self.shared.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_bytes = self.shared.cap,
                max_messages = STREAM_QUEUE,
                "an SSE stream's queue is full (its client does not read it); dropping messages"
            );
        }
    }

    /// Queues a message without waiting; false when it was dropped (full, or no reader).
    pub fn try_push(&self, msg: Bytes) -> bool {
        let n = msg.len();
        if !self.reserve(n) {
            self.dropped();
            return false;
        }
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(e) => {
                self.unreserve(n);
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    self.dropped();
                }
                false
            }
        }
    }

    /// Queues a message, waiting up to `timeout` for a free slot; dropped when its bytes do
    /// not fit.
    pub async fn send(&self, msg: Bytes, timeout: Duration) -> bool {
        let n = msg.len();
        if !self.reserve(n) {
            self.dropped();
            return false;
        }
        let sent = matches!(
            tokio::time::timeout(timeout, self.tx.send(msg)).await,
            Ok(Ok(()))
        );
        if !sent {
            self.unreserve(n);
        }
        sent
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the receiving side is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

impl StreamRx {
    pub async fn recv(&mut self) -> Option<Bytes> {
        let msg = self.rx.recv().await?;
        self.shared.queued.fetch_sub(msg.len(), Ordering::Relaxed);
        Some(msg)
    }

    pub fn try_recv(&mut self) -> Option<Bytes> {
        let msg = self.rx.try_recv().ok()?;
        self.shared.queued.fetch_sub(msg.len(), Ordering::Relaxed);
        Some(msg)
    }
}

/// Why a session was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefused {
    /// `maxSessions` are open.
    Full,
    /// The client's address holds `maxSessionsPerClient`.
    PerClient,
}

/// Which front a session came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    StreamableHttp,
    LegacySse,
}

/// Who opens a session: the address it counts against (`maxSessionsPerClient`) and, behind a
/// token check, the issuer and subject it belongs to.
#[derive(Debug, Clone, Default)]
pub struct Opener {
    pub client: Option<IpAddr>,
    pub owner: Option<String>,
}

/// One client session. Its stream (the GET stream of streamable HTTP, or the legacy SSE stream)
/// receives the messages that are not replies to a POST.
#[derive(Debug)]
pub struct Session {
    pub id: Arc<str>,
    pub kind: SessionKind,
    /// The client address that opened it, for the per-client cap.
    client: Option<IpAddr>,
    /// Behind a token check, the issuer and subject of the token that opened it: only they
    /// may use it.
    owner: Option<String>,
    stream: Mutex<Option<StreamTx>>,
    /// The URIs this session subscribed to (the hub counts subscribers per URI).
    subscriptions: Mutex<HashSet<String>>,
    /// The tasks this session created, with when the server forgets them (its `ttl`).
    tasks: Mutex<HashMap<String, Option<Instant>>>,
    created_ms: u64,
    last_seen_ms: AtomicU64,
    /// Whether a request followed the one that opened the session.
    used: AtomicBool,
}

impl Session {
    /// Attaches a new stream, replacing (and so closing) any previous one.
    pub fn attach_stream(&self, hub: &Hub) -> StreamRx {
        let (tx, rx) = stream_channel(hub.limits.max_stream_queue_bytes, hub.metrics.clone());
        *lock(&self.stream) = Some(tx);
        rx
    }

    /// Puts a message on the session's stream; dropped when no stream is open or it is full.
    pub fn push(&self, msg: Bytes) -> bool {
        match &*lock(&self.stream) {
            Some(tx) => tx.try_push(msg),
            None => false,
        }
    }

    /// The sender of the open stream, for replies that wait for room in it.
    pub fn stream_sender(&self) -> Option<StreamTx> {
        lock(&self.stream).clone()
    }

    fn owns_task(&self, id: &str) -> bool {
        lock(&self.tasks).contains_key(id)
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
    progress: Option<(Value, StreamTx)>,
    /// A `tools/list` whose result the tool policy rewrites.
    rewrite_tools: bool,
    /// The first `resources/subscribe` of this URI (a later one, and every unsubscribe, is
    /// settled before it is sent).
    subscription: Option<String>,
    /// What the reply tells about tasks.
    tasks: TaskReply,
}

/// What the hub reads from a reply about tasks: the task a task-augmented request created, or
/// the `tasks/list` page to filter down to the session's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskReply {
    None,
    Creates,
    List,
}

/// The multiplexer. Cheap to share: every front holds an `Arc<Hub>`.
pub struct Hub {
    to_server: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<u64, Pending>>,
    sessions: Mutex<Sessions>,
    /// How many sessions subscribe to each URI: the server hears the first subscribe and the
    /// last unsubscribe only, so one session's unsubscribe never ends another's updates.
    subscribers: Mutex<HashMap<String, usize>>,
    limits: HubLimits,
    closed_tx: watch::Sender<bool>,
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

/// What [`Hub::settle_subscription`] decided.
enum Settled {
    /// Answered by the bridge: success, or a refusal.
    Locally(Result<(), &'static str>),
    Forward {
        first_subscribe: bool,
    },
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<Arc<str>, Arc<Session>>,
    per_client: HashMap<IpAddr, usize>,
}

impl Sessions {
    /// Removes a session; the caller then [`Hub::forget`]s what it held.
    fn remove(&mut self, id: &str) -> Option<Arc<Session>> {
        let session = self.by_id.remove(id)?;
        self.uncount(&session);
        Some(session)
    }

    fn uncount(&mut self, session: &Session) {
        if let Some(client) = session.client {
            if let Some(n) = self.per_client.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    self.per_client.remove(&client);
                }
            }
        }
    }
}

impl Call {
    /// A call the bridge answered itself; the server never sees it.
    fn answered(hub: &Arc<Hub>, reply: Bytes) -> Call {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(reply);
        // Id 0 is never a bridge id: dropping this call withdraws nothing.
        Call {
            hub: hub.clone(),
            id: 0,
            rx,
            done: false,
        }
    }

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
        limits: HubLimits,
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
            sessions: Mutex::new(Sessions::default()),
            subscribers: Mutex::new(HashMap::new()),
            limits,
            closed_tx: watch::Sender::new(false),
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
        tokio::spawn(read_lines(hub.clone(), stdout, limits.max_line_bytes));
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

    /// Resolves once the server is gone (its stdout closed, or the bridge shut the hub down).
    pub async fn wait_closed(&self) {
        let mut rx = self.closed_tx.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
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

    /// Opens a session for `client`, within `max_sessions` in all and `per_client` for one
    /// client address.
    pub fn open_session(
        &self,
        kind: SessionKind,
        opener: Opener,
        max_sessions: usize,
        per_client: usize,
    ) -> Result<Arc<Session>, SessionRefused> {
        let mut sessions = lock(&self.sessions);
        if sessions.by_id.len() >= max_sessions {
            self.metrics.session_refused("max_sessions");
            return Err(SessionRefused::Full);
        }
        if let Some(client) = opener.client {
            let held = sessions.per_client.get(&client).copied().unwrap_or(0);
            if held >= per_client {
                self.metrics.session_refused("per_client");
                return Err(SessionRefused::PerClient);
            }
            *sessions.per_client.entry(client).or_insert(0) += 1;
        }
        let now = self.now_ms();
        let session = Arc::new(Session {
            id: new_session_id().into(),
            kind,
            client: opener.client,
            owner: opener.owner,
            stream: Mutex::new(None),
            subscriptions: Mutex::new(HashSet::new()),
            tasks: Mutex::new(HashMap::new()),
            created_ms: now,
            last_seen_ms: AtomicU64::new(now),
            used: AtomicBool::new(false),
        });
        sessions.by_id.insert(session.id.clone(), session.clone());
        self.metrics.sessions.set(sessions.by_id.len() as i64);
        Ok(session)
    }

    /// Looks a session up and marks it as used.
    /// The live session `id` of `kind`, when `owner` may use it (whoever opened it; anyone when
    /// it was opened without a token check). Using it keeps it alive.
    pub fn session(
        &self,
        id: &str,
        kind: SessionKind,
        owner: Option<&str>,
    ) -> Option<Arc<Session>> {
        let session = lock(&self.sessions).by_id.get(id).cloned()?;
        if session.kind != kind || session.owner.as_deref().is_some_and(|o| Some(o) != owner) {
            return None;
        }
        session.last_seen_ms.store(self.now_ms(), Ordering::Relaxed);
        if !session.used.load(Ordering::Relaxed) {
            session.used.store(true, Ordering::Relaxed);
        }
        Some(session)
    }

    /// Ends a session; its requests still in flight are withdrawn when their callers drop them.
    pub fn close_session(&self, id: &str) -> bool {
        let removed = {
            let mut sessions = lock(&self.sessions);
            let removed = sessions.remove(id);
            self.metrics.sessions.set(sessions.by_id.len() as i64);
            removed
        };
        match removed {
            Some(session) => {
                self.forget(&session);
                true
            }
            None => false,
        }
    }

    /// Ends sessions that made no request within `handshake` of opening (both fronts), and
    /// streamable-HTTP sessions idle for longer than `ttl` with no open stream.
    pub fn expire_sessions(&self, ttl: Duration, handshake: Duration) {
        let now = self.now_ms();
        let ttl = ttl.as_millis() as u64;
        let handshake = handshake.as_millis() as u64;
        let mut unused = 0;
        let mut idle = 0;
        let expired: Vec<Arc<Session>> = {
            let mut sessions = lock(&self.sessions);
            let mut expired = Vec::new();
            sessions.by_id.retain(|_, s| {
                let keep = if !s.used.load(Ordering::Relaxed)
                    && now.saturating_sub(s.created_ms) >= handshake
                {
                    unused += 1;
                    false
                } else {
                    s.kind != SessionKind::StreamableHttp
                        || s.has_stream()
                        || now.saturating_sub(s.last_seen_ms.load(Ordering::Relaxed)) < ttl
                        || {
                            idle += 1;
                            false
                        }
                };
                if !keep {
                    expired.push(s.clone());
                }
                keep
            });
            for s in &expired {
                sessions.uncount(s);
            }
            self.metrics.sessions.set(sessions.by_id.len() as i64);
            expired
        };
        self.metrics.sessions_expired("handshake", unused);
        self.metrics.sessions_expired("idle", idle);
        for session in &expired {
            self.forget(session);
        }
    }

    /// Lets go of what an ended session held: its stream, its subscriptions (the server hears
    /// the last unsubscribe of each URI) and its tasks.
    fn forget(&self, session: &Session) {
        *lock(&session.stream) = None;
        let uris: Vec<String> = lock(&session.subscriptions).drain().collect();
        let mut last = Vec::new();
        {
            let mut counts = lock(&self.subscribers);
            for uri in uris {
                if let Some(n) = counts.get_mut(&uri) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&uri);
                        last.push(uri);
                    }
                }
            }
        }
        for uri in last {
            // Nobody waits for the answer: an id no request holds makes the hub drop it.
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let msg = serde_json::json!({"jsonrpc": "2.0", "id": id,
                "method": "resources/unsubscribe", "params": {"uri": uri}});
            let _ = self.to_server.try_send(Bytes::from(msg.to_string()));
        }
        lock(&session.tasks).clear();
    }

    /// Sends a client's request to the server. `body` is the client's decoded message;
    /// `progress` receives the request's progress notifications, if it asked for any.
    pub async fn call(
        self: &Arc<Self>,
        session: &Arc<Session>,
        method: &str,
        mut body: Value,
        progress: Option<StreamTx>,
    ) -> Result<Call, CallError> {
        if self.is_closed() {
            return Err(CallError::ServerGone);
        }
        let client_id = body
            .get("id")
            .map(|v| Bytes::from(v.to_string()))
            .unwrap_or_else(|| Bytes::from_static(b"null"));
        let tasks = match self.screen_tasks(session, method, &body) {
            Ok(tasks) => tasks,
            Err(refusal) => {
                let reply =
                    jsonrpc::error_response(Some(&client_id), code::INVALID_PARAMS, refusal);
                return Ok(Call::answered(self, reply));
            }
        };
        let subscription = match method {
            "resources/subscribe" | "resources/unsubscribe" => {
                let uri = body.pointer("/params/uri").and_then(Value::as_str);
                match uri.map(|uri| self.settle_subscription(session, method, uri)) {
                    Some(Settled::Locally(result)) => {
                        let reply = match result {
                            Ok(()) => jsonrpc::result_response(&client_id, b"{}"),
                            Err(message) => jsonrpc::error_response(
                                Some(&client_id),
                                code::INVALID_PARAMS,
                                message,
                            ),
                        };
                        return Ok(Call::answered(self, reply));
                    }
                    Some(Settled::Forward { first_subscribe }) => {
                        first_subscribe.then(|| uri.unwrap_or_default().to_owned())
                    }
                    // A URI that is not a string could not be counted: refused, or one session's
                    // unsubscribe could end the others' subscription.
                    None => {
                        let reply = jsonrpc::error_response(
                            Some(&client_id),
                            code::INVALID_PARAMS,
                            "params.uri must be a string",
                        );
                        return Ok(Call::answered(self, reply));
                    }
                }
            }
            _ => None,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        body["id"] = Value::from(id);
        let progress = match body.pointer_mut("/params/_meta/progressToken") {
            Some(token) => {
                let original = std::mem::replace(token, Value::from(id));
                progress.map(|tx| (original, tx))
            }
            None => None,
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
                tasks,
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

    /// Tasks belong to the session that created them: `tasks/get`, `tasks/result` and
    /// `tasks/cancel` of another session's task are answered as for an unknown task, and a
    /// `tasks/list` page is cut down to the session's own (see [`TaskReply`]).
    fn screen_tasks(
        &self,
        session: &Session,
        method: &str,
        body: &Value,
    ) -> Result<TaskReply, &'static str> {
        if method == "tasks/list" {
            return Ok(TaskReply::List);
        }
        if method.starts_with("tasks/") {
            let task = body.pointer("/params/taskId").and_then(Value::as_str);
            return match task {
                Some(task) if session.owns_task(task) => Ok(TaskReply::None),
                _ => Err("Failed to retrieve task: Task not found"),
            };
        }
        if !body.pointer("/params/task").is_some_and(Value::is_object) {
            return Ok(TaskReply::None);
        }
        let mut tasks = lock(&session.tasks);
        if tasks.len() >= MAX_TASKS_PER_SESSION {
            let now = Instant::now();
            tasks.retain(|_, expires| expires.is_none_or(|at| at > now));
            if tasks.len() >= MAX_TASKS_PER_SESSION {
                return Err("this session holds too many tasks");
            }
        }
        Ok(TaskReply::Creates)
    }

    /// Decides whether a (un)subscribe reaches the server: only the first subscribe of a URI
    /// and its last unsubscribe do; the others are settled here.
    fn settle_subscription(&self, session: &Session, method: &str, uri: &str) -> Settled {
        let mut counts = lock(&self.subscribers);
        let mut mine = lock(&session.subscriptions);
        if method == "resources/subscribe" {
            if mine.contains(uri) {
                return Settled::Locally(Ok(()));
            }
            if mine.len() >= MAX_SUBSCRIPTIONS_PER_SESSION {
                return Settled::Locally(Err("this session holds too many subscriptions"));
            }
            match counts.get_mut(uri) {
                Some(n) => {
                    *n += 1;
                    mine.insert(uri.to_owned());
                    Settled::Locally(Ok(()))
                }
                // Counted when the server confirms it.
                None => Settled::Forward {
                    first_subscribe: true,
                },
            }
        } else {
            if !mine.remove(uri) {
                // Nothing of this session's to end; forwarding would end the others'.
                return Settled::Locally(Ok(()));
            }
            match counts.get_mut(uri) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    Settled::Locally(Ok(()))
                }
                _ => {
                    counts.remove(uri);
                    Settled::Forward {
                        first_subscribe: false,
                    }
                }
            }
        }
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
                tasks: TaskReply::None,
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
        if let Some(session) = &pending.session {
            // Only the rare replies that tell about subscriptions or tasks are looked into.
            let succeeded = || jsonrpc::top_level_value_span(line, b"result").is_some();
            if let Some(uri) = pending.subscription {
                if succeeded() {
                    let mut counts = lock(&self.subscribers);
                    if lock(&session.subscriptions).insert(uri.clone()) {
                        *counts.entry(uri).or_insert(0) += 1;
                    }
                }
            }
            match pending.tasks {
                TaskReply::None => {}
                TaskReply::Creates => {
                    if succeeded() {
                        record_task(session, line);
                    }
                }
                TaskReply::List => msg = own_tasks_only(session, msg),
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
            for session in lock(&self.sessions).by_id.values() {
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
            for session in lock(&self.sessions).by_id.values() {
                if lock(&session.subscriptions).contains(uri) {
                    session.push(msg.clone());
                }
            }
        } else if method == "notifications/tasks/status" {
            // A task's status goes to the session that owns the task, and only there.
            let Ok(value) = serde_json::from_slice::<Value>(line) else {
                return;
            };
            let Some(task) = value.pointer("/params/taskId").and_then(Value::as_str) else {
                return;
            };
            let owner = lock(&self.sessions)
                .by_id
                .values()
                .find(|s| s.owns_task(task))
                .cloned();
            if let Some(owner) = owner {
                owner.push(Bytes::copy_from_slice(line));
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
            tx.try_push(Bytes::from(msg));
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
        self.metrics.server_up.set(0);
        self.closed_tx.send_replace(true);
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

/// Records the task a task-augmented request created (`result.task.taskId`), with the time the
/// server forgets it (`ttl`, in ms; none means it keeps it).
fn record_task(session: &Session, line: &[u8]) {
    let Ok(reply) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let Some(task) = reply.pointer("/result/task") else {
        return;
    };
    let Some(id) = task.get("taskId").and_then(Value::as_str) else {
        return;
    };
    let expires = task
        .get("ttl")
        .and_then(Value::as_u64)
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    lock(&session.tasks).insert(id.to_owned(), expires);
}

/// A `tasks/list` reply with the tasks of other sessions left out.
fn own_tasks_only(session: &Session, msg: Bytes) -> Bytes {
    let Ok(mut reply) = serde_json::from_slice::<Value>(&msg) else {
        return msg;
    };
    let Some(tasks) = reply
        .pointer_mut("/result/tasks")
        .and_then(Value::as_array_mut)
    else {
        return msg;
    };
    let mine = lock(&session.tasks);
    tasks.retain(|t| {
        t.get("taskId")
            .and_then(Value::as_str)
            .is_some_and(|id| mine.contains_key(id))
    });
    drop(mine);
    serde_json::to_vec(&reply).map(Bytes::from).unwrap_or(msg)
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

/// Reads the server's stdout line by line (tolerating `\r\n`). A line longer than `max_line`
/// bytes is skipped, keeping only its head and tail, where its `id` is: the request waiting
/// for it is answered with an error at once. At EOF every waiting request fails.
async fn read_lines<R: AsyncRead + Unpin>(hub: Arc<Hub>, stdout: R, max_line: usize) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut tail: Vec<u8> = Vec::new();
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
                "the MCP server wrote a line over the size limit (maxLineBytes); skipped"
            );
            oversize = true;
            let room = OVERSIZE_HEAD.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..room.min(chunk.len())]);
            line.truncate(OVERSIZE_HEAD);
            line.shrink_to(OVERSIZE_HEAD.max(8 * 1024));
        }
        if oversize {
            keep_tail(&mut tail, chunk);
        } else {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len() + usize::from(complete);
        reader.consume(used);
        if complete {
            if oversize {
                hub.answer_oversize(&line, &tail, max_line);
            } else {
                let text = line.strip_suffix(b"\r").unwrap_or(&line);
                if !text.iter().all(u8::is_ascii_whitespace) {
                    hub.route(text);
                }
            }
            line.clear();
            tail.clear();
            oversize = false;
        }
    }
    tracing::info!("the MCP server closed its stdout");
    hub.fail_all();
}

/// Keeps the last [`OVERSIZE_TAIL`] bytes seen of a line.
fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    let from = chunk.len().saturating_sub(OVERSIZE_TAIL);
    tail.extend_from_slice(&chunk[from..]);
    if tail.len() > OVERSIZE_TAIL {
        tail.drain(..tail.len() - OVERSIZE_TAIL);
    }
}

/// The id of a message that ends `…"id":<integer>}` (the order the TypeScript SDK writes), from
/// the last bytes of its line.
fn trailing_id(tail: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(tail).ok()?.trim_end();
    let text = text.strip_suffix('}')?.trim_end();
    let digits_from = text
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let id: u64 = text[digits_from..].parse().ok()?;
    let before = text[..digits_from].trim_end().strip_suffix(':')?.trim_end();
    let before = before.strip_suffix("\"id\"")?.trim_end();
    (before.ends_with(',') || before.ends_with('{')).then_some(id)
}

impl Hub {
    /// A response too large to forward: its waiting request gets an error now rather than a
    /// timeout. `head` and `tail` are the first and last bytes of the line.
    fn answer_oversize(&self, head: &[u8], tail: &[u8], max_line: usize) {
        // A request or notification of the server's (its `method` comes first) waits for
        // nothing of ours.
        if jsonrpc::top_level_value_span(head, b"method").is_some() {
            return;
        }
        let id = jsonrpc::top_level_value_span(head, b"id")
            .and_then(|(start, end)| std::str::from_utf8(&head[start..end]).ok()?.parse().ok())
            .or_else(|| trailing_id(tail));
        let Some(pending) = id.and_then(|id| lock(&self.pending).remove(&id)) else {
            return;
        };
        let message = format!(
            "the MCP server's answer is larger than the bridge's maxLineBytes ({max_line} bytes)"
        );
        let error =
            jsonrpc::error_response(Some(&pending.client_id), code::INTERNAL_ERROR, &message);
        let _ = pending.reply.send(error);
    }
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
        let limits = HubLimits {
            max_line_bytes: max_line,
            max_stream_queue_bytes: 1 << 20,
        };
        let hub = Hub::start(
            hub_stdin,
            hub_stdout,
            limits,
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
        let session = hub
            .open_session(SessionKind::StreamableHttp, Opener::default(), 10, 10)
            .unwrap();
        let tools_result = r#"{"tools":[{"name":"echo"}]}"#;
        for (method, want) in [
            (
                "tools/list",
                // Re-encoded, in the server's key order (serde_json keeps it in this build).
                r#"{"jsonrpc":"2.0","id":"c","result":{"tools":[{"name":"say"}]}}"#,
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
        let session = hub
            .open_session(SessionKind::StreamableHttp, Opener::default(), 10, 10)
            .unwrap();
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
        let session = hub
            .open_session(SessionKind::StreamableHttp, Opener::default(), 10, 10)
            .unwrap();
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
        let session = hub
            .open_session(SessionKind::LegacySse, Opener::default(), 10, 10)
            .unwrap();
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

    /// A reply over `maxLineBytes` answers its request with an error at once, whether the SDK
    /// writes the id first (Python) or last (TypeScript); the next reply still goes through.
    #[tokio::test]
    async fn an_oversize_reply_fails_its_request_at_once() {
        let (hub, mut from_hub, mut to_hub) = hub_with_pipes(1024);
        let session = hub
            .open_session(SessionKind::StreamableHttp, Opener::default(), 10, 10)
            .unwrap();
        let big = "x".repeat(5000);
        for id_first in [true, false] {
            let body = serde_json::json!({"jsonrpc": "2.0", "id": "c", "method": "tools/call"});
            let call = hub.call(&session, "tools/call", body, None).await.unwrap();
            let sent: Value =
                serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
            let line = if id_first {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{},"result":{{"t":"{big}"}}}}"#,
                    sent["id"]
                )
            } else {
                format!(
                    r#"{{"result":{{"t":"{big}","id":9}},"jsonrpc":"2.0","id":{} }}"#,
                    sent["id"]
                )
            };
            to_hub.write_all(line.as_bytes()).await.unwrap();
            to_hub.write_all(b"\r\n").await.unwrap();
            let reply: Value =
                serde_json::from_slice(&call.reply(Duration::from_millis(500)).await.unwrap())
                    .unwrap();
            assert_eq!(reply["id"], "c", "id first: {id_first}");
            assert_eq!(reply["error"]["code"], code::INTERNAL_ERROR);
        }
        // A server request that is too long waits for nothing: no one is failed by it.
        let body = serde_json::json!({"jsonrpc": "2.0", "id": "d", "method": "ping"});
        let call = hub.call(&session, "ping", body, None).await.unwrap();
        let sent: Value =
            serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
        let request = format!(
            r#"{{"method":"sampling/createMessage","params":{{"t":"{big}"}},"jsonrpc":"2.0","id":{}}}"#,
            sent["id"]
        );
        to_hub.write_all(request.as_bytes()).await.unwrap();
        to_hub.write_all(b"\n").await.unwrap();
        let reply = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#, sent["id"]);
        to_hub.write_all(reply.as_bytes()).await.unwrap();
        to_hub.write_all(b"\n").await.unwrap();
        let reply: Value =
            serde_json::from_slice(&call.reply(Duration::from_secs(2)).await.unwrap()).unwrap();
        assert_eq!(reply["result"], serde_json::json!({}));
    }

    #[test]
    fn trailing_ids() {
        assert_eq!(trailing_id(br#"x","jsonrpc":"2.0","id":42}"#), Some(42));
        assert_eq!(trailing_id(br#"2.0", "id" : 7 }  "#), Some(7));
        assert_eq!(trailing_id(br#"{"id":7}}"#), None);
        assert_eq!(trailing_id(br#"x\"id\":7}"#), None);
        assert_eq!(trailing_id(br#","id":"s"}"#), None);
    }

    /// A stream's queue holds about `cap` bytes for a client that does not read it; one
    /// message always fits into an empty queue; reading makes room again.
    #[tokio::test]
    async fn stream_queues_are_bounded_by_bytes() {
        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = stream_channel(1000, metrics.clone());
        assert!(
            tx.try_push(Bytes::from(vec![b'a'; 4000])),
            "fits an empty queue"
        );
        assert!(!tx.try_push(Bytes::from(vec![b'b'; 10])));
        assert!(
            !tx.send(Bytes::from(vec![b'c'; 10]), Duration::from_millis(10))
                .await
        );
        assert_eq!(metrics.stream_messages_dropped.get(), 2);
        assert_eq!(rx.recv().await.unwrap().len(), 4000);
        assert!(tx.try_push(Bytes::from(vec![b'd'; 600])));
        assert!(tx.try_push(Bytes::from(vec![b'e'; 400])));
        assert!(!tx.try_push(Bytes::from(vec![b'f'; 1])));
        assert_eq!(rx.try_recv().unwrap()[0], b'd');
    }

    /// Tasks are recorded from the create result; `tasks/list` is cut down to the session's
    /// own, other ids are unknown without reaching the server, and a task's status
    /// notification goes to its owner's stream only.
    #[tokio::test]
    async fn tasks_belong_to_the_session_that_created_them() {
        let (hub, mut from_hub, mut to_hub) = hub_with_pipes(1 << 16);
        let a = hub
            .open_session(SessionKind::StreamableHttp, Opener::default(), 10, 10)
            .unwrap();
        let b = hub
            .open_session(SessionKind::StreamableHttp, Opener::default(), 10, 10)
            .unwrap();
        let mut a_stream = a.attach_stream(&hub);
        let mut b_stream = b.attach_stream(&hub);
        async fn answer(
            from_hub: &mut tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
            to_hub: &mut tokio::io::DuplexStream,
            result: &str,
        ) {
            let sent: Value =
                serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
            let reply = format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{result}}}"#,
                sent["id"]
            );
            to_hub.write_all(reply.as_bytes()).await.unwrap();
            to_hub.write_all(b"\n").await.unwrap();
        }
        let create = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "t", "task": {"ttl": 60000}}});
        let call = hub.call(&a, "tools/call", create, None).await.unwrap();
        answer(
            &mut from_hub,
            &mut to_hub,
            r#"{"task":{"taskId":"T1","status":"working","ttl":60000}}"#,
        )
        .await;
        call.reply(Duration::from_secs(2)).await.unwrap();

        let get = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get",
            "params": {"taskId": "T1"}});
        let refused = hub.call(&b, "tasks/get", get.clone(), None).await.unwrap();
        let refused: Value =
            serde_json::from_slice(&refused.reply(Duration::from_secs(2)).await.unwrap()).unwrap();
        assert_eq!(refused["error"]["code"], code::INVALID_PARAMS);
        assert_eq!(refused["id"], 2);

        let all = r#"{"tasks":[{"taskId":"T0"},{"taskId":"T1"}],"nextCursor":"c"}"#;
        for (session, want) in [(&a, serde_json::json!(["T1"])), (&b, serde_json::json!([]))] {
            let list = serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/list"});
            let call = hub.call(session, "tasks/list", list, None).await.unwrap();
            answer(&mut from_hub, &mut to_hub, all).await;
            let reply: Value =
                serde_json::from_slice(&call.reply(Duration::from_secs(2)).await.unwrap()).unwrap();
            let ids: Vec<&Value> = reply["result"]["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| &t["taskId"])
                .collect();
            assert_eq!(serde_json::to_value(ids).unwrap(), want);
            assert_eq!(reply["result"]["nextCursor"], "c");
        }
        // The owner's own tasks/get reaches the server (it is the next line the server reads).
        let _owner_get = hub.call(&a, "tasks/get", get, None).await.unwrap();
        let sent: Value =
            serde_json::from_str(&from_hub.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(sent["method"], "tasks/get");

        to_hub
            .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tasks/status\",\"params\":{\"taskId\":\"T1\",\"status\":\"completed\"}}\n")
            .await
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(2), a_stream.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(std::str::from_utf8(&status).unwrap().contains("T1"));
        assert!(b_stream.try_recv().is_none());
    }
}
