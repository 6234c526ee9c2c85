//! Checks shared by several kinds and by both versions of a kind.

use super::field::{FieldError, FieldErrors, Path};
use super::rules;
use crate::api::shared::*;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Findings of the semantic checks: errors refuse, warnings only inform.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: FieldErrors,
    pub warnings: Vec<String>,
}

impl Findings {
    pub fn error(&mut self, e: FieldError) {
        self.errors.push(e);
    }
    pub fn warn(&mut self, path: &Path, msg: impl AsRef<str>) {
        self.warnings.push(format!("{path}: {}", msg.as_ref()));
    }
    /// Records every reason of a rule as an Invalid error on `path`.
    pub fn rule(&mut self, path: &Path, value: &str, reasons: Vec<String>) {
        for r in reasons {
            self.errors.push(FieldError::invalid(path, value, r));
        }
    }
}

pub fn check_image(f: &mut Findings, path: &Path, image: &str) {
    f.rule(path, image, rules::image_reference(image));
    if let Some(what) = registry_host(image).and_then(unreachable_registry) {
        f.warn(
            path,
            format!(
                "the image's registry is {what}: the operator does not connect there to read \
                 the image's entrypoint (set spec.command), and the kubelet would pull from that \
                 address as the node sees it"
            ),
        );
    }
}

/// The registry part of an image reference, when it names one (`host[:port]/...`), as
/// `docker pull` tells a registry from a Docker Hub namespace.
fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains(['.', ':']) || first == "localhost").then_some(first)
}

/// What a registry host is when the operator's address guard refuses it (no DNS here: names
/// other than `localhost` are judged when they are resolved).
fn unreachable_registry(host: &str) -> Option<&'static str> {
    let bare = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return Some("loopback");
    }
    let class = crate::address::classify(bare.parse().ok()?)?;
    (class != crate::address::Refused::Private).then(|| class.what())
}

/// A same-namespace object name (Secret, ConfigMap, MCPToolConfig, ...).
pub fn check_object_name(f: &mut Findings, path: &Path, name: &str) {
    f.rule(path, name, rules::dns1123_subdomain(name));
}

/// A `caBundleRef` (MCPOIDCConfig, MCPTelemetryConfig): it names a ConfigMap, which is mounted as
/// the volume `<volume_prefix><name>`, so the name must leave the prefix room in 63 characters.
pub fn check_ca_bundle_ref(
    f: &mut Findings,
    path: &Path,
    source: &crate::api::auth::CaBundleSource,
    volume_prefix: &str,
) {
    let cp = path.child("configMapRef");
    let Some(r) = source.config_map_ref.as_ref() else {
        f.error(FieldError::required(
            cp,
            "the ConfigMap holding the CA bundle",
        ));
        return;
    };
    let name = r.name.as_deref().unwrap_or_default();
    let max = 63 - volume_prefix.len();
    if name.is_empty() {
        f.error(FieldError::required(cp.child("name"), ""));
    } else if name.len() > max {
        f.error(FieldError::invalid(
            cp.child("name"),
            name,
            format!("must be no more than {max} characters (it becomes the volume {volume_prefix}<name>)"),
        ));
    }
}

/// Env names valid; returns the names for collision checks with secrets.
pub fn check_env(f: &mut Findings, path: &Path, env: &[EnvVar]) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, e) in env.iter().enumerate() {
        let p = path.index(i).child("name");
        f.rule(&p, &e.name, rules::env_var_name(&e.name));
        names.insert(e.name.clone());
    }
    names
}

/// Secret references: valid names and keys, target env names valid and unique, and not
/// colliding with a plain env var (the container would get two values for one name).
pub fn check_secrets(
    f: &mut Findings,
    path: &Path,
    secrets: &[SecretRef],
    env_names: &HashSet<String>,
) {
    let mut targets: HashMap<String, usize> = HashMap::new();
    for (i, s) in secrets.iter().enumerate() {
        let p = path.index(i);
        check_object_name(f, &p.child("name"), &s.name);
        f.rule(&p.child("key"), &s.key, rules::config_map_key(&s.key));
        let (target, target_path) = match &s.target_env_name {
            Some(t) => (t.clone(), p.child("targetEnvName")),
            None => (s.key.clone(), p.child("key")),
        };
        let reasons = rules::env_var_name(&target);
        if !reasons.is_empty() {
            let why = if s.target_env_name.is_none() {
                vec![format!(
                    "{} (the key is used as the environment variable name; set targetEnvName)",
                    reasons[0]
                )]
            } else {
                reasons
            };
            f.rule(&target_path, &target, why);
        }
        if env_names.contains(&target) {
            f.error(FieldError::invalid(
                &target_path,
                target.as_str(),
                "collides with an entry of spec.env of the same name",
            ));
        }
        if let Some(first) = targets.insert(target.clone(), i) {
            f.error(FieldError::invalid(
                &target_path,
                target.as_str(),
                format!("environment variable already set by spec.secrets[{first}]"),
            ));
        }
    }
}

/// Host-path volumes: absolute paths, unique mount paths, label-shaped names.
pub fn check_volumes(f: &mut Findings, path: &Path, volumes: &[Volume]) {
    let mut mounts: HashMap<String, usize> = HashMap::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        f.rule(&p.child("name"), &v.name, rules::dns1123_label(&v.name));
        f.rule(
            &p.child("hostPath"),
            &v.host_path,
            rules::absolute_path(&v.host_path),
        );
        f.rule(
            &p.child("mountPath"),
            &v.mount_path,
            rules::absolute_path(&v.mount_path),
        );
        let clean = rules::clean_path(&v.mount_path);
        if let Some(first) = mounts.insert(clean, i) {
            f.error(FieldError::invalid(
                p.child("mountPath"),
                v.mount_path.as_str(),
                format!("must be unique: also mounted by {}", path.index(first)),
            ));
        }
    }
}

/// Quantities parse, and no request exceeds its limit.
pub fn check_resources(f: &mut Findings, path: &Path, r: &ResourceRequirements) {
    let parse = |f: &mut Findings, p: Path, v: &Option<String>| {
        let s = v.as_deref()?;
        match rules::parse_quantity(s) {
            Ok(q) => Some(q),
            Err(why) => {
                f.error(FieldError::invalid(p, s, why));
                None
            }
        }
    };
    let empty = ResourceList::default();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    for (name, lim, req) in [
        ("cpu", &limits.cpu, &requests.cpu),
        ("memory", &limits.memory, &requests.memory),
    ] {
        let l = parse(f, path.child("limits").child(name), lim);
        let q = parse(f, path.child("requests").child(name), req);
        if let (Some(l), Some(q)) = (l, q) {
            if q > l {
                f.error(FieldError::invalid(
                    path.child("requests").child(name),
                    req.clone().unwrap_or_default(),
                    format!(
                        "must be less than or equal to {name} limit of {}",
                        lim.clone().unwrap_or_default()
                    ),
                ));
            }
        }
    }
}

/// A permission profile names a builtin that exists, or a ConfigMap key.
pub fn check_permission_profile(f: &mut Findings, path: &Path, p: &PermissionProfileRef) {
    match p.type_.as_str() {
        "builtin" => {
            if !BUILTIN_PROFILES.contains(&p.name.as_str()) {
                f.error(FieldError::not_supported(
                    path.child("name"),
                    p.name.as_str(),
                    BUILTIN_PROFILES,
                ));
            }
            if p.key.is_some() {
                f.warn(&path.child("key"), "ignored for a builtin profile");
            }
        }
        "configmap" => {
            check_object_name(f, &path.child("name"), &p.name);
            match &p.key {
                Some(k) => f.rule(&path.child("key"), k, rules::config_map_key(k)),
                None => f.error(FieldError::required(
                    path.child("key"),
                    "the ConfigMap key holding the profile",
                )),
            }
        }
        _ => {} // the schema's enum already refused it
    }
}

/// Tool names: non-empty, unique, and free of separators the bridge config cannot carry.
pub fn check_tools(f: &mut Findings, path: &Path, tools: &[String]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, t) in tools.iter().enumerate() {
        let p = path.index(i);
        if t.trim().is_empty() {
            f.error(FieldError::required(p, "tool names must not be empty"));
            continue;
        }
        if t.contains([',', '\n', '\r']) {
            f.error(FieldError::invalid(
                p.clone(),
                t.as_str(),
                "must not contain commas or line breaks",
            ));
        }
        if seen.insert(t.as_str(), i).is_some() {
            f.error(FieldError::duplicate(p, t.as_str()));
        }
    }
}

/// A free-form field must decode as the Kubernetes type it stands for; errors name the inner path.
pub fn check_decodes<T: DeserializeOwned>(
    f: &mut Findings,
    path: &Path,
    value: &Value,
    what: &str,
) -> Option<T> {
    // Tracking the path costs on every field; only a failure needs it, so decode plainly first.
    if let Ok(v) = T::deserialize(value) {
        return Some(v);
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let p = if inner == "." || inner.is_empty() {
                path.clone()
            } else {
                Path::root(&format!("{path}.{inner}"))
            };
            f.error(
                FieldError::invalid(p, Value::Null, format!("not a valid {what}: {}", e.inner()))
                    .without_value(),
            );
            None
        }
    }
}

/// Labels and annotations on overrides must be valid metadata.
pub fn check_metadata_maps(
    f: &mut Findings,
    path: &Path,
    labels: Option<&BTreeMap<String, String>>,
) {
    for (k, v) in labels.into_iter().flatten() {
        if !is_qualified_name(k) {
            f.error(FieldError::invalid(
                path.key(k),
                k.as_str(),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/'",
            ));
        }
        if v.len() > 63 || !(v.is_empty() || is_label_value(v)) {
            f.error(FieldError::invalid(
                path.key(k),
                v.as_str(),
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (max 63)",
            ));
        }
    }
}

fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| rules::dns1123_subdomain(p).is_empty());
    prefix_ok && !name.is_empty() && name.len() <= 63 && is_label_value(name)
}
