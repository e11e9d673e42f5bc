"""Custom response headers per path prefix: LeoFS's ``http_custom_header.conf``.

The file is LeoFS's subset of nginx's syntax::

    location bucket/static {
        expires    12h;
        add_header Cache-Control public;
        add_header X-Origin leofs;
    }

``location`` takes a path prefix (``bucket/prefix``, with or without a leading ``/``); a GET or
HEAD answer for an object whose ``/bucket/key`` starts with it carries the location's headers
(the longest matching prefix wins, as in nginx). ``expires`` (``30``, ``90s``, ``15m``, ``12h``,
``1d``, ``1h30m``) becomes ``Cache-Control: max-age=<seconds>``, after any ``Cache-Control`` the
location adds (``public, max-age=43200``). The headers replace the object's own of the same name
(a signed request's explicit ``response-<header>`` override still wins).

The file is read at start (an invalid file stops the start) and again on SIGHUP: an invalid file
then keeps the rules in force and logs an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger("leofs.gateway.headers")

_TOKEN: Final = re.compile(r'(#.*)|"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|([{};])|([^\s{};"\'#]+)')
_DURATION: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", re.ASCII)
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: headers that frame or route the answer: set by the server only, never by this file
_REFUSED: Final = frozenset({
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer", "te",
    "content-range", "content-type", "content-encoding", "etag", "last-modified", "date", "server",
    "x-amz-request-id", "x-amz-id-2", "set-cookie", "www-authenticate", "location",
})
_MAX_EXPIRES: Final = 10 * 365 * 86400


class HeadersConfigError(ValueError):
    """A custom-header file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Location:
    """The headers of one path prefix."""

    prefix: str
    headers: tuple[tuple[str, str], ...]


class HeaderRules:
    """The locations of one file, matched by longest prefix."""

    def __init__(self, locations: list[Location]) -> None:
        self.locations = sorted(locations, key=lambda loc: len(loc.prefix), reverse=True)

    def match(self, resource: str) -> tuple[tuple[str, str], ...]:
        """The headers for ``/bucket/key`` (none when no location matches)."""
        for location in self.locations:
            if resource.startswith(location.prefix):
                return location.headers
        return ()


def parse(text: str, source: str = "<headers>") -> HeaderRules:
    """Parse the file's text; HeadersConfigError names the line at fault."""
    tokens = _tokenize(text, source)
    locations: list[Location] = []
    seen: set[str] = set()
    i = 0
    while i < len(tokens):
        word, line = tokens[i]
        if word != "location" or i + 2 >= len(tokens) or tokens[i + 2][0] != "{":
            raise HeadersConfigError(f"{source}:{line}: expected 'location PREFIX {{', got {word!r}")
        prefix = "/" + tokens[i + 1][0].lstrip("/")
        if prefix in seen:
            raise HeadersConfigError(f"{source}:{line}: location {prefix} appears twice")
        seen.add(prefix)
        i += 3
        added: list[tuple[str, str]] = []
        expires: int | None = None
        while True:
            if i >= len(tokens):
                raise HeadersConfigError(f"{source}: location {prefix} is not closed with '}}'")
            directive, line = tokens[i]
            if directive == "}":
                i += 1
                break
            end = next((j for j in range(i, len(tokens)) if tokens[j][0] in (";", "{", "}")), len(tokens))
            if end >= len(tokens) or tokens[end][0] != ";":
                raise HeadersConfigError(f"{source}:{line}: '{directive}' must end with ';'")
            args = [t for t, _ in tokens[i + 1 : end]]
            if directive == "expires" and len(args) == 1:
                expires = _seconds(args[0], f"{source}:{line}")
            elif directive == "add_header" and len(args) == 2:
                added.append(_header(args[0], args[1], f"{source}:{line}"))
            else:
                raise HeadersConfigError(f"{source}:{line}: unknown directive or arguments: "
                                         f"{' '.join([directive, *args])!r} (known: expires TIME; "
                                         f"add_header NAME VALUE)")
            i = end + 1
        locations.append(Location(prefix, _combine(added, expires)))
    return HeaderRules(locations)


def _tokenize(text: str, source: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    for number, raw in enumerate(text.split("\n"), 1):  # not splitlines: a CR in a value is refused, not a new line
        line = raw
        pos = 0
        for m in _TOKEN.finditer(line):
            if line[pos : m.start()].strip():
                raise HeadersConfigError(f"{source}:{number}: cannot read {line[pos:m.start()].strip()!r}")
            pos = m.end()
            if m.group(1) is not None:  # a comment, to the end of the line
                break
            word = next(g for g in m.groups()[1:] if g is not None)
            tokens.append((word, number))
        if line[pos:].strip():
            raise HeadersConfigError(f"{source}:{number}: cannot read {line[pos:].strip()!r}")
    return tokens


def _seconds(value: str, where: str) -> int:
    m = _DURATION.fullmatch(value)
    if not value or m is None or not any(m.groups()):
        raise HeadersConfigError(f"{where}: expires takes a time such as 90s, 15m, 12h, 1d or 1h30m; got {value!r}")
    days, hours, minutes, secs = (int(g) if g else 0 for g in m.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    if total > _MAX_EXPIRES:
        raise HeadersConfigError(f"{where}: expires {value} is more than ten years")
    return total


def _header(name: str, value: str, where: str) -> tuple[str, str]:
    if not _HEADER_NAME.fullmatch(name):
        raise HeadersConfigError(f"{where}: not a header name: {name!r}")
    if name.lower() in _REFUSED:
        raise HeadersConfigError(f"{where}: {name} is set by the server and cannot be added")
    # ISO-8859-1 without control characters: a CR or LF would split the response
    if not all(c == "\t" or " " <= c <= "~" or "\xa0" <= c <= "\xff" for c in value):
        raise HeadersConfigError(f"{where}: the value of {name} has characters a header cannot carry")
    return name, value


def _combine(added: list[tuple[str, str]], expires: int | None) -> tuple[tuple[str, str], ...]:
    """One value per header name (repeated names joined with ', '), max-age appended to Cache-Control."""
    merged: dict[str, tuple[str, str]] = {}
    for name, value in added:
        key = name.lower()
        merged[key] = (merged[key][0], f"{merged[key][1]}, {value}") if key in merged else (name, value)
    if expires is not None:
        name, value = merged.get("cache-control", ("Cache-Control", ""))
        merged["cache-control"] = (name, f"{value}, max-age={expires}" if value else f"max-age={expires}")
    return tuple(merged.values())


def read(path: Path) -> str:
    """The file's text (HeadersConfigError when it cannot be read)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HeadersConfigError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


def load(path: Path) -> HeaderRules:
    """Read and parse the file at ``path``."""
    return parse(read(path), str(path))


class CustomHeaders:
    """The rules in force in this process, from an optional file, reloadable.

    ``text`` is the file's content the rules came from: an embedded server's primary hands it to
    the worker processes it starts, so that a worker (re)started after the file went bad serves the
    rules the others serve, not none.
    """

    def __init__(self, path: str | Path | None, text: str | None = None) -> None:
        self.path = Path(path) if path else None
        self.text = "" if self.path is None else (read(self.path) if text is None else text)
        self.rules = parse(self.text, str(self.path)) if self.path is not None else HeaderRules([])

    def reload(self) -> bool:
        """Read the file again (SIGHUP); on an error keep the rules in force and log it."""
        if self.path is None:
            return True
        try:
            text = read(self.path)
            rules = parse(text, str(self.path))
        except HeadersConfigError as exc:
            log.error("custom headers not reloaded, the previous ones stay in force: %s", exc)
            return False
        self.text, self.rules = text, rules
        log.info("custom headers reloaded from %s (%d locations)", self.path, len(rules.locations))
        return True
