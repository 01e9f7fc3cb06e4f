#!/usr/bin/env bash
# The npm packages from package-lock.json (uPlot, client-zip and zip.js for the page; binaryen, TypeScript,
# playwright-core, onnxruntime-node and axe-core for the build and tests), installed when missing or
# stale. .npmrc turns install scripts off: onnxruntime-node's would fetch GPU extras from a
# host that cannot be reached, and its CPU binaries ship inside the package.
set -euo pipefail
cd "$(dirname "$0")/.."
for pkg in uplot client-zip @zip.js/zip.js binaryen typescript playwright-core onnxruntime-node axe-core; do
  if [ ! -d "node_modules/$pkg" ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
    exit 0
  fi
done
