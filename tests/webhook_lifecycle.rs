//! Readiness, graceful shutdown, and cross-object checks through the served webhook.

mod webhook_support;

use futures::future::BoxFuture;
use mcp_operator::admission::{references, RefKind};
use mcp_operator::webhook::lookup::{Keys, LookupError, ObjectLookup};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook_support::*;

#[tokio::test]
async fn shutdown_reports_not_ready_then_finishes_in_flight_requests() {
    let pki = Pki::new();
    let mut options = options(&pki);
    options.shutdown_delay = Duration::from_millis(300);
    // A slow route stands in for a review in flight when SIGTERM arrives.
    options.conversion = Some(axum::routing::post(|| async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        "done"
    }));
    let server = mcp_operator::webhook::start(options).await.unwrap();
    let client = client(&pki, &server);
    let ready_url = metrics_url(&server, "/readyz");
    assert_eq!(reqwest::get(&ready_url).await.unwrap().status(), 200);

    let slow = tokio::spawn({
        let client = client.clone();
        let url = url(&server, "/convert");
        async move {
            let response = client
                .post(url)
                .send()
                .await
                .expect("the in-flight request completes");
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = server.addr();
    let readiness = server.readiness.clone();
    let started = Instant::now();
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !readiness.is_ready(),
        "not ready as soon as shutdown starts"
    );
    // During the shutdown delay the listener still accepts (endpoints may lag behind).
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());

    assert_eq!(slow.await.unwrap(), (200, "done".to_string()));
    shutdown.await.unwrap().expect("clean shutdown");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// An in-memory namespace `default` with Secret `gh` (key `token`), ConfigMap `cfg` and
/// MCPGroup `team`.
struct FakeCluster;

impl ObjectLookup for FakeCluster {
    fn keys<'a>(
        &'a self,
        kind: RefKind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Keys, LookupError>> {
        Box::pin(async move {
            let keys: Option<&[&str]> = match (kind, namespace, name) {
                (RefKind::Secret, "default", "gh") => Some(&["token"]),
                (RefKind::ConfigMap, "default", "cfg") => Some(&["config.yaml"]),
                (RefKind::MCPGroup, "default", "team") => Some(&[]),
                _ => None,
            };
            Ok(keys.map(|k| Arc::new(k.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>())))
        })
    }
}

fn server_with_secret(name: &str, key: &str) -> serde_json::Value {
    let mut object = fetch_server();
    object["spec"]["secrets"] = json!([{"name": name, "key": key}]);
    object
}

#[tokio::test]
async fn referenced_objects_are_checked_when_a_cluster_is_configured() {
    let pki = Pki::new();
    let server = serve_with_lookup(&pki, Arc::new(FakeCluster)).await;
    let client = client(&pki, &server);
    let path = "/validate-toolhive-stacklok-dev-v1beta1-mcpserver";
    let send = |object: serde_json::Value| {
        let review = review(
            "MCPServer",
            "v1beta1",
            "mcpservers",
            "CREATE",
            Some(&object),
            None,
        );
        let client = client.clone();
        let server = &server;
        async move { post(&client, server, path, &review).await.1 }
    };

    let good = server_with_secret("gh", "token");
    assert!(
        references(&good)
            .iter()
            .any(|r| r.kind == RefKind::Secret && r.name == "gh"),
        "the admission core reports spec.secrets as references"
    );
    let body = send(good).await;
    assert_eq!(body["response"]["allowed"], true, "{body}");
    assert!(body["response"].get("warnings").is_none(), "{body}");

    let body = send(server_with_secret("missing", "token")).await;
    assert_eq!(
        body["response"]["allowed"], true,
        "a missing Secret is only a warning: {body}"
    );
    let warning = body["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("Secret \"missing\" does not exist"),
        "{warning}"
    );

    let body = send(server_with_secret("gh", "tokn")).await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    assert_eq!(body["response"]["status"]["code"], 422);
    let cause = &body["response"]["status"]["details"]["causes"][0];
    assert!(
        cause["field"]
            .as_str()
            .unwrap()
            .starts_with("spec.secrets[0]"),
        "{cause}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_cluster_references_are_skipped_with_a_warning() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    let review = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "CREATE",
        Some(&server_with_secret("gh", "token")),
        None,
    );
    let (_, body) = post(
        &client,
        &server,
        "/validate-toolhive-stacklok-dev-v1beta1-mcpserver",
        &review,
    )
    .await;
    assert_eq!(body["response"]["allowed"], true, "{body}");
    let warnings = body["response"]["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("were not checked")),
        "{warnings:?}"
    );
    server.shutdown().await.unwrap();
}
