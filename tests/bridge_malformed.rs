//! Malformed client input gets the documented HTTP status and JSON-RPC error, and the bridge
//! keeps serving. The cases are data: `tests/bridge/malformed.json`.

#[path = "bridge/common.rs"]
mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const BODY_LIMIT: usize = 64 * 1024;

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_the_documented_status_and_error() {
    let limit = BODY_LIMIT.to_string();
    let bridge = Bridge::start(&["--max-body-bytes", &limit], &everything());
    let client = http();
    let sid = open_session(&client, &bridge.url("/mcp")).await;
    // Rows with `"front": "sse"` are POSTed to this legacy session's own message endpoint.
    let sse = SseSession::open(&client, &bridge.url("")).await;
    let port = bridge.port.to_string();
    let fill = |s: &str| s.replace("{port}", &port);
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/bridge/malformed.json")).unwrap(),
    )
    .unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let url = match (case["front"].as_str(), case["path"].as_str()) {
            (Some("sse"), _) => sse.endpoint.clone(),
            (_, path) => bridge.url(path.unwrap_or("/mcp")),
        };
        let method = case["method"].as_str().unwrap_or("POST");
        let body: Vec<u8> = if let Some(n) = case["body_repeat"].as_u64() {
            let pad = "x".repeat(n as usize);
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": pad}})
                .to_string()
                .into_bytes()
        } else if let Some(h) = case["body_hex"].as_str() {
            hex_decode(h)
        } else {
            case["body"]
                .as_str()
                .unwrap_or(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .as_bytes()
                .to_vec()
        };
        let mut req = client.request(method.parse().unwrap(), url).header(
            "accept",
            case["accept"]
                .as_str()
                .unwrap_or("application/json, text/event-stream"),
        );
        if method == "POST" {
            // `"content_type": null` sends none.
            match case.get("content_type") {
                None => req = req.header("content-type", "application/json"),
                Some(Value::String(ct)) => req = req.header("content-type", ct),
                Some(_) => {}
            }
            req = if case["chunked"] == true {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    body.chunks(4096).map(|c| Ok(c.to_vec())).collect();
                req.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            } else {
                req.body(body)
            };
        }
        match case.get("session") {
            None => req = req.header("mcp-session-id", &sid),
            Some(Value::String(s)) => req = req.header("mcp-session-id", s),
            Some(_) => {}
        }
        if let Some(o) = case["origin"].as_str() {
            req = req.header("origin", fill(o));
        }
        if let Some(h) = case["host"].as_str() {
            req = req.header("host", fill(h));
        }
        if let Some(v) = case["protocol_version"].as_str() {
            req = req.header("mcp-protocol-version", v);
        }
        // A row the bridge leaves unanswered is a failure of that row, not of the runner.
        let resp = match req.timeout(Duration::from_secs(10)).send().await {
            Ok(resp) => resp,
            Err(e) => {
                failures.push(format!("{name}: no answer ({e})"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != case["status"].as_u64().unwrap() as u16
            || reply["error"]["code"] != case["code"]
            || reply["jsonrpc"] != "2.0"
            || case.get("id").is_some_and(|id| reply["id"] != *id)
        {
            failures.push(format!("{name}: got {status} {text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "cases that failed:\n{}",
        failures.join("\n")
    );

    // The bridge still serves the same session, and new ones.
    let (status, reply) = post(
        &client,
        &bridge.url("/mcp"),
        &sid,
        &echo_call(json!(9), "still here"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["result"]["content"][0]["text"], "Echo: still here");
    let _ = open_session(&client, &bridge.url("/mcp")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_gets_504_after_the_request_timeout() {
    let bridge = Bridge::start(&["--request-timeout", "1"], &everything());
    let client = http();
    let sid = open_session(&client, &bridge.url("/mcp")).await;
    let slow = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                      "params": {"name": "trigger-long-running-operation",
                                 "arguments": {"duration": 3, "steps": 1}}});
    let (status, reply) = post(&client, &bridge.url("/mcp"), &sid, &slow).await;
    assert_eq!(status, 504);
    assert_eq!(reply["id"], 5);
    assert_eq!(reply["error"]["code"], -32603);
    // The late reply is dropped, not delivered to anyone; the session keeps working.
    let (status, reply) = post(
        &client,
        &bridge.url("/mcp"),
        &sid,
        &echo_call(json!(6), "after"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["id"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_sessions_are_gone_and_notifications_get_202() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"});
    let resp = client
        .post(&url)
        .header("mcp-session-id", &sid)
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = client
        .delete(&url)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, reply) = post(&client, &url, &sid, &echo_call(json!(1), "x")).await;
    assert_eq!(status, 404);
    assert_eq!(reply["error"]["code"], -32001);
}

/// Sends raw bytes on a new connection to the bridge.
fn raw_connection(port: u16, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // At the connection cap the bridge may close this connection before the bytes are out (a
    // reset on a loaded machine): that is a closed connection, which the callers check for.
    let _ = s.write_all(bytes);
    s
}

/// Whether the bridge closed the connection (EOF or reset) within `within`.
fn closed_by_bridge(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Issue 17 (slowloris): connections that send half a request line are closed after the
/// header-read timeout; at `maxConnections` the oldest of them make room, so `/health` is
/// answered at once while hundreds hang; a kept-alive connection that goes quiet is closed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_cannot_hold_the_bridge() {
    let (_dir, config) = config_file(r#"{"maxConnections": 64, "headerReadTimeoutSeconds": 2}"#);
    let bridge = Bridge::start(&["--config", &config], &everything());
    let port = bridge.port;
    let started = std::time::Instant::now();
    let mut hanging: Vec<std::net::TcpStream> = (0..300)
        .map(|_| raw_connection(port, b"POST /mcp HTT"))
        .collect();
    let client = http();
    let health = tokio::time::timeout(
        Duration::from_secs(2),
        client.get(bridge.url("/health")).send(),
    )
    .await
    .expect("/health answered while 300 connections hang")
    .unwrap();
    assert_eq!(health.status(), 200);
    // A used connection left quiet between requests.
    let mut quiet = raw_connection(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut all_closed = true;
    for s in hanging.iter_mut().chain(std::iter::once(&mut quiet)) {
        let left = Duration::from_secs(8).saturating_sub(started.elapsed());
        all_closed &= closed_by_bridge(s, left.max(Duration::from_millis(1)));
    }
    assert!(
        all_closed,
        "the bridge closed every connection that sent no complete header in time"
    );
    // A fresh client: the bridge has (rightly) closed the pooled connection /health used, and
    // reusing it races with that close.
    let evicted = metric(
        &http(),
        &bridge.url("/metrics"),
        r#"mcp_bridge_connections_shed_total{reason="evicted"}"#,
    )
    .await;
    assert!(evicted >= 236.0, "evicted {evicted}");
}

/// Issue 17: bodies being read count against one shared byte budget: with two nearly complete
/// large bodies held open, a third is refused with 503 on both fronts, and the budget comes back
/// when they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_share_one_byte_budget_on_both_fronts() {
    use std::io::{Read, Write};
    let (_dir, config) =
        config_file(r#"{"maxBodyBytes": 1000000, "maxBodyBytesInFlight": 2000000}"#);
    let bridge = Bridge::start(&["--config", &config], &everything());
    let client = http();
    let legacy = SseSession::open(&client, &bridge.url("")).await;
    let messages_path = legacy
        .endpoint
        .trim_start_matches(&bridge.url(""))
        .to_owned();
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 950000\r\n\r\n"
        )
    };
    let part = vec![b' '; 900_000];
    let hold = |path: &str| {
        let mut s = raw_connection(bridge.port, head(path).as_bytes());
        s.write_all(&part).unwrap();
        s
    };
    let held = vec![hold("/mcp"), hold("/mcp")];
    let metrics_url = bridge.url("/metrics");
    let in_flight = "mcp_bridge_body_bytes_in_flight";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&client, &metrics_url, in_flight).await < 1_800_000.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the held bodies were not read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in ["/mcp", messages_path.as_str()] {
        let mut s = hold(path);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = vec![0u8; 4096];
        let n = s.read(&mut answer).unwrap_or(0);
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 503"), "{path}: {answer}");
        assert!(answer.contains("-32000"), "{path}: {answer}");
    }
    drop(held);
    while metric(&client, &metrics_url, in_flight).await > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the budget was not given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = hold("/mcp");
    s.write_all(&vec![b' '; 50_000]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]);
    // A whole body of spaces: not JSON, but read in full once the budget was given back.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let refused = metric(
        &client,
        &bridge.url("/metrics"),
        "mcp_bridge_bodies_refused_total",
    )
    .await;
    assert_eq!(refused, 2.0);
}

/// Issue 17: one client cannot fill `maxSessions`: sessions opened and never used end within
/// `sessionHandshakeSeconds`, one address holds at most `maxSessionsPerClient` (both fronts
/// count), and the limit and refusals are in the metrics. Used sessions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_fill_the_sessions() {
    let (_dir, config) = config_file(
        r#"{"maxSessions": 50, "maxSessionsPerClient": 4, "sessionHandshakeSeconds": 1,
            "trustProxyHeaders": true}"#,
    );
    let bridge = Bridge::start(&["--config", &config], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let metrics_url = bridge.url("/metrics");
    let bare_initialize = || async {
        client
            .post(&url)
            .header("accept", "application/json")
            .json(&initialize_body(json!(1)))
            .send()
            .await
            .unwrap()
    };
    let used = open_session(&client, &url).await;
    let mut legacy = SseSession::open(&client, &bridge.url("")).await;
    assert_eq!(legacy.send(&client, &initialize_body(json!(0))).await, 202);
    assert!(legacy.next(Duration::from_secs(5)).await.is_some());
    for _ in 0..2 {
        assert_eq!(bare_initialize().await.status(), 200);
    }
    let refused = bare_initialize().await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32000, "{body}");
    let sse = client
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(
        sse.status(),
        503,
        "the legacy front counts toward the same cap"
    );
    assert_eq!(
        metric(
            &client,
            &metrics_url,
            r#"mcp_bridge_sessions_refused_total{reason="per_client"}"#
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(&client, &metrics_url, "mcp_bridge_sessions_limit").await,
        50.0
    );

    // The two bare sessions end; the used ones stay.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        metric(
            &client,
            &metrics_url,
            r#"mcp_bridge_sessions_expired_total{reason="handshake"}"#
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(&client, &metrics_url, "mcp_bridge_sessions").await,
        2.0
    );
    let (status, _) = post(&client, &url, &used, &echo_call(json!(2), "still")).await;
    assert_eq!(status, 200);
    assert_eq!(
        legacy.send(&client, &echo_call(json!(3), "still")).await,
        202
    );
    // A legacy stream that never POSTs ends too.
    let mut unused = client
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(unused.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(4), async {
        while let Ok(Some(_)) = unused.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "an unused legacy session's stream ends");
    assert_eq!(bare_initialize().await.status(), 200, "room again");
    // Behind a trusted proxy, each client is counted by the address the proxy forwarded.
    let forwarded = |n: usize| {
        client
            .post(&url)
            .header("accept", "application/json")
            .header("x-forwarded-for", format!("203.0.113.9, 10.0.0.{n}"))
            .json(&initialize_body(json!(1)))
            .send()
    };
    for _ in 0..4 {
        assert_eq!(forwarded(1).await.unwrap().status(), 200);
    }
    assert_eq!(forwarded(1).await.unwrap().status(), 503);
    assert_eq!(forwarded(2).await.unwrap().status(), 200);
}
