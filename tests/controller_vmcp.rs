//! The VirtualMCPServer and MCPServerEntry reconcilers against the in-memory API server: the
//! children and their names, the rendered `vmcp.json` (members, URLs, strategy, merged tool
//! configs, durations), re-rendering and rolling on membership changes, status from a fake
//! runtime `/status` (Degraded, discoveredBackends, backendCount), no writes at steady state,
//! a foreign object left alone, holds, MCPServerEntry validation and MCPGroup entries.

mod controller_support;

use controller_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use mcp_operator::api::v1beta1::{MCPGroup, MCPServerEntry, VirtualMCPServer};
use mcp_operator::controller::resolve::StaticResolver;
use mcp_operator::vmcp::config::{BackendReport, FileConfig, StatusReport, CONFIG_FILE};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NS: &str = "default";

fn obj(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": kind,
           "metadata": {"name": name, "namespace": NS}, "spec": spec})
}

async fn group(c: &Client, name: &str) {
    create::<MCPGroup>(c, obj("MCPGroup", name, json!({}))).await;
}

async fn secret(c: &Client, name: &str, data: Value) {
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    Api::<Secret>::namespaced(c.clone(), NS)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

/// The config the operator rendered for `vmcp`, once `accept` takes it.
async fn rendered(c: &Client, vmcp: &str, accept: impl Fn(&FileConfig) -> bool) -> FileConfig {
    let name = format!("{vmcp}-vmcp-config");
    eventually(&format!("{name} as expected"), || async {
        let cm: ConfigMap = get(c, NS, &name).await?;
        let text = cm.data?.get(CONFIG_FILE)?.clone();
        let file: FileConfig = serde_json::from_str(&text).expect("the runtime reads it");
        accept(&file).then_some(file)
    })
    .await
}

async fn checksum(c: &Client, vmcp: &str) -> Option<String> {
    let d: Deployment = get(c, NS, vmcp).await?;
    let v = serde_json::to_value(d).unwrap();
    v.pointer("/spec/template/metadata/annotations/toolhive.stacklok.dev~1config-checksum")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn vmcp_status(c: &Client, name: &str, accept: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("{name}: status as expected"), || async {
        let v: VirtualMCPServer = get(c, NS, name).await?;
        let status = serde_json::to_value(v.status?).unwrap();
        accept(&status).then_some(status)
    })
    .await
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn resolver() -> Arc<StaticResolver> {
    Arc::new(StaticResolver::new(HashMap::from([(
        "docker.io/mcp/time".to_string(),
        vec!["mcp-server-time".to_string()],
    )])))
}

#[tokio::test]
async fn children_config_and_membership() {
    let h = start_with(None, resolver()).await;
    let c = &h.client;
    group(c, "g").await;
    group(c, "other").await;
    secret(c, "weather-key", json!({"key": "s3cret-value"})).await;
    secret(c, "weather-token", json!({"token": "t0ken-value"})).await;
    create::<mcp_operator::api::v1beta1::MCPExternalAuthConfig>(
        c,
        obj(
            "MCPExternalAuthConfig",
            "weather-bearer",
            json!({"type": "bearerToken", "bearerToken": {"tokenSecretRef": {"name": "weather-token", "key": "token"}}}),
        ),
    )
    .await;
    create_server(
        c,
        obj(
            "MCPServer",
            "time",
            json!({"image": "docker.io/mcp/time", "groupRef": {"name": "g"}}),
        ),
    )
    .await;
    create::<mcp_operator::api::v1beta1::MCPRemoteProxy>(
        c,
        obj(
            "MCPRemoteProxy",
            "docs",
            json!({"remoteUrl": "https://docs.example.com/sse", "transport": "sse", "proxyPort": 9090,
                   "groupRef": {"name": "g"}}),
        ),
    )
    .await;
    create::<MCPServerEntry>(
        c,
        obj(
            "MCPServerEntry",
            "weather",
            json!({"remoteUrl": "https://weather.example.com/mcp", "transport": "streamable-http",
                   "groupRef": {"name": "g"}, "externalAuthConfigRef": {"name": "weather-bearer"},
                   "headerForward": {"addPlaintextHeaders": {"X-Tenant": "acme"},
                       "addHeadersFromSecret": [{"headerName": "X-Api-Key", "valueSecretRef": {"name": "weather-key", "key": "key"}}]}}),
        ),
    )
    .await;
    create::<mcp_operator::api::v1beta1::MCPToolConfig>(
        c,
        obj(
            "MCPToolConfig",
            "time-tools",
            json!({"toolsFilter": ["now"], "toolsOverride": {"get_current_time": {"name": "now"}, "convert_time": {"description": "from config"}}}),
        ),
    )
    .await;
    create::<VirtualMCPServer>(
        c,
        obj(
            "VirtualMCPServer",
            "agg",
            json!({"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"},
                   "serviceType": "NodePort", "imagePullSecrets": [{"name": "pull"}],
                   "podTemplateSpec": {"spec": {"nodeSelector": {"pool": "mcp"}}},
                   "config": {
                     "aggregation": {"conflictResolution": "prefix",
                        "conflictResolutionConfig": {"prefixFormat": "{workload}__", "prefixOnlyConflicts": true},
                        "tools": [{"workload": "time", "toolConfigRef": {"name": "time-tools"},
                                   "overrides": {"convert_time": {"description": "inline wins"}}},
                                  {"workload": "docs", "excludeAll": true}]},
                     "operational": {"timeouts": {"default": "10s", "perWorkload": {"weather": "1m30s"}},
                        "failureHandling": {"healthCheckInterval": "15s", "healthCheckTimeout": "500ms",
                           "unhealthyThreshold": 2, "partialFailureMode": "best_effort",
                           "circuitBreaker": {"enabled": true, "failureThreshold": 4, "timeout": "2m"}}}}}),
        ),
    )
    .await;

    let file = rendered(c, "agg", |f| f.backends.len() == 3).await;
    let names: Vec<&str> = file.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["docs", "time", "weather"], "sorted by name");
    let by = |n: &str| file.backends.iter().find(|b| b.name == n).unwrap();
    assert_eq!(
        by("time").url,
        "http://mcp-time-proxy.default.svc.cluster.local:8080/mcp"
    );
    assert_eq!(by("time").kind.as_deref(), Some("MCPServer"));
    assert_eq!(by("time").transport.as_deref(), Some("streamable-http"));
    assert_eq!(
        by("docs").url,
        "http://mcp-docs-remote-proxy.default.svc.cluster.local:9090/sse"
    );
    assert_eq!(by("docs").transport.as_deref(), Some("sse"));
    let w = by("weather");
    assert_eq!(w.url, "https://weather.example.com/mcp");
    assert_eq!(w.timeout_ms, Some(90_000));
    assert_eq!(w.headers.as_ref().unwrap()["X-Tenant"], "acme");
    let key_env = w.headers_from_env.as_ref().unwrap()["X-Api-Key"].clone();
    let token_env = w.bearer_token_env.clone().expect("the entry's bearerToken");
    assert_eq!(w.allow_private_endpoint, None, "an entry keeps the guard");
    assert_eq!(by("time").allow_private_endpoint, Some(true));
    let a = &file.aggregation;
    assert_eq!(a.conflict_resolution.as_deref(), Some("prefix"));
    assert_eq!(a.prefix_format.as_deref(), Some("{workload}__"));
    assert_eq!(a.prefix_only_conflicts, Some(true));
    let tools = a.tools.as_ref().unwrap();
    assert_eq!(tools[0].workload, "time");
    assert_eq!(tools[0].filter, Some(vec!["now".to_string()]));
    let o = tools[0].overrides.as_ref().unwrap();
    assert_eq!(o["get_current_time"].name.as_deref(), Some("now"));
    assert_eq!(
        o["convert_time"].description.as_deref(),
        Some("inline wins")
    );
    assert_eq!(tools[1].exclude_all, Some(true));
    let op = &file.operational;
    assert_eq!(op.default_timeout_ms, Some(10_000));
    assert_eq!(op.health_check_interval_ms, Some(15_000));
    assert_eq!(op.health_check_timeout_ms, Some(500));
    assert_eq!(op.unhealthy_threshold, Some(2));
    assert_eq!(op.circuit_failure_threshold, Some(4));
    assert_eq!(op.circuit_open_ms, Some(120_000));
    assert_eq!(file.name, "agg");
    assert!(file.auth.is_none(), "anonymous");
    let cm: ConfigMap = get(c, NS, "agg-vmcp-config").await.unwrap();
    assert!(
        !cm.data.as_ref().unwrap()[CONFIG_FILE].contains("s3cret-value")
            && !cm.data.unwrap()[CONFIG_FILE].contains("t0ken-value"),
        "no Secret value in the ConfigMap"
    );

    // The children, their names and labels.
    let d: Deployment = get(c, NS, "agg").await.unwrap();
    let d = serde_json::to_value(d).unwrap();
    let pod = &d["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "vmcp");
    assert_eq!(container["image"], "example.com/mcp-operator:test");
    assert_eq!(
        container["args"],
        json!(["vmcp", "--config", "/etc/vmcp-config/vmcp.json"])
    );
    assert_eq!(container["ports"][0]["containerPort"], 4483);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let env = container["env"].as_array().unwrap();
    let key = env.iter().find(|e| e["name"] == key_env.as_str()).unwrap();
    assert_eq!(
        key["valueFrom"]["secretKeyRef"],
        json!({"name": "weather-key", "key": "key"})
    );
    let token = env
        .iter()
        .find(|e| e["name"] == token_env.as_str())
        .unwrap();
    assert_eq!(
        token["valueFrom"]["secretKeyRef"],
        json!({"name": "weather-token", "key": "token"})
    );
    assert_eq!(pod["serviceAccountName"], "agg-vmcp");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "pull"}]));
    assert_eq!(pod["nodeSelector"]["pool"], "mcp", "podTemplateSpec merged");
    // Scaled by someone else (an HPA, kubectl scale): unset replicas are never taken back.
    Api::<Deployment>::namespaced(c.clone(), NS)
        .patch(
            "agg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let labels = &d["metadata"]["labels"];
    for (k, v) in [
        ("app", "virtualmcpserver"),
        ("app.kubernetes.io/name", "virtualmcpserver"),
        ("app.kubernetes.io/instance", "agg"),
        ("toolhive", "true"),
        ("toolhive-name", "agg"),
        ("app.kubernetes.io/managed-by", "mcp-operator"),
    ] {
        assert_eq!(labels[k], v, "label {k}");
    }
    let svc: Service = get(c, NS, "vmcp-agg").await.unwrap();
    let svc = serde_json::to_value(svc).unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 4483);
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["sessionAffinity"], "ClientIP");
    let sa: ServiceAccount = get(c, NS, "agg-vmcp").await.unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    // No Role or RoleBinding: the runtime has no API rights.
    let roles: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(c.clone(), NS);
    assert!(roles
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());

    let status = vmcp_status(c, "agg", |s| s["url"].is_string()).await;
    assert_eq!(
        status["url"],
        "http://vmcp-agg.default.svc.cluster.local:4483"
    );
    assert_eq!(status["phase"], "Pending", "no ready pod yet");
    assert_eq!(
        condition(&status, "BackendsDiscovered").unwrap()["status"],
        "True"
    );
    // The group lists its entry.
    eventually("the group counts its entry", || async {
        let g: MCPGroup = get(c, NS, "g").await?;
        let s = g.status?;
        (s.entries == Some(vec!["weather".to_string()]) && s.entry_count == Some(1)).then_some(())
    })
    .await;

    // Membership changes re-render the config and roll the pods.
    let before = checksum(c, "agg").await.unwrap();
    create_server(
        c,
        obj(
            "MCPServer",
            "zeta",
            json!({"image": "docker.io/mcp/time", "transport": "sse", "groupRef": {"name": "g"}}),
        ),
    )
    .await;
    let file = rendered(c, "agg", |f| f.backends.len() == 4).await;
    assert_eq!(
        file.backends[3].url,
        "http://mcp-zeta-proxy.default.svc.cluster.local:8080/sse"
    );
    let after = eventually("the pods roll", || async {
        checksum(c, "agg").await.filter(|s| *s != before)
    })
    .await;
    Api::<mcp_operator::api::v1beta1::MCPRemoteProxy>::namespaced(c.clone(), NS)
        .patch(
            "docs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"groupRef": {"name": "other"}}})),
        )
        .await
        .unwrap();
    let file = rendered(c, "agg", |f| f.backends.len() == 3).await;
    assert!(file.backends.iter().all(|b| b.name != "docs"));
    eventually("the pods roll again", || async {
        checksum(c, "agg").await.filter(|s| *s != after)
    })
    .await;
    // A tool config's change reaches the config too.
    Api::<mcp_operator::api::v1beta1::MCPToolConfig>::namespaced(c.clone(), NS)
        .patch(
            "time-tools",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"toolsFilter": ["later"]}})),
        )
        .await
        .unwrap();
    rendered(c, "agg", |f| {
        f.aggregation.tools.as_ref().unwrap()[0].filter == Some(vec!["later".to_string()])
    })
    .await;
    // Three roll-outs later, the replicas someone else set are still theirs.
    let d: Deployment = get(c, NS, "agg").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(3), "replicas left alone");
}

/// A fake runtime: answers `GET /status` with whatever the test put in, and moves every
/// backend's `lastHealthCheck` on at each request (as a real runtime's checks would).
struct FakeRuntime {
    report: Arc<Mutex<StatusReport>>,
    /// Answer 503 instead.
    broken: Arc<std::sync::atomic::AtomicBool>,
    address: String,
}

async fn fake_runtime() -> FakeRuntime {
    let report = Arc::new(Mutex::new(StatusReport::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shared = report.clone();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let is_broken = broken.clone();
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/status",
        axum::routing::get(move || {
            let shared = shared.clone();
            let tick = ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let down = is_broken.load(std::sync::atomic::Ordering::Relaxed);
            async move {
                use axum::response::IntoResponse;
                if down {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                let mut r = shared.lock().unwrap().clone();
                for b in &mut r.backends {
                    b.last_health_check = Some(format!(
                        "2026-01-01T00:{:02}:{:02}Z",
                        (tick / 60) % 60,
                        tick % 60
                    ));
                }
                axum::Json(r).into_response()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeRuntime {
        report,
        broken,
        address,
    }
}

fn backend(name: &str, status: &str, circuit: &str, message: Option<&str>) -> BackendReport {
    BackendReport {
        name: name.into(),
        status: status.into(),
        circuit_breaker_state: Some(circuit.into()),
        consecutive_failures: Some(if status == "ready" { 0 } else { 3 }),
        message: message.map(str::to_owned),
        mcp_revision: Some("2025-06-18".into()),
        ..BackendReport::default()
    }
}

async fn make_ready(c: &Client, name: &str) {
    Api::<Deployment>::namespaced(c.clone(), NS)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn status_follows_the_runtime_report_and_steady_state_writes_nothing() {
    let runtime = fake_runtime().await;
    let address = runtime.address.clone();
    let mut h = start_configured(Some(Duration::from_millis(200)), resolver(), |s| {
        s.vmcp_status_address = Some(address);
    })
    .await;
    let c = &h.client.clone();
    group(c, "g").await;
    for name in ["alpha", "beta"] {
        create::<MCPServerEntry>(
            c,
            obj(
                "MCPServerEntry",
                name,
                json!({"remoteUrl": format!("https://{name}.example.com/mcp"), "transport": "streamable-http", "groupRef": {"name": "g"}}),
            ),
        )
        .await;
    }
    *runtime.report.lock().unwrap() = StatusReport {
        config_hash: None,
        backends: vec![
            backend("alpha", "ready", "closed", None),
            backend("beta", "unavailable", "open", Some("connection refused")),
        ],
    };
    create::<VirtualMCPServer>(
        c,
        obj(
            "VirtualMCPServer",
            "agg",
            json!({"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"}}),
        ),
    )
    .await;
    let _ = rendered(c, "agg", |f| f.backends.len() == 2).await;
    let pending = vmcp_status(c, "agg", |s| s["phase"] == "Pending").await;
    assert_eq!(pending["discoveredBackends"][0]["status"], "unknown");
    make_ready(c, "agg").await;
    let degraded = vmcp_status(c, "agg", |s| s["phase"] == "Degraded").await;
    assert_eq!(degraded["backendCount"], 1);
    let beta = &degraded["discoveredBackends"][1];
    assert_eq!(beta["name"], "beta");
    assert_eq!(beta["status"], "unavailable");
    assert_eq!(beta["circuitBreakerState"], "open");
    assert_eq!(beta["message"], "connection refused");
    assert_eq!(beta["url"], "https://beta.example.com/mcp");
    assert_eq!(
        degraded["discoveredBackends"][0]["mcpRevision"],
        "2025-06-18"
    );
    assert!(degraded["message"].as_str().unwrap().contains("beta"));
    assert_eq!(condition(&degraded, "Ready").unwrap()["status"], "True");

    // The backend comes back.
    runtime.report.lock().unwrap().backends[1] = backend("beta", "ready", "closed", None);
    let ready = vmcp_status(c, "agg", |s| s["phase"] == "Ready").await;
    assert_eq!(ready["backendCount"], 2);
    assert_eq!(
        ready["discoveredBackends"][1]["circuitBreakerState"],
        "closed"
    );

    // Steady: polled every 200 ms with a new lastHealthCheck each time, and nothing written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.server.clear_requests();
    let before = h.metrics.successful_reconciles("VirtualMCPServer");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        h.metrics.successful_reconciles("VirtualMCPServer") - before >= 5,
        "reconciled (and polled) again"
    );
    assert_no_writes(&h, "at steady state");
    h.restart_controller();
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.server.clear_requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_writes(&h, "after a restart");

    // The report cannot be read: the pods still serve, so Ready stays, and every backend says
    // that nothing is known of it.
    runtime
        .broken
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let blind = vmcp_status(c, "agg", |s| {
        s["discoveredBackends"][0]["status"] == "unknown"
    })
    .await;
    assert_eq!(blind["phase"], "Ready");
    assert_eq!(blind["backendCount"], 0);
    assert!(
        blind["message"].as_str().unwrap().contains("503"),
        "{blind}"
    );
}

/// Fails naming the writes (Events aside) the server received since the last clear.
fn assert_no_writes(h: &Harness, when: &str) {
    let writes: Vec<String> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| r.verb.is_write() && r.resource != "events")
        .map(|r| format!("{:?} {}", r.verb, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "{} writes {when}: {writes:?}",
        writes.len()
    );
}

/// A user's Service holds the name the endpoint's Service would take: it is left as it was,
/// the Deployment is not started, and the status says what is in the way.
#[tokio::test]
async fn a_foreign_object_in_the_way_is_not_taken() {
    let h = start_with(None, resolver()).await;
    let c = &h.client;
    group(c, "g").await;
    let mine: Service = serde_json::from_value(json!({
        "metadata": {"name": "vmcp-agg", "labels": {"app": "site"}},
        "spec": {"selector": {"app": "site"}, "ports": [{"name": "web", "port": 80}]}}))
    .unwrap();
    let api = Api::<Service>::namespaced(c.clone(), NS);
    let was = api.create(&PostParams::default(), &mine).await.unwrap();
    create::<VirtualMCPServer>(
        c,
        obj(
            "VirtualMCPServer",
            "agg",
            json!({"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"}}),
        ),
    )
    .await;
    let status = vmcp_status(c, "agg", |s| {
        condition(s, "Ready").is_some_and(|r| r["reason"] == "ChildConflict")
    })
    .await;
    assert_eq!(status["phase"], "Failed");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("Service \"vmcp-agg\""));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = api.get("vmcp-agg").await.unwrap();
    assert_eq!(
        serde_json::to_value(&now).unwrap(),
        serde_json::to_value(&was).unwrap(),
        "the user's Service is untouched"
    );
    assert!(get::<Deployment>(c, NS, "agg").await.is_none());
}

/// What holds a VirtualMCPServer (nothing is rolled out), with the condition that says why.
struct Hold {
    what: &'static str,
    /// Objects created first (besides group `g`).
    before: Vec<Value>,
    spec: Value,
    condition: &'static str,
    reason: &'static str,
    /// A piece of the message naming the field or object.
    names: &'static str,
}

#[tokio::test]
async fn holds_say_why_with_a_condition() {
    let h = start_with(None, resolver()).await;
    let c = &h.client;
    group(c, "g").await;
    let anonymous = json!({"type": "anonymous"});
    let cases = [
        Hold {
            what: "missing group",
            before: vec![],
            spec: json!({"groupRef": {"name": "nowhere"}, "incomingAuth": anonymous}),
            condition: "GroupRefValidated",
            reason: "GroupRefNotFound",
            names: "MCPGroup \"nowhere\"",
        },
        Hold {
            what: "missing tool config",
            before: vec![],
            spec: json!({"groupRef": {"name": "g"}, "incomingAuth": anonymous,
                "config": {"aggregation": {"tools": [{"workload": "x", "toolConfigRef": {"name": "absent"}}]}}}),
            condition: "ToolConfigValidated",
            reason: "ToolConfigNotFound",
            names: "MCPToolConfig \"absent\"",
        },
        Hold {
            what: "outgoing auth from an MCPExternalAuthConfig",
            before: vec![],
            spec: json!({"groupRef": {"name": "g"}, "incomingAuth": anonymous,
                "outgoingAuth": {"source": "inline", "default": {"type": "externalAuthConfigRef", "externalAuthConfigRef": {"name": "x"}}}}),
            condition: "AuthConfigured",
            reason: "OutgoingAuthNotSupported",
            names: "spec.outgoingAuth.default",
        },
        Hold {
            what: "an entry naming an MCPExternalAuthConfig that does not exist",
            before: vec![obj(
                "MCPServerEntry",
                "guarded",
                json!({"remoteUrl": "https://g.example.com/mcp",
                "transport": "streamable-http", "groupRef": {"name": "g2"}, "externalAuthConfigRef": {"name": "creds"}}),
            )],
            spec: json!({"groupRef": {"name": "g2"}, "incomingAuth": anonymous}),
            condition: "AuthConfigured",
            reason: "BackendAuthNotRendered",
            names: "MCPServerEntry \"guarded\" spec.externalAuthConfigRef (MCPExternalAuthConfig \"creds\"): it does not exist",
        },
        Hold {
            what: "an entry's header Secret missing",
            before: vec![obj(
                "MCPServerEntry",
                "keyed",
                json!({"remoteUrl": "https://k.example.com/mcp",
                "transport": "streamable-http", "groupRef": {"name": "g3"},
                "headerForward": {"addHeadersFromSecret": [{"headerName": "X-Key", "valueSecretRef": {"name": "nope", "key": "k"}}]}}),
            )],
            spec: json!({"groupRef": {"name": "g3"}, "incomingAuth": anonymous}),
            condition: "BackendsDiscovered",
            reason: "BackendSecretNotFound",
            names: "Secret \"nope\"",
        },
        Hold {
            what: "an OIDC config that does not exist",
            before: vec![],
            spec: json!({"groupRef": {"name": "g"}, "incomingAuth": {"type": "oidc",
                "oidcConfigRef": {"name": "idp", "audience": "vmcp"}}}),
            condition: "OIDCConfigRefValidated",
            reason: "OIDCConfigRefNotFound",
            names: "idp",
        },
    ];
    group(c, "g2").await;
    group(c, "g3").await;
    for (i, case) in cases.iter().enumerate() {
        for o in &case.before {
            create::<MCPServerEntry>(c, o.clone()).await;
        }
        let name = format!("held{i}");
        create::<VirtualMCPServer>(c, obj("VirtualMCPServer", &name, case.spec.clone())).await;
        let status = vmcp_status(c, &name, |s| {
            condition(s, case.condition).is_some_and(|x| x["status"] == "False")
        })
        .await;
        let cond = condition(&status, case.condition).unwrap();
        assert_eq!(cond["reason"], case.reason, "{}: {status}", case.what);
        assert!(
            cond["message"].as_str().unwrap().contains(case.names),
            "{}: {cond}",
            case.what
        );
        assert_eq!(status["phase"], "Failed", "{}", case.what);
        assert!(
            get::<Deployment>(c, NS, &name).await.is_none(),
            "{}: nothing rolled out",
            case.what
        );
    }
}

/// One MCPServerEntry and what its status must say.
struct EntryCase {
    name: &'static str,
    spec: Value,
    phase: &'static str,
    condition: &'static str,
    status: &'static str,
    reason: &'static str,
}

#[tokio::test]
async fn entries_are_validated() {
    let h = start_with(None, resolver()).await;
    let c = &h.client;
    group(c, "g").await;
    create::<mcp_operator::api::v1beta1::MCPExternalAuthConfig>(
        c,
        obj(
            "MCPExternalAuthConfig",
            "creds",
            json!({"type": "unauthenticated"}),
        ),
    )
    .await;
    secret(c, "hdr", json!({"k": "v"})).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ca"}, "data": {"ca.crt": "x"}}))
            .unwrap();
    Api::<ConfigMap>::namespaced(c.clone(), NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let base = |extra: Value| {
        let mut s = json!({"remoteUrl": "https://mcp.example.com/mcp", "transport": "streamable-http", "groupRef": {"name": "g"}});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let cases = [
        EntryCase {
            name: "plain",
            spec: base(json!({})),
            phase: "Valid",
            condition: "Valid",
            status: "True",
            reason: "ConfigValid",
        },
        EntryCase {
            name: "grouped",
            spec: base(json!({})),
            phase: "Valid",
            condition: "GroupRefValidated",
            status: "True",
            reason: "GroupRefValid",
        },
        EntryCase {
            name: "orphan",
            spec: base(json!({"groupRef": {"name": "none"}})),
            phase: "Failed",
            condition: "GroupRefValidated",
            status: "False",
            reason: "GroupRefNotFound",
        },
        EntryCase {
            name: "authed",
            spec: base(json!({"externalAuthConfigRef": {"name": "creds"}})),
            phase: "Valid",
            condition: "ExternalAuthConfigValidated",
            status: "True",
            reason: "AuthConfigValid",
        },
        EntryCase {
            name: "unauthed",
            spec: base(json!({})),
            phase: "Valid",
            condition: "ExternalAuthConfigValidated",
            status: "True",
            reason: "AuthConfigNotConfigured",
        },
        EntryCase {
            name: "lost-auth",
            spec: base(json!({"externalAuthConfigRef": {"name": "gone"}})),
            phase: "Failed",
            condition: "ExternalAuthConfigValidated",
            status: "False",
            reason: "AuthConfigNotFound",
        },
        EntryCase {
            name: "ca-ok",
            spec: base(json!({"caBundleRef": {"configMapRef": {"name": "ca", "key": "ca.crt"}}})),
            phase: "Valid",
            condition: "CABundleRefValidated",
            status: "True",
            reason: "CABundleRefValid",
        },
        EntryCase {
            name: "ca-missing",
            spec: base(json!({"caBundleRef": {"configMapRef": {"name": "nope", "key": "ca.crt"}}})),
            phase: "Failed",
            condition: "CABundleRefValidated",
            status: "False",
            reason: "CABundleRefNotFound",
        },
        EntryCase {
            name: "ca-no-key",
            spec: base(json!({"caBundleRef": {"configMapRef": {"name": "ca", "key": "other"}}})),
            phase: "Failed",
            condition: "CABundleRefValidated",
            status: "False",
            reason: "CABundleRefInvalid",
        },
        EntryCase {
            name: "hdr-ok",
            spec: base(
                json!({"headerForward": {"addHeadersFromSecret": [{"headerName": "X-K", "valueSecretRef": {"name": "hdr", "key": "k"}}]}}),
            ),
            phase: "Valid",
            condition: "HeaderSecretRefsValidated",
            status: "True",
            reason: "HeaderSecretsValid",
        },
        EntryCase {
            name: "hdr-missing",
            spec: base(
                json!({"headerForward": {"addHeadersFromSecret": [{"headerName": "X-K", "valueSecretRef": {"name": "hdr", "key": "nokey"}}]}}),
            ),
            phase: "Failed",
            condition: "HeaderSecretRefsValidated",
            status: "False",
            reason: "HeaderSecretNotFound",
        },
        // Created past the webhook: the reconciler's own check refuses the metadata address.
        EntryCase {
            name: "metadata",
            spec: base(json!({"remoteUrl": "http://169.254.169.254/latest"})),
            phase: "Failed",
            condition: "RemoteURLValidated",
            status: "False",
            reason: "RemoteURLInvalid",
        },
        EntryCase {
            name: "metadata-valid",
            spec: base(json!({"remoteUrl": "http://169.254.169.254/latest"})),
            phase: "Failed",
            condition: "Valid",
            status: "False",
            reason: "ConfigInvalid",
        },
    ];
    for case in &cases {
        create::<MCPServerEntry>(c, obj("MCPServerEntry", case.name, case.spec.clone())).await;
    }
    for case in &cases {
        let status = eventually(&format!("{}: status", case.name), || async {
            let e: MCPServerEntry = get(c, NS, case.name).await?;
            let s = serde_json::to_value(e.status?).unwrap();
            (s["phase"] == case.phase).then_some(s)
        })
        .await;
        let cond = condition(&status, case.condition)
            .unwrap_or_else(|| panic!("{}: no {} in {status}", case.name, case.condition));
        assert_eq!(cond["status"], case.status, "{}: {cond}", case.name);
        assert_eq!(cond["reason"], case.reason, "{}: {cond}", case.name);
    }
    // Fixing what was missing turns the entry Valid.
    group(c, "none").await;
    eventually("orphan: Valid once its group exists", || async {
        let e: MCPServerEntry = get(c, NS, "orphan").await?;
        (e.status?.phase.as_deref() == Some("Valid")).then_some(())
    })
    .await;
}

/// `incomingAuth: oidc` with an MCPOIDCConfig and a Cedar policy: resolved as for an MCPServer
/// into the runtime's `auth` block, the client secret reaching the pod only by `secretKeyRef`.
#[tokio::test]
async fn incoming_auth_is_resolved_into_the_config() {
    let h = start_with(None, resolver()).await;
    let c = &h.client;
    group(c, "g").await;
    secret(c, "idp-client", json!({"secret": "very-secret"})).await;
    create::<mcp_operator::api::v1beta1::MCPOIDCConfig>(
        c,
        obj(
            "MCPOIDCConfig",
            "idp",
            json!({"type": "inline", "inline": {"issuer": "https://idp.example.com",
                "introspectionUrl": "https://idp.example.com/introspect", "clientId": "mcp",
                "clientSecretRef": {"name": "idp-client", "key": "secret"}}}),
        ),
    )
    .await;
    create::<VirtualMCPServer>(
        c,
        obj(
            "VirtualMCPServer",
            "agg",
            json!({"groupRef": {"name": "g"},
                   "incomingAuth": {"type": "oidc", "oidcConfigRef": {"name": "idp", "audience": "vmcp"},
                       "authzConfig": {"type": "inline", "inline": {"policies": ["permit(principal, action, resource);"]}}}}),
        ),
    )
    .await;
    let file = rendered(c, "agg", |f| f.auth.is_some()).await;
    let auth = serde_json::to_value(file.auth.unwrap()).unwrap();
    assert_eq!(auth["oidc"]["issuer"], "https://idp.example.com", "{auth}");
    assert_eq!(auth["oidc"]["audience"], "vmcp", "{auth}");
    assert!(auth["authz"].is_object(), "{auth}");
    let cm: ConfigMap = get(c, NS, "agg-vmcp-config").await.unwrap();
    assert!(!cm.data.unwrap()[CONFIG_FILE].contains("very-secret"));
    let d: Deployment = get(c, NS, "agg").await.unwrap();
    let d = serde_json::to_value(d).unwrap();
    let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(
        env.iter()
            .any(|e| e["valueFrom"]["secretKeyRef"]
                == json!({"name": "idp-client", "key": "secret"})),
        "{env:?}"
    );
    let status = vmcp_status(c, "agg", |s| s["oidcConfigHash"].is_string()).await;
    assert_eq!(
        condition(&status, "OIDCConfigRefValidated").unwrap()["status"],
        "True"
    );
}
