#!/usr/bin/env bash
# Installs what the end-to-end tests (crates/wharf/tests/e2e) drive: skopeo, umoci, buildah,
# podman, Distribution 2.8 (docker-registry), dockerd and the docker CLI (docker.io), jq, and a
# Python virtualenv at $WHARF_E2E_VENV (default ~/.cache/wharf/venv) with the oras SDK and
# moto_server, the S3-compatible server the storage tests run against; and Azurite (npm), the
# Azure Storage emulator.
#
# Idempotent and quiet: it installs only what is missing, prints one line per thing it
# installs, and shows the installer's output only when the installer fails. Needs root for apt.
set -euo pipefail

PACKAGES=(skopeo umoci buildah podman docker-registry docker.io jq python3-venv)
VENV="${WHARF_E2E_VENV:-${HOME:-/root}/.cache/wharf/venv}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Runs a command with its output in $log, printing that output only if it fails.
quietly() {
  if ! "$@" >"$log" 2>&1; then
    echo "e2e-setup: failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}

missing=()
for package in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "e2e-setup: installing ${missing[*]}"
  quietly apt-get update -qq
  quietly env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq "${missing[@]}"
fi

if ! "$VENV/bin/python" -c 'import oras.client, moto.server' >/dev/null 2>&1; then
  echo "e2e-setup: creating $VENV with oras and moto (the S3-compatible test server)"
  [[ -x "$VENV/bin/python" ]] || quietly python3 -m venv "$VENV"
  quietly "$VENV/bin/pip" install --quiet --disable-pip-version-check oras 'moto[server]'
fi

# Azurite, Microsoft's Azure Storage emulator (npm), for the AzureStorage driver's tests.
AZURITE="${WHARF_AZURITE_DIR:-${HOME:-/root}/.cache/wharf/azurite}"
if [[ ! -x "$AZURITE/node_modules/.bin/azurite-blob" ]]; then
  echo "e2e-setup: installing azurite into $AZURITE"
  quietly npm install --silent --no-audit --no-fund --prefix "$AZURITE" azurite@3
fi
