#!/usr/bin/env bash
# The test suite: installs loadgate with its test tools into .venv, checks lint, format and types, runs
# pytest. Extra arguments go to pytest (e.g. `bash ci/run_tests.sh tests/sla -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib/venv.sh
ensure_venv test
"$LOADGATE_PY" -m ruff check .
"$LOADGATE_PY" -m ruff format --check .
"$LOADGATE_PY" -m mypy
exec "$LOADGATE_PY" -m pytest "$@"
