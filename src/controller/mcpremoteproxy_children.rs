//! What an MCPRemoteProxy should have in the cluster: pure functions from the spec (and what the
//! reconciler looked up) to the desired children. `render` prints exactly these.
//!
//! The proxy is `mcp-operator bridge` in remote mode (the operator's own image), reverse-proxying
//! to `spec.remoteUrl` with the address guard, the tool policy and the added headers. Header
//! values from Secrets reach the pod as `secretKeyRef` env only; the config names the variables.

use super::children::{self, BRIDGE_CONFIG_DIR, BRIDGE_CONFIG_KEY, CONFIG_CHECKSUM, FIELD_MANAGER};
use crate::api::v1beta1::{MCPRemoteProxy, MCPToolConfigSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::{Resource, ResourceExt};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The kind's name label, which the child watches select on.
pub const KIND_LABEL: &str = "mcpremoteproxy";
/// The container's name, as upstream's (podTemplateSpec patches name it).
pub const CONTAINER: &str = "toolhive";
const DEFAULT_PROXY_PORT: i32 = 8080;
/// Non-root identity of the pod, as for MCPServer.
const RUN_AS: i64 = 1000;
/// Where the operator's image keeps its binary.
const BINARY: &str = "/mcp-operator";

/// What the reconciler found out that the spec alone does not say.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The operator's image, which runs the bridge.
    pub bridge_image: String,
    /// The referenced MCPToolConfig's spec, when there is one.
    pub tool_config: Option<MCPToolConfigSpec>,
    /// `resourceVersion` of every header Secret (name → version), so a rotation rolls the pods.
    pub secret_versions: BTreeMap<String, String>,
    /// Pull secrets added to every workload (operator-wide default).
    pub default_pull_secrets: Vec<String>,
    /// The resolved auth references: the bridge's `auth` block, headers and Secret env.
    pub auth: super::auth_refs::Resolved,
}

/// Every child of one MCPRemoteProxy: the shape every bridge-fronted workload has.
pub use super::workload::Children;

pub fn deployment_name(proxy: &str) -> String {
    proxy.to_string()
}
pub fn service_name(proxy: &str) -> String {
    format!("mcp-{proxy}-remote-proxy")
}
pub fn config_map_name(proxy: &str) -> String {
    format!("{proxy}-remote-proxy-config")
}
pub fn service_account_name(proxy: &str) -> String {
    format!("{proxy}-remote-proxy-runner")
}

/// Labels that select the pods; never change for the life of the object.
pub fn selector_labels(proxy: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), KIND_LABEL.to_string()),
        ("app.kubernetes.io/instance".to_string(), proxy.to_string()),
    ])
}

/// Labels on every child: the selector, ours, and upstream's.
pub fn child_labels(proxy: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(proxy);
    l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    l.insert("app".into(), KIND_LABEL.into());
    l.insert("toolhive".into(), "true".into());
    l.insert("toolhive-name".into(), proxy.into());
    l
}

pub fn proxy_port(proxy: &MCPRemoteProxy) -> i32 {
    proxy.spec.proxy_port.unwrap_or(DEFAULT_PROXY_PORT)
}

/// The Service URL clients use, as upstream writes it.
pub fn url(proxy: &MCPRemoteProxy) -> String {
    let ns = proxy.namespace().unwrap_or_else(|| "default".into());
    url_of(&proxy.name_any(), &ns, proxy.spec.proxy_port)
}

/// [`url`] from the fields it depends on (for controllers that keep only those).
pub fn url_of(proxy: &str, ns: &str, proxy_port: Option<i32>) -> String {
    format!(
        "http://{}.{ns}.svc.cluster.local:{}",
        service_name(proxy),
        proxy_port.unwrap_or(DEFAULT_PROXY_PORT)
    )
}

fn transport(proxy: &MCPRemoteProxy) -> &str {
    proxy.spec.transport.as_deref().unwrap_or("streamable-http")
}

/// The environment variable that carries the `i`-th header from a Secret: the index keeps two
/// header names that differ only in case or `-`/`_` apart.
pub fn header_env_name(i: usize, header: &str) -> String {
    let normalised: String = header
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("MCP_REMOTE_HEADER_{i}_{normalised}")
}

/// The header Secrets the pods read, as `(header, secret, key)`.
pub fn header_secrets(proxy: &MCPRemoteProxy) -> Vec<(&str, &str, &str)> {
    proxy
        .spec
        .header_forward
        .iter()
        .flat_map(|h| h.add_headers_from_secret.iter().flatten())
        .map(|h| {
            (
                h.header_name.as_str(),
                h.value_secret_ref.name.as_str(),
                h.value_secret_ref.key.as_str(),
            )
        })
        .collect()
}

/// The auth fields of a stored MCPRemoteProxy.
pub fn proxy_auth(proxy: &MCPRemoteProxy) -> crate::admission::auth::WorkloadAuth<'_> {
    crate::admission::auth::workload_of!("MCPRemoteProxy", proxy.spec)
}

/// What the auth resolution needs to know of the proxy: the remote is reached over HTTP, and
/// an injected header must not collide with one `headerForward` adds.
pub fn auth_workload(proxy: &MCPRemoteProxy) -> super::auth_refs::Workload<'_> {
    let forward = proxy.spec.header_forward.as_ref();
    let plain = forward
        .and_then(|h| h.add_plaintext_headers.as_ref())
        .into_iter()
        .flat_map(|m| m.keys().cloned());
    let from_secrets = header_secrets(proxy)
        .into_iter()
        .map(|(h, _, _)| h.to_string());
    super::auth_refs::Workload {
        auth: proxy_auth(proxy),
        name: proxy.meta().name.as_deref().unwrap_or_default(),
        namespace: proxy.meta().namespace.as_deref().unwrap_or("default"),
        service_url: url(proxy),
        http_backend: true,
        own_headers: plain.chain(from_secrets).collect(),
    }
}

/// The bridge's config file: the keys `mcp-operator bridge --config` reads. Header values from
/// Secrets are not in it, only the names of the variables that carry them.
pub fn bridge_config(proxy: &MCPRemoteProxy, inputs: &Inputs) -> Value {
    let s = &proxy.spec;
    let mut c = Map::new();
    c.insert("listen".into(), json!(format!(":{}", proxy_port(proxy))));
    c.insert("transport".into(), json!(transport(proxy)));
    c.insert("remoteUrl".into(), json!(s.remote_url));
    if s.allow_private_endpoint == Some(true) {
        c.insert("allowPrivateEndpoint".into(), json!(true));
    }
    let tools = inputs
        .tool_config
        .as_ref()
        .and_then(|t| t.tools_filter.clone())
        .unwrap_or_default();
    if !tools.is_empty() {
        c.insert("tools".into(), json!(tools));
    }
    if let Some(overrides) = children::tool_overrides(inputs.tool_config.as_ref()) {
        c.insert("toolOverrides".into(), overrides);
    }
    if let Some(p) = s.endpoint_prefix.as_ref().filter(|p| !p.is_empty()) {
        c.insert("endpointPrefix".into(), json!(p));
    }
    if s.trust_proxy_headers == Some(true) {
        c.insert("trustProxyHeaders".into(), json!(true));
    }
    let plain = s
        .header_forward
        .as_ref()
        .and_then(|h| h.add_plaintext_headers.as_ref())
        .filter(|h| !h.is_empty());
    if let Some(plain) = plain {
        c.insert("headers".into(), json!(plain));
    }
    let from_env: BTreeMap<&str, String> = header_secrets(proxy)
        .into_iter()
        .enumerate()
        .map(|(i, (header, _, _))| (header, header_env_name(i, header)))
        .collect();
    if !from_env.is_empty() {
        c.insert("headersFromEnv".into(), json!(from_env));
    }
    children::insert_auth(&mut c, &inputs.auth);
    Value::Object(c)
}

/// Every child, ready to apply.
pub fn desired(proxy: &MCPRemoteProxy, inputs: &Inputs) -> Children {
    let config = crate::canonical::to_string_pretty(&bridge_config(proxy, inputs));
    let checksum = children::checksum(&config, &inputs.secret_versions);
    Children {
        config_map: config_map(proxy, &config),
        service_account: service_account(proxy, inputs),
        service: service(proxy),
        deployment: deployment(proxy, inputs, &checksum),
    }
}

/// Metadata every child shares: name, namespace, labels, controller owner reference.
fn metadata(
    proxy: &MCPRemoteProxy,
    name: String,
    extra_labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut labels = extra_labels.cloned().unwrap_or_default();
    labels.extend(child_labels(&proxy.name_any())); // ours win over overrides
    let mut meta = json!({
        "name": name,
        "namespace": proxy.namespace(),
        "labels": labels,
    });
    // Offline (render) objects have no uid yet, so no owner reference can be made.
    if let Some(owner) = proxy.controller_owner_ref(&()) {
        meta["ownerReferences"] = json!([owner]);
    }
    if let Some(a) = annotations.filter(|a| !a.is_empty()) {
        meta["annotations"] = json!(a);
    }
    meta
}

fn config_map(proxy: &MCPRemoteProxy, config: &str) -> ConfigMap {
    let v = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(proxy, config_map_name(&proxy.name_any()), None, None),
        "data": { BRIDGE_CONFIG_KEY: config },
    });
    serde_json::from_value(v).expect("a ConfigMap we built")
}

/// `resourceOverrides.proxyDeployment.imagePullSecrets`, then the operator-wide defaults.
fn pull_secrets(proxy: &MCPRemoteProxy, inputs: &Inputs) -> Vec<Value> {
    let from_spec = proxy
        .spec
        .resource_overrides
        .as_ref()
        .and_then(|o| o.proxy_deployment.as_ref())
        .and_then(|d| d.image_pull_secrets.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.name);
    let mut names: Vec<String> = Vec::new();
    for n in from_spec.chain(inputs.default_pull_secrets.iter().cloned()) {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names.into_iter().map(|n| json!({ "name": n })).collect()
}

/// The pod's identity: no API rights, no token mounted (the bridge reads its config from a
/// file and its header values from env).
fn service_account(proxy: &MCPRemoteProxy, inputs: &Inputs) -> Option<ServiceAccount> {
    if proxy.spec.service_account.is_some() {
        return None;
    }
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(proxy, service_account_name(&proxy.name_any()), None, None),
        "automountServiceAccountToken": false,
    });
    let pulls = pull_secrets(proxy, inputs);
    if !pulls.is_empty() {
        v["imagePullSecrets"] = json!(pulls);
    }
    Some(serde_json::from_value(v).expect("a ServiceAccount we built"))
}

fn service(proxy: &MCPRemoteProxy) -> Service {
    let name = proxy.name_any();
    let overrides = proxy
        .spec
        .resource_overrides
        .as_ref()
        .and_then(|o| o.proxy_service.as_ref());
    let v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(proxy, service_name(&name), overrides.and_then(|o| o.labels.as_ref()), overrides.and_then(|o| o.annotations.as_ref())),
        "spec": {
            "selector": selector_labels(&name),
            "ports": [{
                "name": "http",
                "port": proxy_port(proxy),
                "targetPort": "http",
                "protocol": "TCP",
            }],
            "sessionAffinity": proxy.spec.session_affinity.as_deref().unwrap_or("ClientIP"),
        },
    });
    serde_json::from_value(v).expect("a Service we built")
}

/// Secret-sourced headers and the auth configs' Secret keys (as references: values never
/// leave the Secret), then overrides.
fn env(proxy: &MCPRemoteProxy, inputs: &Inputs) -> Vec<Value> {
    let mut env: Vec<Value> = header_secrets(proxy)
        .into_iter()
        .enumerate()
        .map(|(i, (header, secret, key))| {
            json!({"name": header_env_name(i, header),
                   "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        })
        .collect();
    env.extend(super::auth_refs::env_entries(&inputs.auth));
    let overrides = proxy
        .spec
        .resource_overrides
        .as_ref()
        .and_then(|o| o.proxy_deployment.as_ref())
        .and_then(|d| d.env.as_ref());
    for e in overrides.into_iter().flatten() {
        env.push(json!({"name": e.name, "value": e.value}));
    }
    env
}

fn deployment(proxy: &MCPRemoteProxy, inputs: &Inputs, checksum: &str) -> Deployment {
    let name = proxy.name_any();
    let s = &proxy.spec;
    let overrides = s
        .resource_overrides
        .as_ref()
        .and_then(|o| o.proxy_deployment.as_ref());
    let pod_meta = overrides.and_then(|o| o.pod_template_metadata_overrides.as_ref());
    let mut pod_labels = pod_meta.and_then(|m| m.labels.clone()).unwrap_or_default();
    pod_labels.extend(child_labels(&name));
    let mut pod_annotations = pod_meta
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    pod_annotations.insert(CONFIG_CHECKSUM.into(), checksum.into());
    let mut security = children::container_security();
    security["readOnlyRootFilesystem"] = json!(true);
    let (auth_volumes, auth_mounts) = super::auth_refs::volumes_and_mounts(&inputs.auth);
    let mut volumes =
        vec![json!({"name": "bridge-config", "configMap": {"name": config_map_name(&name)}})];
    volumes.extend(auth_volumes);
    let mut mounts =
        vec![json!({"name": "bridge-config", "mountPath": BRIDGE_CONFIG_DIR, "readOnly": true})];
    mounts.extend(auth_mounts);
    let mut pod_spec = json!({
        "serviceAccountName": s.service_account.clone().unwrap_or_else(|| service_account_name(&name)),
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": CONTAINER,
            "image": inputs.bridge_image,
            "command": [BINARY],
            "args": ["bridge", "--config", format!("{BRIDGE_CONFIG_DIR}/{BRIDGE_CONFIG_KEY}")],
            "ports": [{"name": "http", "containerPort": proxy_port(proxy), "protocol": "TCP"}],
            "env": env(proxy, inputs),
            "resources": children::resource_requirements(s.resources.as_ref()),
            "volumeMounts": mounts,
            // Ready only once the bridge's own initialize against the remote succeeded.
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
            "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
            "securityContext": security,
        }],
        "volumes": volumes,
    });
    let pulls = pull_secrets(proxy, inputs);
    if !pulls.is_empty() {
        pod_spec["imagePullSecrets"] = json!(pulls);
    }
    let template = json!({
        "metadata": {"labels": pod_labels, "annotations": pod_annotations},
        "spec": pod_spec,
    });
    let spec = super::podmerge::deployment_spec(
        template,
        s.pod_template_spec.as_ref(),
        &selector_labels(&name),
        s.replicas,
    );
    let v = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(proxy, deployment_name(&name), overrides.and_then(|o| o.labels.as_ref()), overrides.and_then(|o| o.annotations.as_ref())),
        "spec": spec,
    });
    serde_json::from_value(v).expect("a Deployment we built")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::config::FileConfig;

    fn to_value<T: serde::Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }

    fn proxy(spec: Value) -> MCPRemoteProxy {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
            "metadata": {"name": "rp", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    /// The operator writes the file the bridge reads: the bridge accepts it, and no Secret
    /// value can be in it (only variable names the pod's env fills from the Secrets).
    #[test]
    fn the_bridge_reads_the_config_the_operator_writes() {
        let p = proxy(json!({
            "remoteUrl": "https://mcp.example.com/mcp", "transport": "sse", "proxyPort": 9000,
            "endpointPrefix": "/x", "trustProxyHeaders": true, "allowPrivateEndpoint": true,
            "headerForward": {
                "addPlaintextHeaders": {"X-Tenant": "acme"},
                "addHeadersFromSecret": [
                    {"headerName": "X-Api-Key", "valueSecretRef": {"name": "api", "key": "key"}},
                    {"headerName": "x_api_key", "valueSecretRef": {"name": "api", "key": "other"}},
                ]},
        }));
        let inputs = Inputs {
            tool_config: Some(
                serde_json::from_value(
                    json!({"toolsFilter": ["say"], "toolsOverride": {"echo": {"name": "say"}}}),
                )
                .unwrap(),
            ),
            ..Inputs::default()
        };
        let text = serde_json::to_vec(&bridge_config(&p, &inputs)).unwrap();
        let file: FileConfig = serde_json::from_slice(&text).expect("the bridge accepts it");
        assert_eq!(
            file.remote_url.as_deref(),
            Some("https://mcp.example.com/mcp")
        );
        assert_eq!(file.listen.as_deref(), Some(":9000"));
        assert_eq!(file.allow_private_endpoint, Some(true));
        assert_eq!(file.tools, Some(vec!["say".to_string()]));
        let env = file.headers_from_env.unwrap();
        assert_eq!(env["X-Api-Key"], "MCP_REMOTE_HEADER_0_X_API_KEY");
        assert_eq!(env["x_api_key"], "MCP_REMOTE_HEADER_1_X_API_KEY");
        let d = to_value(&desired(&p, &inputs).deployment);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["env"][0]["name"], "MCP_REMOTE_HEADER_0_X_API_KEY");
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"],
            json!({"name": "api", "key": "key"})
        );
        assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["key"], "other");
        assert_eq!(c["ports"][0]["containerPort"], 9000);
    }

    /// Whatever changes what the bridge does rolls the pods: the tool config, the headers,
    /// and a rotation of a header Secret.
    #[test]
    fn changes_roll_the_pods() {
        let base = json!({"remoteUrl": "https://mcp.example.com/mcp"});
        let sum = |spec: Value, tools: Option<Value>, versions: &[(&str, &str)]| {
            let inputs = Inputs {
                tool_config: tools.map(|t| serde_json::from_value(t).unwrap()),
                secret_versions: versions
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                ..Inputs::default()
            };
            let d = to_value(&desired(&proxy(spec), &inputs).deployment);
            d["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM].clone()
        };
        let mut with_header = base.clone();
        with_header["headerForward"] = json!({"addPlaintextHeaders": {"X-A": "1"}});
        let sums = [
            sum(base.clone(), None, &[]),
            sum(base.clone(), Some(json!({"toolsFilter": ["a"]})), &[]),
            sum(
                base.clone(),
                Some(json!({"toolsOverride": {"a": {"name": "b"}}})),
                &[],
            ),
            sum(with_header, None, &[]),
            sum(base.clone(), None, &[("api", "1")]),
            sum(base.clone(), None, &[("api", "2")]),
        ];
        for (i, a) in sums.iter().enumerate() {
            assert!(a.is_string());
            for b in &sums[i + 1..] {
                assert_ne!(a, b, "row {i}");
            }
        }
        assert_eq!(sums[0], sum(base, None, &[]), "stable");
    }

    #[test]
    fn names_labels_and_url() {
        let p = proxy(json!({"remoteUrl": "https://mcp.example.com/mcp", "proxyPort": 8081}));
        let c = desired(&p, &Inputs::default());
        assert_eq!(
            url(&p),
            "http://mcp-rp-remote-proxy.ns.svc.cluster.local:8081"
        );
        let objects = c.objects();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "rp-remote-proxy-config",
                "rp-remote-proxy-runner",
                "mcp-rp-remote-proxy",
                "rp"
            ]
        );
        for o in &objects {
            let l = &o["metadata"]["labels"];
            assert_eq!(l["app.kubernetes.io/managed-by"], "mcp-operator");
            assert_eq!(l["app.kubernetes.io/name"], "mcpremoteproxy");
            assert_eq!(l["app.kubernetes.io/instance"], "rp");
            assert_eq!(o["metadata"]["ownerReferences"][0]["controller"], true);
        }
        let with_sa = proxy(json!({"remoteUrl": "https://x.example", "serviceAccount": "mine"}));
        let c = desired(&with_sa, &Inputs::default());
        assert!(c.service_account.is_none());
        assert_eq!(
            to_value(&c.deployment)["spec"]["template"]["spec"]["serviceAccountName"],
            "mine"
        );
    }
}
