"""The test side of cachectl/cache/_acompat.py: each async helper, then its sync twin.

tests/integration/test_cache_async.py is written with the async names;
scripts/async_to_sync.py renames them (``NAMES``) to write test_cache_sync.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cachectl.cache._acompat import AEvent, Event
from tests.support.cache import wait_for as until

ABarrier, Barrier = asyncio.Barrier, threading.Barrier
current_task, current_thread = asyncio.current_task, threading.current_thread
asleep, sleep = asyncio.sleep, time.sleep

__all__ = [
    "ABarrier",
    "AEvent",
    "Barrier",
    "Event",
    "ajoin",
    "asleep",
    "aspawn",
    "auntil",
    "current_task",
    "current_thread",
    "join",
    "running_tasks",
    "running_threads",
    "sleep",
    "spawn",
    "until",
]


def aspawn(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
    """Start ``fn(*args, **kwargs)`` as a task."""
    return asyncio.ensure_future(fn(*args, **kwargs))


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """Start ``fn(*args, **kwargs)`` in a thread."""
    thread = threading.Thread(target=fn, args=args, kwargs=kwargs)
    thread.start()
    return thread


async def ajoin(workers: list[asyncio.Task[Any]]) -> None:
    """Wait for every task (the first error raised propagates)."""
    await asyncio.gather(*workers)


def join(workers: list[threading.Thread]) -> None:
    """Wait for every thread (an error raised in one fails the test through pytest)."""
    for thread in workers:
        thread.join()


async def auntil(predicate: Callable[[], Any], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` (letting the loop run) until it holds or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


def running_tasks() -> set[Any]:
    """What runs besides the caller: the loop's tasks and the process's threads."""
    return set(asyncio.all_tasks()) | set(threading.enumerate())


def running_threads() -> set[Any]:
    """What runs besides the caller: the process's threads."""
    return set(threading.enumerate())
