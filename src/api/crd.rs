//! The CustomResourceDefinitions, generated from the types of every version.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, ServiceReference, WebhookClientConfig,
    WebhookConversion,
};
use kube::core::crd::merge_crds;
use kube::CustomResourceExt;
use serde_json::Value;

use super::{v1alpha1, v1beta1, STORAGE_VERSION};

/// Where the API server sends ConversionReviews; `crds/` carries the chart's default install,
/// which `mcp-operator crds --webhook-service NS/NAME` and the chart replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookService {
    pub namespace: String,
    pub name: String,
}

impl Default for WebhookService {
    fn default() -> Self {
        WebhookService {
            namespace: "mcp-operator-system".into(),
            name: "mcp-operator-webhook".into(),
        }
    }
}

/// The path of the conversion webhook on the operator's HTTPS port.
pub const CONVERT_PATH: &str = "/convert";

/// Every CRD of the group, sorted by plural (the order of the files in `crds/`), converting
/// through the default webhook Service.
pub fn all() -> Vec<CustomResourceDefinition> {
    with_conversion_service(&WebhookService::default())
}

/// Every CRD, with its conversion stanza pointing at `service`.
pub fn with_conversion_service(service: &WebhookService) -> Vec<CustomResourceDefinition> {
    generated()
        .into_iter()
        .map(|mut c| {
            c.spec.conversion = Some(conversion(service));
            c
        })
        .collect()
}

/// `strategy: Webhook`: the two versions have different shapes, so the API server must ask us.
fn conversion(service: &WebhookService) -> CustomResourceConversion {
    CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            conversion_review_versions: vec!["v1".into()],
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: service.namespace.clone(),
                    name: service.name.clone(),
                    path: Some(CONVERT_PATH.into()),
                    port: Some(443),
                }),
                ..Default::default()
            }),
        }),
    }
}

fn generated() -> Vec<CustomResourceDefinition> {
    let pairs = [
        (
            v1beta1::MCPAuthzConfig::crd(),
            v1alpha1::MCPAuthzConfig::crd(),
        ),
        (
            v1beta1::MCPExternalAuthConfig::crd(),
            v1alpha1::MCPExternalAuthConfig::crd(),
        ),
        (v1beta1::MCPGroup::crd(), v1alpha1::MCPGroup::crd()),
        (
            v1beta1::MCPOIDCConfig::crd(),
            v1alpha1::MCPOIDCConfig::crd(),
        ),
        (v1beta1::MCPRegistry::crd(), v1alpha1::MCPRegistry::crd()),
        (
            v1beta1::MCPRemoteProxy::crd(),
            v1alpha1::MCPRemoteProxy::crd(),
        ),
        (
            v1beta1::MCPServerEntry::crd(),
            v1alpha1::MCPServerEntry::crd(),
        ),
        (v1beta1::MCPServer::crd(), v1alpha1::MCPServer::crd()),
        (
            v1beta1::MCPTelemetryConfig::crd(),
            v1alpha1::MCPTelemetryConfig::crd(),
        ),
        (
            v1beta1::MCPToolConfig::crd(),
            v1alpha1::MCPToolConfig::crd(),
        ),
        (
            v1beta1::VirtualMCPServer::crd(),
            v1alpha1::VirtualMCPServer::crd(),
        ),
    ];
    pairs
        .into_iter()
        .map(|(new, old)| {
            // Both halves come from our own derives with the same names and scope, which is all
            // merge_crds checks; a failure here is a programming error caught by every test.
            let merged =
                merge_crds(vec![new, old], STORAGE_VERSION).expect("versions of one kind merge");
            tidy(merged)
        })
        .collect()
}

/// The CRD of one kind (by kind name).
pub fn for_kind(kind: &str) -> Option<CustomResourceDefinition> {
    all().into_iter().find(|c| c.spec.names.kind == kind)
}

/// The file name of a CRD in `crds/` (upstream's naming).
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// Renders CRDs as one multi-document YAML stream; each document starts with `---`.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> String {
    crds.iter().map(document).collect()
}

/// One CRD as a YAML document, with a leading `---`.
pub fn document(crd: &CustomResourceDefinition) -> String {
    let body = serde_yaml::to_string(crd).unwrap_or_default();
    format!("---\n{body}")
}

/// Brings the generated schema to upstream's form: no `nullable` (an explicit null is pruned
/// and then defaulted, as for upstream's CRDs), integral bounds printed as integers.
fn tidy(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    tidy_node(&mut value);
    serde_json::from_value(value).expect("a tidied CRD still deserializes")
}

fn tidy_node(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) && map.contains_key("type") {
                map.remove("nullable");
            }
            for key in ["minimum", "maximum"] {
                if let Some(Value::Number(n)) = map.get(key) {
                    if let Some(f) = n.as_f64() {
                        if f.fract() == 0.0 && f.abs() < 9.0e15 {
                            map.insert(key.to_string(), Value::from(f as i64));
                        }
                    }
                }
            }
            for child in map.values_mut() {
                tidy_node(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy_node),
        _ => {}
    }
}
