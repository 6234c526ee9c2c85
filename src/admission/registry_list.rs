//! MCPRegistry's `registries` layout at v1alpha1 (ToolHive v0.6.7 to v0.16): the rules the old
//! operator enforced when it built the registry server's config (names, one source per
//! registry, git refs and credentials, OAuth providers), and the rules the conversion to
//! v1beta1 adds, since each name becomes a source name and a registry name there.

use super::common::*;
use super::field::{FieldError, Path};
use super::rules;
use crate::api::v1alpha1::{
    ConfigMapKeySelector, GitAuth, ItemGitSource, MCPRegistry, RegistryAuthConfig,
    RegistryDatabaseConfig, RegistryItem, RegistryOAuthProvider, SecretKeySelector,
};
use crate::conversion::registry_list as derived;
use std::collections::HashMap;

/// The stored config holds at most 64 sources, one of them the cluster's own.
const MAX_REGISTRIES: usize = 63;
/// The source types of an item, exactly one of which is set.
const SOURCE_FIELDS: &str = "configMapRef, git, api or pvcRef";

pub fn validate(obj: &MCPRegistry, items: &[RegistryItem], f: &mut Findings) {
    let spec = Path::root("spec");
    let list = spec.child("registries");
    if items.len() > MAX_REGISTRIES {
        f.error(FieldError::too_many(
            list.as_str(),
            items.len(),
            MAX_REGISTRIES,
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let p = list.index(i);
        if seen.insert(item.name.as_str(), i).is_some() {
            f.error(FieldError::duplicate(p.child("name"), item.name.as_str()));
        }
        check_item(f, &p, item);
    }
    let cluster = derived::cluster_source_name(&names_as_values(items));
    if let Some(i) = seen.get("default").filter(|_| cluster != "default") {
        f.warn(
            &list.index(*i).child("name"),
            format!("\"default\" is also the name the old operator gave the registry of the cluster's own MCPServers, which it added before yours; stored at v1beta1 that one is named {cluster:?} in spec.configYAML, and yours keeps \"default\""),
        );
    }
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    if let Some(db) = &obj.spec.database_config {
        check_database(f, &spec.child("databaseConfig"), db, name);
    }
    if let Some(auth) = &obj.spec.auth_config {
        check_auth(f, &spec.child("authConfig"), auth);
    }
    f.warn(&list, "deprecated: v1beta1 describes the registries in spec.configYAML (its sources and registries) and mounts their data with spec.volumes and spec.volumeMounts");
    if obj.spec.auth_config.is_some() {
        f.warn(
            &spec.child("authConfig"),
            "deprecated: v1beta1 says it in spec.configYAML (auth)",
        );
    }
}

fn names_as_values(items: &[RegistryItem]) -> Vec<serde_json::Value> {
    items
        .iter()
        .map(|i| serde_json::json!({ "name": i.name }))
        .collect()
}

/// Exactly one data-source field of a `noun` (registry or source): none is a required error,
/// each one after the first is forbidden.
pub(super) fn check_one_source(
    f: &mut Findings,
    p: &Path,
    noun: &str,
    fields: &str,
    present: &[(&str, bool)],
) {
    let set: Vec<&str> = present
        .iter()
        .filter_map(|(field, is)| is.then_some(*field))
        .collect();
    match set.as_slice() {
        [] => f.error(FieldError::required(
            p.as_str(),
            format!("where this {noun}'s data comes from: exactly one of {fields}"),
        )),
        [first, rest @ ..] => {
            for extra in rest {
                f.error(FieldError::forbidden(
                    p.child(extra),
                    format!("a {noun} has exactly one of {fields}; {first} is set too"),
                ));
            }
        }
    }
}

/// A ConfigMap holding registry data: a named ConfigMap and a valid key.
pub(super) fn check_config_map_data(f: &mut Findings, p: &Path, cm: &ConfigMapKeySelector) {
    check_required_name(
        f,
        p,
        cm.name.as_deref(),
        "the ConfigMap holding the registry data",
    );
    check_key(
        f,
        p,
        &cm.key,
        "the key of the registry data in the ConfigMap",
    );
}

fn check_item(f: &mut Findings, p: &Path, item: &RegistryItem) {
    check_source_name(f, &p.child("name"), &item.name);
    check_one_source(
        f,
        p,
        "registry",
        SOURCE_FIELDS,
        &[
            ("configMapRef", item.config_map_ref.is_some()),
            ("git", item.git.is_some()),
            ("api", item.api.is_some()),
            ("pvcRef", item.pvc_ref.is_some()),
        ],
    );
    if let Some(cm) = &item.config_map_ref {
        check_config_map_data(f, &p.child("configMapRef"), cm);
    }
    if let Some(git) = &item.git {
        check_git(f, &p.child("git"), git);
    }
    if let Some(pvc) = &item.pvc_ref {
        let pp = p.child("pvcRef");
        check_object_name(f, &pp.child("claimName"), &pvc.claim_name);
        if let Some(path) = pvc.path.as_deref() {
            f.rule(&pp.child("path"), path, relative_path(path));
        }
    }
}

/// The name becomes a source name and a registry name of the v2 config, whose rule it is.
pub(super) fn check_source_name(f: &mut Findings, p: &Path, name: &str) {
    let b = name.as_bytes();
    let inner =
        |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-');
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok =
        !b.is_empty() && b.len() <= 63 && b.iter().all(inner) && edge(b.first()) && edge(b.last());
    if !ok && !name.is_empty() {
        f.error(FieldError::invalid(
            p.as_str(),
            name,
            "becomes the name of a source and a registry in the registry server's config: at most 63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        ));
    }
}

pub(super) fn check_required_name(f: &mut Findings, p: &Path, name: Option<&str>, what: &str) {
    match name {
        None | Some("") => f.error(FieldError::required(p.child("name"), what)),
        Some(n) => check_object_name(f, &p.child("name"), n),
    }
}

/// A key that becomes a file name in a mounted volume.
pub(super) fn check_key(f: &mut Findings, p: &Path, key: &str, what: &str) {
    if key.is_empty() {
        f.error(FieldError::required(p.child("key"), what));
    } else {
        f.rule(&p.child("key"), key, rules::config_map_key(key));
    }
}

pub(super) fn check_git(f: &mut Findings, p: &Path, git: &ItemGitSource) {
    let refs = [&git.branch, &git.tag, &git.commit]
        .iter()
        .filter(|x| x.as_deref().is_some_and(|s| !s.is_empty()))
        .count();
    if refs == 0 {
        f.error(FieldError::required(
            p.as_str(),
            "which revision to read: one of branch, tag or commit",
        ));
    } else if refs > 1 {
        f.warn(
            p,
            "more than one of branch, tag and commit is set: the first of branch, tag, commit wins",
        );
    }
    if let Some(auth) = &git.auth {
        check_git_auth(f, &p.child("auth"), auth);
    }
}

fn check_git_auth(f: &mut Findings, p: &Path, auth: &GitAuth) {
    check_secret_ref(
        f,
        &p.child("passwordSecretRef"),
        &auth.password_secret_ref,
        "the Secret holding the git password or token",
    );
}

/// A Secret key the conversion mounts as `/secrets/<name>/<key>`.
pub(super) fn check_secret_ref(f: &mut Findings, p: &Path, s: &SecretKeySelector, what: &str) {
    check_required_name(f, p, s.name.as_deref(), what);
    if !s.key.is_empty() {
        f.rule(&p.child("key"), &s.key, rules::config_map_key(&s.key));
    }
}

/// Relative to the claim's root and inside it (the registry server reads it below its mount).
fn relative_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if path.starts_with('/') {
        out.push("must be a path relative to the root of the claim".to_string());
    }
    if path.split('/').any(|seg| seg == "..") {
        out.push("must not contain '..'".to_string());
    }
    out
}

pub(super) fn check_database(f: &mut Findings, p: &Path, db: &RegistryDatabaseConfig, name: &str) {
    for (field, r) in [
        (
            "dbAppUserPasswordSecretRef",
            &db.db_app_user_password_secret_ref,
        ),
        (
            "dbMigrationUserPasswordSecretRef",
            &db.db_migration_user_password_secret_ref,
        ),
    ] {
        let rp = p.child(field);
        check_required_name(f, &rp, r.name.as_deref(), "the Secret holding the password");
        if r.key.is_empty() {
            f.error(FieldError::required(
                rp.child("key"),
                "the key of the password in the Secret",
            ));
        }
    }
    if name.is_empty() {
        f.error(FieldError::required(
            "metadata.name",
            "with databaseConfig the registry reads its passwords from the Secret <name>-db-pgpass, so the name must be given (generateName cannot be used)",
        ));
        return;
    }
    f.warn(
        p,
        format!(
            "deprecated: v1beta1 says it in spec.configYAML (database) and spec.pgpassSecretRef. {}",
            pgpass_advice(db, name)
        ),
    );
}

/// What the user has to do that the old operator did: write the pgpass Secret.
pub fn pgpass_advice(db: &RegistryDatabaseConfig, name: &str) -> String {
    let text = |v: &Option<String>, d: &'static str| -> String {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(d)
            .to_string()
    };
    let host = text(&db.host, "postgres");
    let port = db.port.unwrap_or(5432);
    let database = text(&db.database, "registry");
    let line = |user: String| format!("{host}:{port}:{database}:{user}:<password>");
    format!(
        "The old operator generated the Secret {secret:?} from dbAppUserPasswordSecretRef and dbMigrationUserPasswordSecretRef; mcp-operator does not read passwords, and the registry now waits for that Secret: create it with key {key:?} holding the lines {app:?} and {migration:?} (see docs/v1alpha1.md)",
        secret = derived::pgpass_secret_name(name),
        key = derived::PGPASS_KEY,
        app = line(text(&db.user, "db_app")),
        migration = line(text(&db.migration_user, "db_migrator")),
    )
}

pub(super) fn check_auth(f: &mut Findings, p: &Path, auth: &RegistryAuthConfig) {
    let oauth_mode = auth.mode.as_deref() == Some("oauth");
    let Some(oauth) = &auth.oauth else {
        if oauth_mode {
            f.error(FieldError::required(
                p.child("oauth"),
                "the OAuth settings: mode is \"oauth\"",
            ));
        }
        return;
    };
    let op = p.child("oauth");
    if !oauth_mode {
        f.warn(
            &op,
            "ignored: mode is not \"oauth\", so the registry API is anonymous",
        );
        return;
    }
    let providers = oauth.providers.as_deref().unwrap_or_default();
    if providers.is_empty() {
        f.error(FieldError::required(
            op.child("providers"),
            "at least one identity provider whose tokens the registry API accepts",
        ));
    }
    for (i, provider) in providers.iter().enumerate() {
        check_provider(f, &op.child("providers").index(i), provider);
    }
}

fn check_provider(f: &mut Findings, p: &Path, provider: &RegistryOAuthProvider) {
    if let Some(s) = &provider.client_secret_ref {
        check_secret_ref(
            f,
            &p.child("clientSecretRef"),
            s,
            "the Secret holding the client secret",
        );
    }
    check_file_or_ref(
        f,
        p,
        "authTokenFile",
        provider.auth_token_file.as_deref(),
        "authTokenRef",
        provider.auth_token_ref.is_some(),
    );
    if let Some(s) = provider
        .auth_token_ref
        .as_ref()
        .filter(|_| no_path(&provider.auth_token_file))
    {
        check_secret_ref(
            f,
            &p.child("authTokenRef"),
            s,
            "the Secret holding the token",
        );
    }
    check_file_or_ref(
        f,
        p,
        "caCertPath",
        provider.ca_cert_path.as_deref(),
        "caCertRef",
        provider.ca_cert_ref.is_some(),
    );
    if let Some(cm) = provider
        .ca_cert_ref
        .as_ref()
        .filter(|_| no_path(&provider.ca_cert_path))
    {
        let cp = p.child("caCertRef");
        check_required_name(
            f,
            &cp,
            cm.name.as_deref(),
            "the ConfigMap holding the CA bundle",
        );
        if !cm.key.is_empty() {
            f.rule(&cp.child("key"), &cm.key, rules::config_map_key(&cm.key));
        }
    }
}

fn no_path(path: &Option<String>) -> bool {
    path.as_deref().is_none_or(str::is_empty)
}

/// A file given outright must be an absolute path in the container, and wins over a reference.
fn check_file_or_ref(
    f: &mut Findings,
    p: &Path,
    file_field: &str,
    file: Option<&str>,
    ref_field: &str,
    has_ref: bool,
) {
    let Some(file) = file.filter(|s| !s.is_empty()) else {
        return;
    };
    f.rule(&p.child(file_field), file, rules::absolute_path(file));
    if has_ref {
        f.warn(
            &p.child(ref_field),
            format!("ignored: {file_field} is set and wins, so the reference is not mounted"),
        );
    }
}

/// The pgpass note of an MCPRegistry written with `databaseConfig` (in the spec at v1alpha1,
/// in the conversion stash at v1beta1), for `convert` to print beside the rewritten manifest.
pub fn conversion_notes(obj: &serde_json::Value, version: &str) -> Vec<String> {
    let db = if version == "v1alpha1" {
        obj.pointer("/spec/databaseConfig").cloned()
    } else {
        obj.pointer("/metadata/annotations")
            .and_then(|a| a.get(format!("{}databaseConfig", crate::api::ALPHA_STASH_PREFIX)))
            .and_then(serde_json::Value::as_str)
            .and_then(|text| serde_json::from_str(text).ok())
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let Some(db) = db.and_then(|d| serde_json::from_value::<RegistryDatabaseConfig>(d).ok()) else {
        return Vec::new();
    };
    if name.is_empty() {
        return Vec::new();
    }
    vec![format!("spec.databaseConfig: {}", pgpass_advice(&db, name))]
}
