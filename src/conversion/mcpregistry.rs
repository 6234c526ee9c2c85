//! MCPRegistry: the old layouts of v1alpha1 ⇄ a registry-server `configYAML` plus the pod wiring
//! it needs (v1beta1). Three old layouts are derived: the structured `source` (ToolHive v0.2.17
//! to v0.6.6), the `registries` list (v0.6.7 to v0.16, see [`registry_list`]) and the typed v2
//! `sources` with views (v0.17.0, see [`registry_views`]). Later v1alpha1 releases have the
//! `configYAML` layout themselves: those fields pass through unchanged both ways.

use super::stash::{self, Annotations, ALPHA_STASH_PREFIX, BETA_STASH_PREFIX};
use super::ConversionError;
use super::{registry_list, registry_views};
use serde_json::{json, Map, Value};

/// Fields only the old layouts have.
const ALPHA_ONLY: &[&str] = &[
    "source",
    "syncPolicy",
    "filter",
    "enforceServers",
    "registries",
    "sources",
    "databaseConfig",
    "authConfig",
    "telemetryConfig",
];
/// Fields of v1beta1 a `source` generates (and so need no annotation when it does).
const DERIVED: &[&str] = &["configYAML", "volumes", "volumeMounts"];
/// Fields of v1beta1 the old shape never had.
const BETA_ONLY: &[&str] = &["imagePullSecrets", "pgpassSecretRef"];
/// The one source and view an old object describes.
const SOURCE_NAME: &str = "default";
const DATA_DIR: &str = "/config/registry/default";
const DATA_VOLUME: &str = "registry-data-source-default";

pub fn up(obj: &mut Map<String, Value>) -> Result<(), ConversionError> {
    let mut annotations = Annotations::new();
    let mut kept = stash::take_all(obj, BETA_STASH_PREFIX);
    let name = object_name(obj);
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(layout) = Layout::of(spec) {
            let derived = layout.derive(spec, &name);
            for f in layout.derived_fields() {
                kept.remove(*f); // written at v1beta1 before the old layout was set at v1alpha1
            }
            spec.extend(derived);
        } else {
            // The configYAML layout is v1alpha1 too; what older releases of ours kept in the
            // stash (reading a v1beta1 object at v1alpha1) fills only what the spec lacks.
            restore_missing(spec, &mut kept, DERIVED);
            if !spec.contains_key("configYAML") {
                return Err(ConversionError::Invalid(
                    "spec.source: Required value: a v1alpha1 MCPRegistry needs a source".into(),
                ));
            }
        }
        stash::move_fields(spec, &mut annotations, ALPHA_STASH_PREFIX, ALPHA_ONLY);
        restore_missing(spec, &mut kept, BETA_ONLY);
    }
    if obj
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        == Some("Syncing")
    {
        stash::keep(
            &mut annotations,
            ALPHA_STASH_PREFIX,
            "status.phase",
            Some(&json!("Syncing")),
        );
        if let Some(p) = obj.get_mut("status").and_then(|s| s.get_mut("phase")) {
            *p = json!("Pending");
        }
    }
    stash::merge_annotations(obj, annotations);
    Ok(())
}

pub fn down(obj: &mut Map<String, Value>) {
    let mut annotations = Annotations::new();
    let mut kept = stash::take_all(obj, ALPHA_STASH_PREFIX);
    let phase = kept.remove("status.phase").as_ref().and_then(stash::decode);
    let name = object_name(obj);
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let mut old = Map::new();
        stash::restore_fields(&mut old, &mut kept, ALPHA_ONLY);
        if let Some(t) = spec.get("podTemplateSpec") {
            // The registries layout leaves the template's own mounts alone: derive with it.
            old.insert("podTemplateSpec".into(), t.clone());
        }
        let layout = Layout::of(&old).filter(|l| unchanged_since(*l, &old, spec, &name));
        old.remove("podTemplateSpec");
        if let Some(layout) = layout {
            // Written in an old layout and not edited at v1beta1 since: given back in it; what
            // the old layout has no place for is kept for the way back.
            for f in layout.derived_fields() {
                spec.remove(*f);
            }
            spec.extend(old);
            stash::move_fields(spec, &mut annotations, BETA_STASH_PREFIX, BETA_ONLY);
        } else if let Some(e) = old.remove("enforceServers") {
            // Born (or edited) at v1beta1: the configYAML layout, as it is.
            spec.insert("enforceServers".into(), e);
        }
    }
    if phase == Some(json!("Syncing"))
        && obj.get("status").and_then(|s| s.get("phase")) == Some(&json!("Pending"))
    {
        if let Some(p) = obj.get_mut("status").and_then(|s| s.get_mut("phase")) {
            *p = json!("Syncing");
        }
    }
    stash::merge_annotations(obj, annotations);
}

/// The old layout a spec (or the stash) describes its data in.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Layout {
    /// One structured `source` (+ `syncPolicy`, `filter`).
    Source,
    /// The `registries` list (+ `databaseConfig`, `authConfig`).
    Registries,
    /// The typed v2 `sources`, with `registries` as views (+ `databaseConfig`, `authConfig`,
    /// `telemetryConfig`).
    Views,
}

impl Layout {
    fn of(spec: &Map<String, Value>) -> Option<Self> {
        let set = |f: &str| spec.get(f).is_some_and(|v| !v.is_null());
        if set("source") {
            Some(Self::Source)
        } else if set("sources") {
            // Before `registries`: with `sources`, the list holds views.
            Some(Self::Views)
        } else if set("registries") {
            Some(Self::Registries)
        } else {
            None
        }
    }

    fn derived_fields(self) -> &'static [&'static str] {
        match self {
            Self::Source => DERIVED,
            Self::Registries | Self::Views => registry_list::DERIVED,
        }
    }

    fn derive(self, old: &Map<String, Value>, name: &str) -> Map<String, Value> {
        match self {
            Self::Source => derive(old),
            Self::Registries => registry_list::derive(old, name),
            Self::Views => registry_views::derive(old, name),
        }
    }
}

/// True when the v1beta1 fields the old layout stands for are exactly what it derives (a
/// field it derives nothing for is absent too): nothing was edited at v1beta1 since.
fn unchanged_since(
    layout: Layout,
    old: &Map<String, Value>,
    spec: &Map<String, Value>,
    name: &str,
) -> bool {
    let derived = layout.derive(old, name);
    layout
        .derived_fields()
        .iter()
        .all(|f| spec.get(*f) == derived.get(*f))
}

fn object_name(obj: &Map<String, Value>) -> String {
    obj.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Takes back kept fields the spec does not have (the spec's own value wins).
fn restore_missing(spec: &mut Map<String, Value>, kept: &mut Map<String, Value>, fields: &[&str]) {
    for f in fields {
        if spec.contains_key(*f) {
            kept.remove(*f);
        }
    }
    stash::restore_fields(spec, kept, fields);
}

/// The v1beta1 fields an old `source` (+ `syncPolicy`, `filter`) stands for.
fn derive(old: &Map<String, Value>) -> Map<String, Value> {
    let src = old.get("source").cloned().unwrap_or_default();
    let mut source = Map::new();
    source.insert("name".into(), json!(SOURCE_NAME));
    source.insert(
        "format".into(),
        src.get("format").cloned().unwrap_or(json!("toolhive")),
    );
    let mut out = Map::new();
    match src
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("configmap")
    {
        "git" => {
            let g = src.get("git").cloned().unwrap_or_default();
            let mut git = Map::new();
            git.insert(
                "repository".into(),
                g.get("repository").cloned().unwrap_or(json!("")),
            );
            // The old operator used the first of branch, tag, commit that was set.
            if let Some((k, v)) = ["branch", "tag", "commit"]
                .iter()
                .find_map(|k| g.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v.clone())))
            {
                git.insert(k.into(), v);
            }
            git.insert(
                "path".into(),
                g.get("path").cloned().unwrap_or(json!("registry.json")),
            );
            source.insert("git".into(), Value::Object(git));
        }
        "api" => {
            let endpoint = src.pointer("/api/endpoint").cloned().unwrap_or(json!(""));
            source.insert("api".into(), json!({ "endpoint": endpoint }));
        }
        _ => {
            source.insert(
                "file".into(),
                json!({ "path": format!("{DATA_DIR}/registry.json") }),
            );
            let cm = src.get("configMapRef").cloned().unwrap_or_default();
            let mut config_map = json!({
                "name": cm.get("name").cloned().unwrap_or(json!("")),
                "items": [{ "key": cm.get("key").cloned().unwrap_or(json!("registry.json")), "path": "registry.json" }],
            });
            if let Some(o) = cm.get("optional").filter(|o| !o.is_null()) {
                config_map["optional"] = o.clone();
            }
            out.insert(
                "volumes".into(),
                json!([{ "name": DATA_VOLUME, "configMap": config_map }]),
            );
            out.insert(
                "volumeMounts".into(),
                json!([{ "name": DATA_VOLUME, "mountPath": DATA_DIR, "readOnly": true }]),
            );
        }
    }
    if let Some(i) = old.get("syncPolicy").and_then(|s| s.get("interval")) {
        source.insert("syncPolicy".into(), json!({ "interval": i }));
    }
    if let Some(f) = old.get("filter").filter(|f| !f.is_null()) {
        source.insert("filter".into(), f.clone());
    }
    let config = json!({
        "sources": [Value::Object(source)],
        "registries": [{ "name": SOURCE_NAME, "sources": [SOURCE_NAME] }],
    });
    out.insert(
        "configYAML".into(),
        Value::String(crate::canonical::to_yaml(&config)),
    );
    out
}
