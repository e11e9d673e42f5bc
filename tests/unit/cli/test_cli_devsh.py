"""``dev.sh``: a clean usage, the ``adm`` / ``leofs`` wrappers, and no reinstall when nothing changed.

The real script runs in a copy of the repository's top level; its ``.venv`` is a stand-in whose
``python`` records the pip installs it is asked for (a real install downloads packages for
minutes) and whose ``leofs`` records its arguments.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

FAKE_PYTHON = """#!/usr/bin/env bash
# records "pip install ARGS" calls; anything else (python -c "import leofs") succeeds
if [ "$1 $2 $3" = "-m pip install" ]; then
    case " $* " in *" --upgrade pip "*) exit 0 ;; esac
    echo "$*" >> "$(dirname "$0")/../installs.log"
fi
exit 0
"""
FAKE_LEOFS = """#!/usr/bin/env bash
echo "leofs $*"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("bash") is None or shutil.which("sha256sum") is None:
        pytest.skip("needs bash and sha256sum")
    for name in ("dev.sh", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("leofs", FAKE_LEOFS)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(repo / "dev.sh"), *args], capture_output=True, text=True, timeout=60)


def installs(repo: Path) -> list[str]:
    log = repo / ".venv" / "installs.log"
    return log.read_text().splitlines() if log.exists() else []


def test_no_arguments_prints_a_clean_usage(repo: Path) -> None:
    out = run(repo)
    assert out.returncode == 2
    assert out.stdout.startswith("usage: ./dev.sh COMMAND"), out.stdout
    for word in ("server", "adm", "test", "source .venv/bin/activate"):
        assert word in out.stdout
    assert "set -e" not in out.stdout and "pipefail" not in out.stdout
    assert run(repo, "help").returncode == 0
    unknown = run(repo, "serve")
    assert unknown.returncode == 2 and "unknown command: serve" in unknown.stderr


def test_server_installs_once_until_pyproject_changes(repo: Path) -> None:
    first = run(repo, "server", "./d", "--workers", "1")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "leofs server ./d --workers 1"
    assert installs(repo) == ["-m pip install -q -e ."]
    assert run(repo, "server").stdout.strip() == "leofs server ./data"
    assert run(repo, "adm", "--data", "./d", "status").stdout.strip() == "leofs adm --data ./d status"
    assert run(repo, "leofs", "manager", "--help").stdout.strip() == "leofs manager --help"
    assert len(installs(repo)) == 1, installs(repo)
    with open(repo / "pyproject.toml", "a") as f:
        f.write("\n# changed\n")
    run(repo, "server")
    run(repo, "server")
    assert len(installs(repo)) == 2, installs(repo)


def test_a_test_install_also_serves_the_server(repo: Path) -> None:
    # ./dev.sh test installs [test]; its stamp line covers a plain install (tools are faked away)
    run(repo, "server")
    stamp = (repo / ".venv" / ".leofs-install").read_text().split()
    (repo / ".venv" / ".leofs-install").write_text(f"{stamp[0]} [[test]]\n")
    (repo / ".venv" / "installs.log").unlink()
    assert run(repo, "server").returncode == 0
    assert installs(repo) == []
