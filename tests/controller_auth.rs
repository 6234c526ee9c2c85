//! MCPOIDCConfig, MCPAuthzConfig and MCPExternalAuthConfig against the in-memory API server,
//! and the workloads that use them (issue 13): each config reports `Valid`, `configHash` and
//! its users and holds its deletion while used; an MCPServer or MCPRemoteProxy runs with the
//! resolved settings in its bridge config, Secret values only as `secretKeyRef` env, its status
//! carrying the configs' hashes, and its pods roll when a config or a Secret changes; one whose
//! auth cannot be given does not run.

mod controller_support;

use controller_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;
use mcp_operator::api::v1beta1::{
    MCPAuthzConfig, MCPExternalAuthConfig, MCPOIDCConfig, MCPRemoteProxy, MCPServer,
};
use mcp_operator::controller::children::CONFIG_CHECKSUM;
use serde_json::{json, Value};

const NS: &str = "default";
/// Values that must never appear in a ConfigMap, a status or an Event.
const CLIENT_SECRET: &str = "oidc-client-secret-3f9a";
const HEADER_VALUE: &str = "header-value-before-91b2";
const ROTATED_VALUE: &str = "header-value-after-5e07";

const ECHO_FOR_DEV: &str = r#"permit(principal in THVGroup::"dev", action == Action::"call_tool", resource == Tool::"echo");"#;
const ECHO_FOR_ALL: &str =
    r#"permit(principal, action == Action::"call_tool", resource == Tool::"echo");"#;

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": kind,
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

fn secret(name: &str, key: &str, value: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": NS}, "stringData": {key: value}})
}

fn server(name: &str, spec: Value) -> Value {
    let mut obj = seed("mcpserver-fetch.yaml");
    obj["metadata"]["name"] = json!(name);
    obj["spec"]["command"] = json!(["mcp-server-fetch"]);
    for (k, v) in spec.as_object().unwrap() {
        obj["spec"][k] = v.clone();
    }
    obj
}

fn proxy(name: &str, spec: Value) -> Value {
    let mut s = json!({"remoteUrl": "https://mcp.example.com/mcp"});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    object("MCPRemoteProxy", name, s)
}

/// The status of a config of any of the three kinds, as JSON.
async fn config_status(client: &Client, kind: &str, name: &str) -> Option<(Value, Value)> {
    let (meta, status) = match kind {
        "MCPOIDCConfig" => {
            let c: MCPOIDCConfig = get(client, NS, name).await?;
            (json!(c.metadata), json!(c.status?))
        }
        "MCPAuthzConfig" => {
            let c: MCPAuthzConfig = get(client, NS, name).await?;
            (json!(c.metadata), json!(c.status?))
        }
        _ => {
            let c: MCPExternalAuthConfig = get(client, NS, name).await?;
            (json!(c.metadata), json!(c.status?))
        }
    };
    Some((meta, status))
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// One config per row, written without the webhook: its `Valid` condition (status and
/// upstream's reason for the kind), a `configHash`, the finalizer that will hold its deletion.
/// A type this product does not build is still Valid: its users say so, not the config.
#[tokio::test]
async fn auth_configs_report_validity_hash_and_users_and_hold_deletion() {
    let h = start(None).await;
    let c = &h.client;
    let rows: Vec<(&str, &str, Value, &str, &str, &str)> = vec![
        (
            "MCPOIDCConfig",
            "k8s",
            json!({"type": "kubernetesServiceAccount", "kubernetesServiceAccount": {}}),
            "True",
            "ConfigValid",
            "mcpoidcconfig.toolhive.stacklok.dev/finalizer",
        ),
        (
            "MCPOIDCConfig",
            "plain-http",
            json!({"type": "inline", "inline": {"issuer": "http://idp.example.com"}}),
            "False",
            "ConfigInvalid",
            "mcpoidcconfig.toolhive.stacklok.dev/finalizer",
        ),
        (
            "MCPAuthzConfig",
            "policies",
            json!({"type": "cedarv1", "config": {"policies": [ECHO_FOR_DEV]}}),
            "True",
            "ConfigValid",
            "mcpauthzconfig.toolhive.stacklok.dev/finalizer",
        ),
        (
            "MCPAuthzConfig",
            "bad-policy",
            json!({"type": "cedarv1", "config": {"policies": ["permit(principal action, resource);"]}}),
            "False",
            "ConfigInvalid",
            "mcpauthzconfig.toolhive.stacklok.dev/finalizer",
        ),
        (
            "MCPExternalAuthConfig",
            "bearer",
            json!({"type": "bearerToken", "bearerToken": {"tokenSecretRef": {"name": "t", "key": "token"}}}),
            "True",
            "ValidationSucceeded",
            "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer",
        ),
        (
            "MCPExternalAuthConfig",
            "aws",
            json!({"type": "awsSts", "awsSts": {"region": "eu-west-1",
                "fallbackRoleArn": "arn:aws:iam::123456789012:role/mcp"}}),
            "True",
            "ValidationSucceeded",
            "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer",
        ),
        (
            "MCPExternalAuthConfig",
            "two-blocks",
            json!({"type": "headerInjection", "headerInjection": {"headerName": "X-Key",
                "valueSecretRef": {"name": "k", "key": "v"}},
                "bearerToken": {"tokenSecretRef": {"name": "t", "key": "token"}}}),
            "False",
            "ValidationFailed",
            "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer",
        ),
    ];
    for (kind, name, spec, ..) in &rows {
        let obj = object(kind, name, spec.clone());
        match *kind {
            "MCPOIDCConfig" => drop(create::<MCPOIDCConfig>(c, obj).await),
            "MCPAuthzConfig" => drop(create::<MCPAuthzConfig>(c, obj).await),
            _ => drop(create::<MCPExternalAuthConfig>(c, obj).await),
        }
    }
    for (kind, name, _, valid, reason, finalizer) in &rows {
        let status = eventually(
            &format!("{kind}/{name}: Valid={valid} {reason}"),
            || async {
                let (meta, status) = config_status(c, kind, name).await?;
                let v = condition(&status, "Valid")?;
                let held = meta["finalizers"]
                    .as_array()?
                    .iter()
                    .any(|f| f == finalizer);
                (v["status"] == *valid && v["reason"] == *reason && held).then_some(status)
            },
        )
        .await;
        assert!(
            status["configHash"].as_str().is_some_and(|h| h.len() == 8),
            "{kind}/{name}: {status}"
        );
        assert_eq!(
            condition(&status, "Referenced").unwrap()["reason"],
            "NotReferenced",
            "{kind}/{name}"
        );
        if *valid == "False" {
            // Upstream's Event on the transition to invalid.
            event_with(c, name, "ConfigInvalid").await;
        }
    }

    // Users are listed, and a deletion waits for them.
    create_server(
        c,
        server(
            "s1",
            json!({"oidcConfigRef": {"name": "k8s", "audience": "s1"}}),
        ),
    )
    .await;
    create::<MCPRemoteProxy>(
        c,
        proxy(
            "px",
            json!({"oidcConfigRef": {"name": "k8s", "audience": "px"},
        "externalAuthConfigRef": {"name": "bearer"}}),
        ),
    )
    .await;
    for (kind, name, users) in [
        (
            "MCPOIDCConfig",
            "k8s",
            "used by MCPRemoteProxy/px, MCPServer/s1",
        ),
        (
            "MCPExternalAuthConfig",
            "bearer",
            "used by MCPRemoteProxy/px",
        ),
    ] {
        eventually(&format!("{kind}/{name}: {users}"), || async {
            let (_, status) = config_status(c, kind, name).await?;
            (condition(&status, "Referenced")?["message"] == users).then_some(())
        })
        .await;
    }
    Api::<MCPOIDCConfig>::namespaced(c.clone(), NS)
        .delete("k8s", &DeleteParams::default())
        .await
        .unwrap();
    eventually("k8s: deletion held, naming its users", || async {
        let (meta, status) = config_status(c, "MCPOIDCConfig", "k8s").await?;
        let held = condition(&status, "DeletionBlocked")?;
        (meta["deletionTimestamp"].is_string()
            && held["status"] == "True"
            && held["reason"] == "ReferencedByWorkloads"
            && held["message"]
                .as_str()?
                .contains("MCPRemoteProxy/px, MCPServer/s1"))
        .then_some(())
    })
    .await;
    event_with(c, "k8s", "DeletionBlocked").await;
    Api::<MCPServer>::namespaced(c.clone(), NS)
        .delete("s1", &DeleteParams::default())
        .await
        .unwrap();
    Api::<MCPRemoteProxy>::namespaced(c.clone(), NS)
        .patch(
            "px",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"oidcConfigRef": null}})),
        )
        .await
        .unwrap();
    eventually("k8s is gone once unused", || async {
        get::<MCPOIDCConfig>(c, NS, "k8s")
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

/// Waits for an Event about `name` with `reason`.
async fn event_with(client: &Client, name: &str, reason: &str) {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    eventually(&format!("Event {reason} about {name}"), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
            .then_some(())
    })
    .await;
}

fn pod_checksum(d: &Deployment) -> String {
    let template = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
    template.annotations.as_ref().unwrap()[CONFIG_CHECKSUM].clone()
}

fn mcp_env(d: &Deployment) -> Vec<Value> {
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

async fn bridge_config(client: &Client, name: &str) -> Value {
    let cm: ConfigMap = get(client, NS, name).await.unwrap();
    let text = &cm.data.unwrap()["bridge.json"];
    for value in [CLIENT_SECRET, HEADER_VALUE, ROTATED_VALUE] {
        assert!(!text.contains(value), "a Secret value in {name}: {text}");
    }
    serde_json::from_str(text).unwrap()
}

/// An MCPServer with `oidcConfigRef`, `authzConfigRef` and `audit` runs with them in its
/// bridge config, the client secret as a `secretKeyRef`, the configs' hashes in its status,
/// and no Secret value anywhere; a policy change rolls its pods.
#[tokio::test]
async fn a_server_runs_with_its_resolved_auth_and_rolls_when_a_policy_changes() {
    let h = start(None).await;
    let c = &h.client;
    create::<Secret>(c, secret("idp-client", "secret", CLIENT_SECRET)).await;
    create::<MCPOIDCConfig>(
        c,
        object("MCPOIDCConfig", "idp", json!({"type": "inline", "inline": {
            "issuer": "https://idp.example.com", "introspectionUrl": "https://idp.example.com/introspect",
            "clientId": "mcp", "clientSecretRef": {"name": "idp-client", "key": "secret"}}})),
    )
    .await;
    create::<MCPAuthzConfig>(
        c,
        object(
            "MCPAuthzConfig",
            "policies",
            json!({"type": "cedarv1",
            "config": {"policies": [ECHO_FOR_DEV], "group_claim_name": "groups"}}),
        ),
    )
    .await;
    create_server(
        c,
        server(
            "fetch",
            json!({
                "oidcConfigRef": {"name": "idp", "audience": "fetch", "scopes": ["openid"]},
                "authzConfigRef": {"name": "policies"},
                "audit": {"enabled": true},
            }),
        ),
    )
    .await;

    let servers: Api<MCPServer> = Api::namespaced(c.clone(), NS);
    let published = |kind: &'static str, name: &'static str| async move {
        let (_, status) = config_status(c, kind, name).await?;
        status["configHash"].as_str().map(str::to_owned)
    };
    let oidc_hash = eventually("idp's hash", || published("MCPOIDCConfig", "idp")).await;
    let authz_hash = eventually("policies' hash", || published("MCPAuthzConfig", "policies")).await;
    let status = eventually("the server's status carries both hashes", || async {
        let s = servers.get("fetch").await.ok()?.status?;
        (s.oidc_config_hash.as_deref() == Some(oidc_hash.as_str())
            && s.authz_config_hash.as_deref() == Some(authz_hash.as_str()))
        .then_some(s)
    })
    .await;
    let status_json = json!(status);
    assert!(
        !status_json.to_string().contains(CLIENT_SECRET),
        "{status_json}"
    );
    for (type_, reason) in [
        ("OIDCConfigRefValidated", "OIDCConfigRefValid"),
        ("AuthzConfigRefValidated", "AuthzConfigRefValid"),
    ] {
        let cond = condition(&status_json, type_).unwrap();
        assert_eq!(
            (&cond["status"], &cond["reason"]),
            (&json!("True"), &json!(reason))
        );
    }

    let dep: Deployment = eventually("Deployment", || get(c, NS, "fetch")).await;
    let config = bridge_config(c, "fetch-bridge-config").await;
    assert_eq!(
        config["auth"],
        json!({
            "oidc": {"issuer": "https://idp.example.com", "introspectionUrl": "https://idp.example.com/introspect",
                     "clientId": "mcp", "clientSecretEnv": "TOOLHIVE_OIDC_CLIENT_SECRET", "audience": "fetch",
                     "resourceUrl": "http://mcp-fetch-proxy.default.svc.cluster.local:8080", "scopes": ["openid"]},
            "authz": {"policies": [ECHO_FOR_DEV], "groupClaimName": "groups", "serverName": "fetch"},
            "audit": {"enabled": true},
        })
    );
    // The bridge reads what the operator wrote.
    let file: mcp_operator::bridge::config::FileConfig =
        serde_json::from_value(config.clone()).expect("the bridge accepts the config");
    assert!(file.auth.is_some());
    let env = mcp_env(&dep);
    let secret_env = env
        .iter()
        .find(|e| e["name"] == "TOOLHIVE_OIDC_CLIENT_SECRET")
        .expect("the client secret's env");
    assert_eq!(
        secret_env,
        &json!({"name": "TOOLHIVE_OIDC_CLIENT_SECRET",
                "valueFrom": {"secretKeyRef": {"name": "idp-client", "key": "secret"}}})
    );

    // The policy changes: a new hash, a new bridge config, a new pod template.
    let before = pod_checksum(&dep);
    Api::<MCPAuthzConfig>::namespaced(c.clone(), NS)
        .patch(
            "policies",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {"policies": [ECHO_FOR_ALL]}}})),
        )
        .await
        .unwrap();
    eventually("a new pod template", || async {
        let d: Deployment = get(c, NS, "fetch").await?;
        (pod_checksum(&d) != before).then_some(())
    })
    .await;
    assert_eq!(
        bridge_config(c, "fetch-bridge-config").await["auth"]["authz"]["policies"],
        json!([ECHO_FOR_ALL])
    );
    eventually("a new authzConfigHash", || async {
        let s = servers.get("fetch").await.ok()?.status?;
        (s.authz_config_hash.is_some()
            && s.authz_config_hash.as_deref() != Some(authz_hash.as_str()))
        .then_some(())
    })
    .await;
}

/// A reference the operator cannot give holds a server that ran: an MCPExternalAuthConfig of
/// a type not built, a missing one, and a missing client Secret. The Deployment goes, the
/// condition names the config and the reason, and it comes back once the problem is fixed.
#[tokio::test]
async fn a_server_whose_auth_cannot_be_given_does_not_run() {
    let h = start(None).await;
    let c = &h.client;
    create::<MCPExternalAuthConfig>(
        c,
        object(
            "MCPExternalAuthConfig",
            "aws",
            json!({"type": "awsSts", "awsSts": {
            "region": "eu-west-1", "fallbackRoleArn": "arn:aws:iam::123456789012:role/mcp"}}),
        ),
    )
    .await;
    create::<MCPOIDCConfig>(
        c,
        object("MCPOIDCConfig", "idp", json!({"type": "inline", "inline": {
            "issuer": "https://idp.example.com", "introspectionUrl": "https://idp.example.com/introspect",
            "clientId": "mcp", "clientSecretRef": {"name": "late-secret", "key": "secret"}}})),
    )
    .await;
    let http = json!({"transport": "streamable-http", "mcpPort": 8080});
    create_server(c, server("aws", http.clone())).await;
    create_server(c, server("idp", http.clone())).await;
    for name in ["aws", "idp"] {
        let _: Deployment = eventually(&format!("{name} runs"), || get(c, NS, name)).await;
    }
    let servers: Api<MCPServer> = Api::namespaced(c.clone(), NS);
    let rows = [
        (
            "aws",
            json!({"externalAuthConfigRef": {"name": "aws"}}),
            "ExternalAuthConfigValidated",
            "ExternalAuthTypeNotSupported",
            r#"type "awsSts""#,
        ),
        (
            "idp",
            json!({"oidcConfigRef": {"name": "idp", "audience": "idp"}}),
            "AuthConfigured",
            "AuthSecretNotFound",
            r#"Secret "late-secret" does not exist"#,
        ),
    ];
    for (name, spec, ..) in &rows {
        servers
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .unwrap();
    }
    for (name, _, type_, reason, part) in &rows {
        let (phase, cond) =
            wait_condition(c, name, type_, |c: &Condition| c.status == "False").await;
        assert_eq!(cond.reason, *reason, "{name}");
        assert!(cond.message.contains(part), "{name}: {}", cond.message);
        assert_eq!(phase.as_deref(), Some("Failed"), "{name}");
        let (_, ready) =
            wait_condition(c, name, "Ready", |c: &Condition| c.reason == *reason).await;
        assert_eq!(ready.status, "False");
        eventually(&format!("{name}: its Deployment removed"), || async {
            get::<Deployment>(c, NS, name).await.is_none().then_some(())
        })
        .await;
    }
    // The Secret appears: the server runs again, authenticated.
    create::<Secret>(c, secret("late-secret", "secret", CLIENT_SECRET)).await;
    let _: Deployment = eventually("idp runs again", || get(c, NS, "idp")).await;
    assert_eq!(
        bridge_config(c, "idp-bridge-config").await["auth"]["oidc"]["clientSecretEnv"],
        "TOOLHIVE_OIDC_CLIENT_SECRET"
    );
}

/// An MCPRemoteProxy with a `headerInjection` config: the header's value reaches the pod as a
/// `secretKeyRef` env named in `headersFromEnv`, never as a value; rotating the Secret rolls
/// the pods.
#[tokio::test]
async fn a_proxy_injects_a_header_from_a_secret_and_rolls_when_it_rotates() {
    let h = start(None).await;
    let c = &h.client;
    create::<Secret>(c, secret("remote-key", "key", HEADER_VALUE)).await;
    create::<MCPExternalAuthConfig>(
        c,
        object(
            "MCPExternalAuthConfig",
            "api-key",
            json!({"type": "headerInjection", "headerInjection": {
            "headerName": "X-Api-Key", "valueSecretRef": {"name": "remote-key", "key": "key"}}}),
        ),
    )
    .await;
    create::<MCPRemoteProxy>(
        c,
        proxy(
            "weather",
            json!({"externalAuthConfigRef": {"name": "api-key"}}),
        ),
    )
    .await;

    let dep: Deployment = eventually("Deployment", || get(c, NS, "weather")).await;
    let config = bridge_config(c, "weather-remote-proxy-config").await;
    assert_eq!(
        config["headersFromEnv"],
        json!({"X-Api-Key": "TOOLHIVE_HEADER_INJECTION_VALUE"})
    );
    assert!(config.get("auth").is_none(), "{config}");
    assert!(
        mcp_env(&dep).contains(&json!({"name": "TOOLHIVE_HEADER_INJECTION_VALUE",
            "valueFrom": {"secretKeyRef": {"name": "remote-key", "key": "key"}}})),
        "{:?}",
        mcp_env(&dep)
    );
    let proxies: Api<MCPRemoteProxy> = Api::namespaced(c.clone(), NS);
    let published = eventually("api-key's hash", || async {
        let (_, status) = config_status(c, "MCPExternalAuthConfig", "api-key").await?;
        status["configHash"].as_str().map(str::to_owned)
    })
    .await;
    eventually("the proxy's externalAuthConfigHash", || async {
        let s = proxies.get("weather").await.ok()?.status?;
        (s.external_auth_config_hash.as_deref() == Some(published.as_str())).then_some(())
    })
    .await;

    // Rotation: the pods roll; the new value is not in the config either.
    let before = pod_checksum(&dep);
    Api::<Secret>::namespaced(c.clone(), NS)
        .patch(
            "remote-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"key": ROTATED_VALUE}})),
        )
        .await
        .unwrap();
    eventually("a new pod template after the rotation", || async {
        let d: Deployment = get(c, NS, "weather").await?;
        (pod_checksum(&d) != before).then_some(())
    })
    .await;
    let status = json!(proxies.get("weather").await.unwrap().status);
    for value in [HEADER_VALUE, ROTATED_VALUE] {
        assert!(!status.to_string().contains(value), "{status}");
    }
    bridge_config(c, "weather-remote-proxy-config").await;
}

/// The bridge's container of a workload's pod: `mcp` (the bridge wraps the server's command)
/// or the remote proxy's `toolhive`.
fn bridge_container(kind: &str) -> &'static str {
    if kind == "MCPServer" {
        "mcp"
    } else {
        "toolhive"
    }
}

/// `(volume, mount path)` of every mount of container `name` (init containers included); the
/// auth volumes' mounts must be read-only.
fn mounts_of(pod: &Value, name: &str) -> Vec<(String, String)> {
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| pod[list].as_array().cloned().unwrap_or_default());
    containers
        .filter(|c| c["name"] == name)
        .flat_map(|c| c["volumeMounts"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap().to_owned();
            if text("name").starts_with("oidc-") {
                assert_eq!(m["readOnly"], true, "{name}: {m}");
            }
            (text("name"), text("mountPath"))
        })
        .collect()
}

/// The files an MCPOIDCConfig makes the bridge read reach the bridge's container, and only it:
/// `kubernetesServiceAccount` with cluster auth (the default) mounts a projected service-account
/// token and the cluster's CA where the bridge config points, while the pod still automounts
/// nothing; without cluster auth nothing is mounted; an inline `caBundleRef` is mounted where
/// upstream mounts it, and no longer holds the workload. Turning cluster auth off rolls the pods.
#[tokio::test]
async fn oidc_files_are_mounted_on_the_bridge_container_only() {
    let h = start(None).await;
    let c = &h.client;
    const SA: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let configs = [
        (
            "cluster",
            json!({"type": "kubernetesServiceAccount", "kubernetesServiceAccount": {}}),
        ),
        (
            "no-cluster-auth",
            json!({"type": "kubernetesServiceAccount",
                   "kubernetesServiceAccount": {"useClusterAuth": false}}),
        ),
        (
            "corp",
            json!({"type": "inline", "inline": {"issuer": "https://idp.example.com",
                   "caBundleRef": {"configMapRef": {"name": "corp-ca", "key": "root.pem"}}}}),
        ),
    ];
    for (name, spec) in &configs {
        create::<MCPOIDCConfig>(c, object("MCPOIDCConfig", name, spec.clone())).await;
    }
    let ca = (
        Some(format!("{SA}/ca.crt")),
        Some(format!("{SA}/token")),
        vec![("oidc-service-account".to_owned(), SA.to_owned())],
    );
    let none = (None, None, vec![]);
    let corp = (
        Some("/config/certs/corp-ca/root.pem".to_owned()),
        None,
        vec![(
            "oidc-ca-bundle-corp-ca".to_owned(),
            "/config/certs/corp-ca".to_owned(),
        )],
    );
    // Rows: kind, workload, MCPOIDCConfig; caBundle, jwksAuthTokenPath and the bridge's auth
    // mounts. Each pod has a sidecar, which must get none of them.
    let rows = [
        ("MCPServer", "s-cluster", "cluster", ca.clone()),
        ("MCPRemoteProxy", "p-cluster", "cluster", ca),
        ("MCPServer", "s-off", "no-cluster-auth", none.clone()),
        ("MCPRemoteProxy", "p-off", "no-cluster-auth", none),
        ("MCPServer", "s-corp", "corp", corp.clone()),
        ("MCPRemoteProxy", "p-corp", "corp", corp),
    ];
    let sidecar = json!({"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}});
    for (kind, name, oidc, _) in &rows {
        let spec = json!({"oidcConfigRef": {"name": oidc, "audience": name},
                          "podTemplateSpec": sidecar});
        if *kind == "MCPServer" {
            create_server(c, server(name, spec)).await;
        } else {
            create::<MCPRemoteProxy>(c, proxy(name, spec)).await;
        }
    }
    let mut failures = Vec::new();
    for (kind, name, oidc, (ca_bundle, token, auth_mounts)) in &rows {
        let at = format!("{kind}/{name} ({oidc})");
        let dep: Deployment = eventually(&format!("{at}: Deployment"), || get(c, NS, name)).await;
        let config_map = if *kind == "MCPServer" {
            format!("{name}-bridge-config")
        } else {
            format!("{name}-remote-proxy-config")
        };
        let o = &bridge_config(c, &config_map).await["auth"]["oidc"];
        if o["caBundle"].as_str() != ca_bundle.as_deref()
            || o["jwksAuthTokenPath"].as_str() != token.as_deref()
        {
            failures.push(format!("{at}: oidc block {o}"));
        }
        let pod = json!(dep.spec.as_ref().unwrap().template.spec);
        if pod["automountServiceAccountToken"] != false {
            failures.push(format!("{at}: the pod automounts a token"));
        }
        let auth_volume = |(v, _): &(String, String)| v.starts_with("oidc-");
        let bridge: Vec<_> = mounts_of(&pod, bridge_container(kind))
            .into_iter()
            .filter(auth_volume)
            .collect();
        if &bridge != auth_mounts {
            failures.push(format!("{at}: the bridge's auth mounts are {bridge:?}"));
        }
        let containers = ["containers", "initContainers"]
            .iter()
            .flat_map(|l| pod[l].as_array().cloned().unwrap_or_default());
        for other in containers.filter(|c| c["name"] != bridge_container(kind)) {
            let name = other["name"].as_str().unwrap();
            if mounts_of(&pod, name).iter().any(auth_volume) {
                failures.push(format!("{at}: container {name} mounts an auth volume"));
            }
        }
        let volumes: Vec<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .filter(|v| v.starts_with("oidc-"))
            .collect();
        let wanted: Vec<&str> = auth_mounts.iter().map(|(v, _)| v.as_str()).collect();
        if volumes != wanted {
            failures.push(format!("{at}: auth volumes {volumes:?}"));
        }
        let (_, cond) = wait_condition_of(c, kind, name, "OIDCConfigRefValidated").await;
        if cond["status"] != "True" {
            failures.push(format!("{at}: {cond}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Cluster auth turned off: a new pod template, without the token.
    let before: Deployment = get(c, NS, "s-cluster").await.unwrap();
    Api::<MCPOIDCConfig>::namespaced(c.clone(), NS)
        .patch(
            "cluster",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"kubernetesServiceAccount": {"useClusterAuth": false}}})),
        )
        .await
        .unwrap();
    for name in ["s-cluster", "p-cluster"] {
        eventually(
            &format!("{name}: a pod template without the token"),
            || async {
                let d: Deployment = get(c, NS, name).await?;
                let pod = json!(d.spec?.template.spec);
                let gone = pod["volumes"]
                    .as_array()?
                    .iter()
                    .all(|v| v["name"] != "oidc-service-account");
                gone.then_some(())
            },
        )
        .await;
    }
    let after: Deployment = get(c, NS, "s-cluster").await.unwrap();
    assert_ne!(pod_checksum(&before), pod_checksum(&after));
}

/// A condition of an MCPServer or MCPRemoteProxy, once it is set, as JSON (with the phase).
async fn wait_condition_of(client: &Client, kind: &str, name: &str, type_: &str) -> (Value, Value) {
    eventually(&format!("{kind}/{name}: {type_}"), || async {
        let status = if kind == "MCPServer" {
            json!(get::<MCPServer>(client, NS, name).await?.status?)
        } else {
            json!(get::<MCPRemoteProxy>(client, NS, name).await?.status?)
        };
        let cond = condition(&status, type_)?.clone();
        Some((status["phase"].clone(), cond))
    })
    .await
}

/// An authz document in upstream's format, as a ConfigMap holds it for `authzConfig.type:
/// configMap`.
fn authz_document(policies: &[&str]) -> String {
    json!({"version": "1.0", "type": "cedarv1",
           "cedar": {"policies": policies, "entities_json": "[]", "group_claim_name": "groups"}})
    .to_string()
}

/// A condition of `kind/name` once `accept` takes it.
async fn wait_condition_where(
    client: &Client,
    kind: &str,
    name: &str,
    type_: &str,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let accept = &accept;
    eventually(
        &format!("{kind}/{name}: {type_} as expected"),
        || async move {
            let status = if kind == "MCPServer" {
                json!(get::<MCPServer>(client, NS, name).await?.status?)
            } else {
                json!(get::<MCPRemoteProxy>(client, NS, name).await?.status?)
            };
            condition(&status, type_).filter(|c| accept(c)).cloned()
        },
    )
    .await
}

/// `authzConfig.type: configMap` on both kinds: the policies of the document in the ConfigMap
/// reach the bridge config; a missing ConfigMap or key, or a document that does not validate,
/// holds the workload (no Deployment) with a condition naming the ConfigMap, the key and the
/// policy's position, and fixing it brings the workload back; a change of the document rolls
/// the pods; deleting the ConfigMap holds the workload again.
#[tokio::test]
async fn policies_from_a_config_map_are_enforced_held_and_rolled() {
    let h = start(None).await;
    let c = &h.client;
    create::<MCPOIDCConfig>(
        c,
        object(
            "MCPOIDCConfig",
            "idp",
            json!({"type": "inline", "inline": {"issuer": "https://idp.example.com"}}),
        ),
    )
    .await;
    // (kind, name, its bridge config's ConfigMap)
    let rows = [
        ("MCPServer", "fetch", "fetch-bridge-config"),
        ("MCPRemoteProxy", "weather", "weather-remote-proxy-config"),
    ];
    let configmaps: Api<ConfigMap> = Api::namespaced(c.clone(), NS);
    for (kind, name, _) in rows {
        let spec = json!({
            "oidcConfigRef": {"name": "idp", "audience": name},
            "authzConfig": {"type": "configMap", "configMap": {"name": format!("{name}-policies")}},
        });
        if kind == "MCPServer" {
            create_server(c, server(name, spec)).await;
        } else {
            create::<MCPRemoteProxy>(c, proxy(name, spec)).await;
        }
    }
    for (kind, name, _) in rows {
        let cond = wait_condition_where(c, kind, name, "AuthConfigured", |c| {
            c["reason"] == "AuthzConfigMapNotFound"
        })
        .await;
        let message = cond["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(r#"ConfigMap "{name}-policies""#))
                && message.contains(r#""authz.json""#),
            "{message}"
        );
        assert_eq!(cond["status"], "False");
        assert!(
            get::<Deployment>(c, NS, name).await.is_none(),
            "{name} runs"
        );
    }
    // The ConfigMap appears with a policy that does not parse: held, the position named.
    for (_, name, _) in rows {
        create::<ConfigMap>(
            c,
            json!({"metadata": {"name": format!("{name}-policies"), "namespace": NS},
                   "data": {"authz.json": authz_document(&[ECHO_FOR_DEV, "permit(principal, action resource);"])}}),
        )
        .await;
    }
    for (kind, name, _) in rows {
        let cond = wait_condition_where(c, kind, name, "AuthConfigured", |c| {
            c["reason"] == "AuthzConfigMapInvalid"
        })
        .await;
        let message = cond["message"].as_str().unwrap();
        for part in [
            &format!(r#"ConfigMap "{name}-policies" key "authz.json""#),
            "cedar.policies[1]",
            "line 1, column",
        ] {
            assert!(message.contains(part), "{name}: {part} in {message}");
        }
        assert!(
            get::<Deployment>(c, NS, name).await.is_none(),
            "{name} runs"
        );
    }
    // Fixed: the workloads run with the document's policies.
    for (_, name, _) in rows {
        configmaps
            .patch(
                &format!("{name}-policies"),
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"authz.json": authz_document(&[ECHO_FOR_DEV])}})),
            )
            .await
            .unwrap();
    }
    let mut checksums = Vec::new();
    for (kind, name, config) in rows {
        let dep: Deployment = eventually(&format!("{name} runs"), || get(c, NS, name)).await;
        assert_eq!(
            bridge_config(c, config).await["auth"]["authz"],
            json!({"policies": [ECHO_FOR_DEV], "entitiesJson": "[]", "groupClaimName": "groups", "serverName": name}),
            "{kind}"
        );
        let status = if kind == "MCPServer" {
            json!(get::<MCPServer>(c, NS, name).await.unwrap().status)
        } else {
            json!(get::<MCPRemoteProxy>(c, NS, name).await.unwrap().status)
        };
        let held = condition(&status, "AuthConfigured");
        assert!(held.is_none_or(|c| c["status"] == "True"), "{status}");
        checksums.push(pod_checksum(&dep));
    }
    // The document changes: new bridge configs, new pod templates.
    for (_, name, _) in rows {
        configmaps
            .patch(
                &format!("{name}-policies"),
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"authz.json": authz_document(&[ECHO_FOR_ALL])}})),
            )
            .await
            .unwrap();
    }
    for ((_, name, config), before) in rows.iter().zip(&checksums) {
        eventually(&format!("{name}: a new pod template"), || async {
            let d: Deployment = get(c, NS, name).await?;
            (pod_checksum(&d) != *before).then_some(())
        })
        .await;
        assert_eq!(
            bridge_config(c, config).await["auth"]["authz"]["policies"],
            json!([ECHO_FOR_ALL])
        );
    }
    // The ConfigMap goes: held again.
    for (kind, name, _) in rows {
        configmaps
            .delete(&format!("{name}-policies"), &DeleteParams::default())
            .await
            .unwrap();
        wait_condition_where(c, kind, name, "AuthConfigured", |c| {
            c["reason"] == "AuthzConfigMapNotFound"
        })
        .await;
        eventually(&format!("{name}: its Deployment removed"), || async {
            get::<Deployment>(c, NS, name).await.is_none().then_some(())
        })
        .await;
    }
}
