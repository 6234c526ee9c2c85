//! The CRD types of `toolhive.stacklok.dev`, at every served version. No I/O here.

pub mod crd;
pub mod schema;
pub mod shared;
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
];

/// The stash: what one served version cannot express is kept in annotations under these
/// prefixes, so a round trip through the other version loses nothing. They are part of the
/// stored objects' shape, which is why they live with the types (admission checks them,
/// conversion writes them). On a v1beta1 object: fields of its v1alpha1 form.
pub const ALPHA_STASH_PREFIX: &str = "toolhive.stacklok.dev/v1alpha1-";
/// On a v1alpha1 object: fields of its v1beta1 form.
pub const BETA_STASH_PREFIX: &str = "toolhive.stacklok.dev/v1beta1-";
/// A stashed field that was absent (as opposed to one whose value was `null`).
pub const ABSENT: &str = "<absent>";

/// The storage version of every kind.
pub const STORAGE_VERSION: &str = "v1beta1";

/// Annotation holding a v1beta1 MCPRegistry's `configYAML` on its v1alpha1 form, where the
/// structured `source` cannot express it.
pub const STASH_REGISTRY_CONFIG: &str = "toolhive.stacklok.dev/v1beta1-configYAML";
