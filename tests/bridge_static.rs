//! The static build: the same `mcp-operator` binary must run the bridge inside arbitrary images
//! (Debian, Alpine, distroless), so it must need no dynamic loader and no shared library.
//!
//! Build it, then run this test:
//! ```text
//! bash scripts/build-static.sh       # +crt-static on the gnu target, in target/static/
//! cargo test --test bridge_static -- --ignored
//! ```
//! (`MCP_OPERATOR_STATIC_BIN` points the test at another binary.) Ignored by default because the
//! static release build takes minutes.

#[path = "bridge/common.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

fn static_binary() -> PathBuf {
    let candidates = [
        "target/x86_64-unknown-linux-gnu/release/mcp-operator",
        // benches and scripts build it in a target dir of its own, not to hold the shared lock
        "target/static/x86_64-unknown-linux-gnu/release/mcp-operator",
    ];
    let path = std::env::var_os("MCP_OPERATOR_STATIC_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            candidates
                .iter()
                .map(|c| repo().join(c))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| repo().join(candidates[0]));
    assert!(
        path.exists(),
        "no static binary at {}: build it as the header of this file says",
        path.display()
    );
    path
}

/// Program header types of a 64-bit little-endian ELF file.
fn program_header_types(elf: &[u8]) -> Vec<u32> {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes(elf[o..o + 4].try_into().unwrap())
        })
        .collect()
}

#[test]
#[ignore = "needs the static release build (see the file header)"]
fn the_static_binary_needs_no_loader_and_runs_the_bridge() {
    let bin = static_binary();
    let elf = std::fs::read(&bin).unwrap();
    const PT_INTERP: u32 = 3;
    assert!(
        !program_header_types(&elf).contains(&PT_INTERP),
        "{} asks for a dynamic loader: it would not start in a foreign image",
        bin.display()
    );

    // Run it from an empty directory with an empty environment, as in a bare image.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mcp-operator");
    std::fs::copy(&bin, &copy).unwrap();
    let mut cmd = Command::new(&copy);
    cmd.args(["bridge", "--listen", "127.0.0.1:0", "--"])
        .args(time_server())
        .env_clear()
        .current_dir(dir.path());
    let mut bridge = Bridge::launch(cmd);
    bridge.wait_ready(Duration::from_secs(30));
    let out = python_client("streamable", &bridge.url("/mcp"), "time", &[]);
    assert_eq!(out["server"], "mcp-time", "{out}");
    assert_eq!(out["now"]["ok"], true, "{out}");
    bridge.signal("TERM");
    assert!(bridge.wait_exit(Duration::from_secs(5)).is_some());
}
