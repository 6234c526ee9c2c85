//! Property-based fuzzing of the review decoder and of the admission answers: arbitrary bytes,
//! arbitrary JSON objects in a well-formed review, and random damage to a valid review. No input
//! may panic, and every defaulting patch must apply to the object it was computed for.

use mcp_operator::admission::{self, Operation};
use mcp_operator::api::{GROUP, SERVED};
use mcp_operator::webhook::handlers::answer_review;
use mcp_operator::webhook::review::{decode_review, encode_review};
use mcp_operator::webhook::routes::{routes, Route, WebhookKind};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            "[a-zA-Z0-9:/._-]{0,24}",
            Just("stdio".to_string()),
            Just("sse".to_string()),
            Just("streamable-http".to_string()),
            Just("toolhive.stacklok.dev/v1beta1".to_string()),
            Just("MCPServer".to_string()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-zA-Z]{1,12}",
                    Just("spec".to_string()),
                    Just("metadata".to_string()),
                    Just("name".to_string()),
                    Just("image".to_string()),
                    Just("transport".to_string()),
                    Just("proxyPort".to_string()),
                    Just("secrets".to_string()),
                    Just("key".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object of one of our kinds whose metadata and spec are arbitrary.
fn any_object() -> impl Strategy<Value = (usize, usize, Value)> {
    (0..SERVED.len(), 0..2usize, any_json(), any_json()).prop_map(|(k, v, metadata, spec)| {
        let served = &SERVED[k];
        let version = served.versions[v % served.versions.len()];
        let metadata = match metadata {
            Value::Object(mut m) => {
                m.entry("name").or_insert(json!("fuzz"));
                Value::Object(m)
            }
            other => other,
        };
        (k, v, json!({"apiVersion": format!("{GROUP}/{version}"), "kind": served.kind, "metadata": metadata, "spec": spec}))
    })
}

fn review(
    kind: &str,
    version: &str,
    operation: &str,
    object: &Value,
    old: Option<&Value>,
) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz",
            "kind": {"group": GROUP, "version": version, "kind": kind},
            "resource": {"group": GROUP, "version": version, "resource": "x"},
            "name": "fuzz",
            "namespace": "default",
            "operation": operation,
            "userInfo": {},
            "object": object,
            "oldObject": old,
        }
    })
}

fn route(kind: &str, version: &str, webhook: WebhookKind) -> Route {
    routes()
        .into_iter()
        .find(|r| r.kind() == kind && r.version == version && r.webhook == webhook)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_review(&bytes);
    }

    #[test]
    fn json_ish_text_never_panics_the_decoder(text in "[\\[\\]{}\",:0-9a-zA-Z \\\\]{0,512}") {
        let _ = decode_review(text.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_objects_are_answered_and_patches_apply((k, v, object) in any_object(), update in any::<bool>()) {
        let served = &SERVED[k];
        let version = served.versions[v % served.versions.len()];
        let operation = if update { "UPDATE" } else { "CREATE" };
        let old = update.then(|| object.clone());
        let body = serde_json::to_vec(&review(served.kind, version, operation, &object, old.as_ref())).unwrap();
        let rt = runtime();
        for webhook in [WebhookKind::Mutate, WebhookKind::Validate] {
            let decoded = decode_review(&body).expect("a well-formed review decodes");
            let answer = rt.block_on(answer_review(route(served.kind, version, webhook), decoded, None));
            let encoded: Value = serde_json::from_slice(&encode_review(&answer.response)).unwrap();
            prop_assert_eq!(&encoded["response"]["uid"], "fuzz");
            if webhook == WebhookKind::Mutate {
                prop_assert_eq!(answer.response.allowed, true, "defaulting never denies: {}", encoded);
                let patch: json_patch::Patch = serde_json::from_slice(answer.response.patch.as_deref().unwrap()).unwrap();
                let mut patched = object.clone();
                json_patch::patch(&mut patched, &patch).expect("the patch applies");
                let op = if update { Operation::Update } else { Operation::Create };
                let verdict = admission::admit(&object, old.as_ref(), op).unwrap();
                prop_assert_eq!(patched, verdict.defaulted);
            } else if !answer.response.allowed {
                prop_assert!(matches!(answer.response.result.code, 400 | 422), "{}", encoded);
            }
        }
    }

    #[test]
    fn a_damaged_review_is_refused_or_answered_never_panics(
        damage in prop::collection::vec((0usize..64, any_json()), 1..4),
    ) {
        let object = json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "fetch", "namespace": "default"},
            "spec": {"image": "docker.io/mcp/fetch", "secrets": [{"name": "gh", "key": "token"}]}});
        let mut review = review("MCPServer", "v1beta1", "CREATE", &object, None);
        for (at, value) in damage {
            let pointers = pointers(&review);
            let pointer = &pointers[at % pointers.len()];
            if let Some(slot) = review.pointer_mut(pointer) {
                *slot = value;
            }
        }
        let body = serde_json::to_vec(&review).unwrap();
        if let Ok(decoded) = decode_review(&body) {
            let rt = runtime();
            for webhook in [WebhookKind::Mutate, WebhookKind::Validate] {
                let answer = rt.block_on(answer_review(route("MCPServer", "v1beta1", webhook), decoded.clone(), None));
                let _ = encode_review(&answer.response);
            }
        }
    }
}

/// Every JSON pointer in `value` (the root excluded).
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    walk(v, p, out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let p = format!("{at}/{i}");
                    out.push(p.clone());
                    walk(v, p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}
