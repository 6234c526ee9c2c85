//! The real binary: `mcp-operator certs` writes a pair, `mcp-operator webhook` serves it, answers
//! a review over TLS, prints its configurations, and exits 0 on SIGTERM after draining.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-operator");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn certs_then_webhook_serve_a_review_and_stop_on_sigterm() {
    mcp_operator::crypto::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let status = Command::new(BIN)
        .args([
            "certs",
            "--dns-name",
            "webhook.test",
            "--dns-name",
            "127.0.0.1",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for file in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(out.join(file).exists(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is owner-only");
    }

    let (port, metrics_port) = (free_port(), free_port());
    let mut child = Command::new(BIN)
        .args([
            "webhook",
            "--log-format",
            "json",
            "--shutdown-delay",
            "0",
            "--cert-dir",
        ])
        .arg(&out)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = format!("http://127.0.0.1:{metrics_port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(&ready).await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the webhook becomes ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ca = reqwest::Certificate::from_pem(&std::fs::read(out.join("ca.crt")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("webhook.test", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "cli-1", "operation": "CREATE", "userInfo": {}, "name": "fetch", "namespace": "default",
            "kind": {"group": "toolhive.stacklok.dev", "version": "v1beta1", "kind": "MCPServer"},
            "resource": {"group": "toolhive.stacklok.dev", "version": "v1beta1", "resource": "mcpservers"},
            "object": {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
                "metadata": {"name": "fetch", "namespace": "default"}, "spec": {"image": "docker.io/mcp/fetch", "transport": "grpc"}}}
    });
    let answer: serde_json::Value = client
        .post(format!(
            "https://webhook.test:{port}/validate-toolhive-stacklok-dev-v1beta1-mcpserver"
        ))
        .json(&review)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response"]["uid"], "cli-1");
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["reason"], "Invalid");

    // The standalone command serves the conversion webhook too.
    let convert = client
        .post(format!("https://webhook.test:{port}/convert"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_ne!(convert.status(), 404, "/convert is routed");

    send_sigterm(child.id());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut logs = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        (status, logs)
    })
    .await
    .unwrap();
    let (status, logs) = status;
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}\n{logs}");
    let denial = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "admission review")
        .unwrap_or_else(|| panic!("a structured log line for the review in\n{logs}"));
    for field in [
        "uid",
        "kind",
        "name",
        "namespace",
        "operation",
        "allowed",
        "duration_us",
    ] {
        assert!(denial.get(field).is_some(), "{field} in {denial}");
    }
    assert!(!logs.contains("PRIVATE KEY"));
}

fn send_sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn print_configurations_emits_both_webhook_configurations() {
    let output = Command::new(BIN)
        .args([
            "webhook",
            "--print-configurations",
            "--service-name",
            "mcp-operator-webhook",
            "--service-namespace",
            "mcp-system",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert!(yaml.contains("kind: ValidatingWebhookConfiguration"));
    assert!(yaml.contains("kind: MutatingWebhookConfiguration"));
    assert!(yaml.contains("name: vmcpserver.toolhive.stacklok.dev"));
    assert!(yaml.contains("namespace: mcp-system"));
}
