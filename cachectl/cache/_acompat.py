"""What differs between ``AsyncCache`` and the ``Cache`` generated from it, in one place.

aio.py is the only source of the cache; scripts/async_to_sync.py writes sync.py from it by
removing ``async``/``await`` and renaming each async name below to its sync twin (the
table is ``NAMES`` in that script). Each pair does the same thing: with tasks of one
event loop on the left, with threads on the right. After psycopg 3's ``_acompat.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import CancelledError, Future
from typing import Any, TypeVar

T = TypeVar("T")

# each async name, then its sync twin
AFuture = asyncio.Future  # a load in flight, which other callers wait for
ASemaphore, Semaphore = asyncio.Semaphore, threading.Semaphore
ACancelledError = asyncio.CancelledError  # a task cancelled, or a future the pool dropped

__all__ = ["ACancelledError", "AEvent", "AFuture", "ASemaphore", "CancelledError", "Event",
           "Future", "Semaphore", "aresult", "aspawn", "astop_workers", "result_of", "spawn",
           "stop_workers"]


class AEvent(asyncio.Event):
    """An asyncio.Event whose wait takes a timeout, as threading.Event's does."""

    async def wait_timeout(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s``; True if the event is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait(), timeout_s)
        return self.is_set()


class Event(threading.Event):
    """threading.Event, with AEvent's name for a wait with a timeout."""

    def wait_timeout(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s``; True if the event is set."""
        return self.wait(timeout_s)


async def aresult(future: asyncio.Future[T], timeout_s: float | None = None) -> T:
    """The future's result, waiting at most ``timeout_s`` (TimeoutError after).

    The future is shielded: a waiter that times out or is cancelled leaves it running.
    """
    return await asyncio.wait_for(asyncio.shield(future), timeout_s)


def result_of(future: Future[T], timeout_s: float | None = None) -> T:
    """The future's result, waiting at most ``timeout_s`` (TimeoutError after)."""
    return future.result(timeout_s)


def aspawn(fn: Callable[..., Coroutine[Any, Any, None]], *args: Any,
           name: str) -> asyncio.Task[None]:
    """Run ``fn(*args)`` in the background as a task of the running loop."""
    return asyncio.create_task(fn(*args), name=name)


def spawn(fn: Callable[..., None], *args: Any, name: str) -> threading.Thread:
    """Run ``fn(*args)`` in the background in a daemon thread."""
    thread = threading.Thread(target=fn, args=args, name=name, daemon=True)
    thread.start()
    return thread


async def astop_workers(workers: Iterable[asyncio.Task[None]]) -> None:
    """End background tasks: cancelled (one may be waiting on a socket), then awaited."""
    tasks = list(workers)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def stop_workers(workers: Iterable[threading.Thread]) -> None:
    """End background threads: each watches the stop event the caller has set; joined."""
    for thread in workers:
        thread.join()
