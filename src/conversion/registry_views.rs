//! MCPRegistry's typed v2 layout (ToolHive v0.17.0): `sources`, `registries` as views over
//! them, and typed `databaseConfig` / `authConfig` / `telemetryConfig`. That operator wrote
//! each typed field into the v2 config key of the same name, so the conversion to v1beta1 is
//! nearly word for word; what it adds is what that operator did to the pod (ConfigMap and
//! Secret mounts, the generated pgpass Secret), shared with the older list layout
//! ([`registry_list`]). Pure, like it: `down` re-derives to see whether anything was edited.

use super::registry_list::{self as list, database_of, git_of, non_empty, present, str_at, Wiring};
use serde_json::{json, Map, Value};

/// The v1beta1 fields the typed v2 spec (and the `podTemplateSpec` whose mounts it leaves
/// alone) stands for, for the registry `name`.
pub fn derive(old: &Map<String, Value>, name: &str) -> Map<String, Value> {
    let mut wiring = Wiring::new(list::template_mount_paths(old.get("podTemplateSpec")));
    let sources: Vec<Value> = list_at(old, "sources")
        .iter()
        .map(|s| Value::Object(source_of(s, &mut wiring)))
        .collect();
    let views: Vec<Value> = list_at(old, "registries").iter().map(view_of).collect();
    let database = old.get("databaseConfig").filter(|d| !d.is_null());
    let mut config = json!({
        "sources": sources,
        "registries": views,
        "database": database_block(database),
        "auth": auth_block(old.get("authConfig"), &mut wiring),
    });
    if let Some(t) = present_in(old, "telemetryConfig") {
        config["telemetry"] = telemetry_block(t);
    }
    let mut out = Map::new();
    out.insert(
        "configYAML".into(),
        Value::String(crate::canonical::to_yaml(&config)),
    );
    wiring.write_into(&mut out);
    if database.is_some() {
        out.insert(
            "pgpassSecretRef".into(),
            json!({"name": list::pgpass_secret_name(name), "key": list::PGPASS_KEY}),
        );
    }
    out
}

fn list_at<'a>(old: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    old.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn present_in<'a>(old: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    old.get(key).filter(|v| !v.is_null())
}

/// One `sources[]` entry: the typed source under its own key, except `configMapRef` and `url`,
/// which the server reads as a `file` (mounted, or fetched).
fn source_of(src: &Value, wiring: &mut Wiring) -> Map<String, Value> {
    let name = str_at(src, "name");
    let mut s = Map::new();
    s.insert("name".into(), json!(name));
    s.insert(
        "format".into(),
        json!(non_empty(src, "format").unwrap_or("toolhive")),
    );
    if let Some(claims) = non_empty_object(src.get("claims")) {
        s.insert("claims".into(), claims.clone());
    }
    let mut syncs = true;
    if let Some(cm) = present(src, "configMapRef") {
        s.insert("file".into(), list::config_map_file(name, cm, wiring));
    } else if let Some(git) = present(src, "git") {
        s.insert("git".into(), Value::Object(git_of(git, wiring)));
    } else if let Some(endpoint) = src.pointer("/api/endpoint") {
        s.insert("api".into(), json!({"endpoint": endpoint}));
    } else if let Some(url) = present(src, "url") {
        let mut file = json!({"url": url.get("endpoint").cloned().unwrap_or(json!(""))});
        if let Some(t) = non_empty(url, "timeout") {
            file["timeout"] = json!(t);
        }
        s.insert("file".into(), file);
    } else if present(src, "managed").is_some() {
        s.insert("managed".into(), json!({}));
        syncs = false;
    } else if let Some(k) = present(src, "kubernetes") {
        let mut kube = json!({});
        if let Some(ns) = k
            .get("namespaces")
            .filter(|n| n.as_array().is_some_and(|a| !a.is_empty()))
        {
            kube["namespaces"] = ns.clone();
        }
        s.insert("kubernetes".into(), kube);
        syncs = false;
    }
    // Managed and cluster sources are not synced from anywhere: the old operator dropped
    // these two for them.
    if syncs {
        if let Some(interval) = src.pointer("/syncPolicy/interval") {
            s.insert("syncPolicy".into(), json!({ "interval": interval }));
        }
        if let Some(filter) = present(src, "filter") {
            s.insert("filter".into(), filter.clone());
        }
    }
    s
}

fn view_of(view: &Value) -> Value {
    let mut v = json!({
        "name": str_at(view, "name"),
        "sources": view.get("sources").cloned().unwrap_or(json!([])),
    });
    if let Some(claims) = non_empty_object(view.get("claims")) {
        v["claims"] = claims.clone();
    }
    v
}

/// An object with at least one key (an empty one was left out of the config).
fn non_empty_object(v: Option<&Value>) -> Option<&Value> {
    v.filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
}

/// The older layout's `database:` block plus the two settings v0.17.0 added.
fn database_block(db: Option<&Value>) -> Value {
    let mut out = database_of(db);
    let db = db.unwrap_or(&Value::Null);
    if let Some(size) = db.get("maxMetaSize").filter(|v| v.is_number()) {
        out["maxMetaSize"] = size.clone();
    }
    if let Some(iam) = db
        .pointer("/dynamicAuth/awsRdsIam")
        .filter(|v| !v.is_null())
    {
        let mut iam_out = json!({});
        if let Some(region) = non_empty(iam, "region") {
            iam_out["region"] = json!(region);
        }
        out["dynamicAuth"] = json!({ "awsRdsIam": iam_out });
    }
    out
}

/// The older layout's `auth:` block plus `publicPaths` and `authz`.
fn auth_block(auth: Option<&Value>, wiring: &mut Wiring) -> Value {
    let mut out = list::auth_of(auth, wiring);
    let auth = auth.unwrap_or(&Value::Null);
    if let Some(paths) = auth
        .get("publicPaths")
        .filter(|p| p.as_array().is_some_and(|a| !a.is_empty()))
    {
        out["publicPaths"] = paths.clone();
    }
    if let Some(authz) = present(auth, "authz") {
        let mut roles = Map::new();
        for role in [
            "superAdmin",
            "manageSources",
            "manageRegistries",
            "manageEntries",
        ] {
            let entries: Vec<Value> = authz
                .pointer(&format!("/roles/{role}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|e| e.is_object())
                .cloned()
                .collect();
            if !entries.is_empty() {
                roles.insert(role.into(), Value::Array(entries));
            }
        }
        out["authz"] = if roles.is_empty() {
            json!({})
        } else {
            json!({ "roles": roles })
        };
    }
    out
}

/// `telemetry:`: `enabled` always, the rest when set; the sampling rate as a number.
fn telemetry_block(t: &Value) -> Value {
    let flag = |v: &Value, k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut out = json!({ "enabled": flag(t, "enabled") });
    for k in ["serviceName", "serviceVersion", "endpoint"] {
        if let Some(v) = non_empty(t, k) {
            out[k] = json!(v);
        }
    }
    if flag(t, "insecure") {
        out["insecure"] = json!(true);
    }
    if let Some(tracing) = present(t, "tracing") {
        let mut tr = json!({ "enabled": flag(tracing, "enabled") });
        if let Some(s) = tracing.get("sampling").and_then(Value::as_str) {
            // A rate that is no number stays a string: the stored config's schema then says so.
            tr["sampling"] = sampling_number(s).map_or_else(|| json!(s), |n| json!(n));
        }
        out["tracing"] = tr;
    }
    if let Some(metrics) = present(t, "metrics") {
        out["metrics"] = json!({ "enabled": flag(metrics, "enabled") });
    }
    out
}

/// The sampling rate as upstream read it (Go's `ParseFloat`), when it is a finite number.
pub fn sampling_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn config(out: &Map<String, Value>) -> Value {
        serde_yaml::from_str(out["configYAML"].as_str().unwrap()).unwrap()
    }

    /// Every source type lands under the key the registry server reads it from.
    #[test]
    fn each_source_type_has_its_key() {
        let old = spec(json!({
            "sources": [
                {"name": "cm", "configMapRef": {"name": "data", "key": "r.json"}, "claims": {"team": "a"}},
                {"name": "web", "url": {"endpoint": "https://r.example.com/r.json", "timeout": "10s"},
                 "syncPolicy": {"interval": "1h"}},
                {"name": "mine", "managed": {}, "syncPolicy": {"interval": "1h"}},
                {"name": "cluster", "kubernetes": {"namespaces": ["a"]}, "filter": {"names": {"include": ["x"]}}},
            ],
            "registries": [{"name": "all", "sources": ["cm", "web"], "claims": {"team": ["a", "b"]}}],
        }));
        let out = derive(&old, "reg");
        let c = config(&out);
        assert_eq!(
            c["sources"][0]["file"]["path"],
            "/config/registry/cm/registry.json"
        );
        assert_eq!(c["sources"][0]["claims"], json!({"team": "a"}));
        assert_eq!(
            c["sources"][1]["file"],
            json!({"url": "https://r.example.com/r.json", "timeout": "10s"})
        );
        assert_eq!(c["sources"][1]["syncPolicy"]["interval"], "1h");
        assert_eq!(
            c["sources"][2],
            json!({"name": "mine", "format": "toolhive", "managed": {}})
        );
        assert_eq!(
            c["sources"][3],
            json!({"name": "cluster", "format": "toolhive", "kubernetes": {"namespaces": ["a"]}})
        );
        assert_eq!(c["registries"][0]["claims"], json!({"team": ["a", "b"]}));
        assert_eq!(c["auth"], json!({"mode": "anonymous"}));
        assert_eq!(out["volumeMounts"][0]["mountPath"], "/config/registry/cm");
        assert!(!out.contains_key("pgpassSecretRef"));
    }

    /// Telemetry's sampling rate becomes a number; database additions and authz pass through.
    #[test]
    fn typed_settings_are_written_as_config() {
        let old = spec(json!({
            "sources": [{"name": "a", "api": {"endpoint": "https://a.example.com"}}],
            "registries": [{"name": "a", "sources": ["a"]}],
            "telemetryConfig": {"enabled": true, "endpoint": "otel:4318", "insecure": false,
                "tracing": {"enabled": true, "sampling": "0.25"}, "metrics": {"enabled": false}},
            "databaseConfig": {"maxMetaSize": 1024, "dynamicAuth": {"awsRdsIam": {"region": "detect"}},
                "dbAppUserPasswordSecretRef": {"name": "a", "key": "p"},
                "dbMigrationUserPasswordSecretRef": {"name": "m", "key": "p"}},
            "authConfig": {"mode": "oauth", "publicPaths": ["/metrics"],
                "oauth": {"providers": [{"name": "p", "issuerUrl": "https://i.example.com", "audience": "x"}]},
                "authz": {"roles": {"superAdmin": [{"group": "admins"}], "manageEntries": []}}},
        }));
        let out = derive(&old, "reg");
        let c = config(&out);
        assert_eq!(
            c["telemetry"],
            json!({"enabled": true, "endpoint": "otel:4318",
                "tracing": {"enabled": true, "sampling": 0.25}, "metrics": {"enabled": false}})
        );
        assert_eq!(c["database"]["maxMetaSize"], 1024);
        assert_eq!(
            c["database"]["dynamicAuth"],
            json!({"awsRdsIam": {"region": "detect"}})
        );
        assert_eq!(c["database"]["host"], "postgres");
        assert_eq!(c["auth"]["publicPaths"], json!(["/metrics"]));
        assert_eq!(
            c["auth"]["authz"],
            json!({"roles": {"superAdmin": [{"group": "admins"}]}})
        );
        assert_eq!(out["pgpassSecretRef"]["name"], "reg-db-pgpass");
    }

    #[test]
    fn sampling_is_read_like_go() {
        assert_eq!(sampling_number("0.05"), Some(0.05));
        assert_eq!(sampling_number("1"), Some(1.0));
        assert_eq!(sampling_number(" 1"), None);
        assert_eq!(sampling_number("NaN"), None);
        assert_eq!(sampling_number("half"), None);
    }

    /// Nothing but garbage: still an answer, never a panic.
    #[test]
    fn garbage_in_does_not_panic() {
        for v in [
            json!({"sources": 3}),
            json!({"sources": [null, 1, {"name": 2, "url": "x", "kubernetes": []}], "registries": [1]}),
            json!({"sources": [], "telemetryConfig": {"tracing": {"sampling": 3}}, "authConfig": {"authz": 1}}),
        ] {
            let out = derive(&spec(v), "");
            assert!(out.contains_key("configYAML"));
        }
    }
}
