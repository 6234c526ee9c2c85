//! A recorder for the bridge's outgoing requests: a real MCP server (`server-everything`) on
//! loopback behind a small HTTP(S) server that notes the headers of every request it passes on.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::common::{everything_http, free_port, http};

/// `server-everything streamableHttp` on a free port; killed when dropped.
pub struct Everything {
    child: Child,
    pub port: u16,
}

impl Everything {
    pub fn start() -> Everything {
        Self::start_mode("streamableHttp")
    }

    /// `streamableHttp` (`/mcp`) or `sse` (`/sse`).
    pub fn start_mode(mode: &str) -> Everything {
        let port = free_port();
        let cmd = everything_http(mode);
        let child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "server-everything did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Everything { child, port }
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The headers of every request the recorder passed on, in order.
pub type Seen = Arc<Mutex<Vec<hyper::HeaderMap>>>;

/// An HTTP (or, with `tls`, HTTPS) server on loopback that records each request's headers and
/// passes it on to `upstream`, streaming the answer back.
pub async fn recorder(upstream: u16, tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let client = http();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (client, record, tls) = (client.clone(), record.clone(), tls.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    pass_on(client.clone(), record.clone(), upstream, req)
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(tls_stream) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(tls_stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    (port, seen)
}

async fn pass_on(
    client: reqwest::Client,
    seen: Seen,
    upstream: u16,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<axum::body::Body>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    seen.lock().unwrap().push(parts.headers.clone());
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let url = format!(
        "http://127.0.0.1:{upstream}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = client.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            out = out.header(name, value);
        }
    }
    let resp = match out.send().await {
        Ok(resp) => resp,
        Err(e) => {
            let mut r = hyper::Response::new(axum::body::Body::from(e.to_string()));
            *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let mut answer = hyper::Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            answer = answer.header(name, value);
        }
    }
    Ok(answer
        .body(axum::body::Body::from_stream(resp.bytes_stream()))
        .unwrap())
}

/// The value of header `name` in every recorded request (`<absent>` where it was not sent).
pub fn header_values(seen: &Seen, name: &str) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|h| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("<absent>")
                .to_owned()
        })
        .collect()
}
