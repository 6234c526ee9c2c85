//! Objects in the way of a child: for every case in `tests/conflicts/` (see its README), the
//! user's objects stay byte for byte as they were, the owner says what is in the way, and
//! deleting the owner leaves the user's objects in place.

mod controller_support;

use controller_support::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, ApiResource};
use kube::Client;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Deserialize)]
struct Case {
    existing: Vec<Value>,
    owner: Value,
    conflict: String,
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conflicts");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in tests/conflicts");
    out
}

/// The API of `obj`'s kind in `ns`, found through discovery as kubectl finds it.
async fn api_of(client: &Client, obj: &Value, ns: &str) -> Api<DynamicObject> {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            obj["apiVersion"].as_str().unwrap().to_string(),
        ),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, obj["kind"].as_str().unwrap());
    let (resource, _): (ApiResource, _) = pinned_kind(client, &gvk).await.unwrap();
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn read(api: &Api<DynamicObject>, name: &str) -> Option<Value> {
    let obj = api.get_opt(name).await.unwrap()?;
    Some(serde_json::to_value(obj).unwrap())
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap()
}

/// The owner's Ready condition, once it names `conflict`.
async fn ready_names_conflict(api: &Api<DynamicObject>, name: &str, conflict: &str) -> Value {
    eventually(
        &format!("{name}: Ready=False ChildConflict naming {conflict}"),
        || async {
            let owner = read(api, name).await?;
            let ready = owner["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?
                .clone();
            let says = ready["status"] == "False"
                && ready["reason"] == "ChildConflict"
                && ready["message"].as_str()?.contains(conflict);
            says.then_some(owner)
        },
    )
    .await
}

#[tokio::test]
async fn objects_in_the_way_are_never_taken() {
    let h = start(None).await;
    let c = &h.client;
    for path in cases() {
        let label = path.file_stem().unwrap().to_string_lossy().to_string();
        let case: Case = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        // One namespace per case, so the cases cannot see each other's objects.
        Api::<Namespace>::all(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": label}})).unwrap(),
            )
            .await
            .unwrap();
        let mut before = Vec::new();
        for obj in &case.existing {
            let api = api_of(c, obj, &label).await;
            let created = api
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(obj.clone()).unwrap(),
                )
                .await
                .unwrap_or_else(|e| panic!("{label}: creating {}: {e}", name_of(obj)));
            before.push((api, serde_json::to_value(created).unwrap()));
        }

        // Defaults as the webhook would fill them in, then created as kubectl would.
        let verdict = mcp_operator::admission::admit(
            &case.owner,
            None,
            mcp_operator::admission::Operation::Create,
        )
        .unwrap();
        assert!(verdict.allowed(), "{label}: {}", verdict.errors);
        let owners = api_of(c, &case.owner, &label).await;
        let owner_name = name_of(&case.owner).to_string();
        owners
            .create(
                &PostParams::default(),
                &serde_json::from_value(verdict.defaulted).unwrap(),
            )
            .await
            .unwrap();
        let owner = ready_names_conflict(&owners, &owner_name, &case.conflict).await;
        assert_ne!(owner["status"]["phase"], "Ready", "{label}: never Ready");

        // Several reconciles later (the conflict is looked at again), still untouched.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (api, was) in &before {
            let now = read(api, name_of(was)).await;
            assert_eq!(
                now.as_ref(),
                Some(was),
                "{label}: {} was changed",
                name_of(was)
            );
        }

        owners
            .delete(&owner_name, &DeleteParams::background())
            .await
            .unwrap();
        eventually(&format!("{label}: owner gone"), || async {
            read(&owners, &owner_name).await.is_none().then_some(())
        })
        .await;
        // The garbage collector takes the owner's own children; give it the time to.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (api, was) in &before {
            let now = read(api, name_of(was)).await;
            assert_eq!(
                now.as_ref(),
                Some(was),
                "{label}: {} did not survive its namesake's owner",
                name_of(was)
            );
        }
    }
}
