//! Children as their watch caches keep them: identity, owner references, the applied-hash
//! annotation, and the handful of spec and status fields a status is computed from.
//!
//! Whole Deployments, Services, ConfigMaps and ServiceAccounts were most of the operator's
//! memory at 10,000 MCPServers (about 37 KiB a server). Nothing needs them whole between
//! reconciles: "already as wanted?" is the applied hash plus "nobody changed it since we knew
//! it to be as wanted" (its resourceVersion), and the frame reads a child whole only when that
//! version moved under us (see `Frame::apply_known`). The decoder skips every other field, so
//! it is never allocated.

use super::children::APPLIED_HASH;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::NamespaceResourceScope;
use kube::core::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;

/// A child kind and the parts of its spec and status its cache keeps.
pub trait Reduce:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + Send + Sync + 'static
{
    type Spec: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    type Status: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
}

/// Nothing of a part is kept (the decoder skips all of it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Nothing {}

impl Reduce for ConfigMap {
    type Spec = Nothing;
    type Status = Nothing;
}

impl Reduce for ServiceAccount {
    type Spec = Nothing;
    type Status = Nothing;
}

impl Reduce for Deployment {
    type Spec = DeploymentSpec;
    type Status = DeploymentStatus;
}

impl Reduce for Service {
    type Spec = ServiceSpec;
    type Status = Nothing;
}

/// What a status reads of a Deployment's spec: whether it is scaled to zero, and the pod labels
/// the Service must select.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeploymentSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Template {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<LabelsOnly>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LabelsOnly {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// What a status reads of a Deployment's status.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// A Service's selector and ports: the two lists the operator keeps exactly its own (a merge
/// patch repairs them, from this copy), and what says whether it reaches the pods.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServiceSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePort>>,
}

/// A child of kind `C` as its watch cache keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Slim<C: Reduce> {
    #[serde(deserialize_with = "kept_meta")]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<C::Spec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<C::Status>,
    #[serde(skip)]
    kind: PhantomData<C>,
}

/// The metadata a child's cache needs: who it is, at which version, who controls it, and the
/// hash of what we applied (the only annotation kept; labels were the watch's selector).
fn kept_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kept {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
        generation: Option<i64>,
        owner_references: Option<Vec<OwnerReference>>,
        #[serde(default, deserialize_with = "applied_hash_only")]
        annotations: Option<BTreeMap<String, String>>,
    }
    let k = Kept::deserialize(d)?;
    Ok(ObjectMeta {
        name: k.name,
        namespace: k.namespace,
        uid: k.uid,
        resource_version: k.resource_version,
        generation: k.generation,
        owner_references: k.owner_references,
        annotations: k.annotations,
        ..ObjectMeta::default()
    })
}

/// The annotations reduced to [`APPLIED_HASH`]; the others are skipped as they are read.
fn applied_hash_only<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Option<BTreeMap<String, String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut hash = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == APPLIED_HASH {
                    hash = Some(map.next_value::<String>()?);
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(hash.map(|h| BTreeMap::from([(APPLIED_HASH.to_string(), h)])))
        }
    }
    d.deserialize_option(Visit)
}

impl<C: Reduce> Resource for Slim<C> {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        C::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        C::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        C::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        C::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        C::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a cache keeps of a whole Deployment: what the status and the frame read, and nothing
    /// else; and it reads back at the same JSON paths as the whole object.
    #[test]
    fn a_deployment_keeps_only_what_is_read() {
        let whole = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "uid": "u", "resourceVersion": "7",
                "generation": 3,
                "labels": {"a": "b"},
                "annotations": {APPLIED_HASH: "h1", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "x"}],
                "ownerReferences": [{"apiVersion": "v", "kind": "MCPServer", "name": "s", "uid": "o", "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"readyReplicas": 1, "replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
        });
        let slim: Slim<Deployment> = serde_json::from_value(whole).unwrap();
        let back = serde_json::to_value(&slim).unwrap();
        assert_eq!(
            back,
            json!({
                "metadata": {"name": "d", "namespace": "n", "uid": "u", "resourceVersion": "7",
                    "generation": 3,
                    "annotations": {APPLIED_HASH: "h1"},
                    "ownerReferences": [{"apiVersion": "v", "kind": "MCPServer", "name": "s", "uid": "o", "controller": true}]},
                "spec": {"replicas": 0, "template": {"metadata": {"labels": {"a": "b"}}}},
                "status": {"readyReplicas": 1, "replicas": 1}
            })
        );
    }

    #[test]
    fn a_config_map_keeps_its_identity_and_hash_only() {
        for annotations in [json!(null), json!({}), json!({"other": "x"})] {
            let slim: Slim<ConfigMap> = serde_json::from_value(json!({
                "metadata": {"name": "c", "resourceVersion": "1", "annotations": annotations},
                "data": {"bridge.json": "{}"}
            }))
            .unwrap();
            assert_eq!(
                serde_json::to_value(&slim).unwrap(),
                json!({"metadata": {"name": "c", "resourceVersion": "1"}}),
                "annotations {annotations}"
            );
        }
    }
}
