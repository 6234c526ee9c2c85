//! MCPRegistry: the old structured `source` (v1alpha1 up to ToolHive v0.14) ⇄ a registry-server
//! `configYAML` plus the volumes a ConfigMap source needs (v1beta1). Later v1alpha1 releases
//! have the `configYAML` layout themselves: those fields pass through unchanged both ways.

use super::stash::{self, Annotations, ALPHA_STASH_PREFIX, BETA_STASH_PREFIX};
use super::ConversionError;
use serde_json::{json, Map, Value};

/// Fields only the old shape has.
const ALPHA_ONLY: &[&str] = &["source", "syncPolicy", "filter", "enforceServers"];
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
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        if spec.get("source").is_some_and(|s| !s.is_null()) {
            let derived = derive(spec);
            for f in DERIVED {
                kept.remove(*f); // written at v1beta1 before a source was set at v1alpha1
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
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let mut old = Map::new();
        stash::restore_fields(&mut old, &mut kept, ALPHA_ONLY);
        let consistent =
            old.contains_key("source") && derive(&old).iter().all(|(k, v)| spec.get(k) == Some(v));
        if consistent {
            // Written with a source: given back with it; what the old layout has no place
            // for is kept for the way back.
            for f in DERIVED {
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
        Value::String(serde_yaml::to_string(&config).unwrap_or_default()),
    );
    out
}
