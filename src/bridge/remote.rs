//! Remote mode (`remoteUrl`, the data path of MCPRemoteProxy): what the reverse proxy needs to
//! reach an MCP server outside the pod.
//!
//! - [`GuardedResolver`] (from [`crate::address`]): every name is resolved at connect time and refused when any of its
//!   addresses is loopback, link-local, unspecified, a metadata service or (unless
//!   `allowPrivateEndpoint`) private, so a DNS answer cannot point the proxy at the node;
//! - [`tls_config`]: the system's roots plus an optional CA bundle, on the one crypto provider
//!   (ring);
//! - the headers and credentials added to every request are [`super::outgoing`]'s;
//! - [`initialize`]: the bridge's own MCP `initialize` against the remote, which is its
//!   readiness.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::config::{Config, Transport};
pub use crate::address::{chain, check_addresses, check_literal, GuardedResolver, Refusal};

/// An HTTP(S) client whose every resolved address passes `guard` (none: any address).
pub type GuardedClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<
        hyper_util::client::legacy::connect::HttpConnector<GuardedResolver>,
    >,
    axum::body::Body,
>;

/// The one way the bridge builds an outbound client (backends, remotes, issuers): HTTP/1 over
/// `tls` or plain HTTP, a 5 s connect timeout, idle connections kept 30 s.
pub fn guarded_client(
    guard: Option<crate::address::Allowance>,
    tls: rustls::ClientConfig,
) -> GuardedClient {
    use hyper_util::client::legacy::connect::HttpConnector;
    let mut connector = HttpConnector::new_with_resolver(GuardedResolver { guard });
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// The TLS client configuration: the system's roots, plus the certificates of a CA bundle,
/// given as the config field that names it and its path (errors name the field: the same
/// reader serves `caBundle` and `auth.oidc.caBundle`). Without either, only plain `http://`
/// peers can be reached; that is said once.
pub fn tls_config(ca_bundle: Option<(&str, &Path)>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::warn!(
            errors = native.errors.len(),
            "some system CA certificates could not be read"
        );
    }
    roots.add_parsable_certificates(native.certs);
    if let Some((field, path)) = ca_bundle {
        let shown = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("{field}: cannot read {shown}: {e}"))?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{field}: {shown} is not PEM: {e}"))?;
        if certs.is_empty() {
            anyhow::bail!("{field}: {shown} holds no PEM certificate");
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                anyhow::anyhow!("{field}: a certificate of {shown} is not usable: {e}")
            })?;
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            "no CA certificates (system or caBundle): https:// remotes cannot be verified"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// How the probe talks to the remote: a request out, a response back.
pub trait Exchange: Send + Sync {
    fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Pin<Box<dyn Future<Output = Result<hyper::Response<axum::body::Body>, String>> + Send + '_>>;
}

const PROBE_ID: &str = "mcp-operator-readiness";

fn initialize_body() -> Bytes {
    Bytes::from(
        json!({
            "jsonrpc": "2.0", "id": PROBE_ID, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "mcp-operator-bridge", "version": env!("CARGO_PKG_VERSION")},
            }
        })
        .to_string(),
    )
}

/// The bridge's own `initialize` against the remote: Ok when it answers with a result, else
/// why not. The session it opens is closed again (DELETE, or the SSE stream dropped). Bounded
/// in time by the caller and in size by `max_bytes`. `unauthorized_is_up`: a 401 is an answer
/// too (the remote wants a per-caller credential the probe cannot have).
pub async fn initialize(
    x: &dyn Exchange,
    transport: Transport,
    path: &str,
    max_bytes: usize,
    unauthorized_is_up: bool,
) -> Result<(), String> {
    let outcome = match transport {
        Transport::Sse => initialize_sse(x, path, max_bytes).await,
        _ => initialize_streamable(x, path, max_bytes).await,
    };
    match outcome {
        Err(Probe::Status(StatusCode::UNAUTHORIZED)) if unauthorized_is_up => Ok(()),
        other => other.map_err(|e| e.to_string()),
    }
}

/// Why a probe failed: an HTTP status (which a caller may accept), or anything else.
#[derive(Debug, thiserror::Error)]
enum Probe {
    #[error("the remote answered initialize with HTTP {0}")]
    Status(StatusCode),
    #[error("{0}")]
    Failed(String),
}

impl From<String> for Probe {
    fn from(why: String) -> Self {
        Probe::Failed(why)
    }
}

fn json_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        ),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
    ]
}

async fn initialize_streamable(
    x: &dyn Exchange,
    path: &str,
    max_bytes: usize,
) -> Result<(), Probe> {
    let resp = x
        .send(Method::POST, path, json_headers(), initialize_body())
        .await?;
    let status = resp.status();
    let session = resp.headers().get("mcp-session-id").cloned();
    let sse = is_event_stream(resp.headers());
    if !status.is_success() {
        return Err(Probe::Status(status));
    }
    let mut body = resp.into_body();
    let answer = if sse {
        let mut events = SseReader::default();
        loop {
            let Some(event) = events.next(&mut body, max_bytes).await? else {
                return Err(Probe::Failed(
                    "the remote closed its initialize stream without an answer".into(),
                ));
            };
            if event.kind == "message" && is_probe_answer(&event.data) {
                break event.data;
            }
        }
    } else {
        let collected = http_body_util::Limited::new(body, max_bytes)
            .collect()
            .await
            .map_err(|e| format!("the remote's initialize answer could not be read: {e}"))?;
        String::from_utf8_lossy(&collected.to_bytes()).into_owned()
    };
    let verdict = judge(&answer);
    if let Some(sid) = session {
        // Be a polite client: the probe's session is not used again.
        let _ = x
            .send(
                Method::DELETE,
                path,
                vec![(HeaderName::from_static("mcp-session-id"), sid)],
                Bytes::new(),
            )
            .await;
    }
    Ok(verdict?)
}

async fn initialize_sse(x: &dyn Exchange, path: &str, max_bytes: usize) -> Result<(), Probe> {
    let accept = vec![(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    )];
    let resp = x.send(Method::GET, path, accept, Bytes::new()).await?;
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        return Err(Probe::Status(status));
    }
    if status != StatusCode::OK || !is_event_stream(resp.headers()) {
        return Err(Probe::Failed(format!(
            "the remote answered the SSE stream request with HTTP {status}"
        )));
    }
    let mut body = resp.into_body();
    let mut events = SseReader::default();
    let endpoint = loop {
        match events.next(&mut body, max_bytes).await? {
            Some(e) if e.kind == "endpoint" => break e.data,
            Some(_) => continue,
            None => {
                return Err(Probe::Failed(
                    "the remote's SSE stream ended before its endpoint event".into(),
                ))
            }
        }
    };
    let post_path = path_and_query(endpoint.trim());
    let resp = x
        .send(Method::POST, &post_path, json_headers(), initialize_body())
        .await?;
    if !resp.status().is_success() {
        return Err(Probe::Status(resp.status()));
    }
    loop {
        match events.next(&mut body, max_bytes).await? {
            Some(e) if e.kind == "message" && is_probe_answer(&e.data) => {
                return Ok(judge(&e.data)?)
            }
            Some(_) => continue,
            None => {
                return Err(Probe::Failed(
                    "the remote's SSE stream ended before the initialize answer".into(),
                ))
            }
        }
    }
}

/// The path and query of an `endpoint` event, which may be an absolute URL: the bridge posts
/// to its own remote, never to a host an event names.
pub fn path_and_query(endpoint: &str) -> String {
    match endpoint.find("://") {
        Some(i) => endpoint[i + 3..]
            .find('/')
            .map_or("/".to_owned(), |j| endpoint[i + 3 + j..].to_owned()),
        None => endpoint.to_owned(),
    }
}

fn is_event_stream(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"))
}

fn is_probe_answer(data: &str) -> bool {
    serde_json::from_str::<Value>(data).is_ok_and(|v| v.get("id") == Some(&json!(PROBE_ID)))
}

/// Ok for a JSON-RPC result, the remote's error message (bounded) otherwise.
fn judge(answer: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(answer.trim())
        .map_err(|_| "the remote's initialize answer is not JSON-RPC".to_string())?;
    if v.get("result").is_some_and(Value::is_object) {
        return Ok(());
    }
    let message = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("no result");
    Err(format!(
        "the remote refused initialize: {}",
        crate::controller::frame::truncate(message, 200)
    ))
}

/// One server-sent event.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub data: String,
}

/// Reads events off a body, holding at most `max_bytes` of an unfinished one.
#[derive(Default)]
pub(crate) struct SseReader {
    buf: BytesMut,
}

impl SseReader {
    pub(crate) async fn next(
        &mut self,
        body: &mut axum::body::Body,
        max_bytes: usize,
    ) -> Result<Option<Event>, String> {
        loop {
            if let Some(event) = self.take_event() {
                return Ok(Some(event));
            }
            if self.buf.len() > max_bytes {
                return Err("an SSE event from the remote is over the size limit".into());
            }
            match body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("the remote's stream broke: {e}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    fn take_event(&mut self) -> Option<Event> {
        let text = &self.buf[..];
        let (end, sep) = (0..text.len()).find_map(|i| {
            if text[i..].starts_with(b"\r\n\r\n") {
                Some((i, 4))
            } else if text[i..].starts_with(b"\n\n") {
                Some((i, 2))
            } else {
                None
            }
        })?;
        let raw = self.buf.split_to(end + sep);
        Some(parse_event(&String::from_utf8_lossy(&raw[..end])))
    }
}

fn parse_event(text: &str) -> Event {
    let mut kind = "message".to_owned();
    let mut data = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    Event { kind, data }
}

/// How long one readiness `initialize` may take.
pub fn probe_timeout(cfg: &Config) -> Duration {
    cfg.request_timeout.min(Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Allowance;
    use std::net::SocketAddr;

    #[test]
    fn names_with_any_forbidden_address_are_refused() {
        let a = |s: &str| SocketAddr::new(s.parse().unwrap(), 443);
        let none = Allowance::default();
        assert!(check_addresses("ok.example", &[a("93.184.216.34")], none).is_ok());
        let mixed = check_addresses("mixed.example", &[a("93.184.216.34"), a("127.0.0.1")], none)
            .unwrap_err()
            .to_string();
        assert!(
            mixed.contains("mixed.example resolves to 127.0.0.1, which is loopback"),
            "{mixed}"
        );
        let private = check_addresses("p.example", &[a("10.1.2.3")], none)
            .unwrap_err()
            .to_string();
        assert!(private.contains("allowPrivateEndpoint"), "{private}");
        let allow = Allowance {
            private: true,
            loopback: false,
        };
        assert!(check_addresses("p.example", &[a("10.1.2.3")], allow).is_ok());
        assert!(check_literal("[::1]", none).is_err());
        assert!(check_literal("169.254.169.254", allow).is_err());
        assert!(check_literal("example.com", none).is_ok());
    }

    #[test]
    fn endpoint_events_stay_on_the_remote() {
        assert_eq!(
            path_and_query("/messages?sessionId=1"),
            "/messages?sessionId=1"
        );
        assert_eq!(path_and_query("https://evil.example/m?s=1"), "/m?s=1");
        assert_eq!(path_and_query("http://h"), "/");
    }

    #[test]
    fn events_are_parsed_across_chunks() {
        let mut r = SseReader::default();
        r.buf
            .extend_from_slice(b"event: endpoint\ndata: /m?s=1\n\ndata: {\"a\"");
        assert_eq!(
            r.take_event(),
            Some(Event {
                kind: "endpoint".into(),
                data: "/m?s=1".into()
            })
        );
        assert_eq!(r.take_event(), None);
        r.buf.extend_from_slice(b":1}\r\n\r\n");
        assert_eq!(r.take_event().unwrap().data, "{\"a\":1}");
    }

    /// A remote that answers every request with one status.
    struct Answers(StatusCode);

    impl Exchange for Answers {
        fn send(
            &self,
            _: Method,
            _: &str,
            _: Vec<(HeaderName, HeaderValue)>,
            _: Bytes,
        ) -> Pin<
            Box<dyn Future<Output = Result<hyper::Response<axum::body::Body>, String>> + Send + '_>,
        > {
            let mut resp = hyper::Response::new(axum::body::Body::empty());
            *resp.status_mut() = self.0;
            Box::pin(async move { Ok(resp) })
        }
    }

    /// With a token exchange the probe has no caller's credential: a 401 is the remote's
    /// answer, so it is up; without one, and for any other status, it is not.
    #[tokio::test]
    async fn unauthorized_probes_count_only_when_asked() {
        let unauthorized = Answers(StatusCode::UNAUTHORIZED);
        for transport in [Transport::StreamableHttp, Transport::Sse] {
            assert!(initialize(&unauthorized, transport, "/p", 1024, true)
                .await
                .is_ok());
            let e = initialize(&unauthorized, transport, "/p", 1024, false)
                .await
                .unwrap_err();
            assert!(e.contains("401"), "{e}");
            let failing = Answers(StatusCode::BAD_GATEWAY);
            let e = initialize(&failing, transport, "/p", 1024, true)
                .await
                .unwrap_err();
            assert!(e.contains("502"), "{e}");
        }
    }

    #[test]
    fn initialize_answers_are_judged() {
        assert!(
            judge(r#"{"jsonrpc":"2.0","id":"x","result":{"protocolVersion":"2025-11-25"}}"#)
                .is_ok()
        );
        let e = judge(r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32600,"message":"bad"}}"#)
            .unwrap_err();
        assert!(e.contains("bad"), "{e}");
        assert!(judge("<html>").is_err());
    }
}
