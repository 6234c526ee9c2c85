//! The bridge enforces `auth` (issue 13, item 3) against a real OIDC issuer served on loopback
//! by the test (`tests/bridge/issuer.py`: OpenID configuration, JWKS with key rotation, RFC 7662
//! introspection), with tokens minted by PyJWT — never by the code under test — and the
//! official Python MCP client. The cases are data: `tests/bridge/auth/tokens.json` (what is a
//! valid token, on both fronts) and `tests/bridge/auth/callers.json` (Cedar per caller).

#[path = "bridge/common.rs"]
mod common;
#[path = "bridge/issuer.rs"]
mod issuer;

use std::time::Duration;

use common::*;
use issuer::Issuer;
use serde_json::{json, Value};

const SECRET_ENV: &str = "TEST_INTROSPECTION_SECRET";
/// Where the protected-resource metadata is served.
const METADATA: &str = "/.well-known/oauth-protected-resource";
/// The metadata URL a rendered bridge names: its `resource` is the Service the operator made.
const RENDERED_METADATA: &str =
    "http://mcp-everything-proxy.default.svc.cluster.local:8080/.well-known/oauth-protected-resource";
/// What every 401 says, whatever the reason.
const UNAUTHORIZED_BODY: &str =
    r#"{"error":"invalid_token","error_description":"a valid bearer token is required"}"#;

/// The bridge's config: the issuer, introspection as client `bridge`, policies if any, audit.
fn config(issuer: &Issuer, policies: Option<&Value>) -> String {
    let mut auth = json!({
        "oidc": {
            "issuer": issuer.url,
            "audience": "mcp-test",
            "allowPrivateIp": true,
            "jwksMinRefreshSeconds": 1,
            "leewaySeconds": 30,
            "introspectionUrl": format!("{}/introspect", issuer.url),
            "clientId": "bridge",
            "clientSecretEnv": SECRET_ENV,
            "scopes": ["mcp:tools"]
        },
        "audit": {"enabled": true}
    });
    if let Some(p) = policies {
        auth["authz"] = json!({"policies": p, "serverName": "everything"});
    }
    json!({ "auth": auth }).to_string()
}

fn start_bridge(config_path: &str, extra: &[&str], command: &[String]) -> Bridge {
    let mut flags = vec!["--config", config_path];
    flags.extend(extra);
    Bridge::start_env(&flags, command, &[(SECRET_ENV, "s3cret".to_owned())])
}

fn data(name: &str) -> Value {
    let path = repo().join("tests/bridge/auth").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A client that sends `Authorization: Bearer <token>` on every request.
fn client_as(token: &str) -> reqwest::Client {
    mcp_operator::crypto::install_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The `Authorization` header of a tokens.json case (minting its token), or none.
async fn authorization(issuer: &Issuer, case: &Value, minted: &mut Vec<String>) -> Option<String> {
    if let Some(h) = case["header"].as_str() {
        return Some(h.to_owned());
    }
    if case["token"].is_null() {
        return None;
    }
    let token = issuer.token(&case["token"]).await;
    minted.push(token.clone());
    Some(format!("Bearer {token}"))
}

/// What is wrong with the answer to an `initialize` POSTed to the streamable front with
/// `authorization`: not the `want`ed status, or a 401 whose challenge does not name `metadata`.
async fn initialize_is_wrong(
    client: &reqwest::Client,
    bridge: &Bridge,
    authorization: Option<&str>,
    want: u16,
    metadata: &str,
) -> Vec<String> {
    let mut req = client
        .post(bridge.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body(json!(1)));
    if let Some(h) = authorization {
        req = req.header("authorization", h);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let body = resp.text().await.unwrap_or_default();
    if status != want {
        return vec![format!("want {want}, got {status}: {body}")];
    }
    if status == 401 {
        return check_challenge(&headers, &body, metadata);
    }
    Vec::new()
}

/// The protected-resource metadata document, fetched without a token.
async fn metadata_of(client: &reqwest::Client, bridge: &Bridge) -> Value {
    let resp = client.get(bridge.url(METADATA)).send().await.unwrap();
    resp.json().await.unwrap()
}

/// What is wrong with a 401: the challenge must point at the metadata and say nothing else.
fn check_challenge(
    resp_headers: &reqwest::header::HeaderMap,
    body: &str,
    metadata: &str,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let challenge = resp_headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !challenge.starts_with("Bearer ")
        || !challenge.contains(&format!("resource_metadata=\"{metadata}\""))
    {
        wrong.push(format!("challenge {challenge:?}"));
    }
    if body != UNAUTHORIZED_BODY {
        wrong.push(format!("body {body:?}"));
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_on_both_fronts_with_rotated_keys() {
    let issuer = Issuer::start();
    let (_dir, path) = config_file(&config(&issuer, None));
    let bridge = start_bridge(&path, &[], &everything());
    let plain = http();
    let mut minted = Vec::new();
    let mut failures = Vec::new();

    for case in data("tokens.json").as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let want = case["status"].as_u64().unwrap() as u16;
        let header = authorization(&issuer, case, &mut minted).await;
        let metadata = bridge.url(METADATA);
        for w in initialize_is_wrong(&plain, &bridge, header.as_deref(), want, &metadata).await {
            failures.push(format!("{name} (streamable): {w}"));
        }
        let with = |req: reqwest::RequestBuilder| match &header {
            Some(h) => req.header("authorization", h),
            None => req,
        };
        let resp = with(plain.get(bridge.url("/sse")))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        if status != want {
            failures.push(format!("{name} (sse): want {want}, got {status}"));
        }
        drop(resp);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The metadata document is served without a token and names the issuer.
    let doc = metadata_of(&plain, &bridge).await;
    assert_eq!(doc["authorization_servers"], json!([issuer.url]), "{doc}");
    assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]), "{doc}");
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]), "{doc}");
    assert_eq!(doc["resource"], json!(bridge.url("/mcp")), "{doc}");

    // A real MCP client with a valid token, on both fronts.
    let token = issuer.token(&json!({})).await;
    minted.push(token.clone());
    for (transport, path) in [("streamable", "/mcp"), ("sse", "/sse")] {
        let out = python_client_as(
            Some(&token),
            transport,
            &bridge.url(path),
            "calls",
            &["echo", r#"{"message": "with a token"}"#],
        );
        assert_eq!(
            out["calls"][0]["text"], "Echo: with a token",
            "{transport}: {out}"
        );
    }

    // Keys rotated mid-test: the new key's tokens pass (the JWKS is fetched again for its
    // unknown kid), the old key's do not any more.
    let old = issuer.token(&json!({})).await;
    let status = |token: String| {
        let plain = plain.clone();
        let url = bridge.url("/mcp");
        async move {
            plain
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json")
                .json(&initialize_body(json!(1)))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(old.clone()).await, 200);
    issuer.post("/rotate", &json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = issuer.token(&json!({})).await;
    assert_eq!(status(new.clone()).await, 200, "a token of the rotated key");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(old.clone()).await, 401, "a token of the retired key");
    minted.extend([old, new]);

    // Made-up kids make the bridge fetch the JWKS again at most once per interval (1 s here).
    let before = issuer.jwks_fetches().await;
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let t = issuer.token(&json!({"key": "rogue-kid"})).await;
        assert_eq!(status(t).await, 401);
    }
    let fetched = issuer.jwks_fetches().await - before;
    let bound = 1 + started.elapsed().as_secs();
    assert!(
        fetched <= bound,
        "{fetched} JWKS fetches for 20 unknown kids in {:?}",
        started.elapsed()
    );

    // Audit: every request has its line; a token never appears in one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = bridge.out.lock().unwrap().clone();
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(events.iter().any(|e| e["decision"] == "unauthenticated"
        && e["status"] == 401
        && e["subject"].is_null()));
    assert!(events.iter().any(|e| e["method"] == "initialize"
        && e["subject"] == "tester"
        && e["decision"] == "allow"
        && e["outcome"] == "success"));
    for line in &lines {
        assert!(!line.contains("Bearer"), "{line}");
        for t in &minted {
            assert!(
                !line.contains(t.as_str()),
                "a token in the audit line {line}"
            );
        }
    }
}

/// The bridge for a `backends` row of callers.json: server-everything over stdio, or serving
/// HTTP itself (`everything-streamableHttp`, `everything-sse`) behind the bridge.
fn start_backend(server: &str, config_path: &str) -> Bridge {
    let Some(mode) = server.strip_prefix("everything-") else {
        return start_bridge(config_path, &[], &everything());
    };
    let port = free_port();
    let (transport, path) = if mode == "sse" {
        ("sse", "/sse")
    } else {
        ("streamable-http", "/mcp")
    };
    let target = format!("http://127.0.0.1:{port}{path}");
    let flags = [
        "--config",
        config_path,
        "--transport",
        transport,
        "--target",
        &target,
    ];
    Bridge::start_env(
        &flags,
        &everything_http(mode),
        &[
            ("PORT", port.to_string()),
            (SECRET_ENV, "s3cret".to_owned()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cedar_policies_decide_per_caller() {
    let table = data("callers.json");
    let issuer = Issuer::start();
    let (_dir, path) = config_file(&config(&issuer, Some(&table["policies"])));
    let mut failures = Vec::new();
    let mut minted = Vec::new();
    for backend in table["backends"].as_array().unwrap() {
        let server = backend["server"].as_str().unwrap();
        let bridge = start_backend(server, &path);
        for caller in table["callers"].as_array().unwrap() {
            let token = issuer.token(&json!({"claims": caller["claims"]})).await;
            minted.push(token.clone());
            for transport in backend["transports"].as_array().unwrap() {
                let transport = transport.as_str().unwrap();
                let at = format!("{} via {server} ({transport})", caller["name"]);
                for wrong in check_caller(&bridge, caller, &token, transport).await {
                    failures.push(format!("{at}: {wrong}"));
                }
            }
        }
        for wrong in check_audit(&bridge, &minted).await {
            failures.push(format!("audit of {server}: {wrong}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What a caller of callers.json sees wrong on one transport: the listed tools and the allowed
/// calls through the Python MCP client; denied calls POSTed raw must get upstream's answer
/// (403, JSON-RPC 403 "Unauthorized") and never reach the server (nothing on the SSE stream).
async fn check_caller(
    bridge: &Bridge,
    caller: &Value,
    token: &str,
    transport: &str,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let args: Vec<String> = caller["calls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| [c[0].as_str().unwrap().to_owned(), c[1].to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let path = if transport == "sse" { "/sse" } else { "/mcp" };
    let out = python_client_as(Some(token), transport, &bridge.url(path), "calls", &args);
    if out["tools"] != caller["tools"] {
        wrong.push(format!(
            "tools: want {}, got {}",
            caller["tools"], out["tools"]
        ));
    }
    for (i, call) in caller["calls"].as_array().unwrap().iter().enumerate() {
        if out["calls"][i]["text"] != call[2] {
            wrong.push(format!("{call}: got {}", out["calls"][i]));
        }
    }
    if let Some(prompts) = caller.get("prompts") {
        // Prompts and resources lists are filtered the same way (get_prompt, read_resource).
        let out = python_client_as(Some(token), transport, &bridge.url(path), "features", &[]);
        if &out["prompts"] != prompts {
            wrong.push(format!("prompts: want {prompts}, got {}", out["prompts"]));
        }
        let uris = out["resources"].as_array().cloned().unwrap_or_default();
        let fits = match caller["resourcesUnder"].as_str() {
            Some(prefix) => {
                !uris.is_empty()
                    && uris
                        .iter()
                        .all(|u| u.as_str().unwrap_or("").starts_with(prefix))
            }
            None => uris.is_empty(),
        };
        if !fits {
            wrong.push(format!("resources: got {uris:?}"));
        }
    }
    let client = client_as(token);
    let denied = caller["denied"].as_array().unwrap();
    let body = |i: usize, call: &Value| {
        json!({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call",
               "params": {"name": call[0], "arguments": call[1]}})
    };
    if transport == "sse" {
        let mut sse = SseSession::open(&client, &bridge.url("")).await;
        for (i, call) in denied.iter().enumerate() {
            let status = sse.send(&client, &body(i, call)).await;
            if status != 403 {
                wrong.push(format!("denied {call}: got {status}"));
            }
        }
        if let Some(extra) = sse.next(Duration::from_millis(300)).await {
            wrong.push(format!("unexpected event {extra}"));
        }
    } else {
        let sid = open_any_session(&client, &bridge.url("/mcp")).await;
        for (i, call) in denied.iter().enumerate() {
            let (status, reply) =
                post_any(&client, &bridge.url("/mcp"), &sid, &body(i, call)).await;
            let want = json!({"jsonrpc": "2.0", "id": 100 + i,
                              "error": {"code": 403, "message": "Unauthorized"}});
            if status != 403 || reply != want {
                wrong.push(format!("denied {call}: got {status} {reply}"));
            }
        }
    }
    wrong
}

/// A streamable-HTTP session opened the raw way, accepting JSON and SSE (HTTP backends insist).
async fn open_any_session(client: &reqwest::Client, url: &str) -> String {
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body(json!(1)))
        .send()
        .await
        .expect("initialize");
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _) = post_any(client, url, &sid, &note).await;
    assert_eq!(status, 202);
    sid
}

/// POSTs a message accepting JSON and SSE; returns the status and the JSON body (if JSON).
async fn post_any(client: &reqwest::Client, url: &str, sid: &str, body: &Value) -> (u16, Value) {
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-06-18")
        .json(body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Audit lines for the allowed and the denied calls, with no token and no argument.
async fn check_audit(bridge: &Bridge, minted: &[String]) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = bridge.out.lock().unwrap().clone();
    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let has = |subject: &str, target: &str, decision: &str, outcome: &str| {
        events.iter().any(|e| {
            e["method"] == "tools/call"
                && e["subject"] == subject
                && e["target"] == target
                && e["decision"] == decision
                && e["outcome"] == outcome
                && e["duration_ms"].is_number()
                && e["time"].is_string()
        })
    };
    let mut wrong = Vec::new();
    for (subject, target, decision, outcome) in [
        ("alice", "echo", "allow", "success"),
        ("alice", "get-env", "deny", "denied"),
        ("bob", "echo", "deny", "denied"),
    ] {
        if !has(subject, target, decision, outcome) {
            wrong.push(format!(
                "no line for {subject} {target} {decision} {outcome}"
            ));
        }
    }
    for line in &lines {
        if line.contains("\"hi\"") || line.contains("Bearer") {
            wrong.push(format!("an argument or a token in {line}"));
        }
        if minted.iter().any(|t| line.contains(t.as_str())) {
            wrong.push(format!("a token in {line}"));
        }
    }
    wrong
}

/// An HTTP backend (the issuer's tiny `/mcp`): lists are filtered, denied calls (also inside a
/// batch) never reach it, and the caller's `Authorization` header never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_backends_get_no_caller_token() {
    let table = data("callers.json");
    let issuer = Issuer::start();
    let (_dir, path) = config_file(&config(&issuer, Some(&table["policies"])));
    let target = format!("{}/mcp", issuer.url);
    let bridge = start_bridge(
        &path,
        &["--transport", "streamable-http", "--target", &target],
        &[],
    );
    let token = issuer
        .token(&json!({"claims": {"sub": "alice", "groups": ["dev"]}}))
        .await;
    let client = client_as(&token);
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, reply) = post(&client, &url, &sid, &list).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["result"]["tools"].as_array().map(Vec::len),
        Some(1),
        "{reply}"
    );
    assert_eq!(reply["result"]["tools"][0]["name"], "echo", "{reply}");
    let (status, reply) = post(&client, &url, &sid, &echo_call(json!(3), "x")).await;
    assert_eq!(
        (status, &reply["result"]["content"][0]["text"]),
        (200, &json!("called echo"))
    );
    let get_env = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                         "params": {"name": "get-env", "arguments": {}}});
    let (status, reply) = post(&client, &url, &sid, &get_env).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(
        reply["error"],
        json!({"code": 403, "message": "Unauthorized"})
    );
    let batch = json!([echo_call(json!(5), "x"), get_env]);
    let (status, _) = post(&client, &url, &sid, &batch).await;
    assert_eq!(status, 403, "a batch with one denied call");

    let seen = issuer.get("/seen").await;
    let seen = seen.as_array().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|h| h.get("authorization").is_none()),
        "the backend got the caller's token: {seen:?}"
    );
    let called: Vec<&Value> = seen.iter().collect();
    // initialize, notifications/initialized, tools/list, the echo call: nothing denied arrived.
    assert_eq!(called.len(), 4, "{seen:?}");
}

/// The address guard serves the issuer fetches: without `allowPrivateIp` a loopback issuer is
/// never reached (the bridge logs why), and every token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_issuers_need_allow_private_ip() {
    let issuer = Issuer::start();
    let mut cfg: Value = serde_json::from_str(&config(&issuer, None)).unwrap();
    cfg["auth"]["oidc"]["allowPrivateIp"] = json!(false);
    let (_dir, path) = config_file(&cfg.to_string());
    let bridge = start_bridge(&path, &[], &everything());
    let token = issuer.token(&json!({})).await;
    let resp = client_as(&token)
        .post(bridge.url("/mcp"))
        .header("accept", "application/json")
        .json(&initialize_body(json!(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(issuer.jwks_fetches().await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let logged = bridge
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("loopback") && l.contains("refused by the address guard"));
        if logged {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refusal logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The status of an `initialize` POSTed to the streamable front with `token` as bearer.
async fn initialize_status(bridge: &Bridge, token: &str) -> u16 {
    client_as(token)
        .post(bridge.url("/mcp"))
        .header("accept", "application/json")
        .json(&initialize_body(json!(1)))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (5 s at most) for a line of the bridge's log containing every one of `parts`.
async fn logged(bridge: &Bridge, parts: &[&str]) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let found = bridge
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| parts.iter().all(|p| l.contains(p)));
        if found || std::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shape of the API server's keys for `kubernetesServiceAccount` (what the operator
/// renders from `useClusterAuth`): the issuer serves HTTPS with a certificate of a CA made
/// here, and its discovery and JWKS answer 401 unless the bearer is the current content of a
/// token file. The bridge, given the CA (`caBundle`) and the file (`jwksAuthTokenPath`),
/// accepts valid tokens, also after the file is rewritten and the keys rotated (it reads the
/// file at each fetch); a missing file fails closed until it is back; without either setting
/// every token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_behind_a_private_ca_and_a_token_file() {
    mcp_operator::crypto::install_provider();
    let ca = mcp_operator::webhook::certs::generate_ca("issuer test CA", Duration::from_secs(3600))
        .unwrap();
    let pair = ca
        .issue_serving(&["localhost".into()], Duration::from_secs(3600))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let ca_path = write("ca.crt", &ca.cert_pem);
    let cert = write("tls.crt", &pair.cert_pem);
    let key = write("tls.key", &pair.key_pem);
    let token_path = write("token", "first-projected-token\n");
    let issuer = Issuer::start_with(
        &[
            "--tls".as_ref(),
            cert.as_os_str(),
            key.as_os_str(),
            "--key-token".as_ref(),
            token_path.as_os_str(),
        ],
        Some(&ca.cert_pem),
    );
    assert!(issuer.url.starts_with("https://localhost:"));
    let config_with = |ca_bundle: bool, token_file: bool| {
        let mut oidc = json!({"issuer": issuer.url, "audience": "mcp-test",
                              "allowPrivateIp": true, "jwksMinRefreshSeconds": 1});
        if ca_bundle {
            oidc["caBundle"] = json!(ca_path.to_string_lossy());
        }
        if token_file {
            oidc["jwksAuthTokenPath"] = json!(token_path.to_string_lossy());
        }
        json!({"auth": {"oidc": oidc}}).to_string()
    };

    // Each setting is needed. Rows: caBundle, jwksAuthTokenPath, the status of a valid token,
    // and what the issuer saw: keys served, nothing (TLS stops first), or key fetches refused.
    let rows = [
        ("both", true, true, 200, "served"),
        ("no caBundle", false, true, 401, "nothing"),
        ("no jwksAuthTokenPath", true, false, 401, "refused"),
    ];
    let mut failures = Vec::new();
    for (name, ca_bundle, token_file, want, issuer_saw) in rows {
        let (fetched, refused) = (
            issuer.jwks_fetches().await,
            issuer.key_fetches_refused().await,
        );
        let (_cfg_dir, path) = config_file(&config_with(ca_bundle, token_file));
        let bridge = start_bridge(&path, &[], &everything());
        let token = issuer.token(&json!({})).await;
        let got = initialize_status(&bridge, &token).await;
        let seen = (
            issuer.jwks_fetches().await - fetched,
            issuer.key_fetches_refused().await - refused,
        );
        let seen_right = match issuer_saw {
            "served" => seen.0 >= 1 && seen.1 == 0,
            "nothing" => seen == (0, 0),
            _ => seen.0 == 0 && seen.1 >= 1,
        };
        if got != want || !seen_right {
            failures.push(format!(
                "{name}: want {want}, got {got}; the issuer should have {issuer_saw}: (JWKS served, key fetches refused) = {seen:?}"
            ));
        }
        if !ca_bundle && !logged(&bridge, &["could not be fetched", "certificate"]).await {
            failures.push(format!("{name}: the untrusted certificate is not logged"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The kubelet rewrites the token: the issuer now wants the new one, and rotated keys make
    // the bridge fetch again, with the file's new content.
    let (_cfg_dir, path) = config_file(&config_with(true, true));
    let bridge = start_bridge(&path, &[], &everything());
    assert_eq!(
        initialize_status(&bridge, &issuer.token(&json!({})).await).await,
        200
    );
    let refused = issuer.key_fetches_refused().await;
    std::fs::write(&token_path, "second-projected-token\n").unwrap();
    issuer.post("/rotate", &json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = issuer.token(&json!({})).await;
    assert_eq!(
        initialize_status(&bridge, &rotated).await,
        200,
        "after the token file changed"
    );
    assert_eq!(
        issuer.key_fetches_refused().await,
        refused,
        "the old token was sent"
    );

    // The file disappears: the fetch fails (logged, no panic) and a token of new keys is
    // refused; once the file is back the keys are fetched again.
    std::fs::remove_file(&token_path).unwrap();
    issuer.post("/rotate", &json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newer = issuer.token(&json!({})).await;
    assert_eq!(
        initialize_status(&bridge, &newer).await,
        401,
        "without the token file"
    );
    assert!(
        logged(&bridge, &["could not be fetched", "jwksAuthTokenPath"]).await,
        "the missing file is logged"
    );
    std::fs::write(&token_path, "third-projected-token").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        initialize_status(&bridge, &newer).await,
        200,
        "the file is back"
    );
    for line in bridge.log.lock().unwrap().iter() {
        assert!(
            !line.contains("projected-token"),
            "a token in the log: {line}"
        );
    }
}

/// The bridge config file and the Secret-fed environment the operator renders (`mcp-operator
/// render`, offline) for an MCPServer that references an MCPOIDCConfig of `issuer`, an
/// MCPAuthzConfig with `policies` and audit — as a user writes them. The Secret's value is
/// what the kubelet would put in the variable.
fn rendered_by_the_operator(
    issuer: &Issuer,
    policies: &Value,
) -> (tempfile::TempDir, String, Vec<(String, String)>) {
    let manifests = [
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPOIDCConfig",
               "metadata": {"name": "test-issuer", "namespace": "default"},
               "spec": {"type": "inline", "inline": {
                   "issuer": issuer.url, "insecureAllowHTTP": true, "jwksAllowPrivateIP": true,
                   "introspectionUrl": format!("{}/introspect", issuer.url),
                   "clientId": "bridge",
                   "clientSecretRef": {"name": "introspection", "key": "secret"}}}}),
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPAuthzConfig",
               "metadata": {"name": "dev-only", "namespace": "default"},
               "spec": {"type": "cedarv1", "config": {"policies": policies}}}),
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
               "metadata": {"name": "everything", "namespace": "default"},
               "spec": {"image": "docker.io/mcp/everything:latest", "transport": "stdio",
                        "oidcConfigRef": {"name": "test-issuer", "audience": "mcp-test",
                                          "scopes": ["mcp:tools"]},
                        "authzConfigRef": {"name": "dev-only"},
                        "audit": {"enabled": true}}}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("manifests.yaml");
    let docs: Vec<String> = manifests.iter().map(Value::to_string).collect();
    std::fs::write(&input, docs.join("\n---\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["render", "-f"])
        .arg(&input)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "render: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> = text
        .split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(|o| o.is_object())
        .collect();
    let of_kind = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} rendered: {text}"))
    };
    let config = of_kind("ConfigMap")["data"]["bridge.json"]
        .as_str()
        .unwrap()
        .to_owned();
    let env: Vec<(String, String)> = of_kind("Deployment")["spec"]["template"]["spec"]
        ["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["valueFrom"]["secretKeyRef"]["name"] == "introspection")
        .map(|e| (e["name"].as_str().unwrap().to_owned(), "s3cret".to_owned()))
        .collect();
    assert_eq!(
        env.len(),
        1,
        "the client secret comes from its Secret: {text}"
    );
    assert!(!config.contains("s3cret"));
    let path = dir.path().join("bridge.json");
    std::fs::write(&path, &config).unwrap();
    (dir, path.to_string_lossy().into_owned(), env)
}

/// Issue 13's first two Done-when lines on the config the operator renders (not a hand-written
/// one): every row of the token table, the protected-resource metadata, and Cedar per caller
/// through the Python MCP client on both fronts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_rendering_is_enforced() {
    let issuer = Issuer::start();
    let table = data("callers.json");
    let (_dir, path, env) = rendered_by_the_operator(&issuer, &table["policies"]);
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let bridge = Bridge::start_env(&["--config", &path], &everything(), &env);
    let plain = http();
    let mut minted = Vec::new();
    let mut failures = Vec::new();
    for case in data("tokens.json").as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let want = case["status"].as_u64().unwrap() as u16;
        let header = authorization(&issuer, case, &mut minted).await;
        for w in
            initialize_is_wrong(&plain, &bridge, header.as_deref(), want, RENDERED_METADATA).await
        {
            failures.push(format!("{name}: {w}"));
        }
    }
    let doc = metadata_of(&plain, &bridge).await;
    if doc["authorization_servers"] != json!([issuer.url]) {
        failures.push(format!("metadata: {doc}"));
    }
    for caller in table["callers"].as_array().unwrap() {
        let token = issuer.token(&json!({"claims": caller["claims"]})).await;
        for transport in ["streamable", "sse"] {
            for wrong in check_caller(&bridge, caller, &token, transport).await {
                failures.push(format!("{} ({transport}): {wrong}", caller["name"]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A session belongs to the issuer and subject of the token that opened it. Another caller
/// with a valid token of their own who learned its id (from a log, a proxy) is told it does
/// not exist — on POST, the GET stream, DELETE and the legacy SSE front — and its owner keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_caller_who_opened_it() {
    let issuer = Issuer::start();
    let (_dir, path) = config_file(&config(&issuer, None));
    let bridge = start_bridge(&path, &[], &everything());
    let token = |sub: &str| json!({"claims": {"sub": sub}});
    let alice = client_as(&issuer.token(&token("alice")).await);
    let bob = client_as(&issuer.token(&token("bob")).await);
    let url = bridge.url("/mcp");
    let sid = open_any_session(&alice, &url).await;

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, answer) = post_any(&bob, &url, &sid, &list).await;
    assert_eq!(status, 404, "bob used alice's session: {answer}");
    let get = bob
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let delete = bob
        .delete(&url)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    let (status, answer) = post_any(&alice, &url, &sid, &list).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"]["tools"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));

    let sse = SseSession::open(&alice, &bridge.url("")).await;
    let resp = bob
        .post(&sse.endpoint)
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "bob posted into alice's SSE session");
    let resp = alice
        .post(&sse.endpoint)
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}
