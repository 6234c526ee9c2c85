#!/usr/bin/env bash
# Builds the operator image from Containerfile with buildah, FROM scratch: no base image is
# pulled and no daemon is needed (Debian: apt-get install buildah ca-certificates).
#
#   scripts/build-image.sh [IMAGE]      default: ghcr.io/mcp-operator/mcp-operator:<Cargo version>
#
# MCP_OPERATOR_BINARY=PATH uses an already built static binary instead of running
# scripts/build-static.sh (a release build, long). Storage defaults to the vfs driver and runs
# to chroot isolation, which work inside containers too; STORAGE_DRIVER / BUILDAH_ISOLATION
# override them. Prints the image name. Then: cargo test --test chart -- --ignored image
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"
IMAGE="${1:-ghcr.io/mcp-operator/mcp-operator:$VERSION}"
CA_ROOTS=/etc/ssl/certs/ca-certificates.crt
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

command -v buildah >/dev/null || { echo "buildah is missing: apt-get install buildah" >&2; exit 1; }
[ -s "$CA_ROOTS" ] || { echo "$CA_ROOTS is missing: apt-get install ca-certificates" >&2; exit 1; }
BINARY="${MCP_OPERATOR_BINARY:-}"
if [ -z "$BINARY" ]; then
    BINARY="$("$ROOT/scripts/build-static.sh" | tail -n1)"
fi
# FROM scratch has no loader: a dynamic binary would fail at start with "no such file".
if ! file "$BINARY" | grep -q 'statically linked\|static-pie linked'; then
    echo "$BINARY is not statically linked: build it with scripts/build-static.sh" >&2
    exit 1
fi

CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
cp "$BINARY" "$CONTEXT/mcp-operator"
cp "$CA_ROOTS" "$CONTEXT/ca-certificates.crt"
buildah build --quiet --layers=false -f "$ROOT/Containerfile" -t "$IMAGE" "$CONTEXT" >&2
echo "$IMAGE"
