//! Shared by the `webhook_*` integration tests: a generated PKI, a server on 127.0.0.1:0 over
//! real TLS, a client that trusts only the test CA, and review builders.
#![allow(dead_code)]

use mcp_operator::api::GROUP;
use mcp_operator::webhook::certs::{
    generate_ca, write_cert_dir, CertificateAuthority, ServingPair,
};
use mcp_operator::webhook::lookup::ObjectLookup;
use mcp_operator::webhook::server::{start, RunningServer, ServerOptions};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The name the test server's certificate is issued for; the client resolves it to loopback.
pub const HOST: &str = "webhook.test";

/// A CA and a certificate directory holding a serving pair it signed.
pub struct Pki {
    pub ca: CertificateAuthority,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        mcp_operator::crypto::install_provider();
        let ca = generate_ca("mcp-operator test CA", Duration::from_secs(3600)).expect("CA");
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki { ca, dir };
        let pair = pki.issue();
        write_cert_dir(pki.dir.path(), &pki.ca, &pair, false).expect("write certs");
        pki
    }

    /// A new serving pair for [`HOST`] from the same CA.
    pub fn issue(&self) -> ServingPair {
        self.ca
            .issue_serving(
                &[HOST.to_string(), "127.0.0.1".to_string()],
                Duration::from_secs(3600),
            )
            .expect("serving pair")
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Options for a server on loopback with a fast certificate poll and no shutdown delay.
pub fn options(pki: &Pki) -> ServerOptions {
    let mut options = ServerOptions::new(pki.path(), "127.0.0.1:0".parse().unwrap());
    options.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    options.reload_interval = Duration::from_millis(50);
    options.drain_timeout = Duration::from_secs(5);
    options
}

pub async fn serve(pki: &Pki) -> RunningServer {
    start(options(pki)).await.expect("server starts")
}

pub async fn serve_with_lookup(pki: &Pki, lookup: Arc<dyn ObjectLookup>) -> RunningServer {
    let mut options = options(pki);
    options.lookup = Some(lookup);
    start(options).await.expect("server starts")
}

/// A client that trusts only the test CA and reaches [`HOST`] at `server`'s address.
pub fn client(pki: &Pki, server: &RunningServer) -> reqwest::Client {
    client_builder(pki, server).build().expect("client")
}

pub fn client_builder(pki: &Pki, server: &RunningServer) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(pki.ca.cert_pem.as_bytes()).expect("CA pem");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve(HOST, server.addr())
        .timeout(Duration::from_secs(10))
}

pub fn url(server: &RunningServer, path: &str) -> String {
    format!("https://{HOST}:{}{path}", server.addr().port())
}

pub fn metrics_url(server: &RunningServer, path: &str) -> String {
    format!(
        "http://{}{path}",
        server.metrics_addr().expect("metrics listener")
    )
}

/// An AdmissionReview v1 for an object of our group.
pub fn review(
    kind: &str,
    version: &str,
    plural: &str,
    operation: &str,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Value {
    let name = object
        .or(old)
        .and_then(|o| o.pointer("/metadata/name"))
        .cloned()
        .unwrap_or(json!("fetch"));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{kind}-{version}-{operation}"),
            "kind": {"group": GROUP, "version": version, "kind": kind},
            "resource": {"group": GROUP, "version": version, "resource": plural},
            "requestKind": {"group": GROUP, "version": version, "kind": kind},
            "requestResource": {"group": GROUP, "version": version, "resource": plural},
            "name": name,
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-client-side-apply"}
        }
    })
}

/// The valid MCPServer of the admission contract.
pub fn fetch_server() -> Value {
    json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1",
        "kind": "MCPServer",
        "metadata": {"name": "fetch", "namespace": "default"},
        "spec": {"image": "docker.io/mcp/fetch"}
    })
}

/// A minimal object of `kind` at `version`.
pub fn minimal(kind: &str, version: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{version}"),
        "kind": kind,
        "metadata": {"name": "sample", "namespace": "default", "creationTimestamp": null},
        "spec": {}
    })
}

/// Posts a review to `path` and returns the HTTP status and the JSON body.
pub async fn post(
    client: &reqwest::Client,
    server: &RunningServer,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .post(url(server, path))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON answer");
    (status, body)
}

/// Applies the response's patch (if any) to `object`.
pub fn apply_patch(object: &Value, response: &Value) -> Value {
    let mut patched = object.clone();
    if let Some(patch) = response.get("patch").and_then(Value::as_str) {
        use base64::Engine;
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("base64 patch");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("JSON Patch");
        json_patch::patch(&mut patched, &patch).expect("patch applies to the request object");
    }
    patched
}
