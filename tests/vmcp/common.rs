//! What the vmcp tests share: starting the runtime, the Python SDK client, and processes that
//! end with the test.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{config_file, python, repo, Bridge};

/// A process killed when dropped (the native HTTP server-everything).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `mcp-operator vmcp` on `config` (loopback backends allowed unless `guarded`).
pub fn vmcp(config: &Value, guarded: bool) -> (Bridge, tempfile::TempDir) {
    let (dir, path) = config_file(&config.to_string());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-operator"));
    cmd.args(["vmcp", "--config", &path, "--listen", "127.0.0.1:0"]);
    if !guarded {
        cmd.arg("--insecure-allow-loopback-backends");
    }
    cmd.env("RUST_LOG", "warn,mcp_operator::vmcp=info");
    (Bridge::launch(cmd), dir)
}

pub fn vmcp_client(url: &str, calls: &Value) -> Value {
    let out = Command::new(python())
        .arg(repo().join("tests/vmcp/client.py"))
        .arg(url)
        .arg(calls.to_string())
        .output()
        .expect("run the Python MCP client");
    assert!(
        out.status.success(),
        "the Python MCP client failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}
