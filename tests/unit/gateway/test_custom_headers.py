"""The custom response headers file (LeoFS's http_custom_header.conf): parsing, matching, reload."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leofs.gateway.custom_headers import CustomHeaders, HeadersConfigError, parse

LEOFS_EXAMPLE = """\
# from LeoFS's "How to integrate LeoFS with CDN"
location bucket/static {
    expires    12h;
    add_header Cache-Control public;
    add_header X-OriginalHeader OriginalValue;
}
location bucket1 { expires 1h; add_header Cache-Control public; }
location bucket3 {
    expires    1h30m;   # ninety minutes
    add_header Cache-Control private;
}
"""


def test_the_leofs_example() -> None:
    rules = parse(LEOFS_EXAMPLE)
    assert dict(rules.match("/bucket/static/path_to_file")) == {
        "Cache-Control": "public, max-age=43200", "X-OriginalHeader": "OriginalValue"}
    assert dict(rules.match("/bucket1/x")) == {"Cache-Control": "public, max-age=3600"}
    assert dict(rules.match("/bucket3/x")) == {"Cache-Control": "private, max-age=5400"}
    assert rules.match("/bucket/other") == ()
    assert rules.match("/bucket2/x") == ()


def test_longest_prefix_wins_and_leading_slash_is_optional() -> None:
    rules = parse("location / { add_header X-Which all; }\n"
                  "location /b/deep { add_header X-Which deep; }\n"
                  "location b { add_header X-Which b; }\n")
    assert rules.match("/b/deep/k") == (("X-Which", "deep"),)
    assert rules.match("/b/k") == (("X-Which", "b"),)
    assert rules.match("/c/k") == (("X-Which", "all"),)


@pytest.mark.parametrize(("value", "seconds"), [("30", 30), ("90s", 90), ("15m", 900), ("12h", 43200),
                                                ("1d", 86400), ("1h30m", 5400), ("0", 0)])
def test_expires_units(value: str, seconds: int) -> None:
    assert parse(f"location a {{ expires {value}; }}").match("/a/k") == (("Cache-Control", f"max-age={seconds}"),)


def test_quoted_values_and_comments() -> None:
    rules = parse("location a {  # the bucket 'a'\n  add_header X-Note \"two words # not a comment\";\n}\n")
    assert rules.match("/a/k") == (("X-Note", "two words # not a comment"),)


def test_repeated_header_names_are_joined() -> None:
    rules = parse("location a { add_header Link </a>; add_header link </b>; }")
    assert rules.match("/a/k") == (("Link", "</a>, </b>"),)


@pytest.mark.parametrize(("text", "fault"), [
    ("location a { expires 12x; }", "expires takes a time"),
    ("location a { expires 99999d; }", "more than ten years"),
    ("location a { add_header Content-Length 5; }", "set by the server"),
    ("location a { add_header Transfer-Encoding chunked; }", "set by the server"),
    ("location a { add_header Content-Type text/html; }", "set by the server"),
    ("location a { add_header Bad:Name x; }", "not a header name"),
    ("location a { add_header X-A \"one\rtwo\"; }", "characters a header cannot carry"),
    ("location a { add_header X-A \"one\x01two\"; }", "characters a header cannot carry"),
    ("location a { add_header X-A; }", "unknown directive or arguments"),
    ("location a { proxy_pass http://x; }", "unknown directive"),
    ("location a { expires 1h }", "must end with ';'"),
    ("location a { expires 1h;", "not closed"),
    ("server { }", "expected 'location PREFIX {'"),
    ("location a { } location /a { }", "appears twice"),
    ("location a { add_header X-A \"open; }", "cannot read"),
])
def test_invalid_files_name_their_fault(text: str, fault: str) -> None:
    with pytest.raises(HeadersConfigError, match=fault):
        parse(text, "h.conf")


def test_reload_keeps_the_rules_in_force_when_the_file_is_invalid(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h.conf"
    path.write_text("location a { add_header X-V 1; }")
    headers = CustomHeaders(path)
    assert headers.rules.match("/a/k") == (("X-V", "1"),)
    path.write_text("location a { add_header X-V 2; }")
    assert headers.reload()
    assert headers.rules.match("/a/k") == (("X-V", "2"),)
    path.write_text("location a { add_header X-V 3 }")
    with caplog.at_level(logging.ERROR, logger="leofs.gateway.headers"):
        assert not headers.reload()
    assert "not reloaded" in caplog.text
    assert headers.rules.match("/a/k") == (("X-V", "2"),)
    path.unlink()
    assert not headers.reload()
    assert headers.rules.match("/a/k") == (("X-V", "2"),)


def test_no_file_no_headers() -> None:
    headers = CustomHeaders("")
    assert headers.rules.match("/a/k") == ()
    assert headers.reload()


def test_an_invalid_file_refuses_the_start(tmp_path: Path) -> None:
    path = tmp_path / "h.conf"
    path.write_text("location a { expires soon; }")
    with pytest.raises(HeadersConfigError, match=r"h.conf:1: expires"):
        CustomHeaders(path)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("location a{};#\"' \n\r\t\x00\x7fXé-_:/add_headerexpires1hms")),
               max_size=120))
def test_any_text_parses_or_is_refused_and_never_yields_a_header_that_splits_a_response(text: str) -> None:
    try:
        rules = parse(text)
    except HeadersConfigError:
        return
    for location in rules.locations:
        for name, value in location.headers:
            assert name and all(c not in name for c in "\r\n:\x00 ")
            assert all(c == "\t" or " " <= c <= "~" or "\xa0" <= c <= "\xff" for c in value)
