//! The reconcilers of MCPOIDCConfig, MCPAuthzConfig and MCPExternalAuthConfig: who may call
//! (`oidcConfigRef`), what they may call (`authzConfigRef`) and the credentials towards the
//! backend (`externalAuthConfigRef`). Their status (`configHash`, `Valid`, `Referenced`) and
//! held deletion are those of every shared config kind ([`super::shared_config`]): a deleted
//! config leaves its users held at `...NotFound`, never serving without it.
//!
//! An MCPExternalAuthConfig of a type this operator does not build (`embeddedAuthServer`,
//! `awsSts`, ...) is `Valid` when its spec is (the schema accepts it); the workloads that use it
//! say the type is not supported and are held ([`super::auth_refs`]).

use super::frame::Settings;
use super::metrics::ControllerMetrics;
use super::shared_config;
use super::slim::Subscription;
use crate::api::v1beta1::{MCPAuthzConfig, MCPExternalAuthConfig, MCPOIDCConfig};
use kube::Client;

/// Upstream's finalizer names, so an object moved between the two operators keeps its hold.
pub const OIDC_FINALIZER: &str = "mcpoidcconfig.toolhive.stacklok.dev/finalizer";
pub const AUTHZ_FINALIZER: &str = "mcpauthzconfig.toolhive.stacklok.dev/finalizer";
pub const EXTERNAL_AUTH_FINALIZER: &str = "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer";

/// Upstream's `Valid` reasons for MCPOIDCConfig and MCPAuthzConfig (MCPExternalAuthConfig
/// keeps the shared `ValidationSucceeded` / `ValidationFailed`).
const CONFIG_VALID_REASONS: (&str, &str) = ("ConfigValid", "ConfigInvalid");

shared_config::shared_config!(
    MCPOIDCConfig,
    OIDC_FINALIZER,
    oidc_config_ref,
    CONFIG_VALID_REASONS
);
shared_config::shared_config!(
    MCPAuthzConfig,
    AUTHZ_FINALIZER,
    authz_config_ref,
    CONFIG_VALID_REASONS
);
shared_config::shared_config!(
    MCPExternalAuthConfig,
    EXTERNAL_AUTH_FINALIZER,
    external_auth_config_ref
);

/// Runs the three controllers over `namespace` (all when `None`) until dropped, each with its
/// own subscription to the shared workload watches (`[oidc, authz, external auth]`).
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    [oidc, authz, external]: [Subscription; 3],
) {
    let c = || {
        (
            client.clone(),
            namespace.clone(),
            settings.clone(),
            metrics.clone(),
        )
    };
    let ((c1, n1, s1, m1), (c2, n2, s2, m2), (c3, n3, s3, m3)) = (c(), c(), c());
    futures::join!(
        shared_config::run::<MCPOIDCConfig>(c1, n1, s1, m1, oidc),
        shared_config::run::<MCPAuthzConfig>(c2, n2, s2, m2, authz),
        shared_config::run::<MCPExternalAuthConfig>(c3, n3, s3, m3, external),
    );
}
