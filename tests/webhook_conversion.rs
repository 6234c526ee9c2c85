//! `POST /convert` over real TLS: a 500-object ConversionReview comes back whole, malformed
//! bodies get HTTP errors, and an object invalid at its own version gets a Failure.

use mcp_operator::webhook::server::{start, ServerOptions};
use serde_json::{json, Value};
use std::time::Duration;

async fn serve() -> (
    mcp_operator::webhook::RunningServer,
    reqwest::Client,
    tempfile::TempDir,
) {
    mcp_operator::crypto::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = mcp_operator::webhook::certs::generate_ca(
        "test CA",
        mcp_operator::webhook::certs::CA_VALIDITY,
    )
    .unwrap();
    let pair = ca
        .issue_serving(&["localhost".to_string()], Duration::from_secs(3600))
        .unwrap();
    mcp_operator::webhook::certs::write_cert_dir(dir.path(), &ca, &pair, true).unwrap();
    let mut options = ServerOptions::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    options.conversion = Some(mcp_operator::webhook::conversion::handler());
    let server = start(options).await.unwrap();
    let ca_pem = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    (server, client, dir)
}

fn url(server: &mcp_operator::webhook::RunningServer) -> String {
    format!("https://localhost:{}/convert", server.addr().port())
}

#[tokio::test]
async fn five_hundred_objects_over_tls() {
    let (server, client, _dir) = serve().await;
    let objects: Vec<Value> = (0..500)
        .map(|i| json!({"apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPRemoteProxy",
            "metadata": {"name": format!("p{i}"), "namespace": "default"},
            "spec": {"remoteURL": format!("https://mcp{i}.example.com/mcp"), "port": 9000, "groupRef": "g"}}))
        .collect();
    let review = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "u-500", "desiredAPIVersion": "toolhive.stacklok.dev/v1beta1", "objects": objects}});
    let resp: Value = client
        .post(url(&server))
        .json(&review)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["kind"], "ConversionReview");
    assert_eq!(resp["response"]["uid"], "u-500");
    assert_eq!(resp["response"]["result"]["status"], "Success");
    let converted = resp["response"]["convertedObjects"].as_array().unwrap();
    assert_eq!(converted.len(), 500);
    assert_eq!(
        converted[123]["apiVersion"],
        "toolhive.stacklok.dev/v1beta1"
    );
    assert_eq!(
        converted[123]["spec"]["remoteUrl"],
        "https://mcp123.example.com/mcp"
    );
    assert_eq!(converted[123]["spec"]["proxyPort"], 9000);
}

#[tokio::test]
async fn bad_requests_and_invalid_objects() {
    let (server, client, _dir) = serve().await;
    let u = url(&server);
    let r = client
        .post(&u)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .post(&u)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let limit = mcp_operator::webhook::conversion::MAX_CONVERSION_BODY;
    let r = client
        .post(&u)
        .header("content-type", "application/json")
        .body(vec![b' '; limit + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let invalid = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "request": {"uid": "u-bad",
        "desiredAPIVersion": "toolhive.stacklok.dev/v1beta1",
        "objects": [{"apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPRegistry", "metadata": {"name": "r", "namespace": "default"}, "spec": {}}]}});
    let resp: Value = client
        .post(&u)
        .json(&invalid)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["response"]["uid"], "u-bad");
    assert_eq!(resp["response"]["result"]["status"], "Failure");
    assert!(resp["response"]["result"]["message"]
        .as_str()
        .unwrap()
        .contains("spec.source: Required value"));
}
