//! What an MCPServer should have in the cluster: pure functions from the spec (and what the
//! reconciler looked up) to the desired child objects. `render` prints exactly these.
//!
//! The MCP server runs with the bridge in its own pod (see DESIGN §6): an init container copies
//! the static `mcp-operator` binary into an `emptyDir`, and the `mcp` container runs the server's
//! image with its command wrapped by `mcp-operator bridge`.

use crate::api::v1beta1::{MCPServer, MCPToolConfigSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::{Resource, ResourceExt};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "mcp-operator";
/// Pod-template annotation whose change rolls the pods: the bridge config and Secret versions.
pub const CONFIG_CHECKSUM: &str = "toolhive.stacklok.dev/config-checksum";
/// Annotation on every child: a digest of what we last applied to it (without this annotation).
/// A child whose digest differs is applied again even when the live object has everything we
/// want, so that fields we stopped wanting are removed (server-side apply drops what a manager
/// no longer applies); one whose digest matches is compared, not re-applied.
pub const APPLIED_HASH: &str = "toolhive.stacklok.dev/applied-hash";
/// Where the bridge binary is copied to in the pod.
pub const BRIDGE_BIN_DIR: &str = "/mcp/bin";
pub const BRIDGE_CONFIG_DIR: &str = "/etc/mcp-bridge";
pub const BRIDGE_CONFIG_KEY: &str = "bridge.json";
/// Non-root identity of the pod, as upstream runs its proxies.
const RUN_AS: i64 = 1000;
const DEFAULT_PROXY_PORT: i32 = 8080;
const DEFAULT_MCP_PORT: i32 = 8080;

/// What the reconciler found out about the world that the spec alone does not say.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Image of the init container that provides the bridge binary.
    pub bridge_image: String,
    /// The server's command: `spec.command`, or the image's entrypoint + cmd when resolved.
    pub command: Vec<String>,
    /// The referenced MCPToolConfig's spec, when there is one.
    pub tool_config: Option<MCPToolConfigSpec>,
    /// `resourceVersion` of every referenced Secret (name → version), so a rotation rolls pods.
    pub secret_versions: BTreeMap<String, String>,
    /// Pull secrets added to every workload (operator-wide default).
    pub default_pull_secrets: Vec<String>,
    /// The resolved auth references: the bridge's `auth` block, headers and Secret env.
    pub auth: super::auth_refs::Resolved,
}

/// Every child of one MCPServer: the shape every bridge-fronted workload has.
pub use super::workload::Children;

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

pub fn deployment_name(server: &str) -> String {
    server.to_string()
}
pub fn service_name(server: &str) -> String {
    format!("mcp-{server}-proxy")
}
pub fn config_map_name(server: &str) -> String {
    format!("{server}-bridge-config")
}
pub fn service_account_name(server: &str) -> String {
    format!("{server}-sa")
}

/// The `app.kubernetes.io/name` of an MCPServer's children.
pub const KIND_LABEL: &str = "mcpserver";

/// Labels that select the pods; never change for the life of the object.
pub fn selector_labels(server: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), KIND_LABEL.to_string()),
        ("app.kubernetes.io/instance".to_string(), server.to_string()),
    ])
}

/// Labels on every child: the selector, ours, and upstream's (so existing tooling finds them).
pub fn child_labels(server: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(server);
    l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    l.insert("app".into(), KIND_LABEL.into());
    l.insert("toolhive".into(), "true".into());
    l.insert("toolhive-name".into(), server.into());
    l
}

/// The Service's own URL, without the endpoint path.
pub fn service_url(server: &MCPServer) -> String {
    let ns = server.namespace().unwrap_or_else(|| "default".into());
    service_url_of(&server.name_any(), &ns, server.spec.proxy_port)
}

/// [`service_url`] from the fields it depends on (for controllers that keep only those).
pub fn service_url_of(server: &str, ns: &str, proxy_port: Option<i32>) -> String {
    let port = proxy_port.unwrap_or(DEFAULT_PROXY_PORT);
    format!(
        "http://{}.{ns}.svc.cluster.local:{port}",
        service_name(server)
    )
}

/// The service URL clients use, as upstream writes it.
pub fn url(server: &MCPServer) -> String {
    let name = server.name_any();
    let base = service_url(server);
    if serves_sse(server) {
        format!("{base}/sse#{name}")
    } else {
        format!("{base}/mcp")
    }
}

fn transport(server: &MCPServer) -> &str {
    server.spec.transport.as_deref().unwrap_or("stdio")
}

fn serves_sse(server: &MCPServer) -> bool {
    serves_sse_of(
        server.spec.transport.as_deref(),
        server.spec.proxy_mode.as_deref(),
    )
}

/// Whether an MCPServer of this `transport` and `proxyMode` is served over SSE by its bridge
/// (`/sse`), rather than streamable HTTP (`/mcp`).
pub fn serves_sse_of(transport: Option<&str>, proxy_mode: Option<&str>) -> bool {
    match transport.unwrap_or("stdio") {
        "stdio" => proxy_mode == Some("sse"),
        t => t == "sse",
    }
}

/// The bridge's own port: the Service's target. It must not collide with the server's port
/// inside the shared pod (upstream manifests often set both to 8080).
pub fn bridge_port(server: &MCPServer) -> i32 {
    let proxy = server.spec.proxy_port.unwrap_or(DEFAULT_PROXY_PORT);
    if transport(server) == "stdio" {
        return proxy;
    }
    let mcp = server.spec.mcp_port.unwrap_or(DEFAULT_MCP_PORT);
    match proxy {
        p if p != mcp => p,
        65535 => 65534,
        p => p + 1,
    }
}

/// Whether the two allow-lists, both set, have no tool in common: the bridge has no way to say
/// "no tool" (an absent or empty `tools` serves every tool), so such a server must not run.
pub fn no_tool_allowed(server: &MCPServer, tool_config: Option<&MCPToolConfigSpec>) -> bool {
    let inline = server.spec.tools.as_deref().unwrap_or_default();
    let shared = tool_config
        .and_then(|t| t.tools_filter.as_deref())
        .unwrap_or_default();
    !inline.is_empty() && !shared.is_empty() && allowed_tools(server, tool_config).is_empty()
}

/// The annotation in which conversion keeps a v1alpha1 `oidcConfig` on the stored v1beta1
/// object (`conversion::stash`'s v1alpha1 prefix and the field's name).
pub const INLINE_OIDC_ANNOTATION: &str = "toolhive.stacklok.dev/v1alpha1-oidcConfig";

/// Whether the stored object asks for inline OIDC authentication (kept from v1alpha1 in the
/// stash annotation). The data path does not authenticate yet, so such a server must not run:
/// it would serve without the authentication its owner asked for. The stash marks a field that
/// was absent as `<absent>`; text that is not JSON is still a request (never fail open).
pub fn asks_for_inline_oidc(server: &MCPServer) -> bool {
    let Some(text) = server.annotations().get(INLINE_OIDC_ANNOTATION) else {
        return false;
    };
    if text == "<absent>" {
        return false;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => !is_empty(&v),
        Err(_) => !text.trim().is_empty(),
    }
}

/// The tools the bridge serves: the inline list and the MCPToolConfig's filter must both allow
/// a tool; an empty or absent list allows everything. Two lists with nothing in common give an
/// empty result here: callers check [`no_tool_allowed`] first.
pub fn allowed_tools(server: &MCPServer, tool_config: Option<&MCPToolConfigSpec>) -> Vec<String> {
    let inline: Vec<String> = server.spec.tools.clone().unwrap_or_default();
    let shared: Vec<String> = tool_config
        .and_then(|t| t.tools_filter.clone())
        .unwrap_or_default();
    match (inline.is_empty(), shared.is_empty()) {
        (true, true) => Vec::new(),
        (false, true) => inline,
        (true, false) => shared,
        (false, false) => inline.into_iter().filter(|t| shared.contains(t)).collect(),
    }
}

/// The MCPToolConfig's `toolsOverride` in the bridge's `toolOverrides` shape, keyed by the
/// backend's tool name. An empty `name` or `description` keeps the backend's, as upstream reads
/// them; unlike upstream's proxy (name and description only) the annotations are carried over too.
/// Entries that change nothing are kept: the bridge checks renames against their names.
pub(crate) fn tool_overrides(tool_config: Option<&MCPToolConfigSpec>) -> Option<Value> {
    let overrides = tool_config?.tools_override.as_ref()?;
    if overrides.is_empty() {
        return None;
    }
    let nonempty = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(Value::from);
    let entries = overrides.iter().map(|(backend, o)| {
        let mut entry = Map::new();
        if let Some(name) = nonempty(&o.name) {
            entry.insert("name".into(), name);
        }
        if let Some(description) = nonempty(&o.description) {
            entry.insert("description".into(), description);
        }
        let annotations = o.annotations.as_ref().map(to_value);
        if let Some(a) = annotations.filter(|a| a.as_object().is_some_and(|a| !a.is_empty())) {
            entry.insert("annotations".into(), a);
        }
        (backend.clone(), Value::Object(entry))
    });
    Some(Value::Object(entries.collect()))
}

/// The bridge's config file (the keys `mcp-operator bridge --config` reads).
pub fn bridge_config(server: &MCPServer, inputs: &Inputs) -> Value {
    let mut c = Map::new();
    c.insert("listen".into(), json!(format!(":{}", bridge_port(server))));
    c.insert("transport".into(), json!(transport(server)));
    if transport(server) != "stdio" {
        let port = server.spec.mcp_port.unwrap_or(DEFAULT_MCP_PORT);
        c.insert("target".into(), json!(format!("http://127.0.0.1:{port}")));
    }
    let tools = allowed_tools(server, inputs.tool_config.as_ref());
    if !tools.is_empty() {
        c.insert("tools".into(), json!(tools));
    }
    if let Some(overrides) = tool_overrides(inputs.tool_config.as_ref()) {
        c.insert("toolOverrides".into(), overrides);
    }
    if let Some(p) = server
        .spec
        .endpoint_prefix
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        c.insert("endpointPrefix".into(), json!(p));
    }
    if server.spec.trust_proxy_headers == Some(true) {
        c.insert("trustProxyHeaders".into(), json!(true));
    }
    insert_auth(&mut c, &inputs.auth);
    Value::Object(c)
}

/// The resolved auth in a bridge config: the `auth` block, and headers injected from the
/// environment (their values are not in the file, only the variables' names).
pub(crate) fn insert_auth(c: &mut Map<String, Value>, auth: &super::auth_refs::Resolved) {
    if let Some(block) = &auth.block {
        c.insert("auth".into(), block.clone());
    }
    if auth.headers_from_env.is_empty() {
        return;
    }
    let headers = c
        .entry("headersFromEnv")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("headersFromEnv is an object");
    for (name, var) in &auth.headers_from_env {
        headers.insert(name.clone(), json!(var));
    }
}

/// Whether the server's own process is reached over HTTP (where outgoing credentials go).
pub fn http_backend(server: &MCPServer) -> bool {
    transport(server) != "stdio"
}

/// The auth fields of a stored MCPServer.
pub fn server_auth(server: &MCPServer) -> crate::admission::auth::WorkloadAuth<'_> {
    crate::admission::auth::workload_of!("MCPServer", server.spec)
}

/// What the auth resolution needs to know of the server.
pub fn auth_workload(server: &MCPServer) -> super::auth_refs::Workload<'_> {
    super::auth_refs::Workload {
        auth: server_auth(server),
        name: server.meta().name.as_deref().unwrap_or_default(),
        namespace: server.meta().namespace.as_deref().unwrap_or("default"),
        service_url: service_url(server),
        http_backend: http_backend(server),
        own_headers: Vec::new(),
    }
}

/// Every child, ready to apply.
pub fn desired(server: &MCPServer, inputs: &Inputs) -> Children {
    let config = crate::canonical::to_string_pretty(&bridge_config(server, inputs));
    Children {
        config_map: config_map(server, &config),
        service_account: service_account(server, inputs),
        service: service(server),
        deployment: deployment(server, inputs, &checksum(&config, &inputs.secret_versions)),
    }
}

/// Hex SHA-256 over the bridge config and the Secrets' versions (names sorted).
pub fn checksum(config: &str, secret_versions: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(config.as_bytes());
    for (name, version) in secret_versions {
        h.update(b"\0secret\0");
        h.update(name.as_bytes());
        h.update(b"=");
        h.update(version.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Metadata every child shares: name, namespace, labels, controller owner reference.
fn metadata(
    server: &MCPServer,
    name: String,
    extra_labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Value {
    let mut labels = extra_labels.cloned().unwrap_or_default();
    labels.extend(child_labels(&server.name_any())); // ours win over overrides
    let mut meta = json!({
        "name": name,
        "namespace": server.namespace(),
        "labels": labels,
    });
    // Offline (render) objects have no uid yet, so no owner reference can be made.
    if let Some(owner) = server.controller_owner_ref(&()) {
        meta["ownerReferences"] = json!([owner]);
    }
    if let Some(a) = annotations.filter(|a| !a.is_empty()) {
        meta["annotations"] = json!(a);
    }
    meta
}

fn config_map(server: &MCPServer, config: &str) -> ConfigMap {
    let v = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(server, config_map_name(&server.name_any()), None, None),
        "data": { BRIDGE_CONFIG_KEY: config },
    });
    serde_json::from_value(v).expect("a ConfigMap we built")
}

fn pull_secrets(server: &MCPServer, inputs: &Inputs) -> Vec<Value> {
    own_pull_secret_names(server, &inputs.default_pull_secrets)
        .into_iter()
        .map(|n| json!({ "name": n }))
        .collect()
}

/// `resourceOverrides.proxyDeployment.imagePullSecrets`, then the operator-wide defaults.
fn own_pull_secret_names(server: &MCPServer, defaults: &[String]) -> Vec<String> {
    let from_spec = server
        .spec
        .resource_overrides
        .as_ref()
        .and_then(|o| o.proxy_deployment.as_ref())
        .and_then(|d| d.image_pull_secrets.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.name);
    unique_names(from_spec.chain(defaults.iter().cloned()))
}

fn unique_names(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Every pull Secret the server's pod will carry (the podTemplateSpec's first, then ours), so
/// the registry lookup of its entrypoint can use the same logins the kubelet will.
pub fn pull_secret_names(server: &MCPServer, default_pull_secrets: &[String]) -> Vec<String> {
    let from_template = server
        .spec
        .pod_template_spec
        .as_ref()
        .and_then(|t| t.pointer("/spec/imagePullSecrets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string));
    unique_names(from_template.chain(own_pull_secret_names(server, default_pull_secrets)))
}

/// The pod's identity: no API rights, no token mounted.
fn service_account(server: &MCPServer, inputs: &Inputs) -> Option<ServiceAccount> {
    if server.spec.service_account.is_some() {
        return None;
    }
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(server, service_account_name(&server.name_any()), None, None),
        "automountServiceAccountToken": false,
    });
    let pulls = pull_secrets(server, inputs);
    if !pulls.is_empty() {
        v["imagePullSecrets"] = json!(pulls);
    }
    Some(serde_json::from_value(v).expect("a ServiceAccount we built"))
}

fn service(server: &MCPServer) -> Service {
    let name = server.name_any();
    let overrides = server
        .spec
        .resource_overrides
        .as_ref()
        .and_then(|o| o.proxy_service.as_ref());
    let v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(server, service_name(&name), overrides.and_then(|o| o.labels.as_ref()), overrides.and_then(|o| o.annotations.as_ref())),
        "spec": {
            "selector": selector_labels(&name),
            "ports": [{
                "name": "http",
                "port": server.spec.proxy_port.unwrap_or(DEFAULT_PROXY_PORT),
                "targetPort": "http",
                "protocol": "TCP",
            }],
            "sessionAffinity": server.spec.session_affinity.as_deref().unwrap_or("ClientIP"),
        },
    });
    serde_json::from_value(v).expect("a Service we built")
}

/// Plain env, then Secret references (values never leave the Secret): the server's own, then
/// the auth configs', then overrides.
fn env(server: &MCPServer, inputs: &Inputs) -> Vec<Value> {
    let s = &server.spec;
    let mut env: Vec<Value> = s
        .env
        .iter()
        .flatten()
        .map(|e| json!({"name": e.name, "value": e.value}))
        .collect();
    for sec in s.secrets.iter().flatten() {
        let name = sec
            .target_env_name
            .clone()
            .unwrap_or_else(|| sec.key.clone());
        env.push(json!({"name": name, "valueFrom": {"secretKeyRef": {"name": sec.name, "key": sec.key}}}));
    }
    env.extend(super::auth_refs::env_entries(&inputs.auth));
    let overrides = s
        .resource_overrides
        .as_ref()
        .and_then(|o| o.proxy_deployment.as_ref())
        .and_then(|d| d.env.as_ref());
    for e in overrides.into_iter().flatten() {
        env.push(json!({"name": e.name, "value": e.value}));
    }
    env
}

fn resources(server: &MCPServer) -> Value {
    resource_requirements(server.spec.resources.as_ref())
}

/// A container's `resources` from the CRD's cpu/memory strings.
pub(crate) fn resource_requirements(r: Option<&crate::api::shared::ResourceRequirements>) -> Value {
    let Some(r) = r else {
        return json!({});
    };
    let list = |l: &Option<crate::api::shared::ResourceList>| {
        let mut m = Map::new();
        if let Some(l) = l {
            if let Some(c) = &l.cpu {
                m.insert("cpu".into(), json!(c));
            }
            if let Some(mem) = &l.memory {
                m.insert("memory".into(), json!(mem));
            }
        }
        m
    };
    let mut out = Map::new();
    for (k, l) in [("limits", list(&r.limits)), ("requests", list(&r.requests))] {
        if !l.is_empty() {
            out.insert(k.into(), Value::Object(l));
        }
    }
    Value::Object(out)
}

/// The restricted Pod Security Standard, for every container we define.
pub(crate) fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The pod's volumes and the `mcp` container's mounts. That container is the bridge's (it wraps
/// the server's command), so the auth files the bridge reads are mounted there.
fn volumes_and_mounts(server: &MCPServer, inputs: &Inputs) -> (Vec<Value>, Vec<Value>) {
    let name = server.name_any();
    let mut volumes = vec![
        json!({"name": "bridge-bin", "emptyDir": {}}),
        json!({"name": "bridge-config", "configMap": {"name": config_map_name(&name)}}),
    ];
    let mut mounts = vec![
        json!({"name": "bridge-bin", "mountPath": BRIDGE_BIN_DIR, "readOnly": true}),
        json!({"name": "bridge-config", "mountPath": BRIDGE_CONFIG_DIR, "readOnly": true}),
    ];
    for v in server.spec.volumes.iter().flatten() {
        volumes.push(json!({"name": v.name, "hostPath": {"path": v.host_path}}));
        mounts.push(json!({"name": v.name, "mountPath": v.mount_path, "readOnly": v.read_only.unwrap_or(false)}));
    }
    if let Some(p) = server
        .spec
        .permission_profile
        .as_ref()
        .filter(|p| p.type_ == "configmap")
    {
        volumes.push(json!({"name": "permission-profile", "configMap": {"name": p.name}}));
        mounts.push(json!({"name": "permission-profile", "mountPath": "/etc/toolhive/profiles", "readOnly": true}));
    }
    let (auth_volumes, auth_mounts) = super::auth_refs::volumes_and_mounts(&inputs.auth);
    volumes.extend(auth_volumes);
    mounts.extend(auth_mounts);
    (volumes, mounts)
}

fn deployment(server: &MCPServer, inputs: &Inputs, checksum: &str) -> Deployment {
    let name = server.name_any();
    let s = &server.spec;
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
    let (volumes, mounts) = volumes_and_mounts(server, inputs);
    let mut args = vec![
        json!("bridge"),
        json!("--config"),
        json!(format!("{BRIDGE_CONFIG_DIR}/{BRIDGE_CONFIG_KEY}")),
        json!("--"),
    ];
    args.extend(inputs.command.iter().map(|c| json!(c)));
    args.extend(s.args.iter().flatten().map(|a| json!(a)));
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
        "initContainers": [{
            "name": "install-bridge",
            "image": inputs.bridge_image,
            "command": ["/mcp-operator", "install", format!("{BRIDGE_BIN_DIR}/mcp-operator")],
            "volumeMounts": [{"name": "bridge-bin", "mountPath": BRIDGE_BIN_DIR}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "securityContext": container_security(),
        }],
        "containers": [{
            "name": "mcp",
            "image": s.image,
            "command": [format!("{BRIDGE_BIN_DIR}/mcp-operator")],
            "args": args,
            "ports": [{"name": "http", "containerPort": bridge_port(server), "protocol": "TCP"}],
            "env": env(server, inputs),
            "resources": resources(server),
            "volumeMounts": mounts,
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
            "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
            "securityContext": container_security(),
        }],
        "volumes": volumes,
    });
    let pulls = pull_secrets(server, inputs);
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
        "metadata": metadata(server, deployment_name(&name), overrides.and_then(|o| o.labels.as_ref()), overrides.and_then(|o| o.annotations.as_ref())),
        "spec": spec,
    });
    serde_json::from_value(v).expect("a Deployment we built")
}

/// Kind and name of a child, for logs and events.
pub fn describe(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{kind}/{name}")
}

/// Adds [`APPLIED_HASH`] to a child about to be applied: hex SHA-256 (first 16 bytes) of the
/// object without it. Stable across operator builds, so an upgrade does not re-apply everything.
pub fn stamp_applied_hash(child: &mut Value) {
    let digest = Sha256::digest(crate::canonical::to_string(child).as_bytes());
    let hash = hex::encode(&digest[..16]);
    if let Some(meta) = child.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(APPLIED_HASH.into(), Value::String(hash));
        }
    }
}

/// True when the Service's selector and ports are exactly ours: these two lists are the
/// operator's whole (an extra selector key selects no pod; an extra port is a door we did not
/// open), and server-side apply cannot remove what another manager added to them.
pub fn service_lists_are_ours(desired: &Value, live: &Value) -> bool {
    let selector = |v: &Value| v.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
    let want_ports = desired.pointer("/spec/ports").and_then(Value::as_array);
    let have_ports = live.pointer("/spec/ports").and_then(Value::as_array);
    let ports_match = match (want_ports, have_ports) {
        (Some(w), Some(h)) => w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b)),
        (w, h) => w.is_none_or(|w| w.is_empty()) && h.is_none_or(|h| h.is_empty()),
    };
    ports_match && selector(desired) == selector(live)
}

/// A JSON merge patch that makes the Service's selector and ports exactly ours: the ports list
/// is replaced whole (a merge patch replaces lists) and selector keys we do not set are removed.
pub fn service_lists_patch(desired: &Value, live: &Value) -> Value {
    let mut selector = desired
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let extra = live.pointer("/spec/selector").and_then(Value::as_object);
    for key in extra.into_iter().flat_map(|m| m.keys()) {
        selector.entry(key.clone()).or_insert(Value::Null);
    }
    json!({"spec": {
        "selector": selector,
        "ports": desired.pointer("/spec/ports").cloned().unwrap_or_else(|| json!([])),
    }})
}

/// True when the Service's selector picks the Deployment's pods: every selector label is on the
/// pod template (another manager may have added one that no pod carries).
pub fn service_selects_pods(service: &Value, deployment: &Value) -> bool {
    let labels = deployment.pointer("/spec/template/metadata/labels");
    let Some(selector) = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// True when every field of `desired` is present in `live` with the same value (`live` may have
/// more: defaults, status, fields of other managers). Lists must match item by item. Fields we
/// stopped setting are caught by [`APPLIED_HASH`], not here.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| match l.get(k) {
            Some(lv) => is_subset(v, lv),
            None => is_empty(v),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (d, l) => d == l,
    }
}

/// Empty values are dropped by the API server; their absence is not drift. A map holding only
/// empty values (`{"nodeSelector": {}}`) is empty too: the server drops all of it, and judging
/// it missing would re-apply the object on every start of the operator.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The server's resources are ours to own: a helper for the reconciler and tests.
pub fn owner_uid(server: &MCPServer) -> Option<String> {
    server.meta().uid.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::config::FileConfig;

    fn server(spec: Value) -> MCPServer {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "s", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    /// The operator writes the file the bridge reads: the two must agree on every key.
    #[test]
    fn bridge_reads_the_config_the_operator_writes() {
        let s = server(
            json!({"image": "x", "transport": "sse", "mcpPort": 8080, "proxyPort": 8080, "tools": ["a"], "endpointPrefix": "/p", "trustProxyHeaders": true}),
        );
        let text = serde_json::to_vec(&bridge_config(&s, &Inputs::default())).unwrap();
        let file: FileConfig =
            serde_json::from_slice(&text).expect("the bridge accepts the operator's config");
        assert_eq!(
            file.listen.as_deref(),
            Some(":8081"),
            "the bridge moves off the server's port"
        );
        assert_eq!(file.target.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(file.tools, Some(vec!["a".to_string()]));
        assert_eq!(file.tool_overrides, None);
    }

    fn tool_config(spec: Value) -> MCPToolConfigSpec {
        serde_json::from_value(spec).unwrap()
    }

    /// The MCPToolConfig's overrides reach the bridge, which accepts them as they are written.
    #[test]
    fn bridge_reads_the_tool_overrides_the_operator_writes() {
        use crate::bridge::config::{ToolAnnotations, ToolOverride};
        let s = server(json!({"image": "x", "command": ["srv"]}));
        let inputs = Inputs {
            tool_config: Some(tool_config(json!({
                "toolsFilter": ["say", "get-sum"],
                "toolsOverride": {
                    "echo": {"name": "say", "description": "Says it back",
                             "annotations": {"title": "Say", "readOnlyHint": true}},
                    // Empty strings keep the backend's value, as upstream reads them.
                    "get-sum": {"name": "", "description": "",
                                "annotations": {"destructiveHint": false}},
                    "get-env": {},
                },
            }))),
            ..Inputs::default()
        };
        let text = serde_json::to_vec(&bridge_config(&s, &inputs)).unwrap();
        let file: FileConfig =
            serde_json::from_slice(&text).expect("the bridge accepts the operator's config");
        let overrides = file.tool_overrides.clone().expect("toolOverrides");
        assert_eq!(
            overrides["echo"],
            ToolOverride {
                name: Some("say".into()),
                description: Some("Says it back".into()),
                annotations: Some(ToolAnnotations {
                    title: Some("Say".into()),
                    read_only_hint: Some(true),
                    ..ToolAnnotations::default()
                }),
            }
        );
        assert_eq!(
            overrides["get-sum"],
            ToolOverride {
                annotations: Some(ToolAnnotations {
                    destructive_hint: Some(false),
                    ..ToolAnnotations::default()
                }),
                ..ToolOverride::default()
            }
        );
        assert_eq!(overrides["get-env"], ToolOverride::default());
        assert_eq!(file.tools, Some(vec!["say".into(), "get-sum".into()]));
        // And the bridge runs with it: the file passes the bridge's own checks.
        let policy = crate::bridge::filter::ToolPolicy::new(
            file.tools.as_deref().unwrap_or_default(),
            &overrides,
        );
        assert!(matches!(policy, Ok(Some(_))), "{policy:?}");
    }

    /// A change of the referenced MCPToolConfig's overrides changes the pod template's checksum,
    /// so the pods roll and the bridge reads the new file.
    #[test]
    fn tool_override_changes_roll_the_pods() {
        let s = server(json!({"image": "x", "command": ["srv"]}));
        let pod_checksum = |spec: Option<Value>| {
            let inputs = Inputs {
                tool_config: spec.map(tool_config),
                ..Inputs::default()
            };
            let d = to_value(&desired(&s, &inputs).deployment);
            d["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM].clone()
        };
        let sums = [
            pod_checksum(None),
            pod_checksum(Some(json!({"toolsOverride": {"echo": {"name": "say"}}}))),
            pod_checksum(Some(json!({"toolsOverride": {"echo": {"name": "shout"}}}))),
            pod_checksum(Some(
                json!({"toolsOverride": {"echo": {"name": "say", "description": "d"}}}),
            )),
            pod_checksum(Some(json!({"toolsOverride": {
                "echo": {"name": "say", "annotations": {"readOnlyHint": true}}}}))),
        ];
        for (i, a) in sums.iter().enumerate() {
            assert!(a.is_string(), "{a}");
            for b in &sums[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            sums[1],
            pod_checksum(Some(json!({"toolsOverride": {"echo": {"name": "say"}}}))),
            "the same overrides make the same checksum"
        );
    }

    #[test]
    fn allow_lists_intersect() {
        let s = server(json!({"image": "x", "tools": ["a", "b"]}));
        let shared = MCPToolConfigSpec {
            tools_filter: Some(vec!["b".into(), "c".into()]),
            tools_override: None,
        };
        assert_eq!(allowed_tools(&s, Some(&shared)), ["b"]);
        assert_eq!(allowed_tools(&s, None), ["a", "b"]);
    }

    #[test]
    fn subset_ignores_server_defaults_but_not_changes() {
        let want = json!({"spec": {"replicas": 1, "ports": [{"port": 80}]}});
        assert!(is_subset(
            &want,
            &json!({"spec": {"replicas": 1, "ports": [{"port": 80, "protocol": "TCP"}], "extra": true}})
        ));
        assert!(!is_subset(
            &want,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &want,
            &json!({"spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 81}]}})
        ));
    }
}
