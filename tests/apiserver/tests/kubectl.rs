//! The real kubectl (installed by scripts/install-kube-tools.sh) against the test API server.

mod common;

use common::Kubectl;
use test_apiserver::{Options, TestApiServer};

const CRD: &str = include_str!("fixtures/widget-crd.yaml");

const WIDGET: &str = "apiVersion: test.example.com/v1
kind: Widget
metadata: {name: w1}
spec: {greeting: hello, port: 80}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_patch_wait_delete() {
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let k = Kubectl::new(&server);
    let crd = k.file("crd.yaml", CRD);
    let w = k.file("w.yaml", WIDGET);

    let out = k.ok(&["apply", "--validate=false", "-f", &crd]).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/widgets.test.example.com created"
        ),
        "{out}"
    );
    let out = k.ok(&["apply", "--validate=false", "-f", &w]).await;
    assert!(out.contains("widget.test.example.com/w1 created"), "{out}");

    // Each served version, as YAML; the schema default (mode: fast) was applied on create.
    let v1 = k
        .ok(&["get", "widgets.v1.test.example.com", "w1", "-o", "yaml"])
        .await;
    assert!(
        v1.contains("apiVersion: test.example.com/v1") && v1.contains("mode: fast"),
        "{v1}"
    );
    let v2 = k
        .ok(&["get", "widgets.v2.test.example.com", "w1", "-o", "yaml"])
        .await;
    assert!(
        v2.contains("apiVersion: test.example.com/v2") && v2.contains("greeting: hello"),
        "{v2}"
    );

    // Printer columns (server-side Table), by short name.
    let table = k.ok(&["get", "wd"]).await;
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("NAME") && header.contains("GREETING") && header.contains("READY"),
        "{table}"
    );
    assert!(table.contains("w1") && table.contains("hello"), "{table}");

    // Patches: merge, JSON, status subresource; wait for the condition.
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"greeting":"bye"}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/port","value":8080}]"#,
    ])
    .await;
    let got = k
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.spec.greeting} {.spec.port} {.metadata.generation}",
        ])
        .await;
    assert_eq!(got, "bye 8080 3");
    let waiter = {
        let args: Vec<String> = [
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=20s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let k2 = Kubectl::new(&server);
        tokio::spawn(async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            k2.run(&refs).await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ])
    .await;
    let waited = waiter.await.unwrap();
    assert!(
        waited.ok && waited.stdout.contains("condition met"),
        "{} {}",
        waited.stdout,
        waited.stderr
    );
    // A status write does not bump the generation.
    let gen = k
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .await;
    assert_eq!(gen, "3");
    let table = k.ok(&["get", "widgets"]).await;
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("bye") && l.contains("True")),
        "{table}"
    );

    // Schema checks reach kubectl as the apiserver words them.
    let bad = k.file("bad.yaml", "apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {greeting: hi, port: 70000}\n");
    let err = k.fails(&["apply", "--validate=false", "-f", &bad]).await;
    assert!(err.contains("spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535"), "{err}");
    let cel = k.file("cel.yaml", "apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {greeting: hi, port: 22}\n");
    let err = k.fails(&["apply", "--validate=false", "-f", &cel]).await;
    assert!(err.contains("port 22 is reserved"), "{err}");

    // Server-side apply: a conflict with the earlier patch's manager, then forced.
    let err = k
        .fails(&["apply", "--server-side", "--validate=false", "-f", &w])
        .await;
    assert!(err.contains("conflict with \"kubectl-patch\""), "{err}");
    k.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--validate=false",
        "-f",
        &w,
    ])
    .await;
    let got = k
        .ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.greeting}"])
        .await;
    assert_eq!(got, "hello");

    // Delete; then it is gone.
    let out = k.ok(&["delete", "widget", "w1"]).await;
    assert!(out.contains("deleted"), "{out}");
    let err = k.fails(&["get", "widget", "w1"]).await;
    assert!(
        err.contains("Error from server (NotFound): widgets.test.example.com \"w1\" not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_builtins_namespaces_and_labels() {
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let k = Kubectl::new(&server);
    // Through apply (JSON): any kind, and the namespace must exist.
    let cm = |name: &str, ns: &str, v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{a: {v}}}\n")
    };
    let nowhere = k.file("nowhere.yaml", &cm("c", "nowhere", "b"));
    let err = k
        .fails(&["apply", "--validate=false", "-f", &nowhere])
        .await;
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    let ns = k.file(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    );
    k.ok(&["apply", "--validate=false", "-f", &ns]).await;
    let c1 = k.file("c1.yaml", &cm("c1", "team", "b"));
    let c2 = k.file("c2.yaml", &cm("c2", "team", "c"));
    k.ok(&["apply", "--validate=false", "-f", &c1, "-f", &c2])
        .await;
    k.ok(&["label", "configmap", "c1", "-n", "team", "tier=front"])
        .await;
    let names = k
        .ok(&[
            "get",
            "configmaps",
            "-n",
            "team",
            "-l",
            "tier=front",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names.trim(), "configmap/c1");
    let names = k
        .ok(&[
            "get",
            "configmaps",
            "-A",
            "--field-selector",
            "metadata.name=c2",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(names.trim(), "configmap/c2");
    // Deleting the namespace deletes its content, then the namespace.
    k.ok(&[
        "delete",
        "namespace",
        "team",
        "--wait=true",
        "--timeout=20s",
    ])
    .await;
    let err = k.fails(&["get", "configmap", "c1", "-n", "team"]).await;
    assert!(err.contains("NotFound"), "{err}");
    let out = k.ok(&["api-resources", "--api-group=apps"]).await;
    assert!(
        out.contains("deployments") && out.contains("statefulsets"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_validates_through_openapi_v3_and_field_validation() {
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let k = Kubectl::new(&server);
    // Default kubectl validation (strict): needs /openapi/v3 and sends fieldValidation=Strict.
    k.ok(&["apply", "-f", &k.file("crd.yaml", CRD)]).await;
    k.ok(&["apply", "-f", &k.file("w.yaml", WIDGET)]).await;
    let junk = k.file("junk.yaml", "apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: j}\nspec: {greeting: hi, junk: 1}\n");
    let err = k.fails(&["apply", "-f", &junk]).await;
    assert!(
        err.contains("Error from server (BadRequest): error when creating")
            && err.contains("strict decoding error: unknown field \"spec.junk\""),
        "{err}"
    );
    // --validate=warn: created, pruned, with the server's warning.
    let out = k.run(&["apply", "--validate=warn", "-f", &junk]).await;
    assert!(
        out.ok && out.stderr.contains("Warning: unknown field \"spec.junk\""),
        "{} {}",
        out.stdout,
        out.stderr
    );
    let spec = k
        .ok(&[
            "get",
            "widgets.v1.test.example.com",
            "j",
            "-o",
            "jsonpath={.spec}",
        ])
        .await;
    assert!(!spec.contains("junk"), "{spec}");
    // Built-ins: client-side apply computes a strategic merge patch; the second apply updates.
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{a: {v}}}\n")
    };
    k.ok(&["apply", "-f", &k.file("c1.yaml", &cm("one"))]).await;
    let out = k.ok(&["apply", "-f", &k.file("c2.yaml", &cm("two"))]).await;
    assert!(out.contains("configmap/c configured"), "{out}");
    assert_eq!(
        k.ok(&["get", "cm", "c", "-o", "jsonpath={.data.a}"]).await,
        "two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_protobuf_for_core_kinds() {
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let k = Kubectl::new(&server);
    k.ok(&["create", "namespace", "team"]).await;
    k.ok(&[
        "create",
        "configmap",
        "c",
        "-n",
        "team",
        "--from-literal=a=b",
    ])
    .await;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "team",
        "--from-literal=p=q",
    ])
    .await;
    k.ok(&["create", "serviceaccount", "sa", "-n", "team"])
        .await;
    assert_eq!(
        k.ok(&[
            "get",
            "secret",
            "s",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.p}"
        ])
        .await,
        "cQ=="
    );
    assert_eq!(
        k.ok(&["get", "cm", "c", "-n", "team", "-o", "jsonpath={.data.a}"])
            .await,
        "b"
    );
    // Other kinds in protobuf are refused with a clear message (kubectl apply sends JSON).
    let err = k
        .fails(&["create", "deployment", "d", "--image=busybox", "-n", "team"])
        .await;
    assert!(err.contains("protobuf is supported for core/v1 ConfigMap, Secret, Namespace and ServiceAccount only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_a_non_structural_crd_is_refused() {
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let k = Kubectl::new(&server);
    let bad = CRD.replace("            required: [greeting]\n", "").replace("          spec:\n            type: object\n            properties:\n              greeting", "          spec:\n            properties:\n              greeting");
    assert_ne!(bad, CRD);
    let err = k.fails(&["apply", "-f", &k.file("bad.yaml", &bad)]).await;
    assert!(
        err.contains("The CustomResourceDefinition \"widgets.test.example.com\" is invalid")
            && err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"),
        "{err}"
    );
}
