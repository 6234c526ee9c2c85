//! The bridge's configuration: a JSON file written by the operator, overridden by flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::filter::{ToolPolicy, ToolsError};

/// How the bridge reaches its MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Spawn the server and speak over its stdin/stdout.
    Stdio,
    /// Reverse-proxy to a legacy HTTP+SSE server at `target` (or `remoteUrl`).
    Sse,
    /// Reverse-proxy to a streamable-HTTP server at `target` (or `remoteUrl`).
    StreamableHttp,
}

/// The config file (`--config`), in the operator's camelCase. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub transport: Option<Transport>,
    pub target: Option<String>,
    pub tools: Option<Vec<String>>,
    pub tool_overrides: Option<BTreeMap<String, ToolOverride>>,
    pub endpoint_prefix: Option<String>,
    pub trust_proxy_headers: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub request_timeout_seconds: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub max_line_bytes: Option<usize>,
    pub keep_alive_seconds: Option<u64>,
    pub session_ttl_seconds: Option<u64>,
    pub max_sessions: Option<usize>,
    pub ping_interval_seconds: Option<u64>,
    pub metrics: Option<bool>,
    pub command: Option<Vec<String>>,
    pub header_read_timeout_seconds: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_body_bytes_in_flight: Option<usize>,
    pub session_handshake_seconds: Option<u64>,
    pub max_sessions_per_client: Option<usize>,
    pub max_stream_queue_bytes: Option<usize>,
    pub remote_url: Option<String>,
    pub allow_private_endpoint: Option<bool>,
    pub ca_bundle: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub headers_from_env: Option<BTreeMap<String, String>>,
    /// Who may call: bearer tokens, Cedar policies and the audit trail (MCPOIDCConfig,
    /// MCPAuthzConfig and `audit` on the workload, resolved by the operator).
    pub auth: Option<AuthConfig>,
}

/// The `auth` block: each part is optional; authorization needs `oidc` (a policy decides on the
/// caller's claims, so without a token nobody would be allowed anything).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    pub oidc: Option<OidcConfig>,
    pub authz: Option<AuthzConfig>,
    pub audit: Option<AuditConfig>,
    pub outgoing: Option<OutgoingConfig>,
}

/// Credentials the bridge adds to every request to an HTTP backend or remote
/// (MCPExternalAuthConfig `bearerToken` and `tokenExchange`, resolved by the operator); the
/// client never sees them.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutgoingConfig {
    /// The environment variable holding a token sent as `Authorization: Bearer <token>`.
    pub bearer_token_env: Option<String>,
    /// Trade each caller's token for a backend token (RFC 8693).
    pub token_exchange: Option<TokenExchangeConfig>,
}

/// RFC 8693 token exchange: the caller's validated bearer token is the subject token.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenExchangeConfig {
    pub token_url: String,
    /// With `clientSecretEnv`: HTTP Basic client authentication; alone: `client_id` in the form.
    pub client_id: Option<String>,
    /// The name of the environment variable holding the client secret (from a Secret).
    pub client_secret_env: Option<String>,
    pub audience: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// `access_token` (default), `id_token`, `jwt`, or their full URNs.
    pub subject_token_type: Option<String>,
    /// Send the exchanged token as `<name>: Bearer <token>` instead of `Authorization`.
    pub external_token_header_name: Option<String>,
}

/// Bearer-token validation (upstream's `TokenValidatorConfig`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` every token must carry; also where the JWKS URL is discovered.
    pub issuer: String,
    /// The `aud` a token must contain; none: any audience.
    pub audience: Option<String>,
    /// The JWKS URL; none: `jwks_uri` of `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// RFC 7662 introspection endpoint for tokens that are not JWTs.
    pub introspection_url: Option<String>,
    /// The client the bridge introspects as (HTTP Basic), with its secret from the environment.
    pub client_id: Option<String>,
    /// The name of the environment variable holding the client secret (from a Secret).
    pub client_secret_env: Option<String>,
    /// This server's public URL (`resource` in the protected-resource metadata).
    pub resource_url: Option<String>,
    /// `scopes_supported` of the protected-resource metadata.
    pub scopes: Option<Vec<String>>,
    /// Issuer, JWKS and introspection fetches may reach private and loopback addresses
    /// (upstream's `jwksAllowPrivateIP`).
    pub allow_private_ip: Option<bool>,
    /// A PEM file of CA certificates trusted, besides the system's, for the issuer, JWKS and
    /// introspection fetches (the cluster's CA for service-account tokens, a private CA).
    pub ca_bundle: Option<String>,
    /// A file whose content is sent as `Authorization: Bearer` on the discovery and JWKS
    /// fetches (the API server serves its keys only to callers it knows). Read at every fetch:
    /// the kubelet rewrites a projected token in place before it expires.
    pub jwks_auth_token_path: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (default 30).
    pub leeway_seconds: Option<u64>,
    /// The JWKS is fetched again for an unknown `kid` at most once per this many seconds
    /// (default 30).
    pub jwks_min_refresh_seconds: Option<u64>,
}

/// Cedar authorization (MCPAuthzConfig `cedarv1`), in upstream's entity model.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthzConfig {
    /// One Cedar policy per string.
    pub policies: Vec<String>,
    /// Upstream's `entities_json`: a JSON array of entities the policies may refer to.
    pub entities_json: Option<String>,
    /// The claim holding the caller's groups (a dotted path into nested claims); none: the
    /// first of `groups`, `roles`, `cognito:groups`.
    pub group_claim_name: Option<String>,
    /// A claim whose values are added to the groups.
    pub role_claim_name: Option<String>,
    /// The entity type of groups (default `THVGroup`).
    pub group_entity_type: Option<String>,
    /// The MCP server's name: every resource is a member of `MCP::"<name>"`.
    pub server_name: Option<String>,
}

/// The audit trail: one JSON line per MCP request on stdout.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    pub enabled: bool,
}

/// How one backend tool is shown to clients (`toolOverrides`, keyed by the backend's name;
/// MCPToolConfig `toolsOverride`). Every field is optional; an absent one keeps the backend's.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolOverride {
    /// The name clients see and call the tool by.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Per-field overrides of the tool's `annotations`.
    pub annotations: Option<ToolAnnotations>,
}

/// MCP tool annotation overrides; an absent field keeps the backend's value.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolAnnotations {
    pub title: Option<String>,
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub transport: Transport,
    pub target: Option<String>,
    /// The tools allow-list, by the names clients see (after `tool_overrides`).
    pub tools: Vec<String>,
    /// Renames, descriptions and annotations, keyed by the backend's tool name.
    pub tool_overrides: BTreeMap<String, ToolOverride>,
    /// Prefix under which clients reach the bridge (an ingress that strips it), used in the
    /// legacy SSE `endpoint` event. No trailing slash; empty for none.
    pub endpoint_prefix: String,
    /// Honour `X-Forwarded-Prefix` (only behind a proxy that sets it).
    pub trust_proxy_headers: bool,
    /// Origins allowed besides loopback and the request's own (known) host.
    pub allowed_origins: Vec<String>,
    /// Host names served to browser pages besides the bridge's own (see [`super::origin`]);
    /// `.suffix` or `*.suffix` for every name under one, `*` for any.
    pub allowed_hosts: Vec<String>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_line_bytes: usize,
    pub keep_alive: Duration,
    pub session_ttl: Duration,
    pub max_sessions: usize,
    pub ping_interval: Duration,
    pub metrics: bool,
    pub command: Vec<String>,
    /// A connection must send a request's headers within this (also between keep-alive
    /// requests), or it is closed.
    pub header_read_timeout: Duration,
    /// Open client connections; at the cap, the oldest one that has not sent a request yet
    /// makes room, else the new one is closed.
    pub max_connections: usize,
    /// Bytes of request bodies being read at once, over all connections (then 503).
    pub max_body_bytes_in_flight: usize,
    /// A session that makes no request (streamable HTTP: none after `initialize`; legacy SSE:
    /// no POST) within this is ended.
    pub session_handshake: Duration,
    /// Sessions one client address may hold.
    pub max_sessions_per_client: usize,
    /// Bytes queued on one SSE stream for a client that does not read it; more are dropped.
    pub max_stream_queue_bytes: usize,
    /// Remote mode: an MCP server elsewhere (`http://` or `https://`), reached through the
    /// address guard (see [`crate::address`]).
    pub remote_url: Option<String>,
    /// Remote mode: RFC 1918 and ULA addresses may be reached.
    pub allow_private_endpoint: bool,
    /// Remote mode, tests and local development only: loopback addresses may be reached.
    pub allow_loopback_remote: bool,
    /// Remote mode: a PEM file of CA certificates trusted besides the system's.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Headers added to every request to an HTTP backend or the remote (name → value).
    pub headers: BTreeMap<String, String>,
    /// Headers added to every request to an HTTP backend or the remote, their values read from
    /// environment variables at start-up (name → variable), so a value never sits in the file.
    pub headers_from_env: BTreeMap<String, String>,
    /// Authentication, authorization and audit (`auth`).
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            transport: Transport::Stdio,
            target: None,
            tools: Vec::new(),
            tool_overrides: BTreeMap::new(),
            endpoint_prefix: String::new(),
            trust_proxy_headers: false,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            // Upstream's figures: 60 s per request, 8 MiB per body.
            request_timeout: Duration::from_secs(60),
            max_body_bytes: 8 << 20,
            max_line_bytes: 16 << 20,
            keep_alive: Duration::from_secs(15),
            session_ttl: Duration::from_secs(2 * 3600),
            max_sessions: 10_000,
            ping_interval: Duration::from_secs(30),
            metrics: true,
            command: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_body_bytes_in_flight: 64 << 20,
            session_handshake: Duration::from_secs(10),
            max_sessions_per_client: 1000,
            max_stream_queue_bytes: 4 << 20,
            remote_url: None,
            allow_private_endpoint: false,
            allow_loopback_remote: false,
            ca_bundle: None,
            headers: BTreeMap::new(),
            headers_from_env: BTreeMap::new(),
            auth: AuthConfig::default(),
        }
    }
}

/// A configuration that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("invalid listen address {0:?}: expected HOST:PORT or :PORT")]
    Listen(String),
    #[error("the stdio transport needs a server command after `--`")]
    NoCommand,
    #[error("the {0:?} transport needs --target URL")]
    NoTarget(Transport),
    #[error("invalid target {0:?}: expected http://HOST:PORT[/PATH]")]
    Target(String),
    #[error(transparent)]
    Tools(#[from] ToolsError),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("invalid remoteUrl {0:?}: expected http:// or https://HOST[:PORT][/PATH]")]
    RemoteUrl(String),
    #[error(
        "remoteUrl and {0} exclude each other: a remote server is neither spawned nor in the pod"
    )]
    RemoteAnd(&'static str),
    #[error("the remote transport must be sse or streamable-http, not stdio")]
    RemoteStdio,
    #[error("{0} is set but remoteUrl is not: it applies to remote servers only")]
    RemoteOnly(&'static str),
    #[error(
        "{0} is set but the transport is stdio: outgoing credentials apply to HTTP backends (sse, streamable-http) and remotes only"
    )]
    HttpOnly(&'static str),
    #[error("auth: {0}")]
    Auth(String),
    #[error("{field}[{name:?}]: {why}")]
    Header {
        field: &'static str,
        name: String,
        why: &'static str,
    },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}

/// Parses `HOST:PORT`, `:PORT` (all interfaces) or `PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    let err = || ConfigError::Listen(s.to_owned());
    if let Some(port) = s.strip_prefix(':').or(Some(s).filter(|s| !s.contains(':'))) {
        let port: u16 = port.parse().map_err(|_| err())?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Some(rest) = s.strip_prefix("localhost:") {
        let port: u16 = rest.parse().map_err(|_| err())?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| err())
}

/// Normalizes a prefix to `/a/b` (or empty).
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

impl Config {
    /// The environment variables that hold the bridge's own secrets (client secrets, header
    /// values, tokens): the MCP server it starts never inherits them.
    pub fn secret_env_vars(&self) -> Vec<String> {
        let auth = &self.auth;
        let oidc = auth.oidc.as_ref().and_then(|o| o.client_secret_env.clone());
        let outgoing = auth.outgoing.as_ref();
        let bearer = outgoing.and_then(|o| o.bearer_token_env.clone());
        let exchange = outgoing
            .and_then(|o| o.token_exchange.as_ref())
            .and_then(|t| t.client_secret_env.clone());
        self.headers_from_env
            .values()
            .cloned()
            .chain(oidc)
            .chain(bearer)
            .chain(exchange)
            .collect()
    }
}

impl Config {
    /// Checks what flags and file cannot check on their own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.remote_url.is_some() {
            self.validate_remote()?;
        } else {
            self.validate_not_remote()?;
        }
        self.validate_outgoing()?;
        match self.transport {
            _ if self.remote_url.is_some() => {}
            Transport::Stdio if self.command.is_empty() => return Err(ConfigError::NoCommand),
            Transport::Sse | Transport::StreamableHttp => {
                let target = self
                    .target
                    .as_deref()
                    .ok_or(ConfigError::NoTarget(self.transport))?;
                if !target.starts_with("http://") {
                    return Err(ConfigError::Target(target.to_owned()));
                }
            }
            _ => {}
        }
        ToolPolicy::new(&self.tools, &self.tool_overrides)?;
        self.validate_auth()?;
        for (name, zero) in [
            ("requestTimeoutSeconds", self.request_timeout.is_zero()),
            ("maxBodyBytes", self.max_body_bytes == 0),
            ("maxLineBytes", self.max_line_bytes == 0),
            ("keepAliveSeconds", self.keep_alive.is_zero()),
            ("maxSessions", self.max_sessions == 0),
            ("pingIntervalSeconds", self.ping_interval.is_zero()),
            (
                "headerReadTimeoutSeconds",
                self.header_read_timeout.is_zero(),
            ),
            ("maxConnections", self.max_connections == 0),
            ("maxBodyBytesInFlight", self.max_body_bytes_in_flight == 0),
            ("sessionHandshakeSeconds", self.session_handshake.is_zero()),
            ("maxSessionsPerClient", self.max_sessions_per_client == 0),
            ("maxStreamQueueBytes", self.max_stream_queue_bytes == 0),
        ] {
            if zero {
                return Err(ConfigError::Zero(name));
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_remote(&self) -> Result<(), ConfigError> {
        let url = self.remote_url.as_deref().unwrap_or_default();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host = rest.and_then(|r| r.split(['/', '?', '#']).next());
        if host.is_none_or(|h| h.is_empty() || h.contains('@'))
            || url.parse::<axum::http::Uri>().is_err()
        {
            return Err(ConfigError::RemoteUrl(url.to_owned()));
        }
        if self.transport == Transport::Stdio {
            return Err(ConfigError::RemoteStdio);
        }
        if self.target.is_some() {
            return Err(ConfigError::RemoteAnd("target"));
        }
        if !self.command.is_empty() {
            return Err(ConfigError::RemoteAnd("a server command"));
        }
        Ok(())
    }

    /// Headers and credentials for the backend need a backend that speaks HTTP: a stdio server
    /// gets no request to put them on.
    fn validate_outgoing(&self) -> Result<(), ConfigError> {
        let outgoing = self.auth.outgoing.clone().unwrap_or_default();
        if self.transport == Transport::Stdio && self.remote_url.is_none() {
            for (field, set) in [
                ("headers", !self.headers.is_empty()),
                ("headersFromEnv", !self.headers_from_env.is_empty()),
                (
                    "auth.outgoing.bearerTokenEnv",
                    outgoing.bearer_token_env.is_some(),
                ),
                (
                    "auth.outgoing.tokenExchange",
                    outgoing.token_exchange.is_some(),
                ),
            ] {
                if set {
                    return Err(ConfigError::HttpOnly(field));
                }
            }
        }
        for name in self.headers.keys() {
            check_header_name("headers", name)?;
        }
        for (name, var) in &self.headers_from_env {
            check_header_name("headersFromEnv", name)?;
            if !is_env_name(var) {
                return Err(ConfigError::Header {
                    field: "headersFromEnv",
                    name: name.clone(),
                    why: "the environment variable name is empty or invalid",
                });
            }
        }
        Ok(())
    }

    /// What can be judged without the network: URLs, the need for `oidc`, the policies.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError::Auth(m));
        if let Some(oidc) = &self.auth.oidc {
            for (field, url) in [
                ("oidc.issuer", Some(&oidc.issuer)),
                ("oidc.jwksUrl", oidc.jwks_url.as_ref()),
                ("oidc.introspectionUrl", oidc.introspection_url.as_ref()),
                ("oidc.resourceUrl", oidc.resource_url.as_ref()),
            ] {
                if let Some(url) = url {
                    if !is_http_url(url) {
                        return err(format!("{field} {url:?} is not an http(s) URL"));
                    }
                }
            }
            if oidc.client_id.is_some() && oidc.introspection_url.is_none() {
                return err("oidc.clientId is set but oidc.introspectionUrl is not".into());
            }
            for (field, path) in [
                ("oidc.caBundle", &oidc.ca_bundle),
                ("oidc.jwksAuthTokenPath", &oidc.jwks_auth_token_path),
            ] {
                if path.as_deref().is_some_and(|p| p.trim().is_empty()) {
                    return err(format!("{field} is empty"));
                }
            }
            // The token is a credential: it never travels in the clear. A discovered JWKS URL
            // is checked again when it is known.
            let keys_from = oidc.jwks_url.as_ref().unwrap_or(&oidc.issuer);
            if oidc.jwks_auth_token_path.is_some() && !is_https(keys_from) {
                return err(format!(
                    "oidc.jwksAuthTokenPath is sent as a bearer token, which needs https, and the keys come from {keys_from:?}"
                ));
            }
        }
        if let Some(outgoing) = &self.auth.outgoing {
            self.validate_outgoing_auth(outgoing)?;
        }
        if let Some(authz) = &self.auth.authz {
            if self.auth.oidc.is_none() {
                return err("authz needs oidc: policies decide on the caller's token".into());
            }
            if authz.policies.is_empty() {
                return err("authz.policies is empty".into());
            }
            if let Err(e) = super::authz::Authz::new(authz) {
                return err(format!("authz: {e}"));
            }
        }
        Ok(())
    }

    fn validate_not_remote(&self) -> Result<(), ConfigError> {
        for (field, set) in [
            ("caBundle", self.ca_bundle.is_some()),
            ("allowPrivateEndpoint", self.allow_private_endpoint),
            (
                "--insecure-allow-loopback-remote",
                self.allow_loopback_remote,
            ),
        ] {
            if set {
                return Err(ConfigError::RemoteOnly(field));
            }
        }
        Ok(())
    }
}

impl Config {
    /// `auth.outgoing`: one credential at a time, and a token exchange needs a caller's token.
    fn validate_outgoing_auth(&self, outgoing: &OutgoingConfig) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError::Auth(m));
        if let Some(var) = &outgoing.bearer_token_env {
            if !is_env_name(var) {
                return err(format!(
                    "outgoing.bearerTokenEnv {var:?} is not an environment variable name"
                ));
            }
        }
        let Some(exchange) = &outgoing.token_exchange else {
            return Ok(());
        };
        if outgoing.bearer_token_env.is_some() {
            return err(
                "outgoing.bearerTokenEnv and outgoing.tokenExchange exclude each other: the backend gets one Authorization"
                    .into(),
            );
        }
        if self.auth.oidc.is_none() {
            return err(
                "outgoing.tokenExchange needs oidc: the caller's validated token is what is exchanged"
                    .into(),
            );
        }
        if !is_http_url(&exchange.token_url) {
            return err(format!(
                "outgoing.tokenExchange.tokenUrl {:?} is not an http(s) URL",
                exchange.token_url
            ));
        }
        if let Some(t) = &exchange.subject_token_type {
            if super::outgoing::token_type_urn(t).is_none() {
                return err(format!(
                    "outgoing.tokenExchange.subjectTokenType {t:?} is not access_token, id_token, jwt or their URN"
                ));
            }
        }
        if let Some(var) = exchange
            .client_secret_env
            .as_ref()
            .filter(|v| !is_env_name(v))
        {
            return err(format!(
                "outgoing.tokenExchange.clientSecretEnv {var:?} is not an environment variable name"
            ));
        }
        if exchange.client_secret_env.is_some() && exchange.client_id.is_none() {
            return err(
                "outgoing.tokenExchange.clientSecretEnv is set but outgoing.tokenExchange.clientId is not"
                    .into(),
            );
        }
        if let Some(name) = &exchange.external_token_header_name {
            check_header_name("auth.outgoing.tokenExchange.externalTokenHeaderName", name)?;
        }
        Ok(())
    }
}

/// A name `std::env::var` can look up (and a Pod's `env` can set).
fn is_env_name(var: &str) -> bool {
    !var.is_empty() && !var.contains('=') && !var.contains('\0')
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url
            .parse::<axum::http::Uri>()
            .is_ok_and(|u| u.host().is_some())
}

/// An `https://` URL (the scheme as `is_http_url` reads it: lower case).
pub(crate) fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

fn check_header_name(field: &'static str, name: &str) -> Result<(), ConfigError> {
    let why = match axum::http::HeaderName::from_bytes(name.as_bytes()) {
        Err(_) => "not a valid HTTP header name",
        Ok(h) if super::reverse::is_hop_by_hop(h.as_str()) || h == axum::http::header::HOST => {
            "a connection-level header the bridge sets itself"
        }
        Ok(_) => return Ok(()),
    };
    Err(ConfigError::Header {
        field,
        name: name.to_owned(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen(":8080").unwrap().port(), 8080);
        assert_eq!(parse_listen("9000").unwrap().port(), 9000);
        assert!(parse_listen("127.0.0.1:1").unwrap().ip().is_loopback());
        assert!(parse_listen("nope:x").is_err());
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix("/a/b/"), "/a/b");
        assert_eq!(normalize_prefix("a"), "/a");
        assert_eq!(normalize_prefix("/"), "");
    }

    #[test]
    fn file_config_rejects_unknown_fields() {
        let bad: Result<FileConfig, _> = serde_json::from_str(r#"{"tool":["x"]}"#);
        assert!(bad.is_err());
        let ok: FileConfig =
            serde_json::from_str(r#"{"tools":["echo"],"transport":"streamable-http"}"#).unwrap();
        assert_eq!(ok.transport, Some(Transport::StreamableHttp));
    }

    /// The limits of issue 17 are optional fields: a config the operator wrote before them
    /// still loads, and a zero is refused by name.
    #[test]
    fn limit_fields_are_optional_and_zero_is_refused() {
        let old: FileConfig = serde_json::from_str(
            r#"{"listen": ":8080", "transport": "stdio", "tools": ["a"], "endpointPrefix": "/p",
                "trustProxyHeaders": true, "command": ["srv"]}"#,
        )
        .unwrap();
        assert!(old.max_connections.is_none() && old.allowed_hosts.is_none());
        let new: FileConfig = serde_json::from_str(
            r#"{"allowedHosts": [".example.com"], "headerReadTimeoutSeconds": 5,
                "maxConnections": 10, "maxBodyBytesInFlight": 1000, "sessionHandshakeSeconds": 3,
                "maxSessionsPerClient": 7, "maxStreamQueueBytes": 4096}"#,
        )
        .unwrap();
        assert_eq!(new.max_sessions_per_client, Some(7));
        for (name, cfg) in [
            (
                "maxConnections",
                Config {
                    max_connections: 0,
                    ..Config::default()
                },
            ),
            (
                "maxBodyBytesInFlight",
                Config {
                    max_body_bytes_in_flight: 0,
                    ..Config::default()
                },
            ),
            (
                "maxSessionsPerClient",
                Config {
                    max_sessions_per_client: 0,
                    ..Config::default()
                },
            ),
            (
                "maxStreamQueueBytes",
                Config {
                    max_stream_queue_bytes: 0,
                    ..Config::default()
                },
            ),
            (
                "headerReadTimeoutSeconds",
                Config {
                    header_read_timeout: Duration::ZERO,
                    ..Config::default()
                },
            ),
            (
                "sessionHandshakeSeconds",
                Config {
                    session_handshake: Duration::ZERO,
                    ..Config::default()
                },
            ),
        ] {
            let cfg = Config {
                command: vec!["srv".into()],
                ..cfg
            };
            let err = cfg.validate().expect_err(name).to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn file_config_reads_tool_overrides() {
        let file: FileConfig = serde_json::from_str(
            r#"{"tools": ["say"], "toolOverrides": {"echo": {"name": "say", "description": "d",
                "annotations": {"title": "Say", "readOnlyHint": true, "destructiveHint": false,
                                "idempotentHint": true, "openWorldHint": false}}}}"#,
        )
        .unwrap();
        let echo = &file.tool_overrides.unwrap()["echo"];
        assert_eq!(echo.name.as_deref(), Some("say"));
        let a = echo.annotations.as_ref().unwrap();
        assert_eq!(
            (a.title.as_deref(), a.read_only_hint, a.destructive_hint),
            (Some("Say"), Some(true), Some(false))
        );
        assert_eq!(
            (a.idempotent_hint, a.open_world_hint),
            (Some(true), Some(false))
        );
    }

    /// The `auth` block: every key read, unknown keys and unusable settings refused by name.
    #[test]
    fn auth_blocks_are_read_and_checked() {
        let file: FileConfig = serde_json::from_str(
            r#"{"auth": {"oidc": {"issuer": "https://idp.example.com", "audience": "a",
                "jwksUrl": "https://idp.example.com/jwks", "introspectionUrl": "https://idp.example.com/i",
                "clientId": "c", "clientSecretEnv": "S", "resourceUrl": "https://mcp.example.com/mcp",
                "scopes": ["openid"], "allowPrivateIp": true, "leewaySeconds": 5,
                "jwksMinRefreshSeconds": 10, "caBundle": "/certs/ca.crt",
                "jwksAuthTokenPath": "/var/run/secrets/token"},
                "authz": {"policies": ["permit(principal, action, resource);"], "entitiesJson": "[]",
                "groupClaimName": "g", "roleClaimName": "r", "groupEntityType": "Team",
                "serverName": "fetch"},
                "audit": {"enabled": true}}}"#,
        )
        .unwrap();
        let auth = file.auth.unwrap();
        assert_eq!(auth.oidc.as_ref().unwrap().leeway_seconds, Some(5));
        assert_eq!(
            auth.oidc.as_ref().unwrap().jwks_auth_token_path.as_deref(),
            Some("/var/run/secrets/token")
        );
        assert_eq!(
            auth.authz.as_ref().unwrap().server_name.as_deref(),
            Some("fetch")
        );
        let ok = Config {
            command: vec!["srv".into()],
            auth: auth.clone(),
            ..Config::default()
        };
        ok.validate().unwrap();
        assert!(serde_json::from_str::<FileConfig>(
            r#"{"auth": {"oidc": {"issuer": "x", "jwks": "y"}}}"#
        )
        .is_err());
        let oidc = auth.oidc.clone().unwrap();
        let rows: Vec<(AuthConfig, &str)> = vec![
            (
                AuthConfig {
                    oidc: None,
                    ..auth.clone()
                },
                "authz needs oidc",
            ),
            (
                AuthConfig {
                    authz: Some(AuthzConfig {
                        policies: vec!["permit(principal action, resource);".into()],
                        ..AuthzConfig::default()
                    }),
                    ..auth.clone()
                },
                "policy 0 does not parse",
            ),
            (
                AuthConfig {
                    authz: Some(AuthzConfig::default()),
                    ..auth.clone()
                },
                "authz.policies is empty",
            ),
            (
                AuthConfig {
                    oidc: Some(OidcConfig {
                        issuer: "idp.example.com".into(),
                        ..oidc.clone()
                    }),
                    ..auth.clone()
                },
                "oidc.issuer",
            ),
            (
                AuthConfig {
                    oidc: Some(OidcConfig {
                        introspection_url: None,
                        ..oidc.clone()
                    }),
                    ..auth.clone()
                },
                "oidc.clientId is set but oidc.introspectionUrl is not",
            ),
            (
                AuthConfig {
                    oidc: Some(OidcConfig {
                        ca_bundle: Some(" ".into()),
                        ..oidc.clone()
                    }),
                    ..auth.clone()
                },
                "oidc.caBundle is empty",
            ),
            (
                AuthConfig {
                    oidc: Some(OidcConfig {
                        jwks_url: Some("http://idp.example.com/jwks".into()),
                        ..oidc.clone()
                    }),
                    ..auth.clone()
                },
                "oidc.jwksAuthTokenPath is sent as a bearer token, which needs https",
            ),
            (
                AuthConfig {
                    oidc: Some(OidcConfig {
                        issuer: "http://idp.example.com".into(),
                        jwks_url: None,
                        ..oidc.clone()
                    }),
                    ..auth.clone()
                },
                "oidc.jwksAuthTokenPath is sent as a bearer token, which needs https",
            ),
        ];
        for (auth, message) in rows {
            let cfg = Config {
                command: vec!["srv".into()],
                auth,
                ..Config::default()
            };
            let err = cfg.validate().expect_err(message).to_string();
            assert!(err.contains(message), "{message}: {err}");
        }
    }

    /// `auth.outgoing` in the shape the operator renders, and what cannot run, by field.
    #[test]
    fn outgoing_credentials_are_read_and_checked() {
        let file: FileConfig = serde_json::from_str(
            r#"{"transport": "streamable-http", "target": "http://127.0.0.1:8080/mcp",
                "headersFromEnv": {"X-Api-Key": "API_KEY"},
                "auth": {"oidc": {"issuer": "https://idp.example.com"},
                "outgoing": {"tokenExchange": {"tokenUrl": "https://idp.example.com/token",
                "clientId": "bridge", "clientSecretEnv": "EXCHANGE_SECRET", "audience": "backend",
                "scopes": ["read", "write"], "subjectTokenType": "urn:ietf:params:oauth:token-type:access_token",
                "externalTokenHeaderName": "X-Upstream-Token"}}}}"#,
        )
        .unwrap();
        let auth = file.auth.unwrap();
        let exchange = auth
            .outgoing
            .as_ref()
            .and_then(|o| o.token_exchange.clone())
            .unwrap();
        assert_eq!(exchange.scopes, Some(vec!["read".into(), "write".into()]));
        assert_eq!(
            exchange.external_token_header_name.as_deref(),
            Some("X-Upstream-Token")
        );
        let http = Config {
            transport: Transport::StreamableHttp,
            target: file.target.clone(),
            headers_from_env: file.headers_from_env.clone().unwrap(),
            auth: auth.clone(),
            ..Config::default()
        };
        http.validate().unwrap();
        let bearer = OutgoingConfig {
            bearer_token_env: Some("TOKEN".into()),
            token_exchange: None,
        };
        let with_exchange = |f: fn(&mut TokenExchangeConfig)| {
            let mut e = exchange.clone();
            f(&mut e);
            AuthConfig {
                outgoing: Some(OutgoingConfig {
                    bearer_token_env: None,
                    token_exchange: Some(e),
                }),
                ..auth.clone()
            }
        };
        let stdio = |c: Config| Config {
            transport: Transport::Stdio,
            target: None,
            command: vec!["srv".into()],
            ..c
        };
        let rows: Vec<(Config, &str)> = vec![
            (
                Config {
                    auth: AuthConfig {
                        outgoing: Some(OutgoingConfig {
                            token_exchange: Some(exchange.clone()),
                            ..bearer.clone()
                        }),
                        ..auth.clone()
                    },
                    ..http.clone()
                },
                "auth: outgoing.bearerTokenEnv and outgoing.tokenExchange exclude each other",
            ),
            (
                Config {
                    auth: AuthConfig {
                        oidc: None,
                        ..auth.clone()
                    },
                    ..http.clone()
                },
                "auth: outgoing.tokenExchange needs oidc",
            ),
            (
                Config {
                    auth: with_exchange(|e| e.token_url = "idp.example.com/token".into()),
                    ..http.clone()
                },
                "outgoing.tokenExchange.tokenUrl \"idp.example.com/token\" is not an http(s) URL",
            ),
            (
                Config {
                    auth: with_exchange(|e| e.subject_token_type = Some("saml2".into())),
                    ..http.clone()
                },
                "outgoing.tokenExchange.subjectTokenType \"saml2\"",
            ),
            (
                Config {
                    auth: with_exchange(|e| e.client_id = None),
                    ..http.clone()
                },
                "outgoing.tokenExchange.clientSecretEnv is set but outgoing.tokenExchange.clientId is not",
            ),
            (
                Config {
                    auth: with_exchange(|e| {
                        e.external_token_header_name = Some("X Token".into())
                    }),
                    ..http.clone()
                },
                "auth.outgoing.tokenExchange.externalTokenHeaderName[\"X Token\"]: not a valid HTTP header name",
            ),
            (
                Config {
                    auth: AuthConfig {
                        outgoing: Some(OutgoingConfig {
                            bearer_token_env: Some("A=B".into()),
                            token_exchange: None,
                        }),
                        ..AuthConfig::default()
                    },
                    ..http.clone()
                },
                "outgoing.bearerTokenEnv \"A=B\" is not an environment variable name",
            ),
            (
                stdio(Config {
                    headers: [("X-Tenant".to_string(), "acme".to_string())].into(),
                    ..Config::default()
                }),
                "headers is set but the transport is stdio",
            ),
            (
                stdio(Config {
                    headers_from_env: http.headers_from_env.clone(),
                    ..Config::default()
                }),
                "headersFromEnv is set but the transport is stdio",
            ),
            (
                stdio(Config {
                    auth: AuthConfig {
                        outgoing: Some(bearer.clone()),
                        ..AuthConfig::default()
                    },
                    ..Config::default()
                }),
                "auth.outgoing.bearerTokenEnv is set but the transport is stdio",
            ),
            (
                stdio(http.clone()),
                "headersFromEnv is set but the transport is stdio",
            ),
        ];
        for (cfg, message) in rows {
            let err = cfg.validate().expect_err(message).to_string();
            assert!(err.contains(message), "{message}: {err}");
        }
        // A static bearer token for an SSE backend needs no oidc.
        Config {
            transport: Transport::Sse,
            target: Some("http://127.0.0.1:8080/sse".into()),
            auth: AuthConfig {
                outgoing: Some(bearer),
                ..AuthConfig::default()
            },
            ..Config::default()
        }
        .validate()
        .unwrap();
    }

    /// Bad overrides stop the bridge at start-up with a message that names the tools.
    #[test]
    fn bad_tool_overrides_are_config_errors() {
        let cases = [
            (
                r#"{"echo": {"name": ""}}"#,
                r#"toolOverrides["echo"].name is empty"#,
            ),
            (
                r#"{"a": {"name": "x"}, "b": {"name": "x"}}"#,
                r#"renames both "a" and "b" to "x""#,
            ),
            (
                r#"{"a": {"description": "kept"}, "b": {"name": "a"}}"#,
                r#"renames "b" to "a", the name of another tool that keeps it"#,
            ),
            (r#"{"": {"name": "x"}}"#, "an empty tool name"),
        ];
        for (overrides, message) in cases {
            let cfg = Config {
                command: vec!["srv".into()],
                tool_overrides: serde_json::from_str(overrides).unwrap(),
                ..Config::default()
            };
            let err = cfg.validate().expect_err(overrides).to_string();
            assert!(err.contains(message), "{overrides}: {err}");
        }
        let cfg = Config {
            command: vec!["srv".into()],
            tools: vec![" ".into()],
            ..Config::default()
        };
        assert_eq!(
            cfg.validate().unwrap_err().to_string(),
            "the tools allow-list has an empty name"
        );
    }
}
