"""The task every competitor of bench/drain_peers.py runs: the same sleep, then the time it was
handled appended to a file (one write per task, the same cost for every competitor)."""

import os
import time

TASK_SECONDS = float(os.environ.get("BENCH_TASK_SECONDS", "0"))
_stamps = open(os.environ["BENCH_STAMPS"], "a", buffering=1) if "BENCH_STAMPS" in os.environ else None


def handle(body=None, headers=None) -> None:
    if TASK_SECONDS:
        time.sleep(TASK_SECONDS)
    _stamps.write(f"{time.time()}\n")


async def handle_async(body=None, headers=None) -> None:
    """The same task as an `async def`: awaits the sleep instead of blocking a thread."""
    import asyncio

    if TASK_SECONDS:
        await asyncio.sleep(TASK_SECONDS)
    _stamps.write(f"{time.time()}\n")
