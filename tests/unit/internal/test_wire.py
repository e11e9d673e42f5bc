"""The binary protocol's wire format: frames, messages, limits, preface and proofs."""

from __future__ import annotations

import pytest

from leofs.internal import wire
from leofs.internal.messages import PutHeader, Written
from leofs.storage.model import Entry

ENTRY = Entry(ns=1, key=b"b/k\x00\xff", clock=7, timestamp=9, tombstone=False, size=3, md5=b"m" * 16, meta=b"M",
              cindex=0, cnumber=0, csize=0, container=2, generation=1, data_offset=100, crc=5)  # fmt: skip


def test_frame_round_trip() -> None:
    header = wire.encode(wire.Request(1, b"k", coordinate=True, put=PutHeader(meta=b"x", expect=0), deadline=1.5))
    prefix = wire.frame_prefix(wire.PUT, 42, header, 5)
    assert len(prefix) == wire.FRAME.size + len(header) == 16 + len(header)
    kind, rid, hlen, dlen = wire.parse_frame_header(prefix)
    assert (kind, rid, hlen, dlen) == (wire.PUT, 42, len(header), 5)
    req = wire.request_decoder.decode(prefix[wire.FRAME.size :])
    assert req.coordinate and req.put == PutHeader(meta=b"x", expect=0) and req.deadline == 1.5
    assert req.clock is None and req.start == 0 and req.length is None


def test_reply_round_trip_keeps_entries_and_statuses() -> None:
    for reply in (wire.Reply(200, entry=ENTRY, applied=False), wire.Reply(200, written=Written(ENTRY, ENTRY, b"p")),
                  wire.Reply(304, entry=ENTRY), wire.Reply(507, message="disk full"), wire.Reply(404)):  # fmt: skip
        assert wire.reply_decoder.decode(wire.encode(reply)) == reply


def test_oversized_frames_are_protocol_errors_before_any_allocation() -> None:
    with pytest.raises(wire.ProtocolError):
        wire.frame_prefix(wire.PUT, 1, b"x" * (wire.MAX_HEADER + 1))
    with pytest.raises(wire.ProtocolError):
        wire.frame_prefix(wire.PUT, 1, b"", wire.MAX_DATA + 1)
    # a peer announcing more than the limits: refused from the 16 fixed bytes alone
    for hlen, dlen in ((wire.MAX_HEADER + 1, 0), (0, wire.MAX_DATA + 1), (2**32 - 1, 2**32 - 1)):
        with pytest.raises(wire.ProtocolError, match="too large"):
            wire.parse_frame_header(wire.FRAME.pack(wire.PUT, 1, hlen, dlen))
    assert wire.parse_frame_header(wire.FRAME.pack(wire.PUT, 1, wire.MAX_HEADER, wire.MAX_DATA))[3] == wire.MAX_DATA


def test_preface_and_versions() -> None:
    assert wire.PREFACE == b"\x00LEOFS\x01"
    wire.check_preface(wire.PREFACE)
    with pytest.raises(wire.ProtocolError, match="version 2 is not supported"):
        wire.check_preface(wire.MAGIC + b"\x02")
    with pytest.raises(wire.ProtocolError, match="not a leofs"):
        wire.check_preface(b"GET / H")


def test_proofs_depend_on_secret_nonces_and_direction() -> None:
    s, c = b"s" * 32, b"c" * 32
    proof = wire.client_proof(b"secret", s, c)
    assert proof == wire.client_proof(b"secret", s, c) and len(proof) == 32
    assert proof != wire.client_proof(b"other", s, c)
    assert proof != wire.client_proof(b"secret", c, s)
    assert proof != wire.server_proof(b"secret", s, c)  # a reflected proof does not pass as the server's
