//! The bridge as PID 1 of the MCP container: readiness, signals, and the server dying.

#[path = "bridge/common.rs"]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn long_call(id: serde_json::Value) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "trigger-long-running-operation",
                      "arguments": {"duration": 20, "steps": 2}}})
}

fn kill(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_answers_in_flight_requests_and_exits_non_zero_within_a_second() {
    let mut bridge = Bridge::start(&[], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let mut sse = SseSession::open(&client, &bridge.url("")).await;
    assert_eq!(sse.send(&client, &initialize_body(json!(0))).await, 202);
    assert!(sse.next(Duration::from_secs(5)).await.is_some());

    // Two requests in flight, one per front, that the server would take 20 s to answer.
    let in_flight = {
        let (client, url, sid) = (client.clone(), url.clone(), sid.clone());
        tokio::spawn(async move { post(&client, &url, &sid, &long_call(json!("slow"))).await })
    };
    assert_eq!(sse.send(&client, &long_call(json!(7))).await, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let server = children_of(bridge.child.id());
    assert_eq!(server.len(), 1, "the bridge has one child, the server");
    let killed = Instant::now();
    kill(server[0], "KILL");

    let (status, reply) = tokio::time::timeout(Duration::from_secs(1), in_flight)
        .await
        .expect("the in-flight request was answered within a second")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(reply["id"], "slow");
    assert_eq!(reply["error"]["code"], -32603, "{reply}");
    let sse_reply = loop {
        let msg = sse
            .next(Duration::from_secs(1))
            .await
            .expect("an SSE answer");
        if msg.get("id").is_some() {
            break msg;
        }
    };
    assert_eq!(sse_reply["id"], 7);
    assert_eq!(sse_reply["error"]["code"], -32603);

    let exit = bridge
        .wait_exit(Duration::from_secs(1).saturating_sub(killed.elapsed()))
        .expect("the bridge exited within a second of the server");
    assert!(!exit.success(), "{exit:?}");
    assert_eq!(
        exit.code(),
        Some(128 + 9),
        "the server's status: killed by SIGKILL"
    );
}

#[test]
fn sigterm_is_forwarded_to_the_server_and_its_status_returned() {
    let mut bridge = Bridge::start(&[], &time_server());
    let server = children_of(bridge.child.id());
    assert_eq!(server.len(), 1);
    bridge.signal("TERM");
    let exit = bridge
        .wait_exit(Duration::from_secs(5))
        .expect("the bridge exits after its server");
    // The Python server dies of the forwarded SIGTERM; the bridge reports it as a shell would.
    assert_eq!(exit.code(), Some(128 + 15), "{exit:?}");
    assert!(
        exit.signal().is_none(),
        "the bridge itself exited, it was not killed"
    );
    assert!(!std::path::Path::new(&format!("/proc/{}", server[0])).exists());
}

#[test]
fn the_server_dies_with_a_killed_bridge() {
    let mut bridge = Bridge::start(&[], &everything());
    let server = children_of(bridge.child.id());
    assert_eq!(server.len(), 1);
    bridge.child.kill().unwrap();
    bridge.child.wait().unwrap();
    let gone = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{}/cmdline", server[0])).exists()
        && std::fs::read(format!("/proc/{}/cmdline", server[0])).is_ok_and(|c| !c.is_empty())
    {
        assert!(Instant::now() < gone, "the server outlived the bridge");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server that ends before the handshake: its exit status is the bridge's; one that only
/// closes its stdout (and would sleep on) is killed and the bridge exits 1 (issue 17).
#[test]
fn a_server_that_exits_at_once_makes_the_bridge_exit_with_its_code() {
    for (script, code) in [("exit 3", 3), ("exec >&-; exec sleep 30", 1)] {
        let mut bridge = Bridge::spawn(&[], &["sh".into(), "-c".into(), script.into()]);
        let exit = bridge.wait_exit(Duration::from_secs(5)).expect(script);
        assert_eq!(exit.code(), Some(code), "{script}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let health = client.get(bridge.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(bridge.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let sid = open_session(&client, &bridge.url("/mcp")).await;
    let (status, _) = post(
        &client,
        &bridge.url("/mcp"),
        &sid,
        &echo_call(json!(1), "m"),
    )
    .await;
    assert_eq!(status, 200);
    let metrics = client
        .get(bridge.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"mcp_bridge_requests_total{method="tools/call",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("mcp_bridge_sessions 1"), "{metrics}");
    assert!(metrics.contains("mcp_bridge_server_up 1"), "{metrics}");
    // The arguments never reach the logs or metrics.
    assert!(!metrics.contains("\"m\""));
}

/// A server that never finishes the handshake keeps the bridge unready; it does not serve
/// clients half-initialized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_server_is_initialized() {
    let bridge = Bridge::spawn(&[], &["sleep".into(), "30".into()]);
    let client = http();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = client.get(bridge.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let health = client.get(bridge.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

fn fake_call(id: serde_json::Value, tool: &str, arguments: serde_json::Value) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

/// Issue 17: a server that closes its stdout but keeps running is the server's end: the
/// requests waiting on both fronts are answered, the server is killed and the bridge exits
/// non-zero (it used to answer 503 forever with `/health` 200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_stdout_is_killed_and_the_bridge_exits_non_zero() {
    let mut bridge = Bridge::start(&[], &fake_server());
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let mut sse = SseSession::open(&client, &bridge.url("")).await;
    assert_eq!(sse.send(&client, &initialize_body(json!(0))).await, 202);
    assert!(sse.next(Duration::from_secs(5)).await.is_some());
    let server = children_of(bridge.child.id());
    assert_eq!(server.len(), 1);

    let waiting = {
        let (client, url, sid) = (client.clone(), url.clone(), sid.clone());
        tokio::spawn(async move {
            post(
                &client,
                &url,
                &sid,
                &fake_call(json!("w"), "hang", json!({})),
            )
            .await
        })
    };
    assert_eq!(
        sse.send(&client, &fake_call(json!(7), "hang", json!({})))
            .await,
        202
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closed = Instant::now();
    let (status, reply) = post(
        &client,
        &url,
        &sid,
        &fake_call(json!("c"), "close-stdout", json!({})),
    )
    .await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (200, &json!(-32603)),
        "{reply}"
    );

    let (status, reply) = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the waiting request was answered")
        .unwrap();
    assert_eq!((status, &reply["id"]), (200, &json!("w")));
    assert_eq!(reply["error"]["code"], -32603, "{reply}");
    let sse_reply = sse
        .next(Duration::from_secs(2))
        .await
        .expect("an SSE answer");
    assert_eq!(sse_reply["id"], 7);
    assert_eq!(sse_reply["error"]["code"], -32603);

    let exit = bridge
        .wait_exit(Duration::from_secs(5))
        .expect("the bridge exits when its server's stdout closes");
    assert_eq!(exit.code(), Some(1), "{exit:?}");
    assert!(closed.elapsed() < Duration::from_secs(5));
    assert!(
        !std::path::Path::new(&format!("/proc/{}", server[0])).exists(),
        "the half-dead server was killed and reaped"
    );
}

/// Issue 17: a reply longer than `maxLineBytes` is answered at once with an error (it used to
/// be dropped and its client got a 504 after the request timeout), whether the server writes
/// its `id` first or last, on both fronts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_reply_is_answered_at_once_on_both_fronts() {
    let (_dir, config) = config_file(r#"{"maxLineBytes": 65536}"#);
    let bridge = Bridge::start(&["--config", &config], &fake_server());
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let mut sse = SseSession::open(&client, &bridge.url("")).await;
    assert_eq!(sse.send(&client, &initialize_body(json!(0))).await, 202);
    assert!(sse.next(Duration::from_secs(5)).await.is_some());
    for id_last in [true, false] {
        let big = fake_call(
            json!(1),
            "big",
            json!({"bytes": 200_000, "idLast": id_last}),
        );
        let (status, reply) =
            tokio::time::timeout(Duration::from_secs(5), post(&client, &url, &sid, &big))
                .await
                .expect("answered at once, not after the request timeout");
        assert_eq!(status, 200);
        assert_eq!(
            (&reply["id"], &reply["error"]["code"]),
            (&json!(1), &json!(-32603)),
            "{reply}"
        );
        assert_eq!(sse.send(&client, &big).await, 202);
        let reply = sse
            .next(Duration::from_secs(5))
            .await
            .expect("answered at once on the stream");
        assert_eq!(
            (&reply["id"], &reply["error"]["code"]),
            (&json!(1), &json!(-32603)),
            "{reply}"
        );
    }
    // A reply under the limit still goes through whole.
    let small = fake_call(json!(2), "big", json!({"bytes": 1000, "idLast": true}));
    let (status, reply) = post(&client, &url, &sid, &small).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply["result"]["content"][0]["text"].as_str().map(str::len),
        Some(1000)
    );
}
