# Sourced by the ci/ scripts: make sure .venv exists and holds the given requirements file.
# Re-installs only when the requirements files change (a stamp keeps their hash), so repeat runs
# start in a second. Honours PYTHON (default: python3.11, else python3).
ensure_venv() {
  local req="$1" root stamp want py
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  if [ ! -x "$root/.venv/bin/python" ]; then
    "$py" -m venv "$root/.venv" || { echo "loadgate: error: could not create $root/.venv with $py; install Python 3.11 with venv" >&2; return 2; }
  fi
  stamp="$root/.venv/.loadgate-$(basename "$req").sha"
  want="$(cat "$root/requirements.txt" "$root/$req" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "loadgate: installing $req into .venv" >&2
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/$req" >&2 \
      || { echo "loadgate: error: pip install -r $req failed; see the output above" >&2; return 2; }
    echo "$want" > "$stamp"
  fi
  LOADGATE_PY="$root/.venv/bin/python"
  export LOADGATE_PY
}
