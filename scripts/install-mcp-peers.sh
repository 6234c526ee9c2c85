#!/usr/bin/env bash
# Installs the pinned third-party MCP peers the bridge tests and benchmark run against, into the
# gitignored folder `.tools/` of the repository:
#   .tools/node/node_modules  npm: @modelcontextprotocol/server-everything, supergateway
#   .tools/venv               PyPI: mcp (the client), mcp-server-time, mcp-proxy; PyJWT and
#                             cryptography (the auth tests' issuer mints real JWTs with them)
# Idempotent: each part is skipped when its pinned version is already installed.
# Needs node/npm and python3 (with venv) on PATH; reaches only the npm registry and PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

# Pinned versions (see shared/reference/mcp-transports.md §1). mcp-proxy and mcp-server-time pin
# mcp<2, so the client is the 1.x line.
NPM_EVERYTHING="2026.8.31"
NPM_SUPERGATEWAY="4.0.0"
PY_MCP="1.30.0"
PY_MCP_PROXY="0.13.0"
PY_MCP_SERVER_TIME="2026.10.10"
PY_PYJWT="2.15.1"
PY_CRYPTOGRAPHY="50.0.2"

mkdir -p "$TOOLS/node"

node_stamp="$TOOLS/node/.installed-$NPM_EVERYTHING-$NPM_SUPERGATEWAY"
if [[ -f "$node_stamp" && -f "$TOOLS/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ]]; then
    echo "install-mcp-peers: npm peers already installed"
else
    echo "install-mcp-peers: installing npm peers"
    cat >"$TOOLS/node/package.json" <<JSON
{
  "name": "mcp-operator-bridge-peers",
  "private": true,
  "dependencies": {
    "@modelcontextprotocol/server-everything": "$NPM_EVERYTHING",
    "supergateway": "$NPM_SUPERGATEWAY"
  }
}
JSON
    (cd "$TOOLS/node" && npm install --no-audit --no-fund --loglevel=error)
    rm -f "$TOOLS"/node/.installed-*
    touch "$node_stamp"
fi

py_stamp="$TOOLS/venv/.installed-$PY_MCP-$PY_MCP_PROXY-$PY_MCP_SERVER_TIME"
if [[ -f "$py_stamp" && -x "$TOOLS/venv/bin/python" ]]; then
    echo "install-mcp-peers: PyPI peers already installed"
else
    echo "install-mcp-peers: installing PyPI peers"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
        "mcp==$PY_MCP" "mcp-proxy==$PY_MCP_PROXY" "mcp-server-time==$PY_MCP_SERVER_TIME"
    rm -f "$TOOLS"/venv/.installed-*
    touch "$py_stamp"
fi
# The auth tests' issuer (tests/bridge/issuer.py); its own stamp, so adding it does not reinstall
# the peers above.
jwt_stamp="$TOOLS/venv/.installed-jwt-$PY_PYJWT-$PY_CRYPTOGRAPHY"
if [[ -f "$jwt_stamp" ]]; then
    echo "install-mcp-peers: PyJWT already installed"
else
    echo "install-mcp-peers: installing PyJWT"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
        "PyJWT==$PY_PYJWT" "cryptography==$PY_CRYPTOGRAPHY"
    rm -f "$TOOLS"/venv/.installed-jwt-*
    touch "$jwt_stamp"
fi
echo "install-mcp-peers: done ($TOOLS)"
