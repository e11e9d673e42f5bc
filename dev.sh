#!/usr/bin/env bash
# One-command set-up for a fresh machine.
#   ./dev.sh server [DIR] [leofs server options]   install, then run the embedded server (default DIR ./data)
#   ./dev.sh test [pytest args]                     install (incl. test tools), lint, type-check, run all tests
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install -q -e ".$1" 2>&1 | grep -v -i "warning" || true
    "$VENV/bin/python" -c "import leofs" # fail loudly if the install did not work
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

cmd=${1:-help}
shift || true
case "$cmd" in
    server)
        ensure_venv ""
        dir=${1:-./data}
        shift || true
        exec "$VENV/bin/leofs" server "$dir" "$@"
        ;;
    test)
        ensure_venv "[test]"
        ensure_system_tools
        "$VENV/bin/ruff" check src tests benchmarks
        "$VENV/bin/mypy"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        sed -n 2,5p "$0"
        exit 2
        ;;
esac
