//! MCPRegistry's `registries` layout (ToolHive v0.6.7 to v0.16): what a list of registries, a
//! `databaseConfig` and an `authConfig` stand for at v1beta1. The old operator turned them into
//! the registry server's config file and wired the pod itself (data volumes, Secret mounts, a
//! generated pgpass Secret); v1beta1 says all of that in the spec, so the conversion writes it
//! out: the v2 `configYAML`, `volumes` + `volumeMounts` at the paths that config names, and a
//! `pgpassSecretRef`. Pure: the same old fields always give the same v1beta1 fields, which is
//! what lets `down` tell whether they were edited at v1beta1 since.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// The source the old operator put before the user's own: the cluster's MCPServers.
const CLUSTER_SOURCE: &str = "default";
/// Its name when a registry of the list is already called `default`: the v2 config needs
/// unique names, and the user's registry keeps the name clients address it by.
const CLUSTER_SOURCE_FALLBACK: &str = "kubernetes";
/// Registry data (ConfigMap and PVC sources) is mounted at `<DATA_ROOT>/<registry>`.
pub const DATA_ROOT: &str = "/config/registry";
/// Secrets (git passwords, OAuth client secrets and tokens) at `<SECRETS_ROOT>/<secret>`.
pub const SECRETS_ROOT: &str = "/secrets";
/// CA bundles of OAuth providers at `<CERTS_ROOT>/<configmap>`.
pub const CERTS_ROOT: &str = "/config/certs";
pub const DATA_VOLUME_PREFIX: &str = "registry-data-source-";
pub const GIT_AUTH_VOLUME_PREFIX: &str = "git-auth-";
pub const OAUTH_SECRET_VOLUME_PREFIX: &str = "oauth-secret-";
pub const OAUTH_CA_VOLUME_PREFIX: &str = "oauth-ca-";
/// The key of the pgpass file in the Secret `databaseConfig` stands for.
pub const PGPASS_KEY: &str = ".pgpass";
/// The file name a ConfigMap source's key is mounted as.
pub(super) const REGISTRY_FILE: &str = "registry.json";
/// Key names the old operator assumed when a reference left the key empty.
const DEFAULT_SECRET_KEY: &str = "clientSecret";
const DEFAULT_CA_KEY: &str = "ca.crt";
/// The container of the registry pod the config is read in.
const API_CONTAINER: &str = "registry-api";

/// The fields of v1beta1 the `registries` layout stands for (all of them, so an edit of any at
/// v1beta1 is seen).
pub const DERIVED: &[&str] = &["configYAML", "volumes", "volumeMounts", "pgpassSecretRef"];

/// The Secret holding the pgpass file of registry `name`: the old operator generated it from
/// the two password references; at v1beta1 it is the user's to create under that name.
pub fn pgpass_secret_name(name: &str) -> String {
    format!("{name}-db-pgpass")
}

/// The name of the cluster's own source: `default`, unless a registry of the list has it.
pub fn cluster_source_name(items: &[Value]) -> String {
    let taken: HashSet<&str> = items.iter().map(|i| str_at(i, "name")).collect();
    [CLUSTER_SOURCE, CLUSTER_SOURCE_FALLBACK]
        .into_iter()
        .map(str::to_string)
        .chain((1..).map(|i| format!("{CLUSTER_SOURCE_FALLBACK}-{i}")))
        .find(|n| !taken.contains(n.as_str()))
        .unwrap_or_default()
}

/// The v1beta1 fields the old spec (`registries`, `databaseConfig`, `authConfig`, and the
/// `podTemplateSpec` whose mounts it leaves alone) stands for, for the registry `name`.
pub fn derive(old: &Map<String, Value>, name: &str) -> Map<String, Value> {
    let items = old
        .get("registries")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut wiring = Wiring::new(template_mount_paths(old.get("podTemplateSpec")));
    let cluster = cluster_source_name(items);
    let mut sources = vec![json!({"name": cluster, "format": "upstream", "kubernetes": {}})];
    let mut views = vec![json!({"name": cluster, "sources": [cluster]})];
    for item in items {
        let item_name = str_at(item, "name");
        sources.push(Value::Object(source_of(item, &mut wiring)));
        // The old config made every item a registry of its own: one view per source.
        views.push(json!({"name": item_name, "sources": [item_name]}));
    }
    let database = old.get("databaseConfig").filter(|d| !d.is_null());
    let config = json!({
        "sources": sources,
        "registries": views,
        "database": database_of(database),
        "auth": auth_of(old.get("authConfig"), &mut wiring),
    });
    let mut out = Map::new();
    out.insert(
        "configYAML".into(),
        Value::String(crate::canonical::to_yaml(&config)),
    );
    wiring.write_into(&mut out);
    if database.is_some() {
        out.insert(
            "pgpassSecretRef".into(),
            json!({"name": pgpass_secret_name(name), "key": PGPASS_KEY}),
        );
    }
    out
}

/// One `sources[]` entry of the v2 config for a registry of the list.
fn source_of(item: &Value, wiring: &mut Wiring) -> Map<String, Value> {
    let name = str_at(item, "name");
    let mut s = Map::new();
    s.insert("name".into(), json!(name));
    s.insert(
        "format".into(),
        json!(non_empty(item, "format").unwrap_or("toolhive")),
    );
    let dir = format!("{DATA_ROOT}/{name}");
    if let Some(cm) = present(item, "configMapRef") {
        s.insert("file".into(), config_map_file(name, cm, wiring));
    } else if let Some(git) = present(item, "git") {
        s.insert("git".into(), Value::Object(git_of(git, wiring)));
    } else if let Some(endpoint) = item.pointer("/api/endpoint") {
        s.insert("api".into(), json!({"endpoint": endpoint}));
    } else if let Some(pvc) = present(item, "pvcRef") {
        let file = non_empty(pvc, "path").unwrap_or(REGISTRY_FILE);
        s.insert("file".into(), json!({"path": format!("{dir}/{file}")}));
        wiring.add(
            volume_name(DATA_VOLUME_PREFIX, name),
            json!({"persistentVolumeClaim": {"claimName": str_at(pvc, "claimName"), "readOnly": true}}),
            dir,
        );
    }
    if let Some(interval) = item.pointer("/syncPolicy/interval") {
        s.insert("syncPolicy".into(), json!({ "interval": interval }));
    }
    if let Some(filter) = present(item, "filter") {
        s.insert("filter".into(), filter.clone());
    }
    s
}

/// A source's registry data from a ConfigMap key: the ConfigMap mounted read-only as
/// `<data root>/<source>/registry.json`; returns the `file:` block naming it.
pub(super) fn config_map_file(name: &str, cm: &Value, wiring: &mut Wiring) -> Value {
    let dir = format!("{DATA_ROOT}/{name}");
    let file = json!({"path": format!("{dir}/{REGISTRY_FILE}")});
    let mut config_map = json!({
        "name": str_at(cm, "name"),
        "items": [{"key": str_at(cm, "key"), "path": REGISTRY_FILE}],
    });
    if let Some(o) = present(cm, "optional") {
        config_map["optional"] = o.clone();
    }
    wiring.add(
        volume_name(DATA_VOLUME_PREFIX, name),
        json!({"configMap": config_map}),
        dir,
    );
    file
}

pub(super) fn git_of(g: &Value, wiring: &mut Wiring) -> Map<String, Value> {
    let mut git = Map::new();
    git.insert("repository".into(), json!(str_at(g, "repository")));
    // The old operator used the first of branch, tag, commit that was set.
    if let Some(k) = ["branch", "tag", "commit"]
        .into_iter()
        .find(|k| non_empty(g, k).is_some())
    {
        git.insert(k.into(), json!(str_at(g, k)));
    }
    git.insert(
        "path".into(),
        json!(non_empty(g, "path").unwrap_or(REGISTRY_FILE)),
    );
    if let Some(auth) = present(g, "auth") {
        let secret = auth.get("passwordSecretRef").unwrap_or(&Value::Null);
        let file = wiring.secret_file(secret, "", SecretUse::Git);
        git.insert(
            "auth".into(),
            json!({"username": str_at(auth, "username"), "passwordFile": file}),
        );
    }
    git
}

/// The `database:` block: always written (the old operator always wrote it), the old
/// defaults for what is not set. An explicit value is kept as given, even a 0 the old operator
/// read as "unset": the schema's own defaults fill what was left out.
pub(super) fn database_of(db: Option<&Value>) -> Value {
    let db = db.unwrap_or(&Value::Null);
    let text = |k: &str, default: &str| json!(non_empty(db, k).unwrap_or(default));
    let number =
        |k: &str, default: i64| json!(db.get(k).and_then(Value::as_i64).unwrap_or(default));
    json!({
        "host": text("host", "postgres"),
        "port": number("port", 5432),
        "user": text("user", "db_app"),
        "migrationUser": text("migrationUser", "db_migrator"),
        "database": text("database", "registry"),
        "sslMode": text("sslMode", "prefer"),
        "maxOpenConns": number("maxOpenConns", 10),
        "maxIdleConns": number("maxIdleConns", 2),
        "connMaxLifetime": text("connMaxLifetime", "30m"),
    })
}

/// The `auth:` block: anonymous unless the mode says oauth (no block meant anonymous too); the
/// OAuth settings only with mode oauth, as the old operator read them.
pub(super) fn auth_of(auth: Option<&Value>, wiring: &mut Wiring) -> Value {
    let auth = auth.unwrap_or(&Value::Null);
    if auth.get("mode").and_then(Value::as_str) != Some("oauth") {
        return json!({"mode": "anonymous"});
    }
    let mut out = json!({"mode": "oauth"});
    let Some(oauth) = present(auth, "oauth") else {
        return out;
    };
    let mut o = Map::new();
    for k in ["resourceUrl", "realm"] {
        if let Some(v) = non_empty(oauth, k) {
            o.insert(k.into(), json!(v));
        }
    }
    if let Some(scopes) = oauth
        .get("scopesSupported")
        .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    {
        o.insert("scopesSupported".into(), scopes.clone());
    }
    let providers: Vec<Value> = oauth
        .get("providers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| Value::Object(provider_of(p, wiring)))
        .collect();
    o.insert("providers".into(), json!(providers));
    out["oauth"] = Value::Object(o);
    out
}

fn provider_of(p: &Value, wiring: &mut Wiring) -> Map<String, Value> {
    let mut out = Map::new();
    for k in ["name", "issuerUrl", "audience"] {
        out.insert(k.into(), json!(str_at(p, k)));
    }
    for k in ["jwksUrl", "clientId", "introspectionUrl"] {
        if let Some(v) = non_empty(p, k) {
            out.insert(k.into(), json!(v));
        }
    }
    if let Some(secret) = present(p, "clientSecretRef") {
        let file = wiring.secret_file(secret, DEFAULT_SECRET_KEY, SecretUse::OAuth);
        out.insert("clientSecretFile".into(), json!(file));
    }
    // A path given outright wins over a reference, as it did.
    if let Some(path) = non_empty(p, "caCertPath") {
        out.insert("caCertPath".into(), json!(path));
    } else if let Some(cm) = present(p, "caCertRef") {
        out.insert("caCertPath".into(), json!(wiring.ca_file(cm)));
    }
    if let Some(path) = non_empty(p, "authTokenFile") {
        out.insert("authTokenFile".into(), json!(path));
    } else if let Some(secret) = present(p, "authTokenRef") {
        let file = wiring.secret_file(secret, DEFAULT_SECRET_KEY, SecretUse::OAuth);
        out.insert("authTokenFile".into(), json!(file));
    }
    if p.get("allowPrivateIP").and_then(Value::as_bool) == Some(true) {
        out.insert("allowPrivateIP".into(), json!(true));
    }
    out
}

/// What a Secret is mounted for: its volume is named after its first purpose among git
/// credentials (the old operator's `git-auth-<secret>`) and OAuth files.
#[derive(Clone, Copy, PartialEq)]
enum SecretUse {
    Git,
    OAuth,
}

/// A Secret or ConfigMap mounted whole-directory, with the keys the config reads from it.
struct KeyedMount {
    object: String,
    keys: Vec<String>,
    git: bool,
}

/// The volumes and mounts the config needs, in the order the config names them; a path the
/// pod template's `registry-api` container already mounts is left to it (before v1beta1 the
/// user had to mount OAuth files there, and that mount keeps working).
pub(super) struct Wiring {
    template_paths: HashSet<String>,
    volumes: Vec<Value>,
    mounts: Vec<Value>,
    secrets: Vec<KeyedMount>,
    cas: Vec<KeyedMount>,
}

impl Wiring {
    pub(super) fn new(template_paths: HashSet<String>) -> Self {
        Self {
            template_paths,
            volumes: Vec::new(),
            mounts: Vec::new(),
            secrets: Vec::new(),
            cas: Vec::new(),
        }
    }

    /// A volume mounted read-only at `path` (unless the pod template mounts that path).
    pub(super) fn add(&mut self, volume: String, source: Value, path: String) {
        if self.template_paths.contains(trim_slash(&path)) {
            return;
        }
        let mut v = json!({ "name": volume });
        if let (Some(v), Value::Object(s)) = (v.as_object_mut(), source) {
            v.extend(s);
        }
        self.volumes.push(v);
        self.mounts
            .push(json!({"name": volume, "mountPath": path, "readOnly": true}));
    }

    /// The file a Secret key is read from, `/secrets/<secret>/<key>`; the Secret is mounted.
    fn secret_file(&mut self, selector: &Value, default_key: &str, use_: SecretUse) -> String {
        let (secret, key) = name_and_key(selector, default_key);
        note_key(&mut self.secrets, &secret, &key, use_ == SecretUse::Git);
        format!("{SECRETS_ROOT}/{secret}/{key}")
    }

    /// The file a CA ConfigMap key is read from, `/config/certs/<configmap>/<key>`.
    fn ca_file(&mut self, selector: &Value) -> String {
        let (cm, key) = name_and_key(selector, DEFAULT_CA_KEY);
        note_key(&mut self.cas, &cm, &key, false);
        format!("{CERTS_ROOT}/{cm}/{key}")
    }

    pub(super) fn write_into(mut self, out: &mut Map<String, Value>) {
        for s in std::mem::take(&mut self.secrets) {
            let prefix = if s.git {
                GIT_AUTH_VOLUME_PREFIX
            } else {
                OAUTH_SECRET_VOLUME_PREFIX
            };
            let items = key_items(&s.keys);
            self.add(
                volume_name(prefix, &s.object),
                json!({"secret": {"secretName": s.object, "items": items}}),
                format!("{SECRETS_ROOT}/{}", s.object),
            );
        }
        for c in std::mem::take(&mut self.cas) {
            let items = key_items(&c.keys);
            self.add(
                volume_name(OAUTH_CA_VOLUME_PREFIX, &c.object),
                json!({"configMap": {"name": c.object, "items": items}}),
                format!("{CERTS_ROOT}/{}", c.object),
            );
        }
        if !self.volumes.is_empty() {
            out.insert("volumes".into(), Value::Array(self.volumes));
            out.insert("volumeMounts".into(), Value::Array(self.mounts));
        }
    }
}

/// `<prefix><name>` as the old operator named its volumes, when that is a volume name (a
/// DNS-1123 label); otherwise a label made from it, with a digest of the name so that two
/// names never meet (Secret and ConfigMap names may have dots and be 253 characters long).
pub fn volume_name(prefix: &str, name: &str) -> String {
    let plain = format!("{prefix}{name}");
    if is_label(&plain) {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let room = LABEL_MAX - prefix.len() - DIGEST_CHARS - 1;
    let body: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(room)
        .collect();
    let body = body.trim_matches('-');
    let sep = if body.is_empty() { "" } else { "-" };
    format!("{prefix}{body}{sep}{}", &digest[..DIGEST_CHARS])
}

const LABEL_MAX: usize = 63;
const DIGEST_CHARS: usize = 8;

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() <= LABEL_MAX
        && !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn note_key(list: &mut Vec<KeyedMount>, object: &str, key: &str, git: bool) {
    match list.iter_mut().find(|m| m.object == object) {
        Some(m) => {
            m.git |= git;
            if !m.keys.iter().any(|k| k == key) {
                m.keys.push(key.to_string());
            }
        }
        None => list.push(KeyedMount {
            object: object.to_string(),
            keys: vec![key.to_string()],
            git,
        }),
    }
}

/// Each key mounted as a file of its own name.
fn key_items(keys: &[String]) -> Vec<Value> {
    keys.iter().map(|k| json!({"key": k, "path": k})).collect()
}

fn name_and_key(selector: &Value, default_key: &str) -> (String, String) {
    let key = non_empty(selector, "key").unwrap_or(default_key);
    (str_at(selector, "name").to_string(), key.to_string())
}

/// Mount paths of the pod template's `registry-api` container.
pub(super) fn template_mount_paths(template: Option<&Value>) -> HashSet<String> {
    template
        .and_then(|t| t.pointer("/spec/containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("name").and_then(Value::as_str) == Some(API_CONTAINER))
        .flat_map(|c| {
            c.get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|m| m.get("mountPath").and_then(Value::as_str))
        .map(|p| trim_slash(p).to_string())
        .collect()
}

fn trim_slash(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

/// A field that is set (not absent, not null).
pub(super) fn present<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| !x.is_null())
}

pub(super) fn str_at<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// A string field that is set and not empty (Go's zero value meant "unset").
pub(super) fn non_empty<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// An item called `default` keeps its name; the cluster's own source moves aside.
    #[test]
    fn the_cluster_source_yields_its_name() {
        assert_eq!(cluster_source_name(&[json!({"name": "a"})]), "default");
        assert_eq!(
            cluster_source_name(&[json!({"name": "default"})]),
            "kubernetes"
        );
        let both = [json!({"name": "default"}), json!({"name": "kubernetes"})];
        assert_eq!(cluster_source_name(&both), "kubernetes-1");
    }

    /// One Secret used by git credentials and an OAuth provider is one volume with both keys.
    #[test]
    fn a_shared_secret_is_mounted_once() {
        let old = spec(json!({
            "registries": [{"name": "r", "git": {"repository": "https://g.example.com/r", "branch": "main",
                "auth": {"username": "git", "passwordSecretRef": {"name": "creds", "key": "password"}}}}],
            "authConfig": {"mode": "oauth", "oauth": {"providers": [{"name": "p", "issuerUrl": "https://i.example.com",
                "audience": "a", "clientSecretRef": {"name": "creds", "key": "client"}}]}},
        }));
        let out = derive(&old, "reg");
        assert_eq!(
            out["volumes"],
            json!([{"name": "git-auth-creds", "secret": {"secretName": "creds",
                "items": [{"key": "password", "path": "password"}, {"key": "client", "path": "client"}]}}])
        );
        assert_eq!(out["volumeMounts"][0]["mountPath"], "/secrets/creds");
        assert!(!out.contains_key("pgpassSecretRef"));
    }

    /// A path the pod template's registry-api container mounts already is not mounted twice.
    #[test]
    fn a_template_mount_is_left_alone() {
        let old = spec(json!({
            "registries": [{"name": "r", "api": {"endpoint": "https://a.example.com"}}],
            "authConfig": {"mode": "oauth", "oauth": {"providers": [{"name": "p", "issuerUrl": "https://i.example.com",
                "audience": "a", "authTokenRef": {"name": "tok", "key": "t"}}]}},
            "podTemplateSpec": {"spec": {"containers": [{"name": "registry-api",
                "volumeMounts": [{"name": "mine", "mountPath": "/secrets/tok/"}]}]}},
        }));
        let out = derive(&old, "reg");
        assert!(!out.contains_key("volumes"), "{out:?}");
        assert!(out["configYAML"]
            .as_str()
            .unwrap()
            .contains("authTokenFile: /secrets/tok/t"));
    }

    /// Names that are no volume name are made into one, distinct for distinct names.
    #[test]
    fn volume_names_are_labels() {
        assert_eq!(
            volume_name("oauth-ca-", "company-ca"),
            "oauth-ca-company-ca"
        );
        let dotted = volume_name("oauth-ca-", "kube-root-ca.crt");
        assert!(dotted.starts_with("oauth-ca-kube-root-ca-crt-"), "{dotted}");
        assert_ne!(dotted, volume_name("oauth-ca-", "kube-root-ca-crt"));
        let long = volume_name("git-auth-", &"a.".repeat(120));
        assert!(is_label(&long) && long.len() <= 63, "{long}");
        assert!(is_label(&volume_name("registry-data-source-", "_._")));
    }

    /// Nothing but garbage: still an answer, never a panic.
    #[test]
    fn garbage_in_does_not_panic() {
        for v in [
            json!({"registries": 3}),
            json!({"registries": [null, 1, {"name": 2, "git": "x", "pvcRef": []}]}),
            json!({"registries": [], "databaseConfig": "x", "authConfig": {"mode": "oauth", "oauth": 1}}),
        ] {
            let out = derive(&spec(v), "");
            assert!(out.contains_key("configYAML"));
        }
    }
}
