#!/usr/bin/env bash
# Install JupyterHub's proxy, configurable-http-proxy, from the npm registry into .hub-node/
# (git-ignored, never a global install); hub/jupyterhub_config.py and tests/test_class_hub.py
# find it there. Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/.."
CHP_VERSION=4.6.3
if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install node and npm (apt-get install nodejs npm), then run $0 again" >&2
    exit 1
fi
npm install --prefix .hub-node --no-save --no-audit --no-fund "configurable-http-proxy@${CHP_VERSION}"
.hub-node/node_modules/.bin/configurable-http-proxy --version
