"""Fuzz bucket-name and key validation against an independent reading of the S3 rules."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from leofs.s3.errors import S3Error
from leofs.s3.names import MAX_KEY_BYTES, validate_bucket_name, validate_key
from tests.fuzz.profile import assert_client_error, fuzz, wire_text

_BUCKET_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-"


def bucket_name_ok(name: str) -> bool:
    """The general-purpose bucket naming rules, written out one by one."""
    if not 3 <= len(name) <= 63 or any(c not in _BUCKET_CHARS for c in name):
        return False
    if not (name[0].isalnum() and name[-1].isalnum()) or ".." in name:
        return False
    parts = name.split(".")
    if len(parts) == 4 and all(p.isdigit() and 1 <= len(p) <= 3 for p in parts):
        return False
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")):
        return False
    return not name.endswith(("-s3alias", "--ol-s3", "--x-s3", "--table-s3"))


@fuzz()
@given(name=st.one_of(st.text(_BUCKET_CHARS + "A_ ", max_size=70), wire_text(70),
                      st.sampled_from(["192.168.1.1", "1.2.3", "xn--a", "abc-s3alias", "a" * 63, "a" * 64])))
@example(name="0\u0661a")  # an Arabic-Indic digit is a digit to str.isdigit, not to the rules
def test_bucket_names(name: str) -> None:
    try:
        validate_bucket_name(name)
    except S3Error as err:
        assert_client_error(err, {"InvalidBucketName"})
        assert not bucket_name_ok(name), name
        return
    assert bucket_name_ok(name), name


@fuzz()
@given(key=st.one_of(wire_text(300), st.text(min_size=1000, max_size=1100), st.text("é/", min_size=500,
                                                                                 max_size=600)))
def test_keys(key: str) -> None:
    try:
        validate_key(key)
    except S3Error as err:
        assert_client_error(err, {"InvalidArgument", "InvalidURI", "KeyTooLongError"})
        return
    assert key and "\x00" not in key and len(key.encode("utf-8")) <= MAX_KEY_BYTES
