//! The ValidatingWebhookConfiguration and MutatingWebhookConfiguration, as data for the chart.
//!
//! Generated from the same table as the router ([`super::routes`]), so a configured path is
//! always a served path. The choices, and the outage they avoid (see `user-pain.md` Part 2):
//!
//! - one webhook per kind, matching **only our group** and only the main resource (never
//!   `/status`): an outage with `failurePolicy: Fail` blocks our CRs, never the cluster;
//! - the rules list every served version, so the API server sends each object at its own
//!   version (no conversion is needed to call us) to the storage version's path, and admission
//!   dispatches on the object's own `apiVersion`; `matchPolicy: Equivalent` then only matters
//!   for requests through another group, which we have none of;
//! - `namespaceSelector` leaves out `kube-system` only. The operator's own namespace is
//!   admitted like any other: only our group's objects are matched, so nothing the operator
//!   needs to start (its Pods, Secrets, Lease) ever waits on it, and manifests kept next to it
//!   (upstream installs into `toolhive-system` and seeds examples there) are checked too;
//! - a `matchCondition` skips UPDATEs that do not touch `spec` (metadata-only writes, finalizer
//!   removal during deletion, the storage-version migrator's no-op rewrites), so an object that
//!   newer rules would refuse can still be relabelled and deleted;
//! - `sideEffects: None`, `admissionReviewVersions: [v1]`, `timeoutSeconds: 5`;
//! - no `caBundle`: cert-manager's CA injector (or the self-managed mode) owns that field, and a
//!   chart that templates it wipes the injected value on every upgrade.

use super::routes::{admission_path, webhook_name, WebhookKind};
use crate::api::{ServedKind, GROUP, SERVED, STORAGE_VERSION};
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

/// Where the webhooks are reached and how they are named.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// Name of both configuration objects.
    pub name: String,
    /// The Service in front of the webhook pods.
    pub service_name: String,
    pub service_namespace: String,
    pub service_port: i32,
    /// Namespaces whose objects never reach the webhooks.
    pub excluded_namespaces: Vec<String>,
    pub timeout_seconds: i32,
    /// The CA that signs the serving certificate; `None` leaves the field to cert-manager.
    pub ca_bundle: Option<Vec<u8>>,
}

impl ConfigOptions {
    /// The defaults for an operator installed as `service` in `namespace`.
    pub fn new(service: &str, namespace: &str) -> Self {
        ConfigOptions {
            name: "mcp-operator".into(),
            service_name: service.into(),
            service_namespace: namespace.into(),
            service_port: 443,
            excluded_namespaces: vec!["kube-system".into()],
            timeout_seconds: 5,
            ca_bundle: None,
        }
    }
}

/// Skips UPDATEs whose `spec` is unchanged (CEL, evaluated by the API server).
pub const SKIP_UNCHANGED_SPEC: &str =
    "request.operation != 'UPDATE' || !has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec";

/// One webhook of a configuration, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub webhook: WebhookKind,
    pub name: String,
    pub path: String,
    pub kind: &'static str,
    pub plural: &'static str,
    pub versions: &'static [&'static str],
}

/// Every webhook we configure: one validating and one mutating per kind.
pub fn webhook_specs() -> Vec<WebhookSpec> {
    let mut out = Vec::new();
    for webhook in [WebhookKind::Validate, WebhookKind::Mutate] {
        for served in SERVED {
            out.push(spec_for(webhook, served));
        }
    }
    out
}

fn spec_for(webhook: WebhookKind, served: &'static ServedKind) -> WebhookSpec {
    let version = if served.versions.contains(&STORAGE_VERSION) {
        STORAGE_VERSION
    } else {
        served.versions[0]
    };
    WebhookSpec {
        webhook,
        name: webhook_name(webhook, served.kind),
        path: admission_path(webhook, served.kind, version),
        kind: served.kind,
        plural: served.plural,
        versions: served.versions,
    }
}

fn client_config(options: &ConfigOptions, path: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        ca_bundle: options.ca_bundle.clone().map(k8s_openapi::ByteString),
        service: Some(ServiceReference {
            name: options.service_name.clone(),
            namespace: options.service_namespace.clone(),
            path: Some(path.to_string()),
            port: Some(options.service_port),
        }),
        url: None,
    }
}

fn rules(spec: &WebhookSpec) -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec![GROUP.to_string()]),
        api_versions: Some(spec.versions.iter().map(|v| v.to_string()).collect()),
        operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
        resources: Some(vec![spec.plural.to_string()]),
        scope: Some("Namespaced".into()),
    }]
}

fn namespace_selector(options: &ConfigOptions) -> Option<LabelSelector> {
    if options.excluded_namespaces.is_empty() {
        return None;
    }
    Some(LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "NotIn".into(),
            values: Some(options.excluded_namespaces.clone()),
        }]),
        match_labels: None,
    })
}

fn match_conditions() -> Vec<MatchCondition> {
    vec![MatchCondition {
        name: "skip-unchanged-spec-updates".into(),
        expression: SKIP_UNCHANGED_SPEC.into(),
    }]
}

/// The ValidatingWebhookConfiguration.
pub fn validating_configuration(options: &ConfigOptions) -> ValidatingWebhookConfiguration {
    let webhooks = webhook_specs()
        .into_iter()
        .filter(|s| s.webhook == WebhookKind::Validate)
        .map(|spec| ValidatingWebhook {
            admission_review_versions: vec!["v1".into()],
            client_config: client_config(options, &spec.path),
            failure_policy: Some("Fail".into()),
            match_conditions: Some(match_conditions()),
            match_policy: Some("Equivalent".into()),
            name: spec.name.clone(),
            namespace_selector: namespace_selector(options),
            object_selector: None,
            rules: Some(rules(&spec)),
            side_effects: "None".into(),
            timeout_seconds: Some(options.timeout_seconds),
        })
        .collect();
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(options.name.clone()),
            ..ObjectMeta::default()
        },
        webhooks: Some(webhooks),
    }
}

/// The MutatingWebhookConfiguration.
pub fn mutating_configuration(options: &ConfigOptions) -> MutatingWebhookConfiguration {
    let webhooks = webhook_specs()
        .into_iter()
        .filter(|s| s.webhook == WebhookKind::Mutate)
        .map(|spec| MutatingWebhook {
            admission_review_versions: vec!["v1".into()],
            client_config: client_config(options, &spec.path),
            failure_policy: Some("Fail".into()),
            match_conditions: Some(match_conditions()),
            match_policy: Some("Equivalent".into()),
            name: spec.name.clone(),
            namespace_selector: namespace_selector(options),
            object_selector: None,
            // Our defaults never depend on what other mutating webhooks write.
            reinvocation_policy: Some("Never".into()),
            rules: Some(rules(&spec)),
            side_effects: "None".into(),
            timeout_seconds: Some(options.timeout_seconds),
        })
        .collect();
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(options.name.clone()),
            ..ObjectMeta::default()
        },
        webhooks: Some(webhooks),
    }
}

/// Both configurations as one YAML stream (`---`-separated), with `apiVersion`/`kind`.
pub fn configurations_yaml(options: &ConfigOptions) -> Result<String, serde_yaml::Error> {
    use k8s_openapi::Resource;
    fn with_type<T: serde::Serialize + Resource>(
        object: &T,
    ) -> Result<serde_json::Value, serde_yaml::Error> {
        let mut value = serde_json::to_value(object)
            .map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), T::API_VERSION.into());
            map.insert("kind".into(), T::KIND.into());
        }
        Ok(value)
    }
    let validating = serde_yaml::to_string(&with_type(&validating_configuration(options))?)?;
    let mutating = serde_yaml::to_string(&with_type(&mutating_configuration(options))?)?;
    Ok(format!("---\n{validating}---\n{mutating}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::routes::routes;

    #[test]
    fn every_configured_path_is_routed() {
        let routed: Vec<String> = routes().iter().map(|r| r.path()).collect();
        let options = ConfigOptions::new("mcp-operator-webhook", "mcp-system");
        let validating = validating_configuration(&options).webhooks.unwrap();
        let mutating = mutating_configuration(&options).webhooks.unwrap();
        assert_eq!(validating.len(), SERVED.len());
        assert_eq!(mutating.len(), SERVED.len());
        let paths = validating
            .iter()
            .map(|w| &w.client_config)
            .chain(mutating.iter().map(|w| &w.client_config))
            .map(|c| c.service.as_ref().unwrap().path.clone().unwrap());
        for path in paths {
            assert!(
                routed.contains(&path),
                "{path} is configured but not routed"
            );
        }
    }

    #[test]
    fn webhooks_stay_narrow() {
        let options = ConfigOptions::new("svc", "mcp-system");
        for webhook in validating_configuration(&options).webhooks.unwrap() {
            assert!(
                webhook.name.starts_with('v') && webhook.name.ends_with(".toolhive.stacklok.dev")
            );
            assert_eq!(webhook.side_effects, "None");
            assert_eq!(webhook.admission_review_versions, vec!["v1"]);
            assert_eq!(webhook.timeout_seconds, Some(5));
            assert_eq!(webhook.failure_policy.as_deref(), Some("Fail"));
            assert_eq!(webhook.match_policy.as_deref(), Some("Equivalent"));
            assert!(
                webhook.client_config.ca_bundle.is_none(),
                "the chart never sets caBundle"
            );
            for rule in webhook.rules.unwrap() {
                assert_eq!(rule.api_groups.unwrap(), vec![GROUP]);
                assert!(rule
                    .resources
                    .unwrap()
                    .iter()
                    .all(|r| !r.contains('/') && r != "*"));
                assert_eq!(rule.operations.unwrap(), vec!["CREATE", "UPDATE"]);
            }
            let selector = webhook
                .namespace_selector
                .unwrap()
                .match_expressions
                .unwrap();
            assert_eq!(
                selector[0].values.as_ref().unwrap(),
                &vec!["kube-system".to_string()],
                "the operator's own namespace is admitted like any other"
            );
        }
        let names: Vec<String> = mutating_configuration(&options)
            .webhooks
            .unwrap()
            .into_iter()
            .map(|w| w.name)
            .collect();
        assert!(names.contains(&"mmcpserver.toolhive.stacklok.dev".to_string()));
    }

    #[test]
    fn the_yaml_carries_type_meta() {
        let yaml = configurations_yaml(&ConfigOptions::new("svc", "ns")).unwrap();
        assert!(yaml.contains("kind: ValidatingWebhookConfiguration"));
        assert!(yaml.contains("kind: MutatingWebhookConfiguration"));
        assert!(yaml.contains("apiVersion: admissionregistration.k8s.io/v1"));
        assert!(yaml.contains("path: /validate-toolhive-stacklok-dev-v1beta1-mcpserver"));
    }
}
