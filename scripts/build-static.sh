#!/usr/bin/env bash
# Builds the static `mcp-operator` binary that runs inside arbitrary MCP server images (Debian,
# Alpine, distroless): glibc linked statically (`+crt-static` on the gnu target; the musl target
# is not installable offline here). Output:
#   target/static/x86_64-unknown-linux-gnu/release/mcp-operator
# Its own target dir keeps the shared one unlocked during the (long) build. The explicit
# --target keeps build scripts and proc-macros dynamic, as they must be.
# Then: cargo test --test bridge_static -- --ignored
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO_TARGET_DIR="$ROOT/target/static" RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --target x86_64-unknown-linux-gnu --bin mcp-operator
echo "$ROOT/target/static/x86_64-unknown-linux-gnu/release/mcp-operator"
