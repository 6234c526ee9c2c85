//! Who is calling: bearer tokens checked at the bridge (`auth.oidc`), as upstream's token
//! validator checks them (`pkg/auth/token.go`).
//!
//! - A JWT is verified against the issuer's JWKS (RS*, PS*, ES256/384, EdDSA; never HMAC: the
//!   JWKS is public), then `iss`, `aud` (when configured) and `exp`/`nbf` with a small leeway.
//!   The JWKS URL is `jwksUrl` or discovered from `<issuer>/.well-known/openid-configuration`.
//!   Keys are cached; a token naming an unknown `kid` makes the bridge fetch the JWKS again, at
//!   most once per `jwksMinRefreshSeconds`, so rotated keys are picked up and a flood of made-up
//!   `kid`s cannot turn the bridge into a JWKS hammer.
//! - A token that is not a JWT goes to the RFC 7662 introspection endpoint when one is set;
//!   `active` must be true and the same `iss`/`aud`/`exp` rules apply.
//! - Every fetch goes through the address guard ([`crate::address`]): public addresses only,
//!   or private and loopback ones too with `allowPrivateIp` (upstream's `jwksAllowPrivateIP`);
//!   link-local and metadata addresses never. Answers are bounded in size and time.
//! - `caBundle` adds CA certificates to the system's for these fetches, and
//!   `jwksAuthTokenPath` names a file sent as the bearer of the discovery and JWKS fetches,
//!   read at each one: that is how the API server's keys are read with the pod's rotating
//!   service-account token. A token file that cannot be read fails that fetch (logged), and
//!   tokens the keys already known cannot verify are refused.
//!
//! A failure is only ever "unauthorized" to the client: why a token failed goes to the log at
//! debug level, never into the answer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request};
use base64::Engine;
use http_body_util::BodyExt;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::config::OidcConfig;
use crate::address::{check_literal, Allowance};

/// The most an issuer's discovery document, JWKS or introspection answer may weigh.
const MAX_FETCH_BYTES: usize = 256 << 10;
/// How long one fetch may take, connect included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest bearer token read (a JWT with many claims is a few KiB).
const MAX_TOKEN_BYTES: usize = 16 << 10;

/// The caller, once their token passed.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The `sub` claim (a token without one is refused; `None` only where no token is asked).
    pub subject: Option<String>,
    /// Every claim of the token (or of the introspection answer).
    pub claims: Map<String, Value>,
    /// For a verified JWT: until when (Unix seconds, leeway included) it stays valid, so the
    /// bridge may remember it instead of verifying it again. `None`: ask every time
    /// (introspected tokens, which their issuer may revoke).
    pub valid_until: Option<u64>,
}

/// Why a token was refused (for the debug log only).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token could not be checked: {0}")]
    Unavailable(String),
}

type FetchClient = super::remote::GuardedClient;

/// One usable key of the JWKS.
struct Key {
    kid: Option<String>,
    /// The algorithms a token signed with this key may name.
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
    /// When the JWKS was last fetched (successfully or not).
    fetched: Option<Instant>,
}

/// The introspection client (RFC 7662).
struct Introspection {
    url: String,
    /// `Basic base64(client_id:secret)`, when a client is configured.
    authorization: Option<HeaderValue>,
}

/// Checks bearer tokens for one issuer.
pub struct Authenticator {
    issuer: String,
    audience: Option<String>,
    leeway: u64,
    min_refresh: Duration,
    jwks_url: tokio::sync::OnceCell<String>,
    keys: RwLock<Arc<KeySet>>,
    /// Counts key-set changes: a token remembered under an older set is verified again.
    generation: std::sync::atomic::AtomicU64,
    /// One JWKS fetch at a time; the others wait for its keys.
    refreshing: tokio::sync::Mutex<()>,
    introspection: Option<Introspection>,
    fetcher: Fetcher,
    /// `jwksAuthTokenPath`: the file whose content is the bearer of discovery and JWKS fetches.
    key_token: Option<PathBuf>,
    /// For the protected-resource metadata and `WWW-Authenticate`.
    pub resource_url: Option<String>,
    pub scopes: Vec<String>,
}

impl Authenticator {
    /// Builds the authenticator; reads the introspection client's secret from the environment.
    pub fn new(cfg: &OidcConfig) -> anyhow::Result<Self> {
        let allow_private = cfg.allow_private_ip.unwrap_or(false);
        let allow = Allowance {
            private: allow_private,
            loopback: allow_private,
        };
        let introspection = match &cfg.introspection_url {
            Some(url) => Some(Introspection {
                url: url.clone(),
                authorization: match &cfg.client_id {
                    Some(id) => {
                        let secret = match &cfg.client_secret_env {
                            Some(var) => secret_from_env("auth.oidc.clientSecretEnv", var)?,
                            None => String::new(),
                        };
                        Some(basic_authorization(id, &secret)?)
                    }
                    None => None,
                },
            }),
            None => None,
        };
        let ca_bundle = cfg
            .ca_bundle
            .as_deref()
            .map(|p| ("auth.oidc.caBundle", Path::new(p)));
        let jwks_url = tokio::sync::OnceCell::new();
        if let Some(url) = &cfg.jwks_url {
            let _ = jwks_url.set(url.clone());
        }
        Ok(Self {
            issuer: cfg.issuer.trim().to_owned(),
            audience: cfg.audience.clone().filter(|a| !a.is_empty()),
            leeway: cfg.leeway_seconds.unwrap_or(30),
            min_refresh: Duration::from_secs(cfg.jwks_min_refresh_seconds.unwrap_or(30)),
            jwks_url,
            keys: RwLock::new(Arc::new(KeySet::default())),
            generation: std::sync::atomic::AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
            introspection,
            fetcher: Fetcher::new(allow, ca_bundle)?,
            key_token: cfg.jwks_auth_token_path.as_ref().map(PathBuf::from),
            resource_url: cfg.resource_url.clone(),
            scopes: cfg.scopes.clone().unwrap_or_default(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Fetches the keys ahead of the first request, so it does not pay for them. A failure
    /// is logged (by the fetch); requests fetch again.
    pub async fn warm_up(&self) {
        let _ = self.refresh_keys(None).await;
    }

    /// The generation of the key set in use (see [`Identity::valid_until`]).
    pub fn key_generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The caller of a request with this bearer token, or why not.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<Identity, Refusal> {
        let token = token.ok_or(Refusal::Missing)?;
        let (claims, valid_until) = if looks_like_jwt(token) {
            let claims = self.verify_jwt(token).await?;
            let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
            let until = (exp.max(0.0) as u64).saturating_add(self.leeway);
            (claims, Some(until))
        } else if self.introspection.is_some() {
            (self.introspect(token).await?, None)
        } else {
            return Err(Refusal::Invalid("not a JWT, and no introspection".into()));
        };
        // As upstream (OIDC Core §5.1): a token that names nobody is not valid.
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Refusal::Invalid("no sub claim".into()))?;
        Ok(Identity {
            subject: Some(subject),
            claims,
            valid_until,
        })
    }

    async fn verify_jwt(&self, token: &str) -> Result<Map<String, Value>, Refusal> {
        let invalid = |e: jsonwebtoken::errors::Error| Refusal::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        let keys = self.keys_for(header.kid.as_deref()).await?;
        let candidates = keys
            .keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .filter(|k| k.algorithms.contains(&header.alg));
        let validation = self.validation(header.alg);
        let mut last = Refusal::Invalid("no key of the issuer fits the token".into());
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = invalid(e),
            }
        }
        Err(last)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(aud) => {
                // jsonwebtoken checks `aud` only when the token has one: require it.
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.set_audience(&[aud]);
            }
            None => {
                v.set_required_spec_claims(&["exp", "iss"]);
                v.validate_aud = false;
            }
        }
        v
    }

    /// The key set, fetched again first when it does not know `kid` (or is empty) and the
    /// last fetch is older than the minimum interval.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Refusal> {
        let current = self.current_keys();
        let known = match kid {
            Some(kid) => current.keys.iter().any(|k| k.kid.as_deref() == Some(kid)),
            None => !current.keys.is_empty(),
        };
        if known || !self.may_refresh(&current) {
            return Ok(current);
        }
        self.refresh_keys(Some(&current))
            .await
            .map_err(Refusal::Unavailable)?;
        Ok(self.current_keys())
    }

    fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn may_refresh(&self, set: &KeySet) -> bool {
        set.fetched
            .is_none_or(|at| at.elapsed() >= self.min_refresh)
    }

    /// Fetches the JWKS, unless another task did while this one waited for the lock.
    async fn refresh_keys(&self, seen: Option<&Arc<KeySet>>) -> Result<(), String> {
        let _one_at_a_time = self.refreshing.lock().await;
        let now = self.current_keys();
        if seen.is_some_and(|seen| !Arc::ptr_eq(seen, &now)) {
            return Ok(());
        }
        let fetched = self.fetch_keys().await;
        let keys = match &fetched {
            Ok(keys) => keys_of(keys),
            // Keep the old keys on a failed fetch: a flapping issuer must not lock everyone out.
            Err(_) => now.keys.iter().map(Key::clone_key).collect(),
        };
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(KeySet {
            keys,
            fetched: Some(Instant::now()),
        });
        match &fetched {
            Ok(_) => {
                self.generation
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            // At most once per `jwksMinRefreshSeconds`: fetches are that far apart.
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "the issuer's keys could not be fetched")
            }
        }
        fetched.map(|_| ())
    }

    async fn fetch_keys(&self) -> Result<Value, String> {
        let url = self
            .jwks_url
            .get_or_try_init(|| self.discover_jwks_url())
            .await?;
        let bearer = self.key_authorization(url).await?;
        self.fetch(Method::GET, url, None, bearer).await
    }

    /// The `Authorization` of a discovery or JWKS fetch from `url`: the token file's content
    /// as it is now, when one is configured. Never sent in the clear (a discovered JWKS URL
    /// is only known here).
    async fn key_authorization(&self, url: &str) -> Result<Option<HeaderValue>, String> {
        let Some(path) = &self.key_token else {
            return Ok(None);
        };
        if !super::config::is_https(url) {
            return Err(format!(
                "{url} is not https, and the token of auth.oidc.jwksAuthTokenPath is only sent over https"
            ));
        }
        bearer_from_file(path).await.map(Some)
    }

    /// `jwks_uri` of the issuer's OpenID configuration; its `issuer` must be ours.
    async fn discover_jwks_url(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let bearer = self.key_authorization(&url).await?;
        let doc = self.fetch(Method::GET, &url, None, bearer).await?;
        let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
        if issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(format!(
                "the OpenID configuration names issuer {issuer:?}, not {:?}",
                self.issuer
            ));
        }
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "the OpenID configuration has no jwks_uri".to_owned())
    }

    /// RFC 7662: `active` must be true, then the claims are checked like a JWT's.
    async fn introspect(&self, token: &str) -> Result<Map<String, Value>, Refusal> {
        let Some(intro) = &self.introspection else {
            return Err(Refusal::Invalid("no introspection".into()));
        };
        let form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let answer = self
            .fetch(
                Method::POST,
                &intro.url,
                Some(form),
                intro.authorization.clone(),
            )
            .await
            .map_err(Refusal::Unavailable)?;
        let Value::Object(claims) = answer else {
            return Err(Refusal::Invalid(
                "the introspection answer is not an object".into(),
            ));
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(Refusal::Invalid("the token is not active".into()));
        }
        self.check_claims(&claims)?;
        Ok(claims)
    }

    /// Upstream's claim checks for introspected tokens: `iss` equal, `aud` containing ours,
    /// `exp` present and not past (with the leeway).
    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), Refusal> {
        let invalid = |m: &str| Err(Refusal::Invalid(m.to_owned()));
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if iss.trim() != self.issuer {
            return invalid("wrong issuer");
        }
        if let Some(aud) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => a == aud,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud)),
                _ => false,
            };
            if !ok {
                return invalid("wrong audience");
            }
        }
        let now = jsonwebtoken::get_current_timestamp();
        match claims.get("exp").and_then(Value::as_f64) {
            Some(exp) if exp + self.leeway as f64 >= now as f64 => Ok(()),
            _ => invalid("expired or no exp"),
        }
    }

    async fn fetch(
        &self,
        method: Method,
        url: &str,
        form: Option<String>,
        authorization: Option<HeaderValue>,
    ) -> Result<Value, String> {
        self.fetcher
            .fetch(method, url, form, authorization)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Why a fetch from an issuer or token endpoint failed. Never holds the answer's body: an
/// endpoint's error text may echo what it was sent.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: axum::http::StatusCode,
    },
    #[error("{0}")]
    Failed(String),
}

/// Bounded JSON fetches (issuer, JWKS, introspection, token exchange): every address through
/// the guard, the answer at most [`MAX_FETCH_BYTES`], the whole exchange at most
/// [`FETCH_TIMEOUT`].
pub struct Fetcher {
    allow: Allowance,
    client: FetchClient,
}

impl Fetcher {
    /// System roots over TLS (ring), plus a CA bundle's (its config field and path); `allow`
    /// says which private addresses may be reached.
    pub fn new(allow: Allowance, ca_bundle: Option<(&str, &Path)>) -> anyhow::Result<Self> {
        let tls = super::remote::tls_config(ca_bundle)?;
        Ok(Self {
            allow,
            client: super::remote::guarded_client(Some(allow), tls),
        })
    }

    /// One bounded request; the answer must be 2xx JSON. `form` is sent url-encoded.
    pub async fn fetch(
        &self,
        method: Method,
        url: &str,
        form: Option<String>,
        authorization: Option<HeaderValue>,
    ) -> Result<Value, FetchError> {
        let failed = FetchError::Failed;
        let uri: axum::http::Uri = url
            .parse()
            .map_err(|_| failed(format!("invalid URL {url:?}")))?;
        let host = uri.host().unwrap_or_default();
        // The connector resolves names only: an address written in the URL is judged here.
        check_literal(host, self.allow).map_err(|e| failed(e.to_string()))?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let body = match form {
            Some(form) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form)
            }
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| failed(e.to_string()))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| failed(crate::address::chain(&e)))?;
            let status = resp.status();
            let bytes = http_body_util::Limited::new(resp.into_body(), MAX_FETCH_BYTES)
                .collect()
                .await
                .map_err(|_| {
                    failed(format!(
                        "the answer of {url} is over {MAX_FETCH_BYTES} bytes or broken"
                    ))
                })?
                .to_bytes();
            if !status.is_success() {
                return Err(FetchError::Status {
                    url: url.to_owned(),
                    status,
                });
            }
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|_| failed(format!("{url} did not answer JSON")))
        };
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(failed(format!("{url} did not answer in time"))))
    }
}

impl Key {
    fn clone_key(&self) -> Key {
        Key {
            kid: self.kid.clone(),
            algorithms: self.algorithms.clone(),
            key: self.key.clone(),
        }
    }
}

/// The usable signing keys of a JWKS document; keys that cannot be used are skipped one by one
/// (one odd key must not make the whole set unusable).
fn keys_of(doc: &Value) -> Vec<Key> {
    let Some(list) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter(|k| k.get("use").and_then(Value::as_str) != Some("enc"))
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter_map(|jwk| {
            let algorithms = algorithms_of(&jwk);
            if algorithms.is_empty() {
                return None;
            }
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some(Key {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key,
            })
        })
        .collect()
}

/// The algorithms a JWK may verify: its `alg` when it names one, else those of its key type.
/// Symmetric keys never: a JWKS is public.
fn algorithms_of(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![ES256],
            EllipticCurve::P384 => vec![ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![EdDSA],
        AlgorithmParameters::OctetKey(_) => vec![],
    };
    let named = jwk.common.key_algorithm.and_then(|a| match a {
        KeyAlgorithm::RS256 => Some(RS256),
        KeyAlgorithm::RS384 => Some(RS384),
        KeyAlgorithm::RS512 => Some(RS512),
        KeyAlgorithm::PS256 => Some(PS256),
        KeyAlgorithm::PS384 => Some(PS384),
        KeyAlgorithm::PS512 => Some(PS512),
        KeyAlgorithm::ES256 => Some(ES256),
        KeyAlgorithm::ES384 => Some(ES384),
        KeyAlgorithm::EdDSA => Some(EdDSA),
        _ => None,
    });
    match (jwk.common.key_algorithm, named) {
        (None, _) => by_type,
        (Some(_), Some(alg)) if by_type.contains(&alg) => vec![alg],
        _ => vec![],
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), when it is sane.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_TOKEN_BYTES)
        .then_some(token)
}

/// `Bearer <the file's content>`, read now, trimmed, at most [`MAX_TOKEN_BYTES`]. Errors name
/// the file, never its content.
async fn bearer_from_file(path: &Path) -> Result<HeaderValue, String> {
    use tokio::io::AsyncReadExt;
    let shown = path.display();
    let why = |what: String| format!("auth.oidc.jwksAuthTokenPath {shown}: {what}");
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| why(e.to_string()))?;
    let mut raw = Vec::new();
    file.take(MAX_TOKEN_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| why(e.to_string()))?;
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(why(format!("over {MAX_TOKEN_BYTES} bytes")));
    }
    let token = std::str::from_utf8(&raw)
        .map(str::trim)
        .map_err(|_| why("not text".into()))?;
    if token.is_empty() {
        return Err(why("empty".into()));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| why("holds characters a header cannot carry".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Three dot-separated parts: what upstream treats as a JWT (anything else is opaque).
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The value of a secret named by a `...SecretEnv` field, or a start-up error naming both.
pub fn secret_from_env(field: &str, var: &str) -> anyhow::Result<String> {
    std::env::var(var)
        .map_err(|_| anyhow::anyhow!("{field}: the environment variable {var} is not set"))
}

/// `Basic base64(id:secret)`, both form-encoded first (RFC 6749 §2.3.1); marked sensitive.
pub fn basic_authorization(client_id: &str, secret: &str) -> anyhow::Result<HeaderValue> {
    let raw = format!("{}:{}", form_encode(client_id), form_encode(secret));
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `application/x-www-form-urlencoded` escaping (RFC 6749 §2.3.1 uses it for Basic too).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let mut h = HeaderMap::new();
        assert!(bearer_token(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c"),
        );
        assert_eq!(bearer_token(&h), Some("a.b.c"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  x"));
        assert_eq!(bearer_token(&h), Some("x"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert!(bearer_token(&h).is_none());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(bearer_token(&h).is_none());
    }

    #[test]
    fn symmetric_and_mismatched_keys_are_unusable() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
            {"kty": "EC", "crv": "P-256", "kid": "e", "alg": "RS256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "ok",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird"}
        ]});
        let keys = keys_of(&doc);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("ok"));
        assert_eq!(keys[0].algorithms, vec![Algorithm::ES256]);
    }

    /// The token file is read as it is at each fetch: trimmed, bounded, and every way it can
    /// be unusable is an error naming the file, never a panic and never its content.
    #[tokio::test]
    async fn token_files_are_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, content: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path
        };
        let good = file("token", b"header.payload.sig\n");
        let value = bearer_from_file(&good).await.unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer header.payload.sig");
        assert!(value.is_sensitive());
        let rows = [
            (dir.path().join("missing"), "missing"),
            (file("empty", b" \n"), "empty"),
            (file("big", &vec![b'a'; MAX_TOKEN_BYTES + 1]), "over"),
            (file("binary", &[0xff, 0xfe]), "not text"),
            (file("control", b"a\x01b"), "header cannot carry"),
        ];
        for (path, what) in rows {
            let e = bearer_from_file(&path).await.unwrap_err();
            assert!(
                e.starts_with("auth.oidc.jwksAuthTokenPath ")
                    && e.contains(&*path.to_string_lossy()),
                "{what}: {e}"
            );
            if what != "missing" {
                assert!(e.contains(what), "{what}: {e}");
            }
        }
    }

    /// A CA bundle that cannot be used stops the start-up, naming `auth.oidc.caBundle`.
    #[test]
    fn unusable_ca_bundles_name_the_field() {
        crate::crypto::install_provider();
        let dir = tempfile::tempdir().unwrap();
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let rows = [
            ("missing.pem", None),
            ("text.pem", Some("not a certificate at all\n")),
            ("broken.pem", Some(bad_base64)),
        ];
        for (name, content) in rows {
            let path = dir.path().join(name);
            if let Some(c) = content {
                std::fs::write(&path, c).unwrap();
            }
            let cfg = OidcConfig {
                issuer: "https://idp.example.com".into(),
                ca_bundle: Some(path.to_string_lossy().into_owned()),
                ..OidcConfig::default()
            };
            let e = Authenticator::new(&cfg).err().expect(name).to_string();
            assert!(e.starts_with("auth.oidc.caBundle: "), "{name}: {e}");
            assert!(e.contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        assert_eq!(form_encode("a b+c/=é"), "a%20b%2Bc%2F%3D%C3%A9");
    }
}
