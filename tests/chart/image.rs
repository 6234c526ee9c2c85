//! The operator image (Containerfile, built by scripts/build-image.sh with buildah FROM
//! scratch): inside it, `--version`, `install DIR` (what the bridge's init container runs) and
//! `check` work, as the numeric non-root user, with the CA roots in place.
//!
//! Ignored by default: it needs buildah and the static release build (long).
//!   apt-get install buildah ca-certificates
//!   cargo test --test chart -- --ignored image
//! MCP_OPERATOR_BINARY=target/static/x86_64-unknown-linux-gnu/release/mcp-operator skips the
//! static build when that binary is current.

use std::path::Path;
use std::process::Command;

const IMAGE: &str = "localhost/mcp-operator-image-test:latest";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `buildah ARGS` with the script's storage and isolation; (success, stdout, stderr).
fn buildah(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("buildah")
        .env("STORAGE_DRIVER", "vfs")
        .env("BUILDAH_ISOLATION", "chroot")
        .args(args)
        .output()
        .expect("buildah is missing: apt-get install buildah");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn buildah_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = buildah(args);
    assert!(ok, "buildah {args:?}: {stdout}{stderr}");
    stdout
}

/// The working container; removed with the image when the test ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = buildah(&["rm", &self.0]);
        let _ = buildah(&["rmi", IMAGE]);
    }
}

#[test]
#[ignore = "needs buildah and the static release build: cargo test --test chart -- --ignored image"]
fn the_image_runs_version_install_and_check() {
    let out = Command::new(repo().join("scripts/build-image.sh"))
        .arg(IMAGE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/build-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), IMAGE);

    let config: serde_json::Value =
        serde_json::from_str(&buildah_ok(&["inspect", "--type", "image", IMAGE])).unwrap();
    let oci = &config["OCIv1"]["config"];
    assert_eq!(oci["User"], "65532:65532", "numeric non-root user");
    assert_eq!(oci["Entrypoint"], serde_json::json!(["/mcp-operator"]));
    let layers = config["OCIv1"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        layers <= 2,
        "FROM scratch: the binary and the CA roots only ({layers} layers)"
    );

    let name = buildah_ok(&["from", "--name", "mcp-operator-image-test", IMAGE]);
    let container = Container(name.trim().to_string());
    // The bridge's init container copies the binary into an emptyDir shared with the server
    // container; here a world-writable host directory plays the emptyDir.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let volume = format!("{}:/mcp/bin", shared.path().display());
    let run = |args: &[&str]| {
        let mut full = vec![
            "run",
            "--isolation",
            "chroot",
            "-v",
            volume.as_str(),
            container.0.as_str(),
            "--",
        ];
        full.extend_from_slice(args);
        buildah(&full)
    };

    let (ok, version, err) = run(&["/mcp-operator", "--version"]);
    assert!(ok, "{err}");
    assert_eq!(
        version.trim(),
        format!("mcp-operator {}", env!("CARGO_PKG_VERSION"))
    );

    let (ok, _, err) = run(&["/mcp-operator", "install", "/mcp/bin/mcp-operator"]);
    assert!(ok, "install as the image's user: {err}");
    assert!(shared.path().join("mcp-operator").exists());
    let (ok, copied, err) = run(&["/mcp/bin/mcp-operator", "--version"]);
    assert!(ok && copied == version, "the installed copy runs: {err}");

    // Offline admission on a manifest: a good one passes, a bad one names the field.
    buildah_ok(&[
        "copy",
        &container.0,
        repo().join("examples/mcpserver-sse.yaml").to_str().unwrap(),
        "/work/good.yaml",
    ]);
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: bad, namespace: default}\nspec: {image: docker.io/mcp/fetch, transport: grpc}\n",
    )
    .unwrap();
    // Readable by the image's user (a temp file is created 0600).
    std::fs::set_permissions(
        bad.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    buildah_ok(&[
        "copy",
        &container.0,
        bad.path().to_str().unwrap(),
        "/work/bad.yaml",
    ]);
    let (ok, _, err) = run(&["/mcp-operator", "check", "-f", "/work/good.yaml"]);
    assert!(ok, "check of a good manifest: {err}");
    let (ok, stdout, err) = run(&["/mcp-operator", "check", "-f", "/work/bad.yaml"]);
    assert!(!ok, "check of a bad manifest passed: {stdout}");
    assert!(
        format!("{stdout}{err}").contains("spec.transport"),
        "{stdout}{err}"
    );

    // The CA roots registry look-ups trust.
    let root = buildah_ok(&["mount", &container.0]);
    let roots = Path::new(root.trim()).join("etc/ssl/certs/ca-certificates.crt");
    let pem = std::fs::read_to_string(&roots).unwrap();
    assert!(
        pem.matches("BEGIN CERTIFICATE").count() > 50,
        "{}",
        roots.display()
    );
    let _ = buildah(&["umount", &container.0]);
}
