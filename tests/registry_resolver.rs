//! Reading an image's entrypoint from a registry that speaks the OCI distribution API, with a
//! token challenge, a multi-platform index and a redirected blob — on loopback, which these
//! tests allow; and the address guard that keeps every look-up (image host, redirect, token
//! realm) off loopback, link-local and metadata addresses otherwise.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use mcp_operator::address::Allowance;
use mcp_operator::controller::credentials::PullCredentials;
use mcp_operator::controller::registry::{Reach, RegistryResolver};
use mcp_operator::controller::resolve::{CommandResolver, ImageCommand};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone)]
struct Registry {
    realm: String,
    hits: Arc<AtomicUsize>,
    /// Where the `evil/*` repositories send their clients (a loopback listener of the test).
    evil_target: String,
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
    if ns == "evil" {
        return evil(&r.evil_target, &repo);
    }
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

/// A registry pointing its client somewhere it must not go: by redirect, or by naming a token
/// service there.
fn evil(target: &str, how: &str) -> Response {
    let challenge = |realm: String| {
        let value = format!(r#"Bearer realm="{realm}",service="fake""#);
        (StatusCode::UNAUTHORIZED, [("www-authenticate", value)], "").into_response()
    };
    let metadata = "169.254.169.254";
    match how {
        "redirect-loopback" => {
            Redirect::temporary(&format!("http://{target}/v2/mcp/fetch/manifests/latest"))
                .into_response()
        }
        "redirect-localhost" => Redirect::temporary(&format!(
            "http://{}/v2/mcp/fetch/manifests/latest",
            target.replace("127.0.0.1", "localhost")
        ))
        .into_response(),
        "redirect-metadata" => {
            Redirect::temporary(&format!("http://{metadata}/latest/meta-data/")).into_response()
        }
        "realm-loopback" => challenge(format!("http://{target}/token")),
        "realm-localhost" => challenge(format!(
            "http://{}/token",
            target.replace("127.0.0.1", "localhost")
        )),
        "realm-metadata" => challenge(format!("http://{metadata}/token")),
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
    serve("127.0.0.1:0", String::new()).await
}

/// A registry on `bind`; its `evil/*` repositories point at `evil_target`.
async fn serve(bind: &str, evil_target: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let state = Registry {
        realm: format!("http://{host}/token"),
        hits: hits.clone(),
        evil_target,
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

/// These tests' registries are on loopback, which only tests may allow.
fn loopback_allowed() -> RegistryResolver {
    RegistryResolver::with_reach(Reach {
        allow: Allowance {
            private: true,
            loopback: true,
        },
        plain_http: Vec::new(),
    })
}

/// This machine's address on its default route: a registry the guard lets through, which is
/// not on loopback.
fn outward_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("8.8.8.8:53")
        .expect("this test needs a network interface besides loopback (a default route)");
    socket.local_addr().unwrap().ip()
}

#[tokio::test]
async fn reads_entrypoint_through_token_index_and_redirect() {
    mcp_operator::crypto::install_provider();
    let (host, hits) = start().await;
    let resolver = loopback_allowed();
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
    let resolver = loopback_allowed();
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
    let resolver = loopback_allowed();
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

/// Whoever may create an MCPServer names the image, so the registry it names is not trusted:
/// the operator never connects to loopback, link-local or metadata addresses for it — not as
/// the image's host, not where the registry redirects, not at the token service it names —
/// and says why. A loopback listener stands in for the operator's own ports: it is never hit.
#[tokio::test]
async fn lookups_never_reach_loopback_link_local_or_metadata() {
    mcp_operator::crypto::install_provider();
    let (inside, inside_hits) = start().await;
    let outward = outward_address();
    let (registry, registry_hits) = serve(&format!("{outward}:0"), inside.clone()).await;
    let resolver = RegistryResolver::with_reach(Reach {
        plain_http: vec![registry.clone()],
        ..Reach::default()
    });
    let port = inside.rsplit(':').next().unwrap();
    // (image, what the refusal names)
    let cases: Vec<(String, &str)> = vec![
        (format!("{inside}/mcp/fetch"), "loopback"),
        (format!("localhost:{port}/mcp/fetch"), "loopback"),
        (format!("[::1]:{port}/mcp/fetch"), "loopback"),
        ("169.254.169.254/mcp/fetch".into(), "link-local"),
        ("169.254.169.254:80/mcp/fetch".into(), "link-local"),
        ("[fd00:ec2::254]/mcp/fetch".into(), "metadata"),
        ("0.0.0.0:80/mcp/fetch".into(), "unspecified"),
        (format!("{registry}/evil/redirect-loopback"), "loopback"),
        (format!("{registry}/evil/redirect-localhost"), "loopback"),
        (format!("{registry}/evil/redirect-metadata"), "link-local"),
        (format!("{registry}/evil/realm-loopback"), "loopback"),
        (format!("{registry}/evil/realm-localhost"), "loopback"),
        (format!("{registry}/evil/realm-metadata"), "link-local"),
    ];
    for (image, what) in &cases {
        let started = std::time::Instant::now();
        let err = resolver
            .resolve(image, &PullCredentials::default())
            .await
            .unwrap_err();
        assert!(
            err.contains("refused by the address guard") && err.contains(what),
            "{image}: {err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{image}: refused before any connection attempt could time out"
        );
    }
    assert_eq!(
        inside_hits.load(Ordering::SeqCst),
        0,
        "loopback was reached"
    );
    assert!(
        registry_hits.load(Ordering::SeqCst) >= 6,
        "the outward registry itself was asked (the refusals came after it answered)"
    );
    // The guard is not a wall: the same registry's honest images resolve.
    let cmd = resolver
        .resolve(
            &format!("{registry}/mcp/fetch"),
            &PullCredentials::default(),
        )
        .await
        .unwrap();
    assert_eq!(cmd.entrypoint, ["mcp-server-fetch"]);
}
