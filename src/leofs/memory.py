"""Process memory settings for the servers."""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def return_large_buffers_to_the_os(threshold: int = 1024 * 1024) -> bool:
    """Make glibc serve allocations above ``threshold`` with mmap, so the 5 MiB chunk buffers that
    streaming uploads come and go with are given back when freed instead of staying in the heap
    (which showed up as ~50 MiB of resident memory that no object needed). No-op off glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * threshold))
    return ok
