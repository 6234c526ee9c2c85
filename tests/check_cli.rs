//! `mcp-operator check` as a user runs it: exit codes, text and JSON output, and bad input.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
}

fn check(args: &[&str]) -> Output {
    bin()
        .arg("check")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_temp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn examples_are_all_accepted() {
    // The README's first command spells it without -f.
    let o = check(&[root().join("examples").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("mcpserver/fetch (default): accepted"), "{out}");
    assert!(
        out.contains("mcpserver/github (toolhive-system): accepted"),
        "{out}"
    );
    assert!(
        out.contains("mcpregistry/my-registry (toolhive-system): accepted"),
        "{out}"
    );
    assert!(!out.contains("rejected"), "{out}");
    // No example hides its own tools (issue 17: one named a renamed tool by its old name).
    assert!(!out.contains("is renamed to"), "{out}");
}

/// `check` reads an MCPServer's inline tools with the MCPToolConfig it references when that is
/// among its inputs: old names of renamed tools and disjoint allow-lists are warned about.
#[test]
fn inline_tools_are_read_with_the_referenced_tool_config() {
    let input = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPToolConfig\nmetadata: {name: tc}\n\
                 spec:\n  toolsFilter: [add]\n  toolsOverride:\n    get-sum: {name: add}\n---\n\
                 apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: old-name}\n\
                 spec: {image: docker.io/mcp/fetch, tools: [get-sum], toolConfigRef: {name: tc}}\n---\n\
                 apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: disjoint}\n\
                 spec: {image: docker.io/mcp/fetch, tools: [echo], toolConfigRef: {name: tc}}\n---\n\
                 apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: fine}\n\
                 spec: {image: docker.io/mcp/fetch, tools: [add], toolConfigRef: {name: tc}}\n";
    let (_d, p) = write_temp("tools.yaml", input.as_bytes());
    let o = check(&["-f", p.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let reports: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let warnings = |name: &str| -> Vec<String> {
        let r = reports.iter().find(|r| r["name"] == name).unwrap();
        serde_json::from_value(r["warnings"].clone()).unwrap()
    };
    let old = warnings("old-name");
    assert!(
        old.iter().any(|w| w.starts_with("spec.tools[0]: \"get-sum\" is renamed to \"add\" by MCPToolConfig \"tc\"'s spec.toolsOverride[get-sum]")),
        "{old:?}"
    );
    let disjoint = warnings("disjoint");
    assert!(
        disjoint.iter().any(|w| w
            .contains("no tool is in both spec.tools and the toolsFilter of MCPToolConfig \"tc\"")),
        "{disjoint:?}"
    );
    let fine = warnings("fine");
    assert!(
        !fine
            .iter()
            .any(|w| w.contains("renamed") || w.contains("no tool")),
        "{fine:?}"
    );
}

#[test]
fn seed_github_gets_upstream_defaults_in_json() {
    let seed = root().join("examples/seed/mcpserver-github.yaml");
    let o = check(&["-f", seed.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v[0];
    assert_eq!(r["allowed"], true);
    assert_eq!(r["kind"], "MCPServer");
    assert_eq!(r["namespace"], "toolhive-system");
    assert_eq!(r["defaulted"]["spec"]["transport"], "stdio");
    assert_eq!(r["defaulted"]["spec"]["proxyPort"], 8080);
    assert_eq!(r["index"], 0);
}

/// The Done-when rejections, each through the real binary in both output formats.
#[test]
fn rejections_name_the_field_in_text_and_json() {
    let cases = [
        (
            "mcpserver/bad-transport.yaml",
            "spec.transport",
            "Unsupported value: \"grpc\"",
        ),
        (
            "mcpserver/proxy-port-zero.yaml",
            "spec.proxyPort",
            "must be between 1 and 65535, inclusive",
        ),
        (
            "mcpserver/proxy-port-70000.yaml",
            "spec.proxyPort",
            "Invalid value: 70000",
        ),
        (
            "mcpserver/secret-without-key.yaml",
            "spec.secrets[0].key",
            "Required value",
        ),
        (
            "mcpserver/env-name-with-space.yaml",
            "spec.env[0].name",
            "Invalid value: \"MY VAR\"",
        ),
        (
            "mcpregistry/config-not-yaml.yaml",
            "spec.configYAML",
            "not valid YAML",
        ),
        (
            "mcpregistry/config-unknown-source.yaml",
            "spec.configYAML",
            "unknown source \"missing\"",
        ),
        (
            "mcpregistry/file-outside-mounts.yaml",
            "spec.configYAML",
            "not inside any of spec.volumeMounts",
        ),
        // Issue 17: the object as it will be stored, stash included.
        (
            "mcpremoteproxy/v1alpha1-stash-replicas-negative.yaml",
            "spec.replicas",
            "(from annotation toolhive.stacklok.dev/v1beta1-replicas)",
        ),
        (
            "mcpremoteproxy/v1alpha1-stash-allow-private-not-boolean.yaml",
            "spec.allowPrivateEndpoint",
            "must be of type boolean (from annotation",
        ),
        (
            "mcpremoteproxy/v1alpha1-stash-not-json.yaml",
            "metadata.annotations[toolhive.stacklok.dev/v1beta1-allowPrivateEndpoint]",
            "not valid JSON",
        ),
        (
            "mcpremoteproxy/v1alpha1-stash-pod-template-malformed.yaml",
            "spec.podTemplateSpec.spec.containers",
            "not a valid PodTemplateSpec",
        ),
        (
            "mcpregistry/v1alpha1-stash-config-fails-schema.yaml",
            "spec.configYAML",
            "(from annotation toolhive.stacklok.dev/v1beta1-configYAML)",
        ),
        (
            "mcpregistry/v1alpha1-stash-reserved-hostpath-volume.yaml",
            "spec.volumes[0].name",
            "is reserved for a volume the operator adds (from annotation",
        ),
        (
            "mcpregistry/v1alpha1-stash-reserved-hostpath-volume.yaml",
            "spec.volumeMounts[0].mountPath",
            "must be an absolute path (from annotation",
        ),
        (
            "mcpserver/v1beta1-stash-port-not-json.yaml",
            "metadata.annotations[toolhive.stacklok.dev/v1alpha1-port]",
            "not valid JSON",
        ),
        (
            "mcpserver/volume-reserved-names.yaml",
            "spec.volumes[0].name",
            "is reserved for a volume the operator adds",
        ),
        (
            "mcpserver/volume-reserved-mount-paths.yaml",
            "spec.volumes[0].mountPath",
            "the operator mounts the bridge binary at /mcp/bin",
        ),
    ];
    for (case, field, message) in cases {
        let path = root().join("tests/admission").join(case);
        let o = check(&["-f", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{case}: {}", text(&o));
        let out = text(&o);
        assert!(out.contains("): rejected"), "{case}: {out}");
        assert!(
            out.contains(&format!("  {field}: ")) && out.contains(message),
            "{case}: {out}"
        );

        let o = check(&["-f", path.to_str().unwrap(), "-o", "json"]);
        assert_eq!(o.status.code(), Some(1), "{case}");
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let errors = v[0]["errors"].as_array().unwrap();
        assert_eq!(v[0]["allowed"], false, "{case}");
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["message"].as_str().unwrap().contains(message)),
            "{case}: {errors:#?}"
        );
        assert!(
            errors
                .iter()
                .all(|e| e["type"].as_str().unwrap().starts_with("FieldValue")),
            "{case}"
        );
    }
}

#[test]
fn warnings_are_prefixed() {
    let seed = root().join("examples/seed/mcpserver-fetch.yaml");
    let out = text(&check(&["-f", seed.to_str().unwrap()]));
    assert!(
        out.contains("  Warning: spec.mcpPort: ignored for transport stdio"),
        "{out}"
    );
}

#[test]
fn other_groups_are_skipped_with_a_note() {
    let (_d, p) = write_temp(
        "mixed.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPGroup\nmetadata: {name: g}\nspec: {}\n",
    );
    let o = check(&["-f", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("configmap/c (default): skipped"), "{out}");
    assert!(out.contains("mcpgroup/g (default): accepted"), "{out}");
}

#[test]
fn stdin_is_read_with_dash() {
    let mut child = bin()
        .args(["check", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: s}\nspec: {image: nginx, transport: grpc}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("spec.transport: Unsupported value"));
}

/// Unreadable input exits 2 with the file and the position; nothing panics or hangs.
#[test]
fn bad_input_is_reported_with_file_and_position() {
    let deep = format!("a: {}{}", "[".repeat(1000), "]".repeat(1000));
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n\
                d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n\
                g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let huge = format!(
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {{name: s}}\nspec:\n  image: nginx\n  args: [\"{}\"]\n",
        "x".repeat(10 * 1024 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "latin1.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf\xe9\n".to_vec(),
            "latin1.yaml:4:12: not valid UTF-8",
        ),
        (
            "syntax.yaml",
            b"apiVersion: v1\nkind: [ConfigMap\n".to_vec(),
            "syntax.yaml:3:1: YAML syntax error",
        ),
        ("deep.yaml", deep.into_bytes(), "deep.yaml:1:"),
        ("bomb.yaml", bomb.as_bytes().to_vec(), "bomb.yaml:"),
        (
            "huge.yaml",
            huge.into_bytes(),
            "Kubernetes refuses objects over",
        ),
        (
            "scalar.yaml",
            b"just a string\n".to_vec(),
            "not a Kubernetes object",
        ),
    ];
    for (name, bytes, want) in cases {
        let (_d, p) = write_temp(name, &bytes);
        let started = std::time::Instant::now();
        let o = check(&["-f", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{name}: want {want:?} in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            started.elapsed().as_secs() < 20,
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn missing_file_exits_2() {
    let o = check(&["-f", "/nonexistent/manifests.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent/manifests.yaml"));
}

#[test]
fn wrong_types_and_unknown_fields_are_rejected_not_crashes() {
    let (_d, p) = write_temp(
        "types.yaml",
        b"apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: s}\nspec:\n  image: [nginx]\n  proxyPort: {a: 1}\n  env: yes\n  bogus: 1\n",
    );
    let o = check(&["-f", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    for f in [
        "spec.image: Invalid value: \"array\": must be of type string",
        "spec.proxyPort: Invalid value: \"object\"",
        "spec.env: Invalid value: \"string\": must be of type array",
        "spec.bogus: Forbidden: unknown field",
    ] {
        assert!(out.contains(f), "missing {f:?} in {out}");
    }
}

#[test]
fn crds_command_prints_what_crds_folder_holds() {
    let o = bin().arg("crds").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let printed = String::from_utf8(o.stdout).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let on_disk: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(printed, on_disk);
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["check", "crds", "bridge"] {
        let o = bin().args([sub, "--help"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{sub}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage:"),
            "{sub}"
        );
    }
}

/// `convert` turns the old-shape examples into v1beta1 manifests `check` accepts, and back into
/// the very objects it started from.
#[test]
fn convert_round_trips_the_v1alpha1_examples() {
    let dir = root().join("examples/v1alpha1");
    let up = bin()
        .args(["convert", "--to", "v1beta1", "-f"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    // The inline OIDC block is kept (in the stash), and what it means is said (issue 17).
    let said = String::from_utf8_lossy(&up.stderr).into_owned();
    assert!(
        said.contains("toolhive.stacklok.dev/v1alpha1-oidcConfig]: the inline oidcConfig of the v1alpha1 form: this inline form of authentication is not enforced by mcp-operator, so the server is not deployed"),
        "{said}"
    );
    let beta = String::from_utf8(up.stdout).unwrap();
    assert!(
        !beta.contains("apiVersion: toolhive.stacklok.dev/v1alpha1"),
        "{beta}"
    );
    assert!(
        beta.contains("# An MCPServer in the old"),
        "leading comments are kept: {beta}"
    );
    let (_d, beta_file) = write_temp("beta.yaml", beta.as_bytes());
    let checked = check(&[beta_file.to_str().unwrap()]);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    // The registries layout converts too, and says what the user now does for its database.
    assert!(
        said.contains(
            "spec.databaseConfig: The old operator generated the Secret \"team-catalog-db-pgpass\""
        ),
        "{said}"
    );
    // The VirtualMCPServer's inline block too, at its own path.
    assert!(
        said.contains("toolhive.stacklok.dev/v1alpha1-incomingAuth.oidcConfig]: the inline incomingAuth.oidcConfig of the v1alpha1 form: this inline form of authentication is not enforced by mcp-operator, so the VirtualMCPServer is not deployed"),
        "{said}"
    );
    assert_eq!(
        text(&checked).matches("accepted").count(),
        5,
        "{}",
        text(&checked)
    );

    let down = bin()
        .args(["convert", "--to", "v1alpha1", "-f"])
        .arg(&beta_file)
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    let parse = |s: &str| -> Vec<Value> {
        mcp_operator::manifest::parse_documents("x", s)
            .unwrap()
            .into_iter()
            .map(|d| d.value)
            .collect()
    };
    let mut original = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        original.extend(parse(&std::fs::read_to_string(f).unwrap()));
    }
    assert_eq!(parse(&String::from_utf8(down.stdout).unwrap()), original);
}

#[test]
fn convert_leaves_other_documents_untouched() {
    let input = "# keep me\napiVersion: v1\nkind: ConfigMap   # inline comment\nmetadata: {name: c}\n---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPGroup\nmetadata: {name: g}\nspec: {}\n";
    let (_d, p) = write_temp("mixed.yaml", input.as_bytes());
    let o = bin()
        .args(["convert", "--to", "v1beta1", "-f"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        input,
        "nothing to convert: byte for byte"
    );
}

/// A symlink back up the tree (a loop) and a second link to the same file are followed to no
/// file twice: each object is reported once.
#[cfg(unix)]
#[test]
fn symlink_loops_and_links_read_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(
        root.join("a/server.yaml"),
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: once}\nspec: {image: docker.io/mcp/fetch}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("..", root.join("a/b/up")).unwrap();
    std::os::unix::fs::symlink(root.join("a"), root.join("again")).unwrap();
    std::os::unix::fs::symlink(root.join("a/server.yaml"), root.join("a/b/same.yaml")).unwrap();
    let o = check(&[
        root.to_str().unwrap(),
        root.join("a/server.yaml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert_eq!(out.matches("mcpserver/once").count(), 1, "{out}");
}

/// YAML merge keys mean for `check` and `convert` what they mean for kubectl: the merged fields
/// are part of the object (checked, converted), and `<<` is no field of it.
#[test]
fn merge_keys_are_applied_as_kubectl_applies_them() {
    let input = "apiVersion: toolhive.stacklok.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: merged}\nspec:\n  <<: {image: docker.io/mcp/fetch, port: 9090}\n  transport: stdio\n";
    let (_d, p) = write_temp("merged.yaml", input.as_bytes());
    let o = check(&["-f", p.to_str().unwrap(), "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["allowed"], true, "{v}");
    assert_eq!(v[0]["defaulted"]["spec"]["image"], "docker.io/mcp/fetch");
    assert_eq!(v[0]["defaulted"]["spec"]["port"], 9090);
    assert!(v[0]["defaulted"]["spec"].get("<<").is_none(), "{v}");
    let o = bin()
        .args(["convert", "--to", "v1beta1", "-f"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let converted = String::from_utf8_lossy(&o.stdout);
    assert!(converted.contains("proxyPort: 9090"), "{converted}");
    assert!(
        converted.contains("image: docker.io/mcp/fetch"),
        "{converted}"
    );
    assert!(!converted.contains("<<"), "{converted}");
}

/// Comments inside a converted document cannot be kept: `convert` says so instead of dropping
/// them silently; those above the document are kept.
#[test]
fn convert_warns_about_comments_it_cannot_keep() {
    let input = "# above: kept\napiVersion: toolhive.stacklok.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: c}\nspec:\n  # inside: lost\n  image: docker.io/mcp/fetch\n";
    let (_d, p) = write_temp("comments.yaml", input.as_bytes());
    let o = bin()
        .args(["convert", "--to", "v1beta1", "-f"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.starts_with("# above: kept\n"), "{out}");
    assert!(
        err.contains("comments inside a converted document are not kept"),
        "{err}"
    );
    let (_d, p) = write_temp("plain.yaml", b"apiVersion: toolhive.stacklok.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: c}\nspec: {image: docker.io/mcp/fetch}\n");
    let o = bin()
        .args(["convert", "--to", "v1beta1", "-f"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("comments"),
        "{}",
        text(&o)
    );
}
