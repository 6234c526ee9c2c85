//! Registry credentials from a pod's `imagePullSecrets`, for reading an image's entrypoint from
//! a private registry the same way the kubelet pulls it.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The Secret keys the kubelet reads (`kubernetes.io/dockerconfigjson`, legacy `dockercfg`).
pub const DOCKER_CONFIG_JSON: &str = ".dockerconfigjson";
pub const DOCKER_CFG: &str = ".dockercfg";

/// A user name and password for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl Login {
    /// The `Authorization` header value of HTTP basic authentication.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Tells logins apart (for cache keys) without keeping or showing the password.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(format!("{}\0{}", self.username, self.password));
        hex::encode(&digest[..8])
    }
}

/// Never prints the password: these values pass through reconcile errors and logs.
impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Logins by registry host, first pull secret first (as the kubelet tries them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullCredentials {
    logins: Vec<(String, Login)>,
}

impl PullCredentials {
    pub fn is_empty(&self) -> bool {
        self.logins.is_empty()
    }

    /// Adds the logins of one pull Secret's data; the error names the key that did not parse
    /// (never its contents).
    pub fn add_secret_data(&mut self, data: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
        let (key, modern) = if let Some(v) = data.get(DOCKER_CONFIG_JSON) {
            (v, true)
        } else if let Some(v) = data.get(DOCKER_CFG) {
            (v, false)
        } else {
            return Err(format!("has neither {DOCKER_CONFIG_JSON} nor {DOCKER_CFG}"));
        };
        let name = if modern {
            DOCKER_CONFIG_JSON
        } else {
            DOCKER_CFG
        };
        let doc: serde_json::Value = serde_json::from_slice(key).map_err(|e| {
            format!(
                "{name} is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let auths = if modern { doc.get("auths") } else { Some(&doc) };
        let Some(auths) = auths.and_then(serde_json::Value::as_object) else {
            return Err(format!("{name} has no auths object"));
        };
        for (server, entry) in auths {
            if let Some(login) = login_of(entry) {
                self.logins.push((registry_host(server), login));
            }
        }
        Ok(())
    }

    /// The login for `registry` (as [`super::registry::ImageRef`] names it), if any.
    pub fn for_registry(&self, registry: &str) -> Option<&Login> {
        let wanted = registry_host(registry);
        self.logins
            .iter()
            .find(|(host, _)| *host == wanted)
            .map(|(_, login)| login)
    }
}

/// `username`/`password`, or the base64 `auth` field (`user:password`).
fn login_of(entry: &serde_json::Value) -> Option<Login> {
    let field = |k: &str| entry.get(k).and_then(serde_json::Value::as_str);
    if let (Some(username), Some(password)) = (field("username"), field("password")) {
        if !username.is_empty() {
            return Some(Login {
                username: username.to_string(),
                password: password.to_string(),
            });
        }
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(field("auth")?)
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (username, password) = pair.split_once(':')?;
    Some(Login {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// A docker config key (`https://index.docker.io/v1/`, `ghcr.io`, `host:5000/path`) as the
/// host an image reference names; Docker Hub's aliases all become `registry-1.docker.io`.
pub fn registry_host(server: &str) -> String {
    let without_scheme = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "registry-1.docker.io".to_string()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(key: &str, json: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(key.to_string(), json.as_bytes().to_vec())])
    }

    #[test]
    fn reads_both_secret_formats_and_docker_hub_aliases() {
        let mut creds = PullCredentials::default();
        creds
            .add_secret_data(&data(
                DOCKER_CONFIG_JSON,
                r#"{"auths": {"https://index.docker.io/v1/": {"auth": "aHViOnMzY3JldA=="},
                              "ghcr.io": {"username": "bot", "password": "pat"}}}"#,
            ))
            .unwrap();
        creds
            .add_secret_data(&data(
                DOCKER_CFG,
                r#"{"registry.internal:5000": {"auth": "b2xkOnB3"}}"#,
            ))
            .unwrap();
        let hub = creds.for_registry("registry-1.docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "s3cret")
        );
        assert_eq!(creds.for_registry("GHCR.io").unwrap().username, "bot");
        assert_eq!(
            creds
                .for_registry("registry.internal:5000")
                .unwrap()
                .basic_header(),
            "Basic b2xkOnB3"
        );
        assert!(creds.for_registry("quay.io").is_none());
    }

    #[test]
    fn bad_secrets_are_named_without_their_contents() {
        let mut creds = PullCredentials::default();
        let err = creds
            .add_secret_data(&data(DOCKER_CONFIG_JSON, "{\"auths\": secret-stuff"))
            .unwrap_err();
        assert!(err.starts_with(".dockerconfigjson is not JSON"), "{err}");
        assert!(!err.contains("secret-stuff"));
        let err = creds.add_secret_data(&data("token", "x")).unwrap_err();
        assert!(err.contains("neither"), "{err}");
        assert!(creds.is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let login = Login {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{login:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_ne!(
            login.fingerprint(),
            Login {
                password: "x".into(),
                ..login.clone()
            }
            .fingerprint()
        );
    }
}
