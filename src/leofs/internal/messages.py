"""Wire messages between cluster processes (manager, storage nodes, gateways).

Internal calls are HTTP (aiohttp, pooled keep-alive) carrying the cluster secret in
``X-Leofs-Cluster-Secret``, except object calls to storage nodes, which go over the binary
protocol by default (:mod:`leofs.internal.wire`) and carry these same structs. Structured
bodies are msgpack (msgspec) unless noted; object data travels raw in the HTTP body so it can be
streamed and sent with sendfile. See docs/internal-api.md for the endpoints.
"""

from __future__ import annotations

import base64

import msgspec

from leofs.accounts import Bucket
from leofs.ring.members import DEFAULT_VNODES
from leofs.storage.model import CommonPrefix, Entry

SECRET_HEADER = "X-Leofs-Cluster-Secret"
#: on storage-node object calls: "coordinate" (from a gateway: this node runs the quorum) or
#: "replica" (from a coordinator: store locally with the given clock)
ROLE_HEADER = "X-Leofs-Role"
ROLE_COORDINATE = "coordinate"
ROLE_REPLICA = "replica"
#: on coordinated PUT/DELETE /obj from a gateway: the Unix time (seconds) after which the gateway no
#: longer waits for the answer (and may send the write to another node). A coordinator that reads
#: the request later (it was paused, or the request was held on the network) refuses it with 503
#: instead of writing with a clock newer than the retry's, which could override a later write.
DEADLINE_HEADER = "X-Leofs-Deadline"
#: base64 of a msgpack :class:`PutHeader` on PUT /obj
PUT_HEADER = "X-Leofs-Put"
#: base64 of a msgpack :class:`Entry` on GET /obj responses
ENTRY_HEADER = "X-Leofs-Entry"
MSGPACK = "application/msgpack"


class Consistency(msgspec.Struct, frozen=True):
    """N replicas; W, R, D acknowledgements for writes, reads and deletes."""

    n: int = 1
    w: int = 1
    r: int = 1
    d: int = 1


class NodeInfo(msgspec.Struct, frozen=True):
    """A cluster member as the manager tracks it."""

    name: str
    type: str  # "storage" | "gateway"
    address: str  # host:port of its internal (storage) or S3 (gateway) listener
    state: str
    rack: str | None = None
    vnodes: int = DEFAULT_VNODES
    ring_hash_current: str = ""
    ring_hash_previous: str = ""
    updated: float = 0.0
    admin_address: str = ""  # a gateway's admin listener (runtime state: re-sent with every heartbeat)


class RegisterRequest(msgspec.Struct, frozen=True):
    """POST /int/register (to the manager)."""

    type: str
    name: str
    address: str
    rack: str | None = None
    vnodes: int = DEFAULT_VNODES
    admin_address: str = ""  # a gateway's admin listener, where the manager sends gc and friends


class HeartbeatRequest(msgspec.Struct, frozen=True):
    """POST /int/heartbeat (to the manager), every second or so."""

    type: str
    name: str
    ring_hash_current: str = ""
    ring_hash_previous: str = ""
    admin_address: str = ""  # a gateway's, so a restarted manager learns it again
    #: a storage node's repair queue: tasks per target node (the manager promotes a recovering node
    #: to running once every running node reports none toward it); None from gateways
    repair_queue: dict[str, int] | None = None
    #: the members version the caller holds (from its last view): the answer carries only the
    #: members changed since when the manager can tell (same epoch), else the whole list
    members_epoch: str = ""
    members_version: int = 0


class ClusterView(msgspec.Struct, frozen=True):
    """What a node needs to route: answered to register and heartbeat, and by GET /int/cluster.

    ``ring_current``/``ring_previous`` hold ``Ring.to_bytes()`` (empty before ``adm start``); they
    are left empty in heartbeat answers when the caller's hashes already match.

    ``members_epoch``/``members_version`` name the member list's version (the epoch is random per
    manager process). With ``delta``, ``nodes`` holds only the members changed since
    ``members_since`` (the version the heartbeat reported) and ``removed`` the names gone since;
    without it, ``nodes`` is every member.
    """

    state: str
    consistency: Consistency
    nodes: list[NodeInfo]
    ring_hash_current: str = ""
    ring_hash_previous: str = ""
    ring_current: bytes = b""
    ring_previous: bytes = b""
    members_epoch: str = ""
    members_version: int = 0
    delta: bool = False
    members_since: int = 0
    removed: list[str] = msgspec.field(default_factory=list)


class StateUser(msgspec.Struct, frozen=True):
    """A user as ``GET /int/state`` carries it (with its secret key: served only with the cluster secret)."""

    user_id: str
    access_key: str
    secret_key: str
    role: int = 1
    canonical_id: str = ""
    email: str = ""


class StateSnapshot(msgspec.Struct, frozen=True):
    """The JSON answer of ``GET /int/state``: what a cluster gateway caches of the manager's state."""

    version: int
    users: list[StateUser] = msgspec.field(default_factory=list)
    buckets: list[Bucket] = msgspec.field(default_factory=list)
    endpoints: list[str] = msgspec.field(default_factory=list)


state_decoder = msgspec.json.Decoder(StateSnapshot)


class PutHeader(msgspec.Struct, frozen=True, omit_defaults=True):
    """The fields of a PUT /obj besides the data. Replicas also get the coordinator's clock."""

    meta: bytes = b""
    cindex: int = 0
    cnumber: int = 0
    csize: int = 0
    md5: bytes | None = None
    clock: int | None = None
    timestamp: int | None = None
    #: from a gateway only: a compare-and-set the coordinator evaluates on its own replica first
    #: (0 = no live version, else the live version's clock; 412 when it does not hold)
    expect: int | None = None


class Written(msgspec.Struct, frozen=True, omit_defaults=True):
    """A coordinated write's answer: the entry written and, when the coordinator holds a replica,
    the entry that write replaced there, with its data if it is a parent record (a manifest), so
    the gateway can free the replaced version's chunks without looking it up first."""

    entry: Entry
    previous: Entry | None = None
    previous_data: bytes | None = None


class ScanItem(msgspec.Struct, frozen=True, array_like=True):
    """One item of a GET /scan answer: an entry, or a common prefix (``entry`` None)."""

    entry: Entry | None = None
    prefix: bytes | None = None


class ScanReply(msgspec.Struct, frozen=True):
    items: list[ScanItem]


class RepairTask(msgspec.Struct, frozen=True):
    """A durable repair-queue item on a coordinator: bring ``target`` up to ``clock`` for the key."""

    ns: int
    key: bytes
    target: str  # node name
    clock: int
    attempts: int = 0
    not_before: float = 0.0


class KeyVersion(msgspec.Struct, frozen=True, array_like=True):
    """One index entry as anti-entropy compares it: which version of (ns, key) a replica holds."""

    ns: int
    key: bytes
    clock: int
    tombstone: bool
    timestamp: int = 0


class DigestRequest(msgspec.Struct, frozen=True):
    """POST /int/digests: per hash bucket, a digest of the (ns, key, clock, tombstone) of every key the
    two nodes ``a`` and ``b`` both hold a replica of in the ring ``ring_hash`` (409 on another ring)."""

    a: str
    b: str
    ring_hash: str


class DigestReply(msgspec.Struct, frozen=True):
    digests: list[bytes]  # one per bucket (bucket = the top bits of the key's ring address)
    counts: list[int]  # keys per bucket


class VersionsRequest(msgspec.Struct, frozen=True):
    """POST /int/versions: a page of the versions the answering node holds of the keys shared by
    ``a`` and ``b``, in (ns, key) order after ``after_ns``/``after_key``, of ``buckets`` only (None: all)."""

    a: str
    b: str
    ring_hash: str
    buckets: list[int] | None = None
    after_ns: int | None = None
    after_key: bytes = b""
    limit: int = 1000


class VersionsReply(msgspec.Struct, frozen=True):
    """``items`` of the page; ``last`` is where the page's scan ended (the next page's ``after``),
    None when the index is exhausted."""

    items: list[KeyVersion]
    last_ns: int | None = None
    last_key: bytes = b""


encoder = msgspec.msgpack.Encoder()
entry_decoder = msgspec.msgpack.Decoder(Entry)
written_decoder = msgspec.msgpack.Decoder(Written)
put_header_decoder = msgspec.msgpack.Decoder(PutHeader)
scan_decoder = msgspec.msgpack.Decoder(ScanReply)
view_decoder = msgspec.msgpack.Decoder(ClusterView)
digest_request_decoder = msgspec.msgpack.Decoder(DigestRequest)
digest_reply_decoder = msgspec.msgpack.Decoder(DigestReply)
versions_request_decoder = msgspec.msgpack.Decoder(VersionsRequest)
versions_reply_decoder = msgspec.msgpack.Decoder(VersionsReply)


def encode_b64(message: msgspec.Struct) -> str:
    """A message as base64 msgpack, to travel in a header."""
    return base64.b64encode(encoder.encode(message)).decode()


def decode_entry_header(value: str) -> Entry:
    return entry_decoder.decode(base64.b64decode(value))


def decode_put_header(value: str) -> PutHeader:
    return put_header_decoder.decode(base64.b64decode(value))


def to_scan_items(items: list[Entry | CommonPrefix]) -> ScanReply:
    return ScanReply([ScanItem(entry=i) if isinstance(i, Entry) else ScanItem(prefix=i.prefix) for i in items])


def from_scan_items(reply: ScanReply) -> list[Entry | CommonPrefix]:
    return [i.entry if i.entry is not None else CommonPrefix(i.prefix or b"") for i in reply.items]


def key_param(key: bytes) -> str:
    """A key in a query string (urlsafe base64: keys are arbitrary bytes)."""
    return base64.urlsafe_b64encode(key).decode()


def parse_key_param(value: str) -> bytes:
    return base64.urlsafe_b64decode(value.encode())
