//! The HTTP backends (`--transport sse|streamable-http`): a reverse proxy to a server that speaks
//! MCP over HTTP itself, on `127.0.0.1:<mcpPort>` in the same pod, or elsewhere (`remoteUrl`,
//! see [`super::remote`]: HTTPS, the address guard, added headers, readiness by `initialize`).
//!
//! Bodies stream through without buffering (SSE is forwarded event by event), MCP headers pass
//! both ways, and the legacy `endpoint` event is rewritten to the bridge's own `/messages` path.
//! The tool policy applies here too: POST bodies (small, and bounded) are read to refuse calls of
//! hidden tools and to give renamed tools their backend names, and `tools/list` results are
//! rewritten in JSON bodies and inside SSE streams.
//! The backend's statuses pass through as they are.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::audit::Slot;
use super::config::{Config, Transport};
use super::filter::{Screened, ToolPolicy, TOOL_NOT_FOUND};
use super::guard::{self, Guard, Verdict, Who};
use super::hub::lock;
use super::jsonrpc::{self, code};
use super::metrics::Metrics;
use super::origin::Access;
use super::outgoing::{self, CallerToken, TokenExchange};
use super::remote;
use super::serve::BodyBudget;
use super::{serve, stdio};

/// Where the backend lives.
#[derive(Debug, Clone)]
struct Target {
    /// `http://host:port` (or `https://…` for a remote)
    origin: String,
    authority: HeaderValue,
    host: String,
    /// The path of the MCP endpoint (`/mcp`) or of the SSE stream (`/sse`).
    path: String,
    /// A query the remote's URL carries (some remotes take a key there), sent on every request.
    query: Option<String>,
}

impl Target {
    /// `remote`: `https://` is allowed, and the URL's query is kept.
    fn parse(url: &str, remote: bool) -> anyhow::Result<Self> {
        let what = if remote { "remoteUrl" } else { "target" };
        let uri: Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid {what} {url:?}: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => "http",
            Some("https") if remote => "https",
            _ if remote => anyhow::bail!("invalid remoteUrl {url:?}: only http:// and https://"),
            _ => anyhow::bail!("invalid target {url:?}: only http:// is supported (same pod)"),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("invalid {what} {url:?}: no host"))?
            .clone();
        let path = match uri.path() {
            "" | "/" => String::new(),
            p => p.to_owned(),
        };
        Ok(Self {
            origin: format!("{scheme}://{authority}"),
            authority: HeaderValue::from_str(authority.as_str())?,
            host: authority.host().to_owned(),
            path,
            query: uri
                .query()
                .filter(|q| !q.is_empty() && remote)
                .map(str::to_owned),
        })
    }

    /// `path` with the remote's own query and the client's, in that order.
    fn path_and_query(&self, path: &str, client_query: Option<&str>) -> String {
        let queries: Vec<&str> = [self.query.as_deref(), client_query]
            .into_iter()
            .flatten()
            .filter(|q| !q.is_empty())
            .collect();
        if queries.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", queries.join("&"))
        }
    }
}

type UpstreamClient = remote::GuardedClient;

/// The client towards the backend: plain HTTP on loopback for the in-pod backends; for a remote,
/// HTTPS (system roots and `caBundle`) with every resolved address through the guard.
fn upstream_client(cfg: &Config) -> anyhow::Result<UpstreamClient> {
    let (guard, tls) = match &cfg.remote_url {
        Some(_) => (
            Some(allowance(cfg)),
            remote::tls_config(cfg.ca_bundle.as_deref().map(|p| ("caBundle", p)))?,
        ),
        // The in-pod server is plain HTTP on loopback: no roots to load.
        None => (
            None,
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        ),
    };
    Ok(remote::guarded_client(guard, tls))
}

fn allowance(cfg: &Config) -> crate::address::Allowance {
    crate::address::Allowance {
        private: cfg.allow_private_endpoint,
        loopback: cfg.allow_loopback_remote,
    }
}

struct ProxyState {
    cfg: Arc<Config>,
    access: Access,
    bodies: BodyBudget,
    target: Target,
    client: UpstreamClient,
    /// Headers added to every request to the backend (values sensitive, never logged).
    added_headers: Vec<(HeaderName, HeaderValue)>,
    /// Trades each caller's token for the backend's (`auth.outgoing.tokenExchange`).
    exchange: Option<TokenExchange>,
    tools: Option<ToolPolicy>,
    /// Tokens, policies and audit, when configured.
    guard: Option<Arc<Guard>>,
    /// The backend's message path, learned from its `endpoint` event (`/message`, `/messages/`).
    message_path: Mutex<Option<String>>,
    /// Per legacy SSE session (keyed by the endpoint's query string): where the bridge puts its
    /// own answers (a refused tool call) into that session's stream.
    injectors: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
    ready: std::sync::atomic::AtomicBool,
}

type Shared = Arc<ProxyState>;

/// Whether a header is hop-by-hop (never forwarded, never configured).
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) never cross a proxy.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Serves the fronts in front of an HTTP MCP server; spawns the server command if one is given.
pub async fn run(cfg: Arc<Config>, listener: TcpListener) -> anyhow::Result<i32> {
    let target = match &cfg.remote_url {
        Some(url) => {
            let target = Target::parse(url, true)?;
            // The connector resolves names only; an address written in the URL is judged here.
            remote::check_literal(&target.host, allowance(&cfg))?;
            target
        }
        None => Target::parse(cfg.target.as_deref().unwrap_or_default(), false)?,
    };
    let tools = super::tool_policy(&cfg)?;
    let guard = Guard::of(&cfg)?;
    if let Some(g) = &guard {
        g.warm_up();
    }
    let client = upstream_client(&cfg)?;
    let added_headers = outgoing::added_headers(&cfg)?;
    let exchange = TokenExchange::of(&cfg)?;
    // Not served (the backend has its own); counts connections and refusals all the same.
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(ProxyState {
        cfg: cfg.clone(),
        access: Access::of(&cfg),
        bodies: BodyBudget::new(cfg.max_body_bytes_in_flight, metrics.clone()),
        target,
        client,
        added_headers,
        exchange,
        tools,
        guard,
        message_path: Mutex::new(None),
        injectors: Mutex::new(HashMap::new()),
        ready: std::sync::atomic::AtomicBool::new(false),
    });
    let app = router(state.clone(), cfg.transport);
    let http = tokio::spawn(serve::serve(
        listener,
        app,
        super::serve_limits(&cfg),
        metrics,
    ));
    if cfg.remote_url.is_some() {
        tokio::spawn(watch_remote(state.clone()));
    } else {
        tokio::spawn(watch_backend(state.clone()));
    }

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let code = if cfg.command.is_empty() {
        tokio::select! {
            _ = sigterm.recv() => 128 + libc::SIGTERM,
            _ = sigint.recv() => 128 + libc::SIGINT,
        }
    } else {
        let mut child = stdio::spawn_logged(&cfg.command, &cfg.secret_env_vars())?;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status?,
                _ = sigterm.recv() => stdio::signal(&child, libc::SIGTERM),
                _ = sigint.recv() => stdio::signal(&child, libc::SIGINT),
            }
        };
        let code = stdio::exit_code(status);
        tracing::warn!(
            code,
            "the MCP server exited; the bridge exits with its status"
        );
        code
    };
    http.abort();
    Ok(code)
}

fn router(state: Shared, transport: Transport) -> Router {
    let mut routes = Router::new();
    routes = match transport {
        Transport::Sse => routes
            .route("/sse", get(proxy_sse_stream))
            .route("/messages", any(proxy_message))
            .route("/messages/", any(proxy_message))
            .route("/message", any(proxy_message)),
        _ => routes.route("/mcp", any(proxy_mcp)),
    };
    let routes = match &state.guard {
        Some(g) => routes.route_layer(axum::middleware::from_fn_with_state(
            g.clone(),
            guard::enforce,
        )),
        None => routes,
    };
    let prefix = state.cfg.endpoint_prefix.clone();
    let mut app = Router::new()
        .route(
            "/health",
            get(|| async { json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#)) }),
        )
        .route("/ready", get(ready))
        .merge(routes.clone());
    if let Some(g) = &state.guard {
        app = app.merge(guard::metadata_routes(g));
    }
    if !prefix.is_empty() {
        app = app.nest(&prefix, routes);
    }
    app.with_state(state)
}

async fn ready(State(st): State<Shared>) -> Response {
    if st.ready.load(std::sync::atomic::Ordering::Relaxed) {
        json(StatusCode::OK, Bytes::from_static(br#"{"status":"ready"}"#))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(br#"{"status":"not ready"}"#),
        )
    }
}

/// Readiness: the backend accepts connections (checked quickly until it does, then at the
/// ping interval).
async fn watch_backend(st: Shared) {
    let authority = st.target.authority.to_str().unwrap_or_default().to_owned();
    loop {
        let up = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&authority),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let was = st.ready.swap(up, std::sync::atomic::Ordering::Relaxed);
        if up != was {
            tracing::info!(up, "MCP server reachability changed");
        }
        let wait = if up {
            st.cfg.ping_interval
        } else {
            Duration::from_millis(200)
        };
        tokio::time::sleep(wait).await;
    }
}

/// Readiness of a remote: the bridge's own MCP `initialize` succeeds (retried every two
/// seconds until it does, then repeated at the ping interval).
async fn watch_remote(st: Shared) {
    let transport = st.cfg.transport;
    let default = if transport == Transport::Sse {
        "/sse"
    } else {
        "/mcp"
    };
    let path = st.target.path_and_query(&st.target.path_or(default), None);
    let mut last_error = String::new();
    loop {
        // With a token exchange the remote may want a caller's credential, which the probe
        // has not got: its 401 then says it is up.
        let unauthorized_is_up = st.exchange.is_some();
        let probe = remote::initialize(
            st.as_ref(),
            transport,
            &path,
            st.cfg.max_line_bytes,
            unauthorized_is_up,
        );
        let outcome = match tokio::time::timeout(remote::probe_timeout(&st.cfg), probe).await {
            Ok(outcome) => outcome,
            Err(_) => Err("the remote did not answer initialize in time".into()),
        };
        let up = outcome.is_ok();
        let was = st.ready.swap(up, std::sync::atomic::Ordering::Relaxed);
        match outcome {
            Ok(()) if !was => {
                tracing::info!(remote = %st.target.origin, "the remote MCP server answered initialize; ready")
            }
            Err(e) if was || e != last_error => {
                tracing::warn!(remote = %st.target.origin, error = %e, "the remote MCP server is not reachable; not ready");
                last_error = e;
            }
            _ => {}
        }
        if up {
            last_error.clear();
        }
        let wait = if up {
            st.cfg.ping_interval
        } else {
            Duration::from_secs(2)
        };
        tokio::time::sleep(wait).await;
    }
}

impl remote::Exchange for ProxyState {
    fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<hyper::Response<Body>, String>> + Send + '_>,
    > {
        let uri = format!("{}{path_and_query}", self.target.origin);
        Box::pin(async move {
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::from(body))
                .map_err(|e| format!("invalid request to the remote: {e}"))?;
            let h = req.headers_mut();
            for (name, value) in headers {
                h.insert(name, value);
            }
            h.insert(header::HOST, self.target.authority.clone());
            for (name, value) in &self.added_headers {
                h.insert(name.clone(), value.clone());
            }
            self.client
                .request(req)
                .await
                .map(|r| r.map(Body::new))
                .map_err(|e| remote::chain(&e))
        })
    }
}

/// Streamable HTTP: POST, GET and DELETE on `/mcp`.
async fn proxy_mcp(State(st): State<Shared>, req: Request) -> Response {
    let path = st.target.path_or("/mcp");
    let query = req.uri().query().map(str::to_owned);
    forward(&st, req, &path, query.as_deref(), None).await
}

/// Legacy SSE: the GET stream.
async fn proxy_sse_stream(State(st): State<Shared>, req: Request) -> Response {
    let path = st.target.path_or("/sse");
    let query = req.uri().query().map(str::to_owned);
    forward(&st, req, &path, query.as_deref(), None).await
}

/// Legacy SSE: a POSTed message, to the backend's own message path with the same query.
async fn proxy_message(State(st): State<Shared>, req: Request) -> Response {
    let path = lock(&st.message_path)
        .clone()
        .unwrap_or_else(|| "/message".to_owned());
    let query = req.uri().query().unwrap_or_default().to_owned();
    let injector = lock(&st.injectors).get(&query).cloned();
    forward(&st, req, &path, Some(&query), injector).await
}

impl Target {
    fn path_or(&self, default: &str) -> String {
        if self.path.is_empty() {
            default.to_owned()
        } else {
            self.path.clone()
        }
    }
}

/// Forwards one request. `inject` is the legacy SSE session's stream, where a refused tool call
/// is answered (the POST itself then gets 202, as the backend would give).
async fn forward(
    st: &Shared,
    req: Request,
    path: &str,
    query: Option<&str>,
    inject: Option<mpsc::Sender<Bytes>>,
) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(refusal) = st.access.check(&parts.headers, &parts.uri) {
        return rpc_error(StatusCode::FORBIDDEN, code::TRANSPORT, refusal.message());
    }
    let who = parts.extensions.get::<Arc<Who>>().cloned();
    let (body_len, body) = if parts.method == Method::POST {
        let read = super::front::read_body(body, st.cfg.max_body_bytes, &parts.headers, &st.bodies);
        let bytes = match read.await {
            Ok(bytes) => bytes,
            Err(reject) => return reject.into_response(),
        };
        if let Err(denied) = authorize(st, &parts.extensions, &bytes) {
            return *denied;
        }
        match screen_call(st, bytes, &parts.headers, inject).await {
            Ok(bytes) => (Some(bytes.len()), Body::from(bytes)),
            Err(refused) => return refused,
        }
    } else {
        (None, body)
    };
    // After the policy and the tool screen: a refused call costs no exchange.
    let credential = match caller_credential(st, &parts.extensions).await {
        Ok(credential) => credential,
        Err(refused) => return refused,
    };
    let uri = format!(
        "{}{}",
        st.target.origin,
        st.target.path_and_query(path, query)
    );
    // The message path comes from the server's `endpoint` event: it may not make a valid URI.
    let Ok(mut out) = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)
    else {
        return rpc_error(
            StatusCode::BAD_GATEWAY,
            code::INTERNAL_ERROR,
            "the MCP server announced an invalid message endpoint",
        );
    };
    copy_headers(&parts.headers, out.headers_mut());
    out.headers_mut()
        .insert(header::HOST, st.target.authority.clone());
    // Configured headers win over a client's of the same name.
    for (name, value) in &st.added_headers {
        out.headers_mut().insert(name.clone(), value.clone());
    }
    if let Some((name, value)) = credential {
        out.headers_mut().insert(name, value);
    }
    if let Some(len) = body_len {
        // The body was read, and maybe rewritten: its length is known here, not by the client.
        out.headers_mut().insert(header::CONTENT_LENGTH, len.into());
    }
    // The bridge reads SSE events and JSON bodies to rewrite them; compression on a loopback
    // hop buys nothing, so ask the server for plain bodies.
    out.headers_mut().remove(header::ACCEPT_ENCODING);
    let sent = tokio::time::timeout(st.cfg.request_timeout, st.client.request(out)).await;
    let resp = match sent {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let why = remote::chain(&e);
            tracing::warn!(error = %why, "the MCP server could not be reached");
            // A remote's failure (refused address, TLS) is the operator's to fix: say which.
            let message = if st.cfg.remote_url.is_some() {
                format!("the remote MCP server could not be reached: {why}")
            } else {
                "the MCP server could not be reached".to_owned()
            };
            return rpc_error(StatusCode::BAD_GATEWAY, code::INTERNAL_ERROR, &message);
        }
        Err(_) => {
            return rpc_error(
                StatusCode::GATEWAY_TIMEOUT,
                code::INTERNAL_ERROR,
                "the MCP server did not answer in time",
            )
        }
    };
    let (parts, body) = resp.into_parts();
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = if content_type.starts_with("text/event-stream") {
        headers.remove(header::CONTENT_LENGTH);
        let (injector, injected) = mpsc::channel(64);
        let events = SseRewriter::new(st.clone(), injector, who);
        Body::from_stream(events.run(body.into_data_stream(), injected))
    } else if rewrites_messages(st) && content_type.starts_with("application/json") {
        headers.remove(header::CONTENT_LENGTH);
        match http_body_util::Limited::new(body, st.cfg.max_line_bytes)
            .collect()
            .await
        {
            Ok(collected) => Body::from(filter_message(st, who.as_deref(), collected.to_bytes())),
            Err(_) => {
                return rpc_error(
                    StatusCode::BAD_GATEWAY,
                    code::INTERNAL_ERROR,
                    "the MCP server's answer was too large or broken",
                )
            }
        }
    } else {
        Body::new(body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    *resp.headers_mut() = headers;
    resp
}

/// The exchanged token of this request's own caller (`auth.outgoing.tokenExchange`), so that
/// each request carries its caller's credential even where clients share a backend session;
/// none without an exchange. A failed exchange is the client's answer, without the token
/// endpoint's reasons (they are logged, never a token).
async fn caller_credential(
    st: &Shared,
    extensions: &axum::http::Extensions,
) -> Result<Option<(HeaderName, HeaderValue)>, Response> {
    let Some(exchange) = &st.exchange else {
        return Ok(None);
    };
    let failed = |status| {
        rpc_error(
            status,
            code::INTERNAL_ERROR,
            "the caller's token could not be exchanged for the MCP server",
        )
    };
    // The guard puts it there for every request it lets through (`oidc` is required).
    let Some(CallerToken(token)) = extensions.get::<CallerToken>() else {
        return Err(failed(StatusCode::UNAUTHORIZED));
    };
    let exp = extensions
        .get::<Arc<Who>>()
        .and_then(|w| w.identity.as_ref())
        .and_then(|i| i.claims.get("exp"))
        .and_then(Value::as_f64)
        .map(|exp| exp.max(0.0) as u64);
    match exchange.credential_for(token, exp).await {
        Ok(credential) => Ok(Some(credential)),
        Err(e) => {
            tracing::warn!(error = %e, "the caller's token could not be exchanged");
            Err(failed(e.status()))
        }
    }
}

/// Screens a POST body through the tool policy: the body to forward (a call of a renamed tool
/// with the backend's name put in), or the answer to a call of a hidden tool, which never reaches
/// the server: -32602 `tool not found`, over 200 (streamable HTTP, JSON or SSE as the client
/// accepts) or on the session's stream (legacy SSE).
async fn screen_call(
    st: &Shared,
    body: Bytes,
    headers: &HeaderMap,
    inject: Option<mpsc::Sender<Bytes>>,
) -> Result<Bytes, Response> {
    let Some(tools) = st.tools.as_ref() else {
        return Ok(body);
    };
    let Ok(mut msg) = serde_json::from_slice::<Value>(&body) else {
        return Ok(body);
    };
    if let Value::Array(batch) = &mut msg {
        return match screen_batch(tools, batch) {
            Screened::Unchanged => Ok(body),
            Screened::Renamed => Ok(serde_json::to_vec(&msg).map(Bytes::from).unwrap_or(body)),
            Screened::Refused => Err(rpc_error(
                StatusCode::BAD_REQUEST,
                code::INVALID_PARAMS,
                "a call in this batch names a tool that is not available: tool not found",
            )),
        };
    }
    if msg.get("method").and_then(Value::as_str) != Some("tools/call") {
        return Ok(body);
    }
    match tools.screen_call(&mut msg) {
        Screened::Unchanged => return Ok(body),
        Screened::Renamed => return Ok(serde_json::to_vec(&msg).map(Bytes::from).unwrap_or(body)),
        Screened::Refused => {}
    }
    let Some(id) = msg.get("id").map(Value::to_string) else {
        return Ok(body);
    };
    let error = jsonrpc::error_response(Some(id.as_bytes()), code::INVALID_PARAMS, TOOL_NOT_FOUND);
    if st.cfg.transport == Transport::Sse {
        if let Some(inject) = inject {
            let _ = tokio::time::timeout(st.cfg.request_timeout, inject.send(error)).await;
        }
        return Err(StatusCode::ACCEPTED.into_response());
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if accept.contains("application/json") || accept.contains("*/*") {
        Err(json(StatusCode::OK, error))
    } else {
        let mut resp = (StatusCode::OK, super::front::sse_event(&error)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        Err(resp)
    }
}

/// A JSON-RPC batch (protocol revisions before 2025-06-18), which HTTP backends may accept: each
/// call in it is screened like a single one and renamed in place. A batch is answered as a
/// whole, so one call of a hidden tool refuses all of it before it reaches the server.
fn screen_batch(tools: &ToolPolicy, batch: &mut [Value]) -> Screened {
    let mut outcome = Screened::Unchanged;
    for call in batch
        .iter_mut()
        .filter(|m| m.get("method").and_then(Value::as_str) == Some("tools/call"))
    {
        match tools.screen_call(call) {
            Screened::Unchanged => {}
            Screened::Renamed => outcome = Screened::Renamed,
            Screened::Refused => return Screened::Refused,
        }
    }
    outcome
}

/// Whether answers are read at all: for the tool policy, or for the Cedar list filter.
fn rewrites_messages(st: &Shared) -> bool {
    st.tools.is_some() || st.guard.as_ref().is_some_and(|g| g.authz.is_some())
}

/// Rewrites `tools/list` results (also inside a batch's answer) through the tool policy, then
/// cuts lists down to what the caller may use; anything else passes unchanged.
fn filter_message(st: &Shared, who: Option<&Who>, msg: Bytes) -> Bytes {
    let is_batch = msg.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_batch && jsonrpc::top_level_value_span(&msg, b"result").is_none() {
        return msg;
    }
    let msg = match &st.tools {
        Some(tools) => tools.rewrite_list_response(msg),
        None => msg,
    };
    match st.guard.as_ref().and_then(|g| g.authz.as_ref()) {
        Some(z) => z.filter_lists_by_shape(who.and_then(|w| w.caller.as_ref()), msg),
        None => msg,
    }
}

/// Screens a POST body (each message of a batch) through the policy: a denied message refuses
/// the whole POST before it reaches the server, as upstream answers (403, JSON-RPC 403).
fn authorize(
    st: &Shared,
    extensions: &axum::http::Extensions,
    body: &Bytes,
) -> Result<(), Box<Response>> {
    let Some(g) = st.guard.as_deref() else {
        return Ok(());
    };
    let who = extensions.get::<Arc<Who>>().map(|w| w.as_ref());
    let slot = extensions.get::<Slot>();
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        // Not JSON: the server refuses it; no policy can be asked about it.
        return Ok(());
    };
    let messages = match &msg {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    for m in messages {
        let Some(method) = m.get("method").and_then(Value::as_str) else {
            continue;
        };
        if guard::screen(Some(g), who, slot, method, m) == Verdict::Denied {
            let id = m.get("id").map(Value::to_string);
            return Err(Box::new(guard::denied(id.as_deref().map(str::as_bytes))));
        }
    }
    Ok(())
}

/// Rewrites an SSE stream event by event: the legacy `endpoint` event points at the bridge, and
/// `tools/list` results are rewritten. Events are bounded by `maxLineBytes`.
struct SseRewriter {
    st: Shared,
    /// The caller of the request this stream answers (lists are filtered for them).
    who: Option<Arc<Who>>,
    injector: mpsc::Sender<Bytes>,
    buf: BytesMut,
    session_key: Option<String>,
    /// How much of `buf` holds no event end.
    scanned: usize,
}

impl SseRewriter {
    fn new(st: Shared, injector: mpsc::Sender<Bytes>, who: Option<Arc<Who>>) -> Self {
        Self {
            st,
            who,
            injector,
            buf: BytesMut::new(),
            session_key: None,
            scanned: 0,
        }
    }

    fn run<S>(
        self,
        upstream: S,
        injected: mpsc::Receiver<Bytes>,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes, hyper::Error>> + Send + Unpin + 'static,
    {
        let upstream = upstream
            .map(Some)
            .chain(futures::stream::once(async { None }));
        let injected = tokio_stream_of(injected).map(Input::Injected);
        let merged = futures::stream::select(upstream.map(Input::Upstream), injected);
        futures::stream::unfold(
            (self, Box::pin(merged)),
            |(mut me, mut merged)| async move {
                loop {
                    match merged.next().await? {
                        Input::Injected(msg) => {
                            return Some((Ok(super::front::sse_event(&msg)), (me, merged)));
                        }
                        Input::Upstream(Some(Ok(chunk))) => {
                            me.buf.extend_from_slice(&chunk);
                            let out = me.drain_events();
                            if me.buf.len() > me.st.cfg.max_line_bytes {
                                tracing::warn!("an SSE event from the MCP server is over the size limit; stream closed");
                                return None;
                            }
                            if !out.is_empty() {
                                return Some((Ok(out), (me, merged)));
                            }
                        }
                        Input::Upstream(Some(Err(_)) | None) => {
                            me.forget_session();
                            return None;
                        }
                    }
                }
            },
        )
    }

    /// Takes every complete event out of the buffer, rewritten.
    fn drain_events(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        while let Some((end, sep)) = find_event_end(&self.buf, self.scanned) {
            let event = self.buf.split_to(end + sep).freeze();
            self.scanned = 0;
            out.extend_from_slice(&self.rewrite(&event[..end]));
        }
        // Resume the next search where this one stopped (less a separator's length), so a big
        // event arriving in many chunks is scanned once, not once per chunk.
        self.scanned = self.buf.len().saturating_sub(3);
        out.freeze()
    }

    fn rewrite(&mut self, event: &[u8]) -> Bytes {
        let text = String::from_utf8_lossy(event);
        let mut kind = "message";
        let mut data = String::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                kind = match v.trim() {
                    "endpoint" => "endpoint",
                    "message" => "message",
                    _ => "other",
                };
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        match kind {
            "endpoint" => Bytes::from(format!(
                "event: endpoint\ndata: {}\n\n",
                self.rewrite_endpoint(&data)
            )),
            "message" if rewrites_messages(&self.st) && data.starts_with(['{', '[']) => {
                let msg = Bytes::from(data.into_bytes());
                let filtered = filter_message(&self.st, self.who.as_deref(), msg);
                let mut out = BytesMut::new();
                // Keep an event id (resumability) as the server sent it.
                for line in text.lines().filter(|l| l.starts_with("id:")) {
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(b"\n");
                }
                out.extend_from_slice(&super::front::sse_event(&filtered));
                out.freeze()
            }
            _ => {
                let mut out = BytesMut::from(event);
                out.extend_from_slice(b"\n\n");
                out.freeze()
            }
        }
    }

    /// `/message?sessionId=abc` (maybe absolute) becomes `<prefix>/messages?sessionId=abc`.
    fn rewrite_endpoint(&mut self, data: &str) -> String {
        let data = data.trim();
        let path_and_query = match data.find("://") {
            Some(i) => data[i + 3..].find('/').map_or("/", |j| &data[i + 3 + j..]),
            None => data,
        };
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        *lock(&self.st.message_path) = Some(path.to_owned());
        lock(&self.st.injectors).insert(query.to_owned(), self.injector.clone());
        self.session_key = Some(query.to_owned());
        format!("{}/messages?{query}", self.st.cfg.endpoint_prefix)
    }

    fn forget_session(&mut self) {
        if let Some(key) = self.session_key.take() {
            lock(&self.st.injectors).remove(&key);
        }
    }
}

impl Drop for SseRewriter {
    fn drop(&mut self) {
        self.forget_session();
    }
}

enum Input {
    Upstream(Option<Result<Bytes, hyper::Error>>),
    Injected(Bytes),
}

fn tokio_stream_of(mut rx: mpsc::Receiver<Bytes>) -> impl Stream<Item = Bytes> + Send + Unpin {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// The end of the first complete event at or after `from`, and the length of its blank-line
/// separator.
fn find_event_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let connection_named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for (name, value) in from {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "host" || connection_named.iter().any(|c| c == n) {
            continue;
        }
        to.append(HeaderName::from(name), value.clone());
    }
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    json(status, jsonrpc::error_response(None, code, message))
}

fn json(status: StatusCode, body: Bytes) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
