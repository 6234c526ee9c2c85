//! What the server sends on its own: list-changed notifications reach every session's GET
//! stream, resource updates reach only the subscribed session.

#[path = "bridge/common.rs"]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

async fn next_notification(
    rx: &mut UnboundedReceiver<Value>,
    method: &str,
    within: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        if msg["method"] == method {
            return Some(msg);
        }
    }
}

const SECONDS_5: Duration = Duration::from_secs(5);

fn call(id: i64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_goes_to_every_session_and_updates_only_to_subscribers() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let a = open_session(&client, &url).await;
    let b = open_session(&client, &url).await;
    let mut a_stream = open_get_stream(&client, &url, &a).await;
    let mut b_stream = open_get_stream(&client, &url, &b).await;

    // A new (session) resource on the server: both sessions hear that the list changed.
    let gzip = call(
        1,
        "gzip-file-as-resource",
        json!({"name": "hello.gz", "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resourceLink"}),
    );
    let (status, reply) = post(&client, &url, &a, &gzip).await;
    assert_eq!(status, 200, "{reply}");
    for stream in [&mut a_stream, &mut b_stream] {
        next_notification(stream, "notifications/resources/list_changed", SECONDS_5)
            .await
            .expect("resources/list_changed on every GET stream");
    }

    // A subscribes to a resource; the update goes to A only.
    let (_, listed) = post(
        &client,
        &url,
        &a,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
    )
    .await;
    let uri = listed["result"]["resources"][0]["uri"]
        .as_str()
        .expect("a resource")
        .to_owned();
    let subscribe =
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": uri}});
    let (status, reply) = post(&client, &url, &a, &subscribe).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = post(
        &client,
        &url,
        &a,
        &call(4, "toggle-subscriber-updates", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let update = next_notification(&mut a_stream, "notifications/resources/updated", SECONDS_5)
        .await
        .expect("the subscriber gets the update");
    assert_eq!(update["params"]["uri"], uri.as_str());
    assert!(
        // Both would have been sent in the same instant.
        next_notification(
            &mut b_stream,
            "notifications/resources/updated",
            Duration::from_millis(300)
        )
        .await
        .is_none(),
        "a session that did not subscribe got the update"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_streams_get_keep_alive_comments() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.json");
    std::fs::write(&config, r#"{"keepAliveSeconds": 1}"#).unwrap();
    let bridge = Bridge::start(&["--config", config.to_str().unwrap()], &time_server());
    let mut resp = http()
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !seen.contains(": ping\n\n") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("a keep-alive within 3 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.starts_with("event: endpoint\ndata: /messages?session_id="),
        "{seen}"
    );
}

/// Tool arguments and results may hold secrets: even at debug level the bridge logs the session
/// and the method, never the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_arguments_or_results() {
    const SECRET: &str = "hunter2-do-not-log";
    let bridge = Bridge::start_env(
        &[],
        &everything(),
        &[("RUST_LOG", "mcp_operator=debug".into())],
    );
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let (status, reply) = post(&client, &url, &sid, &echo_call(json!(1), SECRET)).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply["result"]["content"][0]["text"],
        format!("Echo: {SECRET}")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = bridge.log.lock().unwrap();
    assert!(
        log.iter().any(|l| l.contains("tools/call")),
        "the request was logged with its method"
    );
    let leaks: Vec<&String> = log.iter().filter(|l| l.contains(SECRET)).collect();
    assert!(leaks.is_empty(), "the log holds the payload: {leaks:?}");
}

/// What the fake server itself holds: `{"subscribed": [...], "subscribes": n, "unsubscribes": n}`.
async fn server_state(client: &reqwest::Client, url: &str, sid: &str) -> Value {
    let (status, reply) = post(client, url, sid, &call(99, "state", json!({}))).await;
    assert_eq!(status, 200, "{reply}");
    serde_json::from_str(reply["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

/// Issue 17: subscriptions are counted per URI over both fronts: the server hears the first
/// subscribe and the last unsubscribe only, and a session's end counts as its unsubscribe (one
/// session's unsubscribe used to end every session's updates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unsubscribe_does_not_end_the_others_updates() {
    let bridge = Bridge::start(&[], &fake_server());
    let client = http();
    let url = bridge.url("/mcp");
    let a = open_session(&client, &url).await;
    let b = open_session(&client, &url).await;
    let watcher = open_session(&client, &url).await;
    let mut c = SseSession::open(&client, &bridge.url("")).await;
    assert_eq!(c.send(&client, &initialize_body(json!(0))).await, 202);
    assert!(c.next(SECONDS_5).await.is_some());
    let uri = "test://static/resource/1";
    let sub = |id: i64| json!({"jsonrpc": "2.0", "id": id, "method": "resources/subscribe", "params": {"uri": uri}});
    let unsub = |id: i64| json!({"jsonrpc": "2.0", "id": id, "method": "resources/unsubscribe", "params": {"uri": uri}});

    for sid in [&a, &b] {
        let (status, reply) = post(&client, &url, sid, &sub(1)).await;
        assert_eq!((status, &reply["result"]), (200, &json!({})), "{reply}");
    }
    assert_eq!(c.send(&client, &sub(2)).await, 202);
    assert_eq!(
        c.next(SECONDS_5).await.expect("answer")["result"],
        json!({})
    );
    let state = server_state(&client, &url, &watcher).await;
    assert_eq!(state["subscribed"], json!([uri]));
    assert_eq!(
        state["subscribes"], 1,
        "only the first subscribe reaches the server"
    );

    // B leaves by unsubscribing, C (legacy) by unsubscribing twice: A still subscribes.
    let (status, reply) = post(&client, &url, &b, &unsub(3)).await;
    assert_eq!((status, &reply["result"]), (200, &json!({})), "{reply}");
    for id in [4, 5] {
        assert_eq!(c.send(&client, &unsub(id)).await, 202);
        assert_eq!(
            c.next(SECONDS_5).await.expect("answer")["result"],
            json!({})
        );
    }
    let state = server_state(&client, &url, &watcher).await;
    assert_eq!(
        state["subscribed"],
        json!([uri]),
        "A's updates go on: {state}"
    );
    assert_eq!(state["unsubscribes"], 0);

    // A's session ends: that is the last unsubscribe.
    let resp = client
        .delete(&url)
        .header("mcp-session-id", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = server_state(&client, &url, &watcher).await;
    assert_eq!(state["subscribed"], json!([]), "{state}");
    assert_eq!(state["unsubscribes"], 1);
}

/// Issue 17: a client that does not read its stream cannot make the bridge hold more than
/// `maxStreamQueueBytes` for it: the rest is dropped, logged and counted, on the streamable
/// GET stream and on the legacy stream alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_streams_are_bounded_by_bytes_and_overflow_is_counted() {
    let (_dir, config) = config_file(r#"{"maxStreamQueueBytes": 65536}"#);
    let bridge = Bridge::start(&["--config", &config], &fake_server());
    let client = http();
    let url = bridge.url("/mcp");
    let idle = open_session(&client, &url).await;
    // Opened and never read again.
    let _unread_get = client
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &idle)
        .send()
        .await
        .unwrap();
    let _unread_sse = client
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let caller = open_session(&client, &url).await;
    // 40 MB of list_changed notifications: far more than socket buffers and the queue bound,
    // yet fewer messages than the queue's count bound.
    let flood = call(1, "flood", json!({"count": 200, "bytes": 200_000}));
    let (status, reply) = post(&client, &url, &caller, &flood).await;
    assert_eq!(status, 200, "{reply}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dropped = metric(
        &client,
        &bridge.url("/metrics"),
        "mcp_bridge_stream_messages_dropped_total",
    )
    .await;
    assert!(dropped > 0.0, "nothing was dropped");
    let warnings = bridge
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("queue is full"))
        .count();
    assert_eq!(warnings, 2, "one log line per overflowing stream");
}
