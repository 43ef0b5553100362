"""Per-view work of the dense stage on threads: :func:`ordered_map` runs one function over the views, several at
once, and hands the results back in view order.

OpenCV and NumPy release the GIL in their loops, so threads share the cores without copies of the maps; each
call must depend only on its own view (and read-only shared inputs), which keeps the result independent of the
number of threads. BLAS is not limited here: a caller whose per-view work solves small systems holds
``threadpoolctl.threadpool_limits(1, "blas")`` around the whole map, once, from its own thread (nested limits
set from several threads would restore each other's settings in any order).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it, else every CPU)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def ordered_map(fn: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """``fn(item)`` for every item, ``workers`` at a time on threads (1: in this thread), yielded in the items'
    order as each is ready; at most twice as many items in flight as workers (their results bound the memory).
    When the caller stops early or is interrupted, queued items are dropped and running ones finish."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="views")
    try:
        running: deque = deque()
        for item in items:
            running.append(pool.submit(fn, item))
            if len(running) >= 2 * workers:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
