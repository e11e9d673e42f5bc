"""Process lifecycle shared by every leofs daemon."""

from __future__ import annotations

import asyncio
import signal


async def wait_for_shutdown_signal() -> None:
    """Return when the process gets SIGINT or SIGTERM (then the caller shuts down cleanly)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
