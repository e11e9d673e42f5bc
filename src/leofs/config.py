"""The configuration of every role: one section per role, their defaults, and where values come from.

Values come from the defaults below, then an optional TOML file (``--config leofs.toml``), then
``LEOFS_<SECTION>_<OPTION>`` environment variables (and ``LEOFS_CLUSTER_SECRET`` for every role
that takes the cluster secret), then command-line flags. The defaults are defined here only; the
role option classes and the CLI take theirs from here. ``leofs.sample.toml`` documents every option.

Pure: imports nothing of the project, so every role may use it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import Meta

from leofs.ring.members import DEFAULT_VNODES as DEFAULT_VNODES  # the ring's own default (pure)

DEFAULT_S3_ADDRESS: Final = "127.0.0.1:8080"
DEFAULT_MANAGER_ADDRESS: Final = "127.0.0.1:10010"  # the manager's (and the embedded server's) admin API
DEFAULT_NODE_ADDRESS: Final = "127.0.0.1:4010"
DEFAULT_GATEWAY_ADMIN_ADDRESS: Final = "127.0.0.1:10011"
DEFAULT_CONTAINERS: Final = 8
#: calls between cluster processes (leofs.internal.health.CallTimeouts): connecting, a call without
#: object data (metadata, deletes, listings), and the longest silence on a call carrying object data
DEFAULT_CONNECT_TIMEOUT: Final = 1.0
DEFAULT_OP_TIMEOUT: Final = 2.0
DEFAULT_BODY_TIMEOUT: Final = 3.0
#: seconds without a heartbeat before the manager marks a node ``stop``
DEFAULT_HEARTBEAT_TIMEOUT: Final = 3.0
#: the one environment variable that gives the cluster secret to every role
CLUSTER_SECRET_ENV: Final = "LEOFS_CLUSTER_SECRET"
#: options every cluster role (and ``leofs adm``) also reads from one shared variable; the role's own wins
SHARED_ENV: Final[dict[str, str]] = {
    "cluster_secret": CLUSTER_SECRET_ENV,
    "internal_tls_cert": "LEOFS_INTERNAL_TLS_CERT",
    "internal_tls_key": "LEOFS_INTERNAL_TLS_KEY",
    "internal_tls_ca": "LEOFS_INTERNAL_TLS_CA",
}

#: HOST:PORT, :PORT or PORT (see parse_address)
Address = Annotated[str, Meta(pattern=r"^(.*:)?[0-9]{1,5}$")]
#: what a gateway serves: S3 or the REST API on its address, or both (REST on its rest_address)
Protocol = Annotated[str, Meta(pattern=r"^(s3|rest|s3,rest)$")]
#: how a process makes object calls to storage nodes: the binary protocol, or HTTP (A/B, debugging)
InternalProtocol = Annotated[str, Meta(pattern=r"^(binary|http)$")]
INTERNAL_PROTOCOLS = ("binary", "http")
PROTOCOLS: Final = ("s3", "rest", "s3,rest")
Positive = Annotated[int, Meta(ge=1)]
Seconds = Annotated[float, Meta(ge=0)]
Timeout = Annotated[float, Meta(gt=0)]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file, variable or key at fault."""


def parse_address(value: str) -> tuple[str, int]:
    """HOST:PORT (or :PORT, or PORT; the host defaults to 127.0.0.1) to a tuple."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    if not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class GatewayConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Gateway settings, shared by ``leofs server`` and ``leofs gateway`` (defaults follow LeoFS
    where it has one)."""

    region: str = "us-east-1"
    chunk_size: Positive = 5 * 1024 * 1024  # large_object.chunked_obj_len
    chunk_threshold: Positive = 5767168  # large_object.threshold_of_chunk_len (5.5 MiB)
    max_object_size: Positive = 5 * 1024**4  # 5 TiB (S3's limit), single PUT capped at 5 GiB
    max_single_put: Positive = 5 * 1024**3
    max_skew: Seconds = 900.0
    chunk_window: Positive = 4  # chunk writes in flight per upload
    chunk_budget: Positive = 32 * 1024 * 1024  # chunk bytes in flight, summed over the process's uploads
    max_xml_body: Positive = 4 * 1024 * 1024
    verify_below: Annotated[int, Meta(ge=0)] = 1024 * 1024  # read and verify objects below this size, sendfile the rest
    # what stalled clients may hold (gateway/limits.py): beyond the caps, 503 SlowDown at once
    max_connections: Positive = 1000  # per process (stay below the open-file limit, often 1024)
    body_budget: Positive = 256 * 1024 * 1024  # request-body bytes buffered per process
    body_idle_timeout: Annotated[float, Meta(ge=0.1)] = 30.0  # seconds without a byte of a body: 400 RequestTimeout
    # the longest a request body may take to arrive (400 RequestTimeout beyond): the longest PUT,
    # which bounds how young an unreferenced chunk gc may delete (maintenance.min_chunk_grace)
    body_deadline: Annotated[float, Meta(ge=0.1)] = 6 * 3600.0
    #: seconds before the chunks of a replaced version are freed: reads that started before the
    #: overwrite finish with the old bytes (leofs.gateway.grace)
    free_grace: Seconds = 300.0
    #: LeoFS's http_custom_header.conf: response headers per path prefix (gateway/custom_headers.py);
    #: read again on SIGHUP. Empty: none.
    headers_config_file: str = ""
    # the object cache (leofs.gateway.cache; LeoFS's leo_cache)
    cache_ram: str = "auto"  # SIZE (bytes, or with KiB/MiB/GiB); auto: 256MiB on a cluster gateway, 0 embedded
    cache_disk: str = ""  # DIR:SIZE; empty: no disk tier
    cache_ram_threshold: Positive = 1024 * 1024  # cache_disc_threshold_len: smaller entries go to RAM
    cache_max_object: Positive = 64 * 1024 * 1024  # larger objects are never cached
    cache_mode: str = "inner"  # inner (validated with the storage node) | http (TTL, public objects)
    cache_http_ttl: Seconds = 300.0  # cache_expire
    cache_http_prefixes: str = ""  # comma-separated bucket/key prefixes (empty: every path)
    cache_http_content_types: str = ""  # comma-separated content types (empty: any)
    cache_shards: Annotated[int, Meta(ge=1, le=256)] = 16  # cache_workers
    access_log: bool = False  # one line per request on stderr, with the cache state

    def __post_init__(self) -> None:
        if self.cache_mode not in ("inner", "http"):
            raise ValueError("cache_mode must be inner or http")
        if self.cache_ram != "auto":
            parse_size(self.cache_ram)
        if self.cache_disk:
            parse_disk_cache(self.cache_disk)


def parse_size(value: str) -> int:
    """A byte count: ``1048576``, ``512KiB``, ``256MiB``, ``1GiB`` (also KB/MB/GB, K/M/G, binary)."""
    match = re.fullmatch(r"\s*([0-9]+)\s*(?:([KMGT])i?)?B?\s*", value, re.IGNORECASE)
    if match is None:
        raise ValueError(f"expected a size such as 256MiB, got {value!r}")
    unit = (match.group(2) or "").upper()
    return int(match.group(1)) * (1024 ** ("KMGT".index(unit) + 1) if unit else 1)


def parse_disk_cache(value: str) -> tuple[str, int]:
    """``DIR:SIZE`` (the disk tier's directory and capacity) to a tuple."""
    directory, sep, size = value.rpartition(":")
    if not sep or not directory:
        raise ValueError(f"expected DIR:SIZE for the disk cache, got {value!r}")
    return directory, parse_size(size)


#: the ``--help`` text of every GatewayConfig option (also its flag: --chunk-size for chunk_size)
GATEWAY_HELP: Final[dict[str, str]] = {
    "region": "Region reported to clients (GetBucketLocation, SigV4 scope).",
    "chunk_size": "Bytes per chunk of a large object.",
    "chunk_threshold": "Objects larger than this are stored in chunks.",
    "max_object_size": "Largest object (multipart), in bytes.",
    "max_single_put": "Largest single PUT, in bytes.",
    "max_skew": "Seconds a request's signed time may differ from the server's.",
    "chunk_window": "Chunk writes in flight per upload.",
    "chunk_budget": "Chunk bytes in flight per process, over all uploads.",
    "max_xml_body": "Largest XML request body, in bytes.",
    "verify_below": "Objects smaller than this are read and verified; larger ones are sent with sendfile.",
    "max_connections": "Connections per process (beyond: 503 SlowDown).",
    "body_budget": "Request-body bytes buffered per process (beyond: 503 SlowDown).",
    "body_idle_timeout": "Seconds a request body may stall (then 400 RequestTimeout).",
    "body_deadline": "Seconds a request body may take in all (then 400 RequestTimeout); gc never collects "
                     "chunks younger than twice this.",
    "free_grace": "Seconds before a replaced version's chunks are freed (reads in progress finish first).",
    "headers_config_file": "File of custom response headers per path prefix (LeoFS's http_custom_header.conf "
                           "format); read again on SIGHUP.",
    "cache_ram": "Object cache RAM capacity (e.g. 256MiB; 0: no RAM tier; auto: 256MiB on a cluster gateway, "
                 "0 on leofs server).",
    "cache_disk": "Object cache disk tier as DIR:SIZE (e.g. /var/cache/leofs:4GiB; empty: none).",
    "cache_ram_threshold": "Cache entries smaller than this go to RAM, larger ones to the disk tier.",
    "cache_max_object": "Objects larger than this are never cached.",
    "cache_mode": "inner: every hit validated with the storage node; http: TTL cache of public objects.",
    "cache_http_ttl": "Seconds an http-mode cache entry is served without asking storage.",
    "cache_http_prefixes": "http mode: comma-separated BUCKET/KEY prefixes that are cached (empty: all).",
    "cache_http_content_types": "http mode: comma-separated content types that are cached (empty: all).",
    "cache_shards": "Cache shards (each with its own lock and a share of the capacity).",
    "access_log": "Log one line per request on stderr (operation, bucket, key, size, status, ms, cache state).",
}


def listeners(protocol: str, address: str, rest_address: str | None) -> tuple[str, str | None]:
    """What ``address`` serves ("s3" or "rest") and the address of a second, REST listener:
    ``s3`` and ``rest`` serve one protocol on ``address``; ``s3,rest`` serves S3 on ``address``
    and the REST API on ``rest_address`` (required then, refused otherwise)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    if protocol == "s3,rest":
        if not rest_address:
            raise ConfigError("protocol s3,rest needs rest_address (--rest-address): the REST API's own port")
        if parse_address(rest_address) == parse_address(address):
            raise ConfigError("rest_address must differ from address")
        return "s3", rest_address
    if rest_address:
        raise ConfigError(f"rest_address is for protocol s3,rest (protocol is {protocol})")
    return protocol, None


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``leofs server``: the embedded manager, storage node and gateway in one process."""

    data_dir: str | None = None
    address: Address = DEFAULT_S3_ADDRESS
    admin_address: Address = DEFAULT_MANAGER_ADDRESS
    protocol: Protocol = "s3"
    rest_address: Address | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    containers: Positive = DEFAULT_CONTAINERS
    sync: bool = True
    workers: Annotated[int, Meta(ge=1, le=64)] | None = None  # None: default_workers()


class ManagerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``leofs manager``."""

    data_dir: str | None = None
    address: Address = DEFAULT_MANAGER_ADDRESS
    replicas: Annotated[int, Meta(ge=1, le=8)] = 1
    write: Positive = 1
    read: Positive = 1
    delete: Positive = 1
    cluster_secret: str | None = None
    heartbeat_timeout: Annotated[float, Meta(ge=0.5)] = DEFAULT_HEARTBEAT_TIMEOUT
    #: TLS on the internal links (leofs.internal.tls): this member's certificate and key (0600) and the
    #: CA that signs every member's certificate; all three or none
    internal_tls_cert: str | None = None
    internal_tls_key: str | None = None
    internal_tls_ca: str | None = None

    def __post_init__(self) -> None:
        if not (self.write <= self.replicas and self.read <= self.replicas and self.delete <= self.replicas):
            raise ValueError("need 1 <= write, read, delete <= replicas <= 8")


class StorageConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``leofs storage``: a storage node of a cluster."""

    name: str | None = None
    data_dir: str | None = None
    manager: Address | None = None
    address: Address = DEFAULT_NODE_ADDRESS
    rack: str | None = None
    vnodes: Positive = DEFAULT_VNODES
    containers: Positive = DEFAULT_CONTAINERS
    sync: bool = True
    cluster_secret: str | None = None
    #: the address other processes reach this node at (a proxy, a NAT), when not ``address``
    advertise_address: Address | None = None
    connect_timeout: Timeout = DEFAULT_CONNECT_TIMEOUT
    op_timeout: Timeout = DEFAULT_OP_TIMEOUT
    body_timeout: Timeout = DEFAULT_BODY_TIMEOUT
    internal_protocol: InternalProtocol = "binary"
    #: TLS on the internal links (leofs.internal.tls): this member's certificate and key (0600) and the
    #: CA that signs every member's certificate; all three or none
    internal_tls_cert: str | None = None
    internal_tls_key: str | None = None
    internal_tls_ca: str | None = None


class GatewaySection(GatewayConfig, kw_only=True, forbid_unknown_fields=True):
    """The [gateway] section: the shared gateway settings, and the options of the ``leofs gateway``
    process (``leofs server`` takes its addresses and TLS from [server])."""

    manager: Address | None = None
    address: Address = DEFAULT_S3_ADDRESS
    admin_address: Address = DEFAULT_GATEWAY_ADMIN_ADDRESS
    protocol: Protocol = "s3"
    rest_address: Address | None = None
    name: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    cluster_secret: str | None = None
    connect_timeout: Timeout = DEFAULT_CONNECT_TIMEOUT
    op_timeout: Timeout = DEFAULT_OP_TIMEOUT
    body_timeout: Timeout = DEFAULT_BODY_TIMEOUT
    workers: Annotated[int, Meta(ge=1, le=64)] | None = None  # None: default_workers()
    internal_protocol: InternalProtocol = "binary"
    #: TLS on the internal links (leofs.internal.tls): this member's certificate and key (0600) and the
    #: CA that signs every member's certificate; all three or none
    internal_tls_cert: str | None = None
    internal_tls_key: str | None = None
    internal_tls_ca: str | None = None

    def settings(self) -> GatewayConfig:
        """The shared gateway settings alone."""
        return GatewayConfig(**{f: getattr(self, f) for f in GatewayConfig.__struct_fields__})


class LeofsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A whole configuration file: one section per role, each optional."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    manager: ManagerConfig = msgspec.field(default_factory=ManagerConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    gateway: GatewaySection = msgspec.field(default_factory=GatewaySection)


SECTIONS: Final[dict[str, type[msgspec.Struct]]] = {
    "server": ServerConfig, "manager": ManagerConfig, "storage": StorageConfig, "gateway": GatewaySection,
}
S = TypeVar("S", bound=msgspec.Struct)


def env_name(section: str, option: str) -> str:
    """The environment variable of an option: LEOFS_GATEWAY_MAX_CONNECTIONS for [gateway] max_connections."""
    return f"LEOFS_{section}_{option}".upper()


def read_file(path: Path) -> LeofsConfig:
    """Parse and check a TOML file: unknown sections or keys and wrong types are errors naming the key."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None
    try:
        return msgspec.convert(raw, LeofsConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_located(exc)}") from None


def _located(exc: msgspec.ValidationError) -> str:
    # msgspec says "... - at `$.gateway.chunk_size`"; operators know the key as gateway.chunk_size
    return str(exc).replace("`$.", "`").replace(" - at `$`", "")


def _with_env(section: str, values: S, environ: Mapping[str, str]) -> S:
    cls = type(values)
    merged = msgspec.to_builtins(values)
    for field in msgspec.structs.fields(cls):
        option = field.name
        names = [env_name(section, option)]
        if option in SHARED_ENV:
            names.append(SHARED_ENV[option])  # the shared name; the role's own wins
        name = next((n for n in names if environ.get(n)), None)
        if name is None:
            continue
        try:  # strict=False: environment values are text ("8", "false")
            merged[option] = msgspec.to_builtins(msgspec.convert(environ[name], field.type, strict=False))
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{name}={environ[name]!r}: {_located(exc)}") from None
    try:
        return msgspec.convert(merged, cls)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"[{section}] after the environment: {_located(exc)}") from None


def effective(config: LeofsConfig, environ: Mapping[str, str]) -> LeofsConfig:
    """``config`` with the ``LEOFS_*`` environment variables applied over it."""
    return LeofsConfig(**{s: _with_env(s, getattr(config, s), environ) for s in SECTIONS})


def resolve(section: str, path: Path | None, environ: Mapping[str, str], flags: Mapping[str, Any]) -> Any:
    """One role's section: defaults < file ``path`` < environment < ``flags`` (the options given on
    the command line, by option name)."""
    config = read_file(path) if path is not None else LeofsConfig()
    values = _with_env(section, getattr(config, section), environ)
    merged = msgspec.to_builtins(values)
    merged.update({k: str(v) if isinstance(v, Path) else v for k, v in flags.items()})
    try:
        return msgspec.convert(merged, type(values))
    except msgspec.ValidationError as exc:
        raise ConfigError(f"[{section}] with the command-line flags: {_located(exc)}") from None


def redacted(config: LeofsConfig) -> dict[str, dict[str, Any]]:
    """The configuration as plain data, secrets hidden (for ``leofs config check``)."""
    out: dict[str, dict[str, Any]] = msgspec.to_builtins(config)
    for values in out.values():
        if values.get("cluster_secret"):
            values["cluster_secret"] = "(set)"
    return out
