"""Hypothesis settings and strategies shared by the fuzz tests.

Every fuzz test takes its settings from :func:`fuzz`: a bounded number of examples in CI (all fuzz
tests together stay within about two minutes on two cores), more for a long run by hand::

    LEOFS_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/fuzz -k "not http" -q

The settings are applied per test (not as a global profile) so that loading this package does
not change the hypothesis settings of other tests in the same session.
"""

from __future__ import annotations

import os
from typing import Final

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from leofs.s3.errors import ERRORS, S3Error

#: examples per fuzz test at scale 1.0 (LEOFS_FUZZ_EXAMPLES overrides)
EXAMPLES: Final = int(os.environ.get("LEOFS_FUZZ_EXAMPLES", "300"))


def fuzz(scale: float = 1.0) -> settings:
    """The settings of one fuzz test; ``scale`` shrinks the example count of slower tests."""
    return settings(
        max_examples=max(10, int(EXAMPLES * scale)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def assert_client_error(err: S3Error, codes: frozenset[str] | set[str] | None = None) -> None:
    """``err`` is a clear S3 error: a known code with its status, a 4xx (or 501 NotImplemented, or
    304 NotModified), and one of ``codes`` when given."""
    assert err.code in ERRORS, err.code
    assert err.status == ERRORS[err.code][0] or err.code == "NotModified", (err.code, err.status)
    assert 400 <= err.status < 500 or err.code in ("NotImplemented", "NotModified"), (err.code, err.status)
    if codes is not None:
        assert err.code in codes, f"{err.code} not in {sorted(codes)}"


def wire_text(max_size: int = 200) -> st.SearchStrategy[str]:
    """Text as the HTTP server hands it over: any bytes decoded as UTF-8 with surrogate escapes,
    or printable text, or text built from the characters parsers care about."""
    return st.one_of(
        st.binary(max_size=max_size).map(lambda b: b.decode("utf-8", "surrogateescape")),
        st.text(max_size=max_size),
        st.text(alphabet="0123456789abcdefABCDEF-=;,/:. \t%+&*\"'Wbytes", max_size=max_size),
    )


def huge_digits() -> st.SearchStrategy[str]:
    """Long runs of digits: past Python's int-conversion limit (4300 digits) and around it."""
    return st.integers(1, 6000).map(lambda n: "9" * n)
