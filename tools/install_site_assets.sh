#!/usr/bin/env bash
# Install what the course website serves from its own files instead of a CDN: MathJax 3 (formulas)
# and axe-core (the accessibility check of tests/test_site.py), from the npm registry into .site-node/
# (git-ignored, never a global install). tools/build_site.py copies MathJax into the built site.
# Needs node and npm (Debian: apt-get install nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/.."
MATHJAX_VERSION=3.2.2
AXE_VERSION=4.10.3
if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install node and npm (apt-get install nodejs npm), then run $0 again" >&2
    exit 1
fi
npm install --prefix .site-node --no-save --no-audit --no-fund \
    "mathjax@${MATHJAX_VERSION}" "axe-core@${AXE_VERSION}"
test -f .site-node/node_modules/mathjax/es5/tex-chtml.js
test -f .site-node/node_modules/axe-core/axe.min.js
echo "MathJax ${MATHJAX_VERSION} and axe-core ${AXE_VERSION} installed into .site-node/"
