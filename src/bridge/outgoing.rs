//! Outgoing credentials: what the bridge adds to every request to an HTTP backend or a remote
//! (issue 13, "Outgoing"; MCPExternalAuthConfig `headerInjection`, `bearerToken` and
//! `tokenExchange`, and MCPRemoteProxy's `headerForward`). None of it ever reaches the client.
//!
//! - [`added_headers`]: plain `headers`, `headersFromEnv` and `auth.outgoing.bearerTokenEnv`,
//!   read once at start-up (a missing variable stops the bridge, naming it), the same on every
//!   request;
//! - [`TokenExchange`]: RFC 8693, per caller. The caller's validated bearer token (the bridge
//!   takes it off the request, see [`super::guard`]) is traded at `tokenUrl` for a backend
//!   token, which is cached per subject token until shortly before it expires (and never past
//!   the subject token's own `exp`), so a client's next request costs a hash. The cache is
//!   keyed by the SHA-256 of the subject token, so subject tokens are never kept.
//!
//! Values are marked sensitive (hidden by `Debug`); nothing here logs a token, and the token
//! endpoint's error body is neither logged nor passed on (it may echo what it was sent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::Value;
use sha2::Digest;

use super::auth::{basic_authorization, form_encode, secret_from_env, FetchError, Fetcher};
use super::config::{Config, TokenExchangeConfig};
use crate::address::Allowance;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_URN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Exchanged tokens remembered (one per subject token); when full, expired ones are dropped,
/// and if that frees nothing, all of them.
const MAX_CACHED: usize = 4096;
/// An exchanged token is used until this many seconds before its `expires_in` runs out, so
/// one that expires on its way to the backend is not sent.
const EXPIRY_MARGIN_SECS: u64 = 30;
/// How long a token without `expires_in` is used (RFC 6749 makes the field optional).
const DEFAULT_LIFETIME_SECS: u64 = 300;

/// The full URN of a subject token type: upstream's short forms and the URNs themselves.
pub fn token_type_urn(t: &str) -> Option<&'static str> {
    match t {
        "access_token" | ACCESS_TOKEN_URN => Some(ACCESS_TOKEN_URN),
        "id_token" | "urn:ietf:params:oauth:token-type:id_token" => {
            Some("urn:ietf:params:oauth:token-type:id_token")
        }
        "jwt" | "urn:ietf:params:oauth:token-type:jwt" => {
            Some("urn:ietf:params:oauth:token-type:jwt")
        }
        _ => None,
    }
}

/// The headers added to every request to the backend, in order: plain ones, those read from
/// the environment, then `Authorization: Bearer` from `auth.outgoing.bearerTokenEnv` (later
/// ones win on a clash). Values are marked sensitive: `Debug` hides them, and nothing logs them.
pub fn added_headers(cfg: &Config) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    added_headers_with(cfg, |var| std::env::var_os(var))
}

/// [`added_headers`] with the environment given (tests).
pub fn added_headers_with(
    cfg: &Config,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    for (name, value) in &cfg.headers {
        let value = HeaderValue::from_str(value).map_err(|_| {
            anyhow::anyhow!("headers[{name:?}]: the value is not a valid HTTP header value")
        })?;
        out.push((header_name(name)?, value));
    }
    for (name, var) in &cfg.headers_from_env {
        let value = env_value(&env, &format!("headersFromEnv[{name:?}]"), var, "")?;
        out.push((header_name(name)?, value));
    }
    let bearer = cfg
        .auth
        .outgoing
        .as_ref()
        .and_then(|o| o.bearer_token_env.as_ref());
    if let Some(var) = bearer {
        let value = env_value(&env, "auth.outgoing.bearerTokenEnv", var, "Bearer ")?;
        out.push((header::AUTHORIZATION, value));
    }
    for (_, v) in &mut out {
        v.set_sensitive(true);
    }
    Ok(out)
}

/// `prefix` + the value of `var`, as a header value; the error names `field` and `var`, never
/// the value.
fn env_value(
    env: &impl Fn(&str) -> Option<std::ffi::OsString>,
    field: &str,
    var: &str,
    prefix: &str,
) -> anyhow::Result<HeaderValue> {
    let Some(raw) = env(var) else {
        anyhow::bail!(
            "{field}: the environment variable {var} is not set (its Secret key may be missing)"
        );
    };
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(raw.as_encoded_bytes());
    HeaderValue::from_bytes(&bytes).map_err(|_| {
        anyhow::anyhow!(
            "{field}: the value of {var} is not a valid HTTP header value (a trailing newline in the Secret?)"
        )
    })
}

fn header_name(name: &str) -> anyhow::Result<HeaderName> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| anyhow::anyhow!("{name:?} is not a valid HTTP header name"))
}

/// A caller's bearer token, kept on the request (never logged) when a token exchange needs it.
#[derive(Clone)]
pub struct CallerToken(pub Arc<str>);

/// Why a caller's token could not be exchanged (logged; the client only learns that it failed).
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The token endpoint refused (4xx): this caller's token is not exchangeable.
    #[error("the token endpoint refused the exchange ({0})")]
    Refused(StatusCode),
    /// The endpoint could not be reached, failed, or answered nonsense.
    #[error("the token exchange failed: {0}")]
    Unavailable(String),
}

impl ExchangeError {
    /// What the client gets: 401 when its token was refused (as upstream answers), else 502.
    pub fn status(&self) -> StatusCode {
        match self {
            ExchangeError::Refused(_) => StatusCode::UNAUTHORIZED,
            ExchangeError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

/// An exchanged token, ready to send, and until when (Unix seconds) it may be.
struct Cached {
    header: HeaderValue,
    until: u64,
}

/// RFC 8693 token exchange with a per-subject-token cache.
pub struct TokenExchange {
    token_url: String,
    /// Everything of the form but the subject token, already encoded.
    form_rest: String,
    /// Basic client authentication, when a client secret is configured.
    authorization: Option<HeaderValue>,
    /// Where the exchanged token goes (`Authorization` unless `externalTokenHeaderName`).
    header: HeaderName,
    fetcher: Fetcher,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    /// One exchange per subject token at a time: concurrent first requests of one client
    /// (an SSE stream and a POST) wait for the same answer instead of each asking.
    in_flight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenExchange {
    /// The exchange `auth.outgoing.tokenExchange` asks for, if any. The token endpoint is
    /// usually the issuer's: it may be reached where the OIDC fetches may
    /// (`auth.oidc.allowPrivateIp`: private and loopback addresses).
    pub fn of(cfg: &Config) -> anyhow::Result<Option<Self>> {
        let Some(exchange) = cfg
            .auth
            .outgoing
            .as_ref()
            .and_then(|o| o.token_exchange.as_ref())
        else {
            return Ok(None);
        };
        let private = cfg
            .auth
            .oidc
            .as_ref()
            .and_then(|o| o.allow_private_ip)
            .unwrap_or(false);
        let allow = Allowance {
            private,
            loopback: private,
        };
        Self::new(exchange, allow).map(Some)
    }

    /// Reads the client secret from the environment. `allow`: the private addresses the token
    /// endpoint may be on (those of the OIDC fetches: `auth.oidc.allowPrivateIp`).
    pub fn new(cfg: &TokenExchangeConfig, allow: Allowance) -> anyhow::Result<Self> {
        let field = "auth.outgoing.tokenExchange";
        let subject_type = match &cfg.subject_token_type {
            Some(t) => token_type_urn(t).ok_or_else(|| {
                anyhow::anyhow!("{field}.subjectTokenType {t:?} is not a known token type")
            })?,
            None => ACCESS_TOKEN_URN,
        };
        let mut form = vec![
            ("subject_token_type", subject_type.to_owned()),
            ("requested_token_type", ACCESS_TOKEN_URN.to_owned()),
        ];
        if let Some(a) = cfg.audience.as_ref().filter(|a| !a.is_empty()) {
            form.push(("audience", a.clone()));
        }
        if let Some(s) = cfg.scopes.as_ref().filter(|s| !s.is_empty()) {
            form.push(("scope", s.join(" ")));
        }
        let authorization = match (&cfg.client_id, &cfg.client_secret_env) {
            (Some(id), Some(var)) => Some(basic_authorization(
                id,
                &secret_from_env(&format!("{field}.clientSecretEnv"), var)?,
            )?),
            (Some(id), None) => {
                // A public client names itself in the form (RFC 6749 §3.2.1).
                form.push(("client_id", id.clone()));
                None
            }
            _ => None,
        };
        let header = match &cfg.external_token_header_name {
            Some(name) => header_name(name)?,
            None => header::AUTHORIZATION,
        };
        let form_rest = form
            .iter()
            .map(|(k, v)| format!("&{k}={}", form_encode(v)))
            .collect();
        Ok(Self {
            token_url: cfg.token_url.clone(),
            form_rest,
            authorization,
            header,
            fetcher: Fetcher::new(allow, None)?,
            cache: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// The header carrying the backend token for the caller of `subject` (whose `exp`, when
    /// known, bounds how long the answer is reused).
    pub async fn credential_for(
        &self,
        subject: &str,
        subject_exp: Option<u64>,
    ) -> Result<(HeaderName, HeaderValue), ExchangeError> {
        let key = <[u8; 32]>::from(sha2::Sha256::digest(subject.as_bytes()));
        if let Some(hit) = self.cached(&key) {
            return Ok((self.header.clone(), hit));
        }
        let gate = lock(&self.in_flight).entry(key).or_default().clone();
        let _one_at_a_time = gate.lock().await;
        // Removed however this ends (a client that goes away cancels the future).
        let _forget = InFlight {
            map: &self.in_flight,
            key,
        };
        // Another request of this caller may have exchanged while this one waited.
        let outcome = match self.cached(&key) {
            Some(hit) => Ok(hit),
            None => self.exchange(subject, subject_exp, key).await,
        };
        outcome.map(|v| (self.header.clone(), v))
    }

    fn cached(&self, key: &[u8; 32]) -> Option<HeaderValue> {
        let now = jsonwebtoken::get_current_timestamp();
        lock(&self.cache)
            .get(key)
            .filter(|c| now < c.until)
            .map(|c| c.header.clone())
    }

    async fn exchange(
        &self,
        subject: &str,
        subject_exp: Option<u64>,
        key: [u8; 32],
    ) -> Result<HeaderValue, ExchangeError> {
        let form = format!(
            "grant_type={}&subject_token={}{}",
            form_encode(GRANT_TYPE),
            form_encode(subject),
            self.form_rest
        );
        let answer = self
            .fetcher
            .fetch(
                Method::POST,
                &self.token_url,
                Some(form),
                self.authorization.clone(),
            )
            .await
            .map_err(|e| match e {
                FetchError::Status { status, .. } if status.is_client_error() => {
                    ExchangeError::Refused(status)
                }
                other => ExchangeError::Unavailable(other.to_string()),
            })?;
        let (header, lifetime) = issued_token(&answer)?;
        let now = jsonwebtoken::get_current_timestamp();
        let mut until = now + lifetime.saturating_sub(EXPIRY_MARGIN_SECS);
        if let Some(exp) = subject_exp {
            until = until.min(exp);
        }
        self.remember(key, header.clone(), until, now);
        Ok(header)
    }

    fn remember(&self, key: [u8; 32], header: HeaderValue, until: u64, now: u64) {
        if until <= now {
            return;
        }
        let mut cache = lock(&self.cache);
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| now < c.until);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, Cached { header, until });
    }
}

/// Takes a subject token's gate out of the in-flight map when its exchange ends.
struct InFlight<'a> {
    map: &'a Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    key: [u8; 32],
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.map).remove(&self.key);
    }
}

/// `Bearer <access_token>` (sensitive) and its lifetime in seconds, from a token endpoint's
/// answer.
fn issued_token(answer: &Value) -> Result<(HeaderValue, u64), ExchangeError> {
    let unusable = |why: &str| ExchangeError::Unavailable(format!("the token endpoint's {why}"));
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unusable("answer has no access_token"))?;
    let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| unusable("access_token is not a valid header value"))?;
    header.set_sensitive(true);
    let lifetime = answer
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_LIFETIME_SECS);
    Ok((header, lifetime))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::config::{AuthConfig, OutgoingConfig};

    #[test]
    fn headers_come_from_the_file_and_the_environment() {
        let cfg = Config {
            headers: [("X-Plain".to_string(), "p".to_string())].into(),
            headers_from_env: [("X-Api-Key".to_string(), "KEY_VAR".to_string())].into(),
            auth: AuthConfig {
                outgoing: Some(OutgoingConfig {
                    bearer_token_env: Some("TOKEN_VAR".into()),
                    token_exchange: None,
                }),
                ..AuthConfig::default()
            },
            ..Config::default()
        };
        let env = |v: &str| match v {
            "KEY_VAR" => Some("s3cret".into()),
            "TOKEN_VAR" => Some("t0ken".into()),
            _ => None,
        };
        let got = added_headers_with(&cfg, env).unwrap();
        let pairs: Vec<(&str, &[u8])> = got
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("x-plain", &b"p"[..]),
                ("x-api-key", b"s3cret"),
                ("authorization", b"Bearer t0ken")
            ]
        );
        assert!(got.iter().all(|(_, v)| v.is_sensitive()));
        let shown = format!("{got:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );
        let missing = added_headers_with(&cfg, |v| (v == "KEY_VAR").then(|| "k".into()))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("auth.outgoing.bearerTokenEnv")
                && missing.contains("TOKEN_VAR is not set"),
            "{missing}"
        );
        let newline = added_headers_with(&cfg, |_| Some("v\n".into()))
            .unwrap_err()
            .to_string();
        assert!(
            newline.contains("KEY_VAR")
                && newline.contains("not a valid HTTP header value")
                && !newline.contains('\n'),
            "{newline}"
        );
    }

    #[test]
    fn token_types_take_short_forms_and_urns() {
        for (given, want) in [
            ("access_token", Some(ACCESS_TOKEN_URN)),
            (ACCESS_TOKEN_URN, Some(ACCESS_TOKEN_URN)),
            (
                "id_token",
                Some("urn:ietf:params:oauth:token-type:id_token"),
            ),
            ("jwt", Some("urn:ietf:params:oauth:token-type:jwt")),
            ("saml2", None),
            ("", None),
        ] {
            assert_eq!(token_type_urn(given), want, "{given}");
        }
    }

    #[test]
    fn issued_tokens_need_an_access_token() {
        let (h, life) =
            issued_token(&serde_json::json!({"access_token": "x", "expires_in": 60})).unwrap();
        assert_eq!(
            (h.as_bytes(), life, h.is_sensitive()),
            (&b"Bearer x"[..], 60, true)
        );
        let (_, life) = issued_token(&serde_json::json!({"access_token": "x"})).unwrap();
        assert_eq!(life, DEFAULT_LIFETIME_SECS);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"access_token": ""}),
            serde_json::json!({"access_token": "a\nb"}),
        ] {
            assert!(issued_token(&bad).is_err(), "{bad}");
        }
    }
}
