//! The HTTP side of `vmcp`: streamable HTTP at `/mcp` (POST answered with JSON, or SSE when
//! the client asks for progress; the GET stream; DELETE), `/health`, `/status`, `/metrics`.
//! Requests pass the bridge's checks (Origin and Host, Accept, Content-Type, body size and
//! budget, JSON-RPC shape, protocol revision) and, when configured, its token check.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::Value;

use super::aggregator::{Aggregator, ClientSession, RpcError};
use crate::bridge::audit::Slot;
use crate::bridge::config::Config;
use crate::bridge::front::{
    admit_message, client_address, json_message, rpc_error, single_message, sse_stream, Accept,
    Reject,
};
use crate::bridge::guard::{self, Guard, Verdict, Who};
use crate::bridge::hub::stream_channel;
use crate::bridge::jsonrpc::{self, code, ClientMessage};
use crate::bridge::origin::Access;
use crate::bridge::serve::{BodyBudget, ClientAddr};

const SESSION_HEADER: &str = "mcp-session-id";

#[derive(Clone)]
pub struct FrontState {
    pub agg: Arc<Aggregator>,
    /// The HTTP bounds (the bridge's defaults).
    pub cfg: Arc<Config>,
    pub access: Arc<Access>,
    pub bodies: Arc<BodyBudget>,
    /// Token check, Cedar policies and audit trail (the bridge's): the policies decide on the
    /// names clients see, after aggregation.
    pub guard: Option<Arc<Guard>>,
}

/// The caller the guard's middleware found, and the audit record it keeps for this request.
type Caller = Option<axum::Extension<Arc<Who>>>;
type AuditSlot = Option<axum::Extension<Slot>>;

pub fn router(state: FrontState, guard: Option<Arc<Guard>>) -> Router {
    let mut routes = Router::new().route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp));
    if let Some(g) = &guard {
        routes = routes.route_layer(axum::middleware::from_fn_with_state(
            g.clone(),
            guard::enforce,
        ));
    }
    let mut app = Router::new()
        .route(
            "/health",
            get(|| async {
                json_message(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
            }),
        )
        .route(super::config::STATUS_PATH, get(status))
        .route("/metrics", get(metrics))
        .merge(routes);
    if let Some(g) = &guard {
        app = app.merge(guard::metadata_routes(g));
    }
    app.with_state(state)
}

async fn status(State(st): State<FrontState>) -> Response {
    let report = super::health::report(&st.agg);
    let body = serde_json::to_vec(&report).unwrap_or_default();
    json_message(StatusCode::OK, Bytes::from(body))
}

async fn metrics(State(st): State<FrontState>) -> Response {
    let mut resp = st.agg.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

fn check_access(st: &FrontState, headers: &HeaderMap, uri: &Uri) -> Result<(), Reject> {
    st.access
        .check(headers, uri)
        .map_err(|r| Reject::new(StatusCode::FORBIDDEN, code::TRANSPORT, r.message()))
}

/// The session the request names, when it is the caller's: a session opened with a token
/// belongs to that token's issuer and subject, and another caller who learned its id is told
/// it does not exist.
fn session_of(st: &FrontState, headers: &HeaderMap, who: &Caller) -> Option<Arc<ClientSession>> {
    let id = headers.get(SESSION_HEADER)?.to_str().ok()?;
    st.agg.session(id, owner_of(who).as_deref())
}

fn owner_of(who: &Caller) -> Option<String> {
    crate::bridge::front::session_owner(who.as_deref().map(|w| w.as_ref()))
}

/// 400 without the session header, 404 for a session that is not (or no longer) there.
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

async fn post_mcp(
    State(st): State<FrontState>,
    uri: Uri,
    headers: HeaderMap,
    who: Caller,
    slot: AuditSlot,
    peer: Option<axum::Extension<ClientAddr>>,
    body: Body,
) -> Response {
    let accept = Accept::of(&headers);
    if let Err(r) = check_access(&st, &headers, &uri) {
        return r.into_response();
    }
    let msg = match admit_message(&headers, body, accept, st.cfg.max_body_bytes, &st.bodies).await {
        Ok(msg) => msg,
        Err(r) => return r.into_response(),
    };
    let (id, method, body) = match msg {
        ClientMessage::Request { id, method, body } => (id, method, body),
        ClientMessage::Notification { method, body } => {
            let Some(session) = session_of(&st, &headers, &who) else {
                return session_error(&headers);
            };
            if screen(&st, &who, &slot, &method, &body) == Verdict::Denied {
                return StatusCode::ACCEPTED.into_response();
            }
            if method == "notifications/cancelled" {
                st.agg.cancel(&session, &body).await;
            }
            return StatusCode::ACCEPTED.into_response();
        }
        // Backends' requests are refused by the runtime itself: no answer has anyone to go to.
        ClientMessage::Response => return StatusCode::ACCEPTED.into_response(),
    };
    let id_raw = Bytes::from(id.to_string());
    let verdict = screen(&st, &who, &slot, &method, &body);
    if verdict == Verdict::Denied {
        return guard::denied(Some(&id_raw));
    }
    let started = Instant::now();
    let params = body.get("params").cloned().unwrap_or(Value::Null);
    if method == "initialize" {
        let client = client_address(&st.cfg, &headers, peer);
        return match st.agg.initialize(&params, client, owner_of(&who)).await {
            Ok((session, result)) => {
                observe(&st, "initialize", true, started);
                let result = serde_json::to_vec(&result).unwrap_or_default();
                let mut resp = single_message(
                    StatusCode::OK,
                    jsonrpc::result_response(&id_raw, &result),
                    accept,
                );
                if let Ok(v) = HeaderValue::from_str(&session.id) {
                    resp.headers_mut().insert(SESSION_HEADER, v);
                }
                resp
            }
            Err(e) => {
                observe(&st, "initialize", false, started);
                let status = if e.code == code::TRANSPORT {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                single_message(
                    status,
                    jsonrpc::error_response(Some(&id_raw), e.code, &e.message),
                    accept,
                )
            }
        };
    }
    let Some(session) = session_of(&st, &headers, &who) else {
        return session_error(&headers);
    };
    tracing::debug!(session = %session.id, method, "request");
    let wants_progress = body.pointer("/params/_meta/progressToken").is_some();
    if method == "tools/call" && accept.sse && (!accept.json || wants_progress) {
        return streamed_call(st, session, id_raw, body);
    }
    let answer = dispatch(&st, &session, &method, &id_raw, body, &params, None).await;
    observe(&st, &method, answer.is_ok(), started);
    let answer = answer_bytes(&id_raw, answer);
    let answer = match (verdict, &st.guard) {
        (Verdict::FilterList(feature), Some(g)) => {
            g.filter_reply(who.as_deref().map(|w| w.as_ref()), feature, answer)
        }
        _ => answer,
    };
    single_message(StatusCode::OK, answer, accept)
}

/// What the guard's policies say about a message (allowed without a guard); the audit record
/// learns the method and target either way.
fn screen(st: &FrontState, who: &Caller, slot: &AuditSlot, method: &str, body: &Value) -> Verdict {
    guard::screen(
        st.guard.as_deref(),
        who.as_deref().map(|w| w.as_ref()),
        slot.as_deref(),
        method,
        body,
    )
}

fn answer_bytes(id_raw: &[u8], answer: Result<Bytes, RpcError>) -> Bytes {
    answer.unwrap_or_else(|e| jsonrpc::error_response(Some(id_raw), e.code, &e.message))
}

fn observe(st: &FrontState, method: &str, ok: bool, started: Instant) {
    st.agg.metrics.observe(
        method,
        if ok { "ok" } else { "error" },
        started.elapsed().as_secs_f64(),
    );
}

async fn dispatch(
    st: &FrontState,
    session: &Arc<ClientSession>,
    method: &str,
    id_raw: &[u8],
    body: Value,
    params: &Value,
    side: Option<super::backend::SideChannel>,
) -> Result<Bytes, RpcError> {
    let agg = &st.agg;
    let result = |v: Value| {
        Ok(jsonrpc::result_response(
            id_raw,
            &serde_json::to_vec(&v).unwrap_or_default(),
        ))
    };
    match method {
        "ping" => result(serde_json::json!({})),
        "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list" => {
            result(agg.list(session, method, params).await?)
        }
        "tools/call" => agg.call_tool(session, id_raw, body, side).await,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            agg.call_resource(session, id_raw, body).await
        }
        "prompts/get" => agg.call_prompt(session, id_raw, body).await,
        "completion/complete" => agg.complete(session, id_raw, body).await,
        "logging/setLevel" => {
            agg.set_level(session, body).await?;
            result(serde_json::json!({}))
        }
        _ => Err(RpcError {
            code: code::METHOD_NOT_FOUND,
            message: format!("Method not found: {method}"),
        }),
    }
}

/// A `tools/call` answered as an SSE stream: the backend's progress (and other) notifications
/// as they come, then the answer.
fn streamed_call(
    st: FrontState,
    session: Arc<ClientSession>,
    id_raw: Bytes,
    body: Value,
) -> Response {
    let queue = st.cfg.max_stream_queue_bytes;
    let (tx, rx) = stream_channel(queue, st.agg.metrics.clone());
    let (side_tx, mut side_rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let timeout = st.cfg.request_timeout;
    let keep_alive = st.cfg.keep_alive;
    tokio::spawn(async move {
        let started = Instant::now();
        let params = body.get("params").cloned().unwrap_or(Value::Null);
        let call = dispatch(
            &st,
            &session,
            "tools/call",
            &id_raw,
            body,
            &params,
            Some(side_tx),
        );
        tokio::pin!(call);
        loop {
            tokio::select! {
                biased;
                answer = &mut call => {
                    observe(&st, "tools/call", answer.is_ok(), started);
                    while let Ok(note) = side_rx.try_recv() {
                        tx.send(note, timeout).await;
                    }
                    tx.send(answer_bytes(&id_raw, answer), timeout).await;
                    return;
                }
                Some(note) = side_rx.recv() => {
                    tx.send(note, timeout).await;
                }
                // The client went away: dropping the call ends the backend request.
                _ = tx.closed() => return,
            }
        }
    });
    sse_stream::<()>(None, rx, keep_alive, None)
}

async fn get_mcp(
    State(st): State<FrontState>,
    uri: Uri,
    headers: HeaderMap,
    who: Caller,
) -> Response {
    if let Err(r) = check_access(&st, &headers, &uri) {
        return r.into_response();
    }
    if !Accept::of(&headers).sse {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            code::TRANSPORT,
            "the GET stream needs Accept: text/event-stream",
        );
    }
    let Some(session) = session_of(&st, &headers, &who) else {
        return session_error(&headers);
    };
    let (tx, rx) = stream_channel(st.cfg.max_stream_queue_bytes, st.agg.metrics.clone());
    session.attach(tx);
    sse_stream::<()>(None, rx, st.cfg.keep_alive, None)
}

async fn delete_mcp(
    State(st): State<FrontState>,
    uri: Uri,
    headers: HeaderMap,
    who: Caller,
) -> Response {
    if let Err(r) = check_access(&st, &headers, &uri) {
        return r.into_response();
    }
    let Some(session) = session_of(&st, &headers, &who) else {
        return session_error(&headers);
    };
    st.agg.close_session(&session.id);
    StatusCode::NO_CONTENT.into_response()
}
