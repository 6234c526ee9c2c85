//! The bridge in remote mode (MCPRemoteProxy's data path), run with the config the operator
//! renders, against a real MCP server (`server-everything` over streamable HTTP) behind an
//! in-test recorder that notes the headers of every request it passes on (plain HTTP, or TLS
//! with a CA made here): the allow-list and overrides apply, the Secret-sourced header reaches
//! the server and no log, the address guard refuses loopback names unless the test flag is set,
//! and HTTPS works with a CA bundle and fails clearly without it.

#[path = "bridge/common.rs"]
mod common;
#[path = "bridge/recorder.rs"]
mod recorder;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mcp_operator::api::v1beta1::MCPRemoteProxy;
use mcp_operator::controller::mcpremoteproxy_children::{desired, Inputs};
use recorder::{header_values, recorder, Everything};
use serde_json::{json, Value};

/// The value of the header Secret: it must reach the server and nothing else.
const SECRET_VALUE: &str = "s3cret-header-value-0f9e";

/// An MCPRemoteProxy as a user writes it, and the bridge config file and header environment the
/// operator renders for it (the env var's value is what the kubelet would take from the Secret).
fn rendered(remote_url: &str, extra: Value) -> (tempfile::TempDir, String, Vec<(String, String)>) {
    let mut spec = json!({
        "remoteUrl": remote_url,
        "toolConfigRef": {"name": "tools"},
        "headerForward": {
            "addPlaintextHeaders": {"X-Tenant": "acme"},
            "addHeadersFromSecret": [
                {"headerName": "X-Api-Key", "valueSecretRef": {"name": "remote-api", "key": "key"}}
            ]
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let proxy: MCPRemoteProxy = serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
        "metadata": {"name": "remote", "namespace": "default", "uid": "u1"},
        "spec": spec,
    }))
    .unwrap();
    let inputs = Inputs {
        bridge_image: "img".into(),
        tool_config: Some(
            serde_json::from_value(json!({
                "toolsFilter": ["say", "get-sum"],
                "toolsOverride": {"echo": {"name": "say", "description": "Says it back"}},
            }))
            .unwrap(),
        ),
        ..Inputs::default()
    };
    let children = desired(&proxy, &inputs);
    let config = children.config_map.data.as_ref().unwrap()["bridge.json"].clone();
    assert!(!config.contains(SECRET_VALUE));
    let container = &children
        .deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let env: Vec<(String, String)> = container
        .env
        .iter()
        .flatten()
        .filter(|e| e.value_from.is_some())
        .map(|e| (e.name.clone(), SECRET_VALUE.to_string()))
        .collect();
    assert_eq!(env.len(), 1, "one header from a Secret");
    let (dir, path) = config_file(&config);
    (dir, path, env)
}

fn start_bridge(config: &str, env: &[(String, String)], flags: &[&str]) -> Bridge {
    let mut args = vec!["--config", config];
    args.extend(flags);
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    Bridge::spawn_env(&args, &[], &env)
}

/// The JSON-RPC answer of a streamable-HTTP POST (from the SSE `data:` line if streamed).
async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let (status, _, json) = rpc(client, url, None, body).await;
    (status, json)
}

/// POSTs as a streamable-HTTP client must; returns the status, the session id the answer
/// carries and the JSON-RPC answer.
async fn rpc(
    client: &reqwest::Client,
    url: &str,
    sid: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let mut req = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(sid) = sid {
        req = req.header("mcp-session-id", sid);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim()
        .to_owned();
    (
        status,
        session,
        serde_json::from_str(&json).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_config_serves_the_remote_with_its_tools_and_headers() {
    let everything = Everything::start();
    let (port, seen) = recorder(everything.port, None).await;
    let (_dir, config, env) = rendered(&format!("http://localhost:{port}/mcp"), json!({}));
    let bridge = start_bridge(&config, &env, &["--insecure-allow-loopback-remote"]);
    // Ready means the bridge's own initialize reached the remote.
    bridge.wait_ready(Duration::from_secs(30));
    assert!(
        !seen.lock().unwrap().is_empty(),
        "the readiness initialize went to the remote"
    );

    let url = bridge.url("/mcp");
    let out = tokio::task::spawn_blocking(move || {
        python_client(
            "streamable",
            &url,
            "catalog",
            &["say", r#"{"message":"hi remote"}"#, "get-env", "{}"],
        )
    })
    .await
    .unwrap();
    assert_eq!(out["tools"], json!(["get-sum", "say"]), "{out}");
    assert_eq!(
        out["catalog"]["say"]["description"], "Says it back",
        "{out}"
    );
    assert_eq!(out["calls"][0]["text"], "Echo: hi remote", "{out}");
    assert_eq!(out["calls"][1]["code"], -32602, "a hidden tool: {out}");

    // Every request that reached the server carried both headers, the Secret's value included.
    let keys = header_values(&seen, "x-api-key");
    assert!(keys.len() >= 4, "{keys:?}");
    assert!(keys.iter().all(|k| k == SECRET_VALUE), "{keys:?}");
    assert!(header_values(&seen, "x-tenant").iter().all(|t| t == "acme"));
    // And the value is in no log line of the bridge.
    let log = bridge.log.lock().unwrap().join("\n");
    assert!(!log.contains(SECRET_VALUE), "{log}");
}

/// A remote that speaks legacy HTTP+SSE: readiness by initialize over its stream, and a real
/// client served through the bridge's own `/sse` with the policy and the headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_remote_is_served_too() {
    let everything = Everything::start_mode("sse");
    let (port, seen) = recorder(everything.port, None).await;
    let (_dir, config, env) = rendered(
        &format!("http://localhost:{port}/sse"),
        json!({"transport": "sse"}),
    );
    let bridge = start_bridge(&config, &env, &["--insecure-allow-loopback-remote"]);
    bridge.wait_ready(Duration::from_secs(30));
    let url = bridge.url("/sse");
    let out = tokio::task::spawn_blocking(move || {
        python_client(
            "sse",
            &url,
            "calls",
            &["say", r#"{"message":"over sse"}"#, "get-env", "{}"],
        )
    })
    .await
    .unwrap();
    assert_eq!(out["tools"], json!(["get-sum", "say"]), "{out}");
    assert_eq!(out["calls"][0]["text"], "Echo: over sse", "{out}");
    assert_eq!(out["calls"][1]["code"], -32602, "{out}");
    let keys = header_values(&seen, "x-api-key");
    assert!(
        keys.len() >= 4 && keys.iter().all(|k| k == SECRET_VALUE),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_guard_refuses_loopback_unless_told() {
    let everything = Everything::start();
    let client = http();
    // A name that resolves to loopback: the bridge starts, but never connects.
    let (_dir, config, env) = rendered(
        &format!("http://localhost:{}/mcp", everything.port),
        json!({}),
    );
    let bridge = start_bridge(&config, &env, &[]);
    let (status, body) = post_json(&client, &bridge.url("/mcp"), &initialize_body(json!(1))).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("localhost resolves to")
            && message.contains("loopback")
            && message.contains("refused by the address guard"),
        "{message}"
    );
    let ready = client.get(bridge.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "never ready");
    let log = bridge.log.lock().unwrap().join("\n");
    assert!(log.contains("address guard"), "the reason is logged: {log}");

    // An address written in the URL is refused at start-up.
    let (_dir2, config, env) = rendered(
        &format!("http://127.0.0.1:{}/mcp", everything.port),
        json!({}),
    );
    let mut bridge = start_bridge(&config, &env, &[]);
    let status = bridge
        .wait_exit(Duration::from_secs(15))
        .expect("the bridge exits");
    assert!(!status.success());
    let log = bridge.log.lock().unwrap().join("\n");
    assert!(
        log.contains("127.0.0.1 resolves to 127.0.0.1, which is loopback"),
        "{log}"
    );

    // Link-local stays refused even with the test flag.
    let (_dir3, config, env) = rendered("http://169.254.169.254/latest", json!({}));
    let mut bridge = start_bridge(&config, &env, &["--insecure-allow-loopback-remote"]);
    let status = bridge
        .wait_exit(Duration::from_secs(15))
        .expect("the bridge exits");
    assert!(!status.success());
    let log = bridge.log.lock().unwrap().join("\n");
    assert!(log.contains("link-local"), "{log}");
}

/// A CA and a serving certificate for `localhost`, made here; returns the server's TLS config
/// and the CA's PEM.
fn tls_server() -> (Arc<rustls::ServerConfig>, String) {
    mcp_operator::crypto::install_provider();
    let ca = mcp_operator::webhook::certs::generate_ca("remote test CA", Duration::from_secs(3600))
        .unwrap();
    let pair = ca
        .issue_serving(&["localhost".into()], Duration::from_secs(3600))
        .unwrap();
    let certs: Vec<_> = rustls_pemfile::certs(&mut pair.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut pair.key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    (Arc::new(config), ca.cert_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_remotes_are_verified_with_the_ca_bundle() {
    let everything = Everything::start();
    let (tls, ca_pem) = tls_server();
    let (port, seen) = recorder(everything.port, Some(tls)).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_path = ca_dir.path().join("ca.crt");
    std::fs::write(&ca_path, &ca_pem).unwrap();
    let client = http();
    let remote = format!("https://localhost:{port}/mcp");

    // Without the CA the certificate is not trusted: never ready, and clients are told why.
    let (_dir, config, env) = rendered(&remote, json!({}));
    let untrusted = start_bridge(&config, &env, &["--insecure-allow-loopback-remote"]);
    let (status, body) =
        post_json(&client, &untrusted.url("/mcp"), &initialize_body(json!(1))).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("certificate"), "{message}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing was sent over an untrusted TLS"
    );
    drop(untrusted);

    // With it (the config's caBundle), the remote is served.
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    file["caBundle"] = json!(ca_path.to_string_lossy());
    std::fs::write(&config, file.to_string()).unwrap();
    let bridge = start_bridge(&config, &env, &["--insecure-allow-loopback-remote"]);
    bridge.wait_ready(Duration::from_secs(30));
    let url = bridge.url("/mcp");
    let (status, sid, _) = rpc(&client, &url, None, &initialize_body(json!(1))).await;
    assert_eq!(status, 200);
    let sid = sid.expect("the remote's session id passes through");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(rpc(&client, &url, Some(&sid), &initialized).await.0, 202);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, body) = rpc(&client, &url, Some(&sid), &list).await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["get-sum", "say"], "{body}");
    assert!(header_values(&seen, "x-api-key")
        .iter()
        .all(|k| k == SECRET_VALUE));
}
