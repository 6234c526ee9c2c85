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
