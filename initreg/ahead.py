"""An iterator's items made in a worker thread one batch ahead of their use: `one_batch_ahead`.

While the caller uses batch k (writes it to a file: a system call that releases the GIL, its copy into
the page cache done by the operating system), a worker thread makes batch k + 1, so that making and
writing overlap. A batch is one or more consecutive items, closed once it holds BATCH_BYTES, so that
many small items cost one hand-over between the threads, not one each.

At most two batches are alive at once, the caller's and the one being made, provided the caller drops
each item before it asks for the next: the worker starts batch k + 2 only when the caller asks for the
item after batch k's last. The worker runs in the caller's contextvars context (NumPy's errstate among
them). An exception the iterator raises reaches the caller where its item would have. When the caller
stops early (an error, a signal), the worker stops after the batch it is making and closes the
iterator; it is a daemon thread, so it never holds up the end of the process. Once the iterator ends
(or raises), the worker has ended before the caller gets its last items.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

BATCH_BYTES = 1 << 20  # a batch is closed once its items hold this many bytes (an item this large is one alone)


def one_batch_ahead(items: Iterable[Item], nbytes: Callable[[Item], int]) -> Iterator[Item]:
    """The items of `items`, in order, each batch made by a worker thread while the previous one is used.

    ``nbytes(item)`` is the size an item counts for when batches are closed (see BATCH_BYTES).
    """
    iterator = iter(items)
    requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
    batches: queue.SimpleQueue[tuple[deque[Item], BaseException | None, bool]] = queue.SimpleQueue()

    def make_batches() -> None:
        try:
            while requests.get():
                batch: deque[Item] = deque()
                size = 0
                try:
                    while size < BATCH_BYTES:
                        item = next(iterator)
                        size += nbytes(item)
                        batch.append(item)
                        del item
                except StopIteration:
                    batches.put((batch, None, True))
                    return
                except BaseException as error:  # handed to the caller, raised there
                    batches.put((batch, error, True))
                    return
                batches.put((batch, None, False))
                del batch
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(make_batches,), name="initreg-one-batch-ahead", daemon=True
    )
    worker.start()
    requests.put(True)
    try:
        while True:
            batch, error, last = batches.get()
            if last:
                worker.join()  # it only closes the iterator now; a process may leave at once after
            else:
                requests.put(True)
            while batch:
                yield batch.popleft()
            if error is not None:
                raise error
            if last:
                return
    finally:
        requests.put(False)
