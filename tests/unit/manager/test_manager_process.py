"""`leofs manager` runs standalone: a real process, a generated secret, register and status over HTTP."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from leofs.internal.messages import SECRET_HEADER, RegisterRequest, encoder, view_decoder


def call(port: int, path: str, body: bytes, secret: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={SECRET_HEADER: secret})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_manager_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LEOFS_CLUSTER_SECRET", "LEOFS_ROOT_ACCESS_KEY",
                                                            "LEOFS_ROOT_SECRET_KEY")}
    data = tmp_path / "mgr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "leofs", "manager", "--data", str(data), "--address", "127.0.0.1:0",
         "--replicas", "3", "--write", "2", "--delete", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        secret = ""
        while not secret:  # the announcement: where it listens, then the generated secret
            line = proc.stdout.readline()
            assert line, f"manager exited: {''.join(lines)}"
            lines.append(line)
            if line.strip().startswith("export LEOFS_CLUSTER_SECRET="):  # pasteable as it is
                secret = line.strip().split("=", 1)[1]
        listen = next(x for x in lines if x.startswith("leofs manager:"))
        port = int(listen.split(" on ")[1].split(",")[0].rsplit(":", 1)[1])
        saved = data / "cluster-secret"
        assert saved.read_text().strip() == secret
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600

        status, body = call(port, "/int/register", encoder.encode(RegisterRequest("storage", "s1", "127.0.0.1:9")),
                            secret)
        assert status == 200
        assert view_decoder.decode(body).nodes[0].state == "attached"
        assert call(port, "/adm/status", b"{}", "wrong")[0] == 403
        status, body = call(port, "/adm/status", b"{}", secret)
        assert status == 200
        result: dict[str, Any] = json.loads(body)["result"]
        assert result["consistency"]["n"] == 3 and result["consistency"]["w"] == 2
        assert [(n["name"], n["state"]) for n in result["nodes"]] == [("s1", "attached")]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
