//! MCPServer: what the schema cannot say.

use super::common::*;
use super::field::{FieldError, Path};
use super::rules;
use crate::api::shared::ResourceOverrides;
use crate::api::{v1alpha1, v1beta1};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The Service is named `mcp-<name>-proxy` and must fit a 63-character DNS label.
const MAX_NAME_LEN: usize = 63 - "mcp--proxy".len();

/// The schema default of `proxyMode`.
const DEFAULT_PROXY_MODE: &str = "streamable-http";

/// Volumes the operator adds to every MCPServer pod (`src/controller/children.rs`): a user volume
/// of the same name makes the Deployment invalid.
const RESERVED_VOLUMES: &[&str] = &["bridge-bin", "bridge-config"];
/// Where those volumes are mounted: a user mount there is a duplicate mount path, and one below
/// them hides or replaces the bridge's binary or its config.
const RESERVED_MOUNTS: &[(&str, &str)] = &[
    ("/mcp/bin", "the bridge binary"),
    ("/etc/mcp-bridge", "the bridge config"),
];
/// Added only for a permission profile read from a ConfigMap.
const PROFILE_VOLUME: &str = "permission-profile";
const PROFILE_MOUNT: &str = "/etc/toolhive/profiles";

/// The fields both versions share, borrowed, so one set of rules serves both.
struct Common<'a> {
    image: &'a str,
    transport: &'a str,
    mcp_port: Option<i32>,
    replicas: Option<i32>,
    env: &'a [crate::api::shared::EnvVar],
    secrets: &'a [crate::api::shared::SecretRef],
    volumes: &'a [crate::api::shared::Volume],
    resources: Option<&'a crate::api::shared::ResourceRequirements>,
    permission_profile: Option<&'a crate::api::shared::PermissionProfileRef>,
    tools: Option<&'a [String]>,
    tool_config_ref: Option<&'a str>,
    service_account: Option<&'a str>,
    pod_template_spec: Option<&'a Value>,
    resource_overrides: Option<&'a ResourceOverrides>,
    command: Option<&'a [String]>,
}

pub fn validate_v1beta1(name: &str, obj: &v1beta1::MCPServer, raw: &Value, f: &mut Findings) {
    let s = &obj.spec;
    check_common(
        name,
        &Common {
            image: &s.image,
            transport: s.transport.as_deref().unwrap_or("stdio"),
            mcp_port: s.mcp_port,
            replicas: s.replicas,
            env: s.env.as_deref().unwrap_or_default(),
            secrets: s.secrets.as_deref().unwrap_or_default(),
            volumes: s.volumes.as_deref().unwrap_or_default(),
            resources: s.resources.as_ref(),
            permission_profile: s.permission_profile.as_ref(),
            tools: s.tools.as_deref(),
            tool_config_ref: s.tool_config_ref.as_ref().map(|r| r.name.as_str()),
            service_account: s.service_account.as_deref(),
            pod_template_spec: s.pod_template_spec.as_ref(),
            resource_overrides: s.resource_overrides.as_ref(),
            command: s.command.as_deref(),
        },
        raw,
        f,
    );
    if let Some(g) = &s.group_ref {
        check_object_name(f, &Path::root("spec.groupRef.name"), &g.name);
    }
    warn_kept_alpha_fields(obj.metadata.annotations.as_ref(), true, f);
}

/// What an inline OIDC block gets on an MCPServer: the old inline form is not enforced (the
/// shared MCPOIDCConfig is), so the operator holds the server undeployed rather than run it
/// open; the warning says so, and what to do instead.
pub const SERVER_OIDC_HELD: &str = "this inline form of authentication is not enforced by mcp-operator, so the server is not deployed while an inline oidcConfig is set (condition Accepted=False); move it to an MCPOIDCConfig referenced by spec.oidcConfigRef, or remove it to run the server without authentication knowingly";
/// The same on an MCPRemoteProxy.
pub const OIDC_KEPT_ONLY: &str = "this inline form of authentication is not enforced by mcp-operator, so the proxy is not deployed while an inline oidcConfig is set (Ready=False, reason AuthNotEnforced); move it to an MCPOIDCConfig referenced by spec.oidcConfigRef, or remove it to run the proxy without authentication knowingly";
pub const TELEMETRY_KEPT_ONLY: &str =
    "kept for conversion only: mcp-operator does not export telemetry yet, so none is sent";

/// Inline blocks of a v1alpha1 object live on in annotations at v1beta1 (so a round trip loses
/// nothing), but v1beta1 does not act on them: say so, and what it means for the object.
pub fn warn_kept_alpha_fields(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    server: bool,
    f: &mut Findings,
) {
    let prefix = crate::api::ALPHA_STASH_PREFIX;
    let oidc = if server {
        SERVER_OIDC_HELD
    } else {
        OIDC_KEPT_ONLY
    };
    for (field, what) in [("oidcConfig", oidc), ("telemetry", TELEMETRY_KEPT_ONLY)] {
        let key = format!("{prefix}{field}");
        if annotations.is_some_and(|a| a.contains_key(&key)) {
            f.warn(
                &Path::root("metadata.annotations").key(&key),
                format!("the inline {field} of the v1alpha1 form: {what}"),
            );
        }
    }
}

/// Either shape of a v1alpha1 `groupRef`; the bare name (the oldest shape) is deprecated.
pub fn check_v1alpha1_group_ref(f: &mut Findings, spec: &Path, g: &v1alpha1::GroupRef) {
    match g {
        v1alpha1::GroupRef::Name(name) => {
            check_object_name(f, &spec.child("groupRef"), name);
            f.warn(
                &spec.child("groupRef"),
                "deprecated: v1beta1 takes an object, groupRef: {name: ...}",
            );
        }
        v1alpha1::GroupRef::Object(r) => {
            check_object_name(f, &spec.child("groupRef.name"), &r.name)
        }
    }
}

pub fn validate_v1alpha1(name: &str, obj: &v1alpha1::MCPServer, raw: &Value, f: &mut Findings) {
    let s = &obj.spec;
    check_common(
        name,
        &Common {
            image: &s.image,
            transport: s.transport.as_deref().unwrap_or("stdio"),
            mcp_port: s.mcp_port.or(s.target_port),
            replicas: s.replicas,
            env: s.env.as_deref().unwrap_or_default(),
            secrets: s.secrets.as_deref().unwrap_or_default(),
            volumes: s.volumes.as_deref().unwrap_or_default(),
            resources: s.resources.as_ref(),
            permission_profile: s.permission_profile.as_ref(),
            tools: s.tools.as_deref(),
            tool_config_ref: s.tool_config_ref.as_ref().map(|r| r.name.as_str()),
            service_account: s.service_account.as_deref(),
            pod_template_spec: s.pod_template_spec.as_ref(),
            resource_overrides: s.resource_overrides.as_ref(),
            command: s.command.as_deref(),
        },
        raw,
        f,
    );
    let spec = Path::root("spec");
    if let Some(g) = &s.group_ref {
        check_v1alpha1_group_ref(f, &spec, g);
    }
    if s.port.is_some() {
        f.warn(&spec.child("port"), "deprecated: use spec.proxyPort");
    }
    if s.target_port.is_some() {
        f.warn(&spec.child("targetPort"), "deprecated: use spec.mcpPort");
    }
    if s.oidc_config.is_some() {
        f.warn(&spec.child("oidcConfig"), SERVER_OIDC_HELD);
    }
    if let Some(secret) = s
        .oidc_config
        .as_ref()
        .and_then(|o| o.inline.as_ref())
        .and_then(|i| i.client_secret.as_ref())
    {
        let _ = secret; // never echo a secret, not even in a warning
        f.warn(
            &spec.child("oidcConfig.inline.clientSecret"),
            "a plaintext secret in a spec is readable by anyone who can read the object; use clientSecretRef",
        );
    }
    if s.telemetry.is_some() {
        f.warn(&spec.child("telemetry"), TELEMETRY_KEPT_ONLY);
    }
}

fn check_common(name: &str, c: &Common<'_>, raw: &Value, f: &mut Findings) {
    let spec = Path::root("spec");
    if name.len() > MAX_NAME_LEN {
        f.error(FieldError::invalid(
            "metadata.name",
            name,
            format!("must be no more than {MAX_NAME_LEN} characters: the Service is named mcp-<name>-proxy"),
        ));
    } else if !name.is_empty() {
        f.rule(
            &Path::root("metadata.name"),
            name,
            rules::dns1123_label(name),
        );
    }
    check_image(f, &spec.child("image"), c.image);
    check_transport(c, raw, f);
    let env_names = check_env(f, &spec.child("env"), c.env);
    check_secrets(f, &spec.child("secrets"), c.secrets, &env_names);
    check_volumes(f, &spec.child("volumes"), c.volumes);
    let profile_from_config_map = c.permission_profile.is_some_and(|p| p.type_ == "configmap");
    check_reserved_volumes(
        f,
        &spec.child("volumes"),
        c.volumes,
        profile_from_config_map,
    );
    if let Some(r) = c.resources {
        check_resources(f, &spec.child("resources"), r);
    }
    if let Some(p) = c.permission_profile {
        check_permission_profile(f, &spec.child("permissionProfile"), p);
    }
    if let Some(tools) = c.tools {
        check_tools(f, &spec.child("tools"), tools);
        if c.tool_config_ref.is_some() && !tools.is_empty() {
            f.warn(
                &spec.child("tools"),
                "both tools and toolConfigRef are set: a tool must be allowed by both to be served",
            );
        }
    }
    if let Some(t) = c.tool_config_ref {
        check_object_name(f, &spec.child("toolConfigRef.name"), t);
    }
    if let Some(sa) = c.service_account {
        check_object_name(f, &spec.child("serviceAccount"), sa);
    }
    if let Some(cmd) = c.command {
        if cmd.first().is_none_or(|c| c.trim().is_empty()) {
            f.error(FieldError::required(
                spec.child("command[0]"),
                "the executable to run",
            ));
        }
    }
    if let Some(pts) = c.pod_template_spec {
        check_decodes::<PodTemplateSpec>(f, &spec.child("podTemplateSpec"), pts, "PodTemplateSpec");
    }
    if let Some(o) = c.resource_overrides {
        check_overrides(f, &spec.child("resourceOverrides"), o);
    }
}

/// Transport, proxy mode and ports: upstream accepts odd combinations, so they warn here.
fn check_transport(c: &Common<'_>, raw: &Value, f: &mut Findings) {
    let spec = Path::root("spec");
    let raw_spec = raw.get("spec");
    let set = |field: &str| {
        raw_spec
            .and_then(|s| s.get(field))
            .is_some_and(|v| !v.is_null())
    };
    if c.transport == "stdio" {
        if c.mcp_port.is_some() {
            f.warn(
                &spec.child("mcpPort"),
                "ignored for transport stdio: the server speaks over stdin/stdout, not a port",
            );
        }
        if c.replicas.is_some_and(|r| r > 1) {
            f.warn(
                &spec.child("replicas"),
                "a stdio server runs one process per pod; each replica is a separate server with its own sessions",
            );
        }
    } else {
        // The schema default is indistinguishable from a written value once the mutating
        // webhook has run, so only a value other than the default is the user's: warning about
        // the default would warn on every SSE create at the webhook and never in `check`.
        let mode = raw_spec
            .and_then(|s| s.get("proxyMode"))
            .and_then(Value::as_str)
            .filter(|m| *m != DEFAULT_PROXY_MODE);
        if let Some(mode) = mode.filter(|m| *m != c.transport) {
            f.warn(
                &spec.child("proxyMode"),
                format!(
                    "ignored for transport {}: clients are served {} (was {mode:?})",
                    c.transport, c.transport
                ),
            );
        }
        if !set("mcpPort") && !set("targetPort") {
            f.warn(
                &spec.child("mcpPort"),
                format!(
                    "not set for transport {}: the server is expected on port 8080",
                    c.transport
                ),
            );
        }
    }
}

fn check_overrides(f: &mut Findings, path: &Path, o: &ResourceOverrides) {
    if let Some(d) = &o.proxy_deployment {
        let p = path.child("proxyDeployment");
        check_metadata_maps(f, &p.child("labels"), d.labels.as_ref());
        check_env(f, &p.child("env"), d.env.as_deref().unwrap_or_default());
        if let Some(m) = &d.pod_template_metadata_overrides {
            check_metadata_maps(
                f,
                &p.child("podTemplateMetadataOverrides.labels"),
                m.labels.as_ref(),
            );
        }
    }
    if let Some(s) = &o.proxy_service {
        check_metadata_maps(f, &path.child("proxyService.labels"), s.labels.as_ref());
    }
}

/// Volume names and mount paths the operator's own pod wiring uses are refused, as MCPRegistry's.
fn check_reserved_volumes(
    f: &mut Findings,
    path: &Path,
    volumes: &[crate::api::shared::Volume],
    profile_from_config_map: bool,
) {
    let profile: &[(&str, &str)] = if profile_from_config_map {
        &[(PROFILE_MOUNT, "the permission profile")]
    } else {
        &[]
    };
    let reserved_name =
        |n: &str| RESERVED_VOLUMES.contains(&n) || (profile_from_config_map && n == PROFILE_VOLUME);
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        if reserved_name(&v.name) {
            f.error(FieldError::invalid(
                p.child("name"),
                v.name.as_str(),
                "is reserved for a volume the operator adds",
            ));
        }
        // A relative path is refused as such already.
        let absolute = v.mount_path.starts_with('/');
        if let Some((dir, what)) = RESERVED_MOUNTS
            .iter()
            .chain(profile)
            .find(|(dir, _)| absolute && rules::path_within(&v.mount_path, dir))
        {
            f.error(FieldError::invalid(
                p.child("mountPath"),
                v.mount_path.as_str(),
                format!("is reserved: the operator mounts {what} at {dir}"),
            ));
        }
    }
}
