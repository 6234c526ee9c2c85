//! Load generator for the bridge benchmark: `tools/call echo` at a fixed concurrency, through an
//! MCP streamable-HTTP endpoint or straight over a server's stdio (the floor), with every reply
//! checked against its own request.
//!
//! ```text
//! bridge-loadgen http URL CONCURRENCY SECONDS
//! bridge-loadgen stdio CONCURRENCY SECONDS -- COMMAND ARGS...
//! ```
//! Prints one JSON line: requests, errors, rps, p50_ms, p99_ms. With `$LOADGEN_BEARER` set,
//! every HTTP request carries `Authorization: Bearer $LOADGEN_BEARER` (the bridge's auth cell).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// Calls made before measuring, per worker.
const WARMUP_CALLS: usize = 50;

/// `Authorization: Bearer $LOADGEN_BEARER`, when that is set.
fn bearer_header() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var("LOADGEN_BEARER") {
        let value = format!("Bearer {token}").parse().expect("a header-safe token");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    headers
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("http") if args.len() == 4 => {
            run_http(&args[1], parse(&args[2]), secs(&args[3])).await
        }
        Some("stdio") if args.len() > 4 && args[3] == "--" => {
            run_stdio(parse(&args[1]), secs(&args[2]), &args[4..]).await
        }
        _ => {
            eprintln!("usage: bridge-loadgen http URL C SECONDS | stdio C SECONDS -- CMD ARGS...");
            std::process::exit(2);
        }
    };
    println!("{result}");
}

fn parse(s: &str) -> usize {
    s.parse().expect("a number")
}

fn secs(s: &str) -> Duration {
    Duration::from_secs_f64(s.parse().expect("seconds"))
}

fn echo(id: u64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"message": message}}})
}

/// Whether `reply` is the answer to the echo of `message`.
fn checks(reply: &Value, message: &str) -> bool {
    reply["result"]["content"][0]["text"].as_str() == Some(&format!("Echo: {message}"))
}

struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
}

fn summary(all: Vec<Stats>, elapsed: Duration) -> Value {
    let mut lat: Vec<Duration> = all
        .iter()
        .flat_map(|s| s.latencies.iter().copied())
        .collect();
    let errors: usize = all.iter().map(|s| s.errors).sum();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    json!({
        "requests": lat.len(),
        "errors": errors,
        "rps": (lat.len() as f64 / elapsed.as_secs_f64()).round(),
        "p50_ms": (pct(0.50) * 1000.0).round() / 1000.0,
        "p99_ms": (pct(0.99) * 1000.0).round() / 1000.0,
    })
}

// ------------------------------------------------------------------------------------------
// HTTP: one session and one connection per worker
// ------------------------------------------------------------------------------------------

async fn run_http(url: &str, concurrency: usize, duration: Duration) -> Value {
    let mut workers = Vec::new();
    let start_at = Arc::new(tokio::sync::Barrier::new(concurrency));
    for w in 0..concurrency {
        let url = url.to_owned();
        let barrier = start_at.clone();
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .default_headers(bearer_header())
                .build()
                .unwrap();
            let sid = open_session(&client, &url).await;
            for i in 0..WARMUP_CALLS {
                let _ = http_call(&client, &url, &sid, i as u64, "warm").await;
            }
            barrier.wait().await;
            let began = Instant::now();
            let mut stats = Stats {
                latencies: Vec::new(),
                errors: 0,
            };
            let mut i = 0u64;
            while began.elapsed() < duration {
                i += 1;
                let message = format!("w{w}-{i}");
                let t = Instant::now();
                match http_call(&client, &url, &sid, i, &message).await {
                    Some(reply) if checks(&reply, &message) => stats.latencies.push(t.elapsed()),
                    _ => stats.errors += 1,
                }
            }
            (stats, began.elapsed())
        }));
    }
    let mut all = Vec::new();
    let mut elapsed = Duration::ZERO;
    for w in workers {
        let (stats, e) = w.await.unwrap();
        elapsed = elapsed.max(e);
        all.push(stats);
    }
    summary(all, elapsed)
}

async fn open_session(client: &reqwest::Client, url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "loadgen", "version": "0"}}});
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(init.to_string())
        .send()
        .await
        .expect("initialize");
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.bytes().await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let _ = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .body(note.to_string())
        .send()
        .await
        .expect("initialized")
        .bytes()
        .await;
    sid
}

/// One call; the reply may come as JSON or as an SSE stream (whose last `data:` is the reply).
async fn http_call(
    client: &reqwest::Client,
    url: &str,
    sid: &str,
    id: u64,
    message: &str,
) -> Option<Value> {
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-06-18")
        .body(echo(id, message).to_string())
        .send()
        .await
        .ok()?;
    let sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = resp.text().await.ok()?;
    if sse {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some_and(|i| i == id))
    } else {
        serde_json::from_str(&body).ok()
    }
}

// ------------------------------------------------------------------------------------------
// stdio: the floor, with no proxy — one pipe, replies routed by id
// ------------------------------------------------------------------------------------------

async fn run_stdio(concurrency: usize, duration: Duration, command: &[String]) -> Value {
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                return;
            }
        }
    });
    let reader_pending = pending.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let Some(id) = v.get("id").and_then(Value::as_u64) else {
                continue;
            };
            if let Some(waiter) = reader_pending.lock().unwrap().remove(&id) {
                let _ = waiter.send(v);
            }
        }
    });
    let ids = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let call = {
        let (tx, pending, ids) = (tx.clone(), pending.clone(), ids.clone());
        move |method: &'static str, params: Value| {
            let (tx, pending, ids) = (tx.clone(), pending.clone(), ids.clone());
            async move {
                let id = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (otx, orx) = oneshot::channel();
                pending.lock().unwrap().insert(id, otx);
                let mut line =
                    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
                        .to_string()
                        .into_bytes();
                line.push(b'\n');
                tx.send(line).await.ok()?;
                orx.await.ok()
            }
        }
    };
    call(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "loadgen", "version": "0"}}),
    )
    .await
    .expect("initialize");
    tx.send(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n".to_vec())
        .await
        .unwrap();
    let mut workers = Vec::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(concurrency));
    for w in 0..concurrency {
        let call = call.clone();
        let barrier = barrier.clone();
        workers.push(tokio::spawn(async move {
            for _ in 0..WARMUP_CALLS {
                let _ = call(
                    "tools/call",
                    json!({"name": "echo", "arguments": {"message": "warm"}}),
                )
                .await;
            }
            barrier.wait().await;
            let began = Instant::now();
            let mut stats = Stats {
                latencies: Vec::new(),
                errors: 0,
            };
            let mut i = 0u64;
            while began.elapsed() < duration {
                i += 1;
                let message = format!("w{w}-{i}");
                let t = Instant::now();
                let reply = call(
                    "tools/call",
                    json!({"name": "echo", "arguments": {"message": message}}),
                )
                .await;
                match reply {
                    Some(reply) if checks(&reply, &message) => stats.latencies.push(t.elapsed()),
                    _ => stats.errors += 1,
                }
            }
            (stats, began.elapsed())
        }));
    }
    let mut all = Vec::new();
    let mut elapsed = Duration::ZERO;
    for w in workers {
        let (stats, e) = w.await.unwrap();
        elapsed = elapsed.max(e);
        all.push(stats);
    }
    let _ = child.start_kill();
    summary(all, elapsed)
}
