//! Cross-object checks: do the Secrets, ConfigMaps, MCPToolConfigs and MCPGroups a spec points
//! at exist in its namespace, and does a referenced Secret hold the named key?
//!
//! A missing object is only a warning: GitOps tools apply objects in any order, and a denial
//! would make a correct set of manifests fail depending on that order. A Secret that exists but
//! lacks the key is a denial: that is a typo that no later apply will fix.
//!
//! Lookups never make the webhook slow: each one is bounded by [`LOOKUP_TIMEOUT`], answers are
//! kept for a few seconds, and a failed or timed-out lookup degrades to a warning.

use crate::admission::{FieldError, FieldErrors, RefKind, Reference};
use crate::api::{GROUP, SERVED, STORAGE_VERSION};
use futures::future::BoxFuture;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest one lookup may take. The API server gives the whole review 5 s
/// (`timeoutSeconds`), and the answer must still be computed and sent after the lookups.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a found object's keys are reused.
pub const FOUND_TTL: Duration = Duration::from_secs(10);
/// How long "not found" is reused: short, so that applying the Secret right after its
/// consumer stops the warning quickly.
pub const NOT_FOUND_TTL: Duration = Duration::from_secs(2);
/// At most this many references of one object are checked; the rest are skipped with a warning.
pub const MAX_REFERENCES: usize = 64;
const MAX_CACHE_ENTRIES: usize = 4096;

/// What a lookup found: `None` when the object does not exist, else the keys of its data
/// (empty for kinds without keys). Values are never read into this type.
pub type Keys = Option<Arc<BTreeSet<String>>>;

/// Why a lookup could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Api(String),
}

/// Finds same-namespace objects by kind and name. Implemented with a kube client in production
/// and in memory in tests.
pub trait ObjectLookup: Send + Sync {
    fn keys<'a>(
        &'a self,
        kind: RefKind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Keys, LookupError>>;
}

fn kind_name(kind: RefKind) -> &'static str {
    match kind {
        RefKind::Secret => "Secret",
        RefKind::ConfigMap => "ConfigMap",
        RefKind::MCPToolConfig => "MCPToolConfig",
        RefKind::MCPGroup => "MCPGroup",
        RefKind::MCPOIDCConfig => "MCPOIDCConfig",
        RefKind::MCPAuthzConfig => "MCPAuthzConfig",
        RefKind::MCPExternalAuthConfig => "MCPExternalAuthConfig",
        RefKind::MCPTelemetryConfig => "MCPTelemetryConfig",
    }
}

/// The outcome of the cross-object checks of one object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CrossObjectFindings {
    pub warnings: Vec<String>,
    pub errors: FieldErrors,
    /// True when no lookup was configured and references went unchecked.
    pub skipped: bool,
}

/// Checks every reference of an object in `namespace`.
pub async fn check_references(
    references: &[Reference],
    namespace: &str,
    lookup: Option<&dyn ObjectLookup>,
) -> CrossObjectFindings {
    let mut findings = CrossObjectFindings::default();
    if references.is_empty() {
        return findings;
    }
    let Some(lookup) = lookup else {
        findings.skipped = true;
        findings.warnings.push(format!(
            "{} reference(s) to other objects were not checked: the webhook runs without a cluster connection",
            references.len()
        ));
        return findings;
    };
    let mut unique: Vec<&Reference> = Vec::new();
    for r in references {
        if !unique.contains(&r) {
            unique.push(r);
        }
    }
    if unique.len() > MAX_REFERENCES {
        findings.warnings.push(format!(
            "only the first {MAX_REFERENCES} of {} references were checked",
            unique.len()
        ));
        unique.truncate(MAX_REFERENCES);
    }
    let answers = futures::future::join_all(unique.iter().map(|r| async move {
        match tokio::time::timeout(LOOKUP_TIMEOUT, lookup.keys(r.kind, namespace, &r.name)).await {
            Ok(answer) => answer,
            Err(_) => Err(LookupError::Timeout(LOOKUP_TIMEOUT)),
        }
    }))
    .await;
    for (r, answer) in unique.iter().zip(answers) {
        let kind = kind_name(r.kind);
        match answer {
            Err(e) => findings.warnings.push(format!(
                "{}: could not check {kind} {:?}: {e}",
                r.field, r.name
            )),
            Ok(None) => findings.warnings.push(format!(
                "{}: {kind} {:?} does not exist in namespace {namespace:?} (yet)",
                r.field, r.name
            )),
            Ok(Some(keys)) => match (&r.key, r.kind) {
                (Some(key), RefKind::Secret) if !keys.contains(key) => {
                    findings.errors.push(FieldError::invalid(
                        r.field.clone(),
                        key.clone(),
                        format!("Secret {:?} has no key {key:?}", r.name),
                    ));
                }
                (Some(key), RefKind::ConfigMap) if !keys.contains(key) => {
                    findings.warnings.push(format!(
                        "{}: ConfigMap {:?} has no key {key:?} (yet)",
                        r.field, r.name
                    ))
                }
                _ => {}
            },
        }
    }
    findings
}

type CacheKey = (RefKind, String, String);

/// Looks objects up through the API server, with a short-lived cache.
pub struct KubeLookup {
    client: kube::Client,
    cache: Mutex<HashMap<CacheKey, (Instant, Keys)>>,
}

impl KubeLookup {
    pub fn new(client: kube::Client) -> Self {
        KubeLookup {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &CacheKey) -> Option<Keys> {
        let cache = self.cache.lock().ok()?;
        let (at, keys) = cache.get(key)?;
        let ttl = if keys.is_some() {
            FOUND_TTL
        } else {
            NOT_FOUND_TTL
        };
        (at.elapsed() < ttl).then(|| keys.clone())
    }

    fn remember(&self, key: CacheKey, keys: Keys) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.retain(|_, (at, _)| at.elapsed() < FOUND_TTL);
                if cache.len() >= MAX_CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(key, (Instant::now(), keys));
        }
    }

    async fn fetch(&self, kind: RefKind, namespace: &str, name: &str) -> Result<Keys, kube::Error> {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        use kube::api::{Api, ApiResource, DynamicObject};
        use kube::core::GroupVersionKind;
        let client = self.client.clone();
        let keys = match kind {
            RefKind::Secret => Api::<Secret>::namespaced(client, namespace)
                .get_opt(name)
                .await?
                .map(|s| {
                    let mut keys: BTreeSet<String> =
                        s.data.unwrap_or_default().into_keys().collect();
                    keys.extend(s.string_data.unwrap_or_default().into_keys());
                    keys
                }),
            RefKind::ConfigMap => Api::<ConfigMap>::namespaced(client, namespace)
                .get_opt(name)
                .await?
                .map(|c| {
                    let mut keys: BTreeSet<String> =
                        c.data.unwrap_or_default().into_keys().collect();
                    keys.extend(c.binary_data.unwrap_or_default().into_keys());
                    keys
                }),
            RefKind::MCPToolConfig
            | RefKind::MCPGroup
            | RefKind::MCPOIDCConfig
            | RefKind::MCPAuthzConfig
            | RefKind::MCPExternalAuthConfig
            | RefKind::MCPTelemetryConfig => {
                let kind = kind_name(kind);
                let plural = SERVED
                    .iter()
                    .find(|s| s.kind == kind)
                    .map(|s| s.plural)
                    .unwrap_or_default();
                let gvk = GroupVersionKind::gvk(GROUP, STORAGE_VERSION, kind);
                let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
                Api::<DynamicObject>::namespaced_with(client, namespace, &resource)
                    .get_metadata_opt(name)
                    .await?
                    .map(|_| BTreeSet::new())
            }
        };
        Ok(keys.map(Arc::new))
    }
}

impl ObjectLookup for KubeLookup {
    fn keys<'a>(
        &'a self,
        kind: RefKind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Keys, LookupError>> {
        Box::pin(async move {
            let key = (kind, namespace.to_string(), name.to_string());
            if let Some(hit) = self.cached(&key) {
                return Ok(hit);
            }
            // Errors are not cached: the next review tries again.
            let keys = self
                .fetch(kind, namespace, name)
                .await
                .map_err(|e| LookupError::Api(e.to_string()))?;
            self.remember(key, keys.clone());
            Ok(keys)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory cluster: (kind, namespace, name) → keys.
    struct Fake(
        HashMap<(RefKind, String, String), Vec<&'static str>>,
        Duration,
    );

    impl ObjectLookup for Fake {
        fn keys<'a>(
            &'a self,
            kind: RefKind,
            namespace: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Keys, LookupError>> {
            Box::pin(async move {
                tokio::time::sleep(self.1).await;
                Ok(self
                    .0
                    .get(&(kind, namespace.to_string(), name.to_string()))
                    .map(|k| Arc::new(k.iter().map(|s| s.to_string()).collect())))
            })
        }
    }

    fn secret_ref(name: &str, key: &str) -> Reference {
        Reference {
            kind: RefKind::Secret,
            name: name.into(),
            key: Some(key.into()),
            field: "spec.secrets[0]".into(),
        }
    }

    fn cluster(delay: Duration) -> Fake {
        let mut objects = HashMap::new();
        objects.insert(
            (RefKind::Secret, "default".into(), "gh".into()),
            vec!["token"],
        );
        Fake(objects, delay)
    }

    #[tokio::test]
    async fn a_missing_object_warns_and_a_missing_key_denies() {
        let fake = cluster(Duration::ZERO);
        let ok = check_references(&[secret_ref("gh", "token")], "default", Some(&fake)).await;
        assert_eq!(ok, CrossObjectFindings::default());

        let missing =
            check_references(&[secret_ref("nope", "token")], "default", Some(&fake)).await;
        assert!(missing.errors.is_empty());
        assert_eq!(missing.warnings.len(), 1, "{missing:?}");
        assert!(missing.warnings[0].contains("\"nope\" does not exist"));

        let no_key = check_references(&[secret_ref("gh", "tokn")], "default", Some(&fake)).await;
        assert_eq!(no_key.errors.len(), 1);
        assert_eq!(
            no_key.errors.to_string(),
            "spec.secrets[0]: Invalid value: \"tokn\": Secret \"gh\" has no key \"tokn\""
        );
    }

    #[tokio::test]
    async fn without_a_client_the_checks_are_skipped_with_a_warning() {
        let f = check_references(&[secret_ref("gh", "token")], "default", None).await;
        assert!(f.skipped && f.errors.is_empty() && f.warnings.len() == 1);
        let none = check_references(&[], "default", None).await;
        assert!(!none.skipped && none.warnings.is_empty());
    }

    #[tokio::test]
    async fn a_slow_api_server_costs_at_most_the_lookup_timeout() {
        let slow = cluster(Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let f = check_references(
            &[secret_ref("gh", "token"), secret_ref("gh", "other")],
            "default",
            Some(&slow),
        )
        .await;
        // Lookups run side by side: two slow ones cost one timeout, not two.
        assert!(started.elapsed() < LOOKUP_TIMEOUT + Duration::from_millis(500));
        assert!(f.errors.is_empty());
        assert!(f.warnings[0].contains("timed out"), "{f:?}");
    }
}
