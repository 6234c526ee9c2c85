//! End to end: the real `kubectl` against the in-memory API server, which calls our admission
//! and conversion webhooks over TLS exactly as configured for a cluster (Service references,
//! caBundle). Needs scripts/install-kube-tools.sh (the test says so when kubectl is missing).

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use mcp_operator::api::crd;
use mcp_operator::webhook::config::{
    mutating_configuration, validating_configuration, ConfigOptions,
};
use mcp_operator::webhook::server::{start, RunningServer, ServerOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use test_apiserver::{Options, TestApiServer};

const NAMESPACE: &str = "mcp-operator-system";
const SERVICE: &str = "mcp-operator-webhook";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn kubectl_path() -> PathBuf {
    let p = root().join(".tools/bin/kubectl");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps.sh first",
        p.display()
    );
    p
}

struct Cluster {
    server: TestApiServer,
    _webhook: RunningServer,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    _controller: tokio::task::JoinHandle<()>,
}

impl Cluster {
    async fn kubectl(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(kubectl_path())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output();
        tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("kubectl hung")
            .unwrap()
    }

    /// Waits (up to 10 s) until `kubectl get KIND NAME -n NS` finds the object.
    async fn wait_until_exists(&self, kind: &str, name: &str, ns: &str) {
        for _ in 0..100 {
            if self
                .kubectl(&["get", kind, name, "-n", ns])
                .await
                .status
                .success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{kind}/{name} was not created");
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args).await;
        assert!(
            o.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

/// The API server, our webhook server (admission + conversion), CRDs converting through it,
/// and the webhook configurations the chart would install.
async fn cluster() -> Cluster {
    mcp_operator::crypto::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let ca = mcp_operator::webhook::certs::generate_ca(
        "e2e CA",
        mcp_operator::webhook::certs::CA_VALIDITY,
    )
    .unwrap();
    let dns = format!("{SERVICE}.{NAMESPACE}.svc");
    let pair = ca
        .issue_serving(&[dns, "localhost".into()], Duration::from_secs(3600))
        .unwrap();
    mcp_operator::webhook::certs::write_cert_dir(&certs, &ca, &pair, true).unwrap();
    let ca_pem = std::fs::read(certs.join("ca.crt")).unwrap();

    let server = TestApiServer::start(Options::default()).await.unwrap();
    let client = server.client().unwrap();
    let mut options = ServerOptions::new(certs.clone(), "127.0.0.1:0".parse().unwrap());
    options.conversion = Some(mcp_operator::webhook::conversion::handler());
    options.lookup = Some(std::sync::Arc::new(
        mcp_operator::webhook::lookup::KubeLookup::new(client.clone()),
    ));
    let webhook = start(options).await.unwrap();
    server.set_service(
        &format!("{NAMESPACE}/{SERVICE}"),
        &format!("127.0.0.1:{}", webhook.addr().port()),
    );

    for ns in [NAMESPACE, "toolhive-system"] {
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        let hook = c
            .spec
            .conversion
            .as_mut()
            .unwrap()
            .webhook
            .as_mut()
            .unwrap();
        hook.client_config.as_mut().unwrap().ca_bundle =
            Some(k8s_openapi::ByteString(ca_pem.clone()));
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    let mut config = ConfigOptions::new(SERVICE, NAMESPACE);
    config.ca_bundle = Some(ca_pem);
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating_configuration(&config))
        .await
        .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mutating_configuration(&config))
        .await
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    // The operator's controllers, as `run` starts them on the leader.
    let resolver =
        mcp_operator::controller::resolve::StaticResolver::new(std::collections::HashMap::from([
            (
                "docker.io/mcp/fetch".to_string(),
                vec!["mcp-server-fetch".to_string()],
            ),
            (
                "ghcr.io/github/github-mcp-server".to_string(),
                vec!["github-mcp-server".to_string(), "stdio".to_string()],
            ),
        ]));
    let settings = mcp_operator::controller::mcpserver::Settings {
        bridge_image: "example.com/mcp-operator:e2e".into(),
        ..Default::default()
    };
    let controller = tokio::spawn(mcp_operator::controller::run_all(
        client,
        None,
        settings,
        std::sync::Arc::new(resolver),
        Default::default(),
    ));
    Cluster {
        server,
        _webhook: webhook,
        kubeconfig,
        _dir: dir,
        _controller: controller,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_goes_through_our_webhooks() {
    let c = cluster().await;
    let seeds = root().join("examples/seed");
    let out = c
        .ok(&["apply", "--validate=false", "-f", seeds.to_str().unwrap()])
        .await;
    assert!(
        out.contains("mcpserver.toolhive.stacklok.dev/github created"),
        "{out}"
    );
    assert!(
        out.contains("mcpregistry.toolhive.stacklok.dev/my-registry created"),
        "{out}"
    );
    assert!(
        out.contains("Warning: spec.mcpPort: ignored for transport stdio"),
        "warnings reach kubectl: {out}"
    );

    // The controller made every child with the documented names.
    for (kind, name) in [
        ("deployment", "github"),
        ("service", "mcp-github-proxy"),
        ("serviceaccount", "github-sa"),
        ("configmap", "github-bridge-config"),
    ] {
        c.wait_until_exists(kind, name, "toolhive-system").await;
    }
    let deployment: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "deployment",
            "github",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0]["valueFrom"]["secretKeyRef"]["name"], "github-token",
        "{env}"
    );
    let url = c.ok(&["wait", "--for=jsonpath={.status.url}=http://mcp-github-proxy.toolhive-system.svc.cluster.local:8080/mcp", "mcpserver/github", "-n", "toolhive-system", "--timeout=20s"]).await;
    assert!(url.contains("condition met"), "{url}");

    // The mutating webhook filled in upstream's defaults.
    let github: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpserver",
            "github",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(github["spec"]["transport"], "stdio");
    assert_eq!(github["spec"]["proxyPort"], 8080);
    assert_eq!(github["spec"]["sessionAffinity"], "ClientIP");

    // Errors the schema can say, the API server says itself (before any validating webhook).
    let bad = c._dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: bad, namespace: default}\nspec:\n  image: docker.io/mcp/fetch\n  transport: grpc\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", bad.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.transport: Unsupported value: \"grpc\""),
        "{err}"
    );

    // What only we can say, our webhook says: refused by kubectl apply, field and reason.
    std::fs::write(&bad, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: bad, namespace: default}\nspec:\n  image: docker.io/mcp/fetch\n  env: [{name: MY VAR, value: x}]\n  secrets: [{name: tok, key: token, targetEnvName: MY VAR}]\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", bad.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // kubectl prints a 422 with causes one field per line (its message, which names the
    // webhook, is shown only for denials without causes).
    assert!(err.contains("The MCPServer \"bad\" is invalid"), "{err}");
    assert!(
        err.contains("* spec.env[0].name: Invalid value: \"MY VAR\""),
        "{err}"
    );
    assert!(
        err.contains("collides with an entry of spec.env"),
        "only our webhook says this: {err}"
    );
    assert!(c
        .server
        .stored_object("toolhive.stacklok.dev", "mcpservers", "default", "bad")
        .is_none());

    // A registry whose config names a source it does not define never gets stored.
    let reg = c._dir.path().join("reg.yaml");
    std::fs::write(&reg, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRegistry\nmetadata: {name: reg, namespace: default}\nspec:\n  configYAML: |\n    sources: [{name: a, api: {endpoint: 'https://r.example.com'}}]\n    registries: [{name: all, sources: [a, b]}]\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", reg.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("registries[0].sources[1]: unknown source \"b\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A missing Secret is a warning, not a denial (GitOps applies in any order).
    let good = c._dir.path().join("good.yaml");
    std::fs::write(&good, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: good, namespace: default}\nspec:\n  image: docker.io/mcp/fetch\n  secrets: [{name: not-yet, key: token, targetEnvName: TOKEN}]\n").unwrap();
    let out = c
        .ok(&["apply", "--validate=false", "-f", good.to_str().unwrap()])
        .await;
    assert!(out.contains("Warning:") && out.contains("not-yet"), "{out}");

    // Printer columns.
    let table = c.ok(&["get", "mcpservers", "-A"]).await;
    let header = table.lines().next().unwrap_or_default();
    for col in ["NAME", "STATUS", "READY", "REPLICAS", "URL", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_objects_are_stored_new_and_read_at_both_versions() {
    let c = cluster().await;
    let old = root().join("examples/v1alpha1/mcpserver-old.yaml");
    let out = c
        .ok(&["apply", "--validate=false", "-f", old.to_str().unwrap()])
        .await;
    assert!(
        out.contains("mcpserver.toolhive.stacklok.dev/time created"),
        "{out}"
    );
    assert!(
        out.contains("Warning:"),
        "the deprecated version warns: {out}"
    );

    // Stored at v1beta1, converted by our webhook.
    let stored = c
        .server
        .stored_object(
            "toolhive.stacklok.dev",
            "mcpservers",
            "toolhive-system",
            "time",
        )
        .unwrap();
    assert_eq!(stored["apiVersion"], "toolhive.stacklok.dev/v1beta1");
    assert_eq!(stored["spec"]["proxyPort"], 9090);
    assert_eq!(stored["spec"]["groupRef"]["name"], "research");

    // Its inline oidcConfig (kept in the stash) is not enforced by the data path: the operator
    // holds it and runs nothing, rather than serving it unauthenticated (issue 17, item 15).
    let held = c
        .ok(&[
            "wait",
            "--for=jsonpath={.status.conditions[?(@.type==\"Accepted\")].reason}=AuthenticationNotSupported",
            "mcpserver/time",
            "-n",
            "toolhive-system",
            "--timeout=20s",
        ])
        .await;
    assert!(held.contains("condition met"), "{held}");
    let deployments = c
        .ok(&["get", "deployments", "-n", "toolhive-system", "-o", "name"])
        .await;
    assert!(
        !deployments.contains("deployment.apps/time"),
        "{deployments}"
    );

    // Read back at the old version: the old shape, whole.
    let alpha: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpservers.v1alpha1.toolhive.stacklok.dev",
            "time",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(alpha["apiVersion"], "toolhive.stacklok.dev/v1alpha1");
    assert_eq!(alpha["spec"]["port"], 9090);
    assert_eq!(alpha["spec"]["targetPort"], 3000);
    assert_eq!(alpha["spec"]["groupRef"], "research");
    assert_eq!(
        alpha["spec"]["oidcConfig"]["kubernetes"]["audience"],
        "time-server"
    );
    assert!(
        alpha["metadata"]["annotations"]
            .get("toolhive.stacklok.dev/v1alpha1-port")
            .is_none(),
        "stash annotations never show at v1alpha1"
    );

    // And at the new version.
    let beta: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpservers.v1beta1.toolhive.stacklok.dev",
            "time",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(beta["spec"]["mcpPort"], 3000);
    assert!(beta["spec"].get("port").is_none());

    // An edit at the old version keeps every other field.
    c.ok(&[
        "patch",
        "mcpservers.v1alpha1.toolhive.stacklok.dev",
        "time",
        "-n",
        "toolhive-system",
        "--type=merge",
        "-p",
        r#"{"spec":{"tools":["get_current_time"]}}"#,
    ])
    .await;
    let alpha: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpservers.v1alpha1.toolhive.stacklok.dev",
            "time",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(alpha["spec"]["tools"], json!(["get_current_time"]));
    assert_eq!(alpha["spec"]["port"], 9090);
    assert_eq!(
        alpha["spec"]["telemetry"]["openTelemetry"]["endpoint"],
        "otel-collector.monitoring:4317"
    );
}

/// `convert` output applied with kubectl means what the input meant: strings that a YAML 1.1
/// reader (kubectl's) would take for booleans or numbers stay strings (issue 16, item 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converted_manifests_mean_the_same_to_kubectl() {
    let c = cluster().await;
    let ambiguous = [
        "no",
        "on",
        "off",
        "y",
        "1_000",
        "1:20",
        "0x10",
        "2026-12-05",
        "~",
    ];
    let env: Vec<Value> = ambiguous
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"name": format!("V{i}"), "value": v}))
        .collect();
    let old = json!({"apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPServer",
        "metadata": {"name": "quoted", "namespace": "toolhive-system", "annotations": {"note": "yes"}},
        "spec": {"image": "docker.io/mcp/fetch", "port": 8080, "args": ambiguous, "env": env}});
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("old.yaml");
    std::fs::write(&input, serde_json::to_string(&old).unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["convert", "--to", "v1beta1", "-f"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let converted = dir.path().join("new.yaml");
    std::fs::write(&converted, &out.stdout).unwrap();
    c.ok(&["apply", "-f", converted.to_str().unwrap()]).await;
    let back: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpserver",
            "quoted",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(
        back["spec"]["args"],
        json!(ambiguous),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(back["spec"]["env"], json!(env));
    assert_eq!(back["metadata"]["annotations"]["note"], "yes");
}

/// Upstream's v0.21.0 example manifests (`tests/upstream/`), every object `check` accepts,
/// applied with kubectl through the webhooks as a ToolHive user would: stored at v1beta1, and
/// read back at v1alpha1 equal in `spec` to what was applied, apart from schema defaults
/// (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_v1alpha1_examples_apply_and_read_back_unchanged() {
    apply_and_read_back("v0.21.0", 50).await;
}

/// The same for v0.14.0's, among them MCPRegistry's `registries` layout (ToolHive v0.6.7 to
/// v0.16): stored as a working `configYAML` registry, read back as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_v0_14_examples_apply_and_read_back_unchanged() {
    let (registries, _) = apply_and_read_back("v0.14.0", 50).await;
    assert!(
        registries >= 19,
        "{registries} MCPRegistries in the registries layout"
    );
}

/// The same for v0.17.0's, among them MCPRegistry's typed `sources` with views (that release
/// only): stored as a working `configYAML` registry, read back as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_v0_17_examples_apply_and_read_back_unchanged() {
    let (_, views) = apply_and_read_back("v0.17.0", 60).await;
    assert!(views >= 18, "{views} MCPRegistries in the sources layout");
}

/// Applies every v1alpha1 object of `tests/upstream/<tag>` that `check` accepts and reads it
/// back; returns how many were MCPRegistries of the `registries` layout, and of the `sources`
/// layout.
async fn apply_and_read_back(tag: &str, at_least: usize) -> (usize, usize) {
    let c = cluster().await;
    let dir = root().join("tests/upstream").join(tag);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["check", "--output", "json", "-f"])
        .arg(&dir)
        .output()
        .unwrap();
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let accepted: Vec<&Value> = results
        .iter()
        .filter(|r| r["allowed"] == true && r["apiVersion"] == "toolhive.stacklok.dev/v1alpha1")
        .collect();
    assert!(
        accepted.len() >= at_least,
        "{tag}: {} accepted v1alpha1 objects",
        accepted.len()
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut namespaces = std::collections::BTreeSet::new();
    let mut registry_lists = 0;
    let mut registry_views = 0;
    for (i, r) in accepted.iter().enumerate() {
        let ns = r["namespace"].as_str().unwrap();
        if ns != NAMESPACE && ns != "toolhive-system" && namespaces.insert(ns.to_string()) {
            c.kubectl(&["create", "namespace", ns]).await;
        }
        // The object as the user wrote it: the file's own document, not the defaulted one.
        let docs = mcp_operator::manifest::read_paths(&[root().join(r["file"].as_str().unwrap())])
            .unwrap();
        let doc = docs
            .iter()
            .find(|d| d.index as u64 == r["index"].as_u64().unwrap())
            .unwrap();
        let path = tmp.path().join(format!("{i}.json"));
        std::fs::write(&path, serde_json::to_vec(&doc.value).unwrap()).unwrap();
        c.ok(&["apply", "-f", path.to_str().unwrap()]).await;
        let kind = r["kind"].as_str().unwrap().to_lowercase();
        let name = r["name"].as_str().unwrap();
        let stored = c
            .server
            .stored_object("toolhive.stacklok.dev", &plural(&kind), ns, name)
            .unwrap();
        assert_eq!(
            stored["apiVersion"], "toolhive.stacklok.dev/v1beta1",
            "{kind}/{name}"
        );
        let views = doc.value.pointer("/spec/sources").is_some();
        if kind == "mcpregistry" && (views || doc.value.pointer("/spec/registries").is_some()) {
            if views {
                registry_views += 1;
            } else {
                registry_lists += 1;
            }
            assert_stored_as_config_layout(&stored, name, !views);
        }
        let back: Value = serde_json::from_str(
            &c.ok(&[
                "get",
                &format!("{}.v1alpha1.toolhive.stacklok.dev", plural(&kind)),
                name,
                "-n",
                ns,
                "-o",
                "json",
            ])
            .await,
        )
        .unwrap();
        assert_eq!(
            back["spec"], r["defaulted"]["spec"],
            "{kind}/{name} ({}) read back at v1alpha1 differs from what was applied (with defaults)",
            r["file"]
        );
    }
    (registry_lists, registry_views)
}

/// A `registries` (or `sources`) object is stored as the current layout: a v2 `configYAML`
/// whose file sources lie inside the volumes mounted with it, and no old field in the spec.
/// The `registries` layout's config starts with the cluster's own source.
fn assert_stored_as_config_layout(stored: &Value, name: &str, cluster_first: bool) {
    let spec = &stored["spec"];
    for old in [
        "registries",
        "sources",
        "databaseConfig",
        "authConfig",
        "telemetryConfig",
    ] {
        assert!(
            spec.get(old).is_none(),
            "{name}: spec.{old} stored at v1beta1"
        );
    }
    let config: Value = serde_yaml::from_str(spec["configYAML"].as_str().unwrap()).unwrap();
    let sources = config["sources"].as_array().unwrap();
    if cluster_first {
        assert_eq!(sources[0]["kubernetes"], json!({}), "{name}: {config:#}");
    }
    let mounts: Vec<&str> = spec["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for s in sources {
        if let Some(file) = s.pointer("/file/path").and_then(Value::as_str) {
            assert!(
                mounts.iter().any(|m| file.starts_with(&format!("{m}/"))),
                "{name}: {file} is in none of {mounts:?}"
            );
        }
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "mcpregistry" => "mcpregistries".into(),
        "mcpremoteproxy" => "mcpremoteproxies".into(),
        "mcpserverentry" => "mcpserverentries".into(),
        other => format!("{other}s"),
    }
}

/// The MCPRegistry seed, applied with kubectl, gets the registry API's children; a config the
/// registry server could not follow is refused by kubectl apply, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_the_registry_seed_yields_its_children() {
    let c = cluster().await;
    let seed = root().join("examples/seed/mcpregistry.yaml");
    let out = c
        .ok(&["apply", "--validate=false", "-f", seed.to_str().unwrap()])
        .await;
    assert!(
        out.contains("mcpregistry.toolhive.stacklok.dev/my-registry created"),
        "{out}"
    );
    for (kind, name) in [
        ("configmap", "my-registry-registry-server-config"),
        ("serviceaccount", "my-registry-registry-api"),
        ("role", "my-registry-registry-api"),
        ("rolebinding", "my-registry-registry-api"),
        ("deployment", "my-registry-api"),
        ("service", "my-registry-api"),
    ] {
        c.wait_until_exists(kind, name, "toolhive-system").await;
    }
    let config = c
        .ok(&[
            "get",
            "configmap",
            "my-registry-registry-server-config",
            "-n",
            "toolhive-system",
            "-o",
            "jsonpath={.data.config\\.yaml}",
        ])
        .await;
    let seed_value: Value = serde_yaml::from_str(&std::fs::read_to_string(&seed).unwrap()).unwrap();
    assert_eq!(config, seed_value["spec"]["configYAML"].as_str().unwrap());
    // This API server simulates the workloads: the pods become ready, and clients are told
    // where the registry API is.
    let ready = c
        .ok(&[
            "wait",
            "--for=jsonpath={.status.url}=http://my-registry-api.toolhive-system:8080",
            "mcpregistry/my-registry",
            "-n",
            "toolhive-system",
            "--timeout=20s",
        ])
        .await;
    assert!(ready.contains("condition met"), "{ready}");
    let table = c
        .ok(&["get", "mcpregistries", "-n", "toolhive-system"])
        .await;
    assert!(
        table.contains("my-registry") && table.contains("Ready"),
        "{table}"
    );

    // A file source outside every mount: the registry server would never find it.
    let bad = c._dir.path().join("outside.yaml");
    std::fs::write(&bad, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRegistry\nmetadata: {name: outside, namespace: default}\nspec:\n  configYAML: |\n    sources: [{name: local, file: {path: /data/registry.json}}]\n    registries: [{name: all, sources: [local]}]\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", bad.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("spec.configYAML"), "{err}");
    assert!(
        err.contains(
            "sources[0].file.path: \"/data/registry.json\" is not inside any of spec.volumeMounts"
        ),
        "{err}"
    );
    // A pod template that would hide the rendered config.
    std::fs::write(&bad, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRegistry\nmetadata: {name: hidden, namespace: default}\nspec:\n  configYAML: |\n    sources: [{name: a, api: {endpoint: 'https://r.example.com'}}]\n    registries: [{name: all, sources: [a]}]\n  podTemplateSpec:\n    spec:\n      volumes: [{name: mine, emptyDir: {}}]\n      containers: [{name: registry-api, volumeMounts: [{name: mine, mountPath: /config}]}]\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", bad.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.podTemplateSpec.spec.containers[0].volumeMounts[0].mountPath"),
        "{err}"
    );
    for name in ["outside", "hidden"] {
        assert!(c
            .server
            .stored_object("toolhive.stacklok.dev", "mcpregistries", "default", name)
            .is_none());
    }
}

/// The address guard at admission: a remote proxy pointed at the cloud metadata service is
/// refused by `kubectl apply`, field and reason, and never stored; a public one is created.
/// Issue 14: a VirtualMCPServer in the old v1alpha1 shape (`config.groupRef`, inline
/// `oidcConfig`, `external_auth_config_ref`), applied at v1alpha1, is stored at v1beta1 and reads
/// back whole at both versions; an edit at v1alpha1 keeps the rest; `kubectl get` shows a
/// Degraded phase and the backend count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_virtual_mcp_server_reads_back_whole_at_both_versions() {
    let c = cluster().await;
    let old = root().join("examples/v1alpha1/virtualmcpserver-old.yaml");
    let out = c.ok(&["apply", "-f", old.to_str().unwrap()]).await;
    assert!(
        out.contains("virtualmcpserver.toolhive.stacklok.dev/legacy-vmcp created"),
        "{out}"
    );
    let stored = c
        .server
        .stored_object(
            "toolhive.stacklok.dev",
            "virtualmcpservers",
            "toolhive-system",
            "legacy-vmcp",
        )
        .unwrap();
    assert_eq!(stored["apiVersion"], "toolhive.stacklok.dev/v1beta1");
    assert_eq!(
        stored["spec"]["groupRef"],
        json!({"name": "platform-tools"})
    );
    assert!(
        stored["spec"]["config"].get("groupRef").is_none(),
        "{stored:#}"
    );
    assert!(stored["spec"]["incomingAuth"].get("oidcConfig").is_none());
    assert_eq!(
        stored["spec"]["outgoingAuth"]["backends"]["docs"]["type"],
        "externalAuthConfigRef"
    );

    let get = |version: &'static str| {
        let c = &c;
        async move {
            let text = c
                .ok(&[
                    "get",
                    &format!("virtualmcpservers.{version}.toolhive.stacklok.dev"),
                    "legacy-vmcp",
                    "-n",
                    "toolhive-system",
                    "-o",
                    "json",
                ])
                .await;
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    // At v1alpha1: what was applied (the schema's defaults added), no stash in sight.
    let written: Value = serde_yaml::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    let alpha = get("v1alpha1").await;
    let mut want = written["spec"].clone();
    want["serviceType"] = json!("ClusterIP");
    want["sessionAffinity"] = json!("ClientIP");
    want["incomingAuth"]["oidcConfig"]["inline"]["insecureAllowHTTP"] = json!(false);
    want["incomingAuth"]["oidcConfig"]["inline"]["jwksAllowPrivateIP"] = json!(false);
    want["incomingAuth"]["oidcConfig"]["inline"]["protectedResourceAllowPrivateIP"] = json!(false);
    assert_eq!(alpha["spec"], want);
    let annotations = alpha["metadata"]["annotations"].as_object();
    assert!(
        annotations.is_none_or(|a| a.keys().all(|k| !k.starts_with("toolhive.stacklok.dev/v1"))),
        "{alpha:#}"
    );
    // At v1beta1: the new shape; the kept inline block is in the stash only.
    let beta = get("v1beta1").await;
    assert_eq!(beta["spec"]["groupRef"]["name"], "platform-tools");
    assert_eq!(
        beta["spec"]["config"]["aggregation"]["conflictResolutionConfig"]["priorityOrder"],
        json!(["everything", "time"])
    );
    assert!(beta["metadata"]["annotations"]
        .get("toolhive.stacklok.dev/v1alpha1-incomingAuth.oidcConfig")
        .is_some());

    // An edit at v1alpha1 keeps every other field, the old shape included.
    c.ok(&[
        "patch",
        "virtualmcpservers.v1alpha1.toolhive.stacklok.dev",
        "legacy-vmcp",
        "-n",
        "toolhive-system",
        "--type=merge",
        "-p",
        r#"{"spec":{"config":{"aggregation":{"conflictResolutionConfig":{"priorityOrder":["time","everything"]}}}}}"#,
    ])
    .await;
    let alpha = get("v1alpha1").await;
    want["config"]["aggregation"]["conflictResolutionConfig"]["priorityOrder"] =
        json!(["time", "everything"]);
    assert_eq!(alpha["spec"], want);

    // The reconciler's status shows in `kubectl get`: the kept inline oidcConfig is not
    // enforced, so the endpoint is held (Failed, Ready False) rather than serving everyone.
    // (Degraded from a runtime's report: tests/controller_vmcp.rs.)
    let mut table = String::new();
    for _ in 0..200 {
        table = c.ok(&["get", "vmcp", "-n", "toolhive-system"]).await;
        if table
            .lines()
            .any(|l| l.starts_with("legacy-vmcp") && l.contains("Failed"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let header = table.lines().next().unwrap();
    for column in ["PHASE", "URL", "BACKENDS", "AGE", "READY"] {
        assert!(header.contains(column), "{table}");
    }
    let row = table
        .lines()
        .find(|l| l.starts_with("legacy-vmcp"))
        .unwrap();
    assert!(row.contains("Failed") && row.contains("False"), "{table}");
    let held = c
        .ok(&[
            "get",
            "vmcp",
            "legacy-vmcp",
            "-n",
            "toolhive-system",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='AuthConfigured')].reason}",
        ])
        .await;
    assert_eq!(held.trim(), "AuthNotEnforced");
}

/// The cases of tests/e2e/refused.json, each applied with `kubectl apply`: refused with the
/// object's name, the field path and the reason, and never stored. Upstream's fields this
/// product does not build are refused by name (kubectl's strict field validation: they are not
/// in the schema); the rest by our webhooks. Then a proxy to a public remote is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_refuses_what_admission_refuses_and_stores_nothing() {
    let c = cluster().await;
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/e2e/refused.json")).unwrap(),
    )
    .unwrap();
    for (i, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let file = c._dir.path().join(format!("refused-{i}.yaml"));
        std::fs::write(&file, case["manifest"].as_str().unwrap()).unwrap();
        let o = c.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: applied");
        for part in case["says"].as_array().unwrap() {
            assert!(
                err.contains(part.as_str().unwrap()),
                "{name}: {part} not in {err}"
            );
        }
        let manifest: Value = serde_yaml::from_str(case["manifest"].as_str().unwrap()).unwrap();
        let stored = c.server.stored_object(
            "toolhive.stacklok.dev",
            case["plural"].as_str().unwrap(),
            "default",
            manifest["metadata"]["name"].as_str().unwrap(),
        );
        assert!(stored.is_none(), "{name}: stored");
    }

    let file = c._dir.path().join("docs.yaml");
    std::fs::write(&file, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRemoteProxy\nmetadata: {name: docs, namespace: default}\nspec:\n  remoteUrl: https://mcp.docs.example.com/mcp\n").unwrap();
    let out = c.ok(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(
        out.contains("mcpremoteproxy.toolhive.stacklok.dev/docs created"),
        "{out}"
    );
}
