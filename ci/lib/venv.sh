# Sourced by the ci/ scripts: make sure .venv exists and holds loadgate itself (pip install -e), with the
# given extra ("" for the job, "test" for the test suite). Re-installs only when pyproject.toml or the
# requirements files change (a stamp keeps their hash), so repeat runs start in a second.
# Honours PYTHON (default: python3.11, else python3).
ensure_venv() {
  local extra="$1" root stamp want py spec
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  if [ ! -x "$root/.venv/bin/python" ]; then
    echo "loadgate: first run: creating $root/.venv with $py" >&2
    "$py" -m venv "$root/.venv" || { echo "loadgate: error: could not create $root/.venv with $py; install Python 3.11 with venv" >&2; return 2; }
  fi
  stamp="$root/.venv/.loadgate-install${extra:+-$extra}.sha"
  want="$(cat "$root/pyproject.toml" "$root/requirements.txt" "$root/requirements-test.txt" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    spec="$root${extra:+[$extra]}"
    echo "loadgate: installing loadgate and its dependencies into .venv (pip install -e '$spec'; about a minute the first time)" >&2
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" >&2 \
      || { echo "loadgate: error: pip install -e '$spec' failed; see the output above" >&2; return 2; }
    echo "$want" > "$stamp"
    echo "loadgate: .venv is ready (later runs skip this step until pyproject.toml or requirements*.txt change)" >&2
  fi
  LOADGATE_PY="$root/.venv/bin/python"
  export LOADGATE_PY
}
