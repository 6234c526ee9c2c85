#!/usr/bin/env bash
# Installs everything the test suite needs besides the Rust toolchain, pinned, into the
# gitignored folder .tools/: real kubectl and helm, and the real MCP servers, clients and peer
# proxies the bridge tests talk to. Idempotent; safe to run before every `cargo test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/install-kube-tools.sh"
"$here/install-mcp-peers.sh"
