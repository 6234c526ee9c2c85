//! `mcp-operator render`: the objects the operator would create, without a cluster.

use crate::admission::{self, Operation};
use crate::api::v1beta1::MCPRegistry;
use crate::api::v1beta1::{
    MCPAuthzConfig, MCPExternalAuthConfig, MCPOIDCConfig, MCPRemoteProxy, MCPServer,
    MCPServerEntry, MCPToolConfig, MCPToolConfigSpec, VirtualMCPServer,
};
use crate::controller::auth_refs;
use crate::controller::children::{self, Inputs};
use crate::controller::mcpregistry_children as registry_children;
use crate::conversion;
use crate::manifest;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The default image of the bridge init container (the operator's own image).
pub fn default_bridge_image() -> String {
    format!(
        "ghcr.io/mcp-operator/mcp-operator:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Print the children (ConfigMap, ServiceAccount, Service, Deployment) the reconciler would
/// apply for every MCPServer and MCPRemoteProxy in the input, after defaulting and validation;
/// for every MCPRegistry its ConfigMap, ServiceAccount, Role, RoleBinding, Deployment and
/// Service; and for every VirtualMCPServer its children, the ConfigMap holding the rendered
/// `vmcp.json` with the group's members found among the inputs (an MCPServerEntry has no
/// children of its own).
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Files or folders of manifests; `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1.., required = true)]
    pub files: Vec<PathBuf>,
    /// Image of the bridge init container.
    #[arg(long, env = "MCP_OPERATOR_BRIDGE_IMAGE", default_value_t = default_bridge_image())]
    pub bridge_image: String,
    /// Image of the MCPRegistry API server.
    #[arg(long, env = "TOOLHIVE_REGISTRY_API_IMAGE", default_value = registry_children::DEFAULT_API_IMAGE)]
    pub registry_api_image: String,
}

pub fn run(args: RenderArgs) -> i32 {
    let docs = match manifest::read_paths(&args.files) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let values: Vec<&Value> = docs.iter().map(|d| &d.value).collect();
    let tool_configs = ToolConfigs::from_inputs(&values);
    let auth_configs = AuthConfigs::from_inputs(&values);
    let mut out = String::new();
    let mut rejected = false;
    for doc in docs
        .iter()
        .filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("MCPServer"))
    {
        match render_one(&doc.value, &args.bridge_image, &tool_configs, &auth_configs) {
            Ok(text) => out.push_str(&text),
            Err(why) => {
                eprintln!("{}: document {}: {why}", doc.file, doc.index);
                rejected = true;
            }
        }
    }
    for doc in docs
        .iter()
        .filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("MCPRegistry"))
    {
        match render_registry(&doc.value, &args.bridge_image, &args.registry_api_image) {
            Ok(text) => out.push_str(&text),
            Err(why) => {
                eprintln!("{}: document {}: {why}", doc.file, doc.index);
                rejected = true;
            }
        }
    }
    for doc in docs
        .iter()
        .filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("MCPRemoteProxy"))
    {
        match render_remote_proxy(&doc.value, &args.bridge_image, &tool_configs, &auth_configs) {
            Ok(text) => out.push_str(&text),
            Err(why) => {
                eprintln!("{}: document {}: {why}", doc.file, doc.index);
                rejected = true;
            }
        }
    }
    for doc in docs
        .iter()
        .filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("VirtualMCPServer"))
    {
        match render_vmcp(
            &doc.value,
            &args.bridge_image,
            &values,
            &tool_configs,
            &auth_configs,
        ) {
            Ok(text) => out.push_str(&text),
            Err(why) => {
                eprintln!("{}: document {}: {why}", doc.file, doc.index);
                rejected = true;
            }
        }
    }
    print!("{out}");
    i32::from(rejected)
}

/// The inputs of `kind` as the API server would store them (defaulted, at v1beta1); the ones
/// admission refuses are left out (the API server would refuse them too).
fn stored_of<T: serde::de::DeserializeOwned>(docs: &[&Value], kind: &str) -> Vec<T> {
    docs.iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .filter_map(|d| {
            let verdict = admission::admit(d, None, Operation::Create).ok()?;
            verdict.allowed().then_some(())?;
            let mut beta = conversion::convert(&verdict.defaulted, "v1beta1").ok()?;
            if beta.pointer("/metadata/namespace").is_none() {
                beta["metadata"]["namespace"] = Value::from(DEFAULT_NAMESPACE);
            }
            serde_json::from_value(beta).ok()
        })
        .collect()
}

/// The children of one VirtualMCPServer (any served version) as YAML documents. Its backends
/// are the members of its group among the inputs (MCPServers, MCPRemoteProxies,
/// MCPServerEntries of its namespace naming the group); the MCPToolConfigs and auth configs it
/// names must be among the inputs too, as the reconciler would hold it without them.
pub fn render_vmcp(
    obj: &Value,
    image: &str,
    docs: &[&Value],
    tool_configs: &ToolConfigs,
    auth_configs: &AuthConfigs,
) -> Result<String, String> {
    use crate::controller::virtualmcpserver as reconciler;
    use crate::controller::vmcp_children as vmcp;
    let verdict = admission::admit(obj, None, Operation::Create).map_err(|e| e.to_string())?;
    if !verdict.allowed() {
        return Err(format!("rejected: {}", verdict.errors));
    }
    let beta = conversion::convert(&verdict.defaulted, "v1beta1").map_err(|e| e.to_string())?;
    let mut v: VirtualMCPServer = serde_json::from_value(beta).map_err(|e| e.to_string())?;
    let ns = v
        .metadata
        .namespace
        .get_or_insert_with(|| DEFAULT_NAMESPACE.into())
        .clone();
    let inline_oidc = format!("{}incomingAuth.oidcConfig", crate::api::ALPHA_STASH_PREFIX);
    if v.metadata
        .annotations
        .iter()
        .flatten()
        .any(|(k, _)| *k == inline_oidc)
    {
        return Err(format!(
            "spec.incomingAuth.oidcConfig: {}",
            admission::VMCP_OIDC_NOT_ENFORCED
        ));
    }
    if let Some(field) = reconciler::outgoing_auth_asked(&v) {
        return Err(format!("the operator would hold this VirtualMCPServer (OutgoingAuthNotSupported): {field} asks for credentials from an MCPExternalAuthConfig, which are not rendered for a VirtualMCPServer yet"));
    }
    let workload = auth_refs::Workload {
        auth: reconciler::vmcp_auth(&v),
        name: v.metadata.name.as_deref().unwrap_or_default(),
        namespace: &ns,
        service_url: vmcp::url(&v),
        http_backend: true,
        own_headers: Vec::new(),
    };
    let auth = resolved_auth(&workload, auth_configs)?;
    let group = v.spec.group_ref.name.clone();
    let in_group = |r: Option<&crate::api::shared::NameRef>, m_ns: Option<&str>| {
        m_ns == Some(ns.as_str()) && r.is_some_and(|r| r.name == group)
    };
    let servers: Vec<MCPServer> = stored_of(docs, "MCPServer");
    let proxies: Vec<MCPRemoteProxy> = stored_of(docs, "MCPRemoteProxy");
    let entries: Vec<MCPServerEntry> = stored_of(docs, "MCPServerEntry");
    let mut found = Vec::new();
    for s in servers
        .iter()
        .filter(|s| in_group(s.spec.group_ref.as_ref(), s.metadata.namespace.as_deref()))
    {
        found.push(vmcp::Candidate::Server {
            name: s.metadata.name.as_deref().unwrap_or_default(),
            transport: s.spec.transport.as_deref(),
            proxy_mode: s.spec.proxy_mode.as_deref(),
            proxy_port: s.spec.proxy_port,
        });
    }
    for p in proxies
        .iter()
        .filter(|p| in_group(p.spec.group_ref.as_ref(), p.metadata.namespace.as_deref()))
    {
        found.push(vmcp::Candidate::Proxy {
            name: p.metadata.name.as_deref().unwrap_or_default(),
            transport: p.spec.transport.as_deref(),
            proxy_port: p.spec.proxy_port,
        });
    }
    for e in entries
        .iter()
        .filter(|e| in_group(Some(&e.spec.group_ref), e.metadata.namespace.as_deref()))
    {
        let external = e
            .spec
            .external_auth_config_ref
            .as_ref()
            .and_then(|r| auth_configs.external.get(&(ns.clone(), r.name.clone())));
        found.push(vmcp::Candidate::Entry(e, external));
    }
    let members = vmcp::members(&ns, found).map_err(|why| {
        format!("the operator would hold this VirtualMCPServer (OutgoingAuthNotSupported): {why} (pass the referenced configs' manifests too)")
    })?;
    let mut named = std::collections::BTreeMap::new();
    for t in v
        .spec
        .config
        .iter()
        .flat_map(|c| c.aggregation.iter())
        .flat_map(|a| a.tools.iter().flatten())
    {
        let Some(r) = &t.tool_config_ref else {
            continue;
        };
        match tool_configs.0.get(&(ns.clone(), r.name.clone())) {
            Some(Ok(spec)) => {
                named.insert(r.name.clone(), spec.clone());
            }
            Some(Err(why)) => return Err(format!("MCPToolConfig {:?} is not valid (the operator would not roll this VirtualMCPServer out): {why}", r.name)),
            None => return Err(format!("spec.config.aggregation.tools[].toolConfigRef names MCPToolConfig {:?} (namespace {ns}), which is not among the inputs; the operator would not roll this VirtualMCPServer out without it (ToolConfigNotFound). Pass its manifest too", r.name)),
        }
    }
    let config = vmcp::file_config(&v, &members, &named, auth.block.as_ref())?;
    let note = format!(
        "# vmcp.json: the backends are the members of MCPGroup {group:?} found among the inputs: {}\n",
        if members.is_empty() {
            "none".to_string()
        } else {
            members.iter().map(|m| m.backend.name.as_str()).collect::<Vec<_>>().join(", ")
        }
    );
    let inputs = vmcp::Inputs {
        image: image.to_string(),
        members,
        auth,
        ..vmcp::Inputs::default()
    };
    let mut text = String::new();
    for child in vmcp::desired(&v, &config, &inputs).objects() {
        text.push_str("---\n");
        if child.get("kind").and_then(Value::as_str) == Some("ConfigMap") {
            text.push_str(&note);
        }
        text.push_str(&crate::yaml::to_string(&child));
    }
    Ok(text)
}

/// The children of one MCPRegistry (any served version) as YAML documents: its config, the
/// registry API's identity and Role, Deployment and Service.
pub fn render_registry(
    obj: &Value,
    operator_image: &str,
    api_image: &str,
) -> Result<String, String> {
    let verdict = admission::admit(obj, None, Operation::Create).map_err(|e| e.to_string())?;
    if !verdict.allowed() {
        return Err(format!("rejected: {}", verdict.errors));
    }
    let beta = conversion::convert(&verdict.defaulted, "v1beta1").map_err(|e| e.to_string())?;
    let mut registry: MCPRegistry = serde_json::from_value(beta).map_err(|e| e.to_string())?;
    // kubectl's default, so the RoleBinding's subject names a namespace as it will in the cluster.
    registry
        .metadata
        .namespace
        .get_or_insert_with(|| DEFAULT_NAMESPACE.into());
    let inputs = registry_children::Inputs {
        api_image: api_image.to_string(),
        operator_image: operator_image.to_string(),
        ..registry_children::Inputs::default()
    };
    let mut text = String::new();
    for child in registry_children::desired(&registry, &inputs).objects() {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(&child).map_err(|e| e.to_string())?);
    }
    Ok(text)
}

/// The kubectl default for a document without a namespace.
const DEFAULT_NAMESPACE: &str = "default";

fn namespace_of(obj: &Value) -> String {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string()
}

/// The MCPToolConfigs among the inputs, by namespace and name: their spec once admitted and
/// converted, or why they cannot be used (the operator would refuse them too).
#[derive(Debug, Default)]
pub struct ToolConfigs(HashMap<(String, String), Result<MCPToolConfigSpec, String>>);

impl ToolConfigs {
    pub fn from_inputs(docs: &[&Value]) -> Self {
        let configs = docs
            .iter()
            .filter(|d| d.get("kind").and_then(Value::as_str) == Some("MCPToolConfig"))
            .map(|d| {
                let name = d
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                ((namespace_of(d), name), tool_config_spec(d))
            });
        ToolConfigs(configs.collect())
    }
}

/// The MCPOIDCConfigs, MCPAuthzConfigs and MCPExternalAuthConfigs among the inputs, at
/// v1beta1 (an invalid one is kept: resolving it says why the operator would hold its users),
/// and the `data` of the ConfigMaps among them (an `authzConfig` may read its policies there).
#[derive(Debug, Default)]
pub struct AuthConfigs {
    oidc: HashMap<(String, String), MCPOIDCConfig>,
    authz: HashMap<(String, String), MCPAuthzConfig>,
    external: HashMap<(String, String), MCPExternalAuthConfig>,
    config_maps: HashMap<(String, String), BTreeMap<String, String>>,
}

impl AuthConfigs {
    pub fn from_inputs(docs: &[&Value]) -> Self {
        let mut out = AuthConfigs::default();
        for d in docs {
            let key = || {
                let name = d.pointer("/metadata/name").and_then(Value::as_str);
                (namespace_of(d), name.unwrap_or_default().to_string())
            };
            match d.get("kind").and_then(Value::as_str) {
                Some("MCPOIDCConfig") => out.oidc.extend(at_v1beta1(d).map(|c| (key(), c))),
                Some("MCPAuthzConfig") => out.authz.extend(at_v1beta1(d).map(|c| (key(), c))),
                Some("MCPExternalAuthConfig") => {
                    out.external.extend(at_v1beta1(d).map(|c| (key(), c)))
                }
                Some("ConfigMap") if d.get("apiVersion").and_then(Value::as_str) == Some("v1") => {
                    let data = d.get("data").cloned().unwrap_or_default();
                    let data = serde_json::from_value(data).unwrap_or_default();
                    out.config_maps.insert(key(), data);
                }
                _ => {}
            }
        }
        out
    }

    /// The configs `auth` names in `ns`, as the reconciler's caches would hold them.
    fn found(&self, ns: &str, auth: &admission::auth::WorkloadAuth<'_>) -> auth_refs::Found<'_> {
        let key = |name: &str| (ns.to_string(), name.to_string());
        auth_refs::Found {
            oidc: auth
                .oidc_config_ref
                .and_then(|r| self.oidc.get(&key(&r.name))),
            authz: auth
                .authz_config_ref
                .and_then(|r| self.authz.get(&key(&r.name))),
            external: auth
                .external_auth_config_ref
                .and_then(|r| self.external.get(&key(&r.name))),
            authz_config_map: auth_refs::authz_config_map(auth)
                .and_then(|name| self.config_maps.get(&key(name))),
        }
    }
}

/// A config as the API server would store it (defaulted and converted), if it can be read.
fn at_v1beta1<T: serde::de::DeserializeOwned>(obj: &Value) -> Option<T> {
    let defaulted = admission::admit(obj, None, Operation::Create)
        .map(|v| v.defaulted)
        .unwrap_or_else(|_| obj.clone());
    let beta = conversion::convert(&defaulted, "v1beta1").ok()?;
    serde_json::from_value(beta).ok()
}

/// The workload's auth references resolved against the inputs, or the reason the operator
/// would hold it, with its message.
fn resolved_auth(
    workload: &auth_refs::Workload<'_>,
    auth_configs: &AuthConfigs,
) -> Result<auth_refs::Resolved, String> {
    let found = auth_configs.found(workload.namespace, &workload.auth);
    auth_refs::resolve(workload, found).outcome.map_err(|f| {
        format!(
            "the operator would hold this {} ({}): {} (pass the referenced configs' manifests too)",
            workload.auth.kind, f.reason, f.message
        )
    })
}

fn tool_config_spec(obj: &Value) -> Result<MCPToolConfigSpec, String> {
    let verdict = admission::admit(obj, None, Operation::Create).map_err(|e| e.to_string())?;
    if !verdict.allowed() {
        return Err(verdict.errors.to_string());
    }
    let beta = conversion::convert(&verdict.defaulted, "v1beta1").map_err(|e| e.to_string())?;
    let config: MCPToolConfig = serde_json::from_value(beta).map_err(|e| e.to_string())?;
    Ok(config.spec)
}

/// The referenced MCPToolConfig's spec, a note saying it is not shown, or why the server would
/// not be rolled out (the reason the operator would give).
fn referenced_tool_config(
    server: &MCPServer,
    tool_configs: &ToolConfigs,
) -> Result<(Option<MCPToolConfigSpec>, Option<String>), String> {
    let Some(reference) = &server.spec.tool_config_ref else {
        return Ok((None, None));
    };
    let ns = server
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    match tool_configs.0.get(&(ns.clone(), reference.name.clone())) {
        Some(Ok(spec)) => Ok((Some(spec.clone()), None)),
        Some(Err(why)) => Err(format!(
            "MCPToolConfig {:?} is not valid (the operator would not roll this server out): {why}",
            reference.name
        )),
        None => Ok((
            None,
            Some(format!(
                "# NOT SHOWN: spec.toolConfigRef names MCPToolConfig {:?} (namespace {ns}), which is not among the inputs;\n\
                 # its toolsFilter and toolsOverride are missing from this bridge config. Pass its manifest too.\n",
                reference.name
            )),
        )),
    }
}

/// The children of one MCPServer (any served version) as YAML documents, with the
/// MCPToolConfigs of the inputs to resolve its `toolConfigRef`.
pub fn render_one(
    obj: &Value,
    bridge_image: &str,
    tool_configs: &ToolConfigs,
    auth_configs: &AuthConfigs,
) -> Result<String, String> {
    let verdict = admission::admit(obj, None, Operation::Create).map_err(|e| e.to_string())?;
    if !verdict.allowed() {
        return Err(format!("rejected: {}", verdict.errors));
    }
    let beta = conversion::convert(&verdict.defaulted, "v1beta1").map_err(|e| e.to_string())?;
    let server: MCPServer = serde_json::from_value(beta).map_err(|e| e.to_string())?;
    if children::asks_for_inline_oidc(&server) {
        return Err("oidcConfig asks for authentication in the old inline form, which is not enforced: the operator deploys nothing for this server (Accepted=False, AuthenticationNotSupported); move it to an MCPOIDCConfig referenced by spec.oidcConfigRef, or remove oidcConfig to run it without authentication knowingly".into());
    }
    let auth = resolved_auth(&children::auth_workload(&server), auth_configs)?;
    let (tool_config, tool_config_note) = referenced_tool_config(&server, tool_configs)?;
    if children::no_tool_allowed(&server, tool_config.as_ref()) {
        return Err("spec.tools and the MCPToolConfig's toolsFilter have no tool in common: the operator would not roll this server out (NoToolsAllowed)".into());
    }
    let (command, note) = match &server.spec.command {
        Some(c) => (c.clone(), None),
        None => (
            vec![format!("<entrypoint of {}>", server.spec.image)],
            Some(format!(
                "# spec.command is not set: in the cluster the operator reads the entrypoint of {} from its registry.\n",
                server.spec.image
            )),
        ),
    };
    let inputs = Inputs {
        bridge_image: bridge_image.to_string(),
        command,
        tool_config,
        auth,
        ..Inputs::default()
    };
    let mut text = String::new();
    for child in children::desired(&server, &inputs).objects() {
        text.push_str("---\n");
        match child.get("kind").and_then(Value::as_str) {
            Some("Deployment") => text.push_str(note.as_deref().unwrap_or_default()),
            Some("ConfigMap") => text.push_str(tool_config_note.as_deref().unwrap_or_default()),
            _ => {}
        }
        text.push_str(&crate::yaml::to_string(&child));
    }
    Ok(text)
}

/// The children of one MCPRemoteProxy (any served version) as YAML documents, with the
/// MCPToolConfigs of the inputs to resolve its `toolConfigRef`. Header Secrets are referenced
/// (`secretKeyRef`), never read.
pub fn render_remote_proxy(
    obj: &Value,
    bridge_image: &str,
    tool_configs: &ToolConfigs,
    auth_configs: &AuthConfigs,
) -> Result<String, String> {
    use crate::controller::mcpremoteproxy_children as remote;
    let verdict = admission::admit(obj, None, Operation::Create).map_err(|e| e.to_string())?;
    if !verdict.allowed() {
        return Err(format!("rejected: {}", verdict.errors));
    }
    let beta = conversion::convert(&verdict.defaulted, "v1beta1").map_err(|e| e.to_string())?;
    let proxy: MCPRemoteProxy = serde_json::from_value(beta).map_err(|e| e.to_string())?;
    let auth = resolved_auth(&remote::auth_workload(&proxy), auth_configs)?;
    let ns = proxy
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    let (tool_config, note) = match &proxy.spec.tool_config_ref {
        None => (None, None),
        Some(r) => match tool_configs.0.get(&(ns.clone(), r.name.clone())) {
            Some(Ok(spec)) => (Some(spec.clone()), None),
            Some(Err(why)) => {
                return Err(format!(
                    "MCPToolConfig {:?} is not valid (the operator would not roll this proxy out): {why}",
                    r.name
                ))
            }
            None => (
                None,
                Some(format!(
                    "# NOT SHOWN: spec.toolConfigRef names MCPToolConfig {:?} (namespace {ns}), which is not among the inputs;\n\
                     # the operator would not roll this proxy out without it (ToolConfigNotFound). Pass its manifest too.\n",
                    r.name
                )),
            ),
        },
    };
    let inputs = remote::Inputs {
        bridge_image: bridge_image.to_string(),
        tool_config,
        auth,
        ..remote::Inputs::default()
    };
    let mut text = String::new();
    for child in remote::desired(&proxy, &inputs).objects() {
        text.push_str("---\n");
        if child.get("kind").and_then(Value::as_str) == Some("ConfigMap") {
            text.push_str(note.as_deref().unwrap_or_default());
        }
        text.push_str(&serde_yaml::to_string(&child).map_err(|e| e.to_string())?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(spec: Value) -> Value {
        let mut s = json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "s"}, "spec": {"image": "x", "command": ["srv"]}});
        for (k, v) in spec.as_object().unwrap() {
            s["spec"][k] = v.clone();
        }
        s
    }

    fn tool_config(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
            "metadata": {"name": name}, "spec": spec})
    }

    /// Each row: the inputs (the MCPServer first), and what the output (or error) must contain.
    #[test]
    fn tool_config_refs_are_resolved_from_the_inputs() {
        let renames = tool_config(
            "renames",
            json!({"toolsFilter": ["web_fetch"], "toolsOverride": {"fetch": {"name": "web_fetch"}}}),
        );
        let rows: Vec<(Vec<Value>, Result<&str, &str>)> = vec![
            (
                vec![
                    server(json!({"toolConfigRef": {"name": "renames"}})),
                    renames.clone(),
                ],
                Ok(r#""tools": ["#),
            ),
            (
                vec![
                    server(json!({"toolConfigRef": {"name": "renames"}})),
                    renames.clone(),
                ],
                Ok(r#""toolOverrides": {"#),
            ),
            (
                vec![
                    server(json!({"toolConfigRef": {"name": "elsewhere"}})),
                    renames.clone(),
                ],
                Ok(r#"NOT SHOWN: spec.toolConfigRef names MCPToolConfig "elsewhere""#),
            ),
            (
                vec![
                    server(json!({"toolConfigRef": {"name": "renames"}, "tools": ["other"]})),
                    renames.clone(),
                ],
                Err("no tool in common"),
            ),
            (
                vec![
                    server(json!({"toolConfigRef": {"name": "bad"}})),
                    tool_config(
                        "bad",
                        json!({"toolsOverride": {"a": {"name": "same"}, "b": {"name": "same"}}}),
                    ),
                ],
                Err(r#"MCPToolConfig "bad" is not valid"#),
            ),
        ];
        for (i, (inputs, want)) in rows.into_iter().enumerate() {
            let refs: Vec<&Value> = inputs.iter().collect();
            let configs = ToolConfigs::from_inputs(&refs);
            let got = render_one(
                &inputs[0],
                "img",
                &configs,
                &AuthConfigs::from_inputs(&refs),
            );
            match (&got, want) {
                (Ok(text), Ok(part)) => assert!(text.contains(part), "row {i}: {text}"),
                (Err(why), Err(part)) => assert!(why.contains(part), "row {i}: {why}"),
                _ => panic!("row {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// The seed registry renders its six children; its config is carried byte for byte; a
    /// registry the admission core refuses renders nothing and says why.
    #[test]
    fn registries_render_their_children() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/seed/mcpregistry.yaml"
        );
        let seed: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let text = render_registry(&seed, "op:1", "registry:2").unwrap();
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let kinds: Vec<(&str, &str)> = docs
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("ConfigMap", "my-registry-registry-server-config"),
                ("ServiceAccount", "my-registry-registry-api"),
                ("Role", "my-registry-registry-api"),
                ("RoleBinding", "my-registry-registry-api"),
                ("Deployment", "my-registry-api"),
                ("Service", "my-registry-api"),
            ]
        );
        assert_eq!(docs[0]["data"]["config.yaml"], seed["spec"]["configYAML"]);
        let pod = &docs[4]["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["image"], "registry:2");

        let mut bad = seed.clone();
        bad["spec"]["volumeMounts"][0]["mountPath"] = json!("/elsewhere");
        let why = render_registry(&bad, "op:1", "registry:2").unwrap_err();
        assert!(
            why.contains("is not inside any of spec.volumeMounts"),
            "{why}"
        );
    }

    /// A remote proxy renders with its MCPToolConfig resolved, its header Secret referenced
    /// and never read, and a refused remoteUrl is an error.
    #[test]
    fn remote_proxies_render() {
        let proxy = |url: &str| {
            json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
                "metadata": {"name": "rp"}, "spec": {"remoteUrl": url, "toolConfigRef": {"name": "renames"},
                "headerForward": {"addHeadersFromSecret": [{"headerName": "X-Key", "valueSecretRef": {"name": "k", "key": "v"}}]}}})
        };
        let renames = tool_config(
            "renames",
            json!({"toolsFilter": ["say"], "toolsOverride": {"echo": {"name": "say"}}}),
        );
        let ok = proxy("https://mcp.example.com/mcp");
        let configs = ToolConfigs::from_inputs(&[&ok, &renames]);
        let none = AuthConfigs::default();
        let text = render_remote_proxy(&ok, "img", &configs, &none).unwrap();
        for part in [
            r#""remoteUrl": "https://mcp.example.com/mcp""#,
            r#""tools": ["#,
            "secretKeyRef",
            "name: mcp-rp-remote-proxy",
            "image: img",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let bad = proxy("http://169.254.169.254/");
        let why = render_remote_proxy(&bad, "img", &configs, &none).unwrap_err();
        assert!(why.contains("spec.remoteUrl"), "{why}");
        let missing = render_remote_proxy(&ok, "img", &ToolConfigs::default(), &none).unwrap();
        assert!(missing.contains("NOT SHOWN"), "{missing}");
    }

    /// A VirtualMCPServer renders with the members of its group found among the inputs (and
    /// only those), its config in the ConfigMap; a tool config it needs must be there too.
    #[test]
    fn virtual_servers_render_with_their_group() {
        let doc = |kind: &str, name: &str, spec: Value| {
            json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": kind,
                   "metadata": {"name": name}, "spec": spec})
        };
        let vmcp = doc(
            "VirtualMCPServer",
            "agg",
            json!({"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"},
            "config": {"aggregation": {"tools": [{"workload": "t", "toolConfigRef": {"name": "tc"}}]}}}),
        );
        let inputs = [
            vmcp.clone(),
            doc(
                "MCPServer",
                "t",
                json!({"image": "docker.io/mcp/time", "groupRef": {"name": "g"}}),
            ),
            doc(
                "MCPServer",
                "elsewhere",
                json!({"image": "docker.io/mcp/time", "groupRef": {"name": "h"}}),
            ),
            doc(
                "MCPServerEntry",
                "e",
                json!({"remoteUrl": "https://e.example.com/mcp", "transport": "sse", "groupRef": {"name": "g"}}),
            ),
            tool_config("tc", json!({"toolsFilter": ["now"]})),
        ];
        let docs: Vec<&Value> = inputs.iter().collect();
        let configs = ToolConfigs::from_inputs(&docs);
        let text = render_vmcp(&vmcp, "img", &docs, &configs, &AuthConfigs::default()).unwrap();
        for part in [
            "vmcp.json: |",
            r#""url": "http://mcp-t-proxy.default.svc.cluster.local:8080/mcp""#,
            r#""url": "https://e.example.com/mcp""#,
            r#""now""#,
            "name: vmcp-agg",
            "port: 4483",
            "found among the inputs: e, t",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(!text.contains("elsewhere"), "{text}");
        let why = render_vmcp(
            &vmcp,
            "img",
            &docs[..4],
            &ToolConfigs::default(),
            &AuthConfigs::default(),
        )
        .unwrap_err();
        assert!(why.contains("MCPToolConfig \"tc\""), "{why}");
    }

    #[test]
    fn inline_oidc_renders_nothing() {
        let mut s = server(json!({}));
        s["metadata"]["annotations"] =
            json!({"toolhive.stacklok.dev/v1alpha1-oidcConfig": "{\"type\":\"kubernetes\"}"});
        let why =
            render_one(&s, "img", &ToolConfigs::default(), &AuthConfigs::default()).unwrap_err();
        assert!(why.contains("spec.oidcConfigRef"), "{why}");
    }

    /// The auth references are resolved against the inputs, as the operator resolves them
    /// against its caches: the bridge config carries the `auth` block; a config that is not
    /// among the inputs is the reason the operator would hold the server.
    #[test]
    fn auth_references_render_from_the_inputs() {
        let s = server(json!({
            "oidcConfigRef": {"name": "idp", "audience": "fetch"},
            "authzConfigRef": {"name": "policies"},
            "audit": {"enabled": true},
        }));
        let oidc = json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPOIDCConfig",
            "metadata": {"name": "idp"}, "spec": {"type": "kubernetesServiceAccount", "kubernetesServiceAccount": {}}});
        let authz = json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPAuthzConfig",
            "metadata": {"name": "policies"}, "spec": {"type": "cedarv1", "config": {
                "policies": ["permit(principal, action == Action::\"call_tool\", resource == Tool::\"echo\");"]}}});
        let all = AuthConfigs::from_inputs(&[&oidc, &authz]);
        let text = render_one(&s, "img", &ToolConfigs::default(), &all).unwrap();
        for part in [
            r#""issuer": "https://kubernetes.default.svc""#,
            r#""audience": "fetch""#,
            r#"Tool::\"echo\""#,
            r#""audit": {"#,
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        let only_oidc = AuthConfigs::from_inputs(&[&oidc]);
        let why = render_one(&s, "img", &ToolConfigs::default(), &only_oidc).unwrap_err();
        assert!(why.contains("AuthzConfigRefNotFound"), "{why}");
        assert!(why.contains(r#"MCPAuthzConfig "policies""#), "{why}");
    }

    /// `authzConfig.type: configMap` renders from a ConfigMap among the inputs; without it, or
    /// with a document that does not validate, render says why the operator would hold it.
    #[test]
    fn policies_from_a_config_map_render_from_the_inputs() {
        let s = server(json!({
            "oidcConfigRef": {"name": "idp", "audience": "fetch"},
            "authzConfig": {"type": "configMap", "configMap": {"name": "policies", "key": "authz.yaml"}},
        }));
        let oidc = json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPOIDCConfig",
            "metadata": {"name": "idp"}, "spec": {"type": "kubernetesServiceAccount", "kubernetesServiceAccount": {}}});
        let map = |doc: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "policies"},
                   "data": {"authz.yaml": doc}})
        };
        let good = map("version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n  - 'permit(principal, action == Action::\"call_tool\", resource == Tool::\"echo\");'\n");
        let text = render_one(
            &s,
            "img",
            &ToolConfigs::default(),
            &AuthConfigs::from_inputs(&[&oidc, &good]),
        )
        .unwrap();
        assert!(text.contains(r#"Tool::\"echo\""#), "{text}");
        let bad = map("version: '1.0'\ntype: cedarv1\ncedar:\n  policies: ['permit(principal action, resource);']\n");
        let rows = [
            (vec![&oidc], "AuthzConfigMapNotFound"),
            (vec![&oidc, &bad], "cedar.policies[0]"),
        ];
        for (inputs, part) in rows {
            let why = render_one(
                &s,
                "img",
                &ToolConfigs::default(),
                &AuthConfigs::from_inputs(&inputs),
            )
            .unwrap_err();
            assert!(why.contains(part), "{part}: {why}");
        }
    }
}
