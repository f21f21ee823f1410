"""Parse ahead: a streaming reader's batches produced on a thread of their own.

pyarrow's streaming CSV reader parses a block when the next batch is asked for, on the caller's thread. The
records split then works on the batch in Python and Polars, so parsing and splitting took turns on one core:
at 10,000 subjects the main thread spent ~50 s of its ~110 s waiting for the parse (py-spy). Parsing releases
the GIL, so a producer thread a few batches ahead lets the two run on both cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def read_ahead(batches: Iterable[T], depth: int = 3) -> Iterator[T]:
    """Iterate ``batches``, produced by a thread up to ``depth`` items ahead (memory: ``depth`` batches).

    An exception raised while producing is raised here, at the point where its batch would have come; leaving
    the loop early (an error in the consumer, or ``break``) stops the producer before the next batch."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            slots.put(exc)

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting for a free slot
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
