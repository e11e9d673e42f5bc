"""The README's quick start, administration and cluster sections, run as written in a fresh clone.

The commands are EXTRACTED from the README's ```sh blocks (never copied here), so the README stays
true. The test runs them with bash in a clone of this repository in a temp directory (the README
under test is the working tree's, copied over the clone's), with these controlled rewrites, all
in :func:`rewrite`:

- ports: each section gets free loopback ports for 127.0.0.1:8080 (S3), 127.0.0.1:10010 (admin
  API / manager), 127.0.0.1:10011 (gateway admin) and 127.0.0.1:401$i (storage nodes), so the test
  runs beside other servers;
  `leofs adm` gets the matching `--manager`;
- `./dev.sh server DIR` becomes `.venv/bin/leofs server DIR` (what dev.sh runs once installed; the
  clone's `.venv` is a symlink to the current venv, so `source .venv/bin/activate` works as written
  too, and nothing is pip-installed), started in the background until it prints its start-up
  lines; `./dev.sh test` (this very suite) is skipped;
- a command ending in `&` writes its output to `bg-N.out`; the placeholder line
  `export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...` becomes the `export` line the most
  recent server or manager printed, verbatim (which proves that line can be pasted);
- the placeholder `ACCESS_KEY` becomes the access key of the user the README created just before;
- `./cat.jpg` is a file the test creates.

Only the venv's `aws` is on PATH at the start: `leofs` must come from the README's own
`source .venv/bin/activate`. Every process started gets SIGKILL at the end (one process group).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Quick start", "Administration", "A cluster on one machine")
TIME_LIMIT = 240.0


def sh_blocks(readme: str) -> dict[str, list[str]]:
    """The ```sh blocks of each ``## `` section, in order."""
    blocks: dict[str, list[str]] = {}
    section = ""
    in_block = False
    current: list[str] = []
    for line in readme.splitlines():
        if line.startswith("## ") and not in_block:
            section = line[3:].strip().split(" (")[0]
        elif line.strip() == "```sh" and not in_block:
            in_block, current = True, []
        elif line.strip() == "```" and in_block:
            in_block = False
            blocks.setdefault(section, []).append("\n".join(current))
        elif in_block:
            current.append(line)
    return blocks


def storage_port_prefix() -> int:
    """A prefix P such that ports P1, P2 and P3 are free (the README's 401$i becomes P$i)."""
    for _ in range(200):
        prefix = free_port() // 10
        if prefix * 10 + 3 > 65535:
            continue
        try:
            for i in (1, 2, 3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", prefix * 10 + i))
            return prefix
        except OSError:
            continue
    raise RuntimeError("no free port triple")


class Rewriter:
    """The controlled rewrites of the module docstring, for one section's ports."""

    def __init__(self, counter: list[int]) -> None:
        self.s3 = free_port()
        self.admin = free_port()
        self.gateway_admin = free_port()
        self.storage = storage_port_prefix()
        self.counter = counter  # background commands started so far (shared by the sections)

    def line(self, line: str) -> str:
        code = line.split("  #", 1)[0].rstrip() if "  #" in line else line.rstrip()
        if not code.strip() or code.strip().startswith("#"):
            return ""
        if code.strip().startswith("./dev.sh test"):
            return ": skipped ./dev.sh test"
        code = code.replace("127.0.0.1:8080", f"127.0.0.1:{self.s3}")
        code = code.replace("127.0.0.1:10010", f"127.0.0.1:{self.admin}")
        code = code.replace("127.0.0.1:10011", f"127.0.0.1:{self.gateway_admin}")
        code = code.replace("127.0.0.1:401$i", f"127.0.0.1:{self.storage}$i")
        code = code.replace("leofs adm ", f"leofs adm --manager 127.0.0.1:{self.admin} ")
        match = re.match(r"\s*\./dev\.sh server (\S+)(.*)$", code)
        if match:
            self.counter[0] += 1
            out = f"bg-{self.counter[0]}.out"
            return (f".venv/bin/leofs server {match.group(1)} --address 127.0.0.1:{self.s3} "
                    f"--admin-address 127.0.0.1:{self.admin}{match.group(2)} > {out} 2>&1 &\n"
                    f"for _ in $(seq 600); do grep -q '^Administer:' {out} && break; sleep 0.1; done\n"
                    f"cat {out}\n"
                    f"grep -q '^Administer:' {out}")
        if code.strip() == "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...":
            return ("for _ in $(seq 300); do grep -qh '^export AWS_ACCESS_KEY_ID=' bg-*.out && break; sleep 0.1; done\n"
                    "eval \"$(grep -h '^export AWS_ACCESS_KEY_ID=' $(ls -t bg-*.out) | head -n1)\"\n"
                    "test -n \"$AWS_ACCESS_KEY_ID\"\n"
                    "test -n \"$AWS_SECRET_ACCESS_KEY\"")
        if code.rstrip().endswith("&"):
            self.counter[0] += 1
            code = f"{code.rstrip()[:-1].rstrip()} > bg-{self.counter[0]}.out 2>&1 &"
        created = re.search(r"create-user (\S+)", code)
        if created:
            return (f"{code} | tee user.out\n"
                    "ACCESS_KEY=$(sed -n 's/^export AWS_ACCESS_KEY_ID=\\([^ ]*\\) .*/\\1/p' user.out)\n"
                    "test -n \"$ACCESS_KEY\"")
        return re.sub(r"\bACCESS_KEY\b", "$ACCESS_KEY", code)

    def block(self, block: str) -> str:
        return "\n".join(filter(None, (self.line(line) for line in block.splitlines())))


def script(readme: str) -> str:
    blocks = sh_blocks(readme)
    missing = [name for name in SECTIONS if not blocks.get(name)]
    assert not missing, f"README sections without a ```sh block: {missing}"
    counter = [0]
    parts = ["set -eo pipefail", "set -x"]
    quick = Rewriter(counter)
    for name in SECTIONS[:2]:
        parts += [f": '== {name}'", *(quick.block(b) for b in blocks[name])]
    cluster = Rewriter(counter)
    parts += [f": '== {SECTIONS[2]}'", *(cluster.block(b) for b in blocks[SECTIONS[2]])]
    return "\n".join(parts) + "\n"


def test_readme_sections_run_as_written(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout to clone")
    clone = tmp_path / "leofs"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True, timeout=120)
    readme = (ROOT / "README.md").read_text()
    (clone / "README.md").write_text(readme)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    (clone / "cat.jpg").write_bytes(os.urandom(70_000))
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "aws").symlink_to(Path(sys.executable).parent / "aws")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEOFS_", "AWS_", "VIRTUAL_ENV")) or k == "AWS_CA_BUNDLE"}
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(venv_bin).resolve()]
    env.update(HOME=str(home), PATH=os.pathsep.join([str(tools), *path]), AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(home / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-creds"))
    text = script(readme)
    (tmp_path / "readme.sh").write_text(text)
    proc = subprocess.Popen(["bash", str(tmp_path / "readme.sh")], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the README's commands took over {TIME_LIMIT:.0f} s:\n{output}\n{_logs(clone)}")
    finally:
        try:  # the servers the README started in the background, still running by design
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, f"script:\n{text}\noutput:\n{output}\n{_logs(clone)}"

    # what the sections promise, seen in their output
    assert "embedded" in output
    assert "3 storage nodes attached: storage1, storage2, storage3" in output, output
    assert re.search(r"storage[123] +\| running", output), output
    assert "photos/cat.jpg (ring address" in output and "object: 70000 bytes, inline" in output, output
    assert not (clone / "m").exists() and not (clone / "s1").exists()
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    # the README's data and cluster directories are ignored by git: nothing of theirs is untracked
    assert not [line for line in untracked if line[3:].startswith(("data/", "cluster/"))], untracked
    assert (clone / "cluster" / "m" / "cluster-secret").exists()

def _logs(clone: Path) -> str:
    return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(clone.glob("bg-*.out")))
