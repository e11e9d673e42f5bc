"""Process lifecycle shared by every leofs daemon."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

log = logging.getLogger("leofs")


async def wait_for_shutdown_signal() -> None:
    """Return when the process gets SIGINT or SIGTERM (then the caller shuts down cleanly)."""
    dump_tasks_on_sigusr1()
    quiet_connection_resets()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def reload_on_sighup(reload: Callable[[], object]) -> None:
    """Call ``reload`` on SIGHUP (re-read files such as the custom response headers; a daemon has
    no terminal, so SIGHUP means "reload" as for nginx)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def dump_tasks_on_sigusr1() -> None:
    """On SIGUSR1, print every asyncio task's stack to stderr: where a stuck request is waiting."""
    import sys

    loop = asyncio.get_running_loop()

    def dump() -> None:
        tasks = asyncio.all_tasks(loop)
        print(f"--- {len(tasks)} asyncio tasks ---", file=sys.stderr, flush=True)
        for task in tasks:
            task.print_stack(limit=12, file=sys.stderr)
        sys.stderr.flush()

    loop.add_signal_handler(signal.SIGUSR1, dump)


def quiet_connection_resets() -> None:
    """A peer that dies mid-request (a SIGKILLed node) leaves aiohttp's internal body-writing task
    with a connection error nobody retrieves; the request itself already failed and was handled
    (repair queue, next replica). Log those in one line instead of a traceback; keep the rest."""
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, ConnectionError):
            log.info("connection lost in a background task: %s", exc)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
