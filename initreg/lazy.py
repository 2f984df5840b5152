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
        """The function's value: computed by the first call, under the lock, and returned by every later one."""
        if self._values:  # once known, read without the lock (a list append is atomic)
            return self._values[0]
        with self._lock:
            if not self._values:
                self._values.append(self._function())
            return self._values[0]

    def cache_clear(self) -> None:
        """Forgets the value, so that the next call computes it again."""
        with self._lock:
            self._values.clear()


class locked_cached_property(Generic[T]):  # noqa: N801 - a decorator, like functools.cached_property
    """functools.cached_property computed under a lock: racing first reads compute it once.

    (functools' own held a lock in Python 3.8 to 3.11 only.) The value is kept in the instance's
    __dict__, which later reads find first, without the lock.
    """

    def __init__(self, function: Callable[[Any], T]) -> None:
        self._function = function
        self._lock = threading.RLock()  # re-entrant: computing one instance's value may read another's
        self._name = function.__name__
        self.__doc__ = function.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> locked_cached_property[T]: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> T | locked_cached_property[T]:
        if instance is None:
            return self
        with self._lock:
            values = instance.__dict__
            if self._name not in values:
                values[self._name] = self._function(instance)
            value: T = values[self._name]
            return value
