//! Reading an image's entrypoint from a registry that speaks the OCI distribution API, with a
//! token challenge, a multi-platform index and a redirected blob — all on loopback.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use mcp_operator::controller::credentials::PullCredentials;
use mcp_operator::controller::registry::RegistryResolver;
use mcp_operator::controller::resolve::{CommandResolver, ImageCommand};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone)]
struct Registry {
    realm: String,
    hits: Arc<AtomicUsize>,
}

/// `bot:pat`, the login of the pull secret in these tests.
const BOT_BASIC: &str = "Basic Ym90OnBhdA==";

/// Public repositories take the anonymous token; `mcp/private` the token issued to the bot;
/// everything under `basic/` wants the bot's basic auth directly (no token service).
fn authorized(h: &HeaderMap, ns: &str, repo: &str) -> bool {
    let header = h.get("authorization").and_then(|v| v.to_str().ok());
    match (ns, repo) {
        ("basic", _) => header == Some(BOT_BASIC),
        (_, "private") => header == Some("Bearer private-token"),
        _ => header == Some("Bearer good-token"),
    }
}

async fn manifest(
    State(r): State<Registry>,
    Path((ns, repo, reference)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Response {
    r.hits.fetch_add(1, Ordering::SeqCst);
    if !authorized(&h, &ns, &repo) {
        if ns == "basic" {
            return (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", r#"Basic realm="fake""#.to_string())],
                "",
            )
                .into_response();
        }
        let challenge = format!(
            r#"Bearer realm="{}",service="fake",scope="repository:{ns}/{repo}:pull""#,
            r.realm
        );
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", challenge)],
            "",
        )
            .into_response();
    }
    match (repo.as_str(), reference.as_str()) {
        ("fetch" | "private", "latest") => Json(json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}
        ]}))
        .into_response(),
        ("fetch" | "private", "sha256:amd") => Json(json!({"schemaVersion": 2, "config": {"digest": "sha256:cfg"}})).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn blob(Path((ns, repo, digest)): Path<(String, String, String)>, h: HeaderMap) -> Response {
    if !authorized(&h, &ns, &repo) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Redirect::temporary(&format!("/cdn/{digest}")).into_response()
}

async fn cdn() -> Json<serde_json::Value> {
    Json(
        json!({"architecture": "amd64", "config": {"Entrypoint": ["mcp-server-fetch"], "Cmd": ["--ignore-robots-txt"]}}),
    )
}

async fn token(Query(q): Query<HashMap<String, String>>, h: HeaderMap) -> Response {
    assert_eq!(q.get("service").map(String::as_str), Some("fake"));
    let login = h.get("authorization").and_then(|v| v.to_str().ok());
    if q.get("scope").map(String::as_str) == Some("repository:mcp/private:pull") {
        return match login {
            Some(BOT_BASIC) => Json(json!({"token": "private-token"})).into_response(),
            _ => StatusCode::UNAUTHORIZED.into_response(),
        };
    }
    Json(json!({"token": "good-token"})).into_response()
}

async fn start() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let state = Registry {
        realm: format!("http://{host}/token"),
        hits: hits.clone(),
    };
    let app = Router::new()
        .route("/v2/{ns}/{repo}/manifests/{reference}", get(manifest))
        .route("/v2/{ns}/{repo}/blobs/{digest}", get(blob))
        .route("/cdn/{digest}", get(cdn))
        .route("/token", get(token))
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (host, hits)
}

#[tokio::test]
async fn reads_entrypoint_through_token_index_and_redirect() {
    mcp_operator::crypto::install_provider();
    let (host, hits) = start().await;
    let resolver = RegistryResolver::new();
    let anonymous = PullCredentials::default();
    let image = format!("{host}/mcp/fetch");
    let cmd = resolver.resolve(&image, &anonymous).await.unwrap();
    assert_eq!(
        cmd,
        ImageCommand {
            entrypoint: vec!["mcp-server-fetch".into()],
            cmd: vec!["--ignore-robots-txt".into()]
        }
    );
    assert_eq!(
        cmd.command_for(false),
        ["mcp-server-fetch", "--ignore-robots-txt"]
    );
    assert_eq!(
        cmd.command_for(true),
        ["mcp-server-fetch"],
        "spec.args replace CMD"
    );

    let before = hits.load(Ordering::SeqCst);
    resolver.resolve(&image, &anonymous).await.unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "the second lookup is served from the cache"
    );
}

#[tokio::test]
async fn private_and_missing_images_say_what_to_do() {
    mcp_operator::crypto::install_provider();
    let (host, _) = start().await;
    let resolver = RegistryResolver::new();
    let anonymous = PullCredentials::default();
    let private = resolver
        .resolve(&format!("{host}/mcp/private"), &anonymous)
        .await
        .unwrap_err();
    assert!(private.contains("set spec.command"), "{private}");
    assert!(private.contains("imagePullSecret"), "{private}");
    let missing = resolver
        .resolve(&format!("{host}/mcp/fetch:nope"), &anonymous)
        .await
        .unwrap_err();
    assert!(missing.contains("404"), "{missing}");
    let unreachable = resolver
        .resolve("127.0.0.1:1/mcp/fetch", &anonymous)
        .await
        .unwrap_err();
    assert!(unreachable.contains("127.0.0.1:1"), "{unreachable}");
}

/// A pull secret for the registry's host: the token service (or the registry itself, when it
/// asks for basic auth) gets the login; a wrong login is named without its password.
#[tokio::test]
async fn pull_secret_logins_open_private_images() {
    mcp_operator::crypto::install_provider();
    let (host, _) = start().await;
    let resolver = RegistryResolver::new();
    let login = |user: &str, password: &str| {
        let mut pull = PullCredentials::default();
        let config =
            json!({"auths": {format!("https://{host}"): {"username": user, "password": password}}});
        pull.add_secret_data(&BTreeMap::from([(
            ".dockerconfigjson".to_string(),
            config.to_string().into_bytes(),
        )]))
        .unwrap();
        pull
    };
    let bot = login("bot", "pat");
    for image in [format!("{host}/mcp/private"), format!("{host}/basic/fetch")] {
        let cmd = resolver.resolve(&image, &bot).await.unwrap();
        assert_eq!(cmd.entrypoint, ["mcp-server-fetch"], "{image}");
    }
    // Cached per login: the anonymous lookup of the same image is not answered from the bot's.
    let anonymous = resolver
        .resolve(&format!("{host}/mcp/private"), &PullCredentials::default())
        .await
        .unwrap_err();
    assert!(anonymous.contains("access denied"), "{anonymous}");

    let wrong = resolver
        .resolve(
            &format!("{host}/basic/fetch"),
            &login("bot", "wrong-password"),
        )
        .await
        .unwrap_err();
    assert!(wrong.contains("\"bot\""), "{wrong}");
    assert!(!wrong.contains("wrong-password"), "{wrong}");
}
