"""The S3 error table: every code the source raises has a status, and the table and the type agree."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from leofs.s3.errors import ERRORS, ErrorCode, S3Error

SRC = Path(__file__).resolve().parents[3] / "src" / "leofs"


def _raised_codes() -> dict[str, list[str]]:
    """code -> places, for every ``S3Error("Code", ...)`` and ``code: ErrorCode = "Code"`` in src/leofs."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            value: ast.expr | None = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "S3Error":
                value = node.args[0] if node.args else None
            elif (isinstance(node, ast.AnnAssign) and isinstance(node.annotation, ast.Name)
                  and node.annotation.id == "ErrorCode"):
                value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.setdefault(value.value, []).append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_the_source_raises_codes() -> None:
    # guards the scan itself: it must see the raises it is meant to check
    codes = _raised_codes()
    assert {"NoSuchKey", "InvalidPartNumber", "MalformedACLError"} <= codes.keys()


def test_every_raised_code_is_in_the_table() -> None:
    missing = {code: where for code, where in _raised_codes().items() if code not in ERRORS}
    assert missing == {}


def test_the_type_and_the_table_list_the_same_codes() -> None:
    assert set(get_args(ErrorCode)) == set(ERRORS)


@pytest.mark.parametrize(("code", "status"), [
    ("InvalidPartNumber", 416),  # GetObject ?partNumber= beyond the object's parts
    ("UnresolvableGrantByEmailAddress", 400),
    ("NoSuchKey", 404),
    ("AccessDenied", 403),
    ("SlowDown", 503),
    ("InvalidRange", 416),
    ("MissingContentLength", 411),
    ("NotImplemented", 501),
])
def test_status_of_a_code(code: ErrorCode, status: int) -> None:
    assert S3Error(code).status == status


def test_statuses_are_error_statuses() -> None:
    # NotModified is the one non-error the server sends through S3Error (a 304 for conditional GETs)
    assert {code: s for code, (s, _) in ERRORS.items() if not 400 <= s < 600} == {"NotModified": 304}

