//! MCPRegistry: the registry server's `configYAML` and the pod wiring it depends on.

use super::common::*;
use super::field::{FieldError, Path};
use super::rules;
use crate::api::{v1alpha1, v1beta1};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Volume, VolumeMount};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// The registry server's config schema, written from its documentation (see the file).
const CONFIG_SCHEMA: &str = include_str!("../../schemas/registry-config.schema.json");
/// Where the operator mounts the generated config; nothing else may mount there.
const CONFIG_MOUNT: &str = "/config";
/// The rendered config file itself: a mount there would replace it.
const CONFIG_FILE: &str = "/config/config.yaml";
const PGPASS_MOUNT: &str = "/home/appuser/.pgpass";
const CONFIG_VOLUME: &str = "registry-server-config";
const PGPASS_VOLUMES: &[&str] = &["pgpass-secret", "pgpass"];
const PGPASS_INIT_CONTAINER: &str = "setup-pgpass";
const API_CONTAINER: &str = "registry-api";
/// The API's Deployment and Service are `<name>-api`; a Service name is a DNS-1035 label.
const MAX_NAME_LEN: usize = 63 - "-api".len();

static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(CONFIG_SCHEMA).map_err(|e| e.to_string())?;
    jsonschema::validator_for(&schema).map_err(|e| e.to_string())
});

/// The fields of the `configYAML` layout, which v1beta1 and later v1alpha1 releases share.
struct ConfigLayout<'a> {
    config_yaml: &'a str,
    pgpass: Option<&'a v1beta1::PgpassSecretRef>,
    pod_template_spec: Option<&'a Value>,
    volumes: Option<&'a [Value]>,
    volume_mounts: Option<&'a [Value]>,
}

pub fn validate_v1beta1(obj: &v1beta1::MCPRegistry, f: &mut Findings) {
    check_name(f, obj.metadata.name.as_deref().unwrap_or_default());
    let s = &obj.spec;
    check_config_layout(
        f,
        &ConfigLayout {
            config_yaml: &s.config_yaml,
            pgpass: s.pgpass_secret_ref.as_ref(),
            pod_template_spec: s.pod_template_spec.as_ref(),
            volumes: s.volumes.as_deref(),
            volume_mounts: s.volume_mounts.as_deref(),
        },
    );
}

fn check_config_layout(f: &mut Findings, s: &ConfigLayout<'_>) {
    let spec = Path::root("spec");
    let pgpass = s.pgpass.is_some();
    let template = s.pod_template_spec.and_then(|p| {
        check_decodes::<PodTemplateSpec>(f, &spec.child("podTemplateSpec"), p, "PodTemplateSpec")
    });
    let volumes = decode_list::<Volume>(f, &spec.child("volumes"), s.volumes, "Volume");
    let mounts = decode_list::<VolumeMount>(
        f,
        &spec.child("volumeMounts"),
        s.volume_mounts,
        "VolumeMount",
    );
    check_reserved_volumes(f, &volumes, template.as_ref(), pgpass);
    check_mounts(f, &mounts, &volumes, template.as_ref(), pgpass);
    check_template_mounts(f, template.as_ref(), pgpass);
    if let Some(p) = s.pgpass {
        check_pgpass(f, p, template.as_ref());
    }
    if let Some(config) = parse_config(f, s.config_yaml) {
        check_config_references(f, &config, &mounts);
    }
}

pub fn validate_v1alpha1(obj: &v1alpha1::MCPRegistry, f: &mut Findings) {
    check_name(f, obj.metadata.name.as_deref().unwrap_or_default());
    let spec = Path::root("spec");
    let s = &obj.spec;
    // `false` is the schema's default, filled in before either door looks: only asking for
    // enforcement is worth a word.
    if s.enforce_servers == Some(true) {
        f.warn(
            &spec.child("enforceServers"),
            "deprecated: has no effect (it is kept, but nothing is enforced)",
        );
    }
    check_one_layout(f, s);
    check_layout_fields(f, s);
    // The later releases' layout: judged exactly as at v1beta1.
    if let Some(config_yaml) = &s.config_yaml {
        check_config_layout(
            f,
            &ConfigLayout {
                config_yaml,
                pgpass: s.pgpass_secret_ref.as_ref(),
                pod_template_spec: s.pod_template_spec.as_ref(),
                volumes: s.volumes.as_deref(),
                volume_mounts: s.volume_mounts.as_deref(),
            },
        );
        return;
    }
    for (field, present) in [
        ("volumes", s.volumes.is_some()),
        ("volumeMounts", s.volume_mounts.is_some()),
        ("pgpassSecretRef", s.pgpass_secret_ref.is_some()),
    ] {
        if present {
            f.error(FieldError::forbidden(
                spec.child(field),
                "belongs to the configYAML layout; with source, registries or sources the operator derives the registry pod's volumes itself",
            ));
        }
    }
    if let Some(pts) = &s.pod_template_spec {
        check_decodes::<PodTemplateSpec>(f, &spec.child("podTemplateSpec"), pts, "PodTemplateSpec");
    }
    if let Some(sources) = &s.sources {
        super::registry_views::validate(obj, sources, f);
        return;
    }
    if let Some(items) = &s.registries {
        super::registry_list::validate(obj, items, f);
        return;
    }
    let Some(src) = &s.source else {
        if !obj
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(crate::api::STASH_REGISTRY_CONFIG))
        {
            f.error(FieldError::required(
                spec.child("source"),
                "where the registry data comes from: set sources (ToolHive v0.17.0), registries (v0.6.7 to v0.16), source (up to v0.6.6) or configYAML",
            ));
        }
        return;
    };
    let p = spec.child("source");
    let pairs = [
        ("configmap", "configMapRef", src.config_map_ref.is_some()),
        ("git", "git", src.git.is_some()),
        ("api", "api", src.api.is_some()),
    ];
    for (ty, field, present) in pairs {
        if src.type_ == ty && !present {
            f.error(FieldError::required(
                p.child(field),
                format!("required when type is {ty:?}"),
            ));
        } else if src.type_ != ty && present {
            f.error(FieldError::forbidden(
                p.child(field),
                format!("may only be set when type is {ty:?}"),
            ));
        }
    }
    if let Some(cm) = &src.config_map_ref {
        check_object_name(
            f,
            &p.child("configMapRef.name"),
            cm.name.as_deref().unwrap_or_default(),
        );
        f.rule(
            &p.child("configMapRef.key"),
            &cm.key,
            rules::config_map_key(&cm.key),
        );
    }
    if let Some(g) = &src.git {
        if [&g.branch, &g.tag, &g.commit]
            .iter()
            .filter(|x| x.is_some())
            .count()
            > 1
        {
            f.warn(&p.child("git"), "more than one of branch, tag and commit is set: the first of branch, tag, commit wins");
        }
    }
    f.warn(&spec.child("source"), "deprecated: v1beta1 describes sources in spec.configYAML (the registry server's own config)");
}

/// The four ways v1alpha1 said where the data comes from, in the order ToolHive had them.
const LAYOUTS: &[&str] = &["source", "registries", "sources", "configYAML"];

/// Exactly one of `source`, `registries`, `sources` and `configYAML`: each names a whole
/// layout. `registries` beside `sources` is that layout's list of views, not a layout of its
/// own.
fn check_one_layout(f: &mut Findings, s: &v1alpha1::MCPRegistrySpec) {
    let present = [
        s.source.is_some(),
        s.registries.is_some() && s.sources.is_none(),
        s.sources.is_some(),
        s.config_yaml.is_some(),
    ];
    let set: Vec<&str> = LAYOUTS
        .iter()
        .zip(present)
        .filter_map(|(l, p)| p.then_some(*l))
        .collect();
    if let [first, rest @ ..] = set.as_slice() {
        for extra in rest {
            f.error(FieldError::forbidden(
                Path::root("spec").child(extra),
                format!("a v1alpha1 MCPRegistry describes its data with exactly one of source (ToolHive up to v0.6.6), registries (v0.6.7 to v0.16), sources (v0.17.0, with registries as views) and configYAML (later releases), not both {first} and {extra}"),
            ));
        }
    }
}

/// Fields that only mean something in one layout are refused in the others, where they would
/// be kept but do nothing.
fn check_layout_fields(f: &mut Findings, s: &v1alpha1::MCPRegistrySpec) {
    let spec = Path::root("spec");
    if s.sources.is_none() {
        check_not_views(f, s);
    }
    if s.registries.is_some() || s.sources.is_some() {
        let each = if s.sources.is_some() {
            "with sources each source"
        } else {
            "with registries each registry"
        };
        for (field, present) in [
            ("syncPolicy", s.sync_policy.is_some()),
            ("filter", s.filter.is_some()),
        ] {
            if present {
                f.error(FieldError::forbidden(
                    spec.child(field),
                    format!("belongs to the source layout; {each} has its own {field}"),
                ));
            }
        }
    } else {
        for (field, present, modern) in [
            (
                "databaseConfig",
                s.database_config.is_some(),
                "configYAML's database block and spec.pgpassSecretRef",
            ),
            (
                "authConfig",
                s.auth_config.is_some(),
                "configYAML's auth block",
            ),
        ] {
            if present {
                f.error(FieldError::forbidden(
                    spec.child(field),
                    format!("belongs to the registries layout (ToolHive v0.6.7 to v0.16); with source or configYAML it would do nothing: say it in {modern}"),
                ));
            }
        }
    }
}

/// Without `spec.sources`, the fields ToolHive v0.17.0 added to the typed layout mean nothing:
/// refused, naming the layout they belong to.
fn check_not_views(f: &mut Findings, s: &v1alpha1::MCPRegistrySpec) {
    let spec = Path::root("spec");
    let why = "belongs to the sources layout of ToolHive v0.17.0, and spec.sources is not set";
    let mut fields: Vec<(Path, bool)> =
        vec![(spec.child("telemetryConfig"), s.telemetry_config.is_some())];
    if let Some(db) = &s.database_config {
        let p = spec.child("databaseConfig");
        fields.push((p.child("maxMetaSize"), db.max_meta_size.is_some()));
        fields.push((p.child("dynamicAuth"), db.dynamic_auth.is_some()));
    }
    if let Some(auth) = &s.auth_config {
        let p = spec.child("authConfig");
        fields.push((p.child("publicPaths"), auth.public_paths.is_some()));
        fields.push((p.child("authz"), auth.authz.is_some()));
    }
    for (i, item) in s.registries.iter().flatten().enumerate() {
        let p = spec.child("registries").index(i);
        fields.push((p.child("sources"), item.sources.is_some()));
        fields.push((p.child("claims"), item.claims.is_some()));
    }
    for (p, present) in fields {
        if present {
            f.error(FieldError::forbidden(p.as_str(), why));
        }
    }
}

/// The name becomes the Service `<name>-api`, which must be a DNS-1035 label: at most 63
/// characters, starting with a letter. (Empty: generateName, checked elsewhere.)
fn check_name(f: &mut Findings, name: &str) {
    if name.is_empty() {
        return;
    }
    if name.len() > MAX_NAME_LEN {
        f.error(FieldError::invalid(
            "metadata.name",
            name,
            format!("must be no more than {MAX_NAME_LEN} characters: the registry API's Service is named <name>-api"),
        ));
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) || name.contains('.') {
        f.error(FieldError::invalid(
            "metadata.name",
            name,
            "must start with a lowercase letter and contain no '.': the registry API's Service is named <name>-api, a DNS-1035 label",
        ));
    }
}

/// What the operator mounts into `registry-api` must stay visible: a mount of the pod
/// template's `registry-api` container at `/config` (or on the config file, or on the pgpass
/// file) would hide it, and the server would start from something else than `configYAML`.
fn check_template_mounts(f: &mut Findings, t: Option<&PodTemplateSpec>, pgpass: bool) {
    let Some(spec) = t.and_then(|t| t.spec.as_ref()) else {
        return;
    };
    let mut reserved = vec![
        (
            rules::clean_path(CONFIG_MOUNT),
            "the config the operator mounts at /config",
        ),
        (
            rules::clean_path(CONFIG_FILE),
            "the config file the operator renders from spec.configYAML",
        ),
    ];
    if pgpass {
        reserved.push((
            rules::clean_path(PGPASS_MOUNT),
            "the pgpass file the operator mounts for pgpassSecretRef",
        ));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        if c.name != API_CONTAINER {
            continue;
        }
        for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
            let clean = rules::clean_path(&m.mount_path);
            if let Some((_, what)) = reserved.iter().find(|(p, _)| *p == clean) {
                f.error(FieldError::invalid(
                    format!(
                        "spec.podTemplateSpec.spec.containers[{i}].volumeMounts[{j}].mountPath"
                    ),
                    m.mount_path.as_str(),
                    format!("is reserved: a mount here would hide {what}"),
                ));
            }
        }
    }
}

fn decode_list<T: serde::de::DeserializeOwned>(
    f: &mut Findings,
    path: &Path,
    items: Option<&[Value]>,
    what: &str,
) -> Vec<T> {
    items
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, v)| check_decodes::<T>(f, &path.index(i), v, what))
        .collect()
}

fn template_volumes(t: Option<&PodTemplateSpec>) -> Vec<&Volume> {
    t.and_then(|t| t.spec.as_ref())
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .collect()
}

fn api_container_mounts(t: Option<&PodTemplateSpec>) -> Vec<&VolumeMount> {
    t.and_then(|t| t.spec.as_ref())
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| c.name == API_CONTAINER)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .collect()
}

fn check_reserved_volumes(
    f: &mut Findings,
    volumes: &[Volume],
    t: Option<&PodTemplateSpec>,
    pgpass: bool,
) {
    let mut reserved = vec![CONFIG_VOLUME];
    if pgpass {
        reserved.extend(PGPASS_VOLUMES);
    }
    for (i, v) in volumes.iter().enumerate() {
        if reserved.contains(&v.name.as_str()) {
            f.error(FieldError::invalid(
                Path::root("spec.volumes").index(i).child("name"),
                v.name.as_str(),
                "is reserved for a volume the operator adds",
            ));
        }
    }
    for v in template_volumes(t) {
        if reserved.contains(&v.name.as_str()) {
            f.error(FieldError::invalid(
                "spec.podTemplateSpec.spec.volumes",
                v.name.as_str(),
                "is reserved for a volume the operator adds",
            ));
        }
    }
}

fn check_mounts(
    f: &mut Findings,
    mounts: &[VolumeMount],
    volumes: &[Volume],
    t: Option<&PodTemplateSpec>,
    pgpass: bool,
) {
    let mut taken: HashMap<String, String> = HashMap::new();
    taken.insert(
        rules::clean_path(CONFIG_MOUNT),
        "the operator's config mount".into(),
    );
    if pgpass {
        taken.insert(
            rules::clean_path(PGPASS_MOUNT),
            "the operator's pgpass mount".into(),
        );
    }
    for m in api_container_mounts(t) {
        taken
            .entry(rules::clean_path(&m.mount_path))
            .or_insert_with(|| "the pod template's registry-api container".into());
    }
    let declared: HashSet<&str> = volumes
        .iter()
        .map(|v| v.name.as_str())
        .chain(template_volumes(t).into_iter().map(|v| v.name.as_str()))
        .collect();
    for (i, m) in mounts.iter().enumerate() {
        let p = Path::root("spec.volumeMounts").index(i);
        f.rule(
            &p.child("mountPath"),
            &m.mount_path,
            rules::absolute_path(&m.mount_path),
        );
        let clean = rules::clean_path(&m.mount_path);
        if clean == CONFIG_FILE {
            f.error(FieldError::invalid(
                p.child("mountPath"),
                m.mount_path.as_str(),
                "is reserved: a mount here would replace the config file the operator renders from spec.configYAML",
            ));
        } else if let Some(owner) = taken.get(&clean) {
            f.error(FieldError::invalid(
                p.child("mountPath"),
                m.mount_path.as_str(),
                format!("duplicate mount path: already used by {owner}"),
            ));
        } else {
            taken.insert(clean, p.to_string());
        }
        if !declared.contains(m.name.as_str()) {
            f.error(FieldError::not_found_volume(p.child("name"), &m.name));
        }
    }
}

fn check_pgpass(f: &mut Findings, p: &v1beta1::PgpassSecretRef, t: Option<&PodTemplateSpec>) {
    let path = Path::root("spec.pgpassSecretRef");
    match p.name.as_deref() {
        None | Some("") => f.error(FieldError::required(
            path.child("name"),
            "the Secret holding the pgpass file",
        )),
        Some(n) => check_object_name(f, &path.child("name"), n),
    }
    if p.key.is_empty() {
        f.error(FieldError::required(
            path.child("key"),
            "the key of the pgpass file in the Secret",
        ));
    } else {
        f.rule(&path.child("key"), &p.key, rules::config_map_key(&p.key));
    }
    let inits = t
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.init_containers.as_ref());
    if inits
        .into_iter()
        .flatten()
        .any(|c| c.name == PGPASS_INIT_CONTAINER)
    {
        f.error(FieldError::invalid(
            "spec.podTemplateSpec.spec.initContainers",
            PGPASS_INIT_CONTAINER,
            "is reserved for the init container the operator adds with pgpassSecretRef",
        ));
    }
}

/// Parses `configYAML` and checks it against the registry server's schema.
fn parse_config(f: &mut Findings, text: &str) -> Option<Value> {
    let path = Path::root("spec.configYAML");
    let value: Value = match crate::manifest::parse_yaml_value(text) {
        Ok(v) => v,
        Err(why) => {
            f.error(
                FieldError::invalid(path, Value::Null, format!("not valid YAML: {why}"))
                    .without_value(),
            );
            return None;
        }
    };
    let validator = match &*VALIDATOR {
        Ok(v) => v,
        Err(why) => {
            f.error(
                FieldError::invalid(
                    path,
                    Value::Null,
                    format!("internal error: the registry config schema does not load: {why}"),
                )
                .without_value(),
            );
            return None;
        }
    };
    let mut ok = true;
    for e in validator.iter_errors(&value) {
        ok = false;
        let at = yaml_pointer(&e.instance_path().to_string());
        f.error(
            FieldError::invalid(path.clone(), Value::Null, format!("{at}: {e}")).without_value(),
        );
    }
    ok.then_some(value)
}

/// `/sources/0/file` → `sources[0].file` (how the user reads their YAML).
fn yaml_pointer(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.bytes().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() {
        "(document)".into()
    } else {
        out
    }
}

/// What the config names must exist: file sources inside a mount, views over known sources.
fn check_config_references(f: &mut Findings, config: &Value, mounts: &[VolumeMount]) {
    let path = Path::root("spec.configYAML");
    let empty = Vec::new();
    let sources = config
        .get("sources")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, s) in sources.iter().enumerate() {
        let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(first) = names.insert(name, i) {
            f.error(
                FieldError::invalid(
                    path.clone(),
                    Value::Null,
                    format!("sources[{i}].name: {name:?} duplicates sources[{first}].name"),
                )
                .without_value(),
            );
        }
        if let Some(file) = s
            .get("file")
            .and_then(|x| x.get("path"))
            .and_then(Value::as_str)
        {
            if !mounts
                .iter()
                .any(|m| rules::path_within(file, &m.mount_path))
            {
                let known: Vec<&str> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
                f.error(
                    FieldError::invalid(
                        path.clone(),
                        Value::Null,
                        format!(
                            "sources[{i}].file.path: {file:?} is not inside any of spec.volumeMounts ({}); the registry server would not find it",
                            if known.is_empty() { "none declared".to_string() } else { known.join(", ") }
                        ),
                    )
                    .without_value(),
                );
            }
        }
    }
    let registries = config
        .get("registries")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut reg_names: HashMap<&str, usize> = HashMap::new();
    for (i, r) in registries.iter().enumerate() {
        let rname = r.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(first) = reg_names.insert(rname, i) {
            f.error(
                FieldError::invalid(
                    path.clone(),
                    Value::Null,
                    format!("registries[{i}].name: {rname:?} duplicates registries[{first}].name"),
                )
                .without_value(),
            );
        }
        for (j, src) in r
            .get("sources")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .enumerate()
        {
            let src = src.as_str().unwrap_or_default();
            if !names.contains_key(src) {
                let mut known: Vec<&str> = names.keys().copied().collect();
                known.sort_unstable();
                f.error(
                    FieldError::invalid(
                        path.clone(),
                        Value::Null,
                        format!(
                            "registries[{i}].sources[{j}]: unknown source {src:?}; sources are: {}",
                            known.join(", ")
                        ),
                    )
                    .without_value(),
                );
            }
        }
    }
}
