//! The storage-version migrator against the in-memory API server: objects are re-written at the
//! storage version, `storedVersions` is trimmed, and a second run writes nothing.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use mcp_operator::api::crd;
use mcp_operator::controller::migrate::{migrate_all, MigrationMetrics};
use serde_json::json;
use test_apiserver::{Options, TestApiServer, Verb};

async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        // No conversion webhook runs in this test; the fake rewrites apiVersion instead.
        c.spec.conversion = None;
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
}

async fn stored_versions(client: &kube::Client, name: &str) -> Vec<String> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.get(name)
        .await
        .unwrap()
        .status
        .unwrap()
        .stored_versions
        .unwrap_or_default()
}

#[tokio::test]
async fn migrates_then_does_nothing() {
    mcp_operator::crypto::install_provider();
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let client = server.client().unwrap();
    install_crds(&client).await;
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .unwrap();

    // 250 servers (more than two list pages) from an older release.
    let ar = ApiResource {
        group: "toolhive.stacklok.dev".into(),
        version: "v1beta1".into(),
        api_version: "toolhive.stacklok.dev/v1beta1".into(),
        kind: "MCPServer".into(),
        plural: "mcpservers".into(),
    };
    let servers: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team", &ar);
    for i in 0..250 {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": format!("s{i}"), "namespace": "team"},
            "spec": {"image": "docker.io/mcp/fetch"}
        }))
        .unwrap();
        servers.create(&PostParams::default(), &obj).await.unwrap();
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let legacy = json!({"status": {"storedVersions": ["v1alpha1", "v1beta1"]}});
    crds.patch_status(
        "mcpservers.toolhive.stacklok.dev",
        &PatchParams::default(),
        &Patch::Merge(&legacy),
    )
    .await
    .unwrap();
    assert_eq!(
        stored_versions(&client, "mcpservers.toolhive.stacklok.dev").await,
        ["v1alpha1", "v1beta1"]
    );

    server.clear_requests();
    let metrics = MigrationMetrics::default();
    let done = migrate_all(&client, &metrics).await.unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].crd, "mcpservers.toolhive.stacklok.dev");
    assert_eq!(done[0].rewritten, 250);
    let puts = server.request_count(|r| r.verb == Verb::Update && r.resource == "mcpservers");
    assert_eq!(puts, 250, "every object re-written once");
    assert_eq!(
        stored_versions(&client, "mcpservers.toolhive.stacklok.dev").await,
        ["v1beta1"]
    );
    // Other CRDs had only the storage version: untouched.
    assert_eq!(
        stored_versions(&client, "mcpgroups.toolhive.stacklok.dev").await,
        ["v1beta1"]
    );

    server.clear_requests();
    let again = migrate_all(&client, &metrics).await.unwrap();
    assert!(again.is_empty());
    let writes = server.request_count(|r| r.verb.is_write());
    assert_eq!(writes, 0, "a second run writes nothing");
}
