"""Work every primary at once: a thread per node, the results in node order.

A cluster's primaries are independent servers; a command that walks them one after the
other leaves all but one idle. ``each_node`` runs ``work(i, node)`` for every node in its
own thread (redis-py's per-node clients hand each thread its own connection from their
pool) and waits for all of them. One node, or none, runs inline: a standalone server is
served exactly as before, without a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")


def each_node(nodes: Sequence[Any], work: Callable[[int, Any], T], *,
              halt: threading.Event | None = None) -> list[T]:
    """``[work(0, nodes[0]), work(1, nodes[1]), …]``, computed concurrently.

    ``halt`` is set as soon as one node's work raises, or the waiting thread is
    interrupted (Ctrl-C), so the others can stop at their next step (they poll it);
    every thread is waited for before returning or raising. The exception raised is
    the first in node order; a node that stopped because of ``halt`` should return.
    """
    if len(nodes) <= 1:
        return [work(i, node) for i, node in enumerate(nodes)]
    halt = halt if halt is not None else threading.Event()
    pool = ThreadPoolExecutor(len(nodes), thread_name_prefix="cachectl-node")
    futures: list[Future[T]] = []
    try:
        futures = [pool.submit(work, i, node) for i, node in enumerate(nodes)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            halt.set()
    except BaseException:
        halt.set()
        raise
    finally:
        pool.shutdown(wait=True)
    return [f.result() for f in futures]
