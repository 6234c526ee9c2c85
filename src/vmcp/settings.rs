//! The runtime's effective settings: the rendered [`FileConfig`] checked once at start-up,
//! defaults filled in, every error naming the field (`backends[1].url: ...`).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use sha2::Digest;

use super::config::{FileConfig, VMCP_PORT};
use crate::bridge::config::ToolOverride;
use crate::bridge::filter::ToolPolicy;

/// How tool names of different backends are kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Every tool (or, `only_conflicts`, every clashing tool) renamed `format(workload) + name`.
    Prefix {
        format: String,
        only_conflicts: bool,
    },
    /// Backend indices, highest priority first: the first that offers a name keeps it.
    Priority(Vec<usize>),
    /// Only the overrides rename; a name still offered twice is left out (see docs/vmcp.md).
    Manual,
}

/// What clients may see of one backend's tools.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// No tool of this backend is advertised.
    pub exclude_all: bool,
    /// Allow-list of the names after overrides; `None`: all.
    pub filter: Option<HashSet<String>>,
    /// Keyed by the backend's own tool name.
    pub overrides: BTreeMap<String, ToolOverride>,
}

/// One backend, checked.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub name: String,
    pub kind: Option<String>,
    pub url: hyper::Uri,
    /// The URL as configured, for the status (userinfo is refused, so it holds no secret).
    pub url_text: String,
    pub sse: bool,
    pub allow_private: bool,
    pub ca_bundle: Option<String>,
    /// Plain headers, those from the environment and the bearer token, resolved (sensitive).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeout: Duration,
    pub selection: Selection,
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub listen: SocketAddr,
    pub backends: Vec<BackendSettings>,
    pub strategy: Strategy,
    pub exclude_all_tools: bool,
    pub default_timeout: Duration,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub unhealthy_threshold: u32,
    /// `partialFailureMode: fail`.
    pub fail_on_partial: bool,
    pub aggregate_deadline: Duration,
    pub breaker_enabled: bool,
    pub breaker_threshold: u32,
    pub breaker_open: Duration,
    /// The SHA-256 (hex) of the file's bytes.
    pub config_hash: String,
    /// The incoming `auth` block, for the bridge's guard.
    pub auth: crate::bridge::config::AuthConfig,
}

/// Reads and checks the config file. `env` gives environment variables (tests pass their own).
pub fn load(
    path: &Path,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<Settings> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the config file {}: {e}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let file: FileConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        anyhow::anyhow!(
            "the config file {} is not valid: {at}: {}",
            path.display(),
            e.inner()
        )
    })?;
    let hash = hex::encode(sha2::Sha256::digest(&bytes));
    resolve(file, hash, env)
}

/// Checks `file` and fills in the defaults.
pub fn resolve(
    file: FileConfig,
    config_hash: String,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<Settings> {
    if file.name.trim().is_empty() {
        anyhow::bail!("name: must not be empty");
    }
    let listen = match &file.listen {
        Some(l) => {
            crate::bridge::config::parse_listen(l).map_err(|e| anyhow::anyhow!("listen: {e}"))?
        }
        None => SocketAddr::from(([0, 0, 0, 0], VMCP_PORT)),
    };
    let op = &file.operational;
    let ms = Duration::from_millis;
    let positive = |field: &str, v: Option<u64>, default: u64| -> anyhow::Result<Duration> {
        match v {
            Some(0) => anyhow::bail!("operational.{field}: must be more than 0"),
            Some(v) => Ok(ms(v)),
            None => Ok(ms(default)),
        }
    };
    let default_timeout = positive("defaultTimeoutMs", op.default_timeout_ms, 30_000)?;
    let mut names = HashSet::new();
    let mut backends = Vec::with_capacity(file.backends.len());
    for (i, b) in file.backends.iter().enumerate() {
        let at = format!("backends[{i}]");
        if b.name.trim().is_empty() {
            anyhow::bail!("{at}.name: must not be empty");
        }
        if !names.insert(b.name.clone()) {
            anyhow::bail!("{at}.name: {:?} is listed twice", b.name);
        }
        backends.push(backend(&at, b, default_timeout, &env)?);
    }
    let backend_names: Vec<String> = backends.iter().map(|b| b.name.clone()).collect();
    let index_of = |name: &str| backend_names.iter().position(|b| b == name);
    let agg = &file.aggregation;
    for (i, w) in agg.tools.iter().flatten().enumerate() {
        let at = format!("aggregation.tools[{i}]");
        let Some(b) = index_of(&w.workload) else {
            anyhow::bail!("{at}.workload: {:?} is not a backend", w.workload);
        };
        let overrides = w.overrides.clone().unwrap_or_default();
        let filter: Vec<String> = w.filter.clone().unwrap_or_default();
        ToolPolicy::new(&filter, &overrides).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let sel = &mut backends[b].selection;
        sel.exclude_all = w.exclude_all.unwrap_or(false);
        sel.filter = (!filter.is_empty()).then(|| filter.into_iter().collect());
        sel.overrides = overrides;
    }
    let deny_by_default = match agg.default_tool_visibility.as_deref() {
        None | Some("allow") => false,
        Some("deny") => true,
        Some(other) => {
            anyhow::bail!("aggregation.defaultToolVisibility: {other:?} is not allow or deny")
        }
    };
    if deny_by_default {
        let listed: HashSet<&str> = agg
            .tools
            .iter()
            .flatten()
            .map(|w| w.workload.as_str())
            .collect();
        for b in &mut backends {
            if !listed.contains(b.name.as_str()) {
                b.selection.exclude_all = true;
            }
        }
    }
    let strategy = match agg.conflict_resolution.as_deref() {
        None | Some("prefix") => {
            let format = agg
                .prefix_format
                .clone()
                .unwrap_or_else(|| "{workload}_".into());
            if !format.contains("{workload}") {
                anyhow::bail!("aggregation.prefixFormat: {format:?} must contain {{workload}}");
            }
            Strategy::Prefix {
                format,
                only_conflicts: agg.prefix_only_conflicts.unwrap_or(false),
            }
        }
        Some("priority") => {
            let mut order = Vec::new();
            for (i, name) in agg.priority_order.iter().flatten().enumerate() {
                let Some(b) = index_of(name) else {
                    anyhow::bail!("aggregation.priorityOrder[{i}]: {name:?} is not a backend");
                };
                if !order.contains(&b) {
                    order.push(b);
                }
            }
            // Backends not listed come after, by name (the file lists them sorted, but the
            // order must not depend on that).
            let mut rest: Vec<usize> = (0..backends.len()).filter(|b| !order.contains(b)).collect();
            rest.sort_by(|a, b| backend_names[*a].cmp(&backend_names[*b]));
            order.extend(rest);
            Strategy::Priority(order)
        }
        Some("manual") => Strategy::Manual,
        Some(other) => anyhow::bail!(
            "aggregation.conflictResolution: {other:?} is not prefix, priority or manual"
        ),
    };
    let fail_on_partial = match op.partial_failure_mode.as_deref() {
        None | Some("best_effort") => false,
        Some("fail") => true,
        Some(other) => {
            anyhow::bail!("operational.partialFailureMode: {other:?} is not best_effort or fail")
        }
    };
    let auth = file.auth.clone().unwrap_or_default();
    if auth.outgoing.is_some() {
        anyhow::bail!("auth.outgoing: set credentials per backend (backends[].bearerTokenEnv)");
    }
    let count = |field: &str, v: Option<u32>, default: u32| -> anyhow::Result<u32> {
        match v {
            Some(0) => anyhow::bail!("operational.{field}: must be at least 1"),
            Some(v) => Ok(v),
            None => Ok(default),
        }
    };
    Ok(Settings {
        name: file.name.clone(),
        listen,
        strategy,
        exclude_all_tools: agg.exclude_all_tools.unwrap_or(false),
        default_timeout,
        health_interval: positive("healthCheckIntervalMs", op.health_check_interval_ms, 30_000)?,
        health_timeout: positive("healthCheckTimeoutMs", op.health_check_timeout_ms, 10_000)?,
        unhealthy_threshold: count("unhealthyThreshold", op.unhealthy_threshold, 3)?,
        fail_on_partial,
        aggregate_deadline: positive("aggregateDeadlineMs", op.aggregate_deadline_ms, 5_000)?,
        breaker_enabled: op.circuit_breaker_enabled.unwrap_or(true),
        breaker_threshold: count("circuitFailureThreshold", op.circuit_failure_threshold, 5)?,
        breaker_open: positive("circuitOpenMs", op.circuit_open_ms, 60_000)?,
        config_hash,
        auth,
        backends,
    })
}

fn backend(
    at: &str,
    b: &super::config::Backend,
    default_timeout: Duration,
    env: &impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<BackendSettings> {
    let url: hyper::Uri = b
        .url
        .parse()
        .map_err(|e| anyhow::anyhow!("{at}.url: {:?} is not a URL: {e}", b.url))?;
    match url.scheme_str() {
        Some("http" | "https") => {}
        _ => anyhow::bail!("{at}.url: {:?} must be http:// or https://", b.url),
    }
    let Some(authority) = url.authority() else {
        anyhow::bail!("{at}.url: {:?} has no host", b.url);
    };
    if authority.as_str().contains('@') {
        anyhow::bail!("{at}.url: credentials in the URL are refused (use bearerTokenEnv)");
    }
    let sse = match b.transport.as_deref() {
        None | Some("streamable-http") | Some("streamableHttp") => false,
        Some("sse") => true,
        Some(other) => anyhow::bail!("{at}.transport: {other:?} is not streamable-http or sse"),
    };
    // The bridge's reader of the same three fields, so both name the same errors.
    let mut outgoing = crate::bridge::config::Config {
        headers: b.headers.clone().unwrap_or_default(),
        headers_from_env: b.headers_from_env.clone().unwrap_or_default(),
        ..Default::default()
    };
    if let Some(var) = &b.bearer_token_env {
        outgoing.auth.outgoing = Some(crate::bridge::config::OutgoingConfig {
            bearer_token_env: Some(var.clone()),
            token_exchange: None,
        });
    }
    let headers = crate::bridge::outgoing::added_headers_with(&outgoing, env).map_err(|e| {
        anyhow::anyhow!(
            "{at}: {}",
            e.to_string()
                .replace("auth.outgoing.bearerTokenEnv", "bearerTokenEnv")
        )
    })?;
    let timeout = match b.timeout_ms {
        Some(0) => anyhow::bail!("{at}.timeoutMs: must be more than 0"),
        Some(v) => Duration::from_millis(v),
        None => default_timeout,
    };
    Ok(BackendSettings {
        name: b.name.clone(),
        kind: b.kind.clone(),
        url,
        url_text: b.url.clone(),
        sse,
        allow_private: b.allow_private_endpoint.unwrap_or(false),
        ca_bundle: b.ca_bundle.clone(),
        headers,
        timeout,
        selection: Selection::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> anyhow::Result<Settings> {
        let file: FileConfig = serde_json::from_value(v).unwrap();
        resolve(file, "h".into(), |var| {
            (var == "TOKEN").then(|| "t0k".into())
        })
    }

    #[test]
    fn errors_name_the_field() {
        let base = |b: serde_json::Value, extra: serde_json::Value| {
            let mut v = json!({"name": "v", "backends": [b]});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse(v).map(|_| ()).unwrap_err().to_string()
        };
        let ok = json!({"name": "a", "url": "http://a:1/mcp"});
        for (b, extra, want) in [
            (
                json!({"name": "a", "url": "ftp://x"}),
                json!({}),
                "backends[0].url",
            ),
            (
                json!({"name": "a", "url": "http://u:p@x/mcp"}),
                json!({}),
                "credentials",
            ),
            (
                json!({"name": "a", "url": "http://x/", "bearerTokenEnv": "NOPE"}),
                json!({}),
                "backends[0]: bearerTokenEnv: the environment variable NOPE",
            ),
            (
                ok.clone(),
                json!({"aggregation": {"conflictResolution": "merge"}}),
                "aggregation.conflictResolution",
            ),
            (
                ok.clone(),
                json!({"aggregation": {"conflictResolution": "priority", "priorityOrder": ["zz"]}}),
                "aggregation.priorityOrder[0]",
            ),
            (
                ok.clone(),
                json!({"aggregation": {"tools": [{"workload": "b"}]}}),
                "aggregation.tools[0].workload",
            ),
            (
                ok.clone(),
                json!({"aggregation": {"prefixFormat": "x_"}}),
                "aggregation.prefixFormat",
            ),
            (
                ok.clone(),
                json!({"operational": {"aggregateDeadlineMs": 0}}),
                "operational.aggregateDeadlineMs",
            ),
            (
                ok.clone(),
                json!({"operational": {"partialFailureMode": "sometimes"}}),
                "operational.partialFailureMode",
            ),
        ] {
            let err = base(b, extra);
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_from_the_environment_and_hidden() {
        let s = parse(json!({"name": "v", "backends": [
            {"name": "a", "url": "http://a/mcp", "bearerTokenEnv": "TOKEN"}]}))
        .unwrap();
        let (name, value) = &s.backends[0].headers[0];
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("authorization", "Bearer t0k")
        );
        assert!(value.is_sensitive());
        assert!(!format!("{:?}", s.backends[0]).contains("t0k"));
    }

    #[test]
    fn priority_lists_unlisted_backends_after_by_name() {
        let s = parse(json!({"name": "v", "backends": [
            {"name": "c", "url": "http://c/"}, {"name": "a", "url": "http://a/"},
            {"name": "b", "url": "http://b/"}],
            "aggregation": {"conflictResolution": "priority", "priorityOrder": ["b"]}}))
        .unwrap();
        assert_eq!(s.strategy, Strategy::Priority(vec![2, 1, 0]));
    }
}
