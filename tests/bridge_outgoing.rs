//! Outgoing credentials (issue 13, item 3 "Outgoing"): what the bridge adds to every request to
//! an HTTP backend or a remote, proven against a real MCP server (`server-everything`, over
//! streamable HTTP and legacy SSE) behind a recorder that notes every header it receives, with
//! callers holding real tokens from the test issuer (`tests/bridge/issuer.py`, PyJWT), which
//! also serves the RFC 8693 token endpoint and counts its calls.
//!
//! - static credentials (`headers`, `headersFromEnv`, `auth.outgoing.bearerTokenEnv`) reach
//!   every request, for in-pod backends and remotes on both transports; the client never sees
//!   them and the caller's own token never reaches the backend;
//! - `auth.outgoing.tokenExchange`: each caller's token is exchanged once (cached), each
//!   request carries its own caller's exchanged token, a refused exchange is an error that
//!   says nothing of the endpoint's answer;
//! - what cannot run stops the bridge at start-up naming the field or variable.

#[path = "bridge/common.rs"]
mod common;
#[path = "bridge/issuer.rs"]
mod issuer;
#[path = "bridge/recorder.rs"]
mod recorder;

use std::time::Duration;

use common::*;
use issuer::Issuer;
use recorder::{recorder, Everything, Seen};
use serde_json::{json, Value};

const API_KEY: &str = "api-key-value-5c1d";
const STATIC_TOKEN: &str = "static-backend-token-9e2b";
/// The client secret the issuer expects of client `bridge`.
const CLIENT_SECRET: &str = "s3cret";
/// What the issuer's token endpoint puts in its refusal (see issuer.py).
const REFUSAL_DETAIL: &str = "endpoint-internal-detail-7f3a";

/// A backend the bridge fronts: server-everything in `mode` behind a recorder, reached as the
/// in-pod `target` or as a `remoteUrl`.
struct Backend {
    _server: Everything,
    port: u16,
    seen: Seen,
    sse: bool,
}

impl Backend {
    async fn start(mode: &str) -> Backend {
        let server = Everything::start_mode(mode);
        let (port, seen) = recorder(server.port, None).await;
        Backend {
            _server: server,
            port,
            seen,
            sse: mode == "sse",
        }
    }

    /// The config keys that point the bridge at this backend, and the flags it needs.
    fn placement(&self, remote: bool) -> (Value, Vec<&'static str>) {
        let (transport, path) = if self.sse {
            ("sse", "/sse")
        } else {
            ("streamable-http", "/mcp")
        };
        if remote {
            let url = format!("http://localhost:{}{path}", self.port);
            (
                json!({"transport": transport, "remoteUrl": url}),
                vec!["--insecure-allow-loopback-remote"],
            )
        } else {
            let url = format!("http://127.0.0.1:{}{path}", self.port);
            (json!({"transport": transport, "target": url}), vec![])
        }
    }

    /// The client's transport and the bridge path it connects to.
    fn front(&self) -> (&'static str, &'static str) {
        if self.sse {
            ("sse", "/sse")
        } else {
            ("streamable", "/mcp")
        }
    }

    fn seen_since(&self, from: usize) -> Vec<hyper::HeaderMap> {
        self.seen.lock().unwrap()[from..].to_vec()
    }

    fn seen_len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// The bridge for `backend` with `extra` config merged in, the issuer's `oidc`, and the
/// secrets' environment. Waits until ready.
fn start_bridge(
    backend: &Backend,
    remote: bool,
    issuer: &Issuer,
    extra: &Value,
) -> (Bridge, tempfile::TempDir) {
    let (mut config, flags) = backend.placement(remote);
    // No readiness probe during a row: every request the backend sees is a client's.
    config["pingIntervalSeconds"] = json!(600);
    config["auth"] = json!({"oidc": {
        "issuer": issuer.url, "audience": "mcp-test", "allowPrivateIp": true
    }});
    merge(&mut config, extra);
    let (dir, path) = config_file(&config.to_string());
    let mut args = vec!["--config", path.as_str()];
    args.extend(flags);
    let env = [
        ("API_KEY", API_KEY.to_owned()),
        ("STATIC_TOKEN", STATIC_TOKEN.to_owned()),
        ("EXCHANGE_SECRET", CLIENT_SECRET.to_owned()),
    ];
    let bridge = Bridge::start_env(&args, &[], &env);
    (bridge, dir)
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// Calls `echo` through the bridge with the Python MCP client as the holder of `token`.
async fn echo_as(bridge: &Bridge, backend: &Backend, token: &str, message: &str) -> Value {
    let (transport, path) = backend.front();
    let (url, token) = (bridge.url(path), token.to_owned());
    let args = ["echo".to_owned(), json!({ "message": message }).to_string()];
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python_client_as(Some(&token), transport, &url, "calls", &args)
    })
    .await
    .unwrap()
}

/// Every header value of every request, as text (for "this value went nowhere" checks).
fn all_values(seen: &[hyper::HeaderMap]) -> Vec<String> {
    seen.iter()
        .flat_map(|h| h.values())
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn header_of(h: &hyper::HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "<absent>".into())
}

/// What a client sees of one raw initialize: status, headers and body, as one text.
async fn raw_initialize(bridge: &Bridge, backend: &Backend, token: &str) -> (u16, String) {
    let client = http();
    let resp = if backend.sse {
        client
            .get(bridge.url("/sse"))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
    } else {
        client
            .post(bridge.url("/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_body(json!(1)))
            .send()
            .await
            .unwrap()
    };
    let status = resp.status().as_u16();
    let mut seen = format!("{:?}", resp.headers());
    // An SSE stream does not end: its first event (the endpoint) is what there is to see.
    let body = tokio::time::timeout(Duration::from_secs(2), resp.text()).await;
    if let Ok(Ok(body)) = body {
        seen.push_str(&body);
    }
    (status, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_credentials_reach_every_backend_and_no_client() {
    let issuer = Issuer::start();
    let caller = issuer.token(&json!({})).await;
    let backends = [
        Backend::start("streamableHttp").await,
        Backend::start("sse").await,
    ];
    // (config, the header that must reach the backend with its value)
    let credentials = [
        (
            json!({"headers": {"X-Tenant": "acme"}, "headersFromEnv": {"X-Api-Key": "API_KEY"}}),
            ("x-api-key", API_KEY.to_owned()),
        ),
        (
            json!({"auth": {"outgoing": {"bearerTokenEnv": "STATIC_TOKEN"}}}),
            ("authorization", format!("Bearer {STATIC_TOKEN}")),
        ),
    ];
    let mut failures = Vec::new();
    for backend in &backends {
        for remote in [false, true] {
            for (extra, (name, value)) in &credentials {
                let at = format!(
                    "{} {} with {name}",
                    if remote { "remote" } else { "target" },
                    if backend.sse { "sse" } else { "streamable" }
                );
                let (bridge, _dir) = start_bridge(backend, remote, &issuer, extra);
                let from = backend.seen_len();
                let out = echo_as(&bridge, backend, &caller, "static").await;
                if out["calls"][0]["text"] != "Echo: static" {
                    failures.push(format!("{at}: the call failed: {out}"));
                }
                let (status, client_saw) = raw_initialize(&bridge, backend, &caller).await;
                if status != 200 {
                    failures.push(format!("{at}: raw initialize got {status}"));
                }
                let seen = backend.seen_since(from);
                if seen.len() < 4 {
                    failures.push(format!("{at}: only {} requests reached it", seen.len()));
                }
                let wrong: Vec<String> = seen
                    .iter()
                    .map(|h| header_of(h, name))
                    .filter(|v| v != value)
                    .collect();
                if !wrong.is_empty() {
                    failures.push(format!("{at}: {name} was {wrong:?}"));
                }
                if name == &"x-api-key" && seen.iter().any(|h| header_of(h, "x-tenant") != "acme") {
                    failures.push(format!("{at}: a request without X-Tenant"));
                }
                if all_values(&seen).iter().any(|v| v.contains(&caller)) {
                    failures.push(format!("{at}: the caller's own token reached the backend"));
                }
                let secret = value.trim_start_matches("Bearer ");
                if client_saw.contains(secret) {
                    failures.push(format!("{at}: the client saw the credential"));
                }
                let log = bridge.log.lock().unwrap().join("\n");
                if log.contains(secret) {
                    failures.push(format!("{at}: the credential is in the log"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A caller's exchanges at the token endpoint since `from`, by the subject's `sub`.
async fn exchanges(issuer: &Issuer, from: usize) -> Vec<Value> {
    let all = issuer.get("/exchanges").await;
    all.as_array().unwrap()[from..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_tokens_are_exchanged_once_each_and_sent_per_request() {
    let issuer = Issuer::start();
    let alice = issuer.token(&json!({"claims": {"sub": "alice"}})).await;
    let bob = issuer.token(&json!({"claims": {"sub": "bob"}})).await;
    let refused = issuer.token(&json!({"claims": {"sub": "refused"}})).await;
    let streamable = Backend::start("streamableHttp").await;
    let sse = Backend::start("sse").await;
    let exchange = |header: Option<&str>| {
        let mut e = json!({
            "tokenUrl": format!("{}/exchange", issuer.url), "clientId": "bridge",
            "clientSecretEnv": "EXCHANGE_SECRET", "audience": "backend",
            "scopes": ["read", "write"], "subjectTokenType": "access_token"
        });
        if let Some(h) = header {
            e["externalTokenHeaderName"] = json!(h);
        }
        json!({"auth": {"outgoing": {"tokenExchange": e}}})
    };
    // (backend, remote, the header the exchanged token travels in)
    let rows = [
        (&streamable, false, None),
        (&sse, false, Some("X-Upstream-Token")),
        (&streamable, true, Some("X-Upstream-Token")),
        (&sse, true, None),
    ];
    let mut failures = Vec::new();
    for (backend, remote, custom) in rows {
        let at = format!(
            "{} {} in {}",
            if remote { "remote" } else { "target" },
            if backend.sse { "sse" } else { "streamable" },
            custom.unwrap_or("Authorization")
        );
        let carrier = custom.unwrap_or("authorization").to_ascii_lowercase();
        let (bridge, _dir) = start_bridge(backend, remote, &issuer, &exchange(custom));
        let asked = issuer.get("/exchanges").await.as_array().unwrap().len();
        let from = backend.seen_len();

        // Alice twice (two sessions, one exchange), then Bob (his own exchange).
        for message in ["a1", "a2"] {
            let out = echo_as(&bridge, backend, &alice, message).await;
            if out["calls"][0]["text"] != format!("Echo: {message}") {
                failures.push(format!("{at}: alice's call failed: {out}"));
            }
        }
        let alice_done = backend.seen_len();
        let out = echo_as(&bridge, backend, &bob, "b1").await;
        if out["calls"][0]["text"] != "Echo: b1" {
            failures.push(format!("{at}: bob's call failed: {out}"));
        }
        let made = exchanges(&issuer, asked).await;
        let subjects: Vec<&str> = made
            .iter()
            .map(|e| {
                let t = e["form"]["subject_token"].as_str().unwrap_or("");
                if t == alice {
                    "alice"
                } else if t == bob {
                    "bob"
                } else {
                    "?"
                }
            })
            .collect();
        if subjects != ["alice", "bob"] {
            failures.push(format!("{at}: exchanges for {subjects:?}"));
        }
        for e in &made {
            let want = json!({
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": e["form"]["subject_token"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": "backend",
                "scope": "read write",
            });
            if e["form"] != want || e["client_ok"] != true {
                failures.push(format!("{at}: the exchange request was {e}"));
            }
        }
        // Each request carried its own caller's exchanged token, and nothing of the callers'.
        let n = asked + 1;
        let alice_header = format!("Bearer xchg-alice-{n}");
        let bob_header = format!("Bearer xchg-bob-{}", n + 1);
        let seen = backend.seen_since(from);
        let (alice_part, bob_part) = seen.split_at(alice_done - from);
        for (who, part, want) in [
            ("alice", alice_part, &alice_header),
            ("bob", bob_part, &bob_header),
        ] {
            let got: Vec<String> = part.iter().map(|h| header_of(h, &carrier)).collect();
            if got.is_empty() || got.iter().any(|g| g != want) {
                failures.push(format!(
                    "{at}: {who}'s requests carried {got:?}, not {want}"
                ));
            }
        }
        if custom.is_some() && seen.iter().any(|h| h.contains_key("authorization")) {
            failures.push(format!("{at}: an Authorization reached the backend"));
        }
        let values = all_values(&seen);
        if values
            .iter()
            .any(|v| v.contains(&alice) || v.contains(&bob))
        {
            failures.push(format!("{at}: a caller's own token reached the backend"));
        }

        // A refused exchange: 401 without the endpoint's words, and nothing reaches the backend.
        let before = backend.seen_len();
        let (status, client_saw) = raw_initialize(&bridge, backend, &refused).await;
        if status != 401
            || client_saw.contains(REFUSAL_DETAIL)
            || client_saw.contains("invalid_grant")
        {
            failures.push(format!(
                "{at}: a refused exchange gave {status}: {client_saw}"
            ));
        }
        if backend.seen_len() != before {
            failures.push(format!(
                "{at}: a request without a credential reached the backend"
            ));
        }

        // No token of any kind in the log or the audit trail.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut lines = bridge.log.lock().unwrap().clone();
        lines.extend(bridge.out.lock().unwrap().iter().cloned());
        for line in &lines {
            if line.contains("xchg-")
                || [&alice, &bob, &refused]
                    .iter()
                    .any(|t| line.contains(t.as_str()))
            {
                failures.push(format!("{at}: a token in {line}"));
            }
            if line.contains(REFUSAL_DETAIL) {
                failures.push(format!("{at}: the endpoint's answer in {line}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What cannot run stops the bridge at start-up, naming the field or the variable.
#[test]
fn unusable_outgoing_settings_stop_the_bridge() {
    let target = [
        "--transport",
        "streamable-http",
        "--target",
        "http://127.0.0.1:9/mcp",
    ];
    let rows: Vec<(Value, Vec<&str>, Vec<String>, &str)> = vec![
        (
            json!({"auth": {"outgoing": {"bearerTokenEnv": "NOT_SET_ANYWHERE"}}}),
            target.to_vec(),
            vec![],
            "auth.outgoing.bearerTokenEnv: the environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            json!({"headersFromEnv": {"X-Api-Key": "NOT_SET_EITHER"}}),
            target.to_vec(),
            vec![],
            "the environment variable NOT_SET_EITHER is not set",
        ),
        (
            json!({"headers": {"X-Tenant": "acme"}}),
            vec![],
            vec!["true".into()],
            "headers is set but the transport is stdio",
        ),
        (
            json!({"auth": {"outgoing": {"tokenExchange": {"tokenUrl": "https://idp.example.com/t"}}}}),
            target.to_vec(),
            vec![],
            "outgoing.tokenExchange needs oidc",
        ),
    ];
    let mut failures = Vec::new();
    for (config, flags, command, message) in rows {
        let (_dir, path) = config_file(&config.to_string());
        let mut args = vec!["--config", path.as_str()];
        args.extend(flags);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"));
        cmd.args(["bridge", "--listen", "127.0.0.1:0"]).args(&args);
        if !command.is_empty() {
            cmd.arg("--").args(&command);
        }
        let out = cmd.output().expect("run the bridge");
        let log = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !log.contains(message) {
            failures.push(format!(
                "{config}: want {message:?}, got {}: {log}",
                out.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
