//! The MCPRegistry reconciler against the in-memory API server: the registry API's children
//! with the documented names, the config byte for byte, rollouts on config and pgpass Secret
//! changes, status from the pods' readiness, the pgpass wiring that never copies the password,
//! and a spec the admission core refuses.

mod controller_support;

use controller_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use mcp_operator::api::v1beta1::{MCPRegistry, MCPRegistryStatus};
use mcp_operator::controller::mcpregistry_children::{
    role_rules, CONFIG_HASH, DEFAULT_API_IMAGE, PGPASS_FILE,
};
use serde_json::{json, Value};
use std::time::Duration;

const NS: &str = "toolhive-system";

/// Creates the registry with the defaults the webhook would fill in (it must pass admission).
async fn create_registry(client: &Client, obj: Value) -> MCPRegistry {
    let verdict =
        mcp_operator::admission::admit(&obj, None, mcp_operator::admission::Operation::Create)
            .unwrap();
    assert!(verdict.allowed(), "{}", verdict.errors);
    let registry: MCPRegistry = serde_json::from_value(verdict.defaulted).unwrap();
    let ns = registry.metadata.namespace.clone().unwrap();
    Api::<MCPRegistry>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &registry)
        .await
        .unwrap()
}

fn registry_obj(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRegistry",
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

const GIT_CONFIG: &str = "sources:\n  - name: upstream\n    git:\n      repository: https://github.com/stacklok/toolhive-registry\n      branch: main\n      path: registry.json\nregistries:\n  - name: default\n    sources: [upstream]\n";

fn pod_annotation(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH]
        .clone()
}

/// The registry's status once `accept` holds.
async fn status_when(
    client: &Client,
    name: &str,
    what: &str,
    accept: impl Fn(&MCPRegistryStatus) -> bool,
) -> MCPRegistryStatus {
    let api: Api<MCPRegistry> = Api::namespaced(client.clone(), NS);
    let accept = &accept;
    eventually(&format!("{name}: {what}"), || {
        let api = api.clone();
        async move {
            let s = api.get(name).await.ok()?.status?;
            accept(&s).then_some(s)
        }
    })
    .await
}

fn ready_condition(s: &MCPRegistryStatus) -> (String, String, String) {
    let c = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Fails naming the writes (Events aside) the server received since the last clear.
fn assert_no_writes(h: &Harness, when: &str) {
    let writes: Vec<String> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| r.verb.is_write() && r.resource != "events")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "writes {when}: {writes:?}");
}

#[tokio::test]
async fn the_seed_registry_gets_its_children_rolls_on_config_edits_and_becomes_ready() {
    let h = start(None).await;
    let c = &h.client;
    // The seed's data, as its comment says to create it.
    Api::<ConfigMap>::namespaced(c.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "my-registry-data"},
                "data": {"registry.json": "{\"servers\": []}"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let seed = seed("mcpregistry.yaml");
    let config_yaml = seed["spec"]["configYAML"].as_str().unwrap().to_string();
    create_registry(c, seed).await;

    let cm: ConfigMap = eventually("ConfigMap", || {
        get(c, NS, "my-registry-registry-server-config")
    })
    .await;
    assert_eq!(
        cm.data.as_ref().unwrap()["config.yaml"],
        config_yaml,
        "the config, byte for byte"
    );
    let _sa: ServiceAccount =
        eventually("ServiceAccount", || get(c, NS, "my-registry-registry-api")).await;
    let role: Role = eventually("Role", || get(c, NS, "my-registry-registry-api")).await;
    let binding: RoleBinding =
        eventually("RoleBinding", || get(c, NS, "my-registry-registry-api")).await;
    let dep: Deployment = eventually("Deployment", || get(c, NS, "my-registry-api")).await;
    let svc: Service = eventually("Service", || get(c, NS, "my-registry-api")).await;

    // Upstream's Role, bound to the registry API's own ServiceAccount.
    assert_eq!(serde_json::to_value(&role.rules).unwrap(), role_rules());
    assert_eq!(binding.role_ref.name, "my-registry-registry-api");
    let subject = &binding.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "my-registry-registry-api", Some(NS))
    );

    // Every child: our labels, upstream's, and a controller reference to the registry.
    for (kind, meta) in [
        ("ConfigMap", &cm.metadata),
        ("Role", &role.metadata),
        ("RoleBinding", &binding.metadata),
        ("Deployment", &dep.metadata),
        ("Service", &svc.metadata),
    ] {
        let labels = meta.labels.clone().unwrap();
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "mcp-operator",
            "{kind}"
        );
        assert_eq!(labels["app.kubernetes.io/name"], "mcpregistry", "{kind}");
        assert_eq!(
            labels["app.kubernetes.io/instance"], "my-registry",
            "{kind}"
        );
        assert_eq!(
            labels["toolhive.stacklok.io/registry-name"], "my-registry",
            "{kind}"
        );
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("MCPRegistry", "my-registry", Some(true)),
            "{kind}"
        );
    }

    let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("my-registry-registry-api")
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    let api = &pod.containers[0];
    assert_eq!(api.name, "registry-api");
    assert_eq!(api.image.as_deref(), Some(DEFAULT_API_IMAGE));
    assert_eq!(
        api.args.as_deref().unwrap(),
        ["serve", "--config=/config/config.yaml"]
    );
    let port = &api.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http"), 8080)
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (
            get.path.clone().unwrap(),
            serde_json::to_value(&get.port).unwrap(),
        )
    };
    assert_eq!(
        probe_path(&api.liveness_probe),
        ("/health".into(), json!(8081))
    );
    assert_eq!(
        probe_path(&api.readiness_probe),
        ("/readiness".into(), json!(8081))
    );
    let mounts: Vec<(&str, &str)> = api
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("registry-server-config", "/config"),
            ("my-source-data", "/config/registry/my-source")
        ]
    );
    let volumes: Vec<&str> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(volumes, ["registry-server-config", "my-source-data"]);
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 8080);

    // No pod is ready yet: Pending, no url.
    let pending = status_when(c, "my-registry", "Pending", |s| {
        s.phase.as_deref() == Some("Pending")
    })
    .await;
    assert_eq!(pending.url, None);
    assert_eq!(pending.ready_replicas, Some(0));
    assert_eq!(ready_condition(&pending).1, "NotReady");

    // Editing the config updates the ConfigMap byte for byte and rolls the pods.
    let before = pod_annotation(&dep);
    let edited = config_yaml.replace("interval: 1h", "interval: 30m");
    assert_ne!(edited, config_yaml);
    Api::<MCPRegistry>::namespaced(c.clone(), NS)
        .patch(
            "my-registry",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"configYAML": edited}})),
        )
        .await
        .unwrap();
    let rolled: Deployment = eventually("a new pod template", || async {
        let d: Deployment = get(c, NS, "my-registry-api").await?;
        (pod_annotation(&d) != before).then_some(d)
    })
    .await;
    let cm: ConfigMap = get(c, NS, "my-registry-registry-server-config")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["config.yaml"], edited);

    // The fake has no kubelet: say the pods are ready, as the Deployment controller would.
    Api::<Deployment>::namespaced(c.clone(), NS)
        .patch_status(
            "my-registry-api",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await
        .unwrap();
    let ready = status_when(c, "my-registry", "Ready", |s| {
        s.phase.as_deref() == Some("Ready")
    })
    .await;
    assert_eq!(
        ready.url.as_deref(),
        Some("http://my-registry-api.toolhive-system:8080")
    );
    assert_eq!(ready.ready_replicas, Some(1));
    assert_eq!(ready.observed_generation, Some(2));
    let (status, reason, _) = ready_condition(&ready);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Ready"));
    assert_eq!(
        pod_annotation(&rolled),
        pod_annotation(&get::<Deployment>(c, NS, "my-registry-api").await.unwrap())
    );

    // Converged: nothing more is written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.server.clear_requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_writes(&h, "once Ready");
}

#[tokio::test]
async fn pgpass_goes_through_volumes_only_and_its_rotation_rolls_the_pods() {
    let h = start(None).await;
    let c = &h.client;
    const PASSWORD: &str = "db:5432:registry:db_app:n0t-in-any-configmap";
    let secrets: Api<Secret> = Api::namespaced(c.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "registry-pgpass"}, "stringData": {".pgpass": PASSWORD}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    create_registry(
        c,
        registry_obj(
            "db",
            json!({"configYAML": GIT_CONFIG, "pgpassSecretRef": {"name": "registry-pgpass", "key": ".pgpass"}}),
        ),
    )
    .await;
    let dep: Deployment = eventually("Deployment", || get(c, NS, "db-api")).await;
    let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, "setup-pgpass");
    assert_eq!(
        init.image.as_deref(),
        Some("example.com/mcp-operator:test"),
        "the operator's own image, never a floating tag"
    );
    assert!(init.env.is_none());
    let secret_volume = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref())
        .unwrap();
    assert_eq!(
        secret_volume.secret_name.as_deref(),
        Some("registry-pgpass")
    );
    let api = &pod.containers[0];
    let env = api.env.as_ref().unwrap();
    assert_eq!(
        (env[0].name.as_str(), env[0].value.as_deref()),
        ("PGPASSFILE", Some(PGPASS_FILE))
    );
    assert!(api
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == PGPASS_FILE && m.name == "pgpass"));

    // The password is in no ConfigMap, no status and no child spec.
    let everywhere = serde_json::to_string(
        &Api::<ConfigMap>::namespaced(c.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap(),
    )
    .unwrap()
        + &serde_json::to_string(&dep).unwrap()
        + &serde_json::to_string(
            &Api::<MCPRegistry>::namespaced(c.clone(), NS)
                .get("db")
                .await
                .unwrap(),
        )
        .unwrap();
    assert!(!everywhere.contains("n0t-in-any-configmap"));

    // A new password rolls the pods (the init container copies it only at start).
    let before = pod_annotation(&dep);
    secrets
        .patch(
            "registry-pgpass",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {".pgpass": "db:5432:registry:db_app:rotated"}})),
        )
        .await
        .unwrap();
    eventually("pods rolled by the rotation", || async {
        let d: Deployment = get(c, NS, "db-api").await?;
        (pod_annotation(&d) != before).then_some(())
    })
    .await;

    // A Secret that does not exist: the pods wait for it, and the status says so.
    create_registry(
        c,
        registry_obj(
            "nodb",
            json!({"configYAML": GIT_CONFIG, "pgpassSecretRef": {"name": "not-yet", "key": ".pgpass"}}),
        ),
    )
    .await;
    let waiting = status_when(c, "nodb", "waiting for its Secret", |s| {
        s.message.as_deref().is_some_and(|m| m.contains("not-yet"))
    })
    .await;
    assert_eq!(waiting.phase.as_deref(), Some("Pending"));
    assert!(waiting.message.unwrap().contains("does not exist"));

    // Converged, pgpass wiring included: a restarted operator (empty caches, no memory of its
    // writes) finds nothing to write either.
    let mut h = h;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.restart_controller();
    h.server.clear_requests();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_no_writes(&h, "after a restart");
}

/// The webhook may be off: a spec the admission core refuses gets nothing, and says why with
/// the field path.
#[tokio::test]
async fn a_refused_spec_gets_no_children_and_says_why() {
    let h = start(None).await;
    let c = &h.client;
    let obj = registry_obj(
        "hidden",
        json!({"configYAML": GIT_CONFIG, "podTemplateSpec": {"spec": {
            "volumes": [{"name": "mine", "emptyDir": {}}],
            "containers": [{"name": "registry-api", "volumeMounts": [{"name": "mine", "mountPath": "/config"}]}]}}}),
    );
    // Straight to the API server, as with the webhook bypassed.
    Api::<MCPRegistry>::namespaced(c.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(obj).unwrap(),
        )
        .await
        .unwrap();
    let failed = status_when(c, "hidden", "Failed", |s| {
        s.phase.as_deref() == Some("Failed")
    })
    .await;
    let (status, reason, message) = ready_condition(&failed);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ValidationFailed")
    );
    assert!(
        message.contains("spec.podTemplateSpec.spec.containers[0].volumeMounts[0].mountPath"),
        "{message}"
    );
    let template = failed
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodTemplateValid")
        .unwrap();
    assert_eq!(template.reason, "InvalidPodTemplateSpec");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(get::<Deployment>(c, NS, "hidden-api").await.is_none());
    assert!(get::<ConfigMap>(c, NS, "hidden-registry-server-config")
        .await
        .is_none());
}
