"""`leofs adm` output that explains itself, human and --json, against a real embedded server:
status names the node `embedded`, unknown nodes are answered with the known ones, compact-start
says it started and how to follow it, diagnose-start counts what it checked, users show role names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.support.servers import CLUSTER_SECRET, LeofsServer


@pytest.fixture
def server(embedded_server: LeofsServer) -> LeofsServer:
    return embedded_server


def adm(server: LeofsServer, *args: str, as_json: bool = False, check: bool = True,
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    cmd = [sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--cluster-secret", CLUSTER_SECRET]
    out = subprocess.run([*cmd, *(["--json"] if as_json else []), *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"leofs adm {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def adm_json(server: LeofsServer, *args: str) -> Any:
    return json.loads(adm(server, *args, as_json=True).stdout)


def test_status_names_the_embedded_node(server: LeofsServer) -> None:
    text = adm(server, "status").stdout
    assert "embedded" in text and "leofs adm du embedded" in text, text
    status = adm_json(server, "status")
    assert status["mode"] == "embedded"
    assert [n["name"] for n in status["nodes"] if n["type"] == "storage"] == ["embedded"]


@pytest.mark.parametrize("command", ["du", "compact-status", "compact-start", "diagnose-start"])
def test_an_unknown_node_is_refused_with_the_known_one(server: LeofsServer, command: str) -> None:
    for as_json in (False, True):
        out = adm(server, command, "storage1", as_json=as_json, check=False)
        assert out.returncode != 0
        assert "no storage node 'storage1'" in out.stderr and "'embedded'" in out.stderr, out.stderr


@pytest.mark.parametrize("args", [["suspend", "embedded"], ["whereis", "b/k"], ["mq-stats", "embedded"], ["start"]])
def test_cluster_commands_say_they_need_a_cluster(server: LeofsServer, args: list[str]) -> None:
    out = adm(server, *args, check=False)
    assert out.returncode != 0
    assert "applies to a cluster" in out.stderr and "'embedded'" in out.stderr, out.stderr


def test_compact_start_says_it_started_and_how_to_follow_it(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    s3.create_bucket(Bucket="adm-output-compact")
    for i in range(3):
        s3.put_object(Bucket="adm-output-compact", Key="k", Body=b"x" * 1000 * (i + 1))
    text = adm(server, "compact-start", "embedded").stdout
    assert "compaction of embedded started" in text, text
    assert "leofs adm compact-status embedded" in text and "--wait" in text, text

    def idle() -> bool:
        return bool(adm_json(server, "compact-status", "embedded")["state"] == "idle")

    _poll(idle, "the background compaction to finish")
    started = adm_json(server, "compact-start", "embedded", "0,1")
    assert started["started"] is True and started["containers"] == [0, 1]
    _poll(idle, "the second compaction to finish")
    finished = adm(server, "compact-start", "--wait", "embedded").stdout
    assert "compaction of embedded finished" in finished and "bytes reclaimed" in finished, finished
    waited = adm_json(server, "compact-start", "--wait", "embedded")
    assert waited["state"] == "idle" and sorted(waited["done"]) == list(range(8))


def test_diagnose_start_reports_needles_checked_and_damaged(server: LeofsServer) -> None:
    s3 = make_client(server.endpoint)
    s3.create_bucket(Bucket="adm-output-diagnose")
    for i in range(5):
        s3.put_object(Bucket="adm-output-diagnose", Key=f"k{i}", Body=b"y" * 100)
    report = adm_json(server, "diagnose-start", "embedded")
    assert report["checked"] >= 6 and report["damaged"] == [] and report["damaged_count"] == 0, report
    text = adm(server, "diagnose-start", "embedded").stdout
    assert text.startswith("embedded: checked ") and text.rstrip().endswith("needles, 0 damaged"), text
    assert int(text.split()[2]) >= report["checked"]


def test_users_are_listed_with_role_names(server: LeofsServer) -> None:
    created = adm(server, "create-user", "carol-roles").stdout
    assert "carol-roles (general) created" in created, created
    export = next(line for line in created.splitlines() if line.startswith("export "))
    keys = dict(part.split("=", 1) for part in export.split()[1:])
    assert set(keys) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    carol = make_client(server.endpoint, access_key=keys["AWS_ACCESS_KEY_ID"], secret_key=keys["AWS_SECRET_ACCESS_KEY"])
    assert carol.list_buckets()["Buckets"] == []
    adm(server, "create-user", "dave-roles", "--admin")
    text = adm(server, "get-users").stdout
    rows = {line.split("|")[0].strip(): line.split("|")[1].strip() for line in text.splitlines()[2:]}
    assert rows["root"] == "admin" and rows["carol-roles"] == "general" and rows["dave-roles"] == "admin", text
    users = {u["user_id"]: u for u in adm_json(server, "get-users")}
    assert (users["carol-roles"]["role"], users["carol-roles"]["role_name"]) == (1, "general")
    assert (users["dave-roles"]["role"], users["dave-roles"]["role_name"]) == (9, "admin")


def test_update_acl_help_says_why_the_key_is_needed(server: LeofsServer) -> None:
    text = adm(server, "update-acl", "--help").stdout
    assert "owner" in text and "ACCESS_KEY" in text, text


def test_adm_data_finds_the_secret_the_server_ran_with(server: LeofsServer) -> None:
    """The server got its secret from LEOFS_CLUSTER_SECRET; --data DIR alone must find it."""
    path = server.data_dir / "cluster-secret"
    assert path.read_text().strip() == CLUSTER_SECRET and path.stat().st_mode & 0o777 == 0o600
    env = {k: v for k, v in server.env().items() if k != "LEOFS_CLUSTER_SECRET"}
    out = subprocess.run([sys.executable, "-m", "leofs", "adm", "--manager", server.admin, "--data",
                          str(server.data_dir), "--json", "status"], capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["mode"] == "embedded"


def test_first_start_prints_one_pasteable_export_line_and_a_restart_says_where_keys_are(tmp_path: Path) -> None:
    srv = LeofsServer(tmp_path / "data", extra_args=["--workers", "1"])
    srv.service.env = {k: v for k, v in srv.env().items()
                       if k not in ("LEOFS_ROOT_ACCESS_KEY", "LEOFS_ROOT_SECRET_KEY", "LEOFS_CLUSTER_SECRET")}
    srv.start()
    try:
        first = _poll_log(srv, "Administer:")
        exports = [line for line in first.splitlines() if line.startswith("export ")]
        assert len(exports) == 1, first
        env = subprocess.run(["bash", "-c", f"{exports[0]}\nenv"], capture_output=True, text=True, timeout=10,
                             check=True).stdout
        keys = dict(line.split("=", 1) for line in env.splitlines() if line.startswith("AWS_"))
        s3 = make_client(srv.endpoint, access_key=keys["AWS_ACCESS_KEY_ID"], secret_key=keys["AWS_SECRET_ACCESS_KEY"])
        assert s3.list_buckets()["Buckets"] == []
        assert "(1 processes)" not in first and "one process" in first, first
        assert f"Data directory: {(tmp_path / 'data').resolve()}" in first, first
        assert "named 'embedded'" in first, first
        assert f"Administer: leofs adm --manager {srv.admin} --data " in first, first
        srv.stop()
        srv.service.log_path.write_text("")
        srv.start()
        again = _poll_log(srv, "Administer:")
        assert "export AWS" not in again, again
        assert f"kept in {(tmp_path / 'data' / 'credentials.json').resolve()}" in again, again
    finally:
        srv.stop()


def _poll_log(srv: LeofsServer, marker: str) -> str:
    _poll(lambda: marker in srv.log(), f"{marker!r} in the server's output")
    return srv.log()


def _poll(predicate: Any, what: str, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
