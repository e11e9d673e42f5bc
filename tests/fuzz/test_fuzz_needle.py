"""Fuzz needle decoding over garbage and damaged logs: a needle read back is the needle written,
anything else is a NeedleError (DataCrcError for damaged data), never another exception."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from leofs.storage.needle import (
    HEADER_SIZE,
    DataCrcError,
    NeedleError,
    decode_header,
    encode_needle,
    read_needle,
)
from tests.fuzz.profile import fuzz


@fuzz()
@given(buf=st.binary(max_size=200))
def test_decode_header_of_garbage(buf: bytes) -> None:
    try:
        header = decode_header(buf)
    except NeedleError:
        return
    assert len(buf) >= HEADER_SIZE and header.total_len >= HEADER_SIZE


@st.composite
def damaged_logs(draw: st.DrawFn) -> tuple[bytes, bytes, bytes, bytes, int]:
    """(key, meta, data, log bytes, offset of the needle): one needle among garbage, maybe damaged."""
    key, meta, data = draw(st.binary(max_size=60)), draw(st.binary(max_size=60)), draw(st.binary(max_size=300))
    bufs, _, _ = encode_needle(ns=draw(st.integers(0, 2**32 - 1)), key=key, meta=meta, data=data,
                               clock=draw(st.integers(0, 2**62)), timestamp=1, tombstone=draw(st.booleans()))
    needle = bytearray(b"".join(bytes(b) for b in bufs))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(needle) - 1))
        needle[at] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        needle = needle[: draw(st.integers(0, len(needle)))]
    prefix = draw(st.binary(max_size=40))
    return key, meta, data, prefix + bytes(needle) + draw(st.binary(max_size=40)), len(prefix)


@fuzz()
@given(case=damaged_logs(), verify=st.booleans())
def test_read_needle_of_damaged_logs(case: tuple[bytes, bytes, bytes, bytes, int], verify: bool) -> None:
    key, meta, data, log, offset = case
    fd, path = tempfile.mkstemp()
    try:
        os.write(fd, log)
        try:
            needle = read_needle(fd, offset, len(log), verify_data=verify)
        except DataCrcError as err:
            assert err.needle.key == key and err.needle.meta == meta  # the header held, the data did not
            return
        except NeedleError:
            return
        # header CRC held: key and metadata are the ones written
        assert (needle.key, needle.meta) == (key, meta)
        if verify:
            assert os.pread(fd, needle.header.data_len, needle.data_offset) == data
    finally:
        os.close(fd)
        os.unlink(path)
