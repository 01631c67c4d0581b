#!/usr/bin/env bash
# The pinned CI job and the README's first command: a thin wrapper of `loadgate run` that first makes
# sure .venv holds loadgate (pip install -e .). `bash ci/run_load_gate.sh --help` lists every input.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/ci/lib/venv.sh"
ensure_venv "" || exit 2
exec "$LOADGATE_PY" -m loadgate run "$@"
