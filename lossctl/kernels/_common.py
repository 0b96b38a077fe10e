"""Small helpers the kernel modules share."""

from __future__ import annotations

import numpy as np

# Kernels let inf and nan come out as torch's do (a masked logit, a 0 * -inf); they never warn about them.
QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}


def scalar(dtype: np.dtype, value: float):
    """An option as a scalar of the compute dtype, so that float32 arithmetic stays float32 (torch casts it so)."""
    return np.dtype(dtype).type(value)


def along(vector: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """A per-class vector shaped to broadcast along `axis` of an ndim-dimensional array."""
    shape = [1] * ndim
    shape[axis] = -1
    return vector.reshape(shape)
