//! What an MCPRegistry should have in the cluster: pure functions from the spec (and the few
//! facts the reconciler looked up) to the registry-API server's children. `render` prints
//! exactly these.
//!
//! The names, ports, probes and Role follow upstream's operator, so tooling written for it finds
//! the same objects; the labels are ours plus upstream's, and the pods run under the restricted
//! Pod Security Standard as an MCPServer's do.

use crate::api::v1beta1::MCPRegistry;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::children::FIELD_MANAGER;

/// The registry API's image when the operator is not told otherwise: the one upstream's chart
/// pins (upstream's code default is the floating `latest`, which we never pull).
pub const DEFAULT_API_IMAGE: &str = "ghcr.io/stacklok/thv-registry-api:v1.3.0";
/// Pod-template annotation whose change rolls the pods: the config and the pgpass Secret's
/// version (the server reads both only when it starts).
pub const CONFIG_HASH: &str = "toolhive.stacklok.dev/config-hash";
/// The key of the rendered config in the ConfigMap, and where the container finds it.
pub const CONFIG_KEY: &str = "config.yaml";
pub const CONFIG_DIR: &str = "/config";
pub const CONFIG_VOLUME: &str = "registry-server-config";
pub const API_CONTAINER: &str = "registry-api";
pub const API_PORT: i32 = 8080;
/// The server's health endpoints listen on their own port.
const HEALTH_PORT: i32 = 8081;
/// Where libpq finds the password file (upstream's path, so configs written for it still work).
pub const PGPASS_FILE: &str = "/home/appuser/.pgpass";
pub const PGPASS_INIT_CONTAINER: &str = "setup-pgpass";
const PGPASS_SECRET_VOLUME: &str = "pgpass-secret";
const PGPASS_VOLUME: &str = "pgpass";
const PGPASS_SECRET_DIR: &str = "/secret";
const PGPASS_DIR: &str = "/pgpass";
/// The file name inside both pgpass volumes.
const PGPASS_NAME: &str = ".pgpass";
/// Non-root identity of the pod, as an MCPServer's. One uid for both containers matters here:
/// the pgpass file is written 0600 by the init container and read by the server.
const RUN_AS: i64 = 1000;
/// The kind's value of `app.kubernetes.io/name`, which the child watches select on.
pub const KIND_LABEL: &str = "mcpregistry";

/// What the reconciler knows besides the spec.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The registry API server's image; empty for [`DEFAULT_API_IMAGE`].
    pub api_image: String,
    /// The operator's own image, which runs the pgpass init container (`mcp-operator pgpass`).
    pub operator_image: String,
    /// Pull secrets added to every workload (operator-wide default).
    pub default_pull_secrets: Vec<String>,
    /// `resourceVersion` of the pgpass Secret, when referenced and known: a rotation rolls pods.
    pub pgpass_version: Option<String>,
}

/// Every child of one MCPRegistry.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub deployment: Deployment,
    pub service: Service,
}

impl Children {
    /// The children as JSON objects, in the order they are applied: the config and the
    /// identity before the workload that uses them, the Service last.
    pub fn objects(&self) -> Vec<Value> {
        vec![
            to_value(&self.config_map),
            to_value(&self.service_account),
            to_value(&self.role),
            to_value(&self.role_binding),
            to_value(&self.deployment),
            to_value(&self.service),
        ]
    }
}

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub fn config_map_name(registry: &str) -> String {
    format!("{registry}-registry-server-config")
}
/// The ServiceAccount, Role and RoleBinding share this name.
pub fn rbac_name(registry: &str) -> String {
    format!("{registry}-registry-api")
}
/// The Deployment and the Service share this name.
pub fn api_name(registry: &str) -> String {
    format!("{registry}-api")
}

/// Where clients reach the registry API, as upstream writes it.
pub fn url(registry: &MCPRegistry) -> String {
    let ns = registry.namespace().unwrap_or_else(|| "default".into());
    format!("http://{}.{ns}:{API_PORT}", api_name(&registry.name_any()))
}

/// Labels that select the pods; never change for the life of the object.
pub fn selector_labels(registry: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), KIND_LABEL.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            registry.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            API_CONTAINER.to_string(),
        ),
    ])
}

/// Labels on every child: the selector, ours, and upstream's registry name.
pub fn child_labels(registry: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(registry);
    l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    l.insert("toolhive.stacklok.io/registry-name".into(), registry.into());
    l
}

/// Every child, ready to apply.
pub fn desired(registry: &MCPRegistry, inputs: &Inputs) -> Children {
    Children {
        config_map: config_map(registry),
        service_account: service_account(registry, inputs),
        role: role(registry),
        role_binding: role_binding(registry),
        deployment: deployment(registry, inputs),
        service: service(registry),
    }
}

/// Hex SHA-256 over the config text and the pgpass Secret's version.
pub fn config_hash(config_yaml: &str, pgpass_version: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(config_yaml.as_bytes());
    if let Some(v) = pgpass_version {
        h.update(b"\0pgpass\0");
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Metadata every child shares: name, namespace, labels, controller owner reference.
fn metadata(registry: &MCPRegistry, name: String) -> Value {
    let mut meta = json!({
        "name": name,
        "namespace": registry.namespace(),
        "labels": child_labels(&registry.name_any()),
    });
    // Offline (render) objects have no uid yet, so no owner reference can be made.
    if let Some(owner) = registry.controller_owner_ref(&()) {
        meta["ownerReferences"] = json!([owner]);
    }
    meta
}

/// The server's config, byte for byte as the user wrote it.
fn config_map(registry: &MCPRegistry) -> ConfigMap {
    let v = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(registry, config_map_name(&registry.name_any())),
        "data": { CONFIG_KEY: registry.spec.config_yaml },
    });
    serde_json::from_value(v).expect("a ConfigMap we built")
}

/// `spec.imagePullSecrets`, then the operator-wide defaults, without repeats.
fn pull_secrets(registry: &MCPRegistry, inputs: &Inputs) -> Vec<Value> {
    let from_spec = registry
        .spec
        .image_pull_secrets
        .iter()
        .flatten()
        .filter_map(|r| r.name.clone());
    let mut names: Vec<String> = Vec::new();
    for n in from_spec.chain(inputs.default_pull_secrets.iter().cloned()) {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names.into_iter().map(|n| json!({ "name": n })).collect()
}

/// The server's identity. Its token is mounted: a `kubernetes` source reads the cluster.
fn service_account(registry: &MCPRegistry, inputs: &Inputs) -> ServiceAccount {
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(registry, rbac_name(&registry.name_any())),
    });
    let pulls = pull_secrets(registry, inputs);
    if !pulls.is_empty() {
        v["imagePullSecrets"] = json!(pulls);
    }
    serde_json::from_value(v).expect("a ServiceAccount we built")
}

/// What the registry API may do in its namespace, as upstream grants it: read the workloads it
/// lists (MCP servers, proxies, their Services and Gateway API routes), keep its own state in
/// ConfigMaps and Leases, and record Events. The operator holds each of these itself (see
/// `rbac.rs`): Kubernetes refuses to let anyone grant what they do not hold.
pub fn role_rules() -> Value {
    let read = json!(["get", "list", "watch"]);
    let all = json!(["get", "list", "watch", "create", "update", "patch", "delete"]);
    json!([
        {"apiGroups": [crate::api::GROUP], "resources": ["mcpservers", "mcpremoteproxies", "virtualmcpservers"], "verbs": read},
        {"apiGroups": [""], "resources": ["services"], "verbs": read},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes", "gateways"], "verbs": read},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": all},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": all},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

fn role(registry: &MCPRegistry) -> Role {
    let v = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(registry, rbac_name(&registry.name_any())),
        "rules": role_rules(),
    });
    serde_json::from_value(v).expect("a Role we built")
}

fn role_binding(registry: &MCPRegistry) -> RoleBinding {
    let name = rbac_name(&registry.name_any());
    let v = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(registry, name.clone()),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": registry.namespace()}],
    });
    serde_json::from_value(v).expect("a RoleBinding we built")
}

fn service(registry: &MCPRegistry) -> Service {
    let name = registry.name_any();
    let v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(registry, api_name(&name)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(&name),
            "ports": [{"name": "http", "port": API_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    });
    serde_json::from_value(v).expect("a Service we built")
}

/// The restricted Pod Security Standard, for every container we define.
fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The pgpass plumbing: the Secret's key as a read-only volume, an in-memory `emptyDir`, and an
/// init container that copies the one into the other as a 0600 file (libpq ignores a password
/// file others can read, and a Secret volume's files cannot be owned by the pod's user).
///
/// The init container runs the operator's own image (`mcp-operator pgpass`) rather than a shell
/// image: nothing is pulled from a floating tag or from a third registry, its version moves
/// with the operator's, and the copy needs no shell. The password only ever travels from the
/// Secret volume to the `emptyDir`; it is never in an env var, a ConfigMap or a log.
struct Pgpass {
    volumes: Vec<Value>,
    init_container: Value,
    mount: Value,
    env: Value,
}

fn pgpass(registry: &MCPRegistry, inputs: &Inputs) -> Option<Pgpass> {
    let r = registry.spec.pgpass_secret_ref.as_ref()?;
    let mut secret = json!({
        "secretName": r.name.clone().unwrap_or_default(),
        "items": [{"key": r.key, "path": PGPASS_NAME}],
        "defaultMode": 0o400,
    });
    if let Some(optional) = r.optional {
        secret["optional"] = json!(optional);
    }
    let from = format!("{PGPASS_SECRET_DIR}/{PGPASS_NAME}");
    let to = format!("{PGPASS_DIR}/{PGPASS_NAME}");
    Some(Pgpass {
        volumes: vec![
            json!({"name": PGPASS_SECRET_VOLUME, "secret": secret}),
            json!({"name": PGPASS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}),
        ],
        init_container: json!({
            "name": PGPASS_INIT_CONTAINER,
            "image": inputs.operator_image,
            "command": ["/mcp-operator", "pgpass", "--from", from, "--to", to],
            "volumeMounts": [
                {"name": PGPASS_SECRET_VOLUME, "mountPath": PGPASS_SECRET_DIR, "readOnly": true},
                {"name": PGPASS_VOLUME, "mountPath": PGPASS_DIR},
            ],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "50m", "memory": "32Mi"}},
            "securityContext": container_security(),
        }),
        mount: json!({"name": PGPASS_VOLUME, "mountPath": PGPASS_FILE, "subPath": PGPASS_NAME, "readOnly": true}),
        env: json!({"name": "PGPASSFILE", "value": PGPASS_FILE}),
    })
}

fn api_image(inputs: &Inputs) -> &str {
    if inputs.api_image.is_empty() {
        DEFAULT_API_IMAGE
    } else {
        &inputs.api_image
    }
}

fn deployment(registry: &MCPRegistry, inputs: &Inputs) -> Deployment {
    let name = registry.name_any();
    let s = &registry.spec;
    let pgpass = pgpass(registry, inputs);
    let mut volumes =
        vec![json!({"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(&name)}})];
    let mut mounts =
        vec![json!({"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": true})];
    let mut env = Vec::new();
    let mut init_containers = Vec::new();
    if let Some(p) = pgpass {
        volumes.extend(p.volumes);
        mounts.push(p.mount);
        env.push(p.env);
        init_containers.push(p.init_container);
    }
    volumes.extend(s.volumes.iter().flatten().cloned());
    mounts.extend(s.volume_mounts.iter().flatten().cloned());
    let mut container = json!({
        "name": API_CONTAINER,
        "image": api_image(inputs),
        "args": ["serve", format!("--config={CONFIG_DIR}/{CONFIG_KEY}")],
        "ports": [{"name": "http", "containerPort": API_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": HEALTH_PORT}, "initialDelaySeconds": 30, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/readiness", "port": HEALTH_PORT}, "initialDelaySeconds": 5, "periodSeconds": 5},
        "volumeMounts": mounts,
        "securityContext": container_security(),
    });
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    let mut pod_spec = json!({
        "serviceAccountName": rbac_name(&name),
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    });
    if !init_containers.is_empty() {
        pod_spec["initContainers"] = json!(init_containers);
    }
    let pulls = pull_secrets(registry, inputs);
    if !pulls.is_empty() {
        pod_spec["imagePullSecrets"] = json!(pulls);
    }
    let hash = config_hash(&s.config_yaml, inputs.pgpass_version.as_deref());
    let mut template = json!({
        "metadata": {"labels": child_labels(&name), "annotations": {CONFIG_HASH: hash}},
        "spec": pod_spec,
    });
    if let Some(user) = &s.pod_template_spec {
        template = super::podmerge::merge_pod_template(template, user, &selector_labels(&name));
        // The rollout trigger stays ours: a template annotation of the same name must not pin
        // the pods to an old config.
        template["metadata"]["annotations"][CONFIG_HASH] = json!(hash);
    }
    // Unset replicas leave scaling to `kubectl scale` and HPAs: we never fight over the field.
    let v = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(registry, api_name(&name)),
        "spec": {
            "selector": {"matchLabels": selector_labels(&name)},
            "template": template,
        },
    });
    serde_json::from_value(v).expect("a Deployment we built")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(spec: Value) -> MCPRegistry {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRegistry",
            "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(c: &Children) -> Value {
        to_value(&c.deployment)["spec"]["template"].clone()
    }

    /// The rendered config is the user's text, whatever YAML would make of it.
    #[test]
    fn the_config_is_copied_byte_for_byte() {
        let text =
            "# keep me\nsources:   [ {name: a, api: {endpoint: 'https://x'}} ]\r\nregistries: []\n";
        let c = desired(&registry(json!({"configYAML": text})), &Inputs::default());
        assert_eq!(c.config_map.data.unwrap()[CONFIG_KEY], text);
    }

    /// Editing the config, or rotating the pgpass Secret, rolls the pods; nothing else does.
    #[test]
    fn the_pods_roll_when_what_the_server_reads_at_start_changes() {
        let hash = |spec: Value, version: Option<&str>| {
            let inputs = Inputs {
                pgpass_version: version.map(str::to_string),
                ..Inputs::default()
            };
            pod(&desired(&registry(spec), &inputs))["metadata"]["annotations"][CONFIG_HASH].clone()
        };
        let a = hash(json!({"configYAML": "a: 1\n"}), None);
        assert!(a.is_string());
        assert_eq!(
            a,
            hash(json!({"configYAML": "a: 1\n", "displayName": "x"}), None)
        );
        assert_ne!(a, hash(json!({"configYAML": "a: 2\n"}), None));
        assert_ne!(a, hash(json!({"configYAML": "a: 1\n"}), Some("7")));
        assert_ne!(
            hash(json!({"configYAML": "a: 1\n"}), Some("7")),
            hash(json!({"configYAML": "a: 1\n"}), Some("8"))
        );
        // A template annotation of the same name cannot hold the pods back.
        let pinned = json!({"metadata": {"annotations": {CONFIG_HASH: "old"}}});
        assert_eq!(
            hash(
                json!({"configYAML": "a: 1\n", "podTemplateSpec": pinned}),
                None
            ),
            a
        );
    }

    /// With a pgpass Secret: an init container of the operator's image writes the file, the
    /// server is told where it is, and the password goes through volumes only.
    #[test]
    fn pgpass_is_wired_through_volumes_only() {
        let spec = json!({"configYAML": "a: 1\n", "pgpassSecretRef": {"name": "db", "key": "pw"}});
        let inputs = Inputs {
            operator_image: "example.com/op:1".into(),
            ..Inputs::default()
        };
        let t = pod(&desired(&registry(spec), &inputs));
        let init = &t["spec"]["initContainers"][0];
        assert_eq!(init["name"], PGPASS_INIT_CONTAINER);
        assert_eq!(init["image"], "example.com/op:1");
        assert_eq!(init["command"][1], "pgpass");
        assert!(init.get("env").is_none());
        let volumes = t["spec"]["volumes"].as_array().unwrap();
        let secret = volumes
            .iter()
            .find(|v| v["name"] == PGPASS_SECRET_VOLUME)
            .unwrap();
        assert_eq!(secret["secret"]["secretName"], "db");
        assert_eq!(
            secret["secret"]["items"][0],
            json!({"key": "pw", "path": ".pgpass"})
        );
        let api = &t["spec"]["containers"][0];
        assert_eq!(
            api["env"],
            json!([{"name": "PGPASSFILE", "value": PGPASS_FILE}])
        );
        assert!(api["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == PGPASS_FILE && m["name"] == PGPASS_VOLUME));
        // Without a reference, none of it.
        let plain = pod(&desired(
            &registry(json!({"configYAML": "a: 1\n"})),
            &inputs,
        ));
        assert!(plain["spec"].get("initContainers").is_none());
        assert!(plain["spec"]["containers"][0].get("env").is_none());
    }

    /// The user's template wins where it speaks, ours fills the rest, and the selector stays.
    #[test]
    fn the_users_template_and_volumes_are_merged() {
        let spec = json!({
            "configYAML": "a: 1\n",
            "volumes": [{"name": "data", "configMap": {"name": "d"}}],
            "volumeMounts": [{"name": "data", "mountPath": "/config/registry/d"}],
            "podTemplateSpec": {
                "metadata": {"labels": {"app.kubernetes.io/instance": "x", "team": "a"}},
                "spec": {"nodeSelector": {"disk": "ssd"},
                         "containers": [{"name": "registry-api", "resources": {"limits": {"memory": "1Gi"}}}]},
            },
        });
        let t = pod(&desired(&registry(spec), &Inputs::default()));
        assert_eq!(t["metadata"]["labels"]["app.kubernetes.io/instance"], "r");
        assert_eq!(t["metadata"]["labels"]["team"], "a");
        assert_eq!(t["spec"]["nodeSelector"]["disk"], "ssd");
        let api = &t["spec"]["containers"][0];
        assert_eq!(api["image"], DEFAULT_API_IMAGE);
        assert_eq!(api["resources"]["limits"]["memory"], "1Gi");
        assert_eq!(api["resources"]["limits"]["cpu"], "500m");
        let mounts: Vec<&str> = api["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, [CONFIG_DIR, "/config/registry/d"]);
        assert_eq!(t["spec"]["volumes"][1]["name"], "data");
    }

    #[test]
    fn every_child_is_labelled_and_owned() {
        let c = desired(
            &registry(json!({"configYAML": "a: 1\n"})),
            &Inputs::default(),
        );
        for obj in c.objects() {
            let labels = &obj["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "mcp-operator",
                "{obj}"
            );
            assert_eq!(labels["app.kubernetes.io/name"], KIND_LABEL, "{obj}");
            assert_eq!(labels["app.kubernetes.io/instance"], "r", "{obj}");
            let owner = &obj["metadata"]["ownerReferences"][0];
            assert_eq!(
                (owner["kind"].as_str(), owner["controller"].as_bool()),
                (Some("MCPRegistry"), Some(true))
            );
        }
        assert_eq!(
            url(&registry(json!({"configYAML": "a"}))),
            "http://r-api.ns:8080"
        );
    }
}
