"""Container log files: naming, opening, appending, and scanning needles back."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from leofs.fsmode import FILE_MODE
from leofs.storage.needle import (
    LOG_HEADER_SIZE,
    DataCrcError,
    Needle,
    NeedleError,
    check_log_header,
    encode_log_header,
    pread_exact,
    read_needle,
)

_NAME = re.compile(r"^(\d{6})\.g(\d{6})\.log$")


def log_name(container: int, generation: int) -> str:
    return f"{container:06d}.g{generation:06d}.log"


def list_generations(avs: Path, container: int) -> list[int]:
    """Generations of this container's log files present on disk."""
    gens = []
    for name in os.listdir(avs):
        m = _NAME.match(name)
        if m and int(m.group(1)) == container:
            gens.append(int(m.group(2)))
    return sorted(gens)


def fsync_dir(path: Path) -> None:
    """Make renames, creations and unlinks in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LogFile:
    """One open container log. The fd closes when the last reference goes away, so readers that
    hold a LogFile (or a dup'd fd from open_data) keep working after compaction unlinks the file."""

    def __init__(self, path: Path, container: int, generation: int, fd: int, end: int) -> None:
        self.path = path
        self.container = container
        self.generation = generation
        self.fd = fd
        self.end = end  # offset of the first byte after the last needle (only the writer moves it)

    @classmethod
    def create(cls, avs: Path, container: int, generation: int) -> LogFile:
        """Create (or truncate) a log file holding only its header, fsynced."""
        path = avs / log_name(container, generation)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        write_all(fd, encode_log_header(container, generation), 0)
        os.fsync(fd)
        return cls(path, container, generation, fd, LOG_HEADER_SIZE)

    @classmethod
    def open(cls, avs: Path, container: int, generation: int) -> LogFile:
        """Open an existing log; a missing or headerless file is (re)created empty."""
        path = avs / log_name(container, generation)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return cls.create(avs, container, generation)
        if not check_log_header(pread_exact(fd, LOG_HEADER_SIZE, 0), container, generation):
            os.close(fd)
            return cls.create(avs, container, generation)
        return cls(path, container, generation, fd, os.fstat(fd).st_size)

    @classmethod
    def open_readonly(cls, avs: Path, container: int, generation: int) -> LogFile | None:
        """Open an existing log for reading only (another process owns its writes); None if it is
        gone (compacted away meanwhile)."""
        path = avs / log_name(container, generation)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        return cls(path, container, generation, fd, os.fstat(fd).st_size)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncate(self, end: int) -> None:
        os.ftruncate(self.fd, end)
        self.end = end

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            self.close()

    def needles(self, start: int, end: int | None = None, *, verify_data: bool = True,
                keep_damaged: bool = False) -> NeedleScan:  # fmt: skip
        """Iterate over the valid needles from ``start`` up to ``end`` (default: the file size)."""
        return NeedleScan(self.fd, start, self.size() if end is None else end, verify_data, keep_damaged)


class NeedleScan:
    """Yields valid needles and stops (raising nothing) at the first invalid one; afterwards
    ``stop`` is where the valid needles end and ``error`` why the scan stopped early (None at the end).

    With ``keep_damaged`` (a rebuild of the whole log), a needle whose header is sound but whose
    data fails its CRC, and that a sound needle follows, is damage inside the log (a flipped bit in
    data long since synced), not a torn tail: it is yielded too and counted in ``damaged``, so that
    the rebuild neither cuts off every needle after it nor lets an older version of its key come
    back; reading it fails its CRC and the scrub reports it for repair. A tail replay keeps the
    plain rule (stop at the first bad needle): everything after the applied offset belongs to
    batches that were never acknowledged, whose pages a crash may have written out of order."""

    def __init__(self, fd: int, start: int, end: int, verify_data: bool, keep_damaged: bool = False) -> None:
        self.fd = fd
        self.stop = start
        self.end = end
        self.verify_data = verify_data
        self.keep_damaged = keep_damaged
        self.error: str | None = None
        self.damaged = 0

    def __iter__(self) -> Iterator[Needle]:
        off = self.stop
        while off < self.end:
            try:
                n = read_needle(self.fd, off, self.end, verify_data=self.verify_data)
            except DataCrcError as exc:
                if not (self.keep_damaged and self._sound_at(exc.needle.end)):
                    self.error = str(exc)
                    break
                n = exc.needle
                self.damaged += 1
            except NeedleError as exc:
                self.error = str(exc)
                break
            yield n
            off = n.end
            self.stop = off

    def _sound_at(self, offset: int) -> bool:
        """Whether a needle with a sound header starts at ``offset``."""
        if offset >= self.end:
            return False
        try:
            read_needle(self.fd, offset, self.end, verify_data=False)
        except NeedleError:
            return False
        return True


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """pwrite the whole buffer (pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def writev_all(fd: int, bufs: list[bytes | memoryview], offset: int) -> int:
    """pwritev a list of buffers, finishing any partial write; returns bytes written."""
    total = sum(len(b) for b in bufs)
    done = 0
    # IOV_MAX is 1024 on Linux; write in slices of buffers.
    i = 0
    while i < len(bufs):
        chunk = bufs[i : i + 512]
        want = sum(len(b) for b in chunk)
        n = os.pwritev(fd, chunk, offset + done)
        if n < want:
            write_all(fd, b"".join(chunk)[n:], offset + done + n)
        done += want
        i += 512
    return total
