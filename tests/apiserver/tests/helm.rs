//! The real helm (installed by scripts/install-kube-tools.sh) against the test API server:
//! install, upgrade, list and uninstall with the default Secret release storage.

mod common;

use common::{tool, Kubectl};
use std::path::Path;
use test_apiserver::{Options, TestApiServer};

async fn helm(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(tool("helm"))
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .args(args)
        .env("HOME", dir)
        .env("HELM_CACHE_HOME", dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", dir.join("helm/config"))
        .env("HELM_DATA_HOME", dir.join("helm/data"))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_uninstall() {
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let k = Kubectl::new(&server);
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chart");
    // Typed client-go writes (protobuf bodies) for the kinds the server decodes.
    k.ok(&["create", "namespace", "apps"]).await;

    let (ok, out) = helm(k.dir(), &["install", "rel", chart, "-n", "apps"]).await;
    assert!(ok && out.contains("STATUS: deployed"), "{out}");
    assert_eq!(
        k.ok(&[
            "get",
            "cm",
            "rel-cfg",
            "-n",
            "apps",
            "-o",
            "jsonpath={.data.greeting}"
        ])
        .await,
        "hello"
    );
    assert!(server
        .stored_object("", "secrets", "apps", "sh.helm.release.v1.rel.v1")
        .is_some());

    let (ok, out) = helm(
        k.dir(),
        &[
            "upgrade",
            "rel",
            chart,
            "-n",
            "apps",
            "--set",
            "replicas=3,greeting=bye",
        ],
    )
    .await;
    assert!(ok && out.contains("REVISION: 2"), "{out}");
    assert_eq!(
        k.ok(&[
            "get",
            "deploy",
            "rel-dep",
            "-n",
            "apps",
            "-o",
            "jsonpath={.spec.replicas}"
        ])
        .await,
        "3"
    );
    let (ok, out) = helm(k.dir(), &["list", "-n", "apps"]).await;
    assert!(
        ok && out.contains("rel") && out.contains("deployed"),
        "{out}"
    );

    let (ok, out) = helm(k.dir(), &["uninstall", "rel", "-n", "apps"]).await;
    assert!(ok, "{out}");
    assert!(server
        .stored_object("apps", "deployments", "apps", "rel-dep")
        .is_none());
    assert!(server
        .stored_object("", "configmaps", "apps", "rel-cfg")
        .is_none());

    // helm template | kubectl apply --server-side
    let (ok, rendered) = helm(
        k.dir(),
        &["template", "tpl", chart, "--set", "greeting=templated"],
    )
    .await;
    assert!(ok, "{rendered}");
    let file = k.file("rendered.yaml", &rendered);
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    assert_eq!(
        k.ok(&["get", "cm", "tpl-cfg", "-o", "jsonpath={.data.greeting}"])
            .await,
        "templated"
    );
}
