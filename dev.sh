#!/usr/bin/env bash
# One-command set-up for a fresh machine: ./dev.sh without arguments prints the usage.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
STAMP="$VENV/.leofs-install"

usage() {
    cat <<'USAGE'
usage: ./dev.sh COMMAND [ARGS...]

  server [DIR] [OPTIONS]   install into .venv if needed, then run `leofs server DIR` (default DIR ./data)
  adm ARGS...              run `leofs adm ARGS...` from .venv, e.g. ./dev.sh adm --data ./data get-users
  leofs ARGS...            run any `leofs` command from .venv, e.g. ./dev.sh leofs manager --help
  test [PYTEST ARGS]       install the test tools too, then run ruff, mypy and the test suite

To have `leofs` itself on PATH in this shell: source .venv/bin/activate
USAGE
}

ensure_venv() {
    # The install is editable (source changes need no reinstall), so it is redone only when
    # pyproject.toml or the extras asked for change. The stamp holds "HASH [EXTRAS]" lines of
    # the installs done; an install with [test] also serves a plain one.
    local extras=$1 hash
    hash=$({ sha256sum pyproject.toml 2>/dev/null || shasum -a 256 pyproject.toml; } | cut -d' ' -f1)
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    if [ -x "$VENV/bin/leofs" ] && [ -f "$STAMP" ]; then
        if grep -qxF "$hash [$extras]" "$STAMP" || { [ -z "$extras" ] && grep -q "^$hash " "$STAMP"; }; then
            return 0
        fi
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    PIP_ROOT_USER_ACTION=ignore "$VENV/bin/python" -m pip install -q -e ".$extras"
    "$VENV/bin/python" -c "import leofs" # fail loudly if the install did not work
    if [ -f "$STAMP" ] && grep -q "^$hash " "$STAMP"; then
        echo "$hash [$extras]" >>"$STAMP"
    else
        echo "$hash [$extras]" >"$STAMP"
    fi
}

ensure_system_tools() {
    # rclone is a real client the integration tests drive (Debian package).
    if ! command -v rclone >/dev/null 2>&1; then
        if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null
        else
            echo "rclone is missing: install it (apt-get install rclone) or its tests are skipped" >&2
        fi
    fi
}

if [ $# -eq 0 ]; then
    usage
    exit 2
fi
cmd=$1
shift
case "$cmd" in
    server)
        ensure_venv ""
        dir=${1:-./data}
        shift || true
        exec "$VENV/bin/leofs" server "$dir" "$@"
        ;;
    adm)
        ensure_venv ""
        exec "$VENV/bin/leofs" adm "$@"
        ;;
    leofs)
        ensure_venv ""
        exec "$VENV/bin/leofs" "$@"
        ;;
    test)
        ensure_venv "[test]"
        ensure_system_tools
        "$VENV/bin/ruff" check src tests benchmarks
        "$VENV/bin/mypy"
        # Two pytest workers by default (LEOFS_TEST_WORKERS, 0 = none): most tests wait on real
        # server processes, so two overlap well even on two cores. One file per worker keeps a
        # module's cluster and its order together.
        workers=${LEOFS_TEST_WORKERS:-2}
        if [ "$workers" != 0 ]; then
            set -- -n "$workers" --dist loadfile "$@"
        fi
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    help | -h | --help)
        usage
        ;;
    *)
        echo "unknown command: $cmd" >&2
        usage >&2
        exit 2
        ;;
esac
