#!/usr/bin/env bash
# The test suite: installs what is missing into .venv, lints with ruff, runs pytest.
# Extra arguments go to pytest (e.g. `bash ci/run_tests.sh tests/sla -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib/venv.sh
ensure_venv requirements-test.txt
"$LOADGATE_PY" -m ruff check .
exec "$LOADGATE_PY" -m pytest "$@"
