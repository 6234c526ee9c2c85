//! Pure admission: defaulting and validation of our kinds, with field errors.
//!
//! Three doors open onto these functions: the webhook handlers, `mcp-operator check`, and the
//! reconcilers' own re-check. None of them does I/O here.

pub mod field;

pub use field::{ErrorType, FieldError, FieldErrors, Path};

use serde_json::Value;

/// The admission operation, as in `AdmissionRequest.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// What admission concluded about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The object with every default filled in (at the object's own apiVersion).
    pub defaulted: Value,
    /// `Warning:` lines for the user; never a reason to refuse.
    pub warnings: Vec<String>,
    /// Why the object is refused; empty when allowed.
    pub errors: FieldErrors,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Why an object could not be admitted at all (before any field was looked at).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmitError {
    #[error("apiVersion {api_version:?} kind {kind:?} is not served by mcp-operator")]
    NotServed { api_version: String, kind: String },
    #[error("object has no apiVersion and kind")]
    NoTypeMeta,
}

/// The kind of object a spec points at, for cross-object checks that need a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    Secret,
    ConfigMap,
    MCPToolConfig,
    MCPGroup,
}

/// A same-namespace reference found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub kind: RefKind,
    pub name: String,
    /// The key inside a Secret or ConfigMap that must exist, when the spec names one.
    pub key: Option<String>,
    /// Where in the spec the reference stands, e.g. `spec.secrets[0]`.
    pub field: String,
}

/// Defaults and validates one object of our group (any served version).
///
/// `old` is the stored object on UPDATE. On DELETE nothing is checked.
pub fn admit(obj: &Value, old: Option<&Value>, op: Operation) -> Result<Verdict, AdmitError> {
    // Filled in by the admission core; this signature is the contract of every door.
    let _ = (old, op);
    Ok(Verdict {
        defaulted: obj.clone(),
        warnings: Vec::new(),
        errors: FieldErrors::default(),
    })
}

/// The same-namespace objects a spec points at (Secrets, ConfigMaps, MCPToolConfig, MCPGroup).
pub fn references(obj: &Value) -> Vec<Reference> {
    let _ = obj;
    Vec::new()
}
