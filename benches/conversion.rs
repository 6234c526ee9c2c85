//! Conversion webhook throughput: a 500-object ConversionReview over TLS (keep-alive), side by
//! side with the floor — the same server stack, body checks and decoding, the objects echoed
//! back unconverted.
//!
//! Run: `cargo bench --bench conversion` (figures go to benches/README.md).

use mcp_operator::webhook::server::{start, ServerOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const OBJECTS: usize = 500;
const REVIEWS: usize = 60;

fn review(objects: &[Value]) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "request": {
        "uid": "bench", "desiredAPIVersion": "toolhive.stacklok.dev/v1beta1", "objects": objects}})
}

/// Realistic old-shape objects: ports, string groupRef, inline OIDC and telemetry, status.
fn objects() -> Vec<Value> {
    (0..OBJECTS)
        .map(|i| {
            json!({"apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPServer",
                "metadata": {"name": format!("server-{i}"), "namespace": "team-a", "uid": format!("uid-{i}"), "resourceVersion": "12345", "generation": 3,
                    "labels": {"app": "mcp", "team": "a"}, "annotations": {"owner": "platform"}},
                "spec": {"image": "ghcr.io/example/mcp-time:1.2.0", "transport": "sse", "port": 9000, "targetPort": 3000, "proxyPort": 8080,
                    "groupRef": "research", "tools": ["get_current_time", "convert_time"],
                    "env": [{"name": "LOG_LEVEL", "value": "debug"}], "secrets": [{"name": "tok", "key": "token", "targetEnvName": "TOKEN"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
                    "oidcConfig": {"type": "kubernetes", "kubernetes": {"audience": "time"}},
                    "telemetry": {"openTelemetry": {"enabled": true, "endpoint": "otel:4317"}}},
                "status": {"phase": "Running", "readyReplicas": 1, "url": "http://mcp-x-proxy.team-a.svc.cluster.local:9000/sse#x"}})
        })
        .collect()
}

async fn measure(client: &reqwest::Client, url: &str, body: &[u8]) -> (Duration, Vec<Duration>) {
    let mut latencies = Vec::with_capacity(REVIEWS);
    let started = Instant::now();
    for _ in 0..REVIEWS {
        let t = Instant::now();
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["response"]["convertedObjects"].as_array().map(Vec::len),
            Some(OBJECTS)
        );
        latencies.push(t.elapsed());
    }
    (started.elapsed(), latencies)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    mcp_operator::crypto::install_provider();
    let dir = std::env::temp_dir().join(format!("mcp-operator-conv-bench-{}", std::process::id()));
    let ca = mcp_operator::webhook::certs::generate_ca(
        "bench CA",
        mcp_operator::webhook::certs::CA_VALIDITY,
    )
    .unwrap();
    let pair = ca
        .issue_serving(&["localhost".to_string()], Duration::from_secs(3600))
        .unwrap();
    mcp_operator::webhook::certs::write_cert_dir(&dir, &ca, &pair, true).unwrap();
    let mut options = ServerOptions::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
    options.conversion = Some(mcp_operator::webhook::conversion::handler());
    let server = start(options).await.unwrap();
    let mut floor_options = ServerOptions::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
    floor_options.conversion = Some(mcp_operator::webhook::conversion::floor_handler());
    let floor = start(floor_options).await.unwrap();

    let ca_pem = std::fs::read(dir.join("ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let body = serde_json::to_vec(&review(&objects())).unwrap();
    let ours_url = format!("https://localhost:{}/convert", server.addr().port());
    let floor_url = format!("https://localhost:{}/convert", floor.addr().port());
    measure(&client, &ours_url, &body).await; // warm-up
    measure(&client, &floor_url, &body).await;
    let (floor_total, mut floor_lat) = measure(&client, &floor_url, &body).await;
    let (ours_total, mut ours_lat) = measure(&client, &ours_url, &body).await;
    floor_lat.sort();
    ours_lat.sort();
    let rate = |total: Duration| (REVIEWS * OBJECTS) as f64 / total.as_secs_f64();
    println!("{REVIEWS} ConversionReviews of {OBJECTS} MCPServers ({} KiB each) over TLS, keep-alive, one at a time:", body.len() / 1024);
    println!(
        "  floor (decode + echo):  {:>9.0} objects/s   p50 {:>6.1} ms  p99 {:>6.1} ms",
        rate(floor_total),
        pct(&floor_lat, 0.5),
        pct(&floor_lat, 0.99)
    );
    println!(
        "  ours  (v1alpha1->v1beta1): {:>6.0} objects/s   p50 {:>6.1} ms  p99 {:>6.1} ms",
        rate(ours_total),
        pct(&ours_lat, 0.5),
        pct(&ours_lat, 0.99)
    );
    std::fs::remove_dir_all(&dir).ok();
}
