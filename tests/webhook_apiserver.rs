//! End to end through an API server (the workspace's in-memory one): the webhook
//! configurations we generate, with our CA, make the API server call our webhooks over HTTPS;
//! objects come back defaulted, and a webhook-only rule (a Secret without the referenced key)
//! is refused with our message. The self-managed mode bootstraps all of it from nothing.

mod webhook_support;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use mcp_operator::api::{crd, GROUP, SERVED};
use mcp_operator::webhook::certs::{generate_ca, service_dns_names, write_cert_dir};
use mcp_operator::webhook::config::{
    mutating_configuration, validating_configuration, ConfigOptions,
};
use mcp_operator::webhook::lookup::KubeLookup;
use mcp_operator::webhook::selfmanaged::SelfManagedCerts;
use mcp_operator::webhook::server::{start, ServerOptions};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use test_apiserver::{Options, TestApiServer};

const NAMESPACE: &str = "mcp-operator-system";
const SERVICE: &str = "mcp-operator-webhook";

async fn cluster() -> (TestApiServer, kube::Client) {
    mcp_operator::crypto::install_provider();
    let apiserver = TestApiServer::start(Options::default())
        .await
        .expect("API server");
    let client = apiserver.client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in [NAMESPACE, "default"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let _ = namespaces.create(&PostParams::default(), &ns).await;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for c in crd::all() {
        crds.create(&PostParams::default(), &c).await.expect("CRD");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    (apiserver, client)
}

async fn install_configurations(client: &kube::Client, ca_bundle: Option<Vec<u8>>) {
    let mut options = ConfigOptions::new(SERVICE, NAMESPACE);
    options.ca_bundle = ca_bundle;
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating_configuration(&options))
        .await
        .expect("validating configuration");
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mutating_configuration(&options))
        .await
        .expect("mutating configuration");
}

fn mcpservers(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(GROUP, "v1beta1", "MCPServer");
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "mcpservers"),
    )
}

fn mcpserver(name: &str, secret: Option<(&str, &str)>) -> DynamicObject {
    let mut spec = json!({"image": "docker.io/mcp/fetch"});
    if let Some((name, key)) = secret {
        spec["secrets"] = json!([{"name": name, "key": key}]);
    }
    serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec
    }))
    .unwrap()
}

async fn create_secret(client: &kube::Client) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gh", "namespace": "default"}, "stringData": {"token": "t0ps3cret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_calls_our_webhooks_and_users_see_our_answers() {
    let (apiserver, client) = cluster().await;
    let ca = generate_ca("e2e CA", Duration::from_secs(3600)).unwrap();
    let pair = ca
        .issue_serving(
            &service_dns_names(SERVICE, NAMESPACE),
            Duration::from_secs(3600),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_cert_dir(dir.path(), &ca, &pair, false).unwrap();
    let mut options = ServerOptions::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    options.lookup = Some(Arc::new(KubeLookup::new(client.clone())));
    let server = start(options).await.unwrap();
    apiserver.set_service(
        &format!("{NAMESPACE}/{SERVICE}"),
        &server.addr().to_string(),
    );
    install_configurations(&client, Some(ca.cert_pem.clone().into_bytes())).await;
    create_secret(&client).await;

    let api = mcpservers(&client);
    let created = api
        .create(
            &PostParams::default(),
            &mcpserver("fetch", Some(("gh", "token"))),
        )
        .await
        .expect("a valid MCPServer is admitted");
    assert_eq!(
        created.data["spec"]["transport"], "stdio",
        "defaulted by our mutating webhook: {:?}",
        created.data
    );
    assert_eq!(created.data["spec"]["proxyPort"], 8080);

    let refused = api
        .create(
            &PostParams::default(),
            &mcpserver("typo", Some(("gh", "tokn"))),
        )
        .await;
    let kube::Error::Api(status) = refused.expect_err("a Secret without the key is refused") else {
        panic!("an API error")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert_eq!(status.reason, "Invalid");
    assert!(
        status.message.contains("admission webhook \"vmcpserver.toolhive.stacklok.dev\" denied the request: spec.secrets[0]"),
        "{}",
        status.message
    );
    assert!(
        !status.message.contains("t0ps3cret"),
        "never echo Secret values"
    );

    // A Secret applied later (GitOps order) is only a warning.
    api.create(
        &PostParams::default(),
        &mcpserver("later", Some(("not-yet", "token"))),
    )
    .await
    .expect("allowed with a warning");

    let metrics = server.metrics.encode();
    assert!(metrics.contains("webhook=\"mutate\",kind=\"MCPServer\",version=\"v1beta1\",operation=\"CREATE\",allowed=\"true\"} 3"), "{metrics}");
    assert!(metrics.contains("webhook=\"validate\",kind=\"MCPServer\",version=\"v1beta1\",operation=\"CREATE\",allowed=\"false\"} 1"), "{metrics}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_managed_certificates_bootstrap_the_webhooks_from_nothing() {
    let (apiserver, client) = cluster().await;
    install_configurations(&client, None).await;
    let dir = tempfile::tempdir().unwrap();
    let manager = |cert_dir: std::path::PathBuf| SelfManagedCerts {
        client: client.clone(),
        namespace: NAMESPACE.into(),
        secret_name: "mcp-operator-webhook-certs".into(),
        service_name: SERVICE.into(),
        webhook_configuration: "mcp-operator".into(),
        crds: SERVED
            .iter()
            .map(|s| format!("{}.{GROUP}", s.plural))
            .collect(),
        cert_dir,
    };
    manager(dir.path().to_path_buf())
        .reconcile()
        .await
        .expect("first replica");
    let second = tempfile::tempdir().unwrap();
    manager(second.path().to_path_buf())
        .reconcile()
        .await
        .expect("second replica");
    let first_cert = std::fs::read_to_string(dir.path().join("tls.crt")).unwrap();
    assert_eq!(
        first_cert,
        std::fs::read_to_string(second.path().join("tls.crt")).unwrap(),
        "replicas share one pair"
    );

    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .get("mcp-operator-webhook-certs")
        .await
        .unwrap();
    let ca = secret.data.as_ref().unwrap()["ca.crt"].0.clone();
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get("mcp-operator")
        .await
        .unwrap();
    for webhook in validating.webhooks.unwrap() {
        assert_eq!(
            webhook.client_config.ca_bundle.unwrap().0,
            ca,
            "{}",
            webhook.name
        );
    }
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(&format!("mcpservers.{GROUP}"))
        .await
        .unwrap();
    let bundle = crd
        .spec
        .conversion
        .unwrap()
        .webhook
        .unwrap()
        .client_config
        .unwrap()
        .ca_bundle
        .unwrap();
    assert_eq!(bundle.0, ca);

    let server = start(ServerOptions::new(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .unwrap();
    apiserver.set_service(
        &format!("{NAMESPACE}/{SERVICE}"),
        &server.addr().to_string(),
    );
    let created = mcpservers(&client)
        .create(&PostParams::default(), &mcpserver("fetch", None))
        .await
        .expect("admitted through the self-managed chain");
    assert_eq!(created.data["spec"]["transport"], "stdio");
    server.shutdown().await.unwrap();
}

/// The API server with our admission webhooks and our conversion webhook (CRDs trusting our CA).
async fn converting_cluster() -> (
    TestApiServer,
    kube::Client,
    mcp_operator::webhook::server::RunningServer,
    tempfile::TempDir,
) {
    mcp_operator::crypto::install_provider();
    let apiserver = TestApiServer::start(Options::default())
        .await
        .expect("API server");
    let client = apiserver.client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in [NAMESPACE, "default"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let _ = namespaces.create(&PostParams::default(), &ns).await;
    }
    let ca = generate_ca("conversion CA", Duration::from_secs(3600)).unwrap();
    let pair = ca
        .issue_serving(
            &service_dns_names(SERVICE, NAMESPACE),
            Duration::from_secs(3600),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_cert_dir(dir.path(), &ca, &pair, false).unwrap();
    let mut options = ServerOptions::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    options.conversion = Some(mcp_operator::webhook::conversion::handler());
    let server = start(options).await.unwrap();
    apiserver.set_service(
        &format!("{NAMESPACE}/{SERVICE}"),
        &server.addr().to_string(),
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        let hook = c
            .spec
            .conversion
            .as_mut()
            .unwrap()
            .webhook
            .as_mut()
            .unwrap();
        hook.client_config.as_mut().unwrap().ca_bundle =
            Some(k8s_openapi::ByteString(ca.cert_pem.clone().into_bytes()));
        crds.create(&PostParams::default(), &c).await.expect("CRD");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    install_configurations(&client, Some(ca.cert_pem.clone().into_bytes())).await;
    (apiserver, client, server, dir)
}

fn api_at(client: &kube::Client, version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(GROUP, version, kind);
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// Issue 17 item 16, through the API server: after `proxyPort` is patched at v1beta1 the object
/// read at v1alpha1 shows no stale `port`, and a later v1alpha1 edit of `port` takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_edit_at_either_version_takes_effect() {
    let (_apiserver, client, server, _dir) = converting_cluster().await;
    let alpha = api_at(&client, "v1alpha1", "MCPServer", "mcpservers");
    let beta = api_at(&client, "v1beta1", "MCPServer", "mcpservers");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/v1alpha1/mcpserver-old.yaml"
    ))
    .unwrap();
    let mut old: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    old["metadata"]["namespace"] = json!("default");
    old.as_object_mut().unwrap().remove("status");
    alpha
        .create(
            &PostParams::default(),
            &serde_json::from_value(old).unwrap(),
        )
        .await
        .expect("the old example is accepted");
    let merge = |v: serde_json::Value| kube::api::Patch::Merge(v);
    let params = kube::api::PatchParams::default();
    beta.patch(
        "time",
        &params,
        &merge(json!({"spec": {"proxyPort": 7000}})),
    )
    .await
    .expect("patched at v1beta1");
    let read = alpha.get("time").await.unwrap();
    assert_eq!(read.data["spec"]["proxyPort"], 7000, "{:?}", read.data);
    assert!(
        read.data["spec"].get("port").is_none(),
        "stale port: {:?}",
        read.data
    );
    let generation = beta.get("time").await.unwrap().metadata.generation;

    alpha
        .patch("time", &params, &merge(json!({"spec": {"port": 7100}})))
        .await
        .expect("patched at v1alpha1");
    let stored = beta.get("time").await.unwrap();
    assert_eq!(stored.data["spec"]["proxyPort"], 7100, "{:?}", stored.data);
    assert!(
        stored.metadata.generation > generation,
        "the edit changed the spec"
    );
    let read = alpha.get("time").await.unwrap();
    assert_eq!(read.data["spec"]["port"], 7100);
    assert_eq!(read.data["spec"]["proxyPort"], 7100);
    server.shutdown().await.unwrap();
}

/// Issue 17 item 17, through the API server: stash annotations written by hand are judged as
/// the fields they become, and a stash that is not JSON is refused, at either version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_written_stash_is_judged_as_the_field_it_becomes() {
    let (_apiserver, client, server, _dir) = converting_cluster().await;
    let proxies = api_at(&client, "v1alpha1", "MCPRemoteProxy", "mcpremoteproxies");
    let proxy = |annotations: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPRemoteProxy",
            "metadata": {"name": "r", "namespace": "default", "annotations": annotations},
            "spec": {"remoteURL": "https://mcp.example.com/mcp"}
        }))
        .unwrap()
    };
    let refused = |r: Result<DynamicObject, kube::Error>| -> String {
        match r {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{status:?}");
                status.message
            }
            other => panic!("expected a denial, got {other:?}"),
        }
    };
    for (key, value, want) in [
        ("replicas", "-7", "spec.replicas: Invalid value: -7"),
        (
            "allowPrivateEndpoint",
            "\"maybe\"",
            "spec.allowPrivateEndpoint: Invalid value",
        ),
        ("allowPrivateEndpoint", "maybe", "not valid JSON"),
        (
            "podTemplateSpec",
            "{\"spec\":{\"containers\":7}}",
            "spec.podTemplateSpec.spec.containers",
        ),
    ] {
        let annotation = format!("toolhive.stacklok.dev/v1beta1-{key}");
        let message = refused(
            proxies
                .create(
                    &PostParams::default(),
                    &proxy(json!({ &annotation: value })),
                )
                .await,
        );
        assert!(message.contains(want), "{key}={value}: {message}");
        assert!(
            message.contains(&annotation),
            "{key}={value}: names the annotation: {message}"
        );
    }
    let created = proxies
        .create(
            &PostParams::default(),
            &proxy(json!({"toolhive.stacklok.dev/v1beta1-replicas": "2"})),
        )
        .await
        .expect("a stash the operator could have written is accepted");
    assert_eq!(created.metadata.name.as_deref(), Some("r"));
    let stored = api_at(&client, "v1beta1", "MCPRemoteProxy", "mcpremoteproxies")
        .get("r")
        .await
        .unwrap();
    assert_eq!(stored.data["spec"]["replicas"], 2);

    let servers = api_at(&client, "v1beta1", "MCPServer", "mcpservers");
    let server_with_stash: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": "s", "namespace": "default",
                     "annotations": {"toolhive.stacklok.dev/v1alpha1-port": "nine"}},
        "spec": {"image": "docker.io/mcp/fetch"}
    }))
    .unwrap();
    let message = refused(
        servers
            .create(&PostParams::default(), &server_with_stash)
            .await,
    );
    assert!(message.contains("not valid JSON"), "{message}");
    server.shutdown().await.unwrap();
}
