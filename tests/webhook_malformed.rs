//! Malformed and hostile input over real TLS: every case gets its documented status, the
//! server never panics, and it keeps serving. Static cases live in `webhook_cases/malformed/`.

mod webhook_support;

use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhook_support::*;

const DEFAULT_PATH: &str = "/validate-toolhive-stacklok-dev-v1beta1-mcpserver";

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

#[derive(Debug, Default)]
struct Case {
    name: String,
    path: Option<String>,
    method: Option<String>,
    content_type: Option<String>,
    status: u16,
    error: Option<String>,
    allowed: Option<bool>,
    code: Option<u64>,
    message: Option<String>,
    warning: Option<String>,
    body: Vec<u8>,
}

fn parse_case(name: &str, text: &str) -> Case {
    let (head, body) = text
        .split_once("\n---\n")
        .or_else(|| text.strip_suffix("\n---").map(|h| (h, "")))
        .unwrap_or_else(|| panic!("{name}: no --- line"));
    let mut case = Case {
        name: name.to_string(),
        body: body.strip_suffix('\n').unwrap_or(body).as_bytes().to_vec(),
        ..Case::default()
    };
    for line in head
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{name}: bad header {line:?}"));
        let value = value.trim().to_string();
        match key.trim() {
            "path" => case.path = Some(value),
            "method" => case.method = Some(value),
            "content-type" => case.content_type = Some(value),
            "status" => case.status = value.parse().expect("status"),
            "error" => case.error = Some(value),
            "allowed" => case.allowed = Some(value.parse().expect("allowed")),
            "code" => case.code = Some(value.parse().expect("code")),
            "message" => case.message = Some(value),
            "warning" => case.warning = Some(value),
            other => panic!("{name}: unknown header {other:?}"),
        }
    }
    assert_ne!(case.status, 0, "{name}: status is required");
    case
}

fn load_cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webhook_cases/malformed");
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .expect("case folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            parse_case(&name, &std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.len() >= 20, "the case folder is read");
    cases
}

async fn send(
    client: &reqwest::Client,
    server: &mcp_operator::webhook::RunningServer,
    case: &Case,
) -> (u16, Value) {
    let method =
        reqwest::Method::from_bytes(case.method.as_deref().unwrap_or("POST").as_bytes()).unwrap();
    let mut request = client
        .request(
            method,
            url(server, case.path.as_deref().unwrap_or(DEFAULT_PATH)),
        )
        .body(case.body.clone());
    match case.content_type.as_deref() {
        Some("none") => {}
        Some(ct) => request = request.header("content-type", ct),
        None => request = request.header("content-type", "application/json"),
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn check(case: &Case, status: u16, body: &Value) {
    let name = &case.name;
    assert_eq!(status, case.status, "{name}: {body}");
    if let Some(error) = &case.error {
        let got = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: a JSON error body, got {body}"));
        assert!(
            got.contains(error.as_str()),
            "{name}: {got:?} should contain {error:?}"
        );
        assert_eq!(body["code"], status, "{name}");
    }
    let response = &body["response"];
    if let Some(allowed) = case.allowed {
        assert_eq!(response["allowed"], allowed, "{name}: {body}");
    }
    if let Some(code) = case.code {
        assert_eq!(response["status"]["code"], code, "{name}: {body}");
    }
    if let Some(message) = &case.message {
        let got = response["status"]["message"].as_str().unwrap_or_default();
        assert!(got.contains(message.as_str()), "{name}: {got:?}");
    }
    if let Some(warning) = &case.warning {
        let got = response["warnings"][0].as_str().unwrap_or_default();
        assert!(got.contains(warning.as_str()), "{name}: {got:?}");
    }
}

async fn still_serving(client: &reqwest::Client, server: &mcp_operator::webhook::RunningServer) {
    let review = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "CREATE",
        Some(&fetch_server()),
        None,
    );
    let (status, body) = post(
        client,
        server,
        "/mutate-toolhive-stacklok-dev-v1beta1-mcpserver",
        &review,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(
        client
            .get(url(server, "/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn malformed_input_gets_its_documented_status_and_the_server_keeps_serving() {
    count_panics();
    let pki = Pki::new();
    let mut options = options(&pki);
    options.request_timeout = Duration::from_millis(500);
    let server = mcp_operator::webhook::start(options).await.unwrap();
    let client = client(&pki, &server);

    for case in load_cases() {
        let (status, body) = send(&client, &server, &case).await;
        check(&case, status, &body);
    }
    still_serving(&client, &server).await;

    // 10 MB, announced by Content-Length: refused before it is read.
    let big = Case {
        name: "10 MB body".into(),
        status: 413,
        error: Some("exceeds".into()),
        body: vec![b' '; 10 * 1024 * 1024],
        ..Case::default()
    };
    let (status, body) = send(&client, &server, &big).await;
    check(&big, status, &body);

    // 10 MB, streamed without Content-Length: refused once the limit is crossed.
    let chunks =
        futures::stream::iter((0..160).map(|_| Ok::<_, std::io::Error>(vec![b'['; 64 * 1024])));
    let response = client
        .post(url(&server, DEFAULT_PATH))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    // The server may answer 413 and close before the client has sent everything.
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
    }

    // 1,000-deep nesting inside the object: serde_json's recursion limit, not a stack overflow.
    let mut review = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "CREATE",
        Some(&fetch_server()),
        None,
    );
    let nested = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let text = serde_json::to_string(&review)
        .unwrap()
        .replace("\"docker.io/mcp/fetch\"", &nested);
    let deep = Case {
        name: "1000-deep nesting".into(),
        status: 400,
        error: Some("recursion limit".into()),
        body: text.into_bytes(),
        ..Case::default()
    };
    let (status, body) = send(&client, &server, &deep).await;
    check(&deep, status, &body);

    // Invalid UTF-8 in a string.
    review["request"]["name"] = Value::String("PLACEHOLDER".into());
    let mut bytes = serde_json::to_vec(&review).unwrap();
    let at = bytes.windows(11).position(|w| w == b"PLACEHOLDER").unwrap();
    bytes[at] = 0xff;
    let utf8 = Case {
        name: "invalid UTF-8".into(),
        status: 400,
        error: Some("not valid JSON".into()),
        body: bytes,
        ..Case::default()
    };
    let (status, body) = send(&client, &server, &utf8).await;
    check(&utf8, status, &body);

    // A body that never arrives: the request timeout answers 408.
    let (status, body) = stalled_body(&pki, &server).await;
    assert_eq!(status, 408, "{body}");

    still_serving(&client, &server).await;
    let metrics = reqwest::get(metrics_url(&server, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for reason in [
        "malformed",
        "too_large",
        "unsupported_media_type",
        "timeout",
    ] {
        assert!(
            metrics.contains(&format!(
                "mcp_operator_webhook_rejected_requests_total{{reason=\"{reason}\"}}"
            )),
            "{reason} counted:\n{metrics}"
        );
    }
    server.shutdown().await.unwrap();
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the server never panics");
}

/// Sends headers announcing 100 bytes and only 10 of them, then waits for the answer.
async fn stalled_body(pki: &Pki, server: &mcp_operator::webhook::RunningServer) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pki.ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let head = format!(
        "POST {DEFAULT_PATH} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"apiVersi"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
