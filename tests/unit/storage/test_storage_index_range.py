"""Index.range: the inline row decoding gives the same entries as row_entry."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from leofs.storage.index import _COLUMNS, Index, row_entry
from leofs.storage.model import Entry


def _entries() -> list[Entry]:
    out = []
    for i in range(40):
        tomb = i % 3 == 0
        out.append(Entry(
            i % 2, b"k/%03d" % i, 10**15 + i, 1_700_000_000_000_000 + i, tomb, 0 if tomb else i * 100,
            b"" if tomb else bytes(range(16)), b"" if i % 5 == 0 else b"meta%d" % i, i % 4, i % 7, 1 << 20,
            i % 5, i, 4096 * i, 0xFFFFFFFF - i,
        ))  # fmt: skip
    return out


@pytest.mark.parametrize("tombstones", [False, True])
@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("hi", [None, b"k/030"])
def test_range_matches_row_entry(tmp_path: Path, tombstones: bool, inclusive: bool, hi: bytes | None) -> None:
    index = Index(tmp_path / "index.db", create=True)
    try:
        index.begin()
        index.put_entries(_entries())
        index.commit()
        assert any(e.tombstone for e in index.range(0, b"", True, None, 100, True))
        for ns in (0, 1):
            for lo, limit in ((b"", 100), (b"k/004", 100), (b"k/004", 5), (b"k/039", 10)):
                got = index.range(ns, lo, inclusive, hi, limit, tombstones)
                sql = (f"SELECT {_COLUMNS} FROM entries WHERE ns=? AND key {'>=' if inclusive else '>'} ?"
                       + (" AND key < ?" if hi is not None else "") + ("" if tombstones else " AND tombstone=0")
                       + " ORDER BY key LIMIT ?")
                args = (ns, lo, limit) if hi is None else (ns, lo, hi, limit)
                want = [row_entry(r) for r in index.db.execute(sql, args)]
                assert got == want
                assert [msgspec.msgpack.encode(e) for e in got] == [msgspec.msgpack.encode(e) for e in want]
                assert all(type(e.tombstone) is bool and type(e.key) is bytes for e in got)
                assert tombstones or not any(e.tombstone for e in got)
    finally:
        index.close()
