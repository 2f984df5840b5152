"""Values made on first use under a lock, so that threads racing to the first use all get the one value.

`once` is for a module-level function of no arguments (an optional module, a probe of the machine),
`locked_cached_property` for an attribute of an object (an array namespace, compiled kernels). Both
run their function at most once at a time, and keep its value once it has returned; an exception is
not kept, so the next use tries again.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class once(Generic[T]):  # noqa: N801 - used as a function decorator
    """A function of no arguments, called on the first use (under a lock) and remembered."""

    def __init__(self, function: Callable[[], T]) -> None:
        self._function = function
        self._lock = threading.Lock()
        self._values: list[T] = []  # empty until the first call returns
        functools.update_wrapper(self, function)

    def __call__(self) -> T:
        with self._lock:
            if not self._values:
                self._values.append(self._function())
            return self._values[0]

    def cache_clear(self) -> None:
        """Forgets the value, so that the next call computes it again."""
        with self._lock:
            self._values.clear()


class locked_cached_property(functools.cached_property[T]):  # noqa: N801 - a decorator, like its base
    """functools.cached_property computed under a lock: racing first reads compute it once.

    (Python 3.12 dropped the lock that cached_property held in 3.8 to 3.11.) Once computed, the value
    sits in the instance's __dict__ and is read from there without the lock.
    """

    def __init__(self, function: Callable[[Any], T]) -> None:
        super().__init__(function)
        self._lock = threading.RLock()

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> locked_cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> T | locked_cached_property[T]:
        if instance is None:
            return self
        with self._lock:
            return super().__get__(instance, owner)
