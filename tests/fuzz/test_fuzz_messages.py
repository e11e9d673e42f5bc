"""Fuzz the internal wire messages: every decoder turns garbage into its documented errors
(ValueError for bad base64, msgspec.DecodeError for bad msgpack or a wrong shape) and round-trips
every message it encodes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from leofs.internal import messages as m
from leofs.storage.model import Entry
from tests.fuzz.profile import fuzz, wire_text

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "entry": m.entry_decoder.decode,
    "written": m.written_decoder.decode,
    "put_header": m.put_header_decoder.decode,
    "scan": m.scan_decoder.decode,
    "view": m.view_decoder.decode,
    "digest_request": m.digest_request_decoder.decode,
    "digest_reply": m.digest_reply_decoder.decode,
    "versions_request": m.versions_request_decoder.decode,
    "versions_reply": m.versions_reply_decoder.decode,
}
ERRORS = (ValueError, msgspec.DecodeError)

_I64 = st.integers(-(2**63), 2**63 - 1)
_U32 = st.integers(0, 2**32 - 1)
entries = st.builds(
    Entry, ns=_U32, key=st.binary(max_size=50), clock=_I64, timestamp=_I64, tombstone=st.booleans(),
    size=st.integers(0, 2**40), md5=st.binary(max_size=16), meta=st.binary(max_size=50), cindex=_U32,
    cnumber=_U32, csize=st.integers(0, 2**40), container=_U32, generation=_U32, data_offset=st.integers(0, 2**40),
    crc=_U32,
)  # fmt: skip
put_headers = st.builds(m.PutHeader, meta=st.binary(max_size=50), cindex=_U32, cnumber=_U32,
                        csize=st.integers(0, 2**40), md5=st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
                        clock=st.one_of(st.none(), _I64), timestamp=st.one_of(st.none(), _I64))
messages = st.one_of(
    entries,
    put_headers,
    st.builds(m.Written, entry=entries, previous=st.one_of(st.none(), entries),
              previous_data=st.one_of(st.none(), st.binary(max_size=50))),
    st.builds(m.ScanReply, items=st.lists(st.one_of(st.builds(m.ScanItem, entry=entries),
                                                    st.builds(m.ScanItem, prefix=st.binary(max_size=20))), max_size=3)),
)


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.integers(0, len(data)).map(lambda i: data[:i]),
        st.tuples(st.integers(0, max(0, len(data) - 1)), st.integers(0, 255)).map(
            lambda t: data[: t[0]] + bytes([t[1]]) + data[t[0] + 1 :]),
        st.binary(max_size=8).map(lambda junk: data + junk),
    )


@fuzz()
@given(name=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
def test_decoders_refuse_garbage(name: str, data: bytes) -> None:
    try:
        DECODERS[name](data)
    except ERRORS:
        pass


@fuzz()
@given(message=messages, data=st.data())
def test_messages_round_trip_and_damage_is_refused(message: msgspec.Struct, data: st.DataObject) -> None:
    decoder = {Entry: m.entry_decoder, m.PutHeader: m.put_header_decoder, m.Written: m.written_decoder,
               m.ScanReply: m.scan_decoder}[type(message)]
    encoded = m.encoder.encode(message)
    assert decoder.decode(encoded) == message
    damaged = data.draw(_mutations(encoded))
    try:
        decoder.decode(damaged)
    except ERRORS:
        pass


@fuzz()
@given(value=st.one_of(wire_text(200), st.builds(lambda e: m.encode_b64(e)[:-3], entries)))
def test_header_and_key_params(value: str) -> None:
    for decode in (m.decode_entry_header, m.decode_put_header, m.parse_key_param):
        try:
            decode(value)
        except ERRORS:
            pass


@fuzz()
@given(key=st.binary(max_size=300), header=put_headers)
def test_params_round_trip(key: bytes, header: m.PutHeader) -> None:
    assert m.parse_key_param(m.key_param(key)) == key
    assert m.decode_put_header(m.encode_b64(header)) == header
    assert base64.b64decode(m.encode_b64(header), validate=True)
