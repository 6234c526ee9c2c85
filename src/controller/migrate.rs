//! Storage-version migration: once every object of a CRD is stored at the storage version, the
//! old version can be retired from `status.storedVersions` (and later from the CRD).
//!
//! For each of our CRDs whose `storedVersions` lists more than the storage version, every object
//! is re-written unchanged at the storage version (the API server re-encodes it), then
//! `storedVersions` is trimmed. Interrupted runs leave `storedVersions` alone, so the next run
//! simply starts over: the migration is idempotent and resumable. A CRD already trimmed costs a
//! single read.

use crate::api::GROUP;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;

/// The label upstream puts on every CRD that opts into migration.
pub const MIGRATE_LABEL: &str = "toolhive.stacklok.dev/auto-migrate-storage-version";
/// Objects per list page: bounded memory however many objects a CRD has.
const PAGE_SIZE: u32 = 100;
/// A conflicting write means someone else just wrote the object — at the storage version, so
/// a few re-reads are plenty.
const CONFLICT_RETRIES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("failed to list CustomResourceDefinitions: {0}")]
    ListCrds(#[source] kube::Error),
    #[error("failed to list {crd}: {source}")]
    ListObjects { crd: String, source: kube::Error },
    #[error("failed to rewrite {crd} {object}: {source}")]
    Rewrite {
        crd: String,
        object: String,
        source: kube::Error,
    },
    #[error("failed to trim status.storedVersions of {crd}: {source}")]
    Trim { crd: String, source: kube::Error },
}

/// What one CRD's migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub crd: String,
    pub rewritten: usize,
    pub stored_versions_before: Vec<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrdLabel {
    crd: String,
}

/// Counters of the migrator, registered on the operator's metrics registry.
#[derive(Clone, Default)]
pub struct MigrationMetrics {
    objects: Family<CrdLabel, Counter>,
    completed: Family<CrdLabel, Counter>,
}

impl MigrationMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mcp_operator_storage_migration_objects",
            "Objects re-written at the storage version",
            self.objects.clone(),
        );
        registry.register(
            "mcp_operator_storage_migration_completed",
            "CRDs whose storedVersions were trimmed to the storage version",
            self.completed.clone(),
        );
    }
}

/// Migrates every CRD of our group that needs it; returns what was done, CRD by CRD.
pub async fn migrate_all(
    client: &Client,
    metrics: &MigrationMetrics,
) -> Result<Vec<Migrated>, MigrateError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let list = crds
        .list(&ListParams::default().labels(&format!("{MIGRATE_LABEL}=true")))
        .await
        .map_err(MigrateError::ListCrds)?;
    let mut done = Vec::new();
    for crd in list.items.into_iter().filter(|c| c.spec.group == GROUP) {
        if let Some(m) = migrate_crd(client, &crd, metrics).await? {
            done.push(m);
        }
    }
    Ok(done)
}

/// The storage version, when `storedVersions` still lists others.
fn pending_migration(crd: &CustomResourceDefinition) -> Option<String> {
    let storage = crd.spec.versions.iter().find(|v| v.storage)?.name.clone();
    let stored = crd
        .status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default();
    (stored.iter().any(|v| *v != storage)).then_some(storage)
}

async fn migrate_crd(
    client: &Client,
    crd: &CustomResourceDefinition,
    metrics: &MigrationMetrics,
) -> Result<Option<Migrated>, MigrateError> {
    let Some(storage) = pending_migration(crd) else {
        return Ok(None);
    };
    let name = crd.name_any();
    let before = crd
        .status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default();
    let resource = ApiResource {
        group: crd.spec.group.clone(),
        version: storage.clone(),
        api_version: format!("{}/{storage}", crd.spec.group),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    let rewritten = rewrite_all(client, &resource, &name, metrics).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let patch = json!({ "status": { "storedVersions": [storage] } });
    crds.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| MigrateError::Trim {
            crd: name.clone(),
            source,
        })?;
    metrics
        .completed
        .get_or_create(&CrdLabel { crd: name.clone() })
        .inc();
    tracing::info!(crd = %name, rewritten, from = ?before, to = %storage, "storage version migration complete");
    announce(
        client,
        crd,
        &format!("Re-wrote {rewritten} objects at {storage}; storedVersions is now [{storage}]"),
    )
    .await;
    Ok(Some(Migrated {
        crd: name,
        rewritten,
        stored_versions_before: before,
    }))
}

/// Re-writes every object, a page at a time.
async fn rewrite_all(
    client: &Client,
    resource: &ApiResource,
    crd: &str,
    metrics: &MigrationMetrics,
) -> Result<usize, MigrateError> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut rewritten = 0;
    loop {
        let page = all
            .list(&params)
            .await
            .map_err(|source| MigrateError::ListObjects {
                crd: crd.to_string(),
                source,
            })?;
        for obj in page.items {
            if rewrite_one(client, resource, crd, obj).await? {
                rewritten += 1;
                metrics
                    .objects
                    .get_or_create(&CrdLabel {
                        crd: crd.to_string(),
                    })
                    .inc();
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(rewritten),
        }
    }
}

/// An unchanged update at the storage version; `false` when the object is gone meanwhile.
async fn rewrite_one(
    client: &Client,
    resource: &ApiResource,
    crd: &str,
    mut obj: DynamicObject,
) -> Result<bool, MigrateError> {
    let name = obj.name_any();
    let api: Api<DynamicObject> = match obj.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), &ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let failed = |source| MigrateError::Rewrite {
        crd: crd.to_string(),
        object: name.clone(),
        source,
    };
    for _ in 0..CONFLICT_RETRIES {
        match api.replace(&name, &PostParams::default(), &obj).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                match api.get_opt(&name).await.map_err(failed)? {
                    Some(fresh) => obj = fresh,
                    None => return Ok(false),
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
    // Still conflicting: others keep writing it, and every write of theirs is at the storage
    // version too, which is all this migration needs.
    Ok(true)
}

/// One Event on the CRD per completed migration; failing to record it is not a failure.
async fn announce(client: &Client, crd: &CustomResourceDefinition, note: &str) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "mcp-operator".into(),
            instance: None,
        },
    );
    let reference: ObjectReference = crd.object_ref(&());
    let event = Event {
        type_: EventType::Normal,
        reason: "StorageVersionMigrationSucceeded".into(),
        note: Some(note.into()),
        action: "Migrate".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        tracing::warn!(crd = %crd.name_any(), error = %e, "could not record the migration Event");
    }
}
