"""Work on several items at once without holding up Ctrl-C.

Hand-written rather than `ThreadPoolExecutor`: the executor joins its threads at interpreter
exit, so a worker blocked on a server that never answers would keep the process alive for
minutes after Ctrl-C. These workers are daemon threads; on Ctrl-C the caller returns at once and
a worker still waiting on the network is abandoned with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

Item = TypeVar("Item")

JOIN_POLL_S = 0.1


def parallel_map(
    work: Callable[[Item], Any],
    items: Iterable[Item],
    workers: int,
    *,
    on_done: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> list[Any]:
    """`work(item)` for every item on up to `workers` daemon threads; results in input order.

    `on_done(count)` runs in the calling thread after each item. The first exception sets
    `stop` (work in progress may watch it), waits for the workers and is raised.
    KeyboardInterrupt in the calling thread sets `stop` and is raised at once, without
    waiting for the workers.
    """
    items = list(items)
    stop = stop or threading.Event()
    results: list[Any] = [None] * len(items)
    failures: list[BaseException] = []
    pending = iter(range(len(items)))
    lock = threading.Lock()
    finished = threading.Semaphore(0)

    def next_index() -> int | None:
        with lock:
            if failures or stop.is_set():
                return None
            return next(pending, None)

    def worker() -> None:
        while (index := next_index()) is not None:
            try:
                results[index] = work(items[index])
            except BaseException as error:  # noqa: BLE001  (re-raised in the calling thread)
                with lock:
                    if not stop.is_set():
                        failures.append(error)
                        stop.set()
            finished.release()

    threads = [
        threading.Thread(target=worker, daemon=True, name=f"ideagen-worker-{number}")
        for number in range(max(1, min(workers, len(items))))
    ]
    try:
        for thread in threads:
            thread.start()
        done = 0
        while any(thread.is_alive() for thread in threads):
            if finished.acquire(timeout=JOIN_POLL_S):
                done += 1
                if on_done is not None:
                    on_done(done)
    except KeyboardInterrupt:
        stop.set()
        raise
    while finished.acquire(blocking=False):
        done += 1
        if on_done is not None:
            on_done(done)
    if failures:
        raise failures[0]
    return results
