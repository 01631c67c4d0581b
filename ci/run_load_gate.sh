#!/usr/bin/env bash
# The pinned CI job and the README's first command: load test a target (default: the embedded mock),
# gate the results against sla/thresholds.yaml, leave everything in results/, exit with the gate's code
# (0 pass, 1 SLA breached, 2 bad input or no valid run). `bash ci/run_load_gate.sh --help` lists every
# input; each also reads an env var (LOADGATE_*), flags win. The logic lives in loadgate/job.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/ci/lib/venv.sh"
ensure_venv requirements.txt || exit 2
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$LOADGATE_PY" -m loadgate.job "$@"
