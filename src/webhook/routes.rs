//! The route table: one validating and one mutating path per served kind and version.
//!
//! Both the HTTP router and the webhook configurations (the chart's data) are generated from
//! [`crate::api::SERVED`] through [`routes`], so a path can never drift between the two.

use crate::api::{ServedKind, GROUP, SERVED};

/// Which of the two admission webhooks a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    /// Defaulting: answers with a JSON Patch.
    Mutate,
    /// Validation: answers allowed or denied with field causes.
    Validate,
}

impl WebhookKind {
    /// The path prefix and metric label: `mutate` or `validate`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Mutate => "mutate",
            WebhookKind::Validate => "validate",
        }
    }

    /// The one-letter prefix of the webhook's name: `m<kind>.<group>` / `v<kind>.<group>`.
    pub fn name_prefix(self) -> &'static str {
        match self {
            WebhookKind::Mutate => "m",
            WebhookKind::Validate => "v",
        }
    }
}

/// One admission route: a kind at one served version, for one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub served: &'static ServedKind,
    pub version: &'static str,
    pub webhook: WebhookKind,
}

impl Route {
    /// `/validate-toolhive-stacklok-dev-v1beta1-mcpserver` (the controller-runtime convention,
    /// which upstream ToolHive's manifests use too).
    pub fn path(&self) -> String {
        admission_path(self.webhook, self.served.kind, self.version)
    }

    /// The kind, as in `request.kind.kind`.
    pub fn kind(&self) -> &'static str {
        self.served.kind
    }
}

/// The path of `webhook` for `kind` at `version`.
pub fn admission_path(webhook: WebhookKind, kind: &str, version: &str) -> String {
    format!(
        "/{}-{}-{}-{}",
        webhook.as_str(),
        GROUP.replace('.', "-"),
        version,
        kind.to_ascii_lowercase()
    )
}

/// The name of `webhook` for `kind` in its configuration: `vmcpserver.toolhive.stacklok.dev`.
pub fn webhook_name(webhook: WebhookKind, kind: &str) -> String {
    format!(
        "{}{}.{}",
        webhook.name_prefix(),
        kind.to_ascii_lowercase(),
        GROUP
    )
}

/// Every admission route: each served kind, at each served version, for both webhooks.
pub fn routes() -> Vec<Route> {
    let mut out = Vec::with_capacity(SERVED.len() * 4);
    for served in SERVED {
        for version in served.versions {
            for webhook in [WebhookKind::Validate, WebhookKind::Mutate] {
                out.push(Route {
                    served,
                    version,
                    webhook,
                });
            }
        }
    }
    out
}

/// The path of the CRD conversion webhook (served only when a conversion handler is given).
pub const CONVERT_PATH: &str = "/convert";
/// The benchmark floor route (see `benches/webhook`), mounted only when asked for.
pub const FLOOR_PATH: &str = "/benchmark-floor";
/// Liveness: the process serves HTTP.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness: a certificate is loaded, the TLS listener is bound, and we are not shutting down.
pub const READYZ_PATH: &str = "/readyz";
/// Prometheus metrics (plain-HTTP port only).
pub const METRICS_PATH: &str = "/metrics";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_controller_runtime_convention() {
        assert_eq!(
            admission_path(WebhookKind::Validate, "MCPServer", "v1beta1"),
            "/validate-toolhive-stacklok-dev-v1beta1-mcpserver"
        );
        assert_eq!(
            webhook_name(WebhookKind::Mutate, "MCPToolConfig"),
            "mmcptoolconfig.toolhive.stacklok.dev"
        );
    }

    #[test]
    fn every_served_kind_and_version_has_both_webhooks() {
        let all = routes();
        let expected: usize = SERVED.iter().map(|s| s.versions.len() * 2).sum();
        assert_eq!(all.len(), expected);
        let mut paths: Vec<String> = all.iter().map(Route::path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), expected, "paths must be unique");
    }
}
