"""once and locked_cached_property: 16 threads racing to the first use compute the value once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from initreg.lazy import locked_cached_property, once

THREADS = 16


def race(first_use: Callable[[], object]) -> list[object]:
    """first_use() in THREADS threads released together by a barrier; their results."""
    barrier = threading.Barrier(THREADS)
    results: list[object] = [None] * THREADS

    def run(index: int) -> None:
        barrier.wait()
        results[index] = first_use()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_once_computes_its_value_once_when_threads_race() -> None:
    calls: list[int] = []

    @once
    def slow() -> object:
        calls.append(1)
        time.sleep(0.05)  # the others arrive while the first computes
        return object()

    results = race(slow)
    assert len(calls) == 1
    assert all(result is results[0] for result in results)
    slow.cache_clear()
    assert slow() is not results[0] and len(calls) == 2


def test_once_keeps_no_exception() -> None:
    outcomes = iter([ValueError("first try fails"), "second try works"])

    @once
    def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(ValueError, match="first try fails"):
        flaky()
    assert flaky() == "second try works"
    assert flaky() == "second try works"


class Holder:
    def __init__(self) -> None:
        self.calls = 0

    @locked_cached_property
    def value(self) -> object:
        """A fresh object, made slowly."""
        self.calls += 1
        time.sleep(0.05)
        return object()


def test_locked_cached_property_computes_once_per_instance_when_threads_race() -> None:
    holders = [Holder(), Holder()]
    results = race(lambda: [holder.value for holder in holders])
    assert [holder.calls for holder in holders] == [1, 1]
    assert all(result == results[0] for result in results)
    first, second = results[0]  # type: ignore[misc]
    assert first is not second
    assert Holder.value.__doc__ == "A fresh object, made slowly."
    assert "value" in vars(holders[0])  # later reads come from the instance, without the lock
