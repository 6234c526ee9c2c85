//! The admission webhooks over real TLS on loopback: every kind at every served version,
//! valid, invalid, UPDATE with the old object, DELETE; the denial shape; probes and metrics.

mod webhook_support;

use mcp_operator::admission::{self, Operation};
use mcp_operator::api::{GROUP, SERVED};
use mcp_operator::webhook::routes::{admission_path, routes, WebhookKind};
use serde_json::{json, Value};
use webhook_support::*;

fn path(webhook: WebhookKind, kind: &str, version: &str) -> String {
    admission_path(webhook, kind, version)
}

#[tokio::test]
async fn every_kind_and_version_is_defaulted_and_validated_like_admit() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    for served in SERVED {
        for version in served.versions {
            let object = minimal(served.kind, version);
            let verdict = admission::admit(&object, None, Operation::Create).expect("served kind");
            let review = review(
                served.kind,
                version,
                served.plural,
                "CREATE",
                Some(&object),
                None,
            );

            let (status, mutated) = post(
                &client,
                &server,
                &path(WebhookKind::Mutate, served.kind, version),
                &review,
            )
            .await;
            assert_eq!(status, 200);
            let response = &mutated["response"];
            assert_eq!(mutated["apiVersion"], "admission.k8s.io/v1");
            assert_eq!(mutated["kind"], "AdmissionReview");
            assert_eq!(response["uid"], review["request"]["uid"]);
            assert_eq!(
                response["allowed"], true,
                "{} {version}: defaulting never denies",
                served.kind
            );
            assert_eq!(
                apply_patch(&object, response),
                verdict.defaulted,
                "{} {version}: {mutated}",
                served.kind
            );

            let (status, validated) = post(
                &client,
                &server,
                &path(WebhookKind::Validate, served.kind, version),
                &review,
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(
                validated["response"]["allowed"],
                verdict.allowed(),
                "{} {version}: {}",
                served.kind,
                verdict.errors
            );
            assert!(
                validated["response"].get("patch").is_none(),
                "validation never patches"
            );
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_valid_mcpserver_gets_its_defaults_through_the_patch() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    let object = fetch_server();
    let review = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "CREATE",
        Some(&object),
        None,
    );

    let (status, body) = post(
        &client,
        &server,
        &path(WebhookKind::Mutate, "MCPServer", "v1beta1"),
        &review,
    )
    .await;
    assert_eq!(status, 200);
    let patched = apply_patch(&object, &body["response"]);
    let expected = admission::admit(&object, None, Operation::Create)
        .unwrap()
        .defaulted;
    assert_eq!(patched, expected);
    // The contract's defaults (hold once the admission core lands).
    assert_eq!(patched["spec"]["transport"], "stdio");
    assert_eq!(patched["spec"]["proxyPort"], 8080);
    assert_eq!(patched["spec"]["proxyMode"], "streamable-http");
    assert_eq!(patched["spec"]["sessionAffinity"], "ClientIP");

    let (status, body) = post(
        &client,
        &server,
        &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
        &review,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["allowed"], true, "{body}");

    // Defaulting an already-defaulted object is an empty patch.
    let review = review_of(&expected);
    let (_, body) = post(
        &client,
        &server,
        &path(WebhookKind::Mutate, "MCPServer", "v1beta1"),
        &review,
    )
    .await;
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(apply_patch(&expected, &body["response"]), expected);
    assert_eq!(body["response"]["patch"], "W10=", "an empty JSON Patch, []");
    server.shutdown().await.unwrap();
}

fn review_of(object: &Value) -> Value {
    review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "CREATE",
        Some(object),
        None,
    )
}

fn with_spec(field: &str, value: Value) -> Value {
    let mut object = fetch_server();
    object["spec"][field] = value;
    object
}

#[tokio::test]
async fn an_invalid_mcpserver_is_denied_like_the_api_server_denies() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    for (field, value, cause_reason) in [
        ("transport", json!("grpc"), "FieldValueNotSupported"),
        ("proxyPort", json!(70000), "FieldValueInvalid"),
    ] {
        let object = with_spec(field, value);
        let (status, body) = post(
            &client,
            &server,
            &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
            &review_of(&object),
        )
        .await;
        assert_eq!(status, 200, "a denial is still a successful review");
        let response = &body["response"];
        assert_eq!(response["allowed"], false, "{field}: {body}");
        let status = &response["status"];
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["group"], GROUP);
        assert_eq!(status["details"]["kind"], "MCPServer");
        assert_eq!(status["details"]["name"], "fetch");
        let causes = status["details"]["causes"].as_array().expect("causes");
        let cause = causes
            .iter()
            .find(|c| c["field"] == format!("spec.{field}"))
            .unwrap_or_else(|| panic!("a cause for spec.{field} in {causes:?}"));
        assert_eq!(cause["reason"], cause_reason);
        let message = status["message"].as_str().unwrap();
        assert!(message.contains(&format!("spec.{field}: ")), "{message}");
        assert!(
            message.contains(cause["message"].as_str().unwrap()),
            "{message}"
        );

        // The mutating webhook leaves refusing to the validating one.
        let (_, body) = post(
            &client,
            &server,
            &path(WebhookKind::Mutate, "MCPServer", "v1beta1"),
            &review_of(&object),
        )
        .await;
        assert_eq!(body["response"]["allowed"], true);
    }
    let (_, body) = post(
        &client,
        &server,
        &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
        &review_of(&with_spec("transport", json!("grpc"))),
    )
    .await;
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.transport: Unsupported value: \"grpc\": supported values: "),
        "{message}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn update_is_checked_with_the_old_object_and_delete_is_allowed() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    let old = admission::admit(&fetch_server(), None, Operation::Create)
        .unwrap()
        .defaulted;
    let mut new = fetch_server();
    new["spec"]["args"] = json!(["--verbose"]);
    let update = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "UPDATE",
        Some(&new),
        Some(&old),
    );
    let verdict = admission::admit(&new, Some(&old), Operation::Update).unwrap();

    let (_, body) = post(
        &client,
        &server,
        &path(WebhookKind::Mutate, "MCPServer", "v1beta1"),
        &update,
    )
    .await;
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(apply_patch(&new, &body["response"]), verdict.defaulted);
    let (_, body) = post(
        &client,
        &server,
        &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
        &update,
    )
    .await;
    assert_eq!(body["response"]["allowed"], verdict.allowed());

    let delete = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "DELETE",
        None,
        Some(&old),
    );
    for webhook in [WebhookKind::Mutate, WebhookKind::Validate] {
        let (status, body) = post(
            &client,
            &server,
            &path(webhook, "MCPServer", "v1beta1"),
            &delete,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["response"]["allowed"], true);
        assert!(body["response"].get("patch").is_none());
    }
    // Even an invalid stored object can be deleted.
    let invalid_old = with_spec("transport", json!("grpc"));
    let delete = review(
        "MCPServer",
        "v1beta1",
        "mcpservers",
        "DELETE",
        None,
        Some(&invalid_old),
    );
    let (_, body) = post(
        &client,
        &server,
        &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
        &delete,
    )
    .await;
    assert_eq!(body["response"]["allowed"], true);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn another_group_or_kind_is_allowed_with_a_warning_and_counted() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}});
    let mut review = review("Pod", "v1", "pods", "CREATE", Some(&pod), None);
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    for webhook in [WebhookKind::Validate, WebhookKind::Mutate] {
        let (status, body) = post(
            &client,
            &server,
            &path(webhook, "MCPServer", "v1beta1"),
            &review,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["response"]["allowed"], true);
        assert!(body["response"].get("patch").is_none());
        let warning = body["response"]["warnings"][0].as_str().unwrap();
        assert!(warning.contains("does not admit /v1 Pod"), "{warning}");
    }
    // An MCPRegistry sent to the MCPServer route is not the route's kind either.
    let registry = minimal("MCPRegistry", "v1beta1");
    let review = review_for_route_mismatch(&registry);
    let (_, body) = post(
        &client,
        &server,
        &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
        &review,
    )
    .await;
    assert_eq!(body["response"]["allowed"], true);

    let metrics = reqwest::get(metrics_url(&server, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "mcp_operator_webhook_unexpected_kind_requests_total{webhook=\"validate\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("mcp_operator_webhook_unexpected_kind_requests_total{webhook=\"mutate\"} 1"));
    server.shutdown().await.unwrap();
}

fn review_for_route_mismatch(object: &Value) -> Value {
    review(
        "MCPRegistry",
        "v1beta1",
        "mcpregistries",
        "CREATE",
        Some(object),
        None,
    )
}

#[tokio::test]
async fn probes_and_metrics_answer_and_count_reviews() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    for probe in ["/healthz", "/readyz"] {
        let over_tls = client.get(url(&server, probe)).send().await.unwrap();
        assert_eq!(over_tls.status(), 200, "{probe} over TLS");
        let plain = reqwest::get(metrics_url(&server, probe)).await.unwrap();
        assert_eq!(plain.status(), 200, "{probe} on the metrics port");
    }
    let object = fetch_server();
    post(
        &client,
        &server,
        &path(WebhookKind::Mutate, "MCPServer", "v1beta1"),
        &review_of(&object),
    )
    .await;
    let bad = with_spec("transport", json!("grpc"));
    post(
        &client,
        &server,
        &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
        &review_of(&bad),
    )
    .await;

    let response = reqwest::get(metrics_url(&server, "/metrics"))
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let metrics = response.text().await.unwrap();
    for needle in [
        "mcp_operator_webhook_admission_requests_total{webhook=\"mutate\",kind=\"MCPServer\",version=\"v1beta1\",operation=\"CREATE\",allowed=\"true\"} 1",
        "mcp_operator_webhook_admission_requests_total{webhook=\"validate\",kind=\"MCPServer\",version=\"v1beta1\",operation=\"CREATE\",allowed=\"false\"} 1",
        "mcp_operator_webhook_admission_duration_seconds_count{webhook=\"mutate\"} 1",
        "mcp_operator_webhook_cert_not_after_seconds ",
        "mcp_operator_webhook_cert_expires_in_seconds ",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
    }
    // Metrics are not served over the admission port.
    let over_tls = client.get(url(&server, "/metrics")).send().await.unwrap();
    assert_eq!(over_tls.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_route_of_the_table_is_served_and_convert_waits_for_its_handler() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    let mut served = 0;
    for route in routes() {
        let object = minimal(route.kind(), route.version);
        let review = review(
            route.kind(),
            route.version,
            route.served.plural,
            "CREATE",
            Some(&object),
            None,
        );
        let (status, body) = post(&client, &server, &route.path(), &review).await;
        assert_eq!(status, 200, "{}", route.path());
        assert_eq!(body["kind"], "AdmissionReview");
        served += 1;
    }
    assert_eq!(
        served,
        SERVED.iter().map(|s| s.versions.len() * 2).sum::<usize>()
    );
    let convert = client
        .post(url(&server, "/convert"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        convert.status(),
        404,
        "/convert is routed only with a conversion handler"
    );
    let get = client
        .get(url(
            &server,
            &path(WebhookKind::Validate, "MCPServer", "v1beta1"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_conversion_handler_is_mounted_at_convert() {
    let pki = Pki::new();
    let mut options = options(&pki);
    options.conversion = Some(axum::routing::post(|| async { "converted" }));
    let server = mcp_operator::webhook::start(options).await.unwrap();
    let client = client(&pki, &server);
    let convert = client.post(url(&server, "/convert")).send().await.unwrap();
    assert_eq!(convert.status(), 200);
    assert_eq!(convert.text().await.unwrap(), "converted");
    server.shutdown().await.unwrap();
}

fn tls_client(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pki.ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_served_and_h2_is_offered() {
    let pki = Pki::new();
    let server = serve(&pki).await;
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    for (versions, expected) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let tls = tls_client(&pki, versions)
            .connect(name.clone(), tcp)
            .await
            .expect("handshake");
        let (_, session) = tls.get_ref();
        assert_eq!(session.protocol_version(), Some(expected));
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_configured_webhook_path_is_served_for_every_version_it_matches() {
    use mcp_operator::webhook::config::{
        mutating_configuration, validating_configuration, ConfigOptions,
    };
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    let options = ConfigOptions::new("mcp-operator-webhook", "mcp-system");
    let validating = validating_configuration(&options).webhooks.unwrap();
    let mutating = mutating_configuration(&options).webhooks.unwrap();
    let configured = validating
        .iter()
        .map(|w| (w.client_config.clone(), w.rules.clone().unwrap()))
        .chain(
            mutating
                .iter()
                .map(|w| (w.client_config.clone(), w.rules.clone().unwrap())),
        );
    let mut checked = 0;
    for (client_config, rules) in configured {
        let path = client_config.service.unwrap().path.unwrap();
        for rule in rules {
            let plural = rule.resources.unwrap()[0].clone();
            let served = SERVED.iter().find(|s| s.plural == plural).unwrap();
            // The API server sends each matched version, unconverted, to the one path.
            for version in rule.api_versions.unwrap() {
                let object = minimal(served.kind, &version);
                let review = review(
                    served.kind,
                    &version,
                    &plural,
                    "CREATE",
                    Some(&object),
                    None,
                );
                let (status, body) = post(&client, &server, &path, &review).await;
                assert_eq!(status, 200, "{path}");
                assert!(
                    body["response"]["warnings"].as_array().is_none_or(|w| !w
                        .iter()
                        .any(|w| w.as_str().unwrap().contains("allowed unchecked"))),
                    "{path} {version}: {body}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        2 * SERVED.iter().map(|s| s.versions.len()).sum::<usize>()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reviews_are_served_over_http2() {
    // The API server's webhook client speaks HTTP/2 when ALPN offers it.
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client_builder(&pki, &server)
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let review = review_of(&fetch_server());
    let path = path(WebhookKind::Mutate, "MCPServer", "v1beta1");
    let responses = futures::future::join_all((0..8).map(|_| {
        client
            .post(url(&server, &path))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&review).unwrap())
            .send()
    }))
    .await;
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["response"]["allowed"], true);
    }
    server.shutdown().await.unwrap();
}

/// The two doors agree: every CREATE case of `tests/admission/` sent through the mutating and
/// then the validating webhook (as the API server does) gets the verdict, the warnings and the
/// defaults `mcp-operator check` prints for the same file. Only the note that references went
/// unchecked for want of a cluster is the webhook's own.
#[tokio::test]
async fn the_webhook_and_check_agree_on_every_admission_case() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admission");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["check", "--output", "json"])
        .arg(&dir)
        .output()
        .expect("run check");
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).expect("check's JSON");
    let pki = Pki::new();
    let server = serve(&pki).await;
    let client = client(&pki, &server);
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for report in &reports {
        let file = report["file"].as_str().unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        let expectation: Value = serde_yaml::Deserializer::from_str(&text)
            .next()
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .unwrap();
        if expectation.get("operation").is_some() || report["index"] != 1 {
            continue; // UPDATE and DELETE cases carry an old object `check` cannot know
        }
        let object: Value = serde_yaml::Deserializer::from_str(&text)
            .nth(1)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .unwrap();
        let kind = report["kind"].as_str().unwrap();
        let version = report["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        let plural = SERVED.iter().find(|s| s.kind == kind).unwrap().plural;
        let create = |o: &Value| review(kind, version, plural, "CREATE", Some(o), None);
        let (_, mutated) = post(
            &client,
            &server,
            &path(WebhookKind::Mutate, kind, version),
            &create(&object),
        )
        .await;
        let patched = apply_patch(&object, &mutated["response"]);
        let (_, validated) = post(
            &client,
            &server,
            &path(WebhookKind::Validate, kind, version),
            &create(&patched),
        )
        .await;
        let response = &validated["response"];
        let warnings: Vec<&str> = response["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|w| {
                !w.contains("were not checked: the webhook runs without a cluster connection")
            })
            .collect();
        let printed: Vec<&str> = report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if response["allowed"] != report["allowed"]
            || warnings != printed
            || patched != report["defaulted"]
        {
            disagreements.push(format!(
                "{file}:\n  webhook: allowed {} warnings {warnings:?}\n  check:   allowed {} warnings {printed:?}\n  defaults agree: {}",
                response["allowed"], report["allowed"], patched == report["defaulted"]
            ));
        }
        compared += 1;
    }
    server.shutdown().await.unwrap();
    assert!(compared >= 80, "only {compared} cases compared");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
