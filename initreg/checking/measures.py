"""What a tensor holds, measured chunk by chunk: memory is bounded by a chunk, not by the tensor.

A random component's `RandomMeasure` keeps the count, the sums of (x - m) and (x - m)^2 about the
intended mean m (in float64), the minimum and maximum, the counts of non-finite values, of values
outside the intended support (its bounds rounded to the dtype: a value drawn inside them cannot round
past them) and of values more than OUTLIER_SIGMAS stds from the mean of an unbounded normal (a
probability below 1e-22 per value), and the counts between the KS grid's thresholds
(initreg.checking.statistics). An exact component's `ExactMeasure` counts the values that differ from
what its initializer makes (NaN differs from everything). An orthogonal component's `MatrixMeasure`
holds the tensor whole (as drawing it does) and measures max |G - gain^2 I|, G the Gram matrix of the
smaller side.
"""

from __future__ import annotations

import math
from typing import Any

from initreg.checking.intended import Intended, matrix_shape
from initreg.checking.statistics import grid
from initreg.dtypes import numpy_dtype
from initreg.initializers.base import Shape
from initreg.moments import Moments

OUTLIER_SIGMAS = 10.0
SAMPLE_SIZE = 2000  # values kept per tensor for a QQ plot, when asked for


class RandomMeasure:
    """Streamed measurements of a random component (module docstring)."""

    def __init__(self, component: Intended, dtype: str, keep_sample: bool = False) -> None:
        import numpy as np

        self.component, self.dtype = component, dtype
        self.mean = component.mean
        self.grid = grid(component.dist, dtype)
        kind = numpy_dtype(dtype)
        low, high = component.support
        self.low = float(np.asarray(low, kind)) if math.isfinite(low) else -math.inf  # monotone rounding
        self.high = float(np.asarray(high, kind)) if math.isfinite(high) else math.inf
        if component.family == "normal":
            reach = OUTLIER_SIGMAS * component.std
            self.low, self.high = self.mean - reach, self.mean + reach
        self.count = self.nonfinite = self.outside = 0
        self.centred_sum = self.centred_squares = 0.0
        self.minimum, self.maximum = math.inf, -math.inf
        self.counts = np.zeros(len(self.grid.thresholds) + 1, dtype=np.int64)
        self.sample: list[Any] | None = [] if keep_sample else None

    def add(self, values: Any) -> None:
        """Adds a 1-d float64 array of this component's values."""
        import numpy as np

        finite = np.isfinite(values)
        if not finite.all():
            self.nonfinite += int(values.size - np.count_nonzero(finite))
            values = values[finite]
        if not values.size:
            return
        self.count += values.size
        ordered = np.sort(values)  # then the thresholds are looked up in it: 7x faster than the values in them
        self.minimum = min(self.minimum, float(ordered[0]))
        self.maximum = max(self.maximum, float(ordered[-1]))
        self.outside += int(
            np.searchsorted(ordered, self.low) + ordered.size - np.searchsorted(ordered, self.high, "right")
        )
        centred = values - self.mean
        self.centred_sum += float(centred.sum())
        self.centred_squares += float(np.dot(centred, centred))
        at_most = np.searchsorted(ordered, self.grid.thresholds, side="right")  # values <= each threshold
        self.counts += np.diff(at_most, prepend=0, append=ordered.size)
        if self.sample is not None and len(self.sample) < SAMPLE_SIZE:
            self.sample.extend(values[: SAMPLE_SIZE - len(self.sample)].tolist())

    @property
    def measured_mean(self) -> float:
        """The mean of the finite values."""
        return self.mean + self.centred_sum / self.count if self.count else math.nan

    @property
    def measured_std(self) -> float:
        """The std of the finite values (about their own mean)."""
        if not self.count:
            return math.nan
        shift = self.centred_sum / self.count
        return math.sqrt(max(0.0, self.centred_squares / self.count - shift * shift))


class ExactMeasure:
    """Counts the values of an exact component that differ from what its initializer makes."""

    def __init__(self, component: Intended, keep_sample: bool = False) -> None:
        self.component = component
        self.count = self.nonfinite = self.mismatched = 0
        self.moments = Moments()  # of the finite values
        self.minimum, self.maximum = math.inf, -math.inf
        self.first_mismatch: tuple[float, float] | None = None  # (found, expected)
        self.sample: list[Any] | None = [] if keep_sample else None

    def add(self, values: Any, expected: Any) -> None:
        """Adds 1-d float64 arrays of this component's values and the values intended there."""
        import numpy as np

        self.count += values.size
        self.nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
        wrong = ~(values == expected)
        if wrong.any():
            self.mismatched += int(np.count_nonzero(wrong))
            if self.first_mismatch is None:
                at = int(np.argmax(wrong))
                self.first_mismatch = (float(values[at]), float(expected[at]))
        finite = values[np.isfinite(values)]
        if finite.size:
            self.moments.add(finite)
            self.minimum, self.maximum = min(self.minimum, float(finite.min())), max(self.maximum, float(finite.max()))
        if self.sample is not None and len(self.sample) < SAMPLE_SIZE:
            self.sample.extend(finite[: SAMPLE_SIZE - len(self.sample)].tolist())

    @property
    def measured_mean(self) -> float:
        """The mean of the finite values."""
        return self.moments.mean if self.moments.count else math.nan

    @property
    def measured_std(self) -> float:
        """The std of the finite values."""
        return self.moments.std


class MatrixMeasure:
    """Holds an orthogonal component's tensor whole and measures how far it is from gain * orthonormal."""

    def __init__(self, component: Intended, shape: Shape, dtype: str, keep_sample: bool = False) -> None:
        import numpy as np

        self.component, self.shape, self.dtype = component, shape, dtype
        self.values = np.empty(math.prod(shape), dtype=np.float64)
        self.count = 0
        self.keep_sample = keep_sample

    def add(self, values: Any) -> None:
        """Adds the next 1-d float64 piece of the tensor, in row-major order."""
        self.values[self.count : self.count + values.size] = values
        self.count += values.size

    @property
    def nonfinite(self) -> int:
        """The number of inf and NaN values."""
        import numpy as np

        return int(self.count - np.count_nonzero(np.isfinite(self.values[: self.count])))

    def deviation(self) -> float:
        """max |G - gain^2 I| over the Gram matrix G of the smaller side of the (rows, cols) matrix."""
        import numpy as np

        rows, cols = matrix_shape(self.component, self.shape)
        matrix = self.values.reshape(rows, cols)
        gram = matrix.T @ matrix if rows >= cols else matrix @ matrix.T
        gain = float(self.component.initializer.gain)  # type: ignore[attr-defined]
        return float(np.max(np.abs(gram - gain * gain * np.eye(len(gram))))) if gram.size else 0.0

    def tolerance(self) -> float:
        """gain^2 (eps + n eps32): the dtype's rounding of each entry and a QR in float32 over n = max(rows, cols)."""
        import numpy as np

        rows, cols = matrix_shape(self.component, self.shape)
        gain = float(self.component.initializer.gain)  # type: ignore[attr-defined]
        eps = float(np.finfo(numpy_dtype(self.dtype)).eps)
        compute = float(np.finfo(np.float64 if self.dtype == "float64" else np.float32).eps)
        return gain * gain * (eps + max(rows, cols) * compute)

    @property
    def measured_mean(self) -> float:
        """The mean of the values."""
        return float(self.values[: self.count].mean()) if self.count else math.nan

    @property
    def measured_std(self) -> float:
        """The std of the values."""
        return float(self.values[: self.count].std()) if self.count else math.nan

    @property
    def sample(self) -> list[Any] | None:
        """Up to SAMPLE_SIZE values, when asked for."""
        return self.values[:SAMPLE_SIZE].tolist() if self.keep_sample else None


Measure = RandomMeasure | ExactMeasure | MatrixMeasure
