//! The kinds the server knows: a fixed table of built-ins plus every established CRD.
//! Discovery documents are rendered from the same table, so what is listed is what is served.

use serde_json::{json, Value};
use std::cmp::Ordering;
use std::sync::Arc;

/// One served version of a resource.
#[derive(Clone, Debug)]
pub struct VersionInfo {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    pub status: bool,
    /// `subresources.scale` of a CRD version (or the built-in equivalent).
    pub scale: Option<ScaleInfo>,
    /// `openAPIV3Schema`, for CRDs.
    pub schema: Option<Arc<Value>>,
    /// `additionalPrinterColumns`, for CRDs.
    pub printer_columns: Vec<Value>,
    /// JSONPaths of `selectableFields`, for CRDs.
    pub selectable_fields: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ScaleInfo {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// A resource (group + plural) and everything needed to serve it.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub versions: Vec<VersionInfo>,
    /// The CRD this resource comes from (None for built-ins).
    pub crd: Option<Arc<Value>>,
}

impl ResourceInfo {
    /// `plural.group` (or `plural` for the core group), as in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind.group` as used in Invalid messages.
    pub fn kind_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn version(&self, v: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|x| x.name == v)
    }

    pub fn served_version(&self, v: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|x| x.name == v && x.served)
    }

    pub fn storage_version(&self) -> &str {
        self.versions
            .iter()
            .find(|v| v.storage)
            .or(self.versions.first())
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    /// Built-ins accept strategic merge patch; custom resources do not (as on a real server).
    pub fn accepts_strategic_merge(&self) -> bool {
        self.crd.is_none()
    }

    pub fn key(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }
}

/// Storage key of a resource: (group, plural).
pub type ResKey = (String, String);

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    scale: bool,
    short: &'static [&'static str],
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "namespaces",
        "Namespace",
        false,
        true,
        false,
        &["ns"],
    ),
    b("", "v1", "pods", "Pod", true, true, false, &["po"]),
    b("", "v1", "services", "Service", true, true, false, &["svc"]),
    b(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        false,
        &["sa"],
    ),
    b(
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        true,
        false,
        false,
        &["cm"],
    ),
    b("", "v1", "secrets", "Secret", true, false, false, &[]),
    b("", "v1", "events", "Event", true, false, false, &["ev"]),
    b(
        "",
        "v1",
        "endpoints",
        "Endpoints",
        true,
        false,
        false,
        &["ep"],
    ),
    b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        true,
        false,
        &["pvc"],
    ),
    b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        true,
        true,
        &["deploy"],
    ),
    b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        true,
        true,
        &["sts"],
    ),
    b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        true,
        true,
        &["rs"],
    ),
    b(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        true,
        true,
        false,
        &["ds"],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        false,
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        false,
        false,
        &[],
    ),
    b(
        "",
        "v1",
        "limitranges",
        "LimitRange",
        true,
        false,
        false,
        &["limits"],
    ),
    b(
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        true,
        true,
        false,
        &["quota"],
    ),
    b("", "v1", "nodes", "Node", false, true, false, &["no"]),
    b(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        true,
        false,
        &["pv"],
    ),
    b("batch", "v1", "jobs", "Job", true, true, false, &[]),
    b(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        true,
        true,
        false,
        &["cj"],
    ),
    b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        true,
        false,
        &["hpa"],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        true,
        false,
        &["ing"],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
        false,
        false,
        &[],
    ),
    b(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
        false,
        &[],
    ),
    b(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
        false,
        false,
        &["pc"],
    ),
    b(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        false,
        false,
        &["sc"],
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        false,
        false,
        &[],
    ),
    b(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        false,
        false,
        &["ev"],
    ),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        true,
        false,
        &["pdb"],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        false,
        false,
        &["netpol"],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        false,
        false,
        &[],
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        false,
        false,
        &[],
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        true,
        false,
        &["crd", "crds"],
    ),
];

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    scale: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        status,
        scale,
        short,
    }
}

/// The built-in resources, as `ResourceInfo`s.
pub fn builtins() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(|b| ResourceInfo {
            group: b.group.into(),
            plural: b.plural.into(),
            singular: b.kind.to_lowercase(),
            kind: b.kind.into(),
            list_kind: format!("{}List", b.kind),
            short_names: b.short.iter().map(|s| s.to_string()).collect(),
            categories: if b.namespaced
                && matches!(
                    b.plural,
                    "pods"
                        | "services"
                        | "deployments"
                        | "statefulsets"
                        | "replicasets"
                        | "daemonsets"
                        | "jobs"
                        | "cronjobs"
                        | "horizontalpodautoscalers"
                ) {
                vec!["all".into()]
            } else {
                vec![]
            },
            namespaced: b.namespaced,
            versions: vec![VersionInfo {
                name: b.version.into(),
                served: true,
                storage: true,
                status: b.status,
                scale: b.scale.then(|| ScaleInfo {
                    spec_replicas_path: ".spec.replicas".into(),
                    status_replicas_path: ".status.replicas".into(),
                    label_selector_path: Some(".status.selector".into()),
                }),
                schema: None,
                printer_columns: vec![],
                selectable_fields: vec![],
            }],
            crd: None,
        })
        .collect()
}

/// The resource a CRD object defines (whatever its versions' `served` flags say).
pub fn from_crd(crd: &Value) -> Option<ResourceInfo> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let str_list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec
        .get("versions")?
        .as_array()?
        .iter()
        .filter_map(|v| {
            let sub = v.get("subresources");
            Some(VersionInfo {
                name: v.get("name")?.as_str()?.to_string(),
                served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
                storage: v.get("storage").and_then(Value::as_bool).unwrap_or(false),
                status: sub.and_then(|s| s.get("status")).is_some(),
                scale: sub.and_then(|s| s.get("scale")).map(|s| ScaleInfo {
                    spec_replicas_path: s
                        .get("specReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas_path: s
                        .get("statusReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector_path: s
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(String::from),
                }),
                schema: v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                selectable_fields: v
                    .get("selectableFields")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| {
                                f.get("jsonPath").and_then(Value::as_str).map(String::from)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect();
    Some(ResourceInfo {
        singular: names
            .get("singular")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| kind.to_lowercase()),
        list_kind: names
            .get("listKind")
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| format!("{kind}List")),
        short_names: str_list(names.get("shortNames")),
        categories: str_list(names.get("categories")),
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        group,
        plural,
        kind,
        versions,
        crd: Some(Arc::new(crd.clone())),
    })
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, then others
/// alphabetically. Used for preferred versions and discovery order.
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u8, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((major, stage, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn verbs(with_collection: bool) -> Value {
    let mut v = vec![
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    if with_collection {
        v.insert(1, "deletecollection");
    }
    json!(v)
}

/// `APIResourceList` for one group/version.
pub fn resource_list(all: &[Arc<ResourceInfo>], group: &str, version: &str) -> Option<Value> {
    let mut resources = vec![];
    for r in all.iter().filter(|r| r.group == group) {
        let Some(v) = r.served_version(version) else {
            continue;
        };
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": verbs(true), "shortNames": r.short_names, "categories": r.categories,
        }));
        if v.status {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if v.scale.is_some() {
            resources.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `APIGroup` for one group (None if nothing is served in it).
pub fn api_group(all: &[Arc<ResourceInfo>], group: &str) -> Option<Value> {
    let mut versions: Vec<String> = vec![];
    for r in all.iter().filter(|r| r.group == group) {
        for v in r.versions.iter().filter(|v| v.served) {
            if !versions.contains(&v.name) {
                versions.push(v.name.clone());
            }
        }
    }
    if versions.is_empty() {
        return None;
    }
    versions.sort_by(|a, b| version_priority(a, b));
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}),
    )
}

/// `APIGroupList` of every non-core group.
pub fn group_list(all: &[Arc<ResourceInfo>]) -> Value {
    let mut groups: Vec<String> = vec![];
    for r in all.iter().filter(|r| !r.group.is_empty()) {
        if !groups.contains(&r.group) {
            groups.push(r.group.clone());
        }
    }
    let list: Vec<Value> = groups
        .iter()
        .filter_map(|g| api_group(all, g))
        .map(|mut g| {
            if let Some(o) = g.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
            g
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list})
}

/// The aggregated discovery document (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) for the
/// core group (`core = true`, served at `/api`) or every other group (`/apis`).
pub fn aggregated(all: &[Arc<ResourceInfo>], core: bool) -> Value {
    let mut groups: Vec<String> = vec![];
    for r in all.iter().filter(|r| r.group.is_empty() == core) {
        if !groups.contains(&r.group) {
            groups.push(r.group.clone());
        }
    }
    let items: Vec<Value> = groups
        .iter()
        .filter_map(|g| {
            let mut versions: Vec<String> = vec![];
            for r in all.iter().filter(|r| &r.group == g) {
                for v in r.versions.iter().filter(|v| v.served) {
                    if !versions.contains(&v.name) {
                        versions.push(v.name.clone());
                    }
                }
            }
            if versions.is_empty() {
                return None;
            }
            versions.sort_by(|a, b| version_priority(a, b));
            let vs: Vec<Value> = versions
                .iter()
                .map(|ver| {
                    let resources: Vec<Value> = all
                        .iter()
                        .filter(|r| &r.group == g)
                        .filter_map(|r| r.served_version(ver).map(|v| (r, v)))
                        .map(|(r, v)| {
                            let kind = json!({"group": r.group, "version": ver, "kind": r.kind});
                            let mut subs = vec![];
                            if v.status {
                                subs.push(json!({"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}));
                            }
                            if v.scale.is_some() {
                                subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
                            }
                            let mut res = json!({
                                "resource": r.plural, "responseKind": kind,
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular, "verbs": verbs(true),
                            });
                            if !r.short_names.is_empty() {
                                res["shortNames"] = json!(r.short_names);
                            }
                            if !r.categories.is_empty() {
                                res["categories"] = json!(r.categories);
                            }
                            if !subs.is_empty() {
                                res["subresources"] = json!(subs);
                            }
                            res
                        })
                        .collect();
                    json!({"version": ver, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if g.is_empty() { json!({"creationTimestamp": null}) } else { json!({"name": g, "creationTimestamp": null}) };
            Some(json!({"metadata": metadata, "versions": vs}))
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
