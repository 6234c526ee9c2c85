//! Part of the built-in validation of a real API server, with its field paths and messages:
//! object metadata (label and annotation keys and values, the annotations' total size), pod
//! specs wherever a workload carries one (unique container, volume and per-container mount-path
//! names), Service ports (unique names, names required when there are several, unique
//! port/protocol) and immutable workload selectors. Enough for a controller's tests to be
//! refused here what a cluster would refuse; far from all of Kubernetes' Go validation.

use crate::error::FieldCause;
use serde_json::{Map, Value};

/// The most bytes the annotations of one object may hold (keys and values together).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;

const QUALIFIED_NAME_FMT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUALIFIED_NAME_SLASHES: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const DNS_SUBDOMAIN_FMT: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_FMT: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Every check that applies to `new` of kind `group`/`kind` (`old` on updates).
pub fn validate(group: &str, kind: &str, new: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut causes = metadata(new);
    if let Some(path) = pod_spec_path(group, kind) {
        if let Some(pod) = pointer(new, path) {
            causes.extend(pod_spec(pod, &dotted(path)));
        }
    }
    if group.is_empty() && kind == "Service" {
        causes.extend(service_ports(new));
    }
    if group == "apps"
        && matches!(
            kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        )
    {
        if let Some(old) = old {
            causes.extend(immutable_selector(new, old));
        }
    }
    causes
}

fn pointer<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn dotted(path: &[&str]) -> String {
    path.join(".")
}

/// Where a kind keeps its pod spec.
fn pod_spec_path(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (group, kind) {
        ("", "Pod") => Some(&["spec"]),
        ("", "PodTemplate") => Some(&["template", "spec"]),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some(&["spec", "template", "spec"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Label and annotation keys and label values, and the annotations' total size.
fn metadata(obj: &Value) -> Vec<FieldCause> {
    let mut causes = vec![];
    let meta = obj.get("metadata");
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            for msg in qualified_name(k) {
                causes.push(FieldCause::invalid(
                    "metadata.labels",
                    &Value::from(k.as_str()),
                    msg,
                ));
            }
            let value = v.as_str().unwrap_or_default();
            for msg in label_value(value) {
                causes.push(FieldCause::invalid(
                    "metadata.labels",
                    &Value::from(value),
                    msg,
                ));
            }
        }
    }
    if let Some(annotations) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        causes.extend(annotations_causes(annotations));
    }
    causes
}

fn annotations_causes(annotations: &Map<String, Value>) -> Vec<FieldCause> {
    let mut causes = vec![];
    let mut total = 0;
    for (k, v) in annotations {
        // The real server checks keys lowercased: upper case is allowed in annotation keys.
        for msg in qualified_name(&k.to_lowercase()) {
            causes.push(FieldCause::invalid(
                "metadata.annotations",
                &Value::from(k.as_str()),
                msg,
            ));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(FieldCause {
            reason: "FieldValueTooLong".into(),
            field: "metadata.annotations".into(),
            value: None,
            detail: format!("must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        });
    }
    causes
}

/// Kubernetes' `IsQualifiedName`: `[prefix/]name`, a DNS subdomain prefix and a 63-character name.
pub fn qualified_name(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => return vec![QUALIFIED_NAME_SLASHES.into()],
    };
    let mut errs = vec![];
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else {
            if prefix.len() > 253 {
                errs.push("prefix part must be no more than 253 characters".into());
            }
            if !is_dns_subdomain(prefix) {
                errs.push(format!("prefix part {DNS_SUBDOMAIN_FMT}"));
            }
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !name.is_empty() && !is_name_part(name) {
        errs.push(QUALIFIED_NAME_FMT.into());
    }
    errs
}

/// Kubernetes' `IsValidLabelValue`.
pub fn label_value(value: &str) -> Vec<String> {
    let mut errs = vec![];
    if value.len() > LABEL_VALUE_MAX {
        errs.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !value.is_empty() && !is_name_part(value) {
        errs.push(LABEL_VALUE_FMT.into());
    }
    errs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    })
}

fn duplicate(field: String, value: &str) -> FieldCause {
    FieldCause {
        reason: "FieldValueDuplicate".into(),
        field,
        value: Some(format!("{value:?}")),
        detail: String::new(),
    }
}

fn names(list: Option<&Value>) -> Vec<(usize, &Value)> {
    list.and_then(Value::as_array)
        .map(|a| a.iter().enumerate().collect())
        .unwrap_or_default()
}

/// Unique container names (init and app containers share one namespace of names), unique
/// volume names, and per container unique mount paths.
fn pod_spec(pod: &Value, at: &str) -> Vec<FieldCause> {
    let mut causes = vec![];
    let mut volumes: Vec<&str> = vec![];
    for (i, v) in names(pod.get("volumes")) {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if volumes.contains(&name) {
            causes.push(duplicate(format!("{at}.volumes[{i}].name"), name));
        }
        volumes.push(name);
    }
    let mut containers: Vec<&str> = vec![];
    for list in ["initContainers", "containers"] {
        for (i, c) in names(pod.get(list)) {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if containers.contains(&name) {
                causes.push(duplicate(format!("{at}.{list}[{i}].name"), name));
            }
            containers.push(name);
            let mut paths: Vec<&str> = vec![];
            for (j, m) in names(c.get("volumeMounts")) {
                let path = m
                    .get("mountPath")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if paths.contains(&path) {
                    causes.push(FieldCause::invalid(
                        &format!("{at}.{list}[{i}].volumeMounts[{j}].mountPath"),
                        &Value::from(path),
                        "must be unique",
                    ));
                }
                paths.push(path);
            }
        }
    }
    causes
}

/// Port names unique and required when there are several; port/protocol pairs unique.
fn service_ports(svc: &Value) -> Vec<FieldCause> {
    let mut causes = vec![];
    let ports = names(svc.pointer("/spec/ports"));
    let several = ports.len() > 1;
    let mut seen_names: Vec<&str> = vec![];
    let mut seen_keys: Vec<(i64, &str)> = vec![];
    for (i, p) in ports {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            if several {
                causes.push(FieldCause::required(&format!("spec.ports[{i}].name")));
            }
        } else if seen_names.contains(&name) {
            causes.push(duplicate(format!("spec.ports[{i}].name"), name));
        } else {
            seen_names.push(name);
        }
        let port = p.get("port").and_then(Value::as_i64).unwrap_or_default();
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if seen_keys.contains(&(port, protocol)) {
            // The real server prints the Go value of the key it compares.
            causes.push(FieldCause {
                reason: "FieldValueDuplicate".into(),
                field: format!("spec.ports[{i}]"),
                value: Some(format!(
                    "core.ServicePort{{Name:\"\", Protocol:\"{protocol}\", AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
                )),
                detail: String::new(),
            });
        } else {
            seen_keys.push((port, protocol));
        }
    }
    causes
}

/// A workload's `spec.selector` cannot change once created.
fn immutable_selector(new: &Value, old: &Value) -> Vec<FieldCause> {
    let before = old.pointer("/spec/selector");
    let after = new.pointer("/spec/selector");
    if before.is_none() || before == after {
        return vec![];
    }
    vec![FieldCause {
        reason: "FieldValueInvalid".into(),
        field: "spec.selector".into(),
        value: Some(go_label_selector(after.unwrap_or(&Value::Null))),
        detail: "field is immutable".into(),
    }]
}

/// A LabelSelector as Go's `%#v` prints it, which is how the real message shows the value.
fn go_label_selector(sel: &Value) -> String {
    let labels = match sel.get("matchLabels").and_then(Value::as_object) {
        Some(m) => {
            let pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
        None => "map[string]string(nil)".into(),
    };
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let values: Vec<String> = e
                        .get("values")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|v| format!("{:?}", v.as_str().unwrap_or_default()))
                        .collect();
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:[]string{{{}}}}}",
                        e.get("key").and_then(Value::as_str).unwrap_or_default(),
                        e.get("operator").and_then(Value::as_str).unwrap_or_default(),
                        values.join(", ")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        _ => "[]v1.LabelSelectorRequirement(nil)".into(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_and_label_values() {
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("a").is_empty());
        assert_eq!(qualified_name("a/b/c"), [QUALIFIED_NAME_SLASHES]);
        assert_eq!(qualified_name("Bad_Prefix/x").len(), 1);
        assert_eq!(qualified_name("bad key").len(), 1);
        assert_eq!(qualified_name(&"x".repeat(64)).len(), 1);
        assert_eq!(qualified_name("example.com/").len(), 1);
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_3-x").is_empty());
        assert_eq!(label_value("-x").len(), 1);
        assert_eq!(label_value(&"x".repeat(64)).len(), 1);
    }
}
