"""A steady, light S3 load from one thread (boto3, no retries): alternately a PUT of a new small
object and a GET of an acknowledged one (checked byte for byte). Every request is recorded with its
start, duration and outcome, so a test can say: none failed, none took longer than X, and every
acknowledged write reads back."""

from __future__ import annotations

import functools
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.servers import ROOT_ACCESS_KEY, ROOT_SECRET_KEY


@dataclass(frozen=True)
class Op:
    kind: str  # "put" | "get"
    key: str
    start: float  # time.monotonic()
    seconds: float
    error: str | None = None


class SteadyLoad:
    """``with SteadyLoad(endpoint, bucket) as load: ...``; ``load.ops`` and ``load.acked`` after."""

    def __init__(self, endpoint: str, bucket: str, *, prefix: str = "load", pause: float = 0.02,
                 read_timeout: float = 30.0, seed: int = 0) -> None:  # fmt: skip
        self.bucket = bucket
        self.prefix = prefix
        self.pause = pause
        self.s3: Any = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=ROOT_ACCESS_KEY, aws_secret_access_key=ROOT_SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=read_timeout))  # fmt: skip
        self.rnd = random.Random(seed)
        self.ops: list[Op] = []
        self.acked: dict[str, tuple[bytes, float]] = {}  # key -> (body, when acknowledged)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the load thread is stuck"

    def _timed(self, kind: str, key: str, call: Any) -> Any:
        start = time.monotonic()
        try:
            result = call()
        except (BotoCoreError, ClientError) as exc:
            self.ops.append(Op(kind, key, start, time.monotonic() - start, f"{type(exc).__name__}: {exc}"))
            return None
        self.ops.append(Op(kind, key, start, time.monotonic() - start))
        return result

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            key = f"{self.prefix}/{i:06d}"
            body = self.rnd.randbytes(self.rnd.choice([100, 3000, 20000]))
            put = functools.partial(self.s3.put_object, Bucket=self.bucket, Key=key, Body=body)
            if self._timed("put", key, put):
                self.acked[key] = (body, time.monotonic())
            i += 1
            if self.acked:
                old = self.rnd.choice(list(self.acked))

                def get(k: str = old) -> bool:
                    data = self.s3.get_object(Bucket=self.bucket, Key=k)["Body"].read()
                    return True if data == self.acked[k][0] else self._wrong(k)

                self._timed("get", old, get)
            time.sleep(self.pause)

    def _wrong(self, key: str) -> bool:
        self.ops.append(Op("get", key, time.monotonic(), 0.0, "wrong bytes"))
        return False

    # -- what tests assert on -------------------------------------------------------------------
    def failures(self) -> list[Op]:
        return [op for op in self.ops if op.error is not None]

    def slowest(self) -> Op:
        return max(self.ops, key=lambda op: op.seconds)

    def written_between(self, start: float, end: float) -> dict[str, bytes]:
        """Acknowledged writes whose request started in [start, end]."""
        # copies first: the load thread may be adding to both (list() and dict() copy under the GIL)
        started = {op.key: op.start for op in list(self.ops) if op.kind == "put" and op.error is None}
        acked = dict(self.acked)
        return {k: body for k, (body, _) in acked.items() if start <= started.get(k, -1.0) <= end}
