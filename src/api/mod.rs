//! The CRD types of `toolhive.stacklok.dev`, at every served version. No I/O here.

pub mod auth;
pub mod crd;
pub mod schema;
pub mod shared;
pub mod telemetry;
pub mod v1alpha1;
pub mod v1beta1;

/// The API group of every kind we serve.
pub const GROUP: &str = "toolhive.stacklok.dev";

/// One kind we serve: its name, plural, and the versions it is served at (storage first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedKind {
    pub kind: &'static str,
    pub plural: &'static str,
    pub versions: &'static [&'static str],
}

/// Every kind of our group, with its served versions; `v1beta1` is the storage version.
pub const SERVED: &[ServedKind] = &[
    ServedKind {
        kind: "MCPServer",
        plural: "mcpservers",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPRegistry",
        plural: "mcpregistries",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPRemoteProxy",
        plural: "mcpremoteproxies",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPGroup",
        plural: "mcpgroups",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPToolConfig",
        plural: "mcptoolconfigs",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPOIDCConfig",
        plural: "mcpoidcconfigs",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPAuthzConfig",
        plural: "mcpauthzconfigs",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPExternalAuthConfig",
        plural: "mcpexternalauthconfigs",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPTelemetryConfig",
        plural: "mcptelemetryconfigs",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "VirtualMCPServer",
        plural: "virtualmcpservers",
        versions: &["v1beta1", "v1alpha1"],
    },
    ServedKind {
        kind: "MCPServerEntry",
        plural: "mcpserverentries",
        versions: &["v1beta1", "v1alpha1"],
    },
];

/// The stash: what one served version cannot express is kept in annotations under these
/// prefixes, so a round trip through the other version loses nothing. They are part of the
/// stored objects' shape, which is why they live with the types (admission checks them,
/// conversion writes them). On a v1beta1 object: fields of its v1alpha1 form.
pub const ALPHA_STASH_PREFIX: &str = "toolhive.stacklok.dev/v1alpha1-";
/// On a v1alpha1 object: fields of its v1beta1 form.
pub const BETA_STASH_PREFIX: &str = "toolhive.stacklok.dev/v1beta1-";
/// Every field the stash may hold, after either prefix: the stash is exactly these keys.
/// Other annotations that merely start with a prefix (`toolhive.stacklok.dev/v1alpha1-owner`)
/// are the user's, and pass through conversion untouched like any other annotation.
pub const STASH_FIELDS: &[&str] = &[
    // MCPServer and MCPRemoteProxy, v1alpha1 only (groupRef: that it was written as an object).
    "groupRef",
    "remoteUrl",
    "oidcConfig",
    "telemetry",
    "port",
    "targetPort",
    // Their v1beta1 spellings, kept beside the old ones when both were set.
    "proxyPort",
    "mcpPort",
    // MCPRemoteProxy, v1beta1 only (allowPrivateEndpoint: kept by older releases).
    "allowPrivateEndpoint",
    "podTemplateSpec",
    "replicas",
    // MCPRegistry, both ways.
    "source",
    "syncPolicy",
    "filter",
    "enforceServers",
    "registries",
    "databaseConfig",
    "authConfig",
    "sources",
    "telemetryConfig",
    "configYAML",
    "volumes",
    "volumeMounts",
    "imagePullSecrets",
    "pgpassSecretRef",
    "status.phase",
    // MCPToolConfig and MCPExternalAuthConfig, v1alpha1 only.
    "status.referencingServers",
    // MCPOIDCConfig, MCPExternalAuthConfig and MCPTelemetryConfig, v1alpha1 only (ToolHive
    // v0.15 – v0.21).
    "status.referencingWorkloads",
    // VirtualMCPServer, v1alpha1 only: the group named in `config` alone, the inline OIDC
    // block, and the outgoing-auth entries spelled `external_auth_config_ref`.
    "config.groupRef",
    "incomingAuth.oidcConfig",
    "outgoingAuth.snakeCaseTypes",
];

/// True for an annotation key of the stash (either prefix, a field of [`STASH_FIELDS`]).
pub fn is_stash_key(key: &str) -> bool {
    stash_field(key).is_some()
}

/// The stashed field an annotation key stands for, if it is a stash key.
pub fn stash_field(key: &str) -> Option<&str> {
    let field = key
        .strip_prefix(ALPHA_STASH_PREFIX)
        .or_else(|| key.strip_prefix(BETA_STASH_PREFIX))?;
    STASH_FIELDS.contains(&field).then_some(field)
}

/// A stashed field that was absent (as opposed to one whose value was `null`).
pub const ABSENT: &str = "<absent>";

/// The storage version of every kind.
pub const STORAGE_VERSION: &str = "v1beta1";

/// Annotation holding a v1beta1 MCPRegistry's `configYAML` on its v1alpha1 form, where the
/// structured `source` cannot express it.
pub const STASH_REGISTRY_CONFIG: &str = "toolhive.stacklok.dev/v1beta1-configYAML";
