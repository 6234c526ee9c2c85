//! Shared helpers of the bridge integration tests: the real peers installed by
//! `scripts/install-mcp-peers.sh`, the bridge binary as a child that dies with the test, and a
//! raw HTTP client for what SDK clients would hide.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const INSTALL_HINT: &str = "run `bash scripts/install-mcp-peers.sh` first";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: PathBuf) -> String {
    assert!(
        path.exists(),
        "missing MCP test peer {}: {INSTALL_HINT}",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// `@modelcontextprotocol/server-everything` over stdio.
pub fn everything() -> Vec<String> {
    let js = require(
        repo()
            .join(".tools/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
    );
    vec!["node".into(), js, "stdio".into()]
}

/// `server-everything` serving HTTP itself: `streamableHttp` (`/mcp`) or `sse` (`/sse`), on
/// the port in `$PORT`.
pub fn everything_http(mode: &str) -> Vec<String> {
    let mut cmd = everything();
    cmd[2] = mode.into();
    cmd
}

/// PyPI `mcp-server-time` over stdio.
pub fn time_server() -> Vec<String> {
    vec![require(repo().join(".tools/venv/bin/mcp-server-time"))]
}

/// The paginating fixture server (on the official Python SDK).
pub fn paged_server() -> Vec<String> {
    vec![
        python(),
        repo()
            .join("tests/bridge/paged_server.py")
            .to_string_lossy()
            .into_owned(),
    ]
}

/// The plain-JSON fake server (`tests/bridge/fake_server.py`): subscriptions it holds, a
/// half-dead mode, over-long replies, notification floods.
pub fn fake_server() -> Vec<String> {
    vec![
        python(),
        repo()
            .join("tests/bridge/fake_server.py")
            .to_string_lossy()
            .into_owned(),
    ]
}

/// A bridge config file with `json` in a fresh directory (kept alive by the returned guard).
pub fn config_file(json: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("bridge.json");
    std::fs::write(&path, json).expect("write the config");
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

/// The value of one metric sample line (`name{labels} value`) on `/metrics`, 0 when absent.
pub async fn metric(client: &reqwest::Client, url: &str, sample: &str) -> f64 {
    let text = client
        .get(url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

pub fn python() -> String {
    require(repo().join(".tools/venv/bin/python"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The `mcp-operator bridge` process; killed (with its server) when dropped.
pub struct Bridge {
    pub child: Child,
    pub port: u16,
    /// Every line the bridge logged (besides the listening line), in order.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Every line the bridge wrote on stdout (the audit trail), in order.
    pub out: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Bridge {
    /// Starts the bridge with `flags` in front of `command` and waits until `/ready`.
    pub fn start(flags: &[&str], command: &[String]) -> Bridge {
        let bridge = Self::spawn(flags, command);
        bridge.wait_ready(Duration::from_secs(30));
        bridge
    }

    /// Starts the bridge without waiting for readiness.
    pub fn spawn(flags: &[&str], command: &[String]) -> Bridge {
        Self::spawn_env(flags, command, &[])
    }

    /// Starts the bridge with extra environment (inherited by the server) and waits for `/ready`.
    pub fn start_env(flags: &[&str], command: &[String], env: &[(&str, String)]) -> Bridge {
        let bridge = Self::spawn_env(flags, command, env);
        bridge.wait_ready(Duration::from_secs(30));
        bridge
    }

    pub fn spawn_env(flags: &[&str], command: &[String], env: &[(&str, String)]) -> Bridge {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-operator"));
        cmd.args(["bridge", "--listen", "127.0.0.1:0"]).args(flags);
        if !command.is_empty() {
            cmd.arg("--").args(command);
        }
        cmd.env("RUST_LOG", "warn,mcp_operator::bridge=info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Bridge::launch(cmd)
    }

    /// Starts a prepared `… bridge --listen 127.0.0.1:0 …` command (a port the kernel picks),
    /// learning the port from the bridge's "bridge listening" log line; the
    /// rest of its log goes to the test's stderr. (Picking a free port first would race with
    /// the tests running alongside.)
    pub fn launch(mut cmd: Command) -> Bridge {
        use std::io::BufRead;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the bridge binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out_lines = out.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                out_lines.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log_lines = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let listen = serde_json::from_str::<Value>(&line).ok().and_then(|v| {
                    (v["fields"]["message"] == "bridge listening"
                        || v["fields"]["message"] == "vmcp listening")
                        .then(|| v["fields"]["listen"].as_str().map(str::to_owned))
                        .flatten()
                });
                match listen {
                    Some(addr) => {
                        let _ = tx.send(addr);
                    }
                    None => {
                        eprintln!("{line}");
                        log_lines.lock().unwrap().push(line);
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("the bridge did not report its listening address");
            }
        };
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the listening address");
        Bridge {
            child,
            port,
            log,
            out,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(
                    b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                );
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the bridge did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the bridge to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // SIGKILL; the server child follows through its parent-death signal.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids of the direct children of `pid` (the MCP server of a bridge).
pub fn children_of(pid: u32) -> Vec<u32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Runs the Python SDK client (`tests/bridge/client.py`) and returns what it printed.
pub fn python_client(transport: &str, url: &str, scenario: &str, args: &[&str]) -> Value {
    python_client_as(None, transport, url, scenario, args)
}

/// [`python_client`] with a bearer token on every request.
pub fn python_client_as(
    token: Option<&str>,
    transport: &str,
    url: &str,
    scenario: &str,
    args: &[&str],
) -> Value {
    let script = repo().join("tests/bridge/client.py");
    let mut cmd = Command::new(python());
    if let Some(token) = token {
        cmd.env("MCP_BEARER", token);
    }
    let out = cmd
        .arg(&script)
        .args([transport, url, scenario])
        .args(args)
        .output()
        .expect("run the Python MCP client");
    assert!(
        out.status.success(),
        "the Python MCP client failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn http() -> reqwest::Client {
    mcp_operator::crypto::install_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

pub fn initialize_body(id: Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bridge-test", "version": "0"}}
    })
}

/// Opens a streamable-HTTP session the raw way; returns its `Mcp-Session-Id`.
pub async fn open_session(client: &reqwest::Client, url: &str) -> String {
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body(json!(1)))
        .send()
        .await
        .expect("initialize");
    assert_eq!(resp.status(), 200);
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_owned();
    let resp = client
        .post(url)
        .header("mcp-session-id", &sid)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    sid
}

/// POSTs a JSON-RPC message with a session (JSON answers only); returns status and body.
pub async fn post(client: &reqwest::Client, url: &str, sid: &str, body: &Value) -> (u16, Value) {
    let resp = client
        .post(url)
        .header("accept", "application/json")
        .header("mcp-session-id", sid)
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

pub fn echo_call(id: Value, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"message": message}}})
}

/// A legacy SSE session read the raw way: the `endpoint` event, then `message` events.
pub struct SseSession {
    pub endpoint: String,
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    _task: tokio::task::JoinHandle<()>,
}

impl SseSession {
    pub async fn open(client: &reqwest::Client, base: &str) -> SseSession {
        use futures::StreamExt;
        let resp = client
            .get(format!("{base}/sse"))
            .header("accept", "text/event-stream")
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .expect("GET /sse");
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let (endpoint_tx, endpoint_rx) = tokio::sync::oneshot::channel();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut endpoint_tx = Some(endpoint_tx);
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    let mut kind = "message";
                    let mut data = String::new();
                    for line in event.lines() {
                        if let Some(v) = line.strip_prefix("event: ") {
                            kind = if v == "endpoint" {
                                "endpoint"
                            } else {
                                "message"
                            };
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data.push_str(v);
                        }
                    }
                    if kind == "endpoint" {
                        if let Some(tx) = endpoint_tx.take() {
                            let _ = tx.send(data);
                        }
                    } else if !data.is_empty() {
                        let _ = tx.send(serde_json::from_str(&data).unwrap_or(Value::Null));
                    }
                }
            }
        });
        let endpoint = endpoint_rx.await.expect("an endpoint event");
        SseSession {
            endpoint: format!("{base}{endpoint}"),
            events,
            _task: task,
        }
    }

    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    pub async fn send(&self, client: &reqwest::Client, body: &Value) -> u16 {
        client
            .post(&self.endpoint)
            .json(body)
            .send()
            .await
            .expect("POST /messages")
            .status()
            .as_u16()
    }
}

/// Opens the standalone GET stream of a streamable-HTTP session; yields its `message` events.
pub async fn open_get_stream(
    client: &reqwest::Client,
    url: &str,
    sid: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    use futures::StreamExt;
    let resp = client
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .expect("GET stream");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                for line in event.lines() {
                    if let Some(data) = line.strip_prefix("data: ") {
                        let _ = tx.send(serde_json::from_str(data).unwrap_or(Value::Null));
                    }
                }
            }
        }
    });
    rx
}
