//! The test OIDC issuer (`tests/bridge/issuer.py`) as a child process of the test.
#![allow(dead_code)]

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::common::{http, python, repo, INSTALL_HINT};

/// The test issuer (a child process, killed when dropped).
pub struct Issuer {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

impl Issuer {
    pub fn start() -> Issuer {
        Issuer::start_with(&[], None)
    }

    /// The issuer with `issuer.py`'s options (`--tls CERT KEY`, `--key-token FILE`); with
    /// `--tls`, `ca_pem` is the CA the test's own client trusts to reach it.
    pub fn start_with(args: &[&std::ffi::OsStr], ca_pem: Option<&str>) -> Issuer {
        let mut child = Command::new(python())
            .arg(repo().join("tests/bridge/issuer.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test issuer");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .expect("the issuer's port");
        let port = serde_json::from_str::<Value>(&first).expect("{\"port\": P}")["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("the issuer did not start ({INSTALL_HINT}): {first}"));
        let (url, http) = match ca_pem {
            Some(pem) => {
                let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("the CA's PEM");
                let client = reqwest::Client::builder()
                    .add_root_certificate(ca)
                    .timeout(std::time::Duration::from_secs(30))
                    .build()
                    .expect("reqwest client");
                (format!("https://localhost:{port}"), client)
            }
            None => (format!("http://127.0.0.1:{port}"), http()),
        };
        Issuer { child, url, http }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Value {
        answer(self.http.post(format!("{}{path}", self.url)).json(body)).await
    }

    /// A token minted by PyJWT in the issuer (see `issuer.py` for `spec`).
    pub async fn token(&self, spec: &Value) -> String {
        self.post("/token", spec).await["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    pub async fn get(&self, path: &str) -> Value {
        answer(self.http.get(format!("{}{path}", self.url))).await
    }

    pub async fn jwks_fetches(&self) -> u64 {
        self.get("/stats").await["jwks_fetches"].as_u64().unwrap()
    }

    /// Discovery and JWKS requests refused for want of the token file's bearer (`--key-token`).
    pub async fn key_fetches_refused(&self) -> u64 {
        self.get("/stats").await["key_fetches_refused"]
            .as_u64()
            .unwrap()
    }
}

/// The issuer's JSON answer to a request.
async fn answer(req: reqwest::RequestBuilder) -> Value {
    req.send()
        .await
        .expect("the issuer answers")
        .json()
        .await
        .expect("JSON from the issuer")
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
