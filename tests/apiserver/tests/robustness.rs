//! Malformed requests get error Statuses, never a panic (checked with a panic hook).

use std::sync::atomic::{AtomicBool, Ordering};
use test_apiserver::{Options, TestApiServer};

static PANICKED: AtomicBool = AtomicBool::new(false);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        default_hook(info);
    }));
    let server = TestApiServer::start(Options::default()).await.unwrap();
    server
        .apply_yaml(include_str!("fixtures/widget-crd.yaml"))
        .await
        .unwrap();
    let base = server.url();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bodies = [
        "", "[]", "\"x\"", "5", "null", "{", "{\"metadata\": \"x\"}", "{\"metadata\": {\"name\": \"a\", \"labels\": \"x\"}}",
        "{\"metadata\": {\"name\": \"a\", \"finalizers\": \"x\"}}", "{\"metadata\": {\"name\": \"a\"}, \"spec\": \"x\"}",
        "{\"metadata\": {\"name\": \"a\"}, \"spec\": {\"strategy\": \"x\", \"template\": {\"spec\": {\"containers\": \"x\"}}}}",
        "{\"metadata\": {\"name\": \"a\"}, \"spec\": {\"template\": {\"spec\": {\"containers\": [5, {\"ports\": \"x\", \"livenessProbe\": 3}]}}}}",
        "{\"metadata\": {\"name\": \"a\", \"ownerReferences\": [{\"uid\": 5}]}}",
        "{\"metadata\": {\"name\": \"a\", \"managedFields\": [{\"fieldsV1\": {\"f:x\": 5, \"k:{bad\": {}}}]}}",
        "{\"metadata\": {\"name\": \"a\"}, \"spec\": {\"versions\": \"x\", \"names\": \"y\", \"group\": 5}}",
        "{\"metadata\": {\"name\": \"widgets.test.example.com\"}, \"spec\": {\"group\": \"test.example.com\", \"names\": {\"plural\": \"widgets\", \"kind\": \"W\"}, \"versions\": [{\"name\": \"v1\", \"served\": true, \"storage\": true, \"schema\": {\"openAPIV3Schema\": {\"type\": \"object\", \"properties\": 5}}}]}}",
        "{\"metadata\": {\"name\": \"w\"}, \"spec\": {\"greeting\": [1, {\"a\": null}], \"port\": \"x\", \"mode\": {}}}",
        "{\"metadata\": {\"name\": \"a\"}, \"spec\": {\"ports\": [{\"port\": \"x\"}], \"type\": 5, \"clusterIP\": 7}}",
        "{\"metadata\": {\"name\": \"h\"}, \"webhooks\": [5, {\"name\": \"x\", \"rules\": \"y\"}, {\"name\": \"z.y.x\", \"rules\": [{\"operations\": \"CREATE\"}], \"clientConfig\": 5, \"namespaceSelector\": {\"matchExpressions\": [{\"operator\": \"Bogus\"}]}}]}",
        "{\"metadata\": {\"name\": \"h\"}, \"webhooks\": \"x\"}",
    ];
    let paths = [
        "/api/v1/namespaces/default/configmaps",
        "/api/v1/namespaces",
        "/apis/apps/v1/namespaces/default/deployments",
        "/api/v1/namespaces/default/services",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "/apis/test.example.com/v1/namespaces/default/widgets",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    ];
    let patch_types = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "application/vnd.kubernetes.protobuf",
    ];
    for path in paths {
        // Something to patch and update.
        let _ = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body("{\"metadata\": {\"name\": \"a\"}, \"spec\": {\"greeting\": \"x\"}}")
            .send()
            .await
            .unwrap();
        for body in bodies {
            let r = http
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(
                r.status().as_u16() < 500 || r.status().as_u16() == 500,
                "{path} {body}"
            );
            let _ = http
                .put(format!("{base}{path}/a"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            for ct in patch_types {
                let _ = http
                    .patch(format!("{base}{path}/a?fieldManager=x&force=true"))
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let _ = http
                    .patch(format!("{base}{path}/a/status?fieldManager=x"))
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let _ = http
                    .patch(format!("{base}{path}/a/scale?fieldManager=x"))
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
            }
            let _ = http
                .delete(format!("{base}{path}/a"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
        }
        for q in [
            "watch=true&resourceVersion=abc",
            "labelSelector=(((",
            "labelSelector=a%20in%20b",
            "fieldSelector=x",
            "limit=-1",
            "continue=%%%",
            "watch=true&sendInitialEvents=true",
            "watch=1&timeoutSeconds=zz&resourceVersion=99999999",
        ] {
            let r = http.get(format!("{base}{path}?{q}")).send().await.unwrap();
            assert!(
                r.status().is_client_error() || r.status().is_success(),
                "{path}?{q}: {}",
                r.status()
            );
        }
    }
    for p in [
        "/apis/../../etc",
        "/api/v1/namespaces/default/configmaps/a/b/c/d",
        "/apis/x",
        "/openapi/v3/apis/none/v9",
        &"/a".repeat(3000),
    ] {
        let r = http.get(format!("{base}{p}")).send().await.unwrap();
        assert!(r.status().is_client_error(), "{p}: {}", r.status());
    }
    assert!(http
        .get(format!("{base}/version"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a handler panicked (see the output above)"
    );
}
