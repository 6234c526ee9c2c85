//! The controllers a cluster runs that tests rely on: the garbage collector (ownerReferences,
//! background/foreground/orphan propagation), the namespace lifecycle controller, the CRD
//! instance cleanup and the service account controller (a `default` ServiceAccount per namespace). One pass is synchronous under the lock; the loop runs after every write.

use crate::server::{delete_locked, Inner};
use crate::store::{finalizers, meta_str, set_finalizers, State, CRD_RES};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = inner.gc.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        // A few passes: one deletion can unlock the next (dependents of dependents).
        for _ in 0..8 {
            // A bug here must not silently stop garbage collection for the rest of the test.
            let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut st = inner.lock();
                pass(&mut st)
            }));
            if !changed.unwrap_or(false) {
                break;
            }
        }
    }
}

fn owner_uids(o: &Value) -> Vec<(String, bool)> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    Some((
                        r.get("uid")?.as_str()?.to_string(),
                        r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn remove_finalizer(
    st: &mut State,
    key: &(String, String),
    ns: &str,
    name: &str,
    fin: &str,
) -> bool {
    let Some(mut obj) = st.get(key, ns, name).cloned() else {
        return false;
    };
    let mut f = finalizers(&obj);
    let before = f.len();
    f.retain(|x| x != fin);
    if f.len() == before {
        return false;
    }
    set_finalizers(&mut obj, &f);
    if f.is_empty() && !meta_str(&obj, "deletionTimestamp").is_empty() {
        st.put(key, obj);
        st.remove(key, ns, name);
    } else {
        st.put(key, obj);
    }
    true
}

/// One pass; returns whether anything changed.
/// The part of an object the collector looks at (cloning whole objects, CRD schemas included, on
/// every pass would make a busy test slow).
fn slim(o: &Value) -> Value {
    let md = o.get("metadata");
    let pick = |k: &str| md.and_then(|m| m.get(k)).cloned().unwrap_or(Value::Null);
    serde_json::json!({
        "metadata": {
            "uid": pick("uid"), "deletionTimestamp": pick("deletionTimestamp"),
            "finalizers": pick("finalizers"), "ownerReferences": pick("ownerReferences"),
        },
        "spec": {"group": o.pointer("/spec/group"), "names": {"plural": o.pointer("/spec/names/plural")}},
    })
}

pub fn pass(st: &mut State) -> bool {
    let mut changed = false;
    let uids = st.uid_index();
    let all: Vec<((String, String), String, String, Value)> = st
        .objects
        .iter()
        .flat_map(|(k, m)| {
            m.iter()
                .map(move |((ns, n), o)| (k.clone(), ns.clone(), n.clone(), slim(o)))
        })
        .collect();
    let deleting_with = |uid: &str, fin: &str| -> bool {
        uids.get(uid)
            .and_then(|(k, ns, n)| st.get(k, ns, n))
            .is_some_and(|o| {
                !meta_str(o, "deletionTimestamp").is_empty()
                    && finalizers(o).iter().any(|f| f == fin)
            })
    };
    let mut actions: Vec<Action> = vec![];
    for (key, ns, name, o) in &all {
        let owners = owner_uids(o);
        if owners.is_empty() {
            continue;
        }
        let alive: Vec<&(String, bool)> = owners
            .iter()
            .filter(|(u, _)| uids.contains_key(u))
            .collect();
        let deleting = !meta_str(o, "deletionTimestamp").is_empty();
        if alive.is_empty() {
            if !deleting {
                actions.push(Action::Delete(
                    key.clone(),
                    ns.clone(),
                    name.clone(),
                    "Background",
                ));
            }
            continue;
        }
        if alive.len() < owners.len() {
            actions.push(Action::DropRefs(
                key.clone(),
                ns.clone(),
                name.clone(),
                alive.iter().map(|(u, _)| u.clone()).collect(),
            ));
            continue;
        }
        let orphaning: Vec<String> = owners
            .iter()
            .filter(|(u, _)| deleting_with(u, "orphan"))
            .map(|(u, _)| u.clone())
            .collect();
        if !orphaning.is_empty() {
            let keep: HashSet<String> = owners
                .iter()
                .map(|(u, _)| u.clone())
                .filter(|u| !orphaning.contains(u))
                .collect();
            actions.push(Action::DropRefs(
                key.clone(),
                ns.clone(),
                name.clone(),
                keep,
            ));
            continue;
        }
        // Foreground: every owner is going away in the foreground, so the dependent goes first.
        if !deleting
            && owners
                .iter()
                .all(|(u, _)| deleting_with(u, "foregroundDeletion"))
        {
            actions.push(Action::Delete(
                key.clone(),
                ns.clone(),
                name.clone(),
                "Foreground",
            ));
        }
    }
    for (key, ns, name, o) in &all {
        if meta_str(o, "deletionTimestamp").is_empty() {
            continue;
        }
        let uid = meta_str(o, "uid");
        let fins = finalizers(o);
        let dependents: Vec<&Value> = all
            .iter()
            .map(|(_, _, _, d)| d)
            .filter(|d| owner_uids(d).iter().any(|(u, _)| u == uid))
            .collect();
        if fins.iter().any(|f| f == "foregroundDeletion")
            && !dependents
                .iter()
                .any(|d| owner_uids(d).iter().any(|(u, block)| u == uid && *block))
        {
            actions.push(Action::Unfinalize(
                key.clone(),
                ns.clone(),
                name.clone(),
                "foregroundDeletion",
            ));
        }
        if fins.iter().any(|f| f == "orphan") && dependents.is_empty() {
            actions.push(Action::Unfinalize(
                key.clone(),
                ns.clone(),
                name.clone(),
                "orphan",
            ));
        }
        // Namespace lifecycle: delete the content, then let the namespace go.
        if key.0.is_empty() && key.1 == "namespaces" {
            let content: Vec<(&(String, String), &String, &Value)> = all
                .iter()
                .filter(|(k, n, _, _)| n == name && !(k.0.is_empty() && k.1 == "namespaces"))
                .map(|(k, _, n, o)| (k, n, o))
                .collect();
            if content.is_empty() {
                actions.push(Action::FinalizeNamespace(name.clone()));
            } else {
                for (k, n, o) in content {
                    if meta_str(o, "deletionTimestamp").is_empty() {
                        actions.push(Action::Delete(
                            k.clone(),
                            name.clone(),
                            n.clone(),
                            "Background",
                        ));
                    }
                }
            }
        }
        // CRD deletion removes every instance first.
        if key.0 == CRD_RES.0
            && key.1 == CRD_RES.1
            && fins
                .iter()
                .any(|f| f == "customresourcecleanup.apiextensions.k8s.io")
        {
            let group = o
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let plural = o
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let ik = (group, plural);
            let instances: Vec<(String, String, bool)> = st
                .objects
                .get(&ik)
                .map(|m| {
                    m.iter()
                        .map(|((n, nm), io)| {
                            (
                                n.clone(),
                                nm.clone(),
                                meta_str(io, "deletionTimestamp").is_empty(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if instances.is_empty() {
                actions.push(Action::Unfinalize(
                    key.clone(),
                    ns.clone(),
                    name.clone(),
                    "customresourcecleanup.apiextensions.k8s.io",
                ));
            }
            for (n, nm, live) in instances {
                if live {
                    actions.push(Action::Delete(ik.clone(), n, nm, "Background"));
                }
            }
        }
    }
    if st.simulate_workloads {
        changed |= simulate_workloads(st);
    }
    // The service account controller: every active namespace has a "default" ServiceAccount.
    let sa_key = ("".to_string(), "serviceaccounts".to_string());
    for (key, _, name, o) in &all {
        if key.0.is_empty()
            && key.1 == "namespaces"
            && meta_str(o, "deletionTimestamp").is_empty()
            && st.get(&sa_key, name, "default").is_none()
        {
            let sa = serde_json::json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": name, "uid": crate::server::new_uid(), "creationTimestamp": crate::store::now_rfc3339()},
            });
            st.put(&sa_key, sa);
            changed = true;
        }
    }
    for a in actions {
        changed |= match a {
            Action::Delete(k, ns, n, policy) => delete_locked(st, &k, &ns, &n, policy).is_some(),
            Action::DropRefs(k, ns, n, keep) => {
                let Some(mut obj) = st.get(&k, &ns, &n).cloned() else {
                    continue;
                };
                if let Some(refs) = obj
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| {
                        r.get("uid")
                            .and_then(Value::as_str)
                            .is_some_and(|u| keep.contains(u))
                    });
                    if refs.is_empty() {
                        if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                            md.remove("ownerReferences");
                        }
                    }
                }
                st.put(&k, obj);
                true
            }
            Action::Unfinalize(k, ns, n, f) => remove_finalizer(st, &k, &ns, &n, f),
            Action::FinalizeNamespace(n) => {
                let key = ("".to_string(), "namespaces".to_string());
                let Some(mut obj) = st.get(&key, "", &n).cloned() else {
                    continue;
                };
                let spec_fins = obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if !spec_fins && !finalizers(&obj).is_empty() {
                    continue;
                }
                match obj.get_mut("spec").and_then(Value::as_object_mut) {
                    Some(spec) => {
                        spec.insert("finalizers".into(), serde_json::json!([]));
                    }
                    None => obj["spec"] = serde_json::json!({"finalizers": []}),
                }
                if finalizers(&obj).is_empty() {
                    st.remove(&key, "", &n);
                } else {
                    st.put(&key, obj);
                }
                true
            }
        };
    }
    changed
}

enum Action {
    Delete((String, String), String, String, &'static str),
    DropRefs((String, String), String, String, HashSet<String>),
    Unfinalize((String, String), String, String, &'static str),
    FinalizeNamespace(String),
}

/// Stand-in for the workload controllers and kubelets: every Deployment, StatefulSet and
/// ReplicaSet reports all its replicas ready and updated for its current generation, as if its
/// pods had started at once (DaemonSets report zero nodes). Condition times are kept while the
/// condition holds, so a converged workload is not rewritten.
fn simulate_workloads(st: &mut State) -> bool {
    let mut changed = false;
    for plural in ["deployments", "statefulsets", "replicasets", "daemonsets"] {
        let key = ("apps".to_string(), plural.to_string());
        let stale: Vec<Value> = st
            .objects
            .get(&key)
            .map(|m| {
                m.values()
                    .filter(|o| meta_str(o, "deletionTimestamp").is_empty())
                    .filter_map(|o| {
                        let desired = workload_status(plural, o);
                        (o.get("status") != Some(&desired)).then(|| {
                            let mut o = o.clone();
                            o["status"] = desired;
                            o
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        for o in stale {
            st.put(&key, o);
            changed = true;
        }
    }
    changed
}

fn workload_status(plural: &str, obj: &Value) -> Value {
    use serde_json::json;
    let name = meta_str(obj, "name");
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let hash = format!("{:x}", generation.wrapping_mul(2_654_435_761) & 0xff_ffff);
    let now = crate::store::now_rfc3339();
    let old_time = |ty: &str, key: &str| {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
            })
            .and_then(|c| c.get(key))
            .cloned()
            .unwrap_or(json!(now))
    };
    let mut s = match plural {
        "deployments" => json!({
            "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
                 "lastUpdateTime": old_time("Available", "lastUpdateTime"), "lastTransitionTime": old_time("Available", "lastTransitionTime")},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": format!("ReplicaSet \"{name}-{hash}\" has successfully progressed."),
                 "lastUpdateTime": old_time("Progressing", "lastUpdateTime"), "lastTransitionTime": old_time("Progressing", "lastTransitionTime")},
            ],
        }),
        "statefulsets" => json!({
            "observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
            "updatedReplicas": replicas, "availableReplicas": replicas, "currentRevision": format!("{name}-{hash}"),
            "updateRevision": format!("{name}-{hash}"), "collisionCount": 0,
        }),
        "replicasets" => json!({
            "observedGeneration": generation, "replicas": replicas, "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas,
        }),
        _ => json!({
            "observedGeneration": generation, "currentNumberScheduled": 0, "numberMisscheduled": 0,
            "desiredNumberScheduled": 0, "numberReady": 0,
        }),
    };
    // As on a real server, zero counts are omitted.
    if let Some(m) = s.as_object_mut() {
        m.retain(|_, v| v != &json!(0));
        if plural == "daemonsets" {
            m.insert("currentNumberScheduled".into(), json!(0));
            m.insert("numberMisscheduled".into(), json!(0));
            m.insert("desiredNumberScheduled".into(), json!(0));
            m.insert("numberReady".into(), json!(0));
        }
    }
    s
}
