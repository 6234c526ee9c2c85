//! `mcp-operator vmcp` against real MCP servers: server-everything and mcp-server-time each
//! behind `mcp-operator bridge` (stdio), and server-everything serving streamable HTTP itself
//! (the directly reached backend an MCPServerEntry stands for). A real client (the Python
//! SDK) lists and calls through the aggregator under each conflict strategy (the cases in
//! tests/vmcp/cases/); a backend killed and restarted; bad configs; the address guard.

#[path = "bridge/common.rs"]
mod common;
#[path = "bridge/issuer.rs"]
mod issuer;
#[path = "vmcp/common.rs"]
mod vmcp_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vmcp_common::*;

/// The three backends of the group.
struct Group {
    entry: (Proc, u16),
    everything: Bridge,
    time: Bridge,
}

impl Group {
    fn start() -> Group {
        let port = free_port();
        let cmd = everything_http("streamableHttp");
        let child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("PORT", port.to_string())
            .env("BACKEND_ID", "entry-native")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything streamableHttp");
        let entry = (Proc(child), port);
        wait_port(port);
        let everything = Bridge::start_env(
            &[],
            &everything(),
            &[("BACKEND_ID", "everything-bridged".into())],
        );
        let time = Bridge::start(&[], &time_server());
        Group {
            entry,
            everything,
            time,
        }
    }

    /// The `backends` of the rendered config, sorted by name as the reconciler renders them.
    fn backends(&self) -> Value {
        json!([
            {"name": "entry", "kind": "MCPServerEntry",
             "url": format!("http://127.0.0.1:{}/mcp", self.entry.1)},
            {"name": "everything", "kind": "MCPServer", "url": self.everything.url("/mcp")},
            {"name": "time", "kind": "MCPServer", "url": self.time.url("/mcp")},
        ])
    }
}

#[test]
fn a_real_client_sees_each_strategy() {
    let group = Group::start();
    let dir = repo().join("tests/vmcp/cases");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/vmcp/cases")
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "the strategy cases are there");
    for case in cases {
        run_case(&group, &case);
    }
}

fn run_case(group: &Group, path: &Path) {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let config = json!({
        "name": "team-tools",
        "backends": group.backends(),
        "aggregation": case["aggregation"],
        "operational": {"aggregateDeadlineMs": 10000},
    });
    let (server, _dir) = vmcp(&config, false);
    let calls: Vec<Value> = case["calls"].as_array().unwrap().clone();
    let requested: Vec<Value> = calls
        .iter()
        .map(|c| json!({"tool": c["tool"], "args": c["args"]}))
        .collect();
    let out = vmcp_client(&server.url("/mcp"), &Value::from(requested));
    assert_eq!(out["server"], "team-tools", "{name}: {out}");
    assert_eq!(out["tools"], case["tools"], "{name}: {}", case["why"]);
    for (i, want) in calls.iter().enumerate() {
        let got = &out["calls"][i];
        if let Some(code) = want.get("error") {
            assert_eq!(&got["code"], code, "{name}: call {i}: {got}");
            continue;
        }
        assert_eq!(
            got["ok"], true,
            "{name}: call {i} ({}): {got}",
            want["tool"]
        );
        let text = got["text"].as_str().unwrap_or_default();
        let needle = want["contains"].as_str().unwrap();
        assert!(
            text.contains(needle),
            "{name}: call {i}: {needle:?} not in {text:.300}"
        );
        if let Some(n) = want.get("progress") {
            assert_eq!(&got["progress"], n, "{name}: progress of call {i}");
        }
    }
    // Resources, templates and prompts of both server-everything instances, merged: the
    // first backend to offer a URI or name keeps it.
    assert_eq!(
        out["resources"].as_array().unwrap().len(),
        7,
        "{name}: {out}"
    );
    assert_eq!(
        out["templates"].as_array().unwrap().len(),
        2,
        "{name}: {out}"
    );
    assert!(out["read"].as_str().is_some(), "{name}: {out}");
    assert_eq!(out["prompts"].as_array().unwrap().len(), 4, "{name}: {out}");
    assert_eq!(out["prompt_messages"], 1, "{name}: {out}");
    assert_eq!(
        out["prompt_completion"],
        json!(["Engineering"]),
        "{name}: {out}"
    );
    let ids = out["template_completion"].as_array();
    assert!(ids.is_some_and(|v| !v.is_empty()), "{name}: {out}");
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP, for what the SDK hides (deadlines, the GET stream, /status)
// ---------------------------------------------------------------------------------------------

async fn status(client: &reqwest::Client, server: &Bridge) -> Value {
    client
        .get(server.url("/status"))
        .send()
        .await
        .expect("GET /status")
        .json()
        .await
        .expect("a JSON status")
}

fn backend<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

async fn wait_status(
    client: &reqwest::Client,
    server: &Bridge,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = status(client, server).await;
        if ok(&report) {
            return report;
        }
        assert!(Instant::now() < deadline, "{what}: {report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn tool_names(client: &reqwest::Client, url: &str, sid: &str) -> Vec<String> {
    let (code, answer) = post(
        client,
        url,
        sid,
        &json!({"jsonrpc": "2.0", "id": "l", "method": "tools/list"}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let mut names: Vec<String> = answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools in {answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_does_not_take_the_endpoint_down() {
    let mut group = Group::start();
    let time_port = group.time.port;
    let config = json!({
        "name": "team-tools",
        "backends": group.backends(),
        "aggregation": {"conflictResolution": "prefix", "prefixOnlyConflicts": true},
        "operational": {
            "aggregateDeadlineMs": 3000, "defaultTimeoutMs": 2000,
            "healthCheckIntervalMs": 300, "healthCheckTimeoutMs": 1000,
            "unhealthyThreshold": 1, "circuitFailureThreshold": 2, "circuitOpenMs": 1000,
        },
    });
    let (server, _dir) = vmcp(&config, false);
    let client = http();
    let url = server.url("/mcp");
    wait_status(&client, &server, "all ready", |r| {
        r["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "ready")
    })
    .await;
    let report = status(&client, &server).await;
    assert_eq!(report["configHash"].as_str().unwrap().len(), 64, "{report}");
    assert_eq!(backend(&report, "time")["toolCount"], 2, "{report}");
    assert_eq!(
        backend(&report, "entry")["mcpRevision"],
        "2025-06-18",
        "{report}"
    );

    let sid = open_session(&client, &url).await;
    let mut stream = open_get_stream(&client, &url, &sid).await;
    let before = tool_names(&client, &url, &sid).await;
    assert!(
        before.contains(&"get_current_time".to_string()),
        "{before:?}"
    );

    // Killed: the bridge and its server go away.
    group.time.child.kill().unwrap();
    group.time.child.wait().unwrap();
    let report = wait_status(&client, &server, "time unavailable, circuit open", |r| {
        let t = backend(r, "time");
        t["status"] == "unavailable" && t["circuitBreakerState"] == "open"
    })
    .await;
    let time = backend(&report, "time");
    let message = time["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("onnect") || message.contains("refused"),
        "the error says why: {time}"
    );
    assert_eq!(backend(&report, "entry")["status"], "ready", "{report}");

    // A new client: initialize and tools/list answer in time, with the others' tools.
    let started = Instant::now();
    let sid2 = open_session(&client, &url).await;
    let during = tool_names(&client, &url, &sid2).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!during.iter().any(|t| t.contains("time")), "{during:?}");
    assert!(
        during.contains(&"everything_echo".to_string()),
        "{during:?}"
    );
    // A call of the dead backend's tool fails fast, naming it.
    let (_, answer) = post(
        &client,
        &url,
        &sid,
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                "params": {"name": "get_current_time", "arguments": {"timezone": "UTC"}}}),
    )
    .await;
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("backend time: "),
        "fails naming the backend: {answer}"
    );

    // Drain what the stream said so far (the going-down notice), then bring it back.
    while tokio::time::timeout(Duration::from_millis(200), stream.recv())
        .await
        .is_ok()
    {}
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-operator"));
    cmd.args([
        "bridge",
        "--listen",
        &format!("127.0.0.1:{time_port}"),
        "--",
    ])
    .args(time_server());
    let restarted = Bridge::launch(cmd);
    restarted.wait_ready(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    let note = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.recv()).await {
            Ok(Some(msg)) if msg["method"] == "notifications/tools/list_changed" => break msg,
            Ok(Some(_)) => continue,
            _ => panic!("no notifications/tools/list_changed after the backend came back"),
        }
    };
    assert!(note.get("id").is_none(), "{note}");
    wait_status(&client, &server, "time ready again", |r| {
        let t = backend(r, "time");
        t["status"] == "ready" && t["circuitBreakerState"] == "closed"
    })
    .await;
    let after = tool_names(&client, &url, &sid).await;
    assert_eq!(after, before, "its tools are back");
    let (_, answer) = post(
        &client,
        &url,
        &sid,
        &json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
                "params": {"name": "get_current_time", "arguments": {"timezone": "UTC"}}}),
    )
    .await;
    assert_eq!(answer["id"], 10, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("UTC")),
        "the old client session reaches the new server: {answer}"
    );
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failure_mode_fail_refuses_while_a_backend_is_down() {
    let group = Group::start();
    let mut backends = group.backends();
    backends[2]["url"] = json!(format!("http://127.0.0.1:{}/mcp", free_port()));
    for (mode, refused) in [("fail", true), ("best_effort", false)] {
        let config = json!({
            "name": "v", "backends": backends,
            "operational": {"partialFailureMode": mode, "aggregateDeadlineMs": 3000},
        });
        let (server, _dir) = vmcp(&config, false);
        let client = http();
        let resp = client
            .post(server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_body(json!(1)))
            .send()
            .await
            .unwrap();
        let answer: Value = resp.json().await.unwrap();
        if refused {
            let message = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("time:"), "names the backend: {answer}");
        } else {
            assert_eq!(answer["result"]["serverInfo"]["name"], "v", "{answer}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_backends_are_refused_without_the_insecure_flag() {
    let group = Group::start();
    let mut backends = group.backends();
    // A name that resolves to loopback, and a literal.
    backends[1]["url"] = json!(format!("http://localhost:{}/mcp", group.everything.port));
    let config = json!({
        "name": "v", "backends": backends,
        "operational": {"healthCheckIntervalMs": 200, "unhealthyThreshold": 1},
    });
    let (server, _dir) = vmcp(&config, true);
    let client = http();
    let report = wait_status(&client, &server, "all refused", |r| {
        r["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "unavailable")
    })
    .await;
    for b in report["backends"].as_array().unwrap() {
        let message = b["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("loopback") && message.contains("address guard"),
            "{b}"
        );
    }
    // The endpoint itself still answers, with nothing behind it.
    let url = server.url("/mcp");
    let sid = open_session(&client, &url).await;
    assert!(tool_names(&client, &url, &sid).await.is_empty());
}

#[test]
fn a_bad_config_is_a_clear_start_up_error() {
    let cases = [
        (
            json!({"name": "v", "backends": [], "extra": 1}),
            "unknown field `extra`",
        ),
        (
            json!({"name": "v", "backends": [{"name": "a", "url": "ftp://x"}]}),
            "backends[0].url",
        ),
        (
            json!({"name": "v", "backends": [{"name": "a", "url": "http://x/", "bearerTokenEnv": "VMCP_TEST_UNSET"}]}),
            "VMCP_TEST_UNSET is not set",
        ),
        (
            json!({"name": "v", "backends": [{"name": "a", "url": "http://x/"}],
                   "aggregation": {"conflictResolution": "priority", "priorityOrder": ["b"]}}),
            "aggregation.priorityOrder[0]",
        ),
        (
            json!({"name": "v", "backends": [], "operational": {"unhealthyThreshold": "3"}}),
            "operational.unhealthyThreshold",
        ),
    ];
    for (config, want) in cases {
        let (_dir, path) = config_file(&config.to_string());
        let out = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
            .args(["vmcp", "--config", &path, "--listen", "127.0.0.1:0"])
            .env_remove("VMCP_TEST_UNSET")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{config}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{want:?} in {stderr}");
    }
}

/// A backend whose tool set changes at run time (tests/vmcp/growing_server.py): its own
/// `notifications/tools/list_changed` reaches connected clients, and the new tool is listed
/// and callable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backends_own_list_changed_reaches_connected_clients() {
    let script = repo().join("tests/vmcp/growing_server.py");
    let growing = Bridge::start(&[], &[python(), script.to_string_lossy().into_owned()]);
    let config = json!({
        "name": "v",
        "backends": [{"name": "growing", "url": growing.url("/mcp")}],
        "aggregation": {"prefixOnlyConflicts": true},
    });
    let (server, _dir) = vmcp(&config, false);
    let client = http();
    let url = server.url("/mcp");
    let sid = open_session(&client, &url).await;
    let mut stream = open_get_stream(&client, &url, &sid).await;
    assert_eq!(
        tool_names(&client, &url, &sid).await,
        vec!["grow".to_string()]
    );
    // Give the runtime's own stream with the backend a moment to open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, answer) = post(
        &client,
        &url,
        &sid,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "grow", "arguments": {"name": "sprout"}}}),
    )
    .await;
    assert_eq!(
        answer["result"]["content"][0]["text"], "grew sprout",
        "{answer}"
    );
    let note = tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .expect("a notification in time")
        .expect("the stream is open");
    assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
    assert_eq!(
        tool_names(&client, &url, &sid).await,
        vec!["grow".to_string(), "sprout".to_string()]
    );
    let (_, answer) = post(
        &client,
        &url,
        &sid,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "sprout", "arguments": {}}}),
    )
    .await;
    assert_eq!(answer["result"]["content"][0]["text"], "sprout", "{answer}");
}

/// A backend on the legacy HTTP+SSE transport (server-everything `sse`), next to a streamable
/// one: listed, called, its progress streamed through by token.
#[test]
fn an_sse_backend_is_aggregated_too() {
    let port = free_port();
    let cmd = everything_http("sse");
    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server-everything sse");
    let _legacy = Proc(child);
    wait_port(port);
    let time = Bridge::start(&[], &time_server());
    let config = json!({
        "name": "v",
        "backends": [
            {"name": "legacy", "url": format!("http://127.0.0.1:{port}/sse"), "transport": "sse"},
            {"name": "time", "url": time.url("/mcp")},
        ],
        "aggregation": {"prefixOnlyConflicts": true},
    });
    let (server, _dir) = vmcp(&config, false);
    let calls = json!([
        {"tool": "echo", "args": {"message": "over sse"}},
        {"tool": "trigger-long-running-operation", "args": {"duration": 0.3, "steps": 3}},
        {"tool": "get_current_time", "args": {"timezone": "UTC"}},
    ]);
    let out = vmcp_client(&server.url("/mcp"), &calls);
    let tools = out["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 15, "{out}");
    assert_eq!(out["calls"][0]["text"], "Echo: over sse", "{out}");
    assert_eq!(out["calls"][1]["progress"], 3, "{out}");
    assert!(
        out["calls"][2]["text"].as_str().unwrap().contains("UTC"),
        "{out}"
    );
    assert_eq!(out["resources"].as_array().unwrap().len(), 7, "{out}");
    assert_eq!(out["prompt_messages"], 1, "{out}");
}

/// `auth.oidc`: the bridge's token check guards `/mcp` (a real issuer on loopback, tokens
/// minted by PyJWT); `/health` and `/status` stay open for probes and the reconciler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_tokens_are_checked() {
    let issuer = issuer::Issuer::start();
    let time = Bridge::start(&[], &time_server());
    let config = json!({
        "name": "v",
        "backends": [{"name": "time", "url": time.url("/mcp")}],
        "auth": {"oidc": {"issuer": issuer.url, "audience": "mcp-test", "allowPrivateIp": true}},
    });
    let (server, _dir) = vmcp(&config, false);
    let url = server.url("/mcp");
    let anonymous = http();
    let resp = anonymous
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body(json!(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        anonymous
            .get(server.url("/status"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let token = issuer
        .token(&json!({"claims": {"sub": "alice", "exp_in": 600}}))
        .await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let sid = open_session(&client, &url).await;
    assert_eq!(
        tool_names(&client, &url, &sid).await,
        vec![
            "time_convert_time".to_string(),
            "time_get_current_time".to_string()
        ]
    );

    // A session belongs to whoever opened it: bob, with a valid token of his own and alice's
    // session id, is told it does not exist (list, GET stream, DELETE), and alice keeps it.
    let bob = issuer
        .token(&json!({"claims": {"sub": "bob", "exp_in": 600}}))
        .await;
    let as_bob = |req: reqwest::RequestBuilder| {
        req.header("authorization", format!("Bearer {bob}"))
            .header("mcp-session-id", &sid)
            .header("accept", "application/json, text/event-stream")
    };
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    let resp = as_bob(anonymous.post(&url))
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "{}", resp.text().await.unwrap());
    let resp = as_bob(anonymous.get(&url)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = as_bob(anonymous.delete(&url)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(tool_names(&client, &url, &sid).await.len(), 2);
}

/// Cedar policies decide on the names clients see after aggregation (`time_get_current_time`,
/// not the backend's `get_current_time`): a `dev` caller lists and calls only what a policy
/// allows, another caller sees nothing and is refused; each decision is one audit line on
/// stdout, without the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cedar_policies_and_audit_apply_to_the_merged_names() {
    let issuer = issuer::Issuer::start();
    let time = Bridge::start(&[], &time_server());
    let config = json!({
        "name": "v",
        "backends": [{"name": "time", "url": time.url("/mcp")}],
        "auth": {
            "oidc": {"issuer": issuer.url, "audience": "mcp-test", "allowPrivateIp": true},
            "authz": {
                "serverName": "v",
                "policies": [
                    "permit(principal, action == Action::\"call_tool\", resource == Tool::\"time_get_current_time\") when { principal.claim_groups.contains(\"dev\") };"
                ]
            },
            "audit": {"enabled": true}
        },
    });
    let (server, _dir) = vmcp(&config, false);
    let url = server.url("/mcp");
    let as_caller = |token: String| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let alice_token = issuer
        .token(&json!({"claims": {"sub": "alice", "groups": ["dev"], "exp_in": 600}}))
        .await;
    let bob_token = issuer
        .token(&json!({"claims": {"sub": "bob", "groups": ["ops"], "exp_in": 600}}))
        .await;
    let call = |id: i64, name: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": name, "arguments": {"timezone": "UTC"}}})
    };
    let alice = as_caller(alice_token.clone());
    let sid = open_session(&alice, &url).await;
    assert_eq!(
        tool_names(&alice, &url, &sid).await,
        vec!["time_get_current_time".to_string()],
        "alice sees only what the policy lets her call"
    );
    let (code, answer) = post(&alice, &url, &sid, &call(2, "time_get_current_time")).await;
    assert_eq!(code, 200, "{answer}");
    assert!(answer["result"]["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("UTC")));
    let (code, answer) = post(&alice, &url, &sid, &call(3, "time_convert_time")).await;
    assert_eq!(code, 403, "{answer}");
    assert_eq!(answer["error"]["code"], 403, "{answer}");

    let bob = as_caller(bob_token.clone());
    let sid = open_session(&bob, &url).await;
    assert!(tool_names(&bob, &url, &sid).await.is_empty());
    let (code, _) = post(&bob, &url, &sid, &call(4, "time_get_current_time")).await;
    assert_eq!(code, 403);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = server.out.lock().unwrap().clone();
    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| e["method"] == "tools/call")
        .collect();
    for (subject, target, decision) in [
        ("alice", "time_get_current_time", "allow"),
        ("alice", "time_convert_time", "deny"),
        ("bob", "time_get_current_time", "deny"),
    ] {
        assert!(
            events.iter().any(|e| e["subject"] == subject
                && e["target"] == target
                && e["decision"] == decision),
            "no audit line for {subject} {target} {decision} in {events:?}"
        );
    }
    for line in &lines {
        assert!(
            !line.contains(&alice_token) && !line.contains(&bob_token) && !line.contains("Bearer"),
            "a token in {line}"
        );
    }
}

/// A client whose requests come from `127.0.0.<host>` (every 127/8 address is loopback).
fn client_from(host: u8) -> reqwest::Client {
    mcp_operator::crypto::install_provider();
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, host]))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `initialize` (and `notifications/initialized` when it was answered): the HTTP status, the
/// session id, and the answer.
async fn try_open(client: &reqwest::Client, url: &str) -> (u16, Option<String>, Value) {
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body(json!(1)))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if let Some(sid) = &sid {
        client
            .post(url)
            .header("mcp-session-id", sid)
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .unwrap();
    }
    (status, sid, answer)
}

/// Every client session holds a session with every backend, and a backend counts them all
/// against the aggregator's one address (a member's bridge admits 1000 from one address). With
/// the default bounds the aggregator refuses first — 100 sessions per client address, 900 in
/// all — so no client can fill a backend and have its refusals open the circuit for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_refused_at_the_door_before_a_backend_fills_up() {
    let member = Bridge::start(&[], &everything());
    let config = json!({
        "name": "v",
        "backends": [{"name": "everything", "url": member.url("/mcp")}],
        "aggregation": {"conflictResolution": "prefix", "prefixOnlyConflicts": true},
    });
    let (server, _dir) = vmcp(&config, false);
    let url = server.url("/mcp");

    // One address takes its 100 sessions, and no more; nine take 900: the aggregator is full.
    let fill = (1..=9u8).map(|host| {
        let url = url.clone();
        async move {
            let client = client_from(host);
            let mut sids = Vec::new();
            for _ in 0..100 {
                let (code, sid, answer) = try_open(&client, &url).await;
                assert_eq!(code, 200, "127.0.0.{host}: {answer}");
                sids.push(sid.unwrap());
            }
            sids
        }
    });
    let mut fill = fill.collect::<Vec<_>>();
    let first = fill.remove(0).await;
    let (code, sid, answer) = try_open(&client_from(1), &url).await;
    assert_eq!((code, sid), (503, None), "{answer}");
    assert_eq!(
        answer["error"]["message"], "too many sessions from this client address",
        "{answer}"
    );
    let mut sids = vec![first];
    sids.extend(futures::future::join_all(fill).await);
    let (code, _, answer) = try_open(&client_from(10), &url).await;
    assert_eq!(code, 503, "{answer}");
    assert_eq!(answer["error"]["message"], "too many sessions", "{answer}");

    // The backend never had to refuse: it is ready, its circuit closed, and a session that was
    // opened still calls its tools.
    let report = status(&http(), &server).await;
    let everything = backend(&report, "everything");
    assert_eq!(everything["status"], "ready", "{report}");
    assert_eq!(everything["circuitBreakerState"], "closed", "{report}");
    let client = client_from(3);
    let answer: Value = client
        .post(&url)
        .header("accept", "application/json")
        .header("mcp-session-id", &sids[2][0])
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": "still here"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "Echo: still here",
        "{answer}"
    );

    // A session ended frees its address's share.
    let client = client_from(1);
    let resp = client
        .delete(&url)
        .header("mcp-session-id", &sids[0][0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (code, _, answer) = try_open(&client, &url).await;
    assert_eq!(code, 200, "{answer}");
}

/// Collects what arrives on a session's GET stream, as text, until the test ends.
async fn follow_stream(
    client: &reqwest::Client,
    url: &str,
    sid: &str,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    use futures::StreamExt;
    let resp = client
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut chunks = resp.bytes_stream();
        while let Some(Ok(chunk)) = chunks.next().await {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    seen
}

async fn rpc(client: &reqwest::Client, url: &str, sid: &str, body: Value) -> Value {
    client
        .post(url)
        .header("accept", "application/json")
        .header("mcp-session-id", sid)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A client that subscribes to a backend's resource receives that backend's
/// `notifications/resources/updated` on its GET stream; another client of the same backend,
/// subscribed to nothing, receives none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_updates_reach_the_subscriber_only() {
    let port = free_port();
    let cmd = everything_http("streamableHttp");
    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server-everything streamableHttp");
    let _entry = Proc(child);
    wait_port(port);
    let config = json!({
        "name": "v",
        "backends": [{"name": "entry", "url": format!("http://127.0.0.1:{port}/mcp")}],
        "aggregation": {"conflictResolution": "prefix", "prefixOnlyConflicts": true},
    });
    let (server, _dir) = vmcp(&config, false);
    let url = server.url("/mcp");
    let client = http();
    let (a, b) = (
        open_session(&client, &url).await,
        open_session(&client, &url).await,
    );
    let (a_seen, b_seen) = (
        follow_stream(&client, &url, &a).await,
        follow_stream(&client, &url, &b).await,
    );

    let listed = rpc(
        &client,
        &url,
        &a,
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/list"}),
    )
    .await;
    let uri = listed["result"]["resources"][0]["uri"]
        .as_str()
        .unwrap_or_else(|| panic!("a resource: {listed}"))
        .to_owned();
    let subscribed = rpc(
        &client,
        &url,
        &a,
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": uri}}),
    )
    .await;
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    // The backend's own switch for its simulated updates (sends one at once, then every 5 s).
    let toggled = rpc(
        &client,
        &url,
        &a,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "toggle-subscriber-updates", "arguments": {}}}),
    )
    .await;
    assert!(toggled["result"].is_object(), "{toggled}");

    let deadline = Instant::now() + Duration::from_secs(15);
    while !a_seen
        .lock()
        .unwrap()
        .contains("notifications/resources/updated")
    {
        assert!(
            Instant::now() < deadline,
            "no update reached the subscriber: {}",
            a_seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a_seen.lock().unwrap().contains(&uri));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !b_seen
            .lock()
            .unwrap()
            .contains("notifications/resources/updated"),
        "another client received the subscriber's update: {}",
        b_seen.lock().unwrap()
    );
}

/// The cases of tests/vmcp/malformed.json: every shape of every parameter, answered with the
/// status, code and message each case names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_gets_a_clear_answer() {
    let member = Bridge::start(&[], &everything());
    let config = json!({
        "name": "v",
        "backends": [{"name": "everything", "url": member.url("/mcp")}],
        "aggregation": {"conflictResolution": "prefix", "prefixOnlyConflicts": true},
    });
    let (server, _dir) = vmcp(&config, false);
    let url = server.url("/mcp");
    let client = http();
    let sid = open_session(&client, &url).await;
    let path = repo().join("tests/vmcp/malformed.json");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let body = match &case["raw"] {
            Value::String(raw) => raw.clone(),
            _ => case["body"].to_string(),
        };
        let resp = client
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &sid)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, case["status"], "{name}: {text}");
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: the answer is not JSON ({e}): {text}"));
        if let Some(part) = case["result"].as_str() {
            assert!(
                answer["result"].to_string().contains(part),
                "{name}: {answer}"
            );
            continue;
        }
        assert_eq!(answer["error"]["code"], case["code"], "{name}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(case["message"].as_str().unwrap()),
            "{name}: {answer}"
        );
    }
}
