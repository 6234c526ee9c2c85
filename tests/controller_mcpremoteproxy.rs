//! The MCPRemoteProxy reconciler against the in-memory API server: children with the documented
//! names, labels and ports, header Secrets as `secretKeyRef` env (never in the ConfigMap), status
//! url, Ready and RemoteAvailable from the pods, nothing rolled out on a bad reference or an
//! address the guard refuses, and a change of the MCPToolConfig rolls the pods.

mod controller_support;

use controller_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use mcp_operator::api::v1beta1::{MCPRemoteProxy, MCPTelemetryConfig, MCPToolConfig};
use mcp_operator::controller::children::CONFIG_CHECKSUM;
use serde_json::{json, Value};
use std::time::Duration;

const NS: &str = "default";
const SECRET_VALUE: &str = "the-api-key-value-7c1d";

/// Creates the proxy as kubectl would after the webhook defaulted it (`admit` false: as if the
/// webhook were off, so the reconciler's own check is what stands).
async fn create_proxy(client: &Client, obj: Value, admit: bool) {
    let obj = if admit {
        let verdict =
            mcp_operator::admission::admit(&obj, None, mcp_operator::admission::Operation::Create)
                .unwrap();
        assert!(verdict.allowed(), "{}", verdict.errors);
        verdict.defaulted
    } else {
        obj
    };
    let proxy: MCPRemoteProxy = serde_json::from_value(obj).unwrap();
    Api::<MCPRemoteProxy>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &proxy)
        .await
        .unwrap();
}

fn proxy(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

async fn create<K>(client: &Client, obj: Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(obj).unwrap(),
        )
        .await
        .unwrap();
}

/// Waits until the proxy's condition `type_` has `status` and `reason`; returns its status.
async fn wait_for(client: &Client, name: &str, type_: &str, status: &str, reason: &str) -> Value {
    let api: Api<MCPRemoteProxy> = Api::namespaced(client.clone(), NS);
    eventually(&format!("{name}: {type_}={status} {reason}"), || {
        let api = api.clone();
        async move {
            let obj = api.get(name).await.ok()?;
            let status_json = serde_json::to_value(obj.status?).ok()?;
            let found = status_json["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == type_ && c["status"] == status && c["reason"] == reason);
            found.then_some(status_json)
        }
    })
    .await
}

fn pod_checksum(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_CHECKSUM]
        .clone()
}

#[tokio::test]
async fn a_proxy_gets_its_children_and_reports_the_remote_through_its_pods() {
    let h = start(None).await;
    let c = &h.client;
    create::<Secret>(
        c,
        json!({"metadata": {"name": "remote-api"}, "stringData": {"key": SECRET_VALUE}}),
    )
    .await;
    create::<MCPToolConfig>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
               "metadata": {"name": "tools"},
               "spec": {"toolsFilter": ["say"], "toolsOverride": {"echo": {"name": "say"}}}}),
    )
    .await;
    create_proxy(
        c,
        proxy(
            "weather",
            json!({
                "remoteUrl": "https://mcp.weather.example.com/mcp", "proxyPort": 9090,
                "toolConfigRef": {"name": "tools"},
                "headerForward": {
                    "addPlaintextHeaders": {"X-Tenant": "acme"},
                    "addHeadersFromSecret": [{"headerName": "X-Api-Key",
                        "valueSecretRef": {"name": "remote-api", "key": "key"}}]},
            }),
        ),
        true,
    )
    .await;

    let dep: Deployment = eventually("Deployment", || get(c, NS, "weather")).await;
    let svc: Service = eventually("Service", || get(c, NS, "mcp-weather-remote-proxy")).await;
    let cm: ConfigMap = eventually("ConfigMap", || get(c, NS, "weather-remote-proxy-config")).await;
    let _sa: ServiceAccount = eventually("ServiceAccount", || {
        get(c, NS, "weather-remote-proxy-runner")
    })
    .await;

    for labels in [
        dep.metadata.labels.clone().unwrap(),
        svc.metadata.labels.clone().unwrap(),
        cm.metadata.labels.clone().unwrap(),
    ] {
        assert_eq!(labels["app.kubernetes.io/managed-by"], "mcp-operator");
        assert_eq!(labels["app.kubernetes.io/name"], "mcpremoteproxy");
        assert_eq!(labels["app.kubernetes.io/instance"], "weather");
    }
    let owner = &dep.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("MCPRemoteProxy", "weather", Some(true))
    );
    let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("example.com/mcp-operator:test")
    );
    assert_eq!(container.args.as_ref().unwrap()[0], "bridge");
    let port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http"), 9090)
    );
    let svc_port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(svc_port.port, 9090);
    let env = &container.env.as_ref().unwrap()[0];
    assert!(env.value.is_none(), "no value copied out of the Secret");
    let key_ref = env
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("remote-api", "key")
    );
    let config = &cm.data.as_ref().unwrap()["bridge.json"];
    assert!(!config.contains(SECRET_VALUE), "{config}");
    let config: Value = serde_json::from_str(config).unwrap();
    assert_eq!(config["remoteUrl"], "https://mcp.weather.example.com/mcp");
    assert_eq!(config["headersFromEnv"]["X-Api-Key"], json!(env.name));
    assert_eq!(config["tools"], json!(["say"]));
    let security = pod.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));

    let status = wait_for(c, "weather", "Ready", "False", "DeploymentNotReady").await;
    assert_eq!(
        status["url"],
        "http://mcp-weather-remote-proxy.default.svc.cluster.local:9090"
    );
    assert_eq!(status["phase"], "Pending");
    assert!(status["toolConfigHash"].is_string(), "{status}");
    let remote = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "RemoteAvailable")
        .cloned();
    assert_eq!(remote.unwrap()["status"], "False");

    // A pod turns ready only when its bridge initialized a session with the remote.
    Api::<Deployment>::namespaced(c.clone(), NS)
        .patch_status(
            "weather",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    let status = wait_for(c, "weather", "RemoteAvailable", "True", "RemoteReachable").await;
    assert_eq!(status["phase"], "Ready");
    let hash_before = status["toolConfigHash"].clone();

    // The tool config changes: the pods roll (new checksum), and the status says which config.
    let before = pod_checksum(&dep);
    Api::<MCPToolConfig>::namespaced(c.clone(), NS)
        .patch(
            "tools",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"toolsOverride": {"echo": {"name": "say", "description": "new"}}}}),
            ),
        )
        .await
        .unwrap();
    let rolled = eventually("a new pod template", || async {
        let d: Deployment = get(c, NS, "weather").await?;
        (pod_checksum(&d) != before).then_some(d)
    })
    .await;
    let cm: ConfigMap = get(c, NS, "weather-remote-proxy-config").await.unwrap();
    assert!(cm.data.unwrap()["bridge.json"].contains("\"new\""));
    assert_ne!(pod_checksum(&rolled), before);
    let api: Api<MCPRemoteProxy> = Api::namespaced(c.clone(), NS);
    eventually("a new toolConfigHash", || async {
        let s = api.get("weather").await.ok()?.status?;
        (s.tool_config_hash.as_ref().map(|h| json!(h)) != Some(hash_before.clone())).then_some(())
    })
    .await;

    // The Service's selector is ours whole, as for MCPServer: a key someone adds (which would
    // select no pod while the proxy still looked Ready) is taken out again.
    let services: Api<Service> = Api::namespaced(c.clone(), NS);
    services
        .patch(
            "mcp-weather-remote-proxy",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"tier": "none"}}})),
        )
        .await
        .unwrap();
    eventually("the selector without the added key", || async {
        let s: Service = get(c, NS, "mcp-weather-remote-proxy").await?;
        let selector = s.spec?.selector?;
        (!selector.contains_key("tier")).then_some(())
    })
    .await;
}

/// A bad reference or a refused address: nothing is rolled out, and the conditions say why.
#[tokio::test]
async fn nothing_is_rolled_out_on_a_bad_reference_or_a_refused_address() {
    let h = start(None).await;
    let c = &h.client;
    // The webhook is off here: the reconciler's own check refuses the metadata address.
    create_proxy(
        c,
        proxy(
            "meta",
            json!({"remoteUrl": "http://169.254.169.254/latest"}),
        ),
        false,
    )
    .await;
    let status = wait_for(c, "meta", "ConfigurationValid", "False", "RemoteURLInvalid").await;
    assert_eq!(status["phase"], "Failed");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.remoteUrl"),
        "{status}"
    );

    create_proxy(
        c,
        proxy(
            "keyed",
            json!({"remoteUrl": "https://mcp.example.com/mcp", "headerForward": {"addHeadersFromSecret": [
                {"headerName": "Authorization", "valueSecretRef": {"name": "later", "key": "token"}}]}}),
        ),
        true,
    )
    .await;
    let status = wait_for(
        c,
        "keyed",
        "ConfigurationValid",
        "False",
        "HeaderSecretNotFound",
    )
    .await;
    assert!(
        status["message"].as_str().unwrap().contains("\"later\""),
        "{status}"
    );
    create_proxy(
        c,
        proxy(
            "tooled",
            json!({"remoteUrl": "https://mcp.example.com/mcp", "toolConfigRef": {"name": "absent"}}),
        ),
        true,
    )
    .await;
    wait_for(
        c,
        "tooled",
        "ToolConfigValidated",
        "False",
        "ToolConfigNotFound",
    )
    .await;

    // Several reconciles later, still nothing of any of them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["meta", "keyed", "tooled"] {
        assert!(get::<Deployment>(c, NS, name).await.is_none(), "{name}");
        assert!(
            get::<ConfigMap>(c, NS, &format!("{name}-remote-proxy-config"))
                .await
                .is_none(),
            "{name}"
        );
    }

    // The Secret appears (with the key): its watch brings the proxy back, and it rolls out.
    create::<Secret>(
        c,
        json!({"metadata": {"name": "later"}, "stringData": {"token": "t"}}),
    )
    .await;
    let _: Deployment = eventually("keyed Deployment", || get(c, NS, "keyed")).await;
    wait_for(c, "keyed", "ConfigurationValid", "True", "Valid").await;
    create::<MCPToolConfig>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
               "metadata": {"name": "absent"}, "spec": {"toolsFilter": ["x"]}}),
    )
    .await;
    let _: Deployment = eventually("tooled Deployment", || get(c, NS, "tooled")).await;
    wait_for(
        c,
        "tooled",
        "ToolConfigValidated",
        "True",
        "ToolConfigValid",
    )
    .await;
}

/// A telemetryConfigRef is reported, never a reason to hold the proxy: a missing config, then
/// one admission refuses (written while the webhook was off), then a valid one with its hash.
#[tokio::test]
async fn telemetry_reference_is_reported_and_never_holds_the_proxy() {
    let h = start(None).await;
    let c = &h.client;
    create_proxy(
        c,
        proxy(
            "traced",
            json!({"remoteUrl": "https://mcp.example.com/mcp",
                   "telemetryConfigRef": {"name": "shared-otel"}}),
        ),
        true,
    )
    .await;
    let status = wait_for(
        c,
        "traced",
        "TelemetryConfigRefValidated",
        "False",
        "TelemetryConfigRefNotFound",
    )
    .await;
    assert!(status["telemetryConfigHash"].is_null(), "{status}");
    let _: Deployment = eventually("Deployment, despite the missing config", || {
        get(c, NS, "traced")
    })
    .await;
    // An endpoint with nothing to send: refused by the admission core, so reported Invalid.
    create::<MCPTelemetryConfig>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPTelemetryConfig",
               "metadata": {"name": "shared-otel"},
               "spec": {"openTelemetry": {"endpoint": "collector:4318"}}}),
    )
    .await;
    let status = wait_for(
        c,
        "traced",
        "TelemetryConfigRefValidated",
        "False",
        "TelemetryConfigRefInvalid",
    )
    .await;
    assert!(status["telemetryConfigHash"].is_null(), "{status}");
    Api::<MCPTelemetryConfig>::namespaced(c.clone(), NS)
        .patch(
            "shared-otel",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"openTelemetry": {"tracing": {"enabled": true}}}})),
        )
        .await
        .unwrap();
    let status = wait_for(
        c,
        "traced",
        "TelemetryConfigRefValidated",
        "True",
        "TelemetryConfigRefValid",
    )
    .await;
    assert!(status["telemetryConfigHash"].is_string(), "{status}");
    assert!(get::<Deployment>(c, NS, "traced").await.is_some());
}

/// Converged proxies cause no writes: reconciled many times over, and after a restart of the
/// operator (caches and its memory of writes gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_proxies_cause_no_writes() {
    let mut h = start(Some(Duration::from_millis(100))).await;
    let c = &h.client.clone();
    create::<Secret>(
        c,
        json!({"metadata": {"name": "api"}, "stringData": {"key": "v"}}),
    )
    .await;
    create::<MCPToolConfig>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
               "metadata": {"name": "tools"}, "spec": {"toolsFilter": ["a", "b"],
               "toolsOverride": {"x": {"name": "a"}, "y": {"description": "d"}}}}),
    )
    .await;
    const N: usize = 10;
    for i in 0..N {
        let spec = match i % 3 {
            0 => json!({"remoteUrl": format!("https://r{i}.example.com/mcp")}),
            1 => json!({"remoteUrl": format!("https://r{i}.example.com/sse"), "transport": "sse",
                        "toolConfigRef": {"name": "tools"}, "replicas": 2,
                        "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}}}),
            _ => json!({"remoteUrl": "http://10.1.2.3:8000/mcp", "allowPrivateEndpoint": true,
                        "serviceAccount": "custom",
                        "headerForward": {"addPlaintextHeaders": {"B": "2", "A": "1"},
                            "addHeadersFromSecret": [{"headerName": "X-Key", "valueSecretRef": {"name": "api", "key": "key"}}]},
                        "podTemplateSpec": {"spec": {"nodeSelector": {"disk": "ssd"}}}}),
        };
        create_proxy(c, proxy(&format!("p{i}"), spec), true).await;
    }
    let api: Api<MCPRemoteProxy> = Api::namespaced(c.clone(), NS);
    eventually("all converged", || async {
        let list = api.list(&Default::default()).await.ok()?;
        (list.items.len() == N
            && list
                .items
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.url.as_ref()).is_some()))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.server.clear_requests();
    let before = h.metrics.successful_reconciles("MCPRemoteProxy");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while h.metrics.successful_reconciles("MCPRemoteProxy") - before < (N * 30) as u64 {
        assert!(tokio::time::Instant::now() < deadline, "resyncs too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_no_writes(&h, "after convergence");

    h.restart_controller();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while h.metrics.successful_reconciles("MCPRemoteProxy") < (N * 5) as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "restarted controller too slow"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_no_writes(&h, "after a restart");
}

/// Fails naming the first writes (Events aside) the server received since the last clear.
fn assert_no_writes(h: &Harness, when: &str) {
    let writes: Vec<String> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| r.verb.is_write() && r.resource != "events")
        .map(|r| format!("{:?} {}", r.verb, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "{} writes {when}: {:?}",
        writes.len(),
        &writes[..writes.len().min(10)]
    );
}

/// Auth that cannot be given holds a proxy (issue 13): one row per kind of reference naming a
/// config that does not exist, policies from a ConfigMap that does not exist, and the inline
/// oidcConfig kept from v1alpha1. Each is added to a running proxy, which must stop serving:
/// no Deployment, no Service, Ready=False with the reason, and the condition that says it.
#[tokio::test]
async fn auth_that_cannot_be_given_holds_the_proxy() {
    let h = start(None).await;
    let c = &h.client;
    let rows: [(&str, Value, (&str, &str, &str)); 5] = [
        (
            "oidc",
            json!({"spec": {"oidcConfigRef": {"name": "idp", "audience": "remote"}}}),
            (
                "spec.oidcConfigRef",
                "OIDCConfigRefNotFound",
                "OIDCConfigRefValidated",
            ),
        ),
        (
            "authz",
            json!({"spec": {"authzConfig": {"type": "configMap", "configMap": {"name": "authz"}}}}),
            (
                "spec.authzConfig",
                "AuthzConfigMapNotFound",
                "AuthConfigured",
            ),
        ),
        (
            "authz-ref",
            json!({"spec": {"authzConfigRef": {"name": "policies"}}}),
            (
                "spec.authzConfigRef",
                "AuthzConfigRefNotFound",
                "AuthzConfigRefValidated",
            ),
        ),
        (
            "external",
            json!({"spec": {"externalAuthConfigRef": {"name": "bearer"}}}),
            (
                "spec.externalAuthConfigRef",
                "ExternalAuthConfigNotFound",
                "ExternalAuthConfigValidated",
            ),
        ),
        (
            "inline-oidc",
            json!({"metadata": {"annotations": {"toolhive.stacklok.dev/v1alpha1-oidcConfig":
                "{\"type\":\"kubernetes\",\"kubernetes\":{\"audience\":\"toolhive\"}}"}}}),
            ("spec.oidcConfig", "AuthNotEnforced", "AuthConfigured"),
        ),
    ];
    let api: Api<MCPRemoteProxy> = Api::namespaced(c.clone(), NS);
    for (name, _, _) in &rows {
        create_proxy(
            c,
            proxy(name, json!({"remoteUrl": "https://mcp.example.com/mcp"})),
            true,
        )
        .await;
    }
    for (name, _, _) in &rows {
        let _: Deployment = eventually(&format!("{name} Deployment"), || get(c, NS, name)).await;
    }
    for (name, patch, _) in &rows {
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    for (name, _, (field, reason, condition)) in &rows {
        let status = wait_for(c, name, "Ready", "False", reason).await;
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{name}: {status}");
        assert!(status["url"].is_null(), "{name}: {status}");
        let said = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == *condition)
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            (said["status"].as_str(), said["reason"].as_str()),
            (Some("False"), Some(*reason)),
            "{name}: {status}"
        );
    }
    for (name, _, _) in &rows {
        eventually(
            &format!("{name}: Deployment and Service removed"),
            || async {
                let gone = get::<Deployment>(c, NS, name).await.is_none()
                    && get::<Service>(c, NS, &format!("mcp-{name}-remote-proxy"))
                        .await
                        .is_none();
                gone.then_some(())
            },
        )
        .await;
    }
}
