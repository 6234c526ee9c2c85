//! Property tests: conversion between v1alpha1 and v1beta1 is lossless both ways, and what it
//! produces is valid at the version it was converted to.

use mcp_operator::admission::{admit, Operation};
use mcp_operator::conversion::convert;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const A: &str = "toolhive.stacklok.dev/v1alpha1";
const B: &str = "toolhive.stacklok.dev/v1beta1";

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        ..ProptestConfig::default()
    }
}

/// Inserts `value` under `key` when present.
fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.into(), v);
    }
}

fn dns_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,6})?"
}

fn port() -> impl Strategy<Value = i64> {
    prop_oneof![Just(8080i64), 1..=65535i64]
}

fn metadata() -> impl Strategy<Value = Value> {
    (
        dns_name(),
        option::of(dns_name()),
        option::of(btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 1..3)),
        option::of(btree_map("example.com/[a-z]{1,8}", ".{0,12}", 1..3)),
    )
        .prop_map(|(name, ns, labels, annotations)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            put(&mut m, "namespace", ns.map(Value::from));
            put(&mut m, "labels", labels.map(|l| json!(l)));
            put(&mut m, "annotations", annotations.map(|a| json!(a)));
            Value::Object(m)
        })
}

fn image() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("docker.io/mcp/fetch".to_string()),
        Just("ghcr.io/github/github-mcp-server:v1.2".to_string()),
        "[a-z]{1,8}(/[a-z0-9]{1,8})?(:[a-z0-9]{1,5})?",
    ]
}

/// Fields MCPServer has at both versions, valid together.
fn server_common() -> impl Strategy<Value = Map<String, Value>> {
    let env = btree_set("E_[A-Z0-9]{1,6}", 0..4);
    let secrets = btree_set("[a-z]{1,8}", 0..3);
    let resources = option::of((1u32..4096, 0u32..100));
    (
        (image(), prop_oneof![Just("stdio"), Just("sse"), Just("streamable-http")], option::of(prop_oneof![Just("sse"), Just("streamable-http")]), option::of(port())),
        (option::of(vec("[a-z-]{1,8}", 0..3)), option::of(vec("[a-z]{1,6}", 1..3)), env, secrets),
        (resources, option::of(btree_set("[a-z_]{1,10}", 0..4)), option::of(dns_name()), option::of(0i64..5)),
        (option::of(prop_oneof![Just("ClientIP"), Just("None")]), option::of(any::<bool>()), option::of("/[a-z]{1,8}"), option::of(btree_set("v[a-z]{1,5}", 1..3))),
    )
        .prop_map(|((image, transport, mode, proxy_port), (args, command, env, secrets), (resources, tools, tool_config, replicas), (affinity, trust, prefix, volumes))| {
            let mut s = Map::new();
            s.insert("image".into(), json!(image));
            s.insert("transport".into(), json!(transport));
            put(&mut s, "proxyMode", mode.map(Value::from));
            put(&mut s, "proxyPort", proxy_port.map(Value::from));
            put(&mut s, "args", args.map(|a| json!(a)));
            put(&mut s, "command", command.map(|c| json!(c)));
            if !env.is_empty() {
                s.insert("env".into(), json!(env.iter().map(|n| json!({"name": n, "value": "v"})).collect::<Vec<_>>()));
            }
            if !secrets.is_empty() {
                let list: Vec<Value> = secrets.iter().enumerate().map(|(i, n)| json!({"name": n, "key": "token", "targetEnvName": format!("S_{i}")})).collect();
                s.insert("secrets".into(), json!(list));
            }
            if let Some((limit, pct)) = resources {
                let req = (limit as u64 * pct as u64 / 100).max(1);
                s.insert("resources".into(), json!({"limits": {"memory": format!("{limit}Mi")}, "requests": {"memory": format!("{req}Mi"), "cpu": "50m"}}));
            }
            put(&mut s, "tools", tools.map(|t| json!(t)));
            put(&mut s, "toolConfigRef", tool_config.map(|n| json!({"name": n})));
            put(&mut s, "replicas", replicas.map(Value::from));
            put(&mut s, "sessionAffinity", affinity.map(Value::from));
            put(&mut s, "trustProxyHeaders", trust.map(Value::from));
            put(&mut s, "endpointPrefix", prefix.map(Value::from));
            if let Some(vols) = volumes {
                let list: Vec<Value> = vols.iter().map(|n| json!({"name": n, "hostPath": format!("/srv/{n}"), "mountPath": format!("/data/{n}"), "readOnly": true})).collect();
                s.insert("volumes".into(), json!(list));
            }
            s
        })
}

fn conditions() -> impl Strategy<Value = Option<Value>> {
    option::of(prop_oneof![Just("True"), Just("False")].prop_map(|s| json!([{"type": "Ready", "status": s, "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}])))
}

fn status(phases: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
    option::of(
        (
            proptest::sample::select(phases),
            option::of(0i64..5),
            option::of(1i64..100),
            conditions(),
        )
            .prop_map(|(phase, ready, gen, conds)| {
                let mut m = Map::new();
                m.insert("phase".into(), json!(phase));
                put(&mut m, "readyReplicas", ready.map(Value::from));
                put(&mut m, "observedGeneration", gen.map(Value::from));
                put(&mut m, "conditions", conds);
                m.insert(
                    "url".into(),
                    json!("http://mcp-x-proxy.default.svc.cluster.local:8080/mcp"),
                );
                Value::Object(m)
            }),
    )
}

/// An MCPServer's status: [`status`], and the hash of its telemetry config.
fn server_status(phases: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
    (status(phases), option::of("[0-9a-f]{8}")).prop_map(|(status, hash)| {
        status.map(|mut s| {
            if let Some(h) = hash {
                s["telemetryConfigHash"] = json!(h);
            }
            s
        })
    })
}

fn object(
    api: &str,
    kind: &str,
    meta: Value,
    spec: Map<String, Value>,
    status: Option<Value>,
) -> Value {
    let mut o = json!({"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec});
    if let Some(s) = status {
        o["status"] = s;
    }
    o
}

fn oidc() -> impl Strategy<Value = Value> {
    prop_oneof![
        option::of("[a-z]{1,8}").prop_map(|aud| json!({"type": "kubernetes", "kubernetes": {"audience": aud.unwrap_or("toolhive".into()), "issuer": "https://kubernetes.default.svc"}})),
        "[a-z]{1,8}".prop_map(|h| json!({"type": "inline", "resourceUrl": format!("https://{h}.example.com"), "inline": {"issuer": format!("https://{h}.example.com"), "clientId": h, "scopes": ["openid"]}})),
        "[a-z]{1,8}".prop_map(|n| json!({"type": "configMap", "configMap": {"name": n, "key": "oidc.json"}})),
    ]
}

fn telemetry() -> impl Strategy<Value = Value> {
    (any::<bool>(), "[a-z]{1,8}").prop_map(|(on, svc)| json!({"openTelemetry": {"enabled": on, "endpoint": "otel-collector:4317", "serviceName": svc, "headers": ["x-team=a"], "tracing": {"enabled": on, "samplingRate": "0.1"}}, "prometheus": {"enabled": !on}}))
}

/// `telemetryConfigRef`, the same at both versions.
fn telemetry_config_ref() -> impl Strategy<Value = Value> {
    (dns_name(), option::of("[a-z][a-z0-9-]{0,12}")).prop_map(|(name, service)| {
        let mut r = json!({"name": name});
        if let Some(s) = service {
            r["serviceName"] = json!(s);
        }
        r
    })
}

/// A v1alpha1 workload's telemetry: none, the inline block or the reference, never both
/// (ToolHive v0.15 – v0.20 refused the pair).
fn alpha_telemetry() -> impl Strategy<Value = (Option<Value>, Option<Value>)> {
    prop_oneof![
        Just((None, None)),
        telemetry().prop_map(|t| (Some(t), None)),
        telemetry_config_ref().prop_map(|r| (None, Some(r))),
    ]
}

/// Both shapes v1alpha1 served for `groupRef`: a bare name (≤ v0.14) and `{name}` (later).
fn alpha_group_ref() -> impl Strategy<Value = Value> {
    prop_oneof![
        dns_name().prop_map(Value::from),
        dns_name().prop_map(|g| json!({"name": g})),
    ]
}

fn alpha_server() -> impl Strategy<Value = Value> {
    (
        metadata(),
        server_common(),
        option::of(port()),
        option::of(port()),
        option::of(port()),
        option::of(alpha_group_ref()),
        option::of(oidc()),
        alpha_telemetry(),
        server_status(&["Pending", "Running", "Failed", "Terminating", "Stopped"]),
    )
        .prop_map(
            |(meta, mut spec, port, target, mcp, group, oidc, (tel, tel_ref), status)| {
                put(&mut spec, "port", port.map(Value::from));
                put(&mut spec, "targetPort", target.map(Value::from));
                put(&mut spec, "mcpPort", mcp.map(Value::from));
                put(&mut spec, "groupRef", group);
                put(&mut spec, "oidcConfig", oidc);
                put(&mut spec, "telemetry", tel);
                put(&mut spec, "telemetryConfigRef", tel_ref);
                object(A, "MCPServer", meta, spec, status)
            },
        )
}

fn beta_server() -> impl Strategy<Value = Value> {
    (
        metadata(),
        server_common(),
        option::of(port()),
        option::of(dns_name()),
        option::of(telemetry_config_ref()),
        server_status(&["Pending", "Ready", "Failed", "Terminating", "Stopped"]),
    )
        .prop_map(|(meta, mut spec, mcp, group, tel_ref, status)| {
            put(&mut spec, "mcpPort", mcp.map(Value::from));
            put(&mut spec, "groupRef", group.map(|g| json!({"name": g})));
            put(&mut spec, "telemetryConfigRef", tel_ref);
            object(B, "MCPServer", meta, spec, status)
        })
}

fn proxy_common() -> impl Strategy<Value = Map<String, Value>> {
    ("[a-z]{1,10}", option::of(prop_oneof![Just("sse"), Just("streamable-http")]), option::of(port()), option::of(dns_name()), option::of(btree_map("X-[A-Z][a-z]{1,6}", "[a-z]{1,6}", 1..3)))
        .prop_map(|(host, transport, proxy_port, tc, headers)| {
            let mut s = Map::new();
            s.insert("url".into(), json!(format!("https://{host}.example.com/mcp")));
            put(&mut s, "transport", transport.map(Value::from));
            put(&mut s, "proxyPort", proxy_port.map(Value::from));
            put(&mut s, "toolConfigRef", tc.map(|n| json!({"name": n})));
            put(&mut s, "headerForward", headers.map(|h| json!({"addPlaintextHeaders": h, "addHeadersFromSecret": [{"headerName": "Authorization", "valueSecretRef": {"name": "tok", "key": "header"}}]})));
            s
        })
}

fn remote_status(url_key: &'static str) -> impl Strategy<Value = Option<Value>> {
    option::of(
        (
            prop_oneof![Just("Pending"), Just("Ready"), Just("Failed")],
            option::of("[a-z]{1,8}"),
            option::of("[0-9a-f]{8}"),
        )
            .prop_map(move |(phase, ext, hash)| {
                let mut m = Map::new();
                m.insert("phase".into(), json!(phase));
                put(&mut m, "telemetryConfigHash", hash.map(Value::from));
                put(
                    &mut m,
                    url_key,
                    ext.map(|e| json!(format!("https://{e}.example.com"))),
                );
                Value::Object(m)
            }),
    )
}

fn alpha_proxy() -> impl Strategy<Value = Value> {
    (
        metadata(),
        proxy_common(),
        option::of(port()),
        option::of(alpha_group_ref()),
        option::of(oidc()),
        alpha_telemetry(),
        remote_status("externalURL"),
    )
        .prop_map(
            |(meta, mut spec, port, group, oidc, (tel, tel_ref), status)| {
                // Both spellings v1alpha1 served; the length of the host picks one.
                let url = spec.remove("url").unwrap();
                let spelling = if url.as_str().unwrap().len() % 2 == 0 {
                    "remoteURL"
                } else {
                    "remoteUrl"
                };
                spec.insert(spelling.into(), url);
                put(&mut spec, "port", port.map(Value::from));
                put(&mut spec, "groupRef", group);
                put(&mut spec, "oidcConfig", oidc);
                put(&mut spec, "telemetry", tel);
                put(&mut spec, "telemetryConfigRef", tel_ref);
                object(A, "MCPRemoteProxy", meta, spec, status)
            },
        )
}

fn beta_proxy() -> impl Strategy<Value = Value> {
    (
        metadata(),
        proxy_common(),
        option::of(any::<bool>()),
        option::of(0i64..4),
        option::of(dns_name()),
        (any::<bool>(), option::of(telemetry_config_ref())),
        remote_status("externalUrl"),
    )
        .prop_map(
            |(meta, mut spec, private, replicas, group, (template, tel_ref), status)| {
                let url = spec.remove("url").unwrap();
                spec.insert("remoteUrl".into(), url);
                put(&mut spec, "allowPrivateEndpoint", private.map(Value::from));
                put(&mut spec, "replicas", replicas.map(Value::from));
                put(&mut spec, "groupRef", group.map(|g| json!({"name": g})));
                put(&mut spec, "telemetryConfigRef", tel_ref);
                if template {
                    spec.insert(
                        "podTemplateSpec".into(),
                        json!({"metadata": {"labels": {"team": "a"}}}),
                    );
                }
                object(B, "MCPRemoteProxy", meta, spec, status)
            },
        )
}

fn alpha_registry() -> impl Strategy<Value = Value> {
    let source = prop_oneof![
        (dns_name(), option::of(prop_oneof![Just("toolhive"), Just("upstream")]), option::of(any::<bool>())).prop_map(|(cm, fmt, optional)| {
            let mut r = json!({"name": cm, "key": "registry.json"});
            if let Some(o) = optional {
                r["optional"] = json!(o);
            }
            let mut s = json!({"type": "configmap", "configMapRef": r});
            if let Some(f) = fmt {
                s["format"] = json!(f);
            }
            s
        }),
        ("[a-z]{1,8}", option::of("[a-z]{1,6}"), option::of("v[0-9]{1,2}"), option::of("[a-z]{1,6}\\.json")).prop_map(|(repo, branch, tag, path)| {
            let mut g = json!({"repository": format!("https://github.com/example/{repo}")});
            if let Some(b) = branch { g["branch"] = json!(b); }
            if let Some(t) = tag { g["tag"] = json!(t); }
            if let Some(p) = path { g["path"] = json!(p); }
            json!({"type": "git", "format": "toolhive", "git": g})
        }),
        "[a-z]{1,8}".prop_map(|h| json!({"type": "api", "format": "upstream", "api": {"endpoint": format!("https://{h}.example.com/v0")}})),
    ];
    let filter = option::of((vec("[a-z]{1,6}", 0..3), vec("[a-z]{1,6}", 0..2)).prop_map(|(inc, exc)| json!({"names": {"include": inc, "exclude": exc}, "tags": {"include": ["prod"]}})));
    (
        metadata(),
        source,
        option::of(prop_oneof![Just("30m"), Just("1h"), Just("1h30m")]),
        filter,
        option::of(".{0,16}"),
        option::of(any::<bool>()),
        status(&["Pending", "Ready", "Failed", "Syncing", "Terminating"]),
    )
        .prop_map(
            |(meta, source, interval, filter, display, enforce, status)| {
                let mut s = Map::new();
                s.insert("source".into(), source);
                put(
                    &mut s,
                    "syncPolicy",
                    interval.map(|i| json!({"interval": i})),
                );
                put(&mut s, "filter", filter);
                put(&mut s, "displayName", display.map(Value::from));
                put(&mut s, "enforceServers", enforce.map(Value::from));
                object(A, "MCPRegistry", meta, s, status)
            },
        )
}

/// A `git` block of the registries layout: one or more revisions, maybe credentials.
fn list_git() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,8}",
        prop_oneof![Just("branch"), Just("tag"), Just("commit")],
        option::of(prop_oneof![Just("tag"), Just("commit")]),
        option::of("[a-z]{1,6}/[a-z]{1,6}\\.json"),
        option::of((dns_name(), "[a-z]{1,8}")),
    )
        .prop_map(|(repo, rev, second, path, auth)| {
            let mut g = json!({"repository": format!("https://github.com/example/{repo}")});
            g[rev] = json!("v1");
            if let Some(r) = second {
                g[r] = json!("abc123");
            }
            if let Some(p) = path {
                g["path"] = json!(p);
            }
            if let Some((secret, key)) = auth {
                g["auth"] =
                    json!({"username": "git", "passwordSecretRef": {"name": secret, "key": key}});
            }
            g
        })
}

/// One item of `registries`, with exactly one source type.
fn list_item(name: String) -> impl Strategy<Value = Value> {
    let source = prop_oneof![
        (
            dns_name(),
            prop_oneof![Just("registry.json".to_string()), "[a-z]{1,6}"]
        )
            .prop_map(|(cm, key)| ("configMapRef", json!({"name": cm, "key": key}))),
        list_git().prop_map(|g| ("git", g)),
        "[a-z]{1,8}".prop_map(|h| (
            "api",
            json!({"endpoint": format!("https://{h}.example.com")})
        )),
        (dns_name(), option::of("[a-z]{1,6}/[a-z]{1,6}\\.json")).prop_map(|(claim, path)| {
            let mut p = json!({"claimName": claim});
            if let Some(path) = path {
                p["path"] = json!(path);
            }
            ("pvcRef", p)
        }),
    ];
    (
        source,
        option::of(prop_oneof![Just("toolhive"), Just("upstream")]),
        option::of(prop_oneof![Just("30m"), Just("1h"), Just("1h30m")]),
        option::of((vec("[a-z]{1,6}", 0..3), vec("[a-z]{1,6}", 0..2))),
    )
        .prop_map(move |((field, src), format, interval, filter)| {
            let mut item = Map::new();
            item.insert("name".into(), json!(name));
            item.insert(field.into(), src);
            put(&mut item, "format", format.map(Value::from));
            put(
                &mut item,
                "syncPolicy",
                interval.map(|i| json!({"interval": i})),
            );
            put(
                &mut item,
                "filter",
                filter
                    .map(|(inc, exc)| json!({"names": {"include": inc}, "tags": {"exclude": exc}})),
            );
            Value::Object(item)
        })
}

fn list_items() -> impl Strategy<Value = Vec<Value>> {
    // Unique names, "default" among them now and then (the cluster's source then moves aside).
    let names = btree_set(
        prop_oneof![
            Just("default".to_string()),
            Just("kubernetes".to_string()),
            "[a-z][a-z0-9]{0,6}"
        ],
        1..4,
    );
    names.prop_flat_map(|names| names.into_iter().map(list_item).collect::<Vec<_>>())
}

fn database_config() -> impl Strategy<Value = Value> {
    (
        option::of(dns_name()),
        option::of(1i64..65535),
        option::of(prop_oneof![
            Just("disable"),
            Just("require"),
            Just("verify-full")
        ]),
        option::of(0i64..5),
        option::of(prop_oneof![Just("5m"), Just("1h")]),
    )
        .prop_map(|(host, port, ssl, idle, lifetime)| {
            let mut d = json!({
                "dbAppUserPasswordSecretRef": {"name": "db-app", "key": "password"},
                "dbMigrationUserPasswordSecretRef": {"name": "db-migrator", "key": "password"},
            });
            let m = d.as_object_mut().unwrap();
            put(m, "host", host.map(Value::from));
            put(m, "port", port.map(Value::from));
            put(m, "sslMode", ssl.map(Value::from));
            put(m, "maxIdleConns", idle.map(Value::from));
            put(m, "connMaxLifetime", lifetime.map(Value::from));
            d
        })
}

fn auth_config() -> impl Strategy<Value = Value> {
    let provider = (
        "[a-z]{1,8}",
        option::of(dns_name()),
        option::of(prop_oneof![Just("kube-root-ca.crt".to_string()), dns_name()]),
        option::of(dns_name()),
        any::<bool>(),
    )
        .prop_map(|(name, client_secret, ca, token, private)| {
            let mut p = json!({"name": name, "issuerUrl": format!("https://{name}.example.com"), "audience": "registry"});
            if let Some(s) = client_secret {
                p["clientId"] = json!("registry");
                p["clientSecretRef"] = json!({"name": s, "key": "secret"});
            }
            if let Some(c) = ca {
                p["caCertRef"] = json!({"name": c, "key": "ca.crt"});
            }
            if let Some(t) = token {
                p["authTokenRef"] = json!({"name": t, "key": "token"});
            }
            if private {
                p["allowPrivateIP"] = json!(true);
            }
            p
        });
    prop_oneof![
        Just(json!({"mode": "anonymous"})),
        (vec(provider, 1..3), option::of("[a-z]{1,8}")).prop_map(|(providers, realm)| {
            let mut o =
                json!({"resourceUrl": "https://registry.example.com", "providers": providers});
            if let Some(r) = realm {
                o["realm"] = json!(r);
                o["scopesSupported"] = json!(["mcp-registry:read"]);
            }
            json!({"mode": "oauth", "oauth": o})
        }),
    ]
}

/// The `registries` layout of ToolHive v0.6.7 to v0.16.
fn alpha_registry_list() -> impl Strategy<Value = Value> {
    (
        metadata(),
        list_items(),
        option::of(database_config()),
        option::of(auth_config()),
        option::of(".{0,16}"),
        option::of(any::<bool>()),
        any::<bool>(),
        status(&["Pending", "Ready", "Failed", "Syncing", "Terminating"]),
    )
        .prop_map(
            |(meta, items, db, auth, display, enforce, template, status)| {
                let mut s = Map::new();
                s.insert("registries".into(), json!(items));
                put(&mut s, "databaseConfig", db);
                put(&mut s, "authConfig", auth);
                put(&mut s, "displayName", display.map(Value::from));
                put(&mut s, "enforceServers", enforce.map(Value::from));
                if template {
                    s.insert(
                        "podTemplateSpec".into(),
                        json!({"spec": {"containers": [{"name": "registry-api",
                            "volumeMounts": [{"name": "extra", "mountPath": "/extra"}]}],
                            "volumes": [{"name": "extra", "emptyDir": {}}]}}),
                    );
                }
                object(A, "MCPRegistry", meta, s, status)
            },
        )
}

/// Claims of a source or view: strings and lists of strings.
fn claims() -> impl Strategy<Value = Value> {
    btree_map(
        "[a-z]{1,6}",
        prop_oneof![
            "[a-z]{1,6}".prop_map(Value::from),
            vec("[a-z]{1,6}", 0..3).prop_map(Value::from),
        ],
        0..3,
    )
    .prop_map(|m| json!(m))
}

/// One source of the v0.17.0 layout, with exactly one source type.
fn views_source(name: String) -> impl Strategy<Value = Value> {
    let source = prop_oneof![
        dns_name().prop_map(|cm| ("configMapRef", json!({"name": cm, "key": "registry.json"}))),
        list_git().prop_map(|g| ("git", g)),
        "[a-z]{1,8}".prop_map(|h| (
            "api",
            json!({"endpoint": format!("https://{h}.example.com")})
        )),
        (
            "[a-z]{1,8}",
            option::of(prop_oneof![Just("10s"), Just("1m")])
        )
            .prop_map(|(h, t)| {
                let mut u = json!({"endpoint": format!("https://{h}.example.com/registry.json")});
                if let Some(t) = t {
                    u["timeout"] = json!(t);
                }
                ("url", u)
            }),
        Just(("managed", json!({}))),
        option::of(vec(dns_name(), 0..3)).prop_map(|ns| {
            (
                "kubernetes",
                ns.map_or(json!({}), |ns| json!({"namespaces": ns})),
            )
        }),
    ];
    (
        source,
        option::of(prop_oneof![Just("toolhive"), Just("upstream")]),
        option::of(claims()),
        option::of(prop_oneof![Just("30m"), Just("1h")]),
        option::of(vec("[a-z]{1,6}", 0..3)),
    )
        .prop_map(move |((field, src), format, claims, interval, include)| {
            let mut item = Map::new();
            item.insert("name".into(), json!(name));
            item.insert(field.into(), src);
            put(&mut item, "format", format.map(Value::from));
            put(&mut item, "claims", claims);
            put(
                &mut item,
                "syncPolicy",
                interval.map(|i| json!({"interval": i})),
            );
            put(
                &mut item,
                "filter",
                include.map(|i| json!({"names": {"include": i}})),
            );
            Value::Object(item)
        })
}

/// Sources with unique names (at most one managed: later ones become cluster sources), and
/// views over them.
fn views_sources_and_views() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
    btree_set("[a-z][a-z0-9]{0,6}", 1..4)
        .prop_flat_map(|names| names.into_iter().map(views_source).collect::<Vec<_>>())
        .prop_flat_map(|mut sources| {
            let mut managed = false;
            for s in &mut sources {
                if let Some(m) = s.as_object_mut().filter(|m| m.contains_key("managed")) {
                    if managed {
                        m.remove("managed");
                        m.insert("kubernetes".into(), json!({}));
                    }
                    managed = true;
                }
            }
            let names: Vec<String> = sources
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect();
            let view = (
                proptest::sample::subsequence(names.clone(), 1..=names.len()),
                option::of(claims()),
            );
            (Just(sources), btree_map("[a-z][a-z0-9]{0,6}", view, 1..3))
        })
        .prop_map(|(sources, views)| {
            let views = views
                .into_iter()
                .map(|(name, (srcs, claims))| {
                    let mut v = json!({"name": name, "sources": srcs});
                    if let Some(c) = claims {
                        v["claims"] = c;
                    }
                    v
                })
                .collect();
            (sources, views)
        })
}

fn telemetry_config() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        option::of("[a-z]{1,8}"),
        option::of(any::<bool>()),
        option::of((
            any::<bool>(),
            option::of(prop_oneof![Just("0.05"), Just("1"), Just("0.5")]),
        )),
        option::of(any::<bool>()),
    )
        .prop_map(|(enabled, endpoint, insecure, tracing, metrics)| {
            let mut t = json!({"enabled": enabled});
            let m = t.as_object_mut().unwrap();
            put(m, "endpoint", endpoint.map(|e| json!(format!("{e}:4318"))));
            put(m, "insecure", insecure.map(Value::from));
            put(
                m,
                "tracing",
                tracing.map(|(on, sampling)| {
                    let mut tr = json!({"enabled": on});
                    if let Some(s) = sampling {
                        tr["sampling"] = json!(s);
                    }
                    tr
                }),
            );
            put(m, "metrics", metrics.map(|e| json!({"enabled": e})));
            t
        })
}

/// The typed v2 layout of ToolHive v0.17.0: sources, views, database, auth, telemetry.
fn alpha_registry_views() -> impl Strategy<Value = Value> {
    (
        metadata(),
        views_sources_and_views(),
        option::of((
            database_config(),
            option::of(1i64..1_000_000),
            any::<bool>(),
        )),
        option::of((
            auth_config(),
            option::of(vec("/[a-z]{1,6}", 1..3)),
            any::<bool>(),
        )),
        option::of(telemetry_config()),
        option::of(any::<bool>()),
        status(&["Pending", "Ready", "Failed", "Terminating"]),
    )
        .prop_map(
            |(meta, (sources, views), db, auth, telemetry, enforce, status)| {
                let mut s = Map::new();
                s.insert("sources".into(), json!(sources));
                s.insert("registries".into(), json!(views));
                put(
                    &mut s,
                    "databaseConfig",
                    db.map(|(mut d, size, iam)| {
                        put(
                            d.as_object_mut().unwrap(),
                            "maxMetaSize",
                            size.map(Value::from),
                        );
                        if iam {
                            d["dynamicAuth"] = json!({"awsRdsIam": {"region": "eu-west-1"}});
                        }
                        d
                    }),
                );
                put(
                    &mut s,
                    "authConfig",
                    auth.map(|(mut a, paths, authz)| {
                        put(
                            a.as_object_mut().unwrap(),
                            "publicPaths",
                            paths.map(Value::from),
                        );
                        if authz && a["mode"] == "oauth" {
                            a["authz"] = json!({"roles": {"superAdmin": [{"groups": "admins"}]}});
                        }
                        a
                    }),
                );
                put(&mut s, "telemetryConfig", telemetry);
                put(&mut s, "enforceServers", enforce.map(Value::from));
                object(A, "MCPRegistry", meta, s, status)
            },
        )
}

fn beta_registry() -> impl Strategy<Value = Value> {
    let config = prop_oneof![
        "[a-z]{1,8}".prop_map(|h| (format!("sources:\n  - name: {h}\n    api:\n      endpoint: https://{h}.example.com\nregistries:\n  - name: all\n    sources: [{h}]\n"), None)),
        "[a-z]{1,8}".prop_map(|n| (
            format!("sources:\n  - name: local\n    file:\n      path: /data/{n}/registry.json\n    syncPolicy:\n      interval: 10m\nregistries:\n  - name: default\n    sources: [local]\ndatabase:\n  host: db\n  port: 5432\nauth:\n  mode: anonymous\n"),
            Some((json!([{"name": "data", "configMap": {"name": n}}]), json!([{"name": "data", "mountPath": format!("/data/{n}"), "readOnly": true}]))),
        )),
    ];
    (
        metadata(),
        config,
        option::of(".{0,16}"),
        option::of(dns_name()),
        option::of(vec(dns_name(), 1..3)),
        status(&["Pending", "Ready", "Failed", "Terminating"]),
    )
        .prop_map(|(meta, (yaml, vols), display, pgpass, pulls, status)| {
            let mut s = Map::new();
            s.insert("configYAML".into(), json!(yaml));
            if let Some((v, m)) = vols {
                s.insert("volumes".into(), v);
                s.insert("volumeMounts".into(), m);
            }
            put(&mut s, "displayName", display.map(Value::from));
            put(
                &mut s,
                "pgpassSecretRef",
                pgpass.map(|n| json!({"name": n, "key": ".pgpass"})),
            );
            put(
                &mut s,
                "imagePullSecrets",
                pulls.map(|p| json!(p.iter().map(|n| json!({"name": n})).collect::<Vec<_>>())),
            );
            object(B, "MCPRegistry", meta, s, status)
        })
}

fn tool_config(api: &'static str) -> impl Strategy<Value = Value> {
    (
        metadata(),
        option::of(btree_set("[a-z_]{1,8}", 0..4)),
        option::of(btree_map(
            "[a-z_]{1,8}",
            ("[a-z]{0,6}", any::<bool>()),
            0..3,
        )),
        option::of(vec(dns_name(), 0..3)),
    )
        .prop_map(move |(meta, filter, overrides, referencing)| {
            let mut s = Map::new();
            put(&mut s, "toolsFilter", filter.map(|f| json!(f)));
            put(
                &mut s,
                "toolsOverride",
                overrides.map(|o| {
                    // Distinct exposed names: keep each tool's own name, only the description changes.
                    json!(o
                        .into_iter()
                        .map(|(k, (d, ro))| (
                            k,
                            json!({"description": d, "annotations": {"readOnlyHint": ro}})
                        ))
                        .collect::<Map<_, _>>())
                }),
            );
            let mut status = json!({"configHash": "abc", "observedGeneration": 1});
            if api == A {
                if let Some(r) = referencing {
                    status["referencingServers"] = json!(r);
                }
            }
            object(api, "MCPToolConfig", meta, s, Some(status))
        })
}

/// `spec.openTelemetry` of an MCPTelemetryConfig, valid: an endpoint only with a signal on,
/// sensitive headers never among the plain ones, a CA bundle only without `insecure`.
fn open_telemetry() -> impl Strategy<Value = Value> {
    (
        (option::of(any::<bool>()), option::of(any::<bool>()), option::of(any::<bool>()), option::of(any::<bool>())),
        (option::of(btree_map("X-[A-Z][a-z]{1,6}", "[a-z0-9]{0,8}", 0..3)), option::of(btree_set("Auth-[a-z]{1,6}", 1..3))),
        (option::of(btree_map("[a-z]{1,6}\\.[a-z]{1,6}", "[a-z0-9]{0,8}", 0..3)), option::of(proptest::sample::select(&["0", "0.05", "0.5", "1", "1.0"][..]))),
        (any::<bool>(), option::of(dns_name()), option::of(any::<bool>())),
    )
        .prop_map(|((enabled, insecure, tracing, metrics), (headers, sensitive), (attributes, rate), (endpoint, ca, legacy))| {
            let mut o = Map::new();
            put(&mut o, "enabled", enabled.map(Value::from));
            put(&mut o, "insecure", insecure.map(Value::from));
            let tracing_on = tracing.unwrap_or(false);
            if tracing.is_some() || rate.is_some() {
                let mut t = Map::new();
                put(&mut t, "enabled", tracing.map(Value::from));
                put(&mut t, "samplingRate", rate.map(Value::from));
                o.insert("tracing".into(), Value::Object(t));
            }
            put(&mut o, "metrics", metrics.map(|m| json!({"enabled": m})));
            if endpoint && (tracing_on || metrics.unwrap_or(false)) {
                o.insert("endpoint".into(), json!("otel-collector.monitoring:4318"));
            }
            put(&mut o, "headers", headers.map(|h| json!(h)));
            put(&mut o, "sensitiveHeaders", sensitive.map(|names| {
                json!(names.iter().map(|n| json!({"name": n, "secretKeyRef": {"name": "otel-auth", "key": n.to_lowercase()}})).collect::<Vec<_>>())
            }));
            put(&mut o, "resourceAttributes", attributes.map(|a| json!(a)));
            put(&mut o, "useLegacyAttributes", legacy.map(Value::from));
            if !insecure.unwrap_or(false) {
                put(&mut o, "caBundleRef", ca.map(|cm| json!({"configMapRef": {"name": cm, "key": "ca.crt"}})));
            }
            Value::Object(o)
        })
}

fn mcp_telemetry_config(api: &'static str) -> impl Strategy<Value = Value> {
    (
        metadata(),
        option::of(open_telemetry()),
        option::of(any::<bool>()),
        option::of(btree_set(dns_name(), 1..3)),
    )
        .prop_map(move |(meta, otel, prometheus, users)| {
            let mut s = Map::new();
            put(&mut s, "openTelemetry", otel);
            put(
                &mut s,
                "prometheus",
                prometheus.map(|p| json!({"enabled": p})),
            );
            let mut status = json!({"configHash": "0a1b2c3d", "observedGeneration": 2});
            // v1beta1 dropped the list of users; at v1alpha1 it is kept across a round trip.
            if let (A, Some(users)) = (api, users) {
                status["referencingWorkloads"] = json!(users
                    .iter()
                    .map(|n| json!({"kind": "MCPServer", "name": n}))
                    .collect::<Vec<_>>());
            }
            object(api, "MCPTelemetryConfig", meta, s, Some(status))
        })
}

fn group(api: &'static str) -> impl Strategy<Value = Value> {
    (
        metadata(),
        option::of(".{0,20}"),
        option::of(btree_set(dns_name(), 0..3)),
    )
        .prop_map(move |(meta, d, servers)| {
            let mut s = Map::new();
            put(&mut s, "description", d.map(Value::from));
            let status =
                servers.map(|sv| json!({"phase": "Ready", "servers": sv, "serverCount": sv.len()}));
            object(api, "MCPGroup", meta, s, status)
        })
}

/// A VirtualMCPServer's `config.aggregation`, valid for its strategy: backend names distinct,
/// every served name unique (filters and renames carry the backend's name).
fn aggregation() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("prefix"), Just("priority"), Just("manual")],
        btree_set(dns_name(), 1..4),
        option::of(prop_oneof![Just("{workload}_"), Just("{workload}."), Just("{namespace}-{workload}__")]),
        option::of(any::<bool>()),
        option::of(prop_oneof![Just("allow"), Just("deny")]),
        any::<bool>(),
    )
        .prop_map(|(strategy, workloads, prefix, only_conflicts, visibility, with_tools)| {
            let names: Vec<String> = workloads.into_iter().collect();
            let mut crc = Map::new();
            match strategy {
                "prefix" => {
                    put(&mut crc, "prefixFormat", prefix.map(Value::from));
                    put(&mut crc, "prefixOnlyConflicts", only_conflicts.map(Value::from));
                }
                "priority" => {
                    crc.insert("priorityOrder".into(), json!(names));
                }
                _ => {}
            }
            let mut a = Map::new();
            a.insert("conflictResolution".into(), json!(strategy));
            if !crc.is_empty() {
                a.insert("conflictResolutionConfig".into(), Value::Object(crc));
            }
            put(&mut a, "defaultToolVisibility", visibility.map(Value::from));
            if with_tools {
                let tools: Vec<Value> = names
                    .iter()
                    .map(|w| json!({"workload": w, "filter": [format!("{w}_search")], "toolConfigRef": {"name": "shared"},
                        "overrides": {"search": {"name": format!("{w}_search"), "description": "Search"}}}))
                    .collect();
                a.insert("tools".into(), json!(tools));
            }
            Value::Object(a)
        })
}

fn operational() -> impl Strategy<Value = Value> {
    (
        option::of(prop_oneof![Just("30s"), Just("1m30s"), Just("250ms")]),
        option::of(btree_map(dns_name(), prop_oneof![Just("5s"), Just("2m")], 1..3)),
        option::of(prop_oneof![Just("best_effort"), Just("fail")]),
        option::of((any::<bool>(), 1i64..10, prop_oneof![Just("1s"), Just("60s")])),
    )
        .prop_map(|(default, per, mode, breaker)| {
            let mut timeouts = Map::new();
            put(&mut timeouts, "default", default.map(Value::from));
            put(&mut timeouts, "perWorkload", per.map(|p| json!(p)));
            let mut fh = json!({"healthCheckInterval": "30s", "healthCheckTimeout": "10s", "unhealthyThreshold": 3});
            if let Some(m) = mode {
                fh["partialFailureMode"] = json!(m);
            }
            if let Some((on, threshold, timeout)) = breaker {
                fh["circuitBreaker"] = json!({"enabled": on, "failureThreshold": threshold, "timeout": timeout});
            }
            json!({"timeouts": timeouts, "failureHandling": fh})
        })
}

/// `outgoingAuth`: `spelled` gives the type that names an MCPExternalAuthConfig.
fn outgoing_auth(spellings: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let entry = move || {
        (any::<bool>(), 0..spellings.len(), dns_name()).prop_map(move |(discovered, i, name)| {
            if discovered {
                json!({"type": "discovered"})
            } else {
                json!({"type": spellings[i], "externalAuthConfigRef": {"name": name}})
            }
        })
    };
    (
        option::of(prop_oneof![Just("discovered"), Just("inline")]),
        option::of(entry()),
        option::of(btree_map(dns_name(), entry(), 1..3)),
    )
        .prop_map(|(source, default, backends)| {
            let mut o = Map::new();
            put(&mut o, "source", source.map(Value::from));
            put(&mut o, "default", default);
            put(&mut o, "backends", backends.map(|b| json!(b)));
            Value::Object(o)
        })
}

fn vmcp_status() -> impl Strategy<Value = Option<Value>> {
    option::of(
        (
            prop_oneof![Just("Pending"), Just("Ready"), Just("Degraded"), Just("Failed")],
            btree_set(dns_name(), 0..3),
        )
            .prop_map(|(phase, backends)| {
                let list: Vec<Value> = backends
                    .iter()
                    .map(|b| json!({"name": b, "url": format!("http://{b}:8080/mcp"), "status": "unavailable",
                        "circuitBreakerState": "open", "lastHealthCheck": "2026-01-02T03:04:05Z", "message": "connection refused"}))
                    .collect();
                json!({"phase": phase, "url": "http://vmcp-x.default.svc.cluster.local:4483",
                    "discoveredBackends": list, "backendCount": 0, "observedGeneration": 2})
            }),
    )
}

/// Fields VirtualMCPServer has at both versions.
fn vmcp_common() -> impl Strategy<Value = Map<String, Value>> {
    (
        option::of(aggregation()),
        option::of(operational()),
        option::of(prop_oneof![
            Just("ClusterIP"),
            Just("NodePort"),
            Just("LoadBalancer")
        ]),
        option::of(prop_oneof![Just("ClientIP"), Just("None")]),
        option::of(0i64..4),
        any::<bool>(),
        option::of(btree_set(dns_name(), 1..3)),
    )
        .prop_map(
            |(aggregation, operational, service_type, affinity, replicas, template, pull)| {
                let mut s = Map::new();
                let mut config = Map::new();
                put(&mut config, "aggregation", aggregation);
                put(&mut config, "operational", operational);
                if !config.is_empty() {
                    s.insert("config".into(), Value::Object(config));
                }
                put(&mut s, "serviceType", service_type.map(Value::from));
                put(&mut s, "sessionAffinity", affinity.map(Value::from));
                put(&mut s, "replicas", replicas.map(Value::from));
                if template {
                    s.insert(
                        "podTemplateSpec".into(),
                        json!({"spec": {"nodeSelector": {"pool": "mcp"}}}),
                    );
                }
                put(
                    &mut s,
                    "imagePullSecrets",
                    pull.map(|p| json!(p.iter().map(|n| json!({"name": n})).collect::<Vec<_>>())),
                );
                s
            },
        )
}

/// Inline Cedar authorization, or none.
fn incoming_authz() -> impl Strategy<Value = Option<Value>> {
    option::of(Just(
        json!({"type": "inline", "inline": {"policies": ["permit(principal, action == Action::\"call_tool\", resource);"]}}),
    ))
}

fn oidc_config_ref() -> impl Strategy<Value = Value> {
    dns_name()
        .prop_map(|n| json!({"name": n, "audience": format!("{n}-vmcp"), "scopes": ["openid"]}))
}

/// Every v1alpha1 shape: the group in `config.groupRef` (≤ v0.19), in `groupRef` (v0.20+) or
/// both; the inline `oidcConfig` or `oidcConfigRef`; both spellings of the backend auth type.
fn alpha_vmcp() -> impl Strategy<Value = Value> {
    (
        metadata(),
        vmcp_common(),
        (dns_name(), 0..3usize),
        prop_oneof![Just(0usize), Just(1), Just(2)],
        oidc(),
        oidc_config_ref(),
        incoming_authz(),
        option::of(outgoing_auth(&[
            "externalAuthConfigRef",
            "external_auth_config_ref",
        ])),
        vmcp_status(),
    )
        .prop_map(
            |(
                meta,
                mut spec,
                (group, where_),
                auth,
                inline,
                reference,
                authz,
                outgoing,
                status,
            )| {
                if where_ != 1 {
                    let config = spec.entry("config").or_insert_with(|| json!({}));
                    config["groupRef"] = json!(group);
                }
                if where_ != 0 {
                    spec.insert("groupRef".into(), json!({"name": group}));
                }
                let mut incoming = match auth {
                    0 => json!({"type": "anonymous"}),
                    1 => json!({"type": "oidc", "oidcConfig": inline}),
                    _ => json!({"type": "oidc", "oidcConfigRef": reference}),
                };
                if let Some(a) = authz {
                    incoming["authzConfig"] = a;
                }
                spec.insert("incomingAuth".into(), incoming);
                put(&mut spec, "outgoingAuth", outgoing);
                object(A, "VirtualMCPServer", meta, spec, status)
            },
        )
}

fn beta_vmcp() -> impl Strategy<Value = Value> {
    (
        metadata(),
        vmcp_common(),
        dns_name(),
        any::<bool>(),
        option::of(oidc_config_ref()),
        incoming_authz(),
        option::of(outgoing_auth(&["externalAuthConfigRef"])),
        vmcp_status(),
    )
        .prop_map(
            |(meta, mut spec, group, also_in_config, reference, authz, outgoing, status)| {
                spec.insert("groupRef".into(), json!({"name": group}));
                if also_in_config {
                    let config = spec.entry("config").or_insert_with(|| json!({}));
                    config["groupRef"] = json!(group);
                }
                let mut incoming = match reference {
                    None => json!({"type": "anonymous"}),
                    Some(r) => json!({"type": "oidc", "oidcConfigRef": r}),
                };
                if let Some(a) = authz {
                    incoming["authzConfig"] = a;
                }
                spec.insert("incomingAuth".into(), incoming);
                put(&mut spec, "outgoingAuth", outgoing);
                object(B, "VirtualMCPServer", meta, spec, status)
            },
        )
}

fn entry_common() -> impl Strategy<Value = Map<String, Value>> {
    (
        "[a-z]{1,10}",
        prop_oneof![Just("sse"), Just("streamable-http")],
        option::of(any::<bool>()),
        option::of(dns_name()),
        option::of(btree_map("X-[A-Z][a-z]{1,6}", "[a-z]{1,6}", 1..3)),
        option::of(dns_name()),
    )
        .prop_map(|(host, transport, private, auth, headers, ca)| {
            let mut s = Map::new();
            s.insert(
                "url".into(),
                json!(format!("https://{host}.example.com/mcp")),
            );
            s.insert("transport".into(), json!(transport));
            put(&mut s, "allowPrivateEndpoint", private.map(Value::from));
            put(
                &mut s,
                "externalAuthConfigRef",
                auth.map(|n| json!({"name": n})),
            );
            put(
                &mut s,
                "headerForward",
                headers.map(|h| json!({"addPlaintextHeaders": h})),
            );
            put(
                &mut s,
                "caBundleRef",
                ca.map(|n| json!({"configMapRef": {"name": n, "key": "ca.crt"}})),
            );
            s
        })
}

fn entry_status() -> impl Strategy<Value = Option<Value>> {
    option::of(
        prop_oneof![Just("Valid"), Just("Pending"), Just("Failed")]
            .prop_map(|p| json!({"phase": p, "observedGeneration": 1})),
    )
}

/// Both spellings of `remoteURL` and both shapes of `groupRef`.
fn alpha_entry() -> impl Strategy<Value = Value> {
    (
        metadata(),
        entry_common(),
        alpha_group_ref(),
        entry_status(),
    )
        .prop_map(|(meta, mut spec, group, status)| {
            let url = spec.remove("url").unwrap();
            let spelling = if url.as_str().unwrap().len() % 2 == 0 {
                "remoteURL"
            } else {
                "remoteUrl"
            };
            spec.insert(spelling.into(), url);
            spec.insert("groupRef".into(), group);
            object(A, "MCPServerEntry", meta, spec, status)
        })
}

fn beta_entry() -> impl Strategy<Value = Value> {
    (metadata(), entry_common(), dns_name(), entry_status()).prop_map(
        |(meta, mut spec, group, status)| {
            let url = spec.remove("url").unwrap();
            spec.insert("remoteUrl".into(), url);
            spec.insert("groupRef".into(), json!({"name": group}));
            object(B, "MCPServerEntry", meta, spec, status)
        },
    )
}

/// The object is valid at its own version, converts to `to` and back to itself, and the
/// converted form is valid at `to`.
fn round_trip(obj: &Value, to: &str) -> Result<(), TestCaseError> {
    let own = admit(obj, None, Operation::Create).unwrap();
    prop_assert!(
        own.allowed(),
        "generated object is not valid: {}\n{obj:#}",
        own.errors
    );
    let there = convert(obj, to)
        .map_err(|e| TestCaseError::fail(format!("convert to {to}: {e}\n{obj:#}")))?;
    prop_assert_eq!(there["apiVersion"].as_str(), Some(to));
    let verdict = admit(&there, None, Operation::Create).unwrap();
    prop_assert!(
        verdict.allowed(),
        "converted object is not valid at {}: {}\n{:#}",
        to,
        verdict.errors,
        there
    );
    let back = convert(&there, obj["apiVersion"].as_str().unwrap())
        .map_err(|e| TestCaseError::fail(format!("convert back: {e}")))?;
    prop_assert_eq!(
        &back,
        obj,
        "round trip changed the object; intermediate:\n{:#}",
        there
    );
    Ok(())
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn mcpserver_alpha_beta_alpha(o in alpha_server()) { round_trip(&o, B)?; }
    #[test]
    fn mcpserver_beta_alpha_beta(o in beta_server()) { round_trip(&o, A)?; }
    #[test]
    fn remote_proxy_alpha_beta_alpha(o in alpha_proxy()) { round_trip(&o, B)?; }
    #[test]
    fn remote_proxy_beta_alpha_beta(o in beta_proxy()) { round_trip(&o, A)?; }
    #[test]
    fn registry_alpha_beta_alpha(o in alpha_registry()) { round_trip(&o, B)?; }
    #[test]
    fn registry_beta_alpha_beta(o in beta_registry()) { round_trip(&o, A)?; }
    #[test]
    fn registry_list_alpha_beta_alpha(o in alpha_registry_list()) { round_trip(&o, B)?; }
    /// Stored from the registries layout: read at v1alpha1 and written back, nothing changes.
    #[test]
    fn registry_list_stored_beta_alpha_beta(o in alpha_registry_list()) {
        let stored = convert(&o, B).map_err(|e| TestCaseError::fail(e.to_string()))?;
        round_trip(&stored, A)?;
    }
    #[test]
    fn registry_views_alpha_beta_alpha(o in alpha_registry_views()) { round_trip(&o, B)?; }
    /// Stored from the v0.17.0 layout: read at v1alpha1 and written back, nothing changes.
    #[test]
    fn registry_views_stored_beta_alpha_beta(o in alpha_registry_views()) {
        let stored = convert(&o, B).map_err(|e| TestCaseError::fail(e.to_string()))?;
        round_trip(&stored, A)?;
    }
    /// Later v1alpha1 releases wrote the configYAML layout at v1alpha1 itself.
    #[test]
    fn registry_alpha_config_layout_beta_alpha(o in beta_registry()) {
        let mut o = o;
        o["apiVersion"] = json!(A);
        round_trip(&o, B)?;
    }
    #[test]
    fn tool_config_alpha_beta_alpha(o in tool_config(A)) { round_trip(&o, B)?; }
    #[test]
    fn tool_config_beta_alpha_beta(o in tool_config(B)) { round_trip(&o, A)?; }
    #[test]
    fn telemetry_config_alpha_beta_alpha(o in mcp_telemetry_config(A)) { round_trip(&o, B)?; }
    #[test]
    fn telemetry_config_beta_alpha_beta(o in mcp_telemetry_config(B)) { round_trip(&o, A)?; }
    #[test]
    fn group_both_ways(a in group(A), b in group(B)) { round_trip(&a, B)?; round_trip(&b, A)?; }
    #[test]
    fn vmcp_alpha_beta_alpha(o in alpha_vmcp()) { round_trip(&o, B)?; }
    #[test]
    fn vmcp_beta_alpha_beta(o in beta_vmcp()) { round_trip(&o, A)?; }
    /// Stored from an old shape: read at v1alpha1 and written back, nothing changes.
    #[test]
    fn vmcp_stored_beta_alpha_beta(o in alpha_vmcp()) {
        let stored = convert(&o, B).map_err(|e| TestCaseError::fail(e.to_string()))?;
        round_trip(&stored, A)?;
    }
    #[test]
    fn entry_alpha_beta_alpha(o in alpha_entry()) { round_trip(&o, B)?; }
    #[test]
    fn entry_beta_alpha_beta(o in beta_entry()) { round_trip(&o, A)?; }
}
