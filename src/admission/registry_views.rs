//! MCPRegistry's typed v2 layout at v1alpha1 (ToolHive v0.17.0): `sources`, `registries` as
//! views over them, typed database, auth and telemetry settings. The rules are that release's
//! CEL rules (a non-empty `sources`, one source type each, at most one managed source, no
//! `authz` with anonymous access) and what its config generator refused (views naming unknown
//! sources, claims that are not strings, a sampling rate that is no number), plus what the
//! older list layout's rules say about the parts they share (git, database, OAuth).

use super::common::*;
use super::field::{FieldError, Path};
use super::registry_list::{
    check_auth, check_config_map_data, check_database, check_git, check_one_source,
    check_source_name,
};
use super::rules;
use crate::api::v1alpha1::{
    MCPRegistry, RegistryAuthConfig, RegistryItem, RegistrySourceConfig, RegistryTelemetryConfig,
    MAX_VIEWS,
};
use crate::conversion::registry_views::sampling_number;
use serde_json::Value;
use std::collections::HashMap;

/// The source types of a source, exactly one of which is set.
const SOURCE_FIELDS: &str = "configMapRef, git, api, url, managed or kubernetes";

pub fn validate(obj: &MCPRegistry, sources: &[RegistrySourceConfig], f: &mut Findings) {
    let spec = Path::root("spec");
    let list = spec.child("sources");
    if sources.is_empty() {
        f.error(FieldError::required(
            list.as_str(),
            "at least one source (or use configYAML instead)",
        ));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut managed: Option<usize> = None;
    for (i, s) in sources.iter().enumerate() {
        let p = list.index(i);
        if names.insert(s.name.as_str(), i).is_some() {
            f.error(FieldError::duplicate(p.child("name"), s.name.as_str()));
        }
        if s.managed.is_some() {
            match managed {
                Some(first) => f.error(FieldError::forbidden(
                    p.child("managed"),
                    format!("at most one managed source is allowed; spec.sources[{first}] is managed already"),
                )),
                None => managed = Some(i),
            }
        }
        check_source(f, &p, s);
    }
    check_views(f, &spec, obj.spec.registries.as_deref(), &names);
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    if let Some(db) = &obj.spec.database_config {
        check_database(f, &spec.child("databaseConfig"), db, name);
    }
    if let Some(auth) = &obj.spec.auth_config {
        check_auth_views(f, &spec.child("authConfig"), auth);
    }
    if let Some(t) = &obj.spec.telemetry_config {
        check_telemetry(f, &spec.child("telemetryConfig"), t);
    }
    f.warn(&list, "deprecated: v1beta1 describes the sources and registries in spec.configYAML (the registry server's own config) and mounts their data with spec.volumes and spec.volumeMounts");
    for (field, present, block) in [
        ("authConfig", obj.spec.auth_config.is_some(), "auth"),
        (
            "telemetryConfig",
            obj.spec.telemetry_config.is_some(),
            "telemetry",
        ),
    ] {
        if present {
            f.warn(
                &spec.child(field),
                format!("deprecated: v1beta1 says it in spec.configYAML ({block})"),
            );
        }
    }
}

fn check_source(f: &mut Findings, p: &Path, s: &RegistrySourceConfig) {
    check_source_name(f, &p.child("name"), &s.name);
    check_one_source(
        f,
        p,
        "source",
        SOURCE_FIELDS,
        &[
            ("configMapRef", s.config_map_ref.is_some()),
            ("git", s.git.is_some()),
            ("api", s.api.is_some()),
            ("url", s.url.is_some()),
            ("managed", s.managed.is_some()),
            ("kubernetes", s.kubernetes.is_some()),
        ],
    );
    if let Some(cm) = &s.config_map_ref {
        check_config_map_data(f, &p.child("configMapRef"), cm);
    }
    if let Some(git) = &s.git {
        check_git(f, &p.child("git"), git);
    }
    if let Some(k) = &s.kubernetes {
        for (j, ns) in k.namespaces.iter().flatten().enumerate() {
            f.rule(
                &p.child("kubernetes").child("namespaces").index(j),
                ns,
                rules::dns1123_label(ns),
            );
        }
    }
    if let Some(kind) = [
        ("managed", s.managed.is_some()),
        ("kubernetes", s.kubernetes.is_some()),
    ]
    .into_iter()
    .find_map(|(k, present)| present.then_some(k))
    {
        for (field, present) in [
            ("syncPolicy", s.sync_policy.is_some()),
            ("filter", s.filter.is_some()),
        ] {
            if present {
                f.warn(
                    &p.child(field),
                    format!("ignored: a {kind} source is not synced from anywhere, so it is left out of the config"),
                );
            }
        }
    }
    if let Some(claims) = &s.claims {
        check_claims(f, &p.child("claims"), claims);
    }
}

/// The list layout's fields, which a view has no place for.
const SOURCE_ITEM_FIELDS: &[&str] = &[
    "format",
    "configMapRef",
    "git",
    "api",
    "pvcRef",
    "syncPolicy",
    "filter",
];

fn check_views(
    f: &mut Findings,
    spec: &Path,
    views: Option<&[RegistryItem]>,
    sources: &HashMap<&str, usize>,
) {
    let list = spec.child("registries");
    let Some(views) = views.filter(|v| !v.is_empty()) else {
        f.error(FieldError::required(
            list.as_str(),
            "at least one registry: with spec.sources, registries are the views clients read, each naming the sources it serves (ToolHive v0.17.0 refused an MCPRegistry without one too)",
        ));
        return;
    };
    if views.len() > MAX_VIEWS {
        f.error(FieldError::too_many(list.as_str(), views.len(), MAX_VIEWS));
    }
    let mut known: Vec<&str> = sources.keys().copied().collect();
    known.sort_unstable();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, v) in views.iter().enumerate() {
        let p = list.index(i);
        check_source_name(f, &p.child("name"), &v.name);
        if seen.insert(v.name.as_str(), i).is_some() {
            f.error(FieldError::duplicate(p.child("name"), v.name.as_str()));
        }
        let item = serde_json::to_value(v).unwrap_or_default();
        for field in SOURCE_ITEM_FIELDS {
            if item.get(field).is_some_and(|x| !x.is_null()) {
                f.error(FieldError::forbidden(
                    p.child(field),
                    "with spec.sources (ToolHive v0.17.0), a registry is a view that names sources; say where data comes from in a source of spec.sources",
                ));
            }
        }
        match v.sources.as_deref() {
            None | Some([]) => f.error(FieldError::required(
                p.child("sources"),
                "the names of the sources (of spec.sources) this registry serves",
            )),
            Some(names) => {
                for (j, n) in names.iter().enumerate() {
                    if !sources.contains_key(n.as_str()) {
                        f.error(FieldError::invalid(
                            p.child("sources").index(j),
                            n.as_str(),
                            format!(
                                "names no source of spec.sources (there are: {})",
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(claims) = &v.claims {
            check_claims(f, &p.child("claims"), claims);
        }
    }
}

/// Claims (and role matchers) are an object whose values are a string or a list of strings:
/// what the registry server compares with a token's claims.
fn check_claims(f: &mut Findings, p: &Path, claims: &Value) {
    let Some(map) = claims.as_object() else {
        f.error(FieldError::invalid(
            p.as_str(),
            claims.clone(),
            "must be an object of claim names to a string or a list of strings",
        ));
        return;
    };
    for (k, v) in map {
        let ok = v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            f.error(FieldError::invalid(
                p.key(k),
                v.clone(),
                "must be a string or a list of strings",
            ));
        }
    }
}

/// Rules the older list layout has, plus `publicPaths` and `authz`.
fn check_auth_views(f: &mut Findings, p: &Path, auth: &RegistryAuthConfig) {
    check_auth(f, p, auth);
    let Some(authz) = &auth.authz else { return };
    let ap = p.child("authz");
    if auth.mode.as_deref().unwrap_or("anonymous") == "anonymous" {
        f.error(FieldError::forbidden(
            ap.as_str(),
            "has no effect when mode is \"anonymous\": set mode to \"oauth\" or remove authz",
        ));
    }
    let Some(roles) = &authz.roles else { return };
    for (role, entries) in [
        ("superAdmin", &roles.super_admin),
        ("manageSources", &roles.manage_sources),
        ("manageRegistries", &roles.manage_registries),
        ("manageEntries", &roles.manage_entries),
    ] {
        for (i, e) in entries.iter().flatten().enumerate() {
            check_claims(f, &ap.child("roles").child(role).index(i), e);
        }
    }
}

fn check_telemetry(f: &mut Findings, p: &Path, t: &RegistryTelemetryConfig) {
    let Some(s) = t.tracing.as_ref().and_then(|tr| tr.sampling.as_deref()) else {
        return;
    };
    let sp = p.child("tracing").child("sampling");
    match sampling_number(s) {
        None => f.error(FieldError::invalid(
            sp.as_str(),
            s,
            "must be a number from 0 to 1, e.g. \"0.05\" (the share of traces sampled)",
        )),
        Some(n) if !(0.0..=1.0).contains(&n) => f.error(FieldError::invalid(
            sp.as_str(),
            s,
            "must be from 0 to 1 (the share of traces sampled)",
        )),
        Some(_) => {}
    }
}
