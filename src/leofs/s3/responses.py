"""Building S3 response documents as strings (faster than a tree; S3 documents are flat).

Every text value goes through :func:`esc`.
"""

from __future__ import annotations

import email.utils
import functools
import time

from leofs.s3.xmlparse import xml_escape

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def esc(value: object) -> str:
    """Escape a value for XML text or an attribute (see :func:`xml_escape`)."""
    return xml_escape(str(value))


def elem(name: str, value: object) -> str:
    """``<name>value</name>`` with the value escaped."""
    return f"<{name}>{esc(value)}</{name}>"


def document(root: str, body: str) -> bytes:
    """A complete S3 XML document with the S3 namespace on the root element."""
    return f'{XML_DECL}<{root} xmlns="{XMLNS}">{body}</{root}>'.encode()


def error_document(code: str, message: str, resource: str, request_id: str, extra: dict[str, str]) -> bytes:
    """The ``<Error>`` document of an S3 error response."""
    parts = [elem("Code", code), elem("Message", message)]
    parts += [elem(k, v) for k, v in extra.items()]
    if resource:
        parts.append(elem("Resource", resource))
    parts.append(elem("RequestId", request_id))
    return f"{XML_DECL}<Error>{''.join(parts)}</Error>".encode()


def iso8601(micros: int) -> str:
    """Timestamp in S3's XML form, millisecond precision: 2009-10-12T17:50:30.000Z."""
    seconds, us = divmod(micros, 1_000_000)
    return f"{iso_seconds(seconds)}{us // 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def iso_seconds(seconds: int) -> str:
    """``2009-10-12T17:50:30.``: the part of :func:`iso8601` before the milliseconds (cached, as
    listings show many keys written in the same second; they inline the rest)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))


def http_date(micros: int) -> str:
    """Timestamp in HTTP's form (Last-Modified), whole seconds."""
    return _http_date_seconds(micros // 1_000_000)


@functools.lru_cache(maxsize=4096)
def _http_date_seconds(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def owner_xml(owner_id: str, display_name: str) -> str:
    return f"<Owner>{elem('ID', owner_id)}{elem('DisplayName', display_name)}</Owner>"


def quote_etag(etag: str) -> str:
    """An ETag as HTTP and S3 XML carry it: in double quotes."""
    return f'"{etag}"'
