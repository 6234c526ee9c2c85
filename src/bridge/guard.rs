//! The bridge's door: authentication ([`super::auth`]), authorization ([`super::authz`]) and
//! the audit trail ([`super::audit`]) on the MCP routes of both fronts and of the HTTP backends.
//!
//! [`enforce`] runs before every MCP route: no valid token is 401 with `WWW-Authenticate:
//! Bearer ... resource_metadata="<...>/.well-known/oauth-protected-resource"` (the MCP
//! authorization spec; RFC 9728), the caller is handed to the handler, and the caller's
//! `Authorization` header is taken off the request so that it can never reach a backend. The
//! handlers ask [`screen`] about each JSON-RPC message, and filter list answers through
//! [`Guard::filter_reply`]. The metadata document is served without a token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use sha2::Digest;

use super::audit::{self, Decision, Note, Slot};
use super::auth::{bearer_token, Authenticator, Identity, Refusal};
use super::authz::{self, Authz, Caller, Feature, Gate};
use super::config::Config;
use super::jsonrpc;
use super::outgoing::CallerToken;

/// Callers remembered by their token (bounded; emptied when full).
const MAX_REMEMBERED_CALLERS: usize = 4096;

/// A verified JWT's caller, remembered until the token expires or the keys change, so a
/// client's next request costs a hash instead of a signature check and the claims' Cedar form.
struct Remembered {
    who: Arc<Who>,
    valid_until: u64,
    generation: u64,
}

/// Where the protected-resource metadata is served (RFC 9728 §3).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Authentication, authorization and audit, as configured.
pub struct Guard {
    pub authn: Option<Authenticator>,
    pub authz: Option<Authz>,
    pub audit: bool,
    /// A token exchange trades the caller's token: it is kept on the request (as
    /// [`CallerToken`]) for the handler, while the header itself is still taken off.
    keep_caller_token: bool,
    prefix: String,
    /// Keyed by the SHA-256 of the token (the token itself is never kept).
    remembered: Mutex<HashMap<[u8; 32], Remembered>>,
}

/// The caller of one request, as the handlers see it.
#[derive(Default)]
pub struct Who {
    pub identity: Option<Identity>,
    pub caller: Option<Caller>,
}

/// What the policy says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed; the answer is filtered to what the caller may use.
    FilterList(Feature),
    Denied,
}

impl Guard {
    /// The guard `cfg` asks for, or `None` when it asks for nothing (no cost on any request).
    pub fn of(cfg: &Config) -> anyhow::Result<Option<Arc<Guard>>> {
        let auth = &cfg.auth;
        let audit = auth.audit.as_ref().is_some_and(|a| a.enabled);
        if auth.oidc.is_none() && auth.authz.is_none() && !audit {
            return Ok(None);
        }
        let authn = auth.oidc.as_ref().map(Authenticator::new).transpose()?;
        let authz = auth
            .authz
            .as_ref()
            .map(Authz::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("auth.authz: {e}"))?;
        Ok(Some(Arc::new(Guard {
            authn,
            authz,
            audit,
            keep_caller_token: auth
                .outgoing
                .as_ref()
                .is_some_and(|o| o.token_exchange.is_some()),
            prefix: cfg.endpoint_prefix.clone(),
            remembered: Mutex::new(HashMap::new()),
        })))
    }

    /// Fetches the issuer's keys in the background, so the first caller does not wait.
    pub fn warm_up(self: &Arc<Self>) {
        if self.authn.is_some() {
            let me = self.clone();
            tokio::spawn(async move {
                if let Some(a) = &me.authn {
                    a.warm_up().await;
                }
            });
        }
    }

    /// A list answer cut down to what the caller may use.
    pub fn filter_reply(&self, who: Option<&Who>, feature: Feature, msg: Bytes) -> Bytes {
        match &self.authz {
            Some(z) => z.filter_list(who.and_then(|w| w.caller.as_ref()), feature, msg),
            None => msg,
        }
    }

    /// 401 with the challenge that sends a client to the metadata document. `invalid`: a token
    /// was sent (RFC 6750 then names `invalid_token`; a request without one gets no error code).
    fn unauthorized(&self, headers: &HeaderMap, invalid: bool) -> Response {
        let mut challenge = Vec::new();
        if let Some(a) = &self.authn {
            challenge.push(format!("realm=\"{}\"", quoted(a.issuer())));
        }
        challenge.push(format!(
            "resource_metadata=\"{}\"",
            quoted(&self.metadata_url(headers))
        ));
        if let Some(scopes) = self
            .authn
            .as_ref()
            .map(|a| &a.scopes)
            .filter(|s| !s.is_empty())
        {
            challenge.push(format!("scope=\"{}\"", quoted(&scopes.join(" "))));
        }
        if invalid {
            challenge.push("error=\"invalid_token\"".to_owned());
        }
        let body =
            r#"{"error":"invalid_token","error_description":"a valid bearer token is required"}"#;
        let mut resp = (StatusCode::UNAUTHORIZED, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", challenge.join(", "))) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }

    /// The metadata URL: under `resourceUrl`'s host with its path appended (RFC 9728 §3.1),
    /// else on the host the client called.
    fn metadata_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = self.resource_url() {
            if let Ok(uri) = url.parse::<axum::http::Uri>() {
                let path = uri.path().trim_end_matches('/');
                let scheme = uri.scheme_str().unwrap_or("https");
                let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
                return format!("{scheme}://{authority}{METADATA_PATH}{path}");
            }
        }
        format!("http://{}{}{METADATA_PATH}", host_of(headers), self.prefix)
    }

    fn resource_url(&self) -> Option<&str> {
        self.authn.as_ref().and_then(|a| a.resource_url.as_deref())
    }

    /// The RFC 9728 document (upstream's fields; `scopes_supported` defaults to `openid`).
    fn metadata(&self, headers: &HeaderMap) -> Value {
        let resource = match self.resource_url() {
            Some(url) => url.to_owned(),
            None => format!("http://{}{}/mcp", host_of(headers), self.prefix),
        };
        let (issuer, scopes) = match &self.authn {
            Some(a) if !a.scopes.is_empty() => (a.issuer().to_owned(), a.scopes.clone()),
            Some(a) => (a.issuer().to_owned(), vec!["openid".to_owned()]),
            None => (String::new(), vec!["openid".to_owned()]),
        };
        serde_json::json!({
            "resource": resource,
            "authorization_servers": [issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": scopes,
        })
    }
}

impl Guard {
    /// The caller of a request: remembered, or authenticated now (and then remembered when
    /// the token is a JWT).
    async fn caller_of(&self, headers: &HeaderMap) -> Result<Arc<Who>, Refusal> {
        let Some(authn) = &self.authn else {
            return Ok(Arc::new(Who::default()));
        };
        let token = bearer_token(headers);
        let key = token.map(|t| <[u8; 32]>::from(sha2::Sha256::digest(t.as_bytes())));
        let generation = authn.key_generation();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(key) = &key {
            let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = remembered.get(key) {
                if r.generation == generation && now <= r.valid_until {
                    return Ok(r.who.clone());
                }
            }
        }
        let identity = authn.authenticate(token).await?;
        let valid_until = identity.valid_until;
        let caller = self.authz.as_ref().and_then(|z| z.caller(&identity));
        let who = Arc::new(Who {
            identity: Some(identity),
            caller,
        });
        if let (Some(key), Some(valid_until)) = (key, valid_until) {
            self.remember(key, &who, valid_until, authn.key_generation(), now);
        }
        Ok(who)
    }

    fn remember(&self, key: [u8; 32], who: &Arc<Who>, valid_until: u64, generation: u64, now: u64) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= MAX_REMEMBERED_CALLERS {
            remembered.retain(|_, r| r.generation == generation && now <= r.valid_until);
            if remembered.len() >= MAX_REMEMBERED_CALLERS {
                remembered.clear();
            }
        }
        let r = Remembered {
            who: who.clone(),
            valid_until,
            generation,
        };
        remembered.insert(key, r);
    }
}

/// The middleware of the MCP routes (see the module docs).
pub async fn enforce(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let who = match guard.caller_of(req.headers()).await {
        Ok(who) => who,
        Err(why) => {
            tracing::debug!(reason = %why, "request refused: no valid bearer token");
            let invalid = !matches!(why, Refusal::Missing);
            let resp = guard.unauthorized(req.headers(), invalid);
            if guard.audit {
                let note = Note {
                    decision: Some(Decision::Unauthenticated),
                    ..Note::default()
                };
                audit::record(None, &note, 401, started.elapsed());
            }
            return resp;
        }
    };
    if guard.authn.is_some() {
        if guard.keep_caller_token {
            if let Some(token) = bearer_token(req.headers()) {
                let token = CallerToken(Arc::from(token));
                req.extensions_mut().insert(token);
            }
        }
        // The caller's credential is for the bridge: it never reaches a backend.
        req.headers_mut().remove(header::AUTHORIZATION);
    }
    let subject = who.identity.as_ref().and_then(|i| i.subject.clone());
    let slot = Slot::default();
    req.extensions_mut().insert(who);
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    if guard.audit {
        let note = slot.take();
        if note.method.is_some() {
            audit::record(
                subject.as_deref(),
                &note,
                resp.status().as_u16(),
                started.elapsed(),
            );
        }
    }
    resp
}

/// What the policy says about one message of a request, recorded for the audit line.
pub fn screen(
    guard: Option<&Guard>,
    who: Option<&Who>,
    slot: Option<&Slot>,
    method: &str,
    body: &Value,
) -> Verdict {
    let Some(guard) = guard else {
        return Verdict::Allowed;
    };
    let gate = authz::gate(method, body);
    if let Some(slot) = slot {
        let target = match &gate {
            Gate::Check(_, name) => Some(name.as_str()),
            _ => None,
        };
        slot.request(method, target);
    }
    let verdict = match (&guard.authz, gate) {
        (None, _) | (Some(_), Gate::Pass) => Verdict::Allowed,
        (Some(_), Gate::Deny) => Verdict::Denied,
        (Some(_), Gate::FilterList(feature)) => Verdict::FilterList(feature),
        (Some(z), Gate::Check(feature, name)) => {
            let args = body.pointer("/params/arguments").and_then(Value::as_object);
            let allowed = who
                .and_then(|w| w.caller.as_ref())
                .is_some_and(|c| z.allows(c, feature, &name, args));
            if allowed {
                Verdict::Allowed
            } else {
                Verdict::Denied
            }
        }
    };
    if let Some(slot) = slot {
        slot.decide(if verdict == Verdict::Denied {
            Decision::Deny
        } else {
            Decision::Allow
        });
    }
    verdict
}

/// Upstream's answer to a denied message: HTTP 403 with JSON-RPC error 403 "Unauthorized", and
/// nothing about the policy.
pub fn denied(id: Option<&[u8]>) -> Response {
    let body = jsonrpc::error_response(id, authz::DENIED_CODE, authz::DENIED_MESSAGE);
    let mut resp = (StatusCode::FORBIDDEN, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The metadata routes (with and without the prefix), served without a token.
pub fn metadata_routes<S: Clone + Send + Sync + 'static>(guard: &Arc<Guard>) -> Router<S> {
    let mut router = Router::new();
    let prefixes = if guard.prefix.is_empty() {
        vec![String::new()]
    } else {
        vec![String::new(), guard.prefix.clone()]
    };
    for prefix in prefixes {
        for path in [
            format!("{prefix}{METADATA_PATH}"),
            format!("{prefix}{METADATA_PATH}/{{*rest}}"),
        ] {
            let g = guard.clone();
            router = router.route(
                &path,
                axum::routing::any(move |method: Method, headers: HeaderMap| {
                    let g = g.clone();
                    async move { metadata(&g, &method, &headers) }
                }),
            );
        }
    }
    router
}

fn metadata(guard: &Guard, method: &Method, headers: &HeaderMap) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    let mut resp = match *method {
        Method::OPTIONS => StatusCode::NO_CONTENT.into_response(),
        Method::GET | Method::HEAD => {
            let mut r = guard.metadata(headers).to_string().into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    // A discovery document: any page may read it (as upstream serves it).
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("mcp-protocol-version, Content-Type, Authorization"),
    );
    resp
}

/// The `Host` the client called, when it is a plain authority (else the bridge's placeholder).
fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok())
        .unwrap_or("localhost")
        .to_owned()
}

/// A value inside a quoted-string of a challenge.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::config::{AuthConfig, OidcConfig};

    fn guard(resource_url: Option<&str>, prefix: &str) -> Arc<Guard> {
        crate::crypto::install_provider();
        let cfg = Config {
            endpoint_prefix: prefix.into(),
            auth: AuthConfig {
                oidc: Some(OidcConfig {
                    issuer: "https://idp.example.com/realms/r".into(),
                    resource_url: resource_url.map(str::to_owned),
                    ..OidcConfig::default()
                }),
                ..AuthConfig::default()
            },
            ..Config::default()
        };
        Guard::of(&cfg).unwrap().unwrap()
    }

    /// RFC 9728 §3.1: the well-known path goes between the host and the resource's path.
    #[test]
    fn metadata_urls_follow_rfc_9728() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("10.0.0.7:8080"));
        let rows = [
            (
                Some("https://mcp.example.com/fetch/mcp"),
                "",
                "https://mcp.example.com/.well-known/oauth-protected-resource/fetch/mcp",
            ),
            (
                Some("https://mcp.example.com/"),
                "",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                None,
                "",
                "http://10.0.0.7:8080/.well-known/oauth-protected-resource",
            ),
            (
                None,
                "/p",
                "http://10.0.0.7:8080/p/.well-known/oauth-protected-resource",
            ),
        ];
        for (resource, prefix, want) in rows {
            assert_eq!(guard(resource, prefix).metadata_url(&headers), want);
        }
        let doc = guard(None, "").metadata(&headers);
        assert_eq!(doc["resource"], "http://10.0.0.7:8080/mcp");
        assert_eq!(
            doc["authorization_servers"][0],
            "https://idp.example.com/realms/r"
        );
        assert_eq!(doc["scopes_supported"][0], "openid");
    }

    #[test]
    fn challenges_name_the_metadata_and_no_reason() {
        let headers = HeaderMap::new();
        let g = guard(Some("https://mcp.example.com/mcp"), "");
        let resp = g.unauthorized(&headers, true);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            challenge,
            "Bearer realm=\"https://idp.example.com/realms/r\", \
             resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", \
             error=\"invalid_token\""
        );
        let missing = g.unauthorized(&headers, false);
        let challenge = missing.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(!challenge.contains("error="), "{challenge}");
    }
}
