//! The HTTP fronts over the hub, served at once on one listener:
//! - streamable HTTP at `/mcp` (POST answered with JSON or SSE, GET stream, DELETE);
//! - legacy HTTP+SSE at `/sse` with `POST /messages?session_id=`;
//! - `/health`, `/ready` and `/metrics`.
//!
//! Every error a client can cause has one HTTP status and a JSON-RPC error body (see
//! `docs/bridge.md` for the table); none of them stops the bridge.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::Value;

use super::audit::Slot;
use super::config::{normalize_prefix, Config};
use super::filter::{Screened, TOOL_NOT_FOUND};
use super::guard::{self, Guard, Verdict, Who};
use super::hub::{
    stream_channel, CallError, Hub, Opener, Session, SessionKind, SessionRefused, StreamRx,
    KNOWN_VERSIONS,
};
use super::jsonrpc::{self, code, ClientMessage};
use super::origin::Access;
use super::serve::{BodyBudget, ClientAddr};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// The stateless revision this front does not speak yet; such requests get a legacy error so
/// that dual-era clients fall back to `initialize`.
const MODERN_VERSION: &str = "2026-07-28";

/// What every handler shares.
#[derive(Clone)]
pub struct FrontState {
    pub hub: Arc<Hub>,
    pub cfg: Arc<Config>,
    pub access: Arc<Access>,
    pub bodies: Arc<BodyBudget>,
    /// Tokens, policies and audit, when configured.
    pub guard: Option<Arc<Guard>>,
}

/// The caller and the audit slot the guard put on a request (absent without a guard).
type Caller = Option<axum::Extension<Arc<Who>>>;
type AuditSlot = Option<axum::Extension<Slot>>;

/// The router of the stdio-backed fronts; also served under `endpointPrefix` when one is set,
/// for ingresses that do not strip it.
pub fn router(state: FrontState) -> Router {
    let routes = Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .route("/sse", get(get_sse))
        .route("/messages", post(post_messages))
        .route("/messages/", post(post_messages))
        .route("/message", post(post_messages));
    let routes = match &state.guard {
        Some(g) => routes.route_layer(axum::middleware::from_fn_with_state(
            g.clone(),
            guard::enforce,
        )),
        None => routes,
    };
    let prefix = state.cfg.endpoint_prefix.clone();
    let mut app = ops_router().merge(routes.clone());
    if let Some(g) = &state.guard {
        app = app.merge(guard::metadata_routes(g));
    }
    if !prefix.is_empty() {
        app = app.nest(&prefix, routes);
    }
    app.with_state(state)
}

fn ops_router() -> Router<FrontState> {
    Router::new()
        .route(
            "/health",
            get(|| async { json_body(StatusCode::OK, r#"{"status":"ok"}"#) }),
        )
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn ready(State(st): State<FrontState>) -> Response {
    if st.hub.is_ready() {
        json_body(StatusCode::OK, r#"{"status":"ready"}"#)
    } else {
        json_body(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
    }
}

async fn metrics(State(st): State<FrontState>) -> Response {
    if !st.cfg.metrics {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut resp = st.hub.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP
// ---------------------------------------------------------------------------------------------

async fn post_mcp(
    State(st): State<FrontState>,
    client: Option<axum::Extension<ClientAddr>>,
    who: Caller,
    slot: AuditSlot,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let accept = Accept::of(&headers);
    let msg = match admit_post(&st, &headers, &uri, body, accept).await {
        Ok(msg) => msg,
        Err(reject) => return reject.into_response(),
    };
    let verdict = screen(&st, &who, &slot, &msg);
    let (id, method, mut body) = match msg {
        ClientMessage::Request { id, method, body } => (id, method, body),
        ClientMessage::Notification { .. } if verdict == Verdict::Denied => {
            return guard::denied(None)
        }
        ClientMessage::Notification { method, body } => {
            let Some(session) = streamable_session(&st, &headers, &who) else {
                return session_error(&headers);
            };
            st.hub.notify(&session, &method, body).await;
            return StatusCode::ACCEPTED.into_response();
        }
        // The bridge refuses server-to-client requests itself, so a client's answer has no
        // one to go to.
        ClientMessage::Response => return StatusCode::ACCEPTED.into_response(),
    };
    let started = Instant::now();
    let id_raw = Bytes::from(id.to_string());
    if verdict == Verdict::Denied {
        st.hub.metrics.observe(&method, "denied", 0.0);
        return guard::denied(Some(&id_raw));
    }
    if method == "initialize" {
        let opener = Opener {
            client: client_address(&st.cfg, &headers, client),
            owner: session_owner(who.as_deref().map(|w| w.as_ref())),
        };
        return initialize(&st, &id_raw, accept, opener).await;
    }
    let Some(session) = streamable_session(&st, &headers, &who) else {
        return session_error(&headers);
    };
    // Session and method only: arguments and results may hold secrets.
    tracing::debug!(session = %session.id, method, "request");
    if method == "tools/call" && refused_call(&st, &mut body) {
        st.hub.metrics.observe(&method, "denied", 0.0);
        let reply = jsonrpc::error_response(Some(&id_raw), code::INVALID_PARAMS, TOOL_NOT_FOUND);
        return single_message(StatusCode::OK, reply, accept);
    }
    let wants_progress = body.pointer("/params/_meta/progressToken").is_some();
    let who = who.map(|w| w.0);
    if accept.sse && (!accept.json || wants_progress) {
        return streamed_call(st, session, method, body, id_raw, (verdict, who)).await;
    }
    match st.hub.call(&session, &method, body, None).await {
        Ok(call) => match call.reply(st.cfg.request_timeout).await {
            Ok(reply) => {
                observe(&st, &method, &reply, started);
                json_message(
                    StatusCode::OK,
                    filtered(&st, verdict, who.as_deref(), reply),
                )
            }
            Err(e) => call_failed(&st, &method, &id_raw, e, started),
        },
        Err(e) => call_failed(&st, &method, &id_raw, e, started),
    }
}

/// A request answered as an SSE stream: its progress notifications, then its response.
async fn streamed_call(
    st: FrontState,
    session: Arc<Session>,
    method: String,
    body: Value,
    id_raw: Bytes,
    (verdict, who): (Verdict, Option<Arc<Who>>),
) -> Response {
    let started = Instant::now();
    let queue_bytes = st.cfg.max_stream_queue_bytes;
    let (progress_tx, mut progress_rx) = stream_channel(queue_bytes, st.hub.metrics.clone());
    let call = match st
        .hub
        .call(&session, &method, body, Some(progress_tx))
        .await
    {
        Ok(call) => call,
        Err(e) => return call_failed(&st, &method, &id_raw, e, started),
    };
    let (tx, rx) = stream_channel(queue_bytes, st.hub.metrics.clone());
    let keep_alive = st.cfg.keep_alive;
    let timeout = st.cfg.request_timeout;
    tokio::spawn(async move {
        let reply = call.reply(st.cfg.request_timeout);
        tokio::pin!(reply);
        loop {
            tokio::select! {
                biased;
                result = &mut reply => {
                    let msg = match result {
                        Ok(msg) => {
                            observe(&st, &method, &msg, started);
                            filtered(&st, verdict, who.as_deref(), msg)
                        }
                        Err(e) => {
                            st.hub.metrics.observe(&method, outcome_of(e), started.elapsed().as_secs_f64());
                            jsonrpc::error_response(Some(&id_raw), code::INTERNAL_ERROR, &e.to_string())
                        }
                    };
                    // The hub queued every progress notification before routing the reply.
                    while let Some(progress) = progress_rx.try_recv() {
                        if tx.is_closed() {
                            return;
                        }
                        tx.send(progress, timeout).await;
                    }
                    tx.send(msg, timeout).await;
                    return;
                }
                Some(progress) = progress_rx.recv() => {
                    if tx.is_closed() {
                        return;
                    }
                    tx.send(progress, timeout).await;
                }
                // The client went away: dropping the call withdraws it from the server.
                _ = tx.closed() => return,
            }
        }
    });
    sse_response(None, rx, keep_alive, None)
}

async fn initialize(st: &FrontState, id_raw: &[u8], accept: Accept, opener: Opener) -> Response {
    let started = Instant::now();
    if !st.hub.wait_ready(st.cfg.request_timeout).await {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(id_raw),
            code::INTERNAL_ERROR,
            "the MCP server is not initialized",
        );
    }
    let session = match open_session(st, SessionKind::StreamableHttp, opener) {
        Ok(session) => session,
        Err(refused) => return refused_session(refused, Some(id_raw)),
    };
    let Some(reply) = st.hub.initialize_reply(id_raw) else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(id_raw),
            code::INTERNAL_ERROR,
            "the MCP server is not initialized",
        );
    };
    st.hub
        .metrics
        .observe("initialize", "ok", started.elapsed().as_secs_f64());
    tracing::debug!(session = %session.id, "session opened");
    let mut resp = single_message(StatusCode::OK, reply, accept);
    if let Ok(value) = HeaderValue::from_str(&session.id) {
        resp.headers_mut().insert(SESSION_HEADER, value);
    }
    resp
}

/// The address a session is counted against for `maxSessionsPerClient`: the TCP peer, or behind
/// a trusted proxy (`trustProxyHeaders`) the address it appended to `X-Forwarded-For`, so that
/// the clients of one Ingress are not counted as one.
pub fn client_address(
    cfg: &Config,
    headers: &HeaderMap,
    peer: Option<axum::Extension<ClientAddr>>,
) -> Option<std::net::IpAddr> {
    if cfg.trust_proxy_headers {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|p| p.0 .0)
}

/// Opens a session within `maxSessions` and `maxSessionsPerClient`.
fn open_session(
    st: &FrontState,
    kind: SessionKind,
    opener: Opener,
) -> Result<Arc<Session>, SessionRefused> {
    st.hub.open_session(
        kind,
        opener,
        st.cfg.max_sessions,
        st.cfg.max_sessions_per_client,
    )
}

/// 503 for a session the limits do not allow.
fn refused_session(refused: SessionRefused, id: Option<&[u8]>) -> Response {
    let message = match refused {
        SessionRefused::Full => "too many sessions",
        SessionRefused::PerClient => "too many sessions from this client address",
    };
    tracing::info!(message, "session refused");
    rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        code::TRANSPORT,
        message,
    )
}

/// The standalone GET stream of a session: list-changed and subscribed-resource notifications.
async fn get_mcp(
    State(st): State<FrontState>,
    who: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(reject) = check_access(&st, &headers, &uri) {
        return reject.into_response();
    }
    if !Accept::of(&headers).sse {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            code::TRANSPORT,
            "the GET stream needs Accept: text/event-stream",
        );
    }
    let Some(session) = streamable_session(&st, &headers, &who) else {
        return session_error(&headers);
    };
    let rx = session.attach_stream(&st.hub);
    sse_response(None, rx, st.cfg.keep_alive, None)
}

async fn delete_mcp(
    State(st): State<FrontState>,
    who: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(reject) = check_access(&st, &headers, &uri) {
        return reject.into_response();
    }
    let Some(session) = streamable_session(&st, &headers, &who) else {
        return session_error(&headers);
    };
    st.hub.close_session(&session.id);
    tracing::debug!(session = %session.id, "session closed by the client");
    StatusCode::NO_CONTENT.into_response()
}

fn streamable_session(st: &FrontState, headers: &HeaderMap, who: &Caller) -> Option<Arc<Session>> {
    let id = headers.get(SESSION_HEADER)?.to_str().ok()?;
    let owner = session_owner(who.as_deref().map(|w| w.as_ref()));
    st.hub
        .session(id, SessionKind::StreamableHttp, owner.as_deref())
}

/// Whom a session opened by this caller belongs to: the issuer and subject of its token (none
/// without a token check). Another caller who learned the session's id is told it does not
/// exist, so a leaked id is not a stolen session.
pub fn session_owner(who: Option<&Who>) -> Option<String> {
    let identity = who?.identity.as_ref()?;
    let subject = identity.subject.as_deref()?;
    let issuer = identity
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(format!("{issuer}\n{subject}"))
}

/// 400 when the session header is missing, 404 when it names no live session (the client must
/// then initialize again).
fn session_error(headers: &HeaderMap) -> Response {
    if headers.contains_key(SESSION_HEADER) {
        rpc_error(
            StatusCode::NOT_FOUND,
            None,
            code::SESSION_NOT_FOUND,
            "Session not found",
        )
    } else {
        rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            code::TRANSPORT,
            "Bad Request: Mcp-Session-Id header is required",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Legacy HTTP+SSE
// ---------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct SessionQuery {
    session_id: Option<String>,
    #[serde(rename = "sessionId")]
    session_id_camel: Option<String>,
}

/// Closes a legacy SSE session when its stream goes away.
struct SessionGuard {
    hub: Arc<Hub>,
    id: Arc<str>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.hub.close_session(&self.id);
        tracing::debug!(session = %self.id, "SSE stream closed");
    }
}

async fn get_sse(
    State(st): State<FrontState>,
    client: Option<axum::Extension<ClientAddr>>,
    who: Caller,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(reject) = check_access(&st, &headers, &uri) {
        return reject.into_response();
    }
    let opener = Opener {
        client: client_address(&st.cfg, &headers, client),
        owner: session_owner(who.as_deref().map(|w| w.as_ref())),
    };
    let session = match open_session(&st, SessionKind::LegacySse, opener) {
        Ok(session) => session,
        Err(refused) => return refused_session(refused, None),
    };
    let rx = session.attach_stream(&st.hub);
    let prefix = forwarded_prefix(&st, &headers);
    let endpoint = format!(
        "event: endpoint\ndata: {prefix}/messages?session_id={}\n\n",
        session.id
    );
    let guard = SessionGuard {
        hub: st.hub.clone(),
        id: session.id.clone(),
    };
    sse_response(
        Some(Bytes::from(endpoint)),
        rx,
        st.cfg.keep_alive,
        Some(guard),
    )
}

fn forwarded_prefix(st: &FrontState, headers: &HeaderMap) -> String {
    if st.cfg.trust_proxy_headers {
        if let Some(p) = headers
            .get("x-forwarded-prefix")
            .and_then(|v| v.to_str().ok())
        {
            // Only a plain path may go into the endpoint URL.
            if p.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
            {
                return normalize_prefix(p);
            }
        }
    }
    st.cfg.endpoint_prefix.clone()
}

async fn post_messages(
    State(st): State<FrontState>,
    who: Caller,
    slot: AuditSlot,
    Query(query): Query<SessionQuery>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(id) = query.session_id.or(query.session_id_camel) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            code::TRANSPORT,
            "Bad Request: session_id is required",
        );
    };
    let owner = session_owner(who.as_deref().map(|w| w.as_ref()));
    let Some(session) = st
        .hub
        .session(&id, SessionKind::LegacySse, owner.as_deref())
    else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            None,
            code::SESSION_NOT_FOUND,
            "Session not found",
        );
    };
    let accept = Accept {
        json: true,
        sse: true,
    };
    let msg = match admit_post(&st, &headers, &uri, body, accept).await {
        Ok(msg) => msg,
        Err(reject) => return reject.into_response(),
    };
    let verdict = screen(&st, &who, &slot, &msg);
    let (id, method, mut body) = match msg {
        ClientMessage::Request { id, method, body } => (id, method, body),
        // Upstream answers a denial on the POST itself (403), on legacy SSE too.
        ClientMessage::Notification { .. } if verdict == Verdict::Denied => {
            return guard::denied(None)
        }
        ClientMessage::Notification { method, body } => {
            st.hub.notify(&session, &method, body).await;
            return StatusCode::ACCEPTED.into_response();
        }
        ClientMessage::Response => return StatusCode::ACCEPTED.into_response(),
    };
    let Some(stream) = session.stream_sender() else {
        return rpc_error(
            StatusCode::NOT_FOUND,
            None,
            code::SESSION_NOT_FOUND,
            "Session not found",
        );
    };
    let id_raw = Bytes::from(id.to_string());
    if verdict == Verdict::Denied {
        st.hub.metrics.observe(&method, "denied", 0.0);
        return guard::denied(Some(&id_raw));
    }
    let who = who.map(|w| w.0);
    let started = Instant::now();
    let timeout = st.cfg.request_timeout;
    tracing::debug!(session = %session.id, method, "request");
    // Every answer goes on this session's own stream, and only there.
    if method == "initialize" {
        let reply = st.hub.initialize_reply(&id_raw).unwrap_or_else(|| {
            jsonrpc::error_response(
                Some(&id_raw),
                code::INTERNAL_ERROR,
                "the MCP server is not initialized",
            )
        });
        stream.send(reply, timeout).await;
        return StatusCode::ACCEPTED.into_response();
    }
    if method == "tools/call" && refused_call(&st, &mut body) {
        st.hub.metrics.observe(&method, "denied", 0.0);
        let reply = jsonrpc::error_response(Some(&id_raw), code::INVALID_PARAMS, TOOL_NOT_FOUND);
        stream.send(reply, timeout).await;
        return StatusCode::ACCEPTED.into_response();
    }
    let call = st
        .hub
        .call(&session, &method, body, Some(stream.clone()))
        .await;
    tokio::spawn(async move {
        let reply = match call {
            Ok(call) => call.reply(timeout).await,
            Err(e) => Err(e),
        };
        let msg = match reply {
            Ok(msg) => {
                observe(&st, &method, &msg, started);
                filtered(&st, verdict, who.as_deref(), msg)
            }
            Err(e) => {
                st.hub
                    .metrics
                    .observe(&method, outcome_of(e), started.elapsed().as_secs_f64());
                jsonrpc::error_response(Some(&id_raw), code::INTERNAL_ERROR, &e.to_string())
            }
        };
        stream.send(msg, timeout).await;
    });
    StatusCode::ACCEPTED.into_response()
}

// ---------------------------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------------------------

/// What the client accepts. No `Accept` header at all counts as accepting JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accept {
    pub json: bool,
    pub sse: bool,
}

impl Accept {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut values = headers.get_all(header::ACCEPT).iter().peekable();
        if values.peek().is_none() {
            return Accept {
                json: true,
                sse: false,
            };
        }
        let mut accept = Accept {
            json: false,
            sse: false,
        };
        for value in values.filter_map(|v| v.to_str().ok()) {
            for item in value.split(',') {
                let media = item.split(';').next().unwrap_or("").trim();
                match media.to_ascii_lowercase().as_str() {
                    "application/json" | "application/*" => accept.json = true,
                    "text/event-stream" => accept.sse = true,
                    "*/*" => accept.json = true,
                    _ => {}
                }
            }
        }
        accept
    }
}

/// The checks every POST goes through, in order: Origin (403), Accept (406), Content-Type
/// (415), body size (413), JSON-RPC shape (400), protocol revision (400).
async fn admit_post(
    st: &FrontState,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    accept: Accept,
) -> Result<ClientMessage, Reject> {
    check_access(st, headers, uri)?;
    admit_message(headers, body, accept, st.cfg.max_body_bytes, &st.bodies).await
}

/// The checks of a POST after Origin (shared with the `vmcp` front): Accept (406),
/// Content-Type (415), body size (413), JSON-RPC shape (400), protocol revision (400).
pub(crate) async fn admit_message(
    headers: &HeaderMap,
    body: Body,
    accept: Accept,
    max_body_bytes: usize,
    bodies: &BodyBudget,
) -> Result<ClientMessage, Reject> {
    if !accept.json && !accept.sse {
        return Err(Reject::new(
            StatusCode::NOT_ACCEPTABLE,
            code::TRANSPORT,
            "Not Acceptable: the client must accept application/json or text/event-stream",
        ));
    }
    // A missing Content-Type is refused too: the body must say it is JSON.
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|ct| ct.to_str().ok())
        .map(|ct| ct.split(';').next().unwrap_or("").trim());
    if !media.is_some_and(|m| m.eq_ignore_ascii_case("application/json")) {
        return Err(Reject::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::TRANSPORT,
            "Unsupported Media Type: the body must be application/json",
        ));
    }
    let bytes = read_body(body, max_body_bytes, headers, bodies).await?;
    let msg = jsonrpc::parse_client(&bytes).map_err(|e| Reject {
        id: e.id().map(Bytes::copy_from_slice),
        ..Reject::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    })?;
    check_revision(headers, &msg)?;
    Ok(msg)
}

/// How long a client may take to send its body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a body of at most `limit` bytes. A larger one is still read to its end (up to twice the
/// limit) before the 413 goes out: a server that answers and closes while the client is still
/// sending makes the client's TCP stack drop the answer, and the client sees a reset instead.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    headers: &HeaderMap,
    budget: &BodyBudget,
) -> Result<Bytes, Reject> {
    use futures::StreamExt;
    let too_large = || {
        Reject::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::INVALID_REQUEST,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let unreadable = || {
        Reject::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "the body could not be read",
        )
    };
    let drain_cap = limit.saturating_mul(2);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > drain_cap as u64) {
        return Err(too_large());
    }
    let busy = || {
        budget.refused();
        Reject::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::TRANSPORT,
            "Service Unavailable: too many request bodies in flight, retry later",
        )
    };
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = bytes::BytesMut::new();
        let mut lease = budget.lease();
        let mut seen = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| unreadable())?;
            seen = seen.saturating_add(chunk.len());
            if seen > drain_cap {
                break;
            }
            if seen <= limit {
                // Only the bytes kept count: the rest of an oversize body is read and dropped.
                if !lease.grow(chunk.len()) {
                    return Err(busy());
                }
                buf.extend_from_slice(&chunk);
            }
        }
        if seen > limit {
            Err(too_large())
        } else {
            Ok(buf.freeze())
        }
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(Reject::new(
                StatusCode::REQUEST_TIMEOUT,
                code::INVALID_REQUEST,
                "the body did not arrive in time",
            ))
        })
}

/// The stateless 2026-07-28 revision gets a plain legacy error so that dual-era clients fall back
/// to `initialize`; an unknown `MCP-Protocol-Version` gets 400.
fn check_revision(headers: &HeaderMap, msg: &ClientMessage) -> Result<(), Reject> {
    let header = headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    let body = match msg {
        ClientMessage::Request { body, .. } | ClientMessage::Notification { body, .. } => {
            Some(body)
        }
        ClientMessage::Response => None,
    };
    let modern_meta = body
        .and_then(|b| b.pointer("/params/_meta"))
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("io.modelcontextprotocol/protocolVersion"));
    let discover =
        matches!(msg, ClientMessage::Request { method, .. } if method == "server/discover");
    if header == Some(MODERN_VERSION) || modern_meta || discover {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "this endpoint speaks MCP revisions up to 2025-11-25: initialize first",
        ));
    }
    if let Some(v) = header {
        if !KNOWN_VERSIONS.contains(&v) {
            return Err(Reject::new(
                StatusCode::BAD_REQUEST,
                code::TRANSPORT,
                format!("Bad Request: unsupported MCP-Protocol-Version {v:?}"),
            ));
        }
    }
    Ok(())
}

/// The Origin and Host checks against DNS rebinding (see [`super::origin`]): 403.
fn check_access(st: &FrontState, headers: &HeaderMap, uri: &Uri) -> Result<(), Reject> {
    st.access
        .check(headers, uri)
        .map_err(|refusal| Reject::new(StatusCode::FORBIDDEN, code::TRANSPORT, refusal.message()))
}

/// What the guard's policy says about a message (allowed when no guard is configured).
fn screen(st: &FrontState, who: &Caller, slot: &AuditSlot, msg: &ClientMessage) -> Verdict {
    let (method, body) = match msg {
        ClientMessage::Request { method, body, .. }
        | ClientMessage::Notification { method, body } => (method, body),
        ClientMessage::Response => return Verdict::Allowed,
    };
    guard::screen(
        st.guard.as_deref(),
        who.as_deref().map(|w| w.as_ref()),
        slot.as_deref(),
        method,
        body,
    )
}

/// A list answer cut down to what the caller may use (other answers unchanged).
fn filtered(st: &FrontState, verdict: Verdict, who: Option<&Who>, reply: Bytes) -> Bytes {
    match (verdict, &st.guard) {
        (Verdict::FilterList(feature), Some(g)) => g.filter_reply(who, feature, reply),
        _ => reply,
    }
}

/// Screens a `tools/call` through the tool policy: true when it must be refused; a call of a
/// renamed tool gets the backend's name in `body`.
fn refused_call(st: &FrontState, body: &mut Value) -> bool {
    st.hub
        .tool_policy()
        .is_some_and(|tools| tools.screen_call(body) == Screened::Refused)
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A request refused before it reached the hub: an HTTP status and a JSON-RPC error without id.
#[derive(Debug)]
pub struct Reject {
    status: StatusCode,
    /// The request's raw id, when the refusal came after it was read.
    id: Option<Bytes>,
    code: i64,
    message: String,
}

impl Reject {
    pub(crate) fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            id: None,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        tracing::debug!(status = %self.status, code = self.code, "request refused");
        rpc_error(self.status, self.id.as_deref(), self.code, &self.message)
    }
}

fn observe(st: &FrontState, method: &str, reply: &[u8], started: Instant) {
    let outcome = if jsonrpc::top_level_value_span(reply, b"error").is_some() {
        "error"
    } else {
        "ok"
    };
    st.hub
        .metrics
        .observe(method, outcome, started.elapsed().as_secs_f64());
}

fn outcome_of(e: CallError) -> &'static str {
    match e {
        CallError::Timeout => "timeout",
        CallError::ServerGone => "server_gone",
    }
}

/// A request the server did not answer: 504 after the timeout, 503 when the server is gone.
fn call_failed(
    st: &FrontState,
    method: &str,
    id: &[u8],
    e: CallError,
    started: Instant,
) -> Response {
    st.hub
        .metrics
        .observe(method, outcome_of(e), started.elapsed().as_secs_f64());
    tracing::info!(method, error = %e, "request failed");
    let status = match e {
        CallError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        CallError::ServerGone => StatusCode::SERVICE_UNAVAILABLE,
    };
    rpc_error(status, Some(id), code::INTERNAL_ERROR, &e.to_string())
}

pub(crate) fn rpc_error(
    status: StatusCode,
    id: Option<&[u8]>,
    code: i64,
    message: &str,
) -> Response {
    json_message(status, jsonrpc::error_response(id, code, message))
}

pub(crate) fn json_message(status: StatusCode, body: Bytes) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn json_body(status: StatusCode, body: &'static str) -> Response {
    json_message(status, Bytes::from_static(body.as_bytes()))
}

/// One message as JSON, or as a one-event SSE stream for a client that accepts only SSE.
pub(crate) fn single_message(status: StatusCode, msg: Bytes, accept: Accept) -> Response {
    if accept.json {
        return json_message(status, msg);
    }
    let mut resp = (status, sse_event(&msg)).into_response();
    set_sse_headers(resp.headers_mut());
    resp
}

/// Encodes one JSON-RPC message as an SSE `message` event. A message must be one line; a
/// server's message with raw CR/LF whitespace is re-encoded compactly first.
pub fn sse_event(msg: &[u8]) -> Bytes {
    let compact;
    let data = if msg.iter().any(|b| *b == b'\r' || *b == b'\n') {
        compact = serde_json::from_slice::<Value>(msg)
            .ok()
            .and_then(|v| serde_json::to_vec(&v).ok())
            .unwrap_or_default();
        &compact[..]
    } else {
        msg
    };
    let mut out = Vec::with_capacity(data.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

pub(crate) fn set_sse_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tell buffering reverse proxies (nginx) to pass events through at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// An SSE response: an optional first (already encoded) event, then each message from `rx`,
/// with a keep-alive comment whenever the stream has been quiet for `keep_alive`. `guard` lives
/// as long as the stream.
fn sse_response(
    first: Option<Bytes>,
    rx: StreamRx,
    keep_alive: Duration,
    guard: Option<SessionGuard>,
) -> Response {
    sse_stream(first, rx, keep_alive, guard)
}

/// [`sse_response`] with anything as the guard that lives as long as the stream (shared with
/// the `vmcp` front, whose sessions are its own).
pub(crate) fn sse_stream<G: Send + 'static>(
    first: Option<Bytes>,
    rx: StreamRx,
    keep_alive: Duration,
    guard: Option<G>,
) -> Response {
    struct StreamState<G> {
        first: Option<Bytes>,
        rx: StreamRx,
        keep_alive: Duration,
        _guard: Option<G>,
    }
    let state = StreamState {
        first,
        rx,
        keep_alive,
        _guard: guard,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        if let Some(first) = s.first.take() {
            return Some((Ok::<_, Infallible>(first), s));
        }
        match tokio::time::timeout(s.keep_alive, s.rx.recv()).await {
            Ok(Some(msg)) => Some((Ok(sse_event(&msg)), s)),
            Ok(None) => None,
            Err(_) => Some((Ok(Bytes::from_static(b": ping\n\n")), s)),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    set_sse_headers(resp.headers_mut());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_single_line() {
        let e = sse_event(b"{\"a\":\r\n1}");
        assert_eq!(&e[..], b"event: message\ndata: {\"a\":1}\n\n");
    }
}
