"""Range arithmetic over uneven blob layouts: ``extents`` against slicing the whole bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leofs.gateway.objects import extents
from leofs.gateway.records import Blob, Manifest


def _layout(sizes_and_chunks: list[tuple[int, int]]) -> tuple[Manifest, dict[tuple[str, int], bytes], bytes]:
    """A manifest of blobs with the given (size, chunk_size), their chunks' bytes, and the whole body."""
    blobs: list[Blob] = []
    chunks: dict[tuple[str, int], bytes] = {}
    whole = bytearray()
    counter = 0
    for number, (size, chunk_size) in enumerate(sizes_and_chunks):
        body = bytes((counter + i * 7 + number * 13) % 251 for i in range(size))
        counter += size
        count = max(1, -(-size // chunk_size))
        blob_id = f"b{number}"
        for index in range(count):
            chunks[(blob_id, index + 1)] = body[index * chunk_size : (index + 1) * chunk_size]
        blobs.append(Blob(blob_id, size, chunk_size, count, ""))
        whole += body
    return Manifest(blobs), chunks, bytes(whole)


def _read(manifest: Manifest, chunks: dict[tuple[str, int], bytes], start: int, end: int) -> bytes:
    out = bytearray()
    for ext in extents(manifest, start, end):
        chunk = chunks[(ext.blob.blob_id, ext.index)]
        assert ext.length > 0
        assert ext.offset >= 0 and ext.offset + ext.length <= len(chunk)
        out += chunk[ext.offset : ext.offset + ext.length]
    return bytes(out)


blob_specs = st.lists(st.tuples(st.integers(1, 60), st.integers(1, 16)), min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(blob_specs, st.data())
def test_extents_match_slicing(specs: list[tuple[int, int]], data: st.DataObject) -> None:
    manifest, chunks, whole = _layout(specs)
    start = data.draw(st.integers(0, len(whole) - 1))
    end = data.draw(st.integers(start, len(whole) - 1))
    assert _read(manifest, chunks, start, end) == whole[start : end + 1]


@settings(max_examples=200, deadline=None)
@given(blob_specs)
def test_whole_object_and_every_single_byte(specs: list[tuple[int, int]]) -> None:
    manifest, chunks, whole = _layout(specs)
    assert _read(manifest, chunks, 0, len(whole) - 1) == whole
    for i in range(len(whole)):
        assert _read(manifest, chunks, i, i) == whole[i : i + 1]


@settings(max_examples=200, deadline=None)
@given(blob_specs, st.data())
def test_extents_are_ordered_and_minimal(specs: list[tuple[int, int]], data: st.DataObject) -> None:
    """Pieces come in body order, never overlap, and cover exactly the range (no empty pieces)."""
    manifest, _chunks, whole = _layout(specs)
    start = data.draw(st.integers(0, len(whole) - 1))
    end = data.draw(st.integers(start, len(whole) - 1))
    pieces = list(extents(manifest, start, end))
    assert sum(p.length for p in pieces) == end - start + 1
    order = {b.blob_id: n for n, b in enumerate(manifest.blobs)}
    keys = [(order[p.blob.blob_id], p.index, p.offset) for p in pieces]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_part_boundaries_of_uneven_multipart_layout() -> None:
    """The issue's layout: parts of 5 MiB+7, 6 MiB, 5 MiB+1 and 3 bytes, chunked at 5 MiB (scaled down)."""
    mib = 64
    layout = [(5 * mib + 7, 5 * mib), (6 * mib, 5 * mib), (5 * mib + 1, 5 * mib), (3, 5 * mib)]
    manifest, chunks, whole = _layout(layout)
    boundaries = [0]
    for blob in manifest.blobs:
        boundaries.append(boundaries[-1] + blob.size)
    for b in boundaries[1:-1]:
        for lo in (b - 2, b - 1, b):
            for hi in (b, b + 1, b + 5 * mib):
                hi = min(hi, len(whole) - 1)
                if lo <= hi:
                    assert _read(manifest, chunks, lo, hi) == whole[lo : hi + 1]
