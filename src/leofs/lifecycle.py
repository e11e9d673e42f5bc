"""Process lifecycle shared by every leofs daemon."""

from __future__ import annotations

import asyncio
import signal


async def wait_for_shutdown_signal() -> None:
    """Return when the process gets SIGINT or SIGTERM (then the caller shuts down cleanly)."""
    dump_tasks_on_sigusr1()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


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
