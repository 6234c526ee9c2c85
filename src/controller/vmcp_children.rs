//! What a VirtualMCPServer should have in the cluster: pure functions from the spec and the
//! group's members (as the reconciler found them) to the runtime's config file and the
//! children. `render` prints exactly these.
//!
//! The endpoint is `mcp-operator vmcp` (the operator's own image) in its own Deployment. It
//! discovers nothing: [`file_config`] renders every backend, tool selection and duration into
//! `vmcp.json` (ConfigMap `<name>-vmcp-config`, its checksum on the pod template so a change
//! rolls the pods), and the runtime reports its backends' health on `GET /status`.

use super::auth_refs::{Resolved, SecretEnv};
use super::children::{self as shared, CONFIG_CHECKSUM, FIELD_MANAGER};
use crate::admission::rules::go_duration_secs;
use crate::api::v1beta1::{
    MCPExternalAuthConfig, MCPServerEntry, MCPToolConfigSpec, VirtualMCPServer,
};
use crate::bridge::config::{AuthConfig, ToolOverride};
use crate::vmcp::config::{
    Aggregation, Backend, FileConfig, Operational, WorkloadTools, CONFIG_FILE, VMCP_PORT,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The kind's name label, which the child watches select on.
pub const KIND_LABEL: &str = "virtualmcpserver";
/// The container's name, as upstream's (podTemplateSpec patches name it).
pub const CONTAINER: &str = "vmcp";
/// Where the ConfigMap is mounted; the runtime reads `CONFIG_DIR/vmcp.json`.
pub const CONFIG_DIR: &str = "/etc/vmcp-config";
/// Where an MCPServerEntry's CA bundle is mounted: `CA_DIR/<backend index>/ca.crt`.
const CA_DIR: &str = "/etc/vmcp-ca";
const CA_FILE: &str = "ca.crt";
/// Non-root identity of the pod, as for the other workloads.
const RUN_AS: i64 = 1000;
/// Where the operator's image keeps its binary.
const BINARY: &str = "/mcp-operator";
/// Upstream's label on the config ConfigMap.
const COMPONENT_LABEL: &str = "toolhive.stacklok.io/component";

pub fn deployment_name(vmcp: &str) -> String {
    vmcp.to_string()
}
pub fn service_name(vmcp: &str) -> String {
    format!("vmcp-{vmcp}")
}
pub fn config_map_name(vmcp: &str) -> String {
    format!("{vmcp}-vmcp-config")
}
pub fn service_account_name(vmcp: &str) -> String {
    format!("{vmcp}-vmcp")
}
/// The path of the config file inside the pod.
pub fn config_path() -> String {
    format!("{CONFIG_DIR}/{CONFIG_FILE}")
}

/// Labels that select the pods; never change for the life of the object.
pub fn selector_labels(vmcp: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), KIND_LABEL.to_string()),
        ("app.kubernetes.io/instance".to_string(), vmcp.to_string()),
    ])
}

/// Labels on every child: the selector, ours, and upstream's.
pub fn child_labels(vmcp: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(vmcp);
    l.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
    l.insert("app".into(), KIND_LABEL.into());
    l.insert("toolhive".into(), "true".into());
    l.insert("toolhive-name".into(), vmcp.into());
    l
}

/// `status.url`, as upstream writes it.
pub fn url(vmcp: &VirtualMCPServer) -> String {
    let ns = vmcp.namespace().unwrap_or_else(|| "default".into());
    format!(
        "http://{}.{ns}.svc.cluster.local:{VMCP_PORT}",
        service_name(&vmcp.name_any())
    )
}

/// One member of the group as a backend of the runtime, with what its pod must carry for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    pub backend: Backend,
    /// Secret keys read into the env variables `backend.headersFromEnv` names.
    pub secret_env: Vec<SecretEnv>,
    /// The CA bundle's ConfigMap and key, mounted for `backend.caBundle`.
    pub ca_bundle: Option<(String, String)>,
}

/// An MCPServer of the group: its proxy Service, at the path its bridge serves.
pub fn server_member(
    name: &str,
    ns: &str,
    transport: Option<&str>,
    proxy_mode: Option<&str>,
    proxy_port: Option<i32>,
) -> Member {
    let base = shared::service_url_of(name, ns, proxy_port);
    let sse = shared::serves_sse_of(transport, proxy_mode);
    in_cluster(name, "MCPServer", base, sse)
}

/// An MCPRemoteProxy of the group: its Service, at the path its bridge serves.
pub fn proxy_member(
    name: &str,
    ns: &str,
    transport: Option<&str>,
    proxy_port: Option<i32>,
) -> Member {
    let base = super::mcpremoteproxy_children::url_of(name, ns, proxy_port);
    in_cluster(name, "MCPRemoteProxy", base, transport == Some("sse"))
}

/// A member behind a Service of ours: a private address by nature, so allowed as one.
fn in_cluster(name: &str, kind: &str, base: String, sse: bool) -> Member {
    let (path, transport) = if sse {
        ("/sse", "sse")
    } else {
        ("/mcp", "streamable-http")
    };
    Member {
        backend: Backend {
            name: name.into(),
            kind: Some(kind.into()),
            url: format!("{base}{path}"),
            transport: Some(transport.into()),
            allow_private_endpoint: Some(true),
            ..Backend::default()
        },
        ..Member::default()
    }
}

/// A member of the group as found, before it becomes a [`Member`].
#[derive(Debug, Clone, Copy)]
pub enum Candidate<'a> {
    Server {
        name: &'a str,
        transport: Option<&'a str>,
        proxy_mode: Option<&'a str>,
        proxy_port: Option<i32>,
    },
    Proxy {
        name: &'a str,
        transport: Option<&'a str>,
        proxy_port: Option<i32>,
    },
    /// An entry, with the MCPExternalAuthConfig its `externalAuthConfigRef` names when it
    /// names one (`None` also when that config does not exist).
    Entry(&'a MCPServerEntry, Option<&'a MCPExternalAuthConfig>),
}

impl Candidate<'_> {
    fn key(&self) -> (String, u8) {
        match self {
            Candidate::Server { name, .. } => (name.to_string(), 0),
            Candidate::Proxy { name, .. } => (name.to_string(), 1),
            Candidate::Entry(e, _) => (e.name_any(), 2),
        }
    }
}

/// The members of a group in namespace `ns` as backends, sorted by name (then kind); an
/// entry's index in that order names its env variables and CA volume. An error says why an
/// entry's outgoing credentials cannot be rendered (the endpoint must not call it without them).
pub fn members(ns: &str, mut found: Vec<Candidate<'_>>) -> Result<Vec<Member>, String> {
    found.sort_by_key(Candidate::key);
    found
        .into_iter()
        .enumerate()
        .map(|(index, c)| match c {
            Candidate::Server {
                name,
                transport,
                proxy_mode,
                proxy_port,
            } => Ok(server_member(name, ns, transport, proxy_mode, proxy_port)),
            Candidate::Proxy {
                name,
                transport,
                proxy_port,
            } => Ok(proxy_member(name, ns, transport, proxy_port)),
            Candidate::Entry(e, auth) => {
                let mut m = entry_member(e, index);
                with_entry_auth(&mut m, e, auth, index)?;
                Ok(m)
            }
        })
        .collect()
}

/// An entry's `externalAuthConfigRef`, rendered for the runtime: `unauthenticated` adds
/// nothing, `headerInjection` a header and `bearerToken` an `Authorization: Bearer` token, both
/// from env variables filled from their Secrets. Any other type (and a config that does not
/// exist) is an error naming the entry and the config.
pub fn with_entry_auth(
    m: &mut Member,
    entry: &MCPServerEntry,
    config: Option<&MCPExternalAuthConfig>,
    index: usize,
) -> Result<(), String> {
    let Some(r) = &entry.spec.external_auth_config_ref else {
        return Ok(());
    };
    let at = format!(
        "MCPServerEntry {:?} spec.externalAuthConfigRef (MCPExternalAuthConfig {:?})",
        entry.name_any(),
        r.name
    );
    let Some(config) = config else {
        return Err(format!("{at}: it does not exist in the entry's namespace"));
    };
    let b = &config.spec.blocks;
    let field = format!("MCPExternalAuthConfig {:?}", r.name);
    match (config.spec.type_.as_str(), &b.header_injection, &b.bearer_token) {
        ("unauthenticated", _, _) => {}
        ("headerInjection", Some(h), _) => {
            let own = m.backend.headers.iter().flatten().map(|(k, _)| k);
            let own_env = m.backend.headers_from_env.iter().flatten().map(|(k, _)| k);
            if own.chain(own_env).any(|k| k.eq_ignore_ascii_case(&h.header_name)) {
                return Err(format!(
                    "{at}: it injects header {:?}, which the entry's headerForward sets too; remove one of them",
                    h.header_name
                ));
            }
            let env = format!("VMCP_BACKEND_{index}_AUTH_HEADER");
            m.backend
                .headers_from_env
                .get_or_insert_with(BTreeMap::new)
                .insert(h.header_name.clone(), env.clone());
            m.secret_env.push(SecretEnv {
                env,
                secret: h.value_secret_ref.name.clone(),
                key: h.value_secret_ref.key.clone(),
                field: format!("{field} spec.headerInjection.valueSecretRef"),
            });
        }
        ("bearerToken", _, Some(t)) => {
            let env = format!("VMCP_BACKEND_{index}_BEARER_TOKEN");
            m.backend.bearer_token_env = Some(env.clone());
            m.secret_env.push(SecretEnv {
                env,
                secret: t.token_secret_ref.name.clone(),
                key: t.token_secret_ref.key.clone(),
                field: format!("{field} spec.bearerToken.tokenSecretRef"),
            });
        }
        (other, _, _) => {
            return Err(format!(
                "{at} has type {other:?}; a VirtualMCPServer renders unauthenticated, headerInjection and bearerToken \
                 towards an entry, not {other:?} yet, and the endpoint is held so that it never calls that backend without it"
            ))
        }
    }
    Ok(())
}

/// The environment variable carrying header `i` of the backend at `index` in the sorted list:
/// indexes keep two backends, and two spellings of one header, apart.
pub fn header_env_name(index: usize, i: usize, header: &str) -> String {
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
    format!("VMCP_BACKEND_{index}_HEADER_{i}_{normalised}")
}

/// An MCPServerEntry of the group: its remote URL, headers and CA bundle. Header values from
/// Secrets are env variables the pod fills from the Secrets; the config only names them.
/// `index` is the entry's place among the sorted backends.
pub fn entry_member(entry: &MCPServerEntry, index: usize) -> Member {
    let s = &entry.spec;
    let forward = s.header_forward.as_ref();
    let headers = forward
        .and_then(|h| h.add_plaintext_headers.clone())
        .filter(|h| !h.is_empty());
    let mut from_env = BTreeMap::new();
    let mut secret_env = Vec::new();
    let name = entry.name_any();
    for (i, h) in forward
        .and_then(|h| h.add_headers_from_secret.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let env = header_env_name(index, i, &h.header_name);
        from_env.insert(h.header_name.clone(), env.clone());
        secret_env.push(SecretEnv {
            env,
            secret: h.value_secret_ref.name.clone(),
            key: h.value_secret_ref.key.clone(),
            field: format!(
                "MCPServerEntry {name:?} spec.headerForward.addHeadersFromSecret[{i}] ({})",
                h.header_name
            ),
        });
    }
    let ca_bundle = s
        .ca_bundle_ref
        .as_ref()
        .and_then(|c| c.config_map_ref.as_ref())
        .and_then(|r| Some((r.name.clone().filter(|n| !n.is_empty())?, r.key.clone())));
    Member {
        backend: Backend {
            name,
            kind: Some("MCPServerEntry".into()),
            url: s.remote_url.clone(),
            transport: Some(s.transport.clone()),
            allow_private_endpoint: s.allow_private_endpoint.filter(|a| *a),
            ca_bundle: ca_bundle
                .as_ref()
                .map(|_| format!("{CA_DIR}/{index}/{CA_FILE}")),
            headers,
            headers_from_env: (!from_env.is_empty()).then_some(from_env),
            ..Backend::default()
        },
        secret_env,
        ca_bundle,
    }
}

/// A duration of the spec (a Go duration, which admission has checked) in milliseconds.
fn millis(field: &str, d: &str) -> Result<u64, String> {
    let secs = go_duration_secs(d).map_err(|why| format!("{field}: {d:?}: {why}"))?;
    // Admission refuses negative and absurd values; the cast saturates in any case.
    Ok((secs * 1000.0).round() as u64)
}

/// One backend's tools: the spec's entry with its MCPToolConfig merged in. The entry's own
/// `filter` wins over the config's `toolsFilter` when it is set; the config's overrides apply
/// first and the entry's own overrides of the same tool replace them.
fn merged_tools(
    t: &crate::api::v1beta1::WorkloadTools,
    tool_configs: &BTreeMap<String, MCPToolConfigSpec>,
    at: &str,
) -> Result<WorkloadTools, String> {
    let config = match &t.tool_config_ref {
        None => None,
        Some(r) => Some(tool_configs.get(&r.name).ok_or_else(|| {
            format!(
                "{at}.toolConfigRef: MCPToolConfig {:?} was not found",
                r.name
            )
        })?),
    };
    let filter = t
        .filter
        .clone()
        .filter(|f| !f.is_empty())
        .or_else(|| config.and_then(|c| c.tools_filter.clone()))
        .filter(|f| !f.is_empty());
    let mut overrides: BTreeMap<String, ToolOverride> = BTreeMap::new();
    let from_config = config.and_then(|c| c.tools_override.as_ref());
    for (tool, o) in from_config
        .into_iter()
        .flatten()
        .chain(t.overrides.iter().flatten())
    {
        overrides.insert(tool.clone(), as_runtime_override(o));
    }
    Ok(WorkloadTools {
        workload: t.workload.clone(),
        filter,
        exclude_all: t.exclude_all.filter(|e| *e),
        overrides: (!overrides.is_empty()).then_some(overrides),
    })
}

/// The API's override and the runtime's have one JSON shape; the runtime's refuses unknown
/// fields, so a field only the API has would fail here rather than in the pod.
fn as_runtime_override(o: &crate::api::v1beta1::ToolOverride) -> ToolOverride {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// The runtime's aggregation settings from the spec's, MCPToolConfigs merged in.
fn aggregation(
    vmcp: &VirtualMCPServer,
    tool_configs: &BTreeMap<String, MCPToolConfigSpec>,
) -> Result<Aggregation, String> {
    let Some(a) = vmcp
        .spec
        .config
        .as_ref()
        .and_then(|c| c.aggregation.as_ref())
    else {
        return Ok(Aggregation::default());
    };
    let crc = a.conflict_resolution_config.as_ref();
    let mut tools = Vec::new();
    for (i, t) in a.tools.iter().flatten().enumerate() {
        let at = format!("spec.config.aggregation.tools[{i}]");
        tools.push(merged_tools(t, tool_configs, &at)?);
    }
    Ok(Aggregation {
        conflict_resolution: a.conflict_resolution.clone(),
        prefix_format: crc.and_then(|c| c.prefix_format.clone()),
        prefix_only_conflicts: crc.and_then(|c| c.prefix_only_conflicts),
        priority_order: crc.and_then(|c| c.priority_order.clone()),
        default_tool_visibility: a.default_tool_visibility.clone(),
        exclude_all_tools: a.exclude_all_tools.filter(|e| *e),
        tools: (!tools.is_empty()).then_some(tools),
    })
}

/// The runtime's operational settings, every duration in milliseconds.
fn operational(vmcp: &VirtualMCPServer) -> Result<Operational, String> {
    let Some(o) = vmcp
        .spec
        .config
        .as_ref()
        .and_then(|c| c.operational.as_ref())
    else {
        return Ok(Operational::default());
    };
    let p = "spec.config.operational";
    let opt = |field: &str, d: Option<&String>| d.map(|d| millis(field, d)).transpose();
    let default_timeout_ms = opt(
        &format!("{p}.timeouts.default"),
        o.timeouts.as_ref().and_then(|t| t.default.as_ref()),
    )?;
    let mut out = Operational {
        default_timeout_ms,
        ..Operational::default()
    };
    if let Some(h) = &o.failure_handling {
        let fp = format!("{p}.failureHandling");
        out.health_check_interval_ms = opt(
            &format!("{fp}.healthCheckInterval"),
            h.health_check_interval.as_ref(),
        )?;
        out.health_check_timeout_ms = opt(
            &format!("{fp}.healthCheckTimeout"),
            h.health_check_timeout.as_ref(),
        )?;
        out.unhealthy_threshold = h.unhealthy_threshold.and_then(|t| u32::try_from(t).ok());
        out.partial_failure_mode = h.partial_failure_mode.clone();
        if let Some(cb) = &h.circuit_breaker {
            out.circuit_breaker_enabled = cb.enabled;
            out.circuit_failure_threshold =
                cb.failure_threshold.and_then(|t| u32::try_from(t).ok());
            out.circuit_open_ms =
                opt(&format!("{fp}.circuitBreaker.timeout"), cb.timeout.as_ref())?;
        }
    }
    Ok(out)
}

/// How often the reconciler reads the runtime's `/status`: `statusReportingInterval`, else
/// 30 s (upstream's default), never more often than every 5 s.
pub fn status_interval(vmcp: &VirtualMCPServer) -> std::time::Duration {
    let spec = vmcp
        .spec
        .config
        .as_ref()
        .and_then(|c| c.operational.as_ref())
        .and_then(|o| o.failure_handling.as_ref())
        .and_then(|h| h.status_reporting_interval.as_ref())
        .and_then(|d| millis("statusReportingInterval", d).ok());
    std::time::Duration::from_millis(spec.unwrap_or(30_000).max(5_000))
}

/// The runtime's whole configuration: the VirtualMCPServer's spec, the group's members
/// (sorted by name here, whatever order they come in), the MCPToolConfigs its `tools[]`
/// reference (by name) and its resolved incoming auth (the bridge's `auth` block).
///
/// Pure: the reconciler, `render` and tests build the same file from the same inputs. An
/// error names the field that cannot be rendered: two members of one name (`{workload}` and
/// `priorityOrder` could not tell them apart), a missing MCPToolConfig, a duration that does
/// not parse.
pub fn file_config(
    vmcp: &VirtualMCPServer,
    members: &[Member],
    tool_configs: &BTreeMap<String, MCPToolConfigSpec>,
    auth: Option<&Value>,
) -> Result<FileConfig, String> {
    let mut backends: Vec<Backend> = members.iter().map(|m| m.backend.clone()).collect();
    backends.sort_by(|a, b| a.name.cmp(&b.name).then(a.kind.cmp(&b.kind)));
    for pair in backends.windows(2) {
        if let [a, b] = pair {
            if a.name == b.name {
                return Err(format!(
                    "spec.groupRef: the group has two members named {:?} ({} and {}); the backends' names must be unique within a group, rename one",
                    a.name,
                    a.kind.as_deref().unwrap_or("?"),
                    b.kind.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    let operational = operational(vmcp)?;
    let per_workload = vmcp
        .spec
        .config
        .as_ref()
        .and_then(|c| c.operational.as_ref())
        .and_then(|o| o.timeouts.as_ref())
        .and_then(|t| t.per_workload.as_ref());
    for (workload, d) in per_workload.into_iter().flatten() {
        let field = format!("spec.config.operational.timeouts.perWorkload.{workload}");
        let ms = millis(&field, d)?;
        if let Some(b) = backends.iter_mut().find(|b| &b.name == workload) {
            b.timeout_ms = Some(ms);
        }
    }
    let auth: Option<AuthConfig> = match auth {
        None => None,
        Some(block) => Some(
            serde_json::from_value(block.clone())
                .map_err(|e| format!("spec.incomingAuth: the resolved auth block: {e}"))?,
        ),
    };
    Ok(FileConfig {
        name: vmcp.name_any(),
        listen: None,
        backends,
        aggregation: aggregation(vmcp, tool_configs)?,
        operational,
        auth,
    })
}

/// The names the spec uses for backends that are not members of the group (`tools[].workload`,
/// `priorityOrder`, `timeouts.perWorkload`, `outgoingAuth.backends`), as `field: name` lines.
/// They apply to nothing until such a member joins.
pub fn names_without_member(vmcp: &VirtualMCPServer, members: &[Member]) -> Vec<String> {
    let known = |n: &str| members.iter().any(|m| m.backend.name == n);
    let mut out = Vec::new();
    let config = vmcp.spec.config.as_ref();
    let a = config.and_then(|c| c.aggregation.as_ref());
    for (i, t) in a
        .and_then(|a| a.tools.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !known(&t.workload) {
            out.push(format!(
                "spec.config.aggregation.tools[{i}].workload: {}",
                t.workload
            ));
        }
    }
    let order = a
        .and_then(|a| a.conflict_resolution_config.as_ref())
        .and_then(|c| c.priority_order.as_ref());
    for (i, n) in order.into_iter().flatten().enumerate() {
        if !known(n) {
            out.push(format!(
                "spec.config.aggregation.conflictResolutionConfig.priorityOrder[{i}]: {n}"
            ));
        }
    }
    let per = config
        .and_then(|c| c.operational.as_ref())
        .and_then(|o| o.timeouts.as_ref())
        .and_then(|t| t.per_workload.as_ref());
    for n in per.into_iter().flatten().map(|(n, _)| n) {
        if !known(n) {
            out.push(format!("spec.config.operational.timeouts.perWorkload: {n}"));
        }
    }
    let backends = vmcp
        .spec
        .outgoing_auth
        .as_ref()
        .and_then(|o| o.backends.as_ref());
    for n in backends.into_iter().flatten().map(|(n, _)| n) {
        if !known(n) {
            out.push(format!("spec.outgoingAuth.backends: {n}"));
        }
    }
    out
}

/// What the reconciler found out that the spec alone does not say.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The operator's image, which runs `mcp-operator vmcp`.
    pub image: String,
    /// The group's members as backends.
    pub members: Vec<Member>,
    /// `resourceVersion` of every Secret the pod reads (name → version), so a rotation rolls it.
    pub secret_versions: BTreeMap<String, String>,
    /// Pull secrets added to every workload (operator-wide default).
    pub default_pull_secrets: Vec<String>,
    /// The resolved incoming auth: the `auth` block, its Secret env and files.
    pub auth: Resolved,
}

/// Every child of one VirtualMCPServer, in the shape the bridge-fronted workloads have.
pub use super::workload::Children;

/// Every child, ready to apply; `config` is the rendered [`file_config`].
pub fn desired(vmcp: &VirtualMCPServer, config: &FileConfig, inputs: &Inputs) -> Children {
    let text = config_text(config);
    let checksum = shared::checksum(&text, &inputs.secret_versions);
    Children {
        config_map: config_map(vmcp, &text),
        service_account: Some(service_account(vmcp, inputs)),
        service: service(vmcp),
        deployment: deployment(vmcp, inputs, &checksum),
    }
}

/// The file as it is written into the ConfigMap (stable key order, so equal configs are equal
/// text and an unchanged group rolls nothing).
pub fn config_text(config: &FileConfig) -> String {
    let value = serde_json::to_value(config).unwrap_or(Value::Null);
    crate::canonical::to_string_pretty(&value)
}

/// Metadata every child shares: name, namespace, labels, controller owner reference.
fn metadata(vmcp: &VirtualMCPServer, name: String) -> Value {
    let mut meta = json!({
        "name": name,
        "namespace": vmcp.namespace(),
        "labels": child_labels(&vmcp.name_any()),
    });
    // Offline (render) objects have no uid yet, so no owner reference can be made.
    if let Some(owner) = vmcp.controller_owner_ref(&()) {
        meta["ownerReferences"] = json!([owner]);
    }
    meta
}

fn config_map(vmcp: &VirtualMCPServer, text: &str) -> ConfigMap {
    let mut meta = metadata(vmcp, config_map_name(&vmcp.name_any()));
    meta["labels"][COMPONENT_LABEL] = json!("vmcp-config");
    let v = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": { CONFIG_FILE: text },
    });
    serde_json::from_value(v).expect("a ConfigMap we built")
}

/// `spec.imagePullSecrets`, then the operator-wide defaults, each once.
fn pull_secrets(vmcp: &VirtualMCPServer, inputs: &Inputs) -> Vec<Value> {
    let from_spec = vmcp
        .spec
        .image_pull_secrets
        .clone()
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

/// The pod's identity: no API rights (no Role is bound to it) and no token mounted; the
/// runtime reads its config from a file and never talks to the API server.
fn service_account(vmcp: &VirtualMCPServer, inputs: &Inputs) -> ServiceAccount {
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(vmcp, service_account_name(&vmcp.name_any())),
        "automountServiceAccountToken": false,
    });
    let pulls = pull_secrets(vmcp, inputs);
    if !pulls.is_empty() {
        v["imagePullSecrets"] = json!(pulls);
    }
    serde_json::from_value(v).expect("a ServiceAccount we built")
}

fn service(vmcp: &VirtualMCPServer) -> Service {
    let name = vmcp.name_any();
    let s = &vmcp.spec;
    let v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(vmcp, service_name(&name)),
        "spec": {
            "type": s.service_type.as_deref().unwrap_or("ClusterIP"),
            "selector": selector_labels(&name),
            "ports": [{
                "name": "http",
                "port": VMCP_PORT,
                "targetPort": "http",
                "protocol": "TCP",
            }],
            "sessionAffinity": s.session_affinity.as_deref().unwrap_or("ClientIP"),
        },
    });
    serde_json::from_value(v).expect("a Service we built")
}

/// The members' header Secrets and the auth configs' Secret keys, as references (values never
/// leave the Secrets).
fn env(inputs: &Inputs) -> Vec<Value> {
    let members = inputs.members.iter().flat_map(|m| m.secret_env.iter());
    members
        .chain(inputs.auth.secret_env.iter())
        .map(|s| json!({"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}))
        .collect()
}

/// The config, each entry's CA bundle, and the auth files.
fn volumes_and_mounts(vmcp: &VirtualMCPServer, inputs: &Inputs) -> (Vec<Value>, Vec<Value>) {
    let name = vmcp.name_any();
    let mut volumes =
        vec![json!({"name": "vmcp-config", "configMap": {"name": config_map_name(&name)}})];
    let mut mounts =
        vec![json!({"name": "vmcp-config", "mountPath": CONFIG_DIR, "readOnly": true})];
    for m in &inputs.members {
        let (Some((config_map, key)), Some(path)) = (&m.ca_bundle, &m.backend.ca_bundle) else {
            continue;
        };
        let dir = path.trim_end_matches(CA_FILE).trim_end_matches('/');
        let volume = format!("backend-ca-{}", dir.rsplit('/').next().unwrap_or_default());
        volumes.push(json!({"name": volume, "configMap": {"name": config_map, "items": [{"key": key, "path": CA_FILE}]}}));
        mounts.push(json!({"name": volume, "mountPath": dir, "readOnly": true}));
    }
    let (auth_volumes, auth_mounts) = super::auth_refs::volumes_and_mounts(&inputs.auth);
    volumes.extend(auth_volumes);
    mounts.extend(auth_mounts);
    (volumes, mounts)
}

fn deployment(vmcp: &VirtualMCPServer, inputs: &Inputs, checksum: &str) -> Deployment {
    let name = vmcp.name_any();
    let s = &vmcp.spec;
    let pod_labels = child_labels(&name);
    let pod_annotations = BTreeMap::from([(CONFIG_CHECKSUM.to_string(), checksum.to_string())]);
    let mut security = shared::container_security();
    security["readOnlyRootFilesystem"] = json!(true);
    let (volumes, mounts) = volumes_and_mounts(vmcp, inputs);
    let probe = |delay: i32, period: i32| {
        json!({"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": delay,
               "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": 3})
    };
    let mut pod_spec = json!({
        "serviceAccountName": service_account_name(&name),
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
            "image": inputs.image,
            "command": [BINARY],
            "args": ["vmcp", "--config", config_path()],
            "ports": [{"name": "http", "containerPort": VMCP_PORT, "protocol": "TCP"}],
            "env": env(inputs),
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
            "volumeMounts": mounts,
            "readinessProbe": probe(0, 5),
            "livenessProbe": probe(10, 10),
            "securityContext": security,
        }],
        "volumes": volumes,
    });
    let pulls = pull_secrets(vmcp, inputs);
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
        "metadata": metadata(vmcp, deployment_name(&name)),
        "spec": spec,
    });
    serde_json::from_value(v).expect("a Deployment we built")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vmcp(spec: Value) -> VirtualMCPServer {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "VirtualMCPServer",
            "metadata": {"name": "agg", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn entry(name: &str, spec: Value) -> MCPServerEntry {
        let mut s = json!({"remoteUrl": format!("https://{name}.example.com/mcp"),
                           "transport": "streamable-http", "groupRef": {"name": "g"}});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"}, "spec": s}))
            .unwrap()
    }

    fn base() -> Value {
        json!({"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"}})
    }

    /// Durations of every spelling reach the runtime in milliseconds; a backend's own timeout
    /// goes on the backend.
    #[test]
    fn durations_are_milliseconds() {
        let mut spec = base();
        spec["config"] = json!({"operational": {
            "timeouts": {"default": "1m30s", "perWorkload": {"a": "250ms"}},
            "failureHandling": {"healthCheckInterval": "1.5s", "healthCheckTimeout": "2s",
                "circuitBreaker": {"timeout": "1h"}, "statusReportingInterval": "10s"}}});
        let v = vmcp(spec);
        let members = members("ns", vec![Candidate::Entry(&entry("a", json!({})), None)]).unwrap();
        let f = file_config(&v, &members, &BTreeMap::new(), None).unwrap();
        assert_eq!(f.operational.default_timeout_ms, Some(90_000));
        assert_eq!(f.operational.health_check_interval_ms, Some(1_500));
        assert_eq!(f.operational.health_check_timeout_ms, Some(2_000));
        assert_eq!(f.operational.circuit_open_ms, Some(3_600_000));
        assert_eq!(f.backends[0].timeout_ms, Some(250));
        assert_eq!(status_interval(&v), std::time::Duration::from_secs(10));
        assert_eq!(
            status_interval(&vmcp(base())),
            std::time::Duration::from_secs(30)
        );
    }

    /// Two members of one name cannot be told apart by `{workload}` or `priorityOrder`.
    #[test]
    fn a_name_two_members_share_is_refused_naming_both() {
        let e = entry("x", json!({}));
        let found = vec![
            Candidate::Entry(&e, None),
            Candidate::Server {
                name: "x",
                transport: None,
                proxy_mode: None,
                proxy_port: None,
            },
        ];
        let why = file_config(
            &vmcp(base()),
            &members("ns", found).unwrap(),
            &BTreeMap::new(),
            None,
        )
        .unwrap_err();
        assert!(
            why.contains("\"x\"") && why.contains("MCPServer and MCPServerEntry"),
            "{why}"
        );
    }

    /// Members come out sorted whatever order they are found in, each at the path its proxy
    /// serves; an entry's env variables follow its place in that order.
    #[test]
    fn members_are_sorted_and_reached_where_they_serve() {
        let z = entry(
            "z",
            json!({"headerForward": {"addHeadersFromSecret": [{"headerName": "x-key", "valueSecretRef": {"name": "s", "key": "k"}}]},
                   "caBundleRef": {"configMapRef": {"name": "ca", "key": "bundle.pem"}}}),
        );
        let found = vec![
            Candidate::Entry(&z, None),
            Candidate::Proxy {
                name: "p",
                transport: Some("sse"),
                proxy_port: None,
            },
            Candidate::Server {
                name: "a",
                transport: Some("stdio"),
                proxy_mode: Some("sse"),
                proxy_port: Some(9000),
            },
        ];
        let m = members("ns", found).unwrap();
        let urls: Vec<&str> = m.iter().map(|m| m.backend.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://mcp-a-proxy.ns.svc.cluster.local:9000/sse",
                "http://mcp-p-remote-proxy.ns.svc.cluster.local:8080/sse",
                "https://z.example.com/mcp",
            ]
        );
        let z = &m[2];
        assert_eq!(
            z.backend.headers_from_env.as_ref().unwrap()["x-key"],
            "VMCP_BACKEND_2_HEADER_0_X_KEY"
        );
        assert_eq!(
            z.backend.ca_bundle.as_deref(),
            Some("/etc/vmcp-ca/2/ca.crt")
        );
        let inputs = Inputs {
            members: m.clone(),
            ..Inputs::default()
        };
        let v = vmcp(base());
        let f = file_config(&v, &m, &BTreeMap::new(), None).unwrap();
        let d = serde_json::to_value(desired(&v, &f, &inputs).deployment).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][1],
            json!({"name": "backend-ca-2", "configMap": {"name": "ca", "items": [{"key": "bundle.pem", "path": "ca.crt"}]}})
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"][1]["mountPath"],
            "/etc/vmcp-ca/2"
        );
        assert_eq!(
            pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"],
            json!({"name": "s", "key": "k"})
        );
    }

    /// Whatever changes the runtime's behaviour rolls the pods; the same inputs never do.
    #[test]
    fn config_changes_roll_the_pods() {
        let sum = |spec: Value, names: &[&str]| {
            let v = vmcp(spec);
            let es: Vec<MCPServerEntry> = names.iter().map(|n| entry(n, json!({}))).collect();
            let m = members("ns", es.iter().map(|e| Candidate::Entry(e, None)).collect()).unwrap();
            let f = file_config(&v, &m, &BTreeMap::new(), None).unwrap();
            let d = serde_json::to_value(desired(&v, &f, &Inputs::default()).deployment).unwrap();
            d["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM].clone()
        };
        let mut prio = base();
        prio["config"] = json!({"aggregation": {"conflictResolution": "priority",
            "conflictResolutionConfig": {"priorityOrder": ["a"]}}});
        let sums = [
            sum(base(), &["a"]),
            sum(base(), &["a", "b"]),
            sum(prio, &["a", "b"]),
        ];
        assert_ne!(sums[0], sums[1]);
        assert_ne!(sums[1], sums[2]);
        assert_eq!(
            sums[1],
            sum(base(), &["b", "a"]),
            "order of discovery is irrelevant"
        );
    }

    /// An entry's MCPExternalAuthConfig: the simple types are rendered as env-backed headers,
    /// the others (and a header the entry sets itself) are refused naming the entry.
    #[test]
    fn entry_credentials_render_or_refuse() {
        let config = |spec: Value| -> MCPExternalAuthConfig {
            serde_json::from_value(
                json!({"metadata": {"name": "c", "namespace": "ns"}, "spec": spec}),
            )
            .unwrap()
        };
        let e = entry(
            "e",
            json!({"externalAuthConfigRef": {"name": "c"},
                   "headerForward": {"addPlaintextHeaders": {"X-Own": "1"}}}),
        );
        let header = config(json!({"type": "headerInjection",
            "headerInjection": {"headerName": "X-Key", "valueSecretRef": {"name": "s", "key": "k"}}}));
        let m = members("ns", vec![Candidate::Entry(&e, Some(&header))]).unwrap();
        assert_eq!(
            m[0].backend.headers_from_env.as_ref().unwrap()["X-Key"],
            "VMCP_BACKEND_0_AUTH_HEADER"
        );
        assert_eq!(m[0].secret_env[0].secret, "s");
        let clash = config(json!({"type": "headerInjection",
            "headerInjection": {"headerName": "x-own", "valueSecretRef": {"name": "s", "key": "k"}}}));
        let why = members("ns", vec![Candidate::Entry(&e, Some(&clash))]).unwrap_err();
        assert!(
            why.contains("\"x-own\"") && why.contains("headerForward"),
            "{why}"
        );
        let exchange = config(json!({"type": "tokenExchange", "tokenExchange": {
            "tokenUrl": "https://idp.example.com/token", "audience": "a"}}));
        let why = members("ns", vec![Candidate::Entry(&e, Some(&exchange))]).unwrap_err();
        assert!(
            why.contains("MCPServerEntry \"e\"") && why.contains("tokenExchange"),
            "{why}"
        );
        let why = members("ns", vec![Candidate::Entry(&e, None)]).unwrap_err();
        assert!(why.contains("does not exist"), "{why}");
        let open = config(json!({"type": "unauthenticated"}));
        let m = members("ns", vec![Candidate::Entry(&e, Some(&open))]).unwrap();
        assert!(m[0].secret_env.is_empty() && m[0].backend.bearer_token_env.is_none());
    }
}
