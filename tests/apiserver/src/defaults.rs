//! Server-side defaults of the built-in kinds the operator writes, as kube-apiserver fills them
//! on every write. Without these, a controller that compares its desired object with the live one
//! would look converged here and fight the server forever on a real cluster.

use serde_json::{json, Value};

/// Set `key` unless it has a value. As in Go defaulting, an empty string counts as unset (string
/// fields are not pointers there); zero numbers do not (those fields are pointers).
fn set_if_absent(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut() {
        if m.get(key)
            .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
        {
            m.insert(key.to_string(), v);
        }
    }
}

/// `parent[key]`, created as `{}` when absent; None when either is not an object (bad input is
/// left for validation to reject, never a panic).
fn ensure_obj<'a>(parent: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let m = parent.as_object_mut()?;
    let child = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if child.is_null() {
        *child = json!({});
    }
    child.is_object().then_some(child)
}

fn each<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Defaults for the kind of `group`/`kind`, applied in place to an object of that kind.
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("apps", "Deployment") => {
            let Some(spec) = ensure_obj(obj, "spec") else {
                return;
            };
            set_if_absent(spec, "replicas", json!(1));
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            set_if_absent(spec, "progressDeadlineSeconds", json!(600));
            rolling(
                spec,
                "strategy",
                &[("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))],
            );
            pod_template(spec);
        }
        ("apps", "StatefulSet") => {
            let Some(spec) = ensure_obj(obj, "spec") else {
                return;
            };
            set_if_absent(spec, "replicas", json!(1));
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            set_if_absent(spec, "podManagementPolicy", json!("OrderedReady"));
            set_if_absent(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            rolling(spec, "updateStrategy", &[("partition", json!(0))]);
            pod_template(spec);
        }
        ("apps", "ReplicaSet") => {
            let Some(spec) = ensure_obj(obj, "spec") else {
                return;
            };
            set_if_absent(spec, "replicas", json!(1));
            pod_template(spec);
        }
        ("apps", "DaemonSet") => {
            let Some(spec) = ensure_obj(obj, "spec") else {
                return;
            };
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            rolling(
                spec,
                "updateStrategy",
                &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
            );
            pod_template(spec);
        }
        ("", "Pod") => {
            let Some(spec) = ensure_obj(obj, "spec") else {
                return;
            };
            pod_spec(spec);
            set_if_absent(spec, "enableServiceLinks", json!(true));
            set_if_absent(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            set_if_absent(spec, "priority", json!(0));
            set_if_absent(spec, "serviceAccountName", json!("default"));
            let sa = spec["serviceAccountName"].clone();
            set_if_absent(spec, "serviceAccount", sa);
            set_if_absent(
                spec,
                "tolerations",
                json!([
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                ]),
            );
        }
        ("", "Service") => {
            let Some(spec) = ensure_obj(obj, "spec") else {
                return;
            };
            set_if_absent(spec, "type", json!("ClusterIP"));
            set_if_absent(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                set_if_absent(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            for p in each(spec, "ports") {
                set_if_absent(p, "protocol", json!("TCP"));
                let port = p.get("port").cloned().unwrap_or(Value::Null);
                set_if_absent(p, "targetPort", port);
            }
        }
        ("", "Secret") => {
            set_if_absent(obj, "type", json!("Opaque"));
            // stringData is write-only: the apiserver folds it into data (base64) on every write.
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                use base64::Engine;
                if !obj.get("data").is_some_and(Value::is_object) {
                    obj["data"] = json!({});
                }
                for (k, v) in sd {
                    let text = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                }
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            let Some(spec) = ensure_obj(obj, "spec") else {
                return;
            };
            if spec.get("policyTypes").is_none() {
                let mut types = vec![json!("Ingress")];
                if spec.get("egress").is_some() {
                    types.push(json!("Egress"));
                }
                spec["policyTypes"] = Value::Array(types);
            }
            for rule in each(spec, "ingress").chain(std::iter::empty()) {
                for p in each(rule, "ports") {
                    set_if_absent(p, "protocol", json!("TCP"));
                }
            }
            for rule in each(spec, "egress") {
                for p in each(rule, "ports") {
                    set_if_absent(p, "protocol", json!("TCP"));
                }
            }
        }
        _ => {}
    }
}

fn rolling(spec: &mut Value, key: &str, params: &[(&str, Value)]) {
    let Some(strategy) = ensure_obj(spec, key) else {
        return;
    };
    set_if_absent(strategy, "type", json!("RollingUpdate"));
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        if let Some(ru) = ensure_obj(strategy, "rollingUpdate") {
            for (k, v) in params {
                set_if_absent(ru, k, v.clone());
            }
        }
    }
}

fn pod_template(spec: &mut Value) {
    if let Some(ps) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .filter(|s| s.is_object())
    {
        pod_spec(ps);
    }
}

fn pod_spec(ps: &mut Value) {
    set_if_absent(ps, "restartPolicy", json!("Always"));
    set_if_absent(ps, "terminationGracePeriodSeconds", json!(30));
    set_if_absent(ps, "dnsPolicy", json!("ClusterFirst"));
    set_if_absent(ps, "securityContext", json!({}));
    set_if_absent(ps, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        for c in each(ps, key) {
            container(c);
        }
    }
    for v in each(ps, "volumes") {
        for (src, mode_key) in [
            ("secret", "defaultMode"),
            ("configMap", "defaultMode"),
            ("projected", "defaultMode"),
            ("downwardAPI", "defaultMode"),
        ] {
            if let Some(s) = v.get_mut(src).filter(|s| s.is_object()) {
                set_if_absent(s, mode_key, json!(420));
            }
        }
    }
}

fn container(c: &mut Value) {
    set_if_absent(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_absent(c, "terminationMessagePolicy", json!("File"));
    set_if_absent(c, "resources", json!({}));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    set_if_absent(
        c,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    for p in each(c, "ports") {
        set_if_absent(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_if_absent(p, "timeoutSeconds", json!(1));
            set_if_absent(p, "periodSeconds", json!(10));
            set_if_absent(p, "successThreshold", json!(1));
            set_if_absent(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                set_if_absent(h, "scheme", json!("HTTP"));
                set_if_absent(h, "path", json!("/"));
            }
        }
    }
    for e in each(c, "env") {
        if let Some(fr) = e
            .pointer_mut("/valueFrom/fieldRef")
            .filter(|f| f.is_object())
        {
            set_if_absent(fr, "apiVersion", json!("v1"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_match_a_real_server() {
        let mut d = json!({"spec": {"selector": {}, "template": {"spec": {"containers": [
            {"name": "a", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "readinessProbe": {"httpGet": {"port": 80}}},
            {"name": "b", "image": "busybox"}]}}}});
        apply("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[1]["imagePullPolicy"], "Always");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert_eq!(c[0]["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        let before = d.clone();
        apply("apps", "Deployment", &mut d);
        assert_eq!(d, before, "defaulting is idempotent");
    }
}
