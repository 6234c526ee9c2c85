//! The aggregator: client sessions, each with one session per backend; the fan-out of
//! `initialize` and the `*/list` calls under `aggregateDeadlineMs`; routing of calls to the
//! backend that owns the tool, resource or prompt; `list_changed` to connected clients.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use super::backend::{with_id, BackendSession, Failure, Link, SideChannel};
use super::merge::{self, Routed};
use super::settings::Settings;
use crate::bridge::hub::{lock, StreamTx};
use crate::bridge::jsonrpc::{self, code};
use crate::bridge::metrics::Metrics;

/// Pages read from one backend for one list, at most.
const MAX_BACKEND_PAGES: usize = 100;
/// Items of a merged list served per page.
pub const PAGE_SIZE: usize = 100;

/// A JSON-RPC error to answer a client with.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The merged tools one client saw last: what `tools/call` routes by.
#[derive(Debug, Default)]
pub struct ToolSnapshot {
    pub tools: Vec<Routed>,
    by_name: HashMap<String, usize>,
}

/// Which backend serves each resource URI, template and prompt (from the last lists).
#[derive(Debug, Default)]
struct Owners {
    resources: HashMap<String, usize>,
    /// The literal part of each template before its first `{`, and its backend.
    templates: Vec<(String, usize)>,
    prompts: HashMap<String, usize>,
}

/// One client session.
pub struct ClientSession {
    pub id: String,
    /// The address the session counts against (`maxSessionsPerClient`).
    client: Option<IpAddr>,
    /// The issuer and subject of the token that opened it: only they may use it.
    owner: Option<String>,
    backends: Vec<tokio::sync::Mutex<Option<Arc<BackendSession>>>>,
    tools: Mutex<Option<Arc<ToolSnapshot>>>,
    /// Every tool name this client was shown, and its backend: a call of a tool whose
    /// backend is down names the backend rather than saying the tool does not exist.
    known: Mutex<HashMap<String, usize>>,
    owners: Mutex<Owners>,
    /// The client's request id (raw JSON) → the backend and the id it was sent under.
    in_flight: Mutex<HashMap<Vec<u8>, (usize, String)>>,
    stream: Mutex<Option<StreamTx>>,
    /// Per backend, the task passing on what that backend sends this client's session outside
    /// any answer (resource updates); started by the first `resources/subscribe` there.
    relays: Mutex<HashMap<usize, Relay>>,
    last_used: Mutex<Instant>,
    opened: Instant,
    /// Whether the client came back after `initialize` (a session that never does is ended
    /// after the bridge's `sessionHandshakeSeconds`, with the backend sessions it opened).
    used: std::sync::atomic::AtomicBool,
}

impl ClientSession {
    pub fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The standalone GET stream: list_changed notifications go there.
    pub fn attach(&self, tx: StreamTx) {
        *lock(&self.stream) = Some(tx);
    }

    fn push(&self, msg: Bytes) {
        if let Some(tx) = lock(&self.stream).as_ref() {
            let _ = tx.try_push(msg);
        }
    }
}

/// A client session's relay of one backend session's own stream.
struct Relay {
    backend: Arc<BackendSession>,
    task: tokio::task::JoinHandle<()>,
}

/// Whether a backend's message is a `notifications/resources/updated` (passed on as it is:
/// resource URIs are not renamed by aggregation).
fn is_resource_update(data: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Note<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        id: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_str::<Note>(data).is_ok_and(|n| {
        n.id.is_none() && n.method.as_deref() == Some("notifications/resources/updated")
    })
}

/// The runtime's state.
pub struct Aggregator {
    pub settings: Arc<Settings>,
    pub links: Vec<Arc<Link>>,
    pub metrics: Arc<Metrics>,
    sessions: Mutex<Sessions>,
    limits: SessionLimits,
}

/// How many client sessions the aggregator holds. Each holds a session with every backend, and a
/// backend counts all of them against the aggregator's one address: the bounds keep one client
/// from filling the backends (whose refusals would open their circuits for everyone).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_sessions: usize,
    pub max_per_client: usize,
}

/// Why a session was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefused {
    Full,
    PerClient,
}

impl SessionRefused {
    pub fn message(self) -> &'static str {
        match self {
            SessionRefused::Full => "too many sessions",
            SessionRefused::PerClient => "too many sessions from this client address",
        }
    }
}

/// The client sessions by id, and how many each client address holds.
#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Arc<ClientSession>>,
    per_client: HashMap<IpAddr, usize>,
}

impl Sessions {
    fn open(
        &mut self,
        session: Arc<ClientSession>,
        limits: SessionLimits,
    ) -> Result<(), SessionRefused> {
        if self.by_id.len() >= limits.max_sessions {
            return Err(SessionRefused::Full);
        }
        if let Some(addr) = session.client {
            let held = self.per_client.entry(addr).or_default();
            if *held >= limits.max_per_client {
                return Err(SessionRefused::PerClient);
            }
            *held += 1;
        }
        self.by_id.insert(session.id.clone(), session);
        Ok(())
    }

    fn close(&mut self, id: &str) -> Option<Arc<ClientSession>> {
        let session = self.by_id.remove(id)?;
        if let Some(addr) = session.client {
            if let Some(held) = self.per_client.get_mut(&addr) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    self.per_client.remove(&addr);
                }
            }
        }
        Some(session)
    }
}

impl Aggregator {
    pub fn new(
        settings: Arc<Settings>,
        links: Vec<Arc<Link>>,
        metrics: Arc<Metrics>,
        limits: SessionLimits,
    ) -> Self {
        Self {
            settings,
            links,
            metrics,
            sessions: Mutex::new(Sessions::default()),
            limits,
        }
    }

    /// The session `id` when `owner` may use it (the one who opened it; anyone when it was
    /// opened without a token check); using it keeps it alive.
    pub fn session(&self, id: &str, owner: Option<&str>) -> Option<Arc<ClientSession>> {
        let s = lock(&self.sessions)
            .by_id
            .get(id)
            .filter(|s| s.owner.is_none() || s.owner.as_deref() == owner)
            .cloned();
        if let Some(s) = &s {
            s.touch();
        }
        s
    }

    pub fn session_count(&self) -> usize {
        lock(&self.sessions).by_id.len()
    }

    fn new_session(
        &self,
        client: Option<IpAddr>,
        owner: Option<String>,
    ) -> Result<Arc<ClientSession>, SessionRefused> {
        let session = Arc::new(ClientSession {
            id: hex::encode(rand::random::<[u8; 16]>()),
            client,
            owner,
            backends: self
                .links
                .iter()
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            tools: Mutex::new(None),
            known: Mutex::new(HashMap::new()),
            owners: Mutex::new(Owners::default()),
            in_flight: Mutex::new(HashMap::new()),
            stream: Mutex::new(None),
            relays: Mutex::new(HashMap::new()),
            last_used: Mutex::new(Instant::now()),
            opened: Instant::now(),
            used: std::sync::atomic::AtomicBool::new(false),
        });
        let mut sessions = lock(&self.sessions);
        sessions.open(session.clone(), self.limits)?;
        self.metrics.sessions.set(sessions.by_id.len() as i64);
        Ok(session)
    }

    /// Ends a client session and its backend sessions.
    pub fn close_session(&self, id: &str) -> bool {
        let removed = {
            let mut sessions = lock(&self.sessions);
            let removed = sessions.close(id);
            self.metrics.sessions.set(sessions.by_id.len() as i64);
            removed
        };
        let Some(session) = removed else {
            return false;
        };
        for (_, relay) in lock(&session.relays).drain() {
            relay.task.abort();
        }
        for (b, slot) in session.backends.iter().enumerate() {
            let link = self.links[b].clone();
            if let Some(bs) = slot.try_lock().ok().and_then(|mut s| s.take()) {
                tokio::spawn(async move { link.close(&bs).await });
            }
        }
        true
    }

    /// Ends sessions idle for longer than `ttl`, and those never used after `initialize`
    /// within `handshake`.
    pub fn expire(&self, ttl: Duration, handshake: Duration) {
        let idle: Vec<String> = lock(&self.sessions)
            .by_id
            .values()
            .filter(|s| {
                lock(&s.last_used).elapsed() > ttl
                    || (!s.used.load(std::sync::atomic::Ordering::Relaxed)
                        && s.opened.elapsed() > handshake)
            })
            .map(|s| s.id.clone())
            .collect();
        for id in idle {
            self.close_session(&id);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Backends
    // -----------------------------------------------------------------------------------------

    /// The session with backend `b`, opened now if there is none or it is stale.
    async fn backend_session(
        &self,
        session: &ClientSession,
        b: usize,
    ) -> Result<Arc<BackendSession>, Failure> {
        let link = &self.links[b];
        let mut slot = session.backends[b].lock().await;
        if let Some(bs) = slot.as_ref() {
            if bs.generation == link.generation() {
                return Ok(bs.clone());
            }
            let (stale, link) = (bs.clone(), link.clone());
            tokio::spawn(async move { link.close(&stale).await });
        }
        *slot = None;
        let bs = Arc::new(link.open().await?);
        *slot = Some(bs.clone());
        Ok(bs)
    }

    /// Runs `f` against backend `b` within this client's session with it: refused at once by
    /// an open circuit, a session the backend lost reopened once, the outcome recorded in the
    /// breaker (and clients told when that changed what they can use).
    pub async fn with_backend<T, F, Fut>(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        b: usize,
        f: F,
    ) -> Result<T, Failure>
    where
        F: Fn(Arc<Link>, Arc<BackendSession>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let link = self.links[b].clone();
        let mut retried = false;
        loop {
            if !link.state.admit(Instant::now()) {
                return Err(Failure::CircuitOpen);
            }
            let before = link.state.is_usable();
            let out = match self.backend_session(session, b).await {
                Ok(bs) => f(link.clone(), bs).await,
                Err(e) => Err(e),
            };
            if matches!(out, Err(Failure::SessionGone)) && !retried {
                retried = true;
                *session.backends[b].lock().await = None;
                // The trial of a half-open circuit was not spent on a verdict.
                link.state.succeeded();
                continue;
            }
            link.record(&out);
            self.usability_changed(b, before, false);
            return out;
        }
    }

    /// After anything that may change what backend `b` offers: when it became usable or
    /// unusable (or `tools_changed`), sessions with it are reopened and clients are told.
    pub fn usability_changed(&self, b: usize, before: bool, tools_changed: bool) {
        let link = &self.links[b];
        let after = link.state.is_usable();
        if before == after && !tools_changed {
            return;
        }
        if before != after {
            link.bump_generation();
            tracing::warn!(
                backend = %link.name(),
                usable = after,
                "a backend {}",
                if after { "is back" } else { "is unavailable" }
            );
        }
        self.tools_changed();
    }

    /// Every client's tools changed: forget the snapshots, send `notifications/tools/list_changed`.
    pub fn tools_changed(&self) {
        let note =
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
        for session in lock(&self.sessions).by_id.values() {
            *lock(&session.tools) = None;
            session.push(note.clone());
        }
    }

    /// Sends a parameterless notification (`method`) to every connected client.
    pub fn broadcast(&self, method: &str) {
        let note = Bytes::from(serde_json::json!({"jsonrpc": "2.0", "method": method}).to_string());
        for session in lock(&self.sessions).by_id.values() {
            session.push(note.clone());
        }
    }

    /// Runs `f` against every backend at once; waits up to `aggregateDeadlineMs`. `None`: the
    /// backend did not answer in time (its work goes on, and a session it opens is kept).
    async fn fan_out<T, F, Fut>(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        f: F,
    ) -> Vec<Option<Result<T, Failure>>>
    where
        T: Send + 'static,
        F: Fn(Arc<Link>, Arc<BackendSession>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<T, Failure>> + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.settings.aggregate_deadline;
        let handles: Vec<_> = (0..self.links.len())
            .map(|b| {
                let (me, session, f) = (self.clone(), session.clone(), f.clone());
                tokio::spawn(async move { me.with_backend(&session, b, f).await })
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(match tokio::time::timeout_at(deadline, h).await {
                Ok(Ok(result)) => Some(result),
                _ => None,
            });
        }
        out
    }

    /// Under `partialFailureMode: fail`, the error naming every backend that did not answer.
    fn refuse_partial<T>(&self, results: &[Option<Result<T, Failure>>]) -> Result<(), RpcError> {
        if !self.settings.fail_on_partial {
            return Ok(());
        }
        let down: Vec<String> = results
            .iter()
            .enumerate()
            .filter_map(|(b, r)| match r {
                Some(Ok(_)) => None,
                Some(Err(e)) => Some(format!("{}: {e}", self.links[b].name())),
                None => Some(format!(
                    "{}: no answer within the deadline",
                    self.links[b].name()
                )),
            })
            .collect();
        if down.is_empty() {
            return Ok(());
        }
        Err(RpcError::new(
            code::INTERNAL_ERROR,
            format!(
                "partialFailureMode is fail and backends are unavailable: {}",
                down.join("; ")
            ),
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Client requests
    // -----------------------------------------------------------------------------------------

    /// `initialize`: a new session, each backend's session opened within the deadline.
    pub async fn initialize(
        self: &Arc<Self>,
        params: &Value,
        client: Option<IpAddr>,
        owner: Option<String>,
    ) -> Result<(Arc<ClientSession>, Value), RpcError> {
        let session = self.new_session(client, owner).map_err(|refused| {
            tracing::info!(message = refused.message(), client = ?client, "session refused");
            RpcError::new(code::TRANSPORT, refused.message())
        })?;
        let results = self
            .fan_out(&session, |_, bs| async move { Ok(bs.revision.clone()) })
            .await;
        if let Err(e) = self.refuse_partial(&results) {
            self.close_session(&session.id);
            return Err(e);
        }
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let revision = asked
            .filter(|v| crate::bridge::hub::KNOWN_VERSIONS.contains(v))
            .unwrap_or(super::backend::REVISION);
        let result = json!({
            "protocolVersion": revision,
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "prompts": {"listChanged": true},
                "completions": {},
                "logging": {},
            },
            "serverInfo": {"name": self.settings.name, "version": env!("CARGO_PKG_VERSION")},
        });
        Ok((session, result))
    }

    /// The merged tools, read fresh from every backend.
    pub async fn refresh_tools(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
    ) -> Result<Arc<ToolSnapshot>, RpcError> {
        let results = self
            .fan_out(session, |link, bs| async move {
                list_all(&link, &bs, "tools/list", "tools").await
            })
            .await;
        self.refuse_partial(&results)?;
        let lists: Vec<Option<Vec<(String, Value)>>> = results
            .into_iter()
            .enumerate()
            .map(|(b, r)| {
                let tools = r?.ok()?;
                Some(merge::select(&self.links[b].settings.selection, &tools))
            })
            .map(|l| l.filter(|_| !self.settings.exclude_all_tools))
            .collect();
        let names: Vec<String> = self.links.iter().map(|l| l.name().to_owned()).collect();
        let (tools, clashing) = merge::tools(&self.settings.strategy, &names, &lists);
        if !clashing.is_empty() {
            tracing::warn!(
                tools = ?clashing,
                "tools still offered by more than one backend after the conflict strategy are \
                 left out; rename them with overrides"
            );
        }
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        lock(&session.known).extend(tools.iter().map(|t| (t.name.clone(), t.backend)));
        let snapshot = Arc::new(ToolSnapshot { tools, by_name });
        *lock(&session.tools) = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// `tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`: one page
    /// of the merged list. A request without a cursor reads the backends again.
    pub async fn list(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        method: &str,
        params: &Value,
    ) -> Result<Value, RpcError> {
        let offset = match params.get("cursor") {
            None | Some(Value::Null) => None,
            Some(c) => Some(parse_cursor(c)?),
        };
        let (key, items): (&str, Vec<Value>) = match method {
            "tools/list" => {
                let cached = offset.and_then(|_| lock(&session.tools).clone());
                let snapshot = match cached {
                    Some(s) => s,
                    None => self.refresh_tools(session).await?,
                };
                (
                    "tools",
                    snapshot.tools.iter().map(|t| t.tool.clone()).collect(),
                )
            }
            "resources/list" => (
                "resources",
                self.owned(session, "resources/list", "resources", "uri")
                    .await?,
            ),
            "resources/templates/list" => (
                "resourceTemplates",
                self.owned(
                    session,
                    "resources/templates/list",
                    "resourceTemplates",
                    "uriTemplate",
                )
                .await?,
            ),
            "prompts/list" => (
                "prompts",
                self.owned(session, "prompts/list", "prompts", "name")
                    .await?,
            ),
            _ => return Err(RpcError::new(code::METHOD_NOT_FOUND, "Method not found")),
        };
        let start = offset.unwrap_or(0).min(items.len());
        let end = (start + PAGE_SIZE).min(items.len());
        let mut result = json!({ key: items[start..end].to_vec() });
        if end < items.len() {
            result["nextCursor"] = Value::from(format!("vmcp:{end}"));
        }
        Ok(result)
    }

    /// A merged list of resources, templates or prompts (the first backend to offer a key
    /// keeps it); remembers who owns what for routing.
    async fn owned(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        method: &'static str,
        field: &'static str,
        key: &str,
    ) -> Result<Vec<Value>, RpcError> {
        let results = self
            .fan_out(session, move |link, bs| async move {
                list_all(&link, &bs, method, field).await
            })
            .await;
        self.refuse_partial(&results)?;
        let lists: Vec<Option<Vec<Value>>> = results
            .into_iter()
            .map(|r| r.and_then(Result::ok))
            .collect();
        let merged = merge::first_wins(key, &lists);
        let mut owners = lock(&session.owners);
        match method {
            "resources/list" => {
                owners.resources = merged
                    .iter()
                    .filter_map(|(b, v)| Some((v.get(key)?.as_str()?.to_owned(), *b)))
                    .collect();
            }
            "resources/templates/list" => {
                owners.templates = merged
                    .iter()
                    .filter_map(|(b, v)| {
                        let t = v.get(key)?.as_str()?;
                        Some((t.split('{').next().unwrap_or("").to_owned(), *b))
                    })
                    .collect();
                owners
                    .templates
                    .sort_by_key(|t| std::cmp::Reverse(t.0.len()));
            }
            _ => {
                owners.prompts = merged
                    .iter()
                    .filter_map(|(b, v)| Some((v.get(key)?.as_str()?.to_owned(), *b)))
                    .collect();
            }
        }
        Ok(merged.into_iter().map(|(_, v)| v).collect())
    }

    /// `tools/call`: to the backend that owns the tool, under its own name.
    pub async fn call_tool(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        id_raw: &[u8],
        mut body: Value,
        side: Option<SideChannel>,
    ) -> Result<Bytes, RpcError> {
        let Some(name) = body.pointer("/params/name").and_then(Value::as_str) else {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                "params.name is required",
            ));
        };
        let name = name.to_owned();
        let mut snapshot = lock(&session.tools).clone();
        if snapshot
            .as_ref()
            .is_none_or(|s| !s.by_name.contains_key(&name))
        {
            snapshot = Some(self.refresh_tools(session).await?);
        }
        let snapshot = snapshot.unwrap_or_default();
        let Some(routed) = snapshot.by_name.get(&name).map(|i| &snapshot.tools[*i]) else {
            let owner = lock(&session.known).get(&name).copied();
            if let Some(b) = owner.filter(|b| !self.links[*b].state.is_usable()) {
                return Err(RpcError::new(
                    code::INTERNAL_ERROR,
                    format!(
                        "backend {}: unavailable (circuit {}), its tool {name} cannot be called now",
                        self.links[b].name(),
                        self.links[b].state.snapshot().circuit.as_str()
                    ),
                ));
            }
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                format!("Unknown tool: {name}"),
            ));
        };
        if let Some(slot) = body.pointer_mut("/params/name") {
            *slot = Value::from(routed.original.as_str());
        }
        self.forward(session, routed.backend, id_raw, body, side)
            .await
    }

    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe`: by URI.
    pub async fn call_resource(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        id_raw: &[u8],
        body: Value,
    ) -> Result<Bytes, RpcError> {
        let Some(uri) = body.pointer("/params/uri").and_then(Value::as_str) else {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                "params.uri is required",
            ));
        };
        let uri = uri.to_owned();
        let Some(b) = self.resource_owner_listed(session, &uri).await else {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                format!("Resource not found: no backend offers {uri}"),
            ));
        };
        let subscribes = body.get("method").and_then(Value::as_str) == Some("resources/subscribe");
        let answer = self.forward(session, b, id_raw, body, None).await?;
        if subscribes {
            self.relay_updates(session, b).await;
        }
        Ok(answer)
    }

    /// Makes sure what backend `b` sends this client's session outside answers reaches the
    /// client: its `notifications/resources/updated` go to the client's GET stream. One relay
    /// per client session and backend session (a reopened backend session gets a new one);
    /// it ends with either session.
    async fn relay_updates(&self, session: &Arc<ClientSession>, b: usize) {
        let Some(bs) = session.backends[b].lock().await.clone() else {
            return;
        };
        let mut relays = lock(&session.relays);
        if relays
            .get(&b)
            .is_some_and(|r| Arc::ptr_eq(&r.backend, &bs) && !r.task.is_finished())
        {
            return;
        }
        let (link, client, backend) = (self.links[b].clone(), Arc::downgrade(session), bs.clone());
        let task = tokio::spawn(async move {
            let Ok(Some(mut body)) = link.open_stream(&backend).await else {
                tracing::info!(backend = %link.name(), "the backend offers no GET stream for this session: its resource updates are not heard");
                return;
            };
            let mut events = crate::bridge::remote::SseReader::default();
            while let Ok(Some(event)) = events
                .next(&mut body, super::backend::MAX_MESSAGE_BYTES)
                .await
            {
                let Some(client) = client.upgrade() else {
                    return;
                };
                if is_resource_update(&event.data) {
                    client.push(Bytes::from(event.data));
                }
            }
        });
        if let Some(old) = relays.insert(b, Relay { backend: bs, task }) {
            old.task.abort();
        }
    }

    /// The backend serving `uri` (or the template `uri`), the template and resource lists read
    /// again when it is not known.
    async fn resource_owner_listed(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        uri: &str,
    ) -> Option<usize> {
        if let Some(b) = self.resource_owner(session, uri) {
            return Some(b);
        }
        let _ = self
            .owned(
                session,
                "resources/templates/list",
                "resourceTemplates",
                "uriTemplate",
            )
            .await;
        if let Some(b) = self.resource_owner(session, uri) {
            return Some(b);
        }
        let _ = self
            .owned(session, "resources/list", "resources", "uri")
            .await;
        self.resource_owner(session, uri)
    }

    fn resource_owner(&self, session: &ClientSession, uri: &str) -> Option<usize> {
        let owners = lock(&session.owners);
        owners.resources.get(uri).copied().or_else(|| {
            owners
                .templates
                .iter()
                .find(|(prefix, _)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
                .map(|(_, b)| *b)
        })
    }

    /// `prompts/get`: by name.
    pub async fn call_prompt(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        id_raw: &[u8],
        body: Value,
    ) -> Result<Bytes, RpcError> {
        let Some(name) = body.pointer("/params/name").and_then(Value::as_str) else {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                "params.name is required",
            ));
        };
        let b = self.prompt_owner(session, &name.to_owned()).await?;
        self.forward(session, b, id_raw, body, None).await
    }

    /// The backend serving prompt `name` (the prompt list read again when it is not known).
    async fn prompt_owner(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        name: &String,
    ) -> Result<usize, RpcError> {
        let mut owner = lock(&session.owners).prompts.get(name).copied();
        if owner.is_none() {
            self.owned(session, "prompts/list", "prompts", "name")
                .await?;
            owner = lock(&session.owners).prompts.get(name).copied();
        }
        owner.ok_or_else(|| RpcError::new(code::INVALID_PARAMS, format!("Unknown prompt: {name}")))
    }

    /// `completion/complete`: to the backend of the prompt (`ref/prompt`, by name) or of the
    /// resource template (`ref/resource`, by its URI template) the completion is for.
    pub async fn complete(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        id_raw: &[u8],
        body: Value,
    ) -> Result<Bytes, RpcError> {
        let target = |field: &str| {
            body.pointer(&format!("/params/ref/{field}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let b = match body.pointer("/params/ref/type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let Some(name) = target("name") else {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "params.ref.name is required",
                    ));
                };
                self.prompt_owner(session, &name).await?
            }
            Some("ref/resource") => {
                let Some(uri) = target("uri") else {
                    return Err(RpcError::new(
                        code::INVALID_PARAMS,
                        "params.ref.uri is required",
                    ));
                };
                self.resource_owner_listed(session, &uri)
                    .await
                    .ok_or_else(|| {
                        RpcError::new(
                            code::INVALID_PARAMS,
                            format!("Resource not found: no backend offers {uri}"),
                        )
                    })?
            }
            _ => {
                return Err(RpcError::new(
                    code::INVALID_PARAMS,
                    "params.ref.type must be ref/prompt or ref/resource",
                ))
            }
        };
        self.forward(session, b, id_raw, body, None).await
    }

    /// Sends a client request to backend `b` under the backend session's own id and answers
    /// with the client's id spliced back; cancellable by the client's id meanwhile.
    async fn forward(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        b: usize,
        id_raw: &[u8],
        body: Value,
        side: Option<SideChannel>,
    ) -> Result<Bytes, RpcError> {
        let key = id_raw.to_vec();
        let (session2, key2) = (session.clone(), key.clone());
        let out = self
            .with_backend(session, b, move |link, bs| {
                let (body, side, session, key) =
                    (body.clone(), side.clone(), session2.clone(), key2.clone());
                async move {
                    let id = bs.next_id();
                    lock(&session.in_flight).insert(key.clone(), (link.index, id.clone()));
                    let out = link
                        .request(&bs, with_id(body, &id), &id, side.as_ref())
                        .await;
                    lock(&session.in_flight).remove(&key);
                    out
                }
            })
            .await;
        match out {
            Ok(answer) => jsonrpc::splice_id(&answer, id_raw).ok_or_else(|| {
                RpcError::new(
                    code::INTERNAL_ERROR,
                    "the backend's answer is not a JSON object",
                )
            }),
            Err(e) => Err(RpcError::new(
                code::INTERNAL_ERROR,
                format!("backend {}: {e}", self.links[b].name()),
            )),
        }
    }

    /// `notifications/cancelled`: to the backend the request went to, with its id there.
    pub async fn cancel(self: &Arc<Self>, session: &Arc<ClientSession>, body: &Value) {
        let Some(request_id) = body.pointer("/params/requestId") else {
            return;
        };
        let key = request_id.to_string().into_bytes();
        let Some((b, backend_id)) = lock(&session.in_flight).get(&key).cloned() else {
            return;
        };
        let Some(bs) = session.backends[b].lock().await.clone() else {
            return;
        };
        let mut note = body.clone();
        if let Some(slot) = note.pointer_mut("/params/requestId") {
            *slot = Value::from(backend_id);
        }
        let link = self.links[b].clone();
        let _ = link
            .notify(
                &bs,
                Bytes::from(serde_json::to_vec(&note).unwrap_or_default()),
            )
            .await;
    }

    /// `logging/setLevel`: to every backend that answers in time.
    pub async fn set_level(
        self: &Arc<Self>,
        session: &Arc<ClientSession>,
        body: Value,
    ) -> Result<(), RpcError> {
        let level = body.pointer("/params/level").and_then(Value::as_str);
        if !level.is_some_and(|l| LOG_LEVELS.contains(&l)) {
            return Err(RpcError::new(
                code::INVALID_PARAMS,
                format!("params.level must be one of {}", LOG_LEVELS.join(", ")),
            ));
        }
        let _ = self
            .fan_out(session, move |link, bs| {
                let body = body.clone();
                async move {
                    let id = bs.next_id();
                    link.request(&bs, with_id(body, &id), &id, None).await
                }
            })
            .await;
        Ok(())
    }
}

/// The levels `logging/setLevel` knows (RFC 5424's, as MCP names them).
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Every page of one backend's list (`method`, items under `field`), bounded; a backend that
/// answers with a JSON-RPC error (it has no such feature) has none.
pub async fn list_all(
    link: &Link,
    bs: &BackendSession,
    method: &str,
    field: &str,
) -> Result<Vec<Value>, Failure> {
    let mut items = Vec::new();
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_BACKEND_PAGES {
        let id = bs.next_id();
        let mut body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}});
        if let Some(c) = cursor.take() {
            body["params"]["cursor"] = c;
        }
        let answer = link
            .request(bs, Bytes::from(body.to_string()), &id, None)
            .await?;
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|_| Failure::Protocol(format!("the {method} answer is not JSON")))?;
        let Some(result) = answer.get("result") else {
            return Ok(items);
        };
        if let Some(page) = result.get(field).and_then(Value::as_array) {
            items.extend(page.iter().cloned());
        }
        match result.get("nextCursor") {
            Some(c @ Value::String(s)) if !s.is_empty() => cursor = Some(c.clone()),
            _ => return Ok(items),
        }
    }
    tracing::warn!(backend = %link.name(), method, "a backend's list has over {MAX_BACKEND_PAGES} pages; the rest is left out");
    Ok(items)
}

fn parse_cursor(c: &Value) -> Result<usize, RpcError> {
    c.as_str()
        .and_then(|s| s.strip_prefix("vmcp:"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| RpcError::new(code::INVALID_PARAMS, "invalid cursor"))
}
