"""Parsing ahead on a thread: the batches come in order, a producer's error is raised where its batch would
have come, and leaving the loop stops the producer."""

from __future__ import annotations

import threading
import time

import pytest

from warehouse.extract.readahead import read_ahead


def test_batches_come_in_order_and_all_of_them() -> None:
    assert list(read_ahead(iter(range(1000)), depth=2)) == list(range(1000))
    assert list(read_ahead(iter([]))) == []


def test_an_error_while_producing_is_raised_after_the_batches_before_it() -> None:
    def batches():
        yield "a"
        yield "b"
        raise ValueError("line 3: bad quote")

    got = []
    with pytest.raises(ValueError, match="line 3: bad quote"):
        for b in read_ahead(batches()):
            got.append(b)
    assert got == ["a", "b"]


def test_leaving_the_loop_stops_the_producer() -> None:
    produced = []

    def batches():
        for i in range(10_000):
            produced.append(i)
            yield i

    before = {t.ident for t in threading.enumerate()}
    for b in read_ahead(batches(), depth=2):
        if b == 5:
            break
    time.sleep(0.3)
    assert len(produced) <= 5 + 1 + 2 + 1  # the batch taken, the slots, and one being produced
    assert {t.ident for t in threading.enumerate()} <= before | {threading.get_ident()}
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
