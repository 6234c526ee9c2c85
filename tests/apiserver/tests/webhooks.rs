//! The admission chain and conversion through real webhook configurations, over HTTPS.

mod common;

use base64::Engine;
use common::{admission_response, Kubectl, WebhookServer};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{json, Value};
use std::sync::Arc;
use test_apiserver::{Options, TestApiServer};

const CRD: &str = include_str!("fixtures/widget-crd.yaml");

fn widget_api(client: &kube::Client, version: &str) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "test.example.com".into(),
        version: version.into(),
        api_version: format!("test.example.com/{version}"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    Api::namespaced_with(client.clone(), "default", &ar)
}

fn widget(version: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": format!("test.example.com/{version}"), "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Denies greeting "forbidden" (403), warns otherwise; `/mutate` adds a label and a field.
fn admission_handler() -> common::Handler {
    Arc::new(|path: &str, review: Value| {
        let obj = &review["request"]["object"];
        match path {
            "/validate" => {
                if obj["spec"]["greeting"] == "forbidden" {
                    admission_response(
                        &review,
                        json!({"allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": "greeting \"forbidden\" is not allowed"}}),
                    )
                } else {
                    admission_response(&review, json!({"allowed": true, "warnings": ["be nice"]}))
                }
            }
            "/mutate" => {
                let mut ops = vec![];
                if obj["metadata"]["labels"].is_null() {
                    ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
                }
                ops.push(json!({"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}));
                ops.push(json!({"op": "add", "path": "/spec/port", "value": 8443}));
                let patch = base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(&ops).unwrap());
                admission_response(
                    &review,
                    json!({"allowed": true, "patchType": "JSONPatch", "patch": patch}),
                )
            }
            _ => admission_response(
                &review,
                json!({"allowed": false, "status": {"message": "unknown path"}}),
            ),
        }
    })
}

fn webhook_config(
    kind: &str,
    name: &str,
    hook: &str,
    path: &str,
    ca_bundle: &str,
    extra: Value,
) -> String {
    let mut h = json!({
        "name": hook,
        "clientConfig": {"service": {"namespace": "webhooks", "name": "wh", "path": path, "port": 443}, "caBundle": ca_bundle},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["test.example.com"], "apiVersions": ["v1"], "resources": ["widgets"]}],
        "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 5,
    });
    if let (Some(h), Some(e)) = (h.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            h.insert(k.clone(), v.clone());
        }
    }
    let cfg = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name}, "webhooks": [h]});
    serde_json::to_string(&cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_webhook_denies_through_kubectl_and_mutating_adds_fields() {
    let wh = WebhookServer::start(&["wh.webhooks.svc"], admission_handler()).await;
    let server = TestApiServer::start(Options::default()).await.unwrap();
    server.set_service("webhooks/wh", &wh.addr.to_string());
    let k = Kubectl::new(&server);
    k.ok(&["apply", "--validate=false", "-f", &k.file("crd.yaml", CRD)])
        .await;
    let vwc = webhook_config(
        "ValidatingWebhookConfiguration",
        "widgets-validate",
        "vwidget.test.example.com",
        "/validate",
        &wh.ca_bundle(),
        json!({"objectSelector": {"matchExpressions": [{"key": "skip-validation", "operator": "DoesNotExist"}]}}),
    );
    k.ok(&["apply", "--validate=false", "-f", &k.file("vwc.json", &vwc)])
        .await;

    let bad = k.file("bad.yaml", "apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {greeting: forbidden}\n");
    let err = k.fails(&["apply", "--validate=false", "-f", &bad]).await;
    let want = format!(
        "Error from server (Forbidden): error when creating \"{bad}\": admission webhook \"vwidget.test.example.com\" denied the request: greeting \"forbidden\" is not allowed"
    );
    assert!(err.contains(&want), "{err}");
    // Server-side apply shows the same denial without the "error when creating" prefix.
    let err = k
        .fails(&["apply", "--server-side", "--validate=false", "-f", &bad])
        .await;
    assert!(err.contains("Error from server (Forbidden): admission webhook \"vwidget.test.example.com\" denied the request"), "{err}");

    // Warnings travel as Warning headers, which kubectl prints.
    let good = k.file("good.yaml", "apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: good}\nspec: {greeting: hi}\n");
    let out = k.run(&["apply", "--validate=false", "-f", &good]).await;
    assert!(
        out.ok && out.stderr.contains("Warning: be nice"),
        "{} {}",
        out.stdout,
        out.stderr
    );

    // objectSelector: a labelled object bypasses the webhook.
    let skip = k.file("skip.yaml", "apiVersion: test.example.com/v1\nkind: Widget\nmetadata: {name: skip, labels: {skip-validation: 'true'}}\nspec: {greeting: forbidden}\n");
    k.ok(&["apply", "--validate=false", "-f", &skip]).await;

    // A mutating webhook adds a label and a field; validation still runs after it.
    let mwc = webhook_config(
        "MutatingWebhookConfiguration",
        "widgets-mutate",
        "mwidget.test.example.com",
        "/mutate",
        &wh.ca_bundle(),
        json!({}),
    );
    k.ok(&["apply", "--validate=false", "-f", &k.file("mwc.json", &mwc)])
        .await;
    let api = widget_api(&server.client().unwrap(), "v1");
    let created = api
        .create(
            &PostParams::default(),
            &widget("v1", "mutated", json!({"greeting": "hello"})),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.labels.unwrap()["mutated"], "yes");
    assert_eq!(created.data["spec"]["port"], 8443);
    assert!(wh.calls() >= 5);
}

#[tokio::test]
async fn webhook_failures_follow_failure_policy_and_ca_bundle() {
    let wh = WebhookServer::start(&["wh.webhooks.svc"], admission_handler()).await;
    let other = WebhookServer::start(&["wh.webhooks.svc"], admission_handler()).await;
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let client = server.client().unwrap();
    let k = Kubectl::new(&server);
    k.ok(&["apply", "--validate=false", "-f", &k.file("crd.yaml", CRD)])
        .await;
    let api = widget_api(&client, "v1");

    // Not in the service map: failurePolicy Fail → 500 InternalError naming the webhook.
    let vwc = webhook_config(
        "ValidatingWebhookConfiguration",
        "v",
        "vwidget.test.example.com",
        "/validate",
        &wh.ca_bundle(),
        json!({}),
    );
    k.ok(&["apply", "--validate=false", "-f", &k.file("v.json", &vwc)])
        .await;
    let err = api
        .create(
            &PostParams::default(),
            &widget("v1", "a", json!({"greeting": "x"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err:?}")
    };
    assert_eq!(s.code, 500);
    assert!(s.message.starts_with("Internal error occurred: failed calling webhook \"vwidget.test.example.com\": failed to call webhook:"), "{}", s.message);

    // A CA bundle that did not sign the webhook's certificate: TLS fails, the write fails.
    server.set_service("webhooks/wh", &wh.addr.to_string());
    let wrong = webhook_config(
        "ValidatingWebhookConfiguration",
        "v",
        "vwidget.test.example.com",
        "/validate",
        &other.ca_bundle(),
        json!({}),
    );
    k.ok(&["apply", "--validate=false", "-f", &k.file("v.json", &wrong)])
        .await;
    let err = api
        .create(
            &PostParams::default(),
            &widget("v1", "b", json!({"greeting": "x"})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed calling webhook"), "{err}");

    // failurePolicy Ignore: the same broken webhook no longer blocks writes.
    let ignore = webhook_config(
        "ValidatingWebhookConfiguration",
        "v",
        "vwidget.test.example.com",
        "/validate",
        &other.ca_bundle(),
        json!({"failurePolicy": "Ignore"}),
    );
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        &k.file("v.json", &ignore),
    ])
    .await;
    api.create(
        &PostParams::default(),
        &widget("v1", "c", json!({"greeting": "x"})),
    )
    .await
    .unwrap();

    // namespaceSelector: only namespaces labelled for it are checked.
    let scoped = webhook_config(
        "ValidatingWebhookConfiguration",
        "v",
        "vwidget.test.example.com",
        "/validate",
        &wh.ca_bundle(),
        json!({"namespaceSelector": {"matchLabels": {"validate": "yes"}}}),
    );
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        &k.file("v.json", &scoped),
    ])
    .await;
    api.create(
        &PostParams::default(),
        &widget("v1", "d", json!({"greeting": "forbidden"})),
    )
    .await
    .unwrap();
    k.ok(&["label", "namespace", "default", "validate=yes"])
        .await;
    let err = api
        .create(
            &PostParams::default(),
            &widget("v1", "e", json!({"greeting": "forbidden"})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("denied the request"), "{err}");

    // matchPolicy Equivalent: a rule for v1 also catches writes made at v2.
    let api_v2 = widget_api(&client, "v2");
    let err = api_v2
        .create(
            &PostParams::default(),
            &widget("v2", "f", json!({"greeting": "forbidden"})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("denied the request"), "{err}");
    // ... but not with matchPolicy Exact.
    let exact = webhook_config(
        "ValidatingWebhookConfiguration",
        "v",
        "vwidget.test.example.com",
        "/validate",
        &wh.ca_bundle(),
        json!({"matchPolicy": "Exact"}),
    );
    k.ok(&["apply", "--validate=false", "-f", &k.file("v.json", &exact)])
        .await;
    api_v2
        .create(
            &PostParams::default(),
            &widget("v2", "g", json!({"greeting": "forbidden"})),
        )
        .await
        .unwrap();
}

/// v1 has `spec.greeting`; v2 calls it `spec.message`.
fn conversion_handler() -> common::Handler {
    Arc::new(|_path: &str, review: Value| {
        let req = &review["request"];
        let desired = req["desiredAPIVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut out = vec![];
        for o in req["objects"].as_array().cloned().unwrap_or_default() {
            let mut c = o.clone();
            let from = o["apiVersion"].as_str().unwrap_or_default();
            if from.ends_with("/v1") && desired.ends_with("/v2") {
                c["spec"] = json!({"message": o["spec"]["greeting"]});
            } else if from.ends_with("/v2") && desired.ends_with("/v1") {
                if o["spec"]["message"] == "fail" {
                    return json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                        "response": {"uid": req["uid"], "result": {"status": "Failure", "message": "cannot convert \"fail\""}}});
                }
                c["spec"] = json!({"greeting": o["spec"]["message"]});
            }
            c["apiVersion"] = json!(desired);
            out.push(c);
        }
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": req["uid"], "convertedObjects": out, "result": {"status": "Success"}}})
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversion_webhook_serves_the_non_storage_version() {
    let wh = WebhookServer::start(&["conv.webhooks.svc"], conversion_handler()).await;
    let server = TestApiServer::start(Options::default()).await.unwrap();
    server.set_service("webhooks/conv", &wh.addr.to_string());
    let k = Kubectl::new(&server);
    let crd = CRD.replace(
        "  scope: Namespaced\n",
        &format!(
            "  scope: Namespaced\n  conversion:\n    strategy: Webhook\n    webhook:\n      conversionReviewVersions: [v1]\n      clientConfig:\n        caBundle: {}\n        service: {{namespace: webhooks, name: conv, path: /convert, port: 443}}\n",
            wh.ca_bundle()
        ),
    );
    k.ok(&["apply", "--validate=false", "-f", &k.file("crd.yaml", &crd)])
        .await;
    let client = server.client().unwrap();
    let v1 = widget_api(&client, "v1");
    let v2 = widget_api(&client, "v2");
    v1.create(
        &PostParams::default(),
        &widget("v1", "w", json!({"greeting": "hello"})),
    )
    .await
    .unwrap();
    assert_eq!(wh.calls(), 0, "no conversion needed at the storage version");

    // A get at v2 goes through the webhook.
    let got = v2.get("w").await.unwrap();
    assert_eq!(got.data["spec"]["message"], "hello");
    assert_eq!(wh.calls(), 1);
    let yaml = k
        .ok(&["get", "widgets.v2.test.example.com", "w", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("apiVersion: test.example.com/v2") && yaml.contains("message: hello"),
        "{yaml}"
    );

    // A write at v2 is stored at v1.
    v2.create(
        &PostParams::default(),
        &widget("v2", "w2", json!({"message": "bonjour"})),
    )
    .await
    .unwrap();
    let stored = server
        .stored_object("test.example.com", "widgets", "default", "w2")
        .unwrap();
    assert_eq!(stored["apiVersion"], "test.example.com/v1");
    assert_eq!(stored["spec"]["greeting"], "bonjour");
    let list = v2.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert!(list
        .items
        .iter()
        .all(|o| o.data["spec"]["message"].is_string()));

    // A failed conversion fails the request as the apiserver does (500).
    let err = v2
        .create(
            &PostParams::default(),
            &widget("v2", "w3", json!({"message": "fail"})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err:?}")
    };
    assert_eq!(s.code, 500);
    assert!(
        s.message.contains(
            "conversion webhook for test.example.com/v1, Kind=Widget failed: cannot convert"
        ),
        "{}",
        s.message
    );

    // The CRD records its storage version.
    let stored_versions = k
        .ok(&[
            "get",
            "crd",
            "widgets.test.example.com",
            "-o",
            "jsonpath={.status.storedVersions}",
        ])
        .await;
    assert_eq!(stored_versions, "[\"v1\"]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_conditions_and_reinvocation() {
    let handler: common::Handler = Arc::new(|path: &str, review: Value| {
        let obj = &review["request"]["object"];
        let patch = |ops: Value| {
            let p =
                base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&ops).unwrap());
            admission_response(
                &review,
                json!({"allowed": true, "patchType": "JSONPatch", "patch": p}),
            )
        };
        match path {
            // Counts its own invocations in an annotation.
            "/count" => {
                let n = obj["metadata"]["annotations"]["calls"]
                    .as_str()
                    .and_then(|s| s.parse::<u32>().ok())
                    .unwrap_or(0);
                let mut ops = vec![];
                if obj["metadata"]["annotations"].is_null() {
                    ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
                }
                ops.push(json!({"op": "add", "path": "/metadata/annotations/calls", "value": (n + 1).to_string()}));
                patch(json!(ops))
            }
            "/label" => {
                let mut ops = vec![];
                if obj["metadata"]["labels"].is_null() {
                    ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
                }
                ops.push(json!({"op": "add", "path": "/metadata/labels/labelled", "value": "yes"}));
                patch(json!(ops))
            }
            _ => admission_response(
                &review,
                json!({"allowed": false, "status": {"code": 403, "message": "no"}}),
            ),
        }
    });
    let wh = WebhookServer::start(&["wh.webhooks.svc"], handler).await;
    let server = TestApiServer::start(Options::default()).await.unwrap();
    server.set_service("webhooks/wh", &wh.addr.to_string());
    server.apply_yaml(CRD).await.unwrap();
    let hook = |name: &str, path: &str, extra: Value| {
        let mut h = json!({
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"service": {"namespace": "webhooks", "name": "wh", "path": path}, "caBundle": wh.ca_bundle()},
            "rules": [{"operations": ["CREATE"], "apiGroups": ["test.example.com"], "apiVersions": ["*"], "resources": ["widgets"]}],
        });
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        h
    };
    let configs = json!([
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "a-count"},
         "webhooks": [hook("count.test.io", "/count", json!({"reinvocationPolicy": "IfNeeded"}))]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "b-label"},
         "webhooks": [hook("label.test.io", "/label", json!({}))]},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "deny"},
         "webhooks": [hook("deny.test.io", "/deny", json!({"matchConditions": [
            {"name": "not-excused", "expression": "!has(object.metadata.labels) || !('excused' in object.metadata.labels)"}]}))]},
    ]);
    for c in configs.as_array().unwrap() {
        server
            .apply_yaml(&serde_json::to_string(c).unwrap())
            .await
            .unwrap();
    }
    let api = widget_api(&server.client().unwrap(), "v1");
    // matchConditions: the excused widget skips the denying webhook; the other is denied.
    let excused: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "test.example.com/v1", "kind": "Widget",
        "metadata": {"name": "ok", "labels": {"excused": "1"}}, "spec": {"greeting": "hi"}}),
    )
    .unwrap();
    let created = api.create(&PostParams::default(), &excused).await.unwrap();
    let err = api
        .create(
            &PostParams::default(),
            &widget("v1", "no", json!({"greeting": "hi"})),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("admission webhook \"deny.test.io\" denied the request: no"),
        "{err}"
    );
    // Reinvocation: the label webhook changed the object after "count" ran, so "count" ran again.
    assert_eq!(created.metadata.labels.as_ref().unwrap()["labelled"], "yes");
    assert_eq!(created.metadata.annotations.as_ref().unwrap()["calls"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_webhook_times_out_per_timeout_seconds() {
    let allow: common::Handler = Arc::new(|_path: &str, review: Value| {
        admission_response(&review, json!({"allowed": true}))
    });
    let wh = WebhookServer::start_with_delay(
        &["wh.webhooks.svc"],
        allow,
        std::time::Duration::from_secs(3),
    )
    .await;
    let server = TestApiServer::start(Options::default()).await.unwrap();
    server.set_service("webhooks/wh", &wh.addr.to_string());
    server.apply_yaml(CRD).await.unwrap();
    let cfg = webhook_config(
        "ValidatingWebhookConfiguration",
        "slow",
        "slow.test.example.com",
        "/validate",
        &wh.ca_bundle(),
        json!({"timeoutSeconds": 1}),
    );
    server.apply_yaml(&cfg).await.unwrap();
    let api = widget_api(&server.client().unwrap(), "v1");
    let started = std::time::Instant::now();
    let err = api
        .create(
            &PostParams::default(),
            &widget("v1", "w", json!({"greeting": "hi"})),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2800),
        "{:?}",
        started.elapsed()
    );
    let kube::Error::Api(s) = err else {
        panic!("{err:?}")
    };
    assert_eq!(s.code, 500);
    assert!(
        s.message.contains("failed calling webhook \"slow.test.example.com\": failed to call webhook: Post \"https://wh.webhooks.svc:")
            && s.message.ends_with("/validate?timeout=1s\": context deadline exceeded"),
        "{}",
        s.message
    );
}
