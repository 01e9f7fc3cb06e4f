#!/usr/bin/env bash
# The main command: build the page and serve it on http://127.0.0.1:${PORT:-8000}/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-web.sh
port="${PORT:-8000}"
echo "== Kiln is at http://127.0.0.1:$port/  (Ctrl-C to stop)"
exec python3 scripts/serve.py --port "$port" --dir www
