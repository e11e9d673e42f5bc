"""Direct calls to one storage node's internal API (``X-Leofs-Role: replica``: that node's own copy only),
so cluster tests can check each replica rather than whatever the gateway routes to."""

from __future__ import annotations

import urllib.error
import urllib.request

from leofs.internal.messages import ROLE_HEADER, ROLE_REPLICA, SECRET_HEADER, entry_decoder, key_param
from leofs.storage.model import Entry
from tests.support.servers import CLUSTER_SECRET

_HEADERS = {SECRET_HEADER: CLUSTER_SECRET, ROLE_HEADER: ROLE_REPLICA}


def _get(address: str, path: str, key: bytes, ns: int) -> tuple[int, bytes]:
    url = f"http://{address}{path}?ns={ns}&key={key_param(key)}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=_HEADERS), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def replica_meta(address: str, key: bytes, ns: int = 0) -> Entry | None:
    """The node's own index entry for the key (tombstones included), None when it has none."""
    status, body = _get(address, "/meta", key, ns)
    if status == 404:
        return None
    assert status == 200, (address, status, body[:300])
    return entry_decoder.decode(body)


def replica_read(address: str, key: bytes, ns: int = 0) -> tuple[int, bytes]:
    """(status, data) of the node's own copy: 404 when missing or a tombstone."""
    return _get(address, "/obj", key, ns)
