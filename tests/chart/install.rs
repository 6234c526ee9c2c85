//! `helm install` of chart/ into the in-memory API server, with the real helm and kubectl, and
//! the operator started as a local process with the args and env of the chart's rendered
//! Deployment:
//! - with cert-manager (the stand-in in support/certmanager.rs issues the chain and
//!   injects the CA): a bad MCPServer in the operator's own namespace is refused through the
//!   chart-made webhook configuration, a good one reconciles and reads back at v1alpha1;
//! - without cert-manager (`--self-signed`): the same, the operator bootstrapping its own CA;
//! - upgrade from a release whose CRDs store v1alpha1 only;
//! - in every case, each request the operator made is one the chart's RBAC grants.

use crate::support as chart_support;

use chart_support::certmanager;
use chart_support::{arg, documents, granted, manager, one, Helm, Out};
use mcp_operator::api::crd;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_apiserver::{Options, TestApiServer, Verb};

const NS: &str = "toolhive-system";
const RELEASE: &str = "mcp-operator";
const GROUP: &str = "toolhive.stacklok.dev";

/// Values every install here uses: no registry on this machine, so the command is given.
const TEST_VALUES: &str = r#"
registryLookup: false
imageCommands:
  docker.io/mcp/fetch: mcp-server-fetch
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// helm/kubectl are blocking processes; the API server lives on this runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Fields drop in order: the stand-in stops before the server does.
struct Cluster {
    _cert_manager: Option<certmanager::CertManager>,
    server: TestApiServer,
    helm: Helm,
}

impl Cluster {
    async fn start(cert_manager: bool) -> Cluster {
        mcp_operator::crypto::install_provider();
        let server = TestApiServer::start(Options::default()).await.unwrap();
        let helm = Helm::new();
        server.write_kubeconfig(helm.kubeconfig()).unwrap();
        let stand_in = if cert_manager {
            server.apply_yaml(certmanager::CRDS).await.unwrap();
            Some(certmanager::start(&server.url()))
        } else {
            None
        };
        let cluster = Cluster {
            server,
            helm,
            _cert_manager: stand_in,
        };
        cluster.kubectl_ok(&["create", "namespace", NS]);
        cluster
    }

    fn kubectl(&self, args: &[&str]) -> Out {
        blocking(|| self.helm.kubectl(args))
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.ok, "kubectl {args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    }

    fn helm_ok(&self, args: &[&str]) -> String {
        blocking(|| self.helm.ok(args))
    }

    /// `helm install|upgrade RELEASE <chart> -n NS -f <test values> <extra>`.
    fn helm_release(&self, verb: &str, chart: &Path, extra: &[&str]) -> String {
        let values = self.helm.file("test-values.yaml", TEST_VALUES);
        let chart = chart.display().to_string();
        let mut a = vec![
            verb,
            RELEASE,
            chart.as_str(),
            "-n",
            NS,
            "-f",
            values.as_str(),
        ];
        a.extend_from_slice(extra);
        self.helm_ok(&a)
    }

    /// The objects of the deployed release, as the cluster got them.
    fn manifest(&self) -> Vec<Value> {
        documents(&self.helm_ok(&["get", "manifest", RELEASE, "-n", NS]))
    }

    fn stored(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.server.stored_object(group, plural, ns, name)
    }
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Operator {
    child: Child,
    health: u16,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mcp-operator` with the container args and env of the rendered Deployment; only the
/// listen addresses (loopback ports) and the certificate directory (the kubelet's mount) are
/// local.
fn spawn_operator(docs: &[Value], kubeconfig: &Path, cert_dir: &Path, webhook: u16) -> Operator {
    let (metrics, health) = (free_port(), free_port());
    let local = [
        ("--cert-dir", cert_dir.display().to_string()),
        ("--webhook-bind-address", format!("127.0.0.1:{webhook}")),
        ("--metrics-bind-address", format!("127.0.0.1:{metrics}")),
        ("--health-probe-bind-address", format!("127.0.0.1:{health}")),
    ];
    for (flag, _) in &local {
        assert!(arg(docs, flag).is_some(), "the chart sets {flag}");
    }
    let args: Vec<String> = chart_support::args(docs)
        .into_iter()
        .map(|a| {
            local
                .iter()
                .find(|(flag, _)| a.starts_with(&format!("{flag}=")))
                .map(|(flag, value)| format!("{flag}={value}"))
                .unwrap_or(a)
        })
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-operator"));
    cmd.args(&args).env_clear().env("KUBECONFIG", kubeconfig);
    for e in manager(docs)["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match (
            e["value"].as_str(),
            e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Some(v), _) => v.to_string(),
            (None, Some("metadata.namespace")) => NS.to_string(),
            (None, Some("metadata.name")) => "mcp-operator-7d9f-abcde".to_string(),
            other => panic!("env {name}: {other:?} is not simulated"),
        };
        cmd.env(name, value);
    }
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Operator { child, health }
}

fn ready(op: &Operator) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", op.health))
        .ok()
        .and_then(|mut s| {
            use std::io::{Read, Write};
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            Some(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"))
        })
        .unwrap_or(false)
}

/// What the kubelet would mount: the Secret's keys as files.
fn mount_secret(secret: &Value, dir: &Path) {
    use base64::Engine;
    std::fs::create_dir_all(dir).unwrap();
    for (key, value) in secret["data"].as_object().unwrap() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(key), bytes).unwrap();
    }
}

/// Every caBundle the webhooks need (both configurations, every CRD's conversion) is `ca`.
fn ca_bundles_are(cluster: &Cluster, ca: &str) -> bool {
    use base64::Engine;
    let want = base64::engine::general_purpose::STANDARD.encode(ca);
    let configs = [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ]
    .into_iter()
    .all(|plural| {
        cluster
            .stored("admissionregistration.k8s.io", plural, "", RELEASE)
            .is_some_and(|c| {
                c["webhooks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|w| w["clientConfig"]["caBundle"] == want.as_str())
            })
    });
    configs
        && crd::all().iter().all(|c| {
            cluster
                .stored(
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    "",
                    c.metadata.name.as_deref().unwrap(),
                )
                .is_some_and(|c| {
                    c["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] == want.as_str()
                })
        })
}

/// Runs the operator as the release's Deployment would, once its certificate is there.
async fn start_operator(cluster: &Cluster, work: &Path) -> Operator {
    let docs = cluster.manifest();
    let kubeconfig = cluster.helm.kubeconfig();
    let cert_dir = work.join("serving-certs");
    let deployment = one(&docs, "Deployment");
    let volume = &deployment["spec"]["template"]["spec"]["volumes"][0];
    if let Some(secret) = volume["secret"]["secretName"].as_str() {
        // cert-manager: the Secret its Certificate names, as mounted by the kubelet.
        wait_for("the serving certificate", Duration::from_secs(20), || {
            cluster.stored("", "secrets", NS, secret).is_some()
        })
        .await;
        mount_secret(
            &cluster.stored("", "secrets", NS, secret).unwrap(),
            &cert_dir,
        );
    } else {
        // --self-signed writes into the emptyDir.
        std::fs::create_dir_all(&cert_dir).unwrap();
    }
    let webhook = free_port();
    let service = arg(&docs, "--webhook-service-name").unwrap();
    cluster
        .server
        .set_service(&format!("{NS}/{service}"), &format!("127.0.0.1:{webhook}"));
    let op = spawn_operator(&docs, &kubeconfig, &cert_dir, webhook);
    wait_for("the operator ready", Duration::from_secs(30), || ready(&op)).await;
    let ca_file = cert_dir.join("ca.crt");
    wait_for("every caBundle injected", Duration::from_secs(20), || {
        let ca = match std::fs::read_to_string(&ca_file) {
            Ok(ca) => ca,
            // --self-signed keeps the CA in its Secret; the serving dir holds the pair only.
            Err(_) => match arg(&docs, "--webhook-secret-name")
                .and_then(|s| cluster.stored("", "secrets", NS, &s))
            {
                Some(secret) => {
                    use base64::Engine;
                    let b64 = secret["data"]["ca-bundle.crt"].as_str().unwrap_or_default();
                    String::from_utf8(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .unwrap(),
                    )
                    .unwrap()
                }
                None => return false,
            },
        };
        ca_bundles_are(cluster, &ca)
    })
    .await;
    op
}

/// Kubectl's way of writing a manifest from a string.
fn apply(cluster: &Cluster, name: &str, manifest: &str) -> Out {
    let file = cluster.helm.file(name, manifest);
    cluster.kubectl(&["apply", "-f", &file])
}

/// The admission scenario in `ns` (the operator's own namespace by default): a bad MCPServer is refused by our
/// validating webhook through the chart's configuration, a good one is defaulted, reconciled
/// and reads back at v1alpha1 through the conversion webhook.
async fn bad_is_refused_and_good_reconciles(cluster: &Cluster, ns: &str) {
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "gh",
        "-n",
        ns,
        "--from-literal=token=t0ps3cret",
    ]);
    let bad = format!(
        "apiVersion: {GROUP}/v1beta1\nkind: MCPServer\nmetadata: {{name: bad, namespace: {ns}}}\n\
         spec: {{image: docker.io/mcp/fetch, secrets: [{{name: gh, key: tokn}}]}}\n"
    );
    let out = apply(cluster, "bad.yaml", &bad);
    assert!(!out.ok, "the bad MCPServer was admitted in {ns}");
    // Only our validating webhook knows Secret keys; kubectl shows its field causes.
    assert!(
        out.stderr.contains(
            "The MCPServer \"bad\" is invalid: spec.secrets[0]: Invalid value: \"tokn\": Secret \"gh\" has no key \"tokn\""
        ),
        "{}",
        out.stderr
    );
    let good = format!(
        "apiVersion: {GROUP}/v1beta1\nkind: MCPServer\nmetadata: {{name: good, namespace: {ns}}}\n\
         spec: {{image: docker.io/mcp/fetch}}\n"
    );
    let out = apply(cluster, "good.yaml", &good);
    assert!(out.ok, "{}", out.stderr);
    let stored = cluster.stored(GROUP, "mcpservers", ns, "good").unwrap();
    assert_eq!(
        stored["spec"]["transport"], "stdio",
        "defaulted by the mutating webhook"
    );
    wait_for("the MCPServer reconciled", Duration::from_secs(20), || {
        cluster.stored("apps", "deployments", ns, "good").is_some()
    })
    .await;
    let listed = cluster.kubectl_ok(&["get", "mcpservers", "-n", ns, "-o", "name"]);
    assert_eq!(listed.trim(), "mcpserver.toolhive.stacklok.dev/good");
    let old = cluster.kubectl_ok(&[
        "get",
        &format!("mcpservers.v1alpha1.{GROUP}"),
        "good",
        "-n",
        ns,
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(old, format!("{GROUP}/v1alpha1"));
}

fn rbac_verb(verb: Verb) -> Option<&'static str> {
    Some(match verb {
        Verb::Get => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
        _ => return None,
    })
}

/// Every API request the operator process made is allowed by the release's RBAC. The operator
/// is the only client without a User-Agent here (helm, kubectl and the stand-in send theirs).
fn operator_requests_are_granted(cluster: &Cluster) {
    let docs = cluster.manifest();
    let sa = one(&docs, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let grants = granted(&docs, &sa, NS);
    let requests: Vec<_> = cluster
        .server
        .requests()
        .into_iter()
        .filter(|r| r.user_agent.is_empty() && !r.resource.is_empty())
        .collect();
    assert!(requests.len() > 10, "the operator's requests are recorded");
    let mut denied = std::collections::BTreeSet::new();
    for r in &requests {
        let Some(verb) = rbac_verb(r.verb) else {
            continue;
        };
        let resource = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        if !chart_support::allows(&grants, &r.namespace, &r.group, &resource, verb, &r.name) {
            denied.insert(format!(
                "{verb} {}/{resource} {}/{}",
                r.group, r.namespace, r.name
            ));
        }
    }
    assert!(
        denied.is_empty(),
        "the operator made requests its RBAC denies: {denied:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_with_cert_manager_admits_and_reconciles() {
    let cluster = Cluster::start(true).await;
    let out = cluster.helm_release("install", &chart_support::chart_dir(), &[]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(
        out.contains("kubectl get mcpservers"),
        "NOTES say how to check: {out}"
    );
    let work = tempfile::tempdir().unwrap();
    let _op = start_operator(&cluster, work.path()).await;
    bad_is_refused_and_good_reconciles(&cluster, NS).await;
    operator_requests_are_granted(&cluster);

    // crds.keep (the default): uninstalling the release leaves the CRDs and so every MCPServer.
    drop(_op);
    cluster.helm_ok(&["uninstall", RELEASE, "-n", NS]);
    for c in crd::all() {
        let name = c.metadata.name.unwrap();
        assert!(
            cluster
                .stored(
                    "apiextensions.k8s.io",
                    "customresourcedefinitions",
                    "",
                    &name
                )
                .is_some(),
            "{name} was deleted with the release"
        );
    }
    assert!(cluster.stored(GROUP, "mcpservers", NS, "good").is_some());
    assert!(cluster.stored("apps", "deployments", NS, RELEASE).is_none());
}

/// watchNamespaces: Roles in those namespaces only; the operator reconciles there, and objects
/// elsewhere neither wait on its webhooks nor get reconciled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_namespace_scoped_works_with_roles_only() {
    let cluster = Cluster::start(true).await;
    for ns in ["team-a", "team-b", "elsewhere"] {
        cluster.kubectl_ok(&["create", "namespace", ns]);
    }
    let values = chart_support::chart_dir().join("ci/namespace-scoped-values.yaml");
    let out = cluster.helm_release(
        "install",
        &chart_support::chart_dir(),
        &["-f", values.to_str().unwrap()],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(chart_support::kind(&cluster.manifest(), "ClusterRole").is_empty());
    let work = tempfile::tempdir().unwrap();
    let _op = start_operator(&cluster, work.path()).await;
    bad_is_refused_and_good_reconciles(&cluster, "team-a").await;
    // Outside watchNamespaces the webhooks are not called (that namespace is another
    // install's, or nobody's): even a manifest ours would refuse is stored as it is.
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "gh",
        "-n",
        "elsewhere",
        "--from-literal=token=x",
    ]);
    let elsewhere = format!(
        "apiVersion: {GROUP}/v1beta1\nkind: MCPServer\nmetadata: {{name: other, namespace: elsewhere}}\n\
         spec: {{image: docker.io/mcp/fetch, secrets: [{{name: gh, key: tokn}}]}}\n"
    );
    let out = apply(&cluster, "elsewhere.yaml", &elsewhere);
    assert!(out.ok, "{}", out.stderr);
    // Long enough for a watch event to reach a controller that wrongly watched it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        cluster
            .stored("apps", "deployments", "elsewhere", "other")
            .is_none(),
        "reconciled outside watchNamespaces"
    );
    operator_requests_are_granted(&cluster);
}

/// certManager.existingIssuer: the serving certificate comes from a ClusterIssuer the cluster
/// already has (here a CA ClusterIssuer, itself issued by the stand-in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_with_an_existing_cluster_issuer() {
    let cluster = Cluster::start(true).await;
    cluster.kubectl_ok(&[
        "create",
        "namespace",
        certmanager::CLUSTER_RESOURCE_NAMESPACE,
    ]);
    let corporate = format!(
        r#"apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {{name: bootstrap}}
spec: {{selfSigned: {{}}}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {{name: corporate-root, namespace: {ns}}}
spec: {{isCA: true, commonName: corporate-root, secretName: corporate-root, issuerRef: {{kind: ClusterIssuer, name: bootstrap}}}}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {{name: corporate-ca}}
spec: {{ca: {{secretName: corporate-root}}}}
"#,
        ns = certmanager::CLUSTER_RESOURCE_NAMESPACE
    );
    let out = apply(&cluster, "corporate.yaml", &corporate);
    assert!(out.ok, "{}", out.stderr);
    let values = chart_support::chart_dir().join("ci/existing-issuer-values.yaml");
    let out = cluster.helm_release(
        "install",
        &chart_support::chart_dir(),
        &["-f", values.to_str().unwrap()],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(chart_support::kind(&cluster.manifest(), "Issuer").is_empty());
    let work = tempfile::tempdir().unwrap();
    let _op = start_operator(&cluster, work.path()).await;
    let root = cluster
        .stored(
            "",
            "secrets",
            certmanager::CLUSTER_RESOURCE_NAMESPACE,
            "corporate-root",
        )
        .unwrap();
    let served = std::fs::read(work.path().join("serving-certs/ca.crt")).unwrap();
    use base64::Engine;
    let root_ca = base64::engine::general_purpose::STANDARD
        .decode(root["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    assert_eq!(served, root_ca, "signed by the corporate CA");
    bad_is_refused_and_good_reconciles(&cluster, NS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_without_cert_manager_bootstraps_its_own_ca() {
    let cluster = Cluster::start(false).await;
    let out = cluster.helm_release(
        "install",
        &chart_support::chart_dir(),
        &["--set", "certManager.enabled=false"],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    let work = tempfile::tempdir().unwrap();
    let _op = start_operator(&cluster, work.path()).await;
    bad_is_refused_and_good_reconciles(&cluster, NS).await;
    operator_requests_are_granted(&cluster);
}

/// A release of the previous shape: only the CRDs, serving and storing v1alpha1 (no
/// conversion webhook), made from today's CRDs with v1beta1 taken out.
fn previous_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: mcp-operator\nversion: 0.0.9\nappVersion: \"0.0.9\"\n",
    )
    .unwrap();
    let old: Vec<_> = crd::all()
        .into_iter()
        .map(|mut c| {
            c.spec.versions.retain(|v| v.name == "v1alpha1");
            c.spec.versions[0].storage = true;
            c.spec.versions[0].deprecated = None;
            c.spec.versions[0].deprecation_warning = None;
            c.spec.conversion = None;
            c
        })
        .collect();
    std::fs::write(dir.join("templates/crds.yaml"), crd::to_yaml(&old)).unwrap();
}

fn stored_versions(cluster: &Cluster, crd: &str) -> Vec<String> {
    cluster
        .stored("apiextensions.k8s.io", "customresourcedefinitions", "", crd)
        .map(|c| serde_json::from_value(c["status"]["storedVersions"].clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// The objects of examples/v1alpha1 as read at `version`, keyed by kind/name, without the
/// metadata the server keeps.
fn read_all(cluster: &Cluster, version: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for plural in ["mcpservers", "mcpregistries", "mcpremoteproxies"] {
        let list = cluster.kubectl_ok(&[
            "get",
            &format!("{plural}.{version}.{GROUP}"),
            "-n",
            NS,
            "-o",
            "json",
        ]);
        let list: Value = serde_json::from_str(&list).unwrap();
        for mut item in list["items"].as_array().unwrap().clone() {
            assert_eq!(item["apiVersion"], format!("{GROUP}/{version}"));
            let name = format!("{plural}/{}", item["metadata"]["name"].as_str().unwrap());
            let meta = item["metadata"].as_object_mut().unwrap();
            for k in [
                "resourceVersion",
                "managedFields",
                "generation",
                "creationTimestamp",
                "uid",
            ] {
                meta.remove(k);
            }
            // Values v1alpha1 has no field for ride along as annotations (conversion/stash.rs):
            // the migrator's write at v1beta1 adds the new version's schema defaults there.
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.retain(|k, _| !k.starts_with(&format!("{GROUP}/v1beta1-")));
            }
            // The controller reports on what it reconciled; the round trip is about the rest.
            item.as_object_mut().unwrap().remove("status");
            out.push((name, item));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_v1alpha1_storage_migrates_and_is_idempotent() {
    let cluster = Cluster::start(true).await;
    let work = tempfile::tempdir().unwrap();
    let previous = work.path().join("previous-chart");
    previous_chart(&previous);
    cluster.helm_release("install", &previous, &[]);
    let examples = chart_support::repo().join("examples/v1alpha1");
    cluster.kubectl_ok(&["apply", "-f", examples.to_str().unwrap()]);
    let before = read_all(&cluster, "v1alpha1");
    assert_eq!(before.len(), 4, "{before:?}");
    for crd in ["mcpservers", "mcpregistries", "mcpremoteproxies"] {
        assert_eq!(
            stored_versions(&cluster, &format!("{crd}.{GROUP}")),
            ["v1alpha1"]
        );
    }

    let out = cluster.helm_release("upgrade", &chart_support::chart_dir(), &[]);
    assert!(out.contains("REVISION: 2"), "{out}");
    let _op = start_operator(&cluster, work.path()).await;

    // The lease holder migrates at start: every object re-stored at v1beta1, storedVersions trimmed.
    wait_for("storedVersions [v1beta1]", Duration::from_secs(30), || {
        crd::all()
            .iter()
            .all(|c| stored_versions(&cluster, c.metadata.name.as_deref().unwrap()) == ["v1beta1"])
    })
    .await;
    for (key, _) in &before {
        let (plural, name) = key.split_once('/').unwrap();
        let stored = cluster.stored(GROUP, plural, NS, name).unwrap();
        assert_eq!(
            stored["apiVersion"],
            format!("{GROUP}/v1beta1"),
            "{key} was rewritten"
        );
    }
    // Whole at both versions: v1alpha1 reads back exactly as written, v1beta1 reads at all.
    let after = read_all(&cluster, "v1alpha1");
    assert_eq!(after.len(), before.len());
    for ((key, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(
            serde_json::to_string_pretty(a).unwrap(),
            serde_json::to_string_pretty(b).unwrap(),
            "{key}: a v1alpha1 round trip changed it"
        );
    }
    // At v1beta1, each reads back as stored (now at v1beta1: no conversion on this path).
    let beta = read_all(&cluster, "v1beta1");
    assert_eq!(beta.len(), before.len());
    for (key, read) in &beta {
        let (plural, name) = key.split_once('/').unwrap();
        let stored = cluster.stored(GROUP, plural, NS, name).unwrap();
        assert_eq!(read["spec"], stored["spec"], "{key} at v1beta1");
        assert!(
            read["spec"].as_object().is_some_and(|s| !s.is_empty()),
            "{key}"
        );
    }

    // A second upgrade with the same values changes nothing the chart made. (Compared without
    // resourceVersion and managedFields: on a no-op apply the test server still re-times
    // helm's managedFields entry, which a real API server leaves as it was.)
    let content_of = |d: &Value| {
        let group = d["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("");
        let kind = d["kind"].as_str().unwrap();
        let ns = match d["metadata"]["namespace"].as_str() {
            Some(ns) => ns,
            None if namespaced(kind) => NS,
            None => "",
        };
        let name = d["metadata"]["name"].as_str().unwrap();
        let mut stored = cluster
            .stored(group, &plural_of(kind), ns, name)
            .unwrap_or_else(|| panic!("{kind} {name} of the release is not stored"));
        let meta = stored["metadata"].as_object_mut().unwrap();
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        (format!("{kind} {name}"), stored)
    };
    let docs = cluster.manifest();
    let before: Vec<_> = docs.iter().map(content_of).collect();
    let out = cluster.helm_release("upgrade", &chart_support::chart_dir(), &[]);
    assert!(out.contains("REVISION: 3"), "{out}");
    for (d, (key, was)) in docs.iter().zip(before) {
        assert!(content_of(d).1 == was, "{key} changed on a no-op upgrade");
    }
    operator_requests_are_granted(&cluster);
}

fn plural_of(kind: &str) -> String {
    match kind {
        "PodDisruptionBudget" => "poddisruptionbudgets".into(),
        "Issuer" => "issuers".into(),
        "ClusterIssuer" => "clusterissuers".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

fn namespaced(kind: &str) -> bool {
    !matches!(
        kind,
        "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ClusterIssuer"
    )
}

/// `run` (and `webhook`) with neither usable certificates nor --self-signed: one line saying what
/// is missing or wrong, the cause said once, and for a missing pair the two ways out.
#[test]
fn run_without_certificates_says_what_is_missing_once() {
    let dir = tempfile::tempdir().unwrap();
    let half = dir.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("tls.key"), "not a key").unwrap();
    let empty = dir.path().join("empty");
    let garbage = dir.path().to_path_buf();
    let good = dir.path().join("good");
    let made = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["certs", "--dns-name", "localhost", "--out"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(made.status.success());
    // (subcommand, cert dir, what the line must say)
    let cases: [(&str, &Path, &[&str]); 5] = [
        (
            "run",
            &empty,
            &["no tls.crt and tls.key", "cert-manager", "--self-signed"],
        ),
        (
            "webhook",
            &empty,
            &["no tls.crt and tls.key", "cert-manager", "--self-signed"],
        ),
        (
            "run",
            &half,
            &["has no tls.key;", "cert-manager", "--self-signed"],
        ),
        (
            "webhook",
            &garbage,
            &["no usable serving certificate", "holds no PEM certificate"],
        ),
        // Certificates fine, no cluster: the kubeconfig's cause, once.
        (
            "run",
            &good,
            &["cannot build a Kubernetes client", "no-kubeconfig"],
        ),
    ];
    for (command, cert_dir, needed) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
            .args([command, "--cert-dir"])
            .arg(cert_dir)
            .args(
                ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
                    .iter()
                    .filter(|_| command == "webhook"),
            )
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains(" INFO "))
            .collect();
        assert_eq!(lines.len(), 1, "{command} {cert_dir:?}: one line: {stderr}");
        let line = lines[0];
        for n in needed {
            assert!(line.contains(n), "{command}: {n:?} missing from: {line}");
        }
        let cause = if cert_dir == good.as_path() {
            "No such file or directory".to_string()
        } else {
            cert_dir.display().to_string()
        };
        assert_eq!(
            line.matches(cause.as_str()).count(),
            1,
            "the cause is said once: {line}"
        );
    }
}
