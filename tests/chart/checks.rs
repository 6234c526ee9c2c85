//! The Helm chart, rendered by the pinned helm: `helm lint --strict`, and checks on the objects
//! of every rendering (default values and each `chart/ci/*.yaml`): webhooks routed and pointed at
//! the chart's Service, CRDs equal to the generated ones, Pod Security `restricted`, RBAC exactly
//! what `run` needs (src/controller/rbac.rs) and never a wildcard.

use crate::support as chart_support;

use chart_support::{
    arg, args, chart_dir, documents, env, granted, kind, manager, one, Grant, Helm,
};
use mcp_operator::api::crd::{self, WebhookService};
use mcp_operator::api::GROUP;
use mcp_operator::cli::webhook::our_crd_names;
use mcp_operator::controller::rbac::{rules, Names, Scope};
use mcp_operator::webhook::routes::routes;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const NAMESPACE: &str = "toolhive-system";
const RELEASE: &str = "mcp-operator";

/// Every values file of chart/ci, sorted.
fn ci_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(chart_dir().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "chart/ci has the five documented cases");
    files
}

/// Default values first, then every ci file.
fn renderings(helm: &Helm) -> Vec<(String, Vec<Value>)> {
    let mut out = vec![(
        "default values".to_string(),
        helm.render(RELEASE, NAMESPACE, &[]),
    )];
    for file in ci_files() {
        let docs = helm.render(RELEASE, NAMESPACE, &["-f", &file]);
        out.push((file, docs));
    }
    out
}

#[test]
fn helm_lint_strict_passes_for_every_values_file() {
    let helm = Helm::new();
    let chart = chart_dir().display().to_string();
    helm.ok(&["lint", "--strict", &chart]);
    for file in ci_files() {
        helm.ok(&["lint", "--strict", &chart, "-f", &file]);
    }
}

#[test]
fn every_rendering_passes_the_checks() {
    let helm = Helm::new();
    for (case, docs) in renderings(&helm) {
        let check = |name: &str, f: &dyn Fn(&[Value])| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&docs)));
            if let Err(e) = result {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{case}: {name}: {msg}");
            }
        };
        check("webhooks", &webhooks_are_routed_and_use_the_chart_service);
        check("crds", &crds_convert_through_the_chart_service);
        check("pod security", &pod_security_is_restricted);
        check("deployment", &deployment_is_wired);
        check("availability", &replicas_are_spread_and_protected);
        check("certificates", &certificates_are_chained);
        check("rbac", &rbac_is_exactly_what_run_needs);
    }
}

fn self_signed(docs: &[Value]) -> bool {
    args(docs).iter().any(|a| a == "--self-signed")
}

fn webhook_service(docs: &[Value]) -> String {
    let services = kind(docs, "Service");
    let svc = services
        .iter()
        .find(|s| {
            s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == 443 && p["targetPort"] == "webhook")
        })
        .expect("a Service 443 → the webhook port");
    let name = svc["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        arg(docs, "--webhook-service-name").as_deref(),
        Some(name.as_str())
    );
    name
}

fn inject_ca_from(docs: &[Value]) -> Option<String> {
    if self_signed(docs) {
        return None;
    }
    let cert = kind(docs, "Certificate")
        .into_iter()
        .find(|c| c["spec"]["isCA"] != true)
        .expect("the serving Certificate");
    Some(format!(
        "{NAMESPACE}/{}",
        cert["metadata"]["name"].as_str().unwrap()
    ))
}

fn webhooks_are_routed_and_use_the_chart_service(docs: &[Value]) {
    let routed: Vec<String> = routes().iter().map(|r| r.path()).collect();
    let service = webhook_service(docs);
    let configuration = arg(docs, "--webhook-configuration-name").unwrap();
    for k in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let config = one(docs, k);
        assert_eq!(
            config["metadata"]["name"],
            configuration.as_str(),
            "{k} is the one --self-signed patches"
        );
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str(),
            inject_ca_from(docs).as_deref(),
            "{k}: injection annotation"
        );
        let webhooks = config["webhooks"].as_array().unwrap();
        assert_eq!(webhooks.len(), mcp_operator::api::SERVED.len());
        for w in webhooks {
            let svc = &w["clientConfig"]["service"];
            assert_eq!(svc["name"], service.as_str(), "{}", w["name"]);
            assert_eq!(svc["namespace"], NAMESPACE);
            assert_eq!(svc["port"], 443);
            let path = svc["path"].as_str().unwrap();
            assert!(
                routed.iter().any(|r| r == path),
                "{path} is not routed by the server"
            );
            assert!(
                w["clientConfig"].get("caBundle").is_none(),
                "caBundle is never templated"
            );
            assert_eq!(w["sideEffects"], "None");
            assert_eq!(w["failurePolicy"], "Fail");
            assert!(w["timeoutSeconds"].as_i64().unwrap() <= 5);
            for rule in w["rules"].as_array().unwrap() {
                assert_eq!(
                    rule["apiGroups"],
                    serde_json::json!([GROUP]),
                    "our group only"
                );
            }
            let selector = serde_json::to_string(&w["namespaceSelector"]).unwrap();
            assert!(
                !selector.contains(NAMESPACE),
                "the operator's namespace is admitted: {selector}"
            );
        }
    }
}

fn crds_convert_through_the_chart_service(docs: &[Value]) {
    let crds = kind(docs, "CustomResourceDefinition");
    if crds.is_empty() {
        // crds.install=false: nothing else of the chart may depend on them being rendered.
        return;
    }
    let service = WebhookService {
        namespace: NAMESPACE.into(),
        name: webhook_service(docs),
    };
    let generated = crd::with_conversion_service(&service);
    assert_eq!(crds.len(), generated.len());
    for want in generated {
        let name = want.metadata.name.clone().unwrap();
        let have = crds
            .iter()
            .find(|c| c["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not rendered"));
        let annotations = &have["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/resource-policy"], "keep", "{name}");
        assert_eq!(
            annotations["cert-manager.io/inject-ca-from"].as_str(),
            inject_ca_from(docs).as_deref(),
            "{name}"
        );
        assert!(have["spec"]["conversion"]["webhook"]["clientConfig"]
            .get("caBundle")
            .is_none());
        // Apart from the chart's labels and annotations, the generated CRD, field for field.
        let mut have = (*have).clone();
        let meta = have["metadata"].as_object_mut().unwrap();
        meta.remove("annotations");
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.retain(|k, _| !k.starts_with("app.kubernetes.io/") && k != "helm.sh/chart");
        }
        assert_eq!(
            numbers_as_floats(have),
            numbers_as_floats(serde_json::to_value(&want).unwrap()),
            "{name} drifted from the generated CRD: cp crds/*.yaml chart/files/crds/"
        );
    }
}

/// Helm's fromYaml/toYaml turns `65535.0` into `65535`: the same number to the API server.
fn numbers_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_floats).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

fn pod_security_is_restricted(docs: &[Value]) {
    let pod = &one(docs, "Deployment")["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(psc["runAsUser"].as_i64().unwrap() > 0, "numeric, non-root");
    for c in pod["containers"].as_array().unwrap() {
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        assert!(sc.get("privileged").is_none_or(|p| p == false));
    }
    assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
}

fn deployment_is_wired(docs: &[Value]) {
    let c = manager(docs);
    assert_eq!(args(docs)[0], "run");
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "webhook");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "health");
    assert_eq!(
        arg(docs, "--health-probe-bind-address").unwrap(),
        format!(":{}", port("health"))
    );
    assert!(arg(docs, "--webhook-bind-address")
        .unwrap()
        .ends_with(&format!(":{}", port("webhook"))));
    assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"].is_object());
    let pod_ns = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "POD_NAMESPACE")
        .expect("POD_NAMESPACE");
    assert_eq!(
        pod_ns["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env(docs, "MCP_OPERATOR_BRIDGE_IMAGE").as_deref(),
        c["image"].as_str(),
        "the bridge image defaults to the operator's own"
    );
    // The certificate directory: cert-manager's Secret, or an emptyDir --self-signed writes.
    let cert_dir = arg(docs, "--cert-dir").unwrap();
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == cert_dir.as_str())
        .expect("a volume at --cert-dir");
    let pod = &one(docs, "Deployment")["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    if self_signed(docs) {
        assert!(volume["emptyDir"].is_object());
        assert!(kind(docs, "Certificate").is_empty() && kind(docs, "Issuer").is_empty());
    } else {
        let secret = volume["secret"]["secretName"].as_str().unwrap();
        let serving = kind(docs, "Certificate")
            .into_iter()
            .find(|c| c["spec"]["isCA"] != true)
            .unwrap();
        assert_eq!(serving["spec"]["secretName"], secret);
        assert_eq!(mount["readOnly"], true);
    }
    if let Some(watch) = env(docs, "WATCH_NAMESPACE") {
        assert_eq!(
            arg(docs, "--storage-migration").as_deref(),
            Some("false"),
            "{watch}"
        );
    }
}

fn replicas_are_spread_and_protected(docs: &[Value]) {
    let deployment = one(docs, "Deployment");
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap();
    let pdbs = kind(docs, "PodDisruptionBudget");
    let pod = &deployment["spec"]["template"]["spec"];
    if replicas > 1 {
        assert!(args(docs).iter().any(|a| a == "--leader-elect"));
        assert_eq!(pdbs.len(), 1);
        assert_eq!(
            pdbs[0]["spec"]["selector"]["matchLabels"],
            deployment["spec"]["selector"]["matchLabels"]
        );
        assert!(pod["affinity"]["podAntiAffinity"].is_object());
        assert!(pod["topologySpreadConstraints"].is_array());
    } else {
        assert!(pdbs.is_empty(), "a PDB on one replica blocks every drain");
    }
}

fn certificates_are_chained(docs: &[Value]) {
    if self_signed(docs) {
        return;
    }
    let service = webhook_service(docs);
    let certs = kind(docs, "Certificate");
    let serving = certs.iter().find(|c| c["spec"]["isCA"] != true).unwrap();
    let dns: Vec<&str> = serving["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        dns.contains(&format!("{service}.{NAMESPACE}.svc").as_str()),
        "{dns:?}"
    );
    let issuer_ref = &serving["spec"]["issuerRef"];
    let issuers = kind(docs, "Issuer");
    if issuers.is_empty() {
        // An existing Issuer/ClusterIssuer from values.
        assert_eq!(certs.len(), 1);
        assert!(issuer_ref["name"].as_str().is_some_and(|n| !n.is_empty()));
        return;
    }
    // self-signed Issuer → CA Certificate → CA Issuer → serving Certificate.
    let ca_issuer = issuers
        .iter()
        .find(|i| i["metadata"]["name"] == issuer_ref["name"])
        .expect("the serving certificate's issuer is rendered");
    let ca_cert = certs
        .iter()
        .find(|c| c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"])
        .expect("the CA issuer's secret comes from a Certificate");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let root = issuers
        .iter()
        .find(|i| i["metadata"]["name"] == ca_cert["spec"]["issuerRef"]["name"])
        .unwrap();
    assert!(root["spec"]["selfSigned"].is_object());
}

/// What src/controller/rbac.rs says `run`, configured as this Deployment, needs.
fn needed(docs: &[Value]) -> BTreeSet<Grant> {
    let all_args = args(docs);
    let leader = all_args.iter().any(|a| a == "--leader-elect");
    let migration = arg(docs, "--storage-migration").as_deref() != Some("false");
    let watched: Vec<String> = env(docs, "WATCH_NAMESPACE")
        .map(|w| w.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec![String::new()]);
    let name_list = |names: Names| -> Vec<String> {
        match names {
            Names::Any => vec![String::new()],
            Names::Lease => vec![arg(docs, "--lease-name").unwrap()],
            Names::WebhookSecret => vec![arg(docs, "--webhook-secret-name").unwrap()],
            Names::WebhookConfiguration => vec![arg(docs, "--webhook-configuration-name").unwrap()],
            Names::OurCrds => our_crd_names(),
        }
    };
    let mut out = BTreeSet::new();
    for rule in rules(leader, migration, self_signed(docs)) {
        let places = match rule.scope {
            Scope::Watched => watched.clone(),
            Scope::OwnNamespace => vec![NAMESPACE.to_string()],
            Scope::Cluster => vec![String::new()],
        };
        for at in &places {
            for r in rule.resources {
                for v in rule.verbs {
                    for n in name_list(rule.names) {
                        out.insert((
                            at.clone(),
                            rule.group.into(),
                            r.to_string(),
                            v.to_string(),
                            n,
                        ));
                    }
                }
            }
        }
    }
    out
}

fn rbac_is_exactly_what_run_needs(docs: &[Value]) {
    for k in ["ClusterRole", "Role"] {
        for role in kind(docs, k) {
            for rule in role["rules"].as_array().unwrap() {
                let text = serde_json::to_string(rule).unwrap();
                assert!(
                    !text.contains('*'),
                    "{k} {}: wildcard in {text}",
                    role["metadata"]["name"]
                );
            }
        }
    }
    let sa = one(docs, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .unwrap();
    assert_eq!(
        one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        sa
    );
    let have = granted(docs, sa, NAMESPACE);
    let want = needed(docs);
    let missing: Vec<_> = want.difference(&have).collect();
    let extra: Vec<_> = have.difference(&want).collect();
    assert!(
        missing.is_empty(),
        "run needs these and the chart does not grant them: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "the chart grants more than run needs: {extra:?}"
    );
    if env(docs, "WATCH_NAMESPACE").is_some() {
        // Namespace-scoped: no ClusterRole for the controllers (at most --self-signed's own,
        // limited by name to our webhook configurations and CRDs).
        for grant in have.iter().filter(|g| g.0.is_empty()) {
            assert!(
                !grant.4.is_empty(),
                "cluster-wide grant in a namespace-scoped install: {grant:?}"
            );
        }
        if !self_signed(docs) {
            assert!(kind(docs, "ClusterRole").is_empty());
        }
    }
}

/// The chart's webhook configurations are the binary's, for the same Service and namespace.
#[test]
fn webhook_configurations_equal_print_configurations() {
    let helm = Helm::new();
    let docs = helm.render(RELEASE, NAMESPACE, &[]);
    let service = webhook_service(&docs);
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args([
            "webhook",
            "--print-configurations",
            "--service-name",
            &service,
        ])
        .args(["--service-namespace", NAMESPACE])
        .output()
        .unwrap();
    assert!(out.status.success());
    for want in documents(&String::from_utf8(out.stdout).unwrap()) {
        let k = want["kind"].as_str().unwrap();
        let mut have = one(&docs, k).clone();
        let meta = have["metadata"].as_object_mut().unwrap();
        meta.remove("labels");
        meta.remove("annotations");
        assert_eq!(
            have, want,
            "{k} differs from `webhook --print-configurations`: regenerate chart/files/webhook-configurations.yaml with --service-name SERVICE_NAME --service-namespace SERVICE_NAMESPACE"
        );
    }
}

/// chart/files/crds is crds/, byte for byte (the template reads the chart's copy).
#[test]
fn chart_crd_files_are_the_generated_ones() {
    let repo = chart_support::repo();
    let mut ours: Vec<String> = std::fs::read_dir(repo.join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ours.sort();
    let mut chart: Vec<String> = std::fs::read_dir(chart_dir().join("files/crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    chart.sort();
    assert_eq!(ours, chart, "cp crds/*.yaml chart/files/crds/");
    for f in ours {
        assert_eq!(
            std::fs::read(repo.join("crds").join(&f)).unwrap(),
            std::fs::read(chart_dir().join("files/crds").join(&f)).unwrap(),
            "chart/files/crds/{f} drifted: cp crds/*.yaml chart/files/crds/"
        );
    }
}

/// A wrong type, an unknown key or an impossible combination fails the render naming the value.
#[test]
fn bad_values_fail_naming_the_value() {
    let helm = Helm::new();
    let chart = chart_dir().display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--set", "replicas=two"], "/replicas"),
        (&["--set", "replicaCount=2"], "'replicaCount' not allowed"),
        (&["--set", "crds.keeep=false"], "'keeep' not allowed"),
        (
            &["--set", "certManager.enabled=maybe"],
            "/certManager/enabled",
        ),
        (
            &["--set", "certManager.existingIssuer.kind=Vault"],
            "/certManager/existingIssuer/kind",
        ),
        (&["--set", "logFormat=xml"], "/logFormat"),
        (
            &["--set", "watchNamespaces[0]=team-a"],
            "storageMigration=true needs cluster scope",
        ),
        (
            &["--set", "replicas=2,leaderElection.enabled=false"],
            "leaderElection.enabled",
        ),
        (
            &[
                "--set",
                "certManager.enabled=false,certManager.existingIssuer.name=x",
            ],
            "certManager.existingIssuer.name",
        ),
    ];
    for (extra, expected) in cases {
        let mut a = vec!["template", "x", chart.as_str()];
        a.extend_from_slice(extra);
        let out = helm.run(&a);
        assert!(!out.ok, "{extra:?} rendered");
        assert!(out.stderr.contains(expected), "{extra:?}: {}", out.stderr);
    }
}

/// config/certs/ (installs without Helm) is the chain the chart renders for a release
/// `mcp-operator` in `mcp-operator-system`, the defaults of `run` and `crds`.
#[test]
fn config_certs_are_the_charts_chain() {
    let helm = Helm::new();
    let docs = helm.render(RELEASE, "mcp-operator-system", &[]);
    let strip = |d: &Value| {
        let mut d = d.clone();
        d["metadata"].as_object_mut().unwrap().remove("labels");
        d
    };
    let mut rendered: Vec<Value> = docs
        .iter()
        .filter(|d| d["apiVersion"] == "cert-manager.io/v1")
        .map(strip)
        .collect();
    let dir = chart_support::repo().join("config/certs");
    let mut plain = Vec::new();
    for file in ["ca.yaml", "serving-certificate.yaml"] {
        plain.extend(documents(&std::fs::read_to_string(dir.join(file)).unwrap()));
    }
    let key = |d: &Value| format!("{} {}", d["kind"], d["metadata"]["name"]);
    rendered.sort_by_key(key);
    plain.sort_by_key(key);
    assert_eq!(rendered.len(), 4);
    assert_eq!(
        plain, rendered,
        "config/certs differs from `helm template mcp-operator chart -n mcp-operator-system --show-only templates/certificates.yaml`"
    );
    // The names run and crds default to.
    let serving = plain
        .iter()
        .find(|d| d["metadata"]["name"] == "mcp-operator-serving-cert")
        .unwrap();
    let dns = serving["spec"]["dnsNames"].to_string();
    let default = WebhookService::default();
    assert!(
        dns.contains(&format!("{}.{}.svc", default.name, default.namespace)),
        "{dns}"
    );
}

/// Two releases in one namespace (say one per team, namespace-scoped; the second without CRDs)
/// share no object name, and in particular not the leader Lease.
#[test]
fn two_releases_in_one_namespace_share_no_names() {
    let helm = Helm::new();
    let scoped = |team: &str| format!("watchNamespaces[0]={team},storageMigration=false");
    let first = helm.render("team-a", NAMESPACE, &["--set", &scoped("team-a")]);
    let second = helm.render(
        "team-b",
        NAMESPACE,
        &["--set", &scoped("team-b"), "--set", "crds.install=false"],
    );
    let names = |docs: &[Value]| -> BTreeSet<String> {
        docs.iter()
            .map(|d| {
                format!(
                    "{} {}/{}",
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["namespace"].as_str().unwrap_or(""),
                    d["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let shared: Vec<_> = names(&first)
        .intersection(&names(&second))
        .cloned()
        .collect();
    assert!(shared.is_empty(), "{shared:?}");
    assert_ne!(arg(&first, "--lease-name"), arg(&second, "--lease-name"));
}
