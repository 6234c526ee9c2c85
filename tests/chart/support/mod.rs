//! Shared by the chart tests: the pinned helm binary, rendering the chart into objects, and the
//! RBAC a rendering grants. Never shipped.
#![allow(dead_code)]

pub mod certmanager;

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo().join("chart")
}

/// `.tools/bin/<name>`, installed by `scripts/install-kube-tools.sh`; missing → the test fails.
pub fn tool(name: &str) -> PathBuf {
    let p = repo().join(".tools/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-kube-tools.sh to install the pinned kubectl and helm",
        p.display()
    );
    p
}

/// helm with its state (and an optional kubeconfig) in one temp dir.
pub struct Helm {
    pub dir: tempfile::TempDir,
}

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Helm {
    pub fn new() -> Self {
        Helm {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn command(&self, bin: &str) -> Command {
        let mut c = Command::new(tool(bin));
        let home = self.dir.path();
        c.env("HOME", home)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HELM_CACHE_HOME", home.join("helm/cache"))
            .env("HELM_CONFIG_HOME", home.join("helm/config"))
            .env("HELM_DATA_HOME", home.join("helm/data"));
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_tool("helm", args)
    }

    pub fn kubectl(&self, args: &[&str]) -> Out {
        let cache = self.dir.path().join("kubectl-cache");
        let mut full = vec!["--cache-dir", cache.to_str().unwrap()];
        full.extend_from_slice(args);
        self.run_tool("kubectl", &full)
    }

    fn run_tool(&self, bin: &str, args: &[&str]) -> Out {
        let out = self.command(bin).args(args).output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.ok, "helm {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
        o.stdout
    }

    /// `helm template RELEASE chart/ -n NAMESPACE <extra>` as objects.
    pub fn render(&self, release: &str, namespace: &str, extra: &[&str]) -> Vec<Value> {
        let chart = chart_dir();
        let mut args = vec![
            "template",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            namespace,
        ];
        args.extend_from_slice(extra);
        documents(&self.ok(&args))
    }

    /// Writes `content` into the temp dir; returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

/// Every non-empty document of a YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

pub fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = kind(docs, k);
    assert_eq!(found.len(), 1, "exactly one {k}");
    found[0]
}

/// The operator container of the rendered Deployment.
pub fn manager(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

pub fn args(docs: &[Value]) -> Vec<String> {
    manager(docs)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The value of `--flag=value` in the Deployment's args.
pub fn arg(docs: &[Value], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    args(docs)
        .into_iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
}

pub fn env(docs: &[Value], name: &str) -> Option<String> {
    manager(docs)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

/// One permission: where ("" = every namespace and cluster-scoped objects), group, resource
/// (`plural` or `plural/sub`), verb, and the object name it is limited to ("" = any).
pub type Grant = (String, String, String, String, String);

fn rule_grants(at: &str, rule: &Value, out: &mut BTreeSet<Grant>) {
    let list = |k: &str| -> Vec<String> {
        rule[k]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let names = {
        let n = list("resourceNames");
        if n.is_empty() {
            vec![String::new()]
        } else {
            n
        }
    };
    for g in list("apiGroups") {
        for r in list("resources") {
            for v in list("verbs") {
                for n in &names {
                    out.insert((at.into(), g.clone(), r.clone(), v.clone(), n.clone()));
                }
            }
        }
    }
}

/// What the rendered RBAC grants the ServiceAccount `sa` of `namespace`.
pub fn granted(docs: &[Value], sa: &str, namespace: &str) -> BTreeSet<Grant> {
    let binds = |b: &Value| {
        b["subjects"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == namespace
            })
        })
    };
    let role = |kind: &str, name: &Value, ns: Option<&Value>| {
        docs.iter()
            .find(|d| {
                d["kind"] == kind
                    && d["metadata"]["name"] == *name
                    && ns.is_none_or(|ns| d["metadata"]["namespace"] == *ns)
            })
            .unwrap_or_else(|| panic!("{kind} {name} is bound but not rendered"))
    };
    let mut out = BTreeSet::new();
    for b in kind(docs, "ClusterRoleBinding")
        .into_iter()
        .filter(|b| binds(b))
    {
        let r = role("ClusterRole", &b["roleRef"]["name"], None);
        for rule in r["rules"].as_array().unwrap() {
            rule_grants("", rule, &mut out);
        }
    }
    for b in kind(docs, "RoleBinding").into_iter().filter(|b| binds(b)) {
        let at = b["metadata"]["namespace"].as_str().unwrap();
        let r = if b["roleRef"]["kind"] == "Role" {
            role(
                "Role",
                &b["roleRef"]["name"],
                Some(&b["metadata"]["namespace"]),
            )
        } else {
            role("ClusterRole", &b["roleRef"]["name"], None)
        };
        for rule in r["rules"].as_array().unwrap() {
            rule_grants(at, rule, &mut out);
        }
    }
    out
}

/// Whether `grants` allow `verb` on `group/resource` named `name` in `namespace` ("" for a
/// cluster-scoped object or an all-namespaces request).
pub fn allows(
    grants: &BTreeSet<Grant>,
    namespace: &str,
    group: &str,
    resource: &str,
    verb: &str,
    name: &str,
) -> bool {
    grants.iter().any(|(at, g, r, v, n)| {
        (at.is_empty() || at == namespace)
            && g == group
            && r == resource
            && v == verb
            && (n.is_empty() || n == name)
    })
}
