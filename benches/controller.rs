//! The operator at scale: N MCPServers created at once against the in-memory API server, timed
//! until every one has its children; the operator's peak RSS; API requests per MCPServer.
//!
//! The operator is the real release binary (`mcp-operator run`) in its own process, so its
//! memory is measured alone. Run: `cargo bench --bench controller [-- 1000 10000]`.
//!
//! `BASELINE_OPERATOR=/path/to/older/mcp-operator` runs an older build the same way right after
//! this one, and `ROUNDS=K` repeats the pair K times, interleaved, so a change is compared with
//! its predecessor in one run, with the run-to-run spread visible.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use mcp_operator::api::crd;
use mcp_operator::api::v1beta1::MCPServer;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use test_apiserver::{Options, TestApiServer};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Peak and current resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn run_once(n: usize, bin: &str, label: &str) {
    let server = TestApiServer::start(Options::default()).await.unwrap();
    server.set_simulate_workloads(false);
    let client = server.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        c.spec.conversion = None;
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    for ns in ["default", "mcp-operator-system"] {
        let _ = Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await;
    }
    let dir =
        std::env::temp_dir().join(format!("mcp-operator-ctl-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    server.write_kubeconfig(dir.join("kubeconfig")).unwrap();
    let ok = Command::new(bin)
        .args(["certs", "--dns-name", "localhost", "--out"])
        .arg(dir.join("certs"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let mut operator = Command::new(bin)
        .args(["run", "--no-registry-lookup", "--storage-migration=false"])
        .args(["--image-command", "docker.io/mcp/fetch=mcp-server-fetch"])
        .arg("--cert-dir")
        .arg(dir.join("certs"))
        .args([
            "--webhook-bind-address",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args([
            "--metrics-bind-address",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args([
            "--health-probe-bind-address",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // caches synced on an empty cluster
    let (_, rss_idle) = rss_mib(operator.id());
    server.clear_requests();

    let servers: Api<MCPServer> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    let creates = futures::stream::iter(0..n).map(|i| {
        let servers = servers.clone();
        async move {
            let s: MCPServer = serde_json::from_value(json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
                "metadata": {"name": format!("s{i}"), "namespace": "default"},
                "spec": {"image": "docker.io/mcp/fetch", "transport": "stdio", "proxyPort": 8080, "proxyMode": "streamable-http", "sessionAffinity": "ClientIP", "tools": ["fetch"]}}))
            .unwrap();
            servers.create(&PostParams::default(), &s).await.unwrap();
        }
    });
    use futures::StreamExt;
    creates.buffer_unordered(64).collect::<Vec<_>>().await;
    let created = started.elapsed();
    // Convergence is polled on the in-process server's store (no API requests, nothing copied),
    // so the polls neither load the server at 10,000 objects nor count as requests.
    // (`get` chains rather than `pointer`, which allocates per path segment: this runs under the
    // server's lock for every stored object.)
    let managed = |o: &serde_json::Value| {
        o.get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            .and_then(serde_json::Value::as_str)
            == Some("mcp-operator")
    };
    loop {
        let count = server.count("apps", "deployments", "default", managed);
        if count == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "not converged: {count}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let children_done = started.elapsed();
    // Status writes trail the children: wait until every object shows its URL.
    let has_url = |o: &serde_json::Value| {
        o.get("status")
            .and_then(|s| s.get("url"))
            .is_some_and(|u| !u.is_null())
    };
    loop {
        let with_url = server.count("toolhive.stacklok.dev", "mcpservers", "default", has_url);
        if with_url == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "statuses not written: {with_url}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_done = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (peak, now) = rss_mib(operator.id());
    let requests = server.requests();
    // Everything in the log but the benchmark's own creates is the operator's.
    let ours = requests.len().saturating_sub(n);
    let writes = requests
        .iter()
        .filter(|r| r.verb.is_write())
        .count()
        .saturating_sub(n);
    let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    for r in requests.iter().filter(|r| r.verb.is_write()) {
        *by_kind
            .entry(format!(
                "{:?} {}{}{}",
                r.verb,
                r.resource,
                if r.subresource.is_empty() { "" } else { "/" },
                r.subresource
            ))
            .or_default() += 1;
    }
    let _ = operator.kill();
    let _ = operator.wait();
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "{n} MCPServers created at once, {label} (creates took {:.1} s):",
        created.as_secs_f64()
    );
    println!(
        "  all children applied after  {:>7.1} s",
        children_done.as_secs_f64()
    );
    println!(
        "  all statuses written after  {:>7.1} s",
        all_done.as_secs_f64()
    );
    println!("  operator RSS: idle {rss_idle:.1} MiB, peak {peak:.1} MiB, after convergence {now:.1} MiB");
    println!(
        "  operator writes per MCPServer: {:.2} (4 children + status)",
        writes as f64 / n as f64
    );
    println!(
        "  operator API requests per MCPServer (watch streams count once): {:.2}",
        ours as f64 / n as f64
    );
    println!("  writes by kind (the benchmark's {n} creates included): {by_kind:?}");
}

#[tokio::main]
async fn main() {
    mcp_operator::crypto::install_provider();
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![1000] } else { sizes };
    let mut builds = vec![(
        "this build".to_string(),
        env!("CARGO_BIN_EXE_mcp-operator").to_string(),
    )];
    if let Ok(baseline) = std::env::var("BASELINE_OPERATOR") {
        builds.push((format!("baseline {baseline}"), baseline));
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    for n in sizes {
        for round in 1..=rounds {
            for (label, bin) in &builds {
                run_once(n, bin, &format!("{label}, round {round}")).await;
            }
        }
    }
}
