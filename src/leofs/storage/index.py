"""The ordered index: one SQLite database (WAL mode) mapping (ns, key) to the latest Entry.

Each thread that touches the index owns its own ``Index`` (one sqlite3 connection each); WAL lets
readers on the event loop run while the writer thread commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from leofs.storage.model import Entry

_COLUMNS = (
    "ns, key, clock, timestamp, tombstone, size, md5, meta, cindex, cnumber, csize, "
    "container, generation, data_offset, crc"
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries(
    ns INTEGER NOT NULL, key BLOB NOT NULL, clock INTEGER NOT NULL, timestamp INTEGER NOT NULL,
    tombstone INTEGER NOT NULL, size INTEGER NOT NULL, md5 BLOB NOT NULL, meta BLOB NOT NULL,
    cindex INTEGER NOT NULL, cnumber INTEGER NOT NULL, csize INTEGER NOT NULL,
    container INTEGER NOT NULL, generation INTEGER NOT NULL, data_offset INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    PRIMARY KEY(ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS containers(
    id INTEGER PRIMARY KEY, generation INTEGER NOT NULL, applied INTEGER NOT NULL,
    last_offset INTEGER NOT NULL, last_hcrc INTEGER NOT NULL, needles INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- {_COLUMNS}
"""

# Later needles win on equal clocks so that a replay or rebuild in log order ends where the writer did.
_UPSERT_LWW = (
    f"INSERT INTO entries({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(ns, key) DO UPDATE SET clock=excluded.clock, timestamp=excluded.timestamp, "
    "tombstone=excluded.tombstone, size=excluded.size, md5=excluded.md5, meta=excluded.meta, "
    "cindex=excluded.cindex, cnumber=excluded.cnumber, csize=excluded.csize, "
    "container=excluded.container, generation=excluded.generation, "
    "data_offset=excluded.data_offset, crc=excluded.crc WHERE excluded.clock >= entries.clock"
)


class ContainerState(NamedTuple):
    """Per-container recovery state kept in the same transactions as the rows."""

    generation: int
    applied: int  # log offset up to which the index reflects the log
    last_offset: int  # offset of the last applied needle (-1 if none)
    last_hcrc: int  # its header CRC, to detect a log changed under the index
    needles: int  # needles in the current log


def entry_row(e: Entry) -> tuple[Any, ...]:
    return (
        e.ns, e.key, e.clock, e.timestamp, int(e.tombstone), e.size, e.md5, e.meta, e.cindex,
        e.cnumber, e.csize, e.container, e.generation, e.data_offset, e.crc,
    )  # fmt: skip


def row_entry(r: tuple[Any, ...]) -> Entry:
    return Entry(
        r[0], bytes(r[1]), r[2], r[3], bool(r[4]), r[5], bytes(r[6]), bytes(r[7]), r[8], r[9], r[10],
        r[11], r[12], r[13], r[14],
    )  # fmt: skip


def _range_sql(lo_inclusive: bool, bounded: bool, tombstones: bool) -> str:
    sql = f"SELECT {_COLUMNS} FROM entries WHERE ns=? AND key {'>=' if lo_inclusive else '>'} ?"
    if bounded:
        sql += " AND key < ?"
    if not tombstones:
        sql += " AND tombstone=0"
    return sql + " ORDER BY key LIMIT ?"


#: Index.range's statements by (lo_inclusive, bounded, tombstones)
_RANGE_SQL = {(i, b, t): _range_sql(i, b, t) for i in (False, True) for b in (False, True) for t in (False, True)}


class Index:
    """A connection to the index database with the few queries the engine needs."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is enough: the index is recoverable from the logs (see the applied offsets).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=60000")
        if create:
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- reads ------------------------------------------------------------------------------------
    def get(self, ns: int, key: bytes) -> Entry | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM entries WHERE ns=? AND key=?", (ns, key)).fetchone()
        return None if row is None else row_entry(row)

    def range(
        self, ns: int, lo: bytes, lo_inclusive: bool, hi: bytes | None, limit: int, tombstones: bool
    ) -> list[Entry]:
        """Up to ``limit`` entries with lo <(=) key < hi, in key order."""
        # Listings decode up to 1,000 rows per call: build the entries inline (no call per row;
        # sqlite3 already returns BLOBs as bytes, so no copies): under half the Python time of
        # row_entry; without tombstones every row has tombstone=0.
        cur = self.db.execute(
            _RANGE_SQL[lo_inclusive, hi is not None, tombstones],
            (ns, lo, limit) if hi is None else (ns, lo, hi, limit),
        )
        if not tombstones:
            return [
                Entry(n, k, clock, ts, False, size, md5, meta, ci, cn, cs, c, gen, off, crc)
                for n, k, clock, ts, _, size, md5, meta, ci, cn, cs, c, gen, off, crc in cur
            ]
        return [
            Entry(n, k, clock, ts, t != 0, size, md5, meta, ci, cn, cs, c, gen, off, crc)
            for n, k, clock, ts, t, size, md5, meta, ci, cn, cs, c, gen, off, crc in cur
        ]

    def next_namespace(self, after: int) -> int | None:
        """The smallest namespace above ``after`` that holds an entry (a walk over every namespace)."""
        row = self.db.execute("SELECT min(ns) FROM entries WHERE ns > ?", (after,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def containers(self) -> dict[int, ContainerState]:
        rows = self.db.execute(
            "SELECT id, generation, applied, last_offset, last_hcrc, needles FROM containers"
        )
        return {r[0]: ContainerState(*r[1:]) for r in rows}

    def state(self, name: str, default: int = 0) -> int:
        row = self.db.execute("SELECT value FROM state WHERE name=?", (name,)).fetchone()
        return default if row is None else int(row[0])

    def active_usage(self, header_size: int) -> dict[int, tuple[int, int]]:
        """Per container: (live object count, bytes of their needles)."""
        sql = (
            "SELECT container, COUNT(*), "
            f"SUM(((({header_size} + length(key) + length(meta) + size + 4) + 7) / 8) * 8) "
            "FROM entries WHERE tombstone=0 GROUP BY container"
        )
        return {r[0]: (r[1], r[2] or 0) for r in self.db.execute(sql)}

    def versions(self, after: tuple[int, bytes] | None, limit: int) -> list[tuple[int, bytes, int, bool, int]]:
        """(ns, key, clock, tombstone, timestamp) after ``after`` in (ns, key) order, at most ``limit``
        rows, tombstones included: what anti-entropy compares between replicas."""
        sql = "SELECT ns, key, clock, tombstone, timestamp FROM entries"
        if after is None:
            rows = self.db.execute(f"{sql} ORDER BY ns, key LIMIT ?", (limit,))
        else:
            rows = self.db.execute(f"{sql} WHERE (ns, key) > (?, ?) ORDER BY ns, key LIMIT ?",
                                   (after[0], after[1], limit))  # fmt: skip
        return [(n, bytes(k), c, t != 0, ts) for n, k, c, t, ts in rows]

    def entry_at(self, container: int, generation: int, offset: int, header_size: int) -> Entry | None:
        """The entry whose needle starts at ``offset`` (its data follows the header, key and meta)."""
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE container=? AND generation=? "
            "AND data_offset - length(key) - length(meta) = ?", (container, generation, offset + header_size),
        ).fetchone()  # fmt: skip
        return None if row is None else row_entry(row)

    def all_rows(self) -> list[tuple[Any, ...]]:
        return list(self.db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY ns, key"))

    # -- writes (callers wrap them in begin()/commit()) -------------------------------------------
    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def put_entries(self, entries: Iterable[Entry]) -> None:
        self.db.executemany(f"INSERT OR REPLACE INTO entries({_COLUMNS}) VALUES ({','.join('?' * 15)})",
                            (entry_row(e) for e in entries))  # fmt: skip

    def upsert_lww(self, entries: Iterable[Entry]) -> None:
        self.db.executemany(_UPSERT_LWW, (entry_row(e) for e in entries))

    def set_container(self, cid: int, st: ContainerState) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO containers(id, generation, applied, last_offset, last_hcrc, needles) "
            "VALUES (?,?,?,?,?,?)",
            (cid, *st),
        )

    def set_state(self, name: str, value: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO state(name, value) VALUES (?, ?)", (name, value))

    def clear_entries(self) -> None:
        """Forget every entry and every container's recovery state in one transaction (so a crash
        before the rebuild finishes leads to another full rebuild, not to a partial index)."""
        self.begin()
        try:
            self.db.execute("DELETE FROM entries")
            self.db.execute("DELETE FROM containers")
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def delete_container_entries(self, cid: int) -> None:
        self.db.execute("DELETE FROM entries WHERE container=?", (cid,))

    def move(self, moves: Iterable[tuple[int, int, int, bytes, int, int, int]]) -> None:
        """Repoint entries still at their old location (a key's needles may sit in any container).

        Each move is (new gen, new offset, ns, key, container, old gen, old offset)."""
        self.db.executemany(
            "UPDATE entries SET generation=?, data_offset=? "
            "WHERE ns=? AND key=? AND container=? AND generation=? AND data_offset=?",
            moves,
        )

    def drop(self, drops: Iterable[tuple[int, bytes, int, int, int]]) -> None:
        """Delete entries still at (container, old generation, old offset): (ns, key, container, gen, off)."""
        self.db.executemany(
            "DELETE FROM entries WHERE ns=? AND key=? AND container=? AND generation=? AND data_offset=?", drops
        )

    def set_full_sync(self, full: bool) -> None:
        self.db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
