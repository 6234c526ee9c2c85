//! Reading an image's entrypoint from its registry (OCI distribution API), for MCPServers that
//! do not spell out `spec.command`.
//!
//! Pulls with the registries' token flow, anonymous or with the login an imagePullSecret holds
//! for the image's registry (basic auth to the token service, or to the registry itself when
//! it asks for basic auth); multi-platform images resolve to
//! `linux/<arch>`; results are cached (per digest for good, per tag for an hour, failures for a
//! minute). Registries on loopback are spoken to over plain HTTP, as container runtimes do.
//!
//! Every connection — to the image's registry, to each redirect's target and to the token
//! service a challenge names — goes through the address guard ([`crate::address`]), judged on
//! the resolved address at connect time: whoever may create an MCPServer must not be able to
//! point the operator at the pod's own ports, the node or a cloud metadata service, nor have it
//! relay an internal service's token. Private ranges stay reachable (in-cluster registries).

use super::credentials::{Login, PullCredentials};
use super::resolve::{CommandResolver, ImageCommand};
use crate::address::{chain, check_literal, Allowance, GuardedResolver};
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Manifests and configs are small; anything larger is not an image config.
const MAX_DOCUMENT: usize = 4 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REDIRECTS: usize = 5;
const TAG_TTL: Duration = Duration::from_secs(3600);
const FAILURE_TTL: Duration = Duration::from_secs(60);
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// When an answer expires, and the answer.
type CacheEntry = (Instant, Result<ImageCommand, String>);

type HttpsClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// Where look-ups may go, besides public addresses.
#[derive(Debug, Clone)]
pub struct Reach {
    /// Private ranges by default; loopback only for tests and local development.
    pub allow: Allowance,
    /// Registries (`host:port`) spoken to over plain HTTP besides loopback ones, as a container
    /// runtime's "insecure registries" (tests).
    pub plain_http: Vec<String>,
}

impl Default for Reach {
    fn default() -> Self {
        Reach {
            allow: Allowance {
                private: true,
                loopback: false,
            },
            plain_http: Vec::new(),
        }
    }
}

/// Resolves commands from registries.
pub struct RegistryResolver {
    client: HttpsClient,
    reach: Reach,
    arch: String,
    cache: Mutex<HashMap<String, CacheEntry>>,
}

/// Where an image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    /// A tag or a digest.
    pub reference: String,
}

impl ImageRef {
    /// `nginx` → `registry-1.docker.io/library/nginx:latest`, as `docker pull` reads it.
    pub fn parse(image: &str) -> Result<Self, String> {
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (image, None),
        };
        let (first, rest) = name.split_once('/').unwrap_or(("", name));
        let has_registry = first.contains(['.', ':']) || first == "localhost";
        let (registry, path) = if has_registry {
            (first, rest)
        } else {
            ("docker.io", name)
        };
        let slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match path[slash..].rfind(':') {
            Some(i) => (&path[..slash + i], Some(&path[slash + i + 1..])),
            None => (path, None),
        };
        if repo.is_empty() {
            return Err(format!("{image:?} is not an image reference"));
        }
        let (registry, repository) = if registry == "docker.io" || registry == "index.docker.io" {
            let repo = if repo.contains('/') {
                repo.to_string()
            } else {
                format!("library/{repo}")
            };
            ("registry-1.docker.io".to_string(), repo)
        } else {
            (registry.to_string(), repo.to_string())
        };
        let reference = digest.or(tag).unwrap_or("latest").to_string();
        Ok(ImageRef {
            registry,
            repository,
            reference,
        })
    }
}

/// `registry/repository:tag` or `registry/repository@digest`, for messages.
impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.reference.contains(':') {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

impl Default for RegistryResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl RegistryResolver {
    /// A resolver that reaches public and private addresses, never loopback, link-local or
    /// metadata ones.
    pub fn new() -> Self {
        Self::with_reach(Reach::default())
    }

    pub fn with_reach(reach: Reach) -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_native_roots().unwrap_or_else(|e| {
            // Without system roots only plain-HTTP registries work; say why once.
            tracing::warn!(error = %e, "no system CA certificates: image entrypoints cannot be read from HTTPS registries");
            let config = rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        });
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            guard: Some(reach.allow),
        });
        http.enforce_http(false);
        http.set_connect_timeout(Some(REQUEST_TIMEOUT));
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        RegistryResolver {
            client: Client::builder(TokioExecutor::new()).build(https),
            reach,
            arch: std::env::var("MCP_OPERATOR_IMAGE_ARCH").unwrap_or_else(|_| "amd64".into()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The API base of an image's repository: plain HTTP for loopback and listed registries.
    fn base(&self, r: &ImageRef) -> String {
        let host = r.registry.split(':').next().unwrap_or_default();
        let plain = matches!(host, "localhost" | "127.0.0.1" | "[::1]")
            || self.reach.plain_http.contains(&r.registry);
        let scheme = if plain { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", r.registry, r.repository)
    }

    async fn lookup(&self, r: &ImageRef, login: Option<&Login>) -> Result<ImageCommand, String> {
        let image = r.to_string();
        let mut auth = Auth {
            login,
            header: None,
        };
        let manifest = self
            .fetch_json(
                r,
                &format!("{}/manifests/{}", self.base(r), r.reference),
                &mut auth,
            )
            .await?;
        let manifest = match manifest.get("manifests").and_then(Value::as_array) {
            Some(list) => {
                let digest = pick_platform(list, &self.arch)
                    .ok_or_else(|| format!("{image} has no linux/{} image", self.arch))?;
                self.fetch_json(
                    r,
                    &format!("{}/manifests/{digest}", self.base(r)),
                    &mut auth,
                )
                .await?
            }
            None => manifest,
        };
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the manifest of {image} names no config"))?;
        let config = self
            .fetch_json(
                r,
                &format!("{}/blobs/{config_digest}", self.base(r)),
                &mut auth,
            )
            .await?;
        let words = |p: &str| -> Vec<String> {
            config
                .pointer(p)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let command = ImageCommand {
            entrypoint: words("/config/Entrypoint"),
            cmd: words("/config/Cmd"),
        };
        if command.entrypoint.is_empty() && command.cmd.is_empty() {
            return Err(format!("{image} has neither an entrypoint nor a command"));
        }
        Ok(command)
    }

    /// GET with the registry's token flow and redirects; the body parsed as JSON.
    async fn fetch_json(
        &self,
        r: &ImageRef,
        url: &str,
        auth: &mut Auth<'_>,
    ) -> Result<Value, String> {
        let mut url = url.to_string();
        for _ in 0..MAX_REDIRECTS {
            let (status, headers, body) = self
                .get(&url, auth.header.as_deref(), Some(MANIFEST_TYPES))
                .await?;
            match status {
                s if s.is_success() => {
                    return serde_json::from_slice(&body)
                        .map_err(|e| format!("{url}: not JSON: {e}"))
                }
                StatusCode::UNAUTHORIZED if auth.header.is_none() => {
                    let challenge = headers
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    auth.header = Some(self.answer_challenge(r, challenge, auth.login).await?);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(denied(r, auth.login, status));
                }
                s if s.is_redirection() => {
                    let next = headers
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .ok_or("a redirect without a location")?;
                    url = absolute(&url, next);
                    // Blob stores hand out signed URLs: our registry token must not follow.
                    auth.header = auth
                        .header
                        .take()
                        .filter(|_| same_origin(&url, &self.base(r)));
                }
                s => return Err(format!("{url}: the registry answered {s}")),
            }
        }
        Err(format!("{url}: too many redirects"))
    }

    /// The `Authorization` header that answers a registry's 401 challenge.
    async fn answer_challenge(
        &self,
        r: &ImageRef,
        challenge: &str,
        login: Option<&Login>,
    ) -> Result<String, String> {
        if challenge.trim_start().starts_with("Basic") {
            return login
                .map(Login::basic_header)
                .ok_or_else(|| denied(r, None, StatusCode::UNAUTHORIZED));
        }
        let token = self.token(r, challenge, login).await?;
        Ok(format!("Bearer {token}"))
    }

    async fn token(
        &self,
        r: &ImageRef,
        challenge: &str,
        login: Option<&Login>,
    ) -> Result<String, String> {
        let params = parse_challenge(challenge);
        let realm = params
            .get("realm")
            .ok_or_else(|| format!("{}: unauthorized, and no token service named", r.registry))?;
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", r.repository));
        let mut url = format!("{realm}?scope={}", encode(&scope));
        if let Some(service) = params.get("service") {
            url.push_str(&format!("&service={}", encode(service)));
        }
        let basic = login.map(Login::basic_header);
        let (status, _, body) = self.get(&url, basic.as_deref(), None).await?;
        if !status.is_success() {
            return Err(denied(r, login, status));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("token: {e}"))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "the token service sent no token".into())
    }

    async fn get(
        &self,
        url: &str,
        authorization: Option<&str>,
        accept: Option<&str>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
        let mut req = Request::get(url);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("{url}: {e}"))?;
        // A host written as an address is not resolved, so the resolver's guard never sees it.
        let host = req.uri().host().unwrap_or_default().to_owned();
        check_literal(&host, self.reach.allow).map_err(|refusal| format!("{url}: {refusal}"))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{url}: {}", chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .to_bytes();
            Ok((parts.status, parts.headers, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| format!("{url}: timed out"))?
    }
}

/// How a lookup authenticates: the pull secret's login for this registry, if any, and the
/// header that answered the registry's challenge once it has been answered.
struct Auth<'a> {
    login: Option<&'a Login>,
    header: Option<String>,
}

/// Why a registry refused, with what to do about it.
fn denied(r: &ImageRef, login: Option<&Login>, status: StatusCode) -> String {
    match login {
        Some(login) => format!(
            "{}: access denied ({status}) for user {:?} from the imagePullSecrets; check the pull secret, or set spec.command",
            r.registry, login.username
        ),
        None => format!(
            "{}: access denied ({status}); a private image needs an imagePullSecret for {} (or set spec.command)",
            r.registry, r.registry
        ),
    }
}

fn pick_platform(manifests: &[Value], arch: &str) -> Option<String> {
    manifests
        .iter()
        .find(|m| {
            m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                && m.pointer("/platform/architecture").and_then(Value::as_str) == Some(arch)
        })
        .and_then(|m| m.get("digest").and_then(Value::as_str))
        .map(str::to_string)
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters.
fn parse_challenge(header: &str) -> HashMap<String, String> {
    let rest = header
        .trim()
        .strip_prefix("Bearer")
        .or_else(|| header.trim().strip_prefix("bearer"))
        .unwrap_or_default();
    let mut out = HashMap::new();
    let mut remaining = rest.trim();
    while let Some((key, after)) = remaining.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_string(), n),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_string(), n),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(key, value);
        remaining = next.trim_start_matches(',').trim();
    }
    out
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn same_origin(a: &str, b: &str) -> bool {
    origin(a) == origin(b)
}

fn absolute(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else {
        format!("{}{location}", origin(base))
    }
}

impl CommandResolver for RegistryResolver {
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        pull: &'a PullCredentials,
    ) -> BoxFuture<'a, Result<ImageCommand, String>> {
        Box::pin(async move {
            let r = ImageRef::parse(image)?;
            let login = pull.for_registry(&r.registry);
            // An answer obtained with one login is not handed to a namespace without it.
            let key = match login {
                Some(l) => format!("{image}\n{}", l.fingerprint()),
                None => image.to_string(),
            };
            if let Some((expires, hit)) = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            {
                if *expires > Instant::now() {
                    return hit.clone();
                }
            }
            let result = self.lookup(&r, login).await;
            let ttl = match &result {
                Ok(_) if image.contains('@') => Duration::from_secs(365 * 24 * 3600),
                Ok(_) => TAG_TTL,
                Err(_) => FAILURE_TTL,
            };
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() > 10_000 {
                cache.clear(); // bounded: a reconcile storm of distinct images cannot grow it forever
            }
            cache.insert(key, (Instant::now() + ttl, result.clone()));
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_like_docker_pull() {
        let r = ImageRef::parse("docker.io/mcp/fetch").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("registry-1.docker.io", "mcp/fetch", "latest")
        );
        let r = ImageRef::parse("nginx:1.27").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.reference.as_str()),
            ("library/nginx", "1.27")
        );
        let r = ImageRef::parse("localhost:5000/a/b@sha256:abc").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("localhost:5000", "a/b", "sha256:abc")
        );
        let resolver = RegistryResolver::with_reach(Reach {
            plain_http: vec!["registry.internal:5000".into()],
            ..Reach::default()
        });
        let base = |image: &str| resolver.base(&ImageRef::parse(image).unwrap());
        assert!(base("localhost:5000/a/b@sha256:abc").starts_with("http://localhost:5000/v2/a/b"));
        assert!(base("ghcr.io/github/github-mcp-server").starts_with("https://ghcr.io/v2/"));
        assert!(base("registry.internal:5000/a").starts_with("http://registry.internal:5000/v2/"));
    }

    #[test]
    fn challenges_parse() {
        let p = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
    }
}
