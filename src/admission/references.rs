//! The same-namespace objects a spec points at, for checks that need the cluster.

use super::{RefKind, Reference};
use serde_json::Value;

/// Every reference in a spec of our group, at any served version.
pub fn of(obj: &Value) -> Vec<Reference> {
    let Some(spec) = obj.get("spec") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |kind, name: Option<&str>, key: Option<&str>, field: String| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            out.push(Reference {
                kind,
                name: name.to_string(),
                key: key.map(str::to_string),
                field,
            });
        }
    };
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    for (i, sec) in list(spec, "/secrets").iter().enumerate() {
        push(
            RefKind::Secret,
            s(sec, "/name").as_deref(),
            s(sec, "/key").as_deref(),
            format!("spec.secrets[{i}]"),
        );
    }
    if s(spec, "/permissionProfile/type").as_deref() == Some("configmap") {
        push(
            RefKind::ConfigMap,
            s(spec, "/permissionProfile/name").as_deref(),
            s(spec, "/permissionProfile/key").as_deref(),
            "spec.permissionProfile".into(),
        );
    }
    push(
        RefKind::MCPToolConfig,
        s(spec, "/toolConfigRef/name").as_deref(),
        None,
        "spec.toolConfigRef".into(),
    );
    for (kind, field) in [
        (RefKind::MCPOIDCConfig, "oidcConfigRef"),
        (RefKind::MCPAuthzConfig, "authzConfigRef"),
        (RefKind::MCPExternalAuthConfig, "externalAuthConfigRef"),
        (RefKind::MCPTelemetryConfig, "telemetryConfigRef"),
    ] {
        push(
            kind,
            s(spec, &format!("/{field}/name")).as_deref(),
            None,
            format!("spec.{field}"),
        );
    }
    if s(spec, "/authzConfig/type").as_deref() == Some("configMap") {
        push(
            RefKind::ConfigMap,
            s(spec, "/authzConfig/configMap/name").as_deref(),
            s(spec, "/authzConfig/configMap/key").as_deref(),
            "spec.authzConfig.configMap".into(),
        );
    }
    if let Some(blocks) = spec.get("tokenExchange") {
        push(
            RefKind::Secret,
            s(blocks, "/clientSecretRef/name").as_deref(),
            s(blocks, "/clientSecretRef/key").as_deref(),
            "spec.tokenExchange.clientSecretRef".into(),
        );
    }
    for (block, field) in [
        ("headerInjection", "valueSecretRef"),
        ("bearerToken", "tokenSecretRef"),
        ("inline", "clientSecretRef"),
    ] {
        push(
            RefKind::Secret,
            s(spec, &format!("/{block}/{field}/name")).as_deref(),
            s(spec, &format!("/{block}/{field}/key")).as_deref(),
            format!("spec.{block}.{field}"),
        );
    }
    // MCPTelemetryConfig: export headers from Secrets, the collector's CA bundle.
    for (i, h) in list(spec, "/openTelemetry/sensitiveHeaders")
        .iter()
        .enumerate()
    {
        push(
            RefKind::Secret,
            s(h, "/secretKeyRef/name").as_deref(),
            s(h, "/secretKeyRef/key").as_deref(),
            format!("spec.openTelemetry.sensitiveHeaders[{i}].secretKeyRef"),
        );
    }
    push(
        RefKind::ConfigMap,
        s(spec, "/openTelemetry/caBundleRef/configMapRef/name").as_deref(),
        s(spec, "/openTelemetry/caBundleRef/configMapRef/key").as_deref(),
        "spec.openTelemetry.caBundleRef.configMapRef".into(),
    );
    let group = s(spec, "/groupRef/name").or_else(|| s(spec, "/groupRef"));
    push(
        RefKind::MCPGroup,
        group.as_deref(),
        None,
        "spec.groupRef".into(),
    );
    push(
        RefKind::Secret,
        s(spec, "/pgpassSecretRef/name").as_deref(),
        s(spec, "/pgpassSecretRef/key").as_deref(),
        "spec.pgpassSecretRef".into(),
    );
    for (i, h) in list(spec, "/headerForward/addHeadersFromSecret")
        .iter()
        .enumerate()
    {
        push(
            RefKind::Secret,
            s(h, "/valueSecretRef/name").as_deref(),
            s(h, "/valueSecretRef/key").as_deref(),
            format!("spec.headerForward.addHeadersFromSecret[{i}].valueSecretRef"),
        );
    }
    for (i, v) in list(spec, "/volumes").iter().enumerate() {
        push(
            RefKind::ConfigMap,
            s(v, "/configMap/name").as_deref(),
            None,
            format!("spec.volumes[{i}].configMap"),
        );
        push(
            RefKind::Secret,
            s(v, "/secret/secretName").as_deref(),
            None,
            format!("spec.volumes[{i}].secret"),
        );
    }
    let cm = |p: &str| s(spec, p);
    push(
        RefKind::ConfigMap,
        cm("/source/configMapRef/name").as_deref(),
        cm("/source/configMapRef/key").as_deref(),
        "spec.source.configMapRef".into(),
    );
    // The registries layout's items and the v0.17.0 layout's sources read them alike.
    for field in ["registries", "sources"] {
        for (i, item) in list(spec, &format!("/{field}")).iter().enumerate() {
            let at = format!("spec.{field}[{i}]");
            push(
                RefKind::ConfigMap,
                s(item, "/configMapRef/name").as_deref(),
                s(item, "/configMapRef/key").as_deref(),
                format!("{at}.configMapRef"),
            );
            push(
                RefKind::Secret,
                s(item, "/git/auth/passwordSecretRef/name").as_deref(),
                s(item, "/git/auth/passwordSecretRef/key").as_deref(),
                format!("{at}.git.auth.passwordSecretRef"),
            );
        }
    }
    // The pgpass Secret the old operator generated: now the user's to create (a warning
    // while it does not exist says so at apply time).
    if spec.get("databaseConfig").is_some_and(|d| !d.is_null()) {
        let name = s(obj, "/metadata/name").unwrap_or_default();
        let pgpass =
            (!name.is_empty()).then(|| crate::conversion::registry_list::pgpass_secret_name(&name));
        push(
            RefKind::Secret,
            pgpass.as_deref(),
            Some(crate::conversion::registry_list::PGPASS_KEY),
            "spec.databaseConfig".into(),
        );
    }
    // VirtualMCPServer: its auth configs, the backends' external auth and tool configs, and
    // the old shape's group name; MCPServerEntry: its CA bundle.
    let group_in_config = s(spec, "/config/groupRef").filter(|_| spec.get("groupRef").is_none());
    push(
        RefKind::MCPGroup,
        group_in_config.as_deref(),
        None,
        "spec.config.groupRef".into(),
    );
    for (kind, field) in [
        (RefKind::MCPOIDCConfig, "oidcConfigRef"),
        (RefKind::MCPAuthzConfig, "authzConfigRef"),
    ] {
        push(
            kind,
            s(spec, &format!("/incomingAuth/{field}/name")).as_deref(),
            None,
            format!("spec.incomingAuth.{field}"),
        );
    }
    if s(spec, "/incomingAuth/authzConfig/type").as_deref() == Some("configMap") {
        push(
            RefKind::ConfigMap,
            s(spec, "/incomingAuth/authzConfig/configMap/name").as_deref(),
            s(spec, "/incomingAuth/authzConfig/configMap/key").as_deref(),
            "spec.incomingAuth.authzConfig.configMap".into(),
        );
    }
    push(
        RefKind::MCPExternalAuthConfig,
        s(spec, "/outgoingAuth/default/externalAuthConfigRef/name").as_deref(),
        None,
        "spec.outgoingAuth.default.externalAuthConfigRef".into(),
    );
    let backends = spec
        .pointer("/outgoingAuth/backends")
        .and_then(Value::as_object);
    for (name, b) in backends.into_iter().flatten() {
        push(
            RefKind::MCPExternalAuthConfig,
            s(b, "/externalAuthConfigRef/name").as_deref(),
            None,
            format!("spec.outgoingAuth.backends[{name}].externalAuthConfigRef"),
        );
    }
    for (i, t) in list(spec, "/config/aggregation/tools").iter().enumerate() {
        push(
            RefKind::MCPToolConfig,
            s(t, "/toolConfigRef/name").as_deref(),
            None,
            format!("spec.config.aggregation.tools[{i}].toolConfigRef"),
        );
    }
    push(
        RefKind::ConfigMap,
        s(spec, "/caBundleRef/configMapRef/name").as_deref(),
        s(spec, "/caBundleRef/configMapRef/key").as_deref(),
        "spec.caBundleRef.configMapRef".into(),
    );
    let providers = list(spec, "/authConfig/oauth/providers");
    for (i, p) in providers.iter().enumerate() {
        let at = format!("spec.authConfig.oauth.providers[{i}]");
        for field in ["clientSecretRef", "authTokenRef"] {
            push(
                RefKind::Secret,
                s(p, &format!("/{field}/name")).as_deref(),
                s(p, &format!("/{field}/key"))
                    .filter(|k| !k.is_empty())
                    .as_deref(),
                format!("{at}.{field}"),
            );
        }
        push(
            RefKind::ConfigMap,
            s(p, "/caCertRef/name").as_deref(),
            s(p, "/caCertRef/key").filter(|k| !k.is_empty()).as_deref(),
            format!("{at}.caCertRef"),
        );
    }
    out
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The registries layout points at ConfigMaps, git and OAuth Secrets, and at the pgpass
    /// Secret the old operator generated, which the user now creates.
    #[test]
    fn the_registries_layout_names_what_it_reads() {
        let obj = json!({"metadata": {"name": "team"}, "spec": {
            "registries": [
                {"name": "a", "configMapRef": {"name": "data", "key": "registry.json"}},
                {"name": "b", "git": {"repository": "https://g.example.com/r", "branch": "main",
                    "auth": {"username": "git", "passwordSecretRef": {"name": "creds", "key": "token"}}}},
            ],
            "databaseConfig": {"dbAppUserPasswordSecretRef": {"name": "app", "key": "p"},
                "dbMigrationUserPasswordSecretRef": {"name": "mig", "key": "p"}},
            "authConfig": {"mode": "oauth", "oauth": {"providers": [{"name": "p", "issuerUrl": "https://i.example.com",
                "audience": "a", "caCertRef": {"name": "kube-root-ca.crt", "key": ""}}]}},
        }});
        let found: Vec<(RefKind, String, Option<String>, String)> = of(&obj)
            .into_iter()
            .map(|r| (r.kind, r.name, r.key, r.field))
            .collect();
        let key = |k: &str| Some(k.to_string());
        assert_eq!(
            found,
            [
                (
                    RefKind::ConfigMap,
                    "data".into(),
                    key("registry.json"),
                    "spec.registries[0].configMapRef".into()
                ),
                (
                    RefKind::Secret,
                    "creds".into(),
                    key("token"),
                    "spec.registries[1].git.auth.passwordSecretRef".into()
                ),
                (
                    RefKind::Secret,
                    "team-db-pgpass".into(),
                    key(".pgpass"),
                    "spec.databaseConfig".into()
                ),
                (
                    RefKind::ConfigMap,
                    "kube-root-ca.crt".into(),
                    None,
                    "spec.authConfig.oauth.providers[0].caCertRef".into()
                ),
            ]
        );
    }

    /// The v0.17.0 layout's sources point at what they read the same way.
    #[test]
    fn the_sources_layout_names_what_it_reads() {
        let obj = json!({"metadata": {"name": "team"}, "spec": {
            "sources": [
                {"name": "a", "configMapRef": {"name": "data", "key": "registry.json"}},
                {"name": "b", "git": {"repository": "https://g.example.com/r", "branch": "main",
                    "auth": {"username": "git", "passwordSecretRef": {"name": "creds", "key": "token"}}}},
            ],
            "registries": [{"name": "all", "sources": ["a", "b"]}],
        }});
        let fields: Vec<String> = of(&obj).into_iter().map(|r| r.field).collect();
        assert_eq!(
            fields,
            [
                "spec.sources[0].configMapRef",
                "spec.sources[1].git.auth.passwordSecretRef"
            ]
        );
    }

    /// A VirtualMCPServer names its group (in the old shape's `config.groupRef` too), its
    /// incoming auth configs, each backend's external auth and tool config; an MCPServerEntry
    /// its CA bundle.
    #[test]
    fn virtual_mcp_servers_and_entries_name_what_they_read() {
        let fields = |obj: serde_json::Value| -> Vec<(RefKind, String, String)> {
            of(&obj)
                .into_iter()
                .map(|r| (r.kind, r.name, r.field))
                .collect()
        };
        let vmcp = json!({"spec": {
            "config": {"groupRef": "team", "aggregation": {"tools": [{"workload": "gh", "toolConfigRef": {"name": "gh-tools"}}]}},
            "incomingAuth": {"type": "oidc", "oidcConfigRef": {"name": "sso", "audience": "a"},
                "authzConfig": {"type": "configMap", "configMap": {"name": "policies", "key": "authz.json"}}},
            "outgoingAuth": {"default": {"type": "externalAuthConfigRef", "externalAuthConfigRef": {"name": "dflt"}},
                "backends": {"gh": {"type": "externalAuthConfigRef", "externalAuthConfigRef": {"name": "gh-token"}}}},
        }});
        let found = fields(vmcp);
        for want in [
            (RefKind::MCPGroup, "team", "spec.config.groupRef"),
            (
                RefKind::MCPOIDCConfig,
                "sso",
                "spec.incomingAuth.oidcConfigRef",
            ),
            (
                RefKind::ConfigMap,
                "policies",
                "spec.incomingAuth.authzConfig.configMap",
            ),
            (
                RefKind::MCPExternalAuthConfig,
                "dflt",
                "spec.outgoingAuth.default.externalAuthConfigRef",
            ),
            (
                RefKind::MCPExternalAuthConfig,
                "gh-token",
                "spec.outgoingAuth.backends[gh].externalAuthConfigRef",
            ),
            (
                RefKind::MCPToolConfig,
                "gh-tools",
                "spec.config.aggregation.tools[0].toolConfigRef",
            ),
        ] {
            assert!(
                found.contains(&(want.0, want.1.into(), want.2.into())),
                "{want:?} not in {found:?}"
            );
        }
        // With the group named by spec.groupRef, config.groupRef is not a second reference.
        let both = json!({"spec": {"groupRef": {"name": "team"}, "config": {"groupRef": "team"}}});
        assert_eq!(
            fields(both),
            [(RefKind::MCPGroup, "team".into(), "spec.groupRef".into())]
        );
        let entry = json!({"spec": {"groupRef": {"name": "team"},
            "caBundleRef": {"configMapRef": {"name": "corp-ca", "key": "ca.crt"}}}});
        assert!(fields(entry).contains(&(
            RefKind::ConfigMap,
            "corp-ca".into(),
            "spec.caBundleRef.configMapRef".into()
        )));
    }
}
