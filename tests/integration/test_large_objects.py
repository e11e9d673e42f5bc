"""Large objects through boto3's transfer manager (http and https, default checksums and when_required),
and the server's memory while 8 clients move large objects at once (issue 4)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.integration.conftest import make_client
from tests.support.servers import LeofsServer, process_tree

MiB = 1024 * 1024
SMALL_PARTS = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=8)


class PatternReader(io.RawIOBase):
    """``size`` deterministic bytes generated on the fly (never held in memory): 1 MiB blocks, each
    a shared random block stamped with its index and the seed."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.position = 0
        self._block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)

    def readable(self) -> bool:
        return True

    def _piece(self, index: int) -> bytes:
        return index.to_bytes(8, "big") + self.seed.to_bytes(8, "big") + self._block[16:]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self.position)
        done = 0
        while done < n:
            index, offset = divmod(self.position, MiB)
            take = min(n - done, MiB - offset)
            view[done : done + take] = self._piece(index)[offset : offset + take]
            done += take
            self.position += take
        return n


def pattern_sha256(size: int, seed: int) -> str:
    h = hashlib.sha256()
    reader = PatternReader(size, seed)
    while chunk := reader.read(4 * MiB):
        h.update(chunk)
    return h.hexdigest()


class HashSink(io.RawIOBase):
    """A write-only, non-seekable file object that only hashes what it is given."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


def write_pattern(path: Path, size: int, seed: int) -> bytes:
    reader = PatternReader(size, seed)
    data = reader.read()
    path.write_bytes(data)
    return data


def crc32_composite(data: bytes, part: int) -> str:
    digests = b"".join(zlib.crc32(data[i : i + part]).to_bytes(4, "big") for i in range(0, len(data), part))
    count = -(-len(data) // part)
    return base64.b64encode(zlib.crc32(digests).to_bytes(4, "big")).decode() + f"-{count}"


def _roundtrip(s3: Any, bucket: str, tmp_path: Path, size: int, seed: int) -> tuple[bytes, dict[str, Any]]:
    src = tmp_path / f"up-{seed}.bin"
    data = write_pattern(src, size, seed)
    s3.upload_file(str(src), bucket, f"large/{seed}.bin", Config=SMALL_PARTS)
    head = s3.head_object(Bucket=bucket, Key=f"large/{seed}.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == size
    parts = [data[i : i + 5 * MiB] for i in range(0, size, 5 * MiB)]
    etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    assert head["ETag"] == f'"{etag}"'
    dst = tmp_path / f"down-{seed}.bin"
    s3.download_file(bucket, f"large/{seed}.bin", str(dst), Config=SMALL_PARTS)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()
    return data, head


def test_transfer_default_checksums(s3: Any, bucket: str, tmp_path: Path) -> None:
    """s3transfer sends ChecksumAlgorithm=CRC32 on Create and per-part CRC32s in Complete."""
    data, head = _roundtrip(s3, bucket, tmp_path, 23 * MiB + 4321, 1)
    assert head["ChecksumCRC32"] == crc32_composite(data, 5 * MiB)
    assert head["ChecksumType"] == "COMPOSITE"


def test_transfer_when_required(server: LeofsServer, bucket: str, tmp_path: Path) -> None:
    s3 = make_client(server.endpoint, request_checksum_calculation="when_required",
                     response_checksum_validation="when_required")
    _data, head = _roundtrip(s3, bucket, tmp_path, 17 * MiB + 1, 2)
    assert "ChecksumCRC32" not in head


def test_transfer_download_of_single_put_chunked_object(s3: Any, bucket: str, tmp_path: Path) -> None:
    """A 21 MiB single PUT (stored as 5 MiB chunks) read back with concurrent ranged GETs of 5 MiB."""
    data = PatternReader(21 * MiB + 99, 3).read()
    s3.put_object(Bucket=bucket, Key="single.bin", Body=data)
    dst = tmp_path / "single.out"
    s3.download_file(bucket, "single.bin", str(dst), Config=TransferConfig(
        multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB + 7, max_concurrency=8))
    assert dst.read_bytes() == data
    assert s3.head_object(Bucket=bucket, Key="single.bin")["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_transfer_over_https(tls_server: LeofsServer, ca_bundle: str, tmp_path: Path) -> None:
    """Over TLS botocore sends aws-chunked bodies with checksum trailers (PutObject and UploadPart)."""
    s3 = make_client(tls_server.endpoint, verify=ca_bundle)
    s3.create_bucket(Bucket="tls-large")
    data, head = _roundtrip(s3, "tls-large", tmp_path, 16 * MiB + 5, 4)
    assert head["ChecksumCRC32"] == crc32_composite(data, 5 * MiB)
    # a single PUT above the chunking threshold, with a CRC32 trailer
    single = PatternReader(7 * MiB + 3, 5).read()
    put = s3.put_object(Bucket="tls-large", Key="single.bin", Body=single)
    assert put["ChecksumCRC32"] == base64.b64encode(zlib.crc32(single).to_bytes(4, "big")).decode()
    got = s3.get_object(Bucket="tls-large", Key="single.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == single
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]
    # when_required over TLS: unsigned payload, no trailer
    plain = make_client(tls_server.endpoint, verify=ca_bundle, request_checksum_calculation="when_required")
    plain.upload_fileobj(PatternReader(11 * MiB, 6), "tls-large", "stream.bin", Config=SMALL_PARTS)
    sink = HashSink()
    plain.download_fileobj("tls-large", "stream.bin", sink, Config=SMALL_PARTS)
    assert sink.sha256.hexdigest() == pattern_sha256(11 * MiB, 6)


# -- memory -----------------------------------------------------------------------------------------

CLIENTS = 8
# The issue asks for 2 GiB objects; on 2 shared cores 8 x 2 GiB up and down takes well over 3 minutes
# (~200 MB/s through the server), so the default is 512 MiB per client (4 GiB up + 4 GiB down in
# all). LEOFS_MEMTEST_MIB=2048 runs the full size. Memory must not depend on the object size.
MEMORY_OBJECT_SIZE = int(os.environ.get("LEOFS_MEMTEST_MIB", "512")) * MiB
RSS_LIMIT = 250 * MiB
#: the peak of any one server process (its VmHWM)
PROCESS_LIMIT = 200 * MiB


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def tree_kib(pid: int, field: str) -> int:
    """``field`` of /proc/PID/status summed over the server's processes."""
    total = 0
    for p in process_tree(pid):
        try:
            total += _status_kib(p, field)
        except (OSError, AssertionError):
            pass
    return total


def tree_pss(pid: int) -> int:
    """The server's resident memory: proportional set sizes summed over its processes, so that
    pages they share (the interpreter, libraries) count once, not once per process."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class RssSampler(threading.Thread):
    """The peak of the server's resident memory (summed PSS of its processes), sampled at 20 Hz."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, tree_pss(self.pid))


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LeofsServer]:
    """A server of its own, so its VmHWM covers only this test."""
    srv = LeofsServer(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_memory_flat_with_8_clients(fresh_server: LeofsServer, record_property: Any) -> None:
    """8 clients upload (multipart, streamed from a generator) then download (streamed into a hash)
    large objects at the same time; the server's resident memory stays under 250 MiB.

    The server is the default: a primary and a gateway worker per core. Its resident memory is the
    sum of their proportional set sizes (shared pages once), sampled at 20 Hz; the sum of each
    process's own VmHWM is reported too (an over-estimate: peaks at different times, shared
    pages counted in each)."""
    assert fresh_server.proc is not None
    pid = fresh_server.proc.pid
    s3 = make_client(fresh_server.endpoint, max_pool_connections=4 * CLIENTS)
    s3.create_bucket(Bucket="memory")
    fresh_server.wait_workers(2)  # the primary and its gateway worker, both serving
    start_rss = tree_pss(pid)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=2,
                            max_io_queue=16)
    sampler = RssSampler(pid)
    sampler.start()
    errors: list[BaseException] = []
    results: dict[int, str] = {}
    barrier = threading.Barrier(CLIENTS)

    def client(n: int) -> None:
        try:
            key = f"big-{n}"
            barrier.wait()
            s3.upload_fileobj(PatternReader(MEMORY_OBJECT_SIZE, n), "memory", key, Config=config)
            sink = HashSink()
            s3.download_fileobj("memory", key, sink, Config=config)
            assert sink.size == MEMORY_OBJECT_SIZE
            results[n] = sink.sha256.hexdigest()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.stop.set()
    sampler.join()
    hwm = tree_kib(pid, "VmHWM")
    per_process = [round(_status_kib(p, "VmHWM") / MiB, 1) for p in process_tree(pid)]
    record_property("server_start_rss_mib", round(start_rss / MiB, 1))
    record_property("server_peak_rss_mib", round(sampler.peak / MiB, 1))
    record_property("server_vmhwm_sum_mib", round(hwm / MiB, 1))
    print(f"\nmemory test: {CLIENTS} clients x {MEMORY_OBJECT_SIZE // MiB} MiB up+down; server resident "
          f"memory (PSS) at start {start_rss / MiB:.1f} MiB, sampled peak {sampler.peak / MiB:.1f} MiB; "
          f"VmHWM {hwm / MiB:.1f} MiB summed over processes {per_process}")
    assert not errors, errors
    for n in range(CLIENTS):
        head = s3.head_object(Bucket="memory", Key=f"big-{n}")
        assert head["ContentLength"] == MEMORY_OBJECT_SIZE
        assert head["ETag"].endswith(f'-{MEMORY_OBJECT_SIZE // (8 * MiB)}"')
    expected = pattern_sha256(MEMORY_OBJECT_SIZE, 0)
    assert results[0] == expected
    for n in range(1, CLIENTS):  # every object differs; each one came back as it went up
        assert results[n] != expected
        assert results[n] == pattern_sha256(MEMORY_OBJECT_SIZE, n)
    assert len(process_tree(pid)) == 2  # the bound below covers both processes: none was replaced
    # every process's own peak (VmHWM catches a spike between samples; it counts shared pages in
    # each process, so it is bounded per process) and the sampled sum of proportional sizes
    assert max(per_process) < PROCESS_LIMIT / MiB, f"a server process peaked at {max(per_process)} MiB"
    assert sampler.peak < RSS_LIMIT, f"server peak resident memory {sampler.peak / MiB:.1f} MiB"
