"""Elementwise regression losses: L1, MSE, Huber and smooth L1, as torch's CPU kernels compute them.

x and y have one shape (the caller refuses torch's broadcasting); each function returns that shape in x's dtype.
"""

from __future__ import annotations

import numpy as np

from ._common import QUIET, scalar


def _diff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x - y as a new array, also for 0-d inputs (where a plain ufunc call returns a scalar)."""
    return np.subtract(x, y, out=np.empty(np.broadcast_shapes(x.shape, y.shape), dtype=x.dtype))


def _abs_diff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = _diff(x, y)
    np.abs(z, out=z)
    return z


def l1(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """F.l1_loss(reduction='none'): |x - y|."""
    with np.errstate(**QUIET):
        return _abs_diff(x, y)


def mse(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """F.mse_loss(reduction='none'): (x - y) * (x - y)."""
    with np.errstate(**QUIET):
        z = _diff(x, y)
        np.multiply(z, z, out=z)
    return z


def _piecewise(x: np.ndarray, y: np.ndarray, threshold: float, linear_scale: float | None) -> np.ndarray:
    """z = |x - y|; quadratic 0.5 z z (divided by the threshold for smooth L1) where z < threshold, else linear.

    Huber (linear_scale = delta): delta * (z - 0.5 delta).  Smooth L1 (linear_scale None): z - 0.5 beta.
    The comparison is strict, so z == threshold takes the linear branch (both branches agree there).
    """
    dt = x.dtype
    t = scalar(dt, threshold)
    half_t = scalar(dt, 0.5) * t
    with np.errstate(**QUIET):
        z = _abs_diff(x, y)
        quad = np.multiply(z, scalar(dt, 0.5))
        quad *= z
        if linear_scale is None:
            quad /= t
        small = z < t
        z -= half_t
        if linear_scale is not None:
            z *= t
        np.copyto(z, quad, where=small)
    return z


def huber(x: np.ndarray, y: np.ndarray, *, delta: float = 1.0) -> np.ndarray:
    """F.huber_loss(reduction='none', delta=delta), delta > 0: with z = |x - y|,

        0.5 z^2 where z < delta,   delta (z - 0.5 delta) otherwise
    """
    return _piecewise(x, y, delta, delta)


def smooth_l1(x: np.ndarray, y: np.ndarray, *, beta: float = 1.0) -> np.ndarray:
    """F.smooth_l1_loss(reduction='none', beta=beta), beta >= 0: with z = |x - y|,

        0.5 z^2 / beta where z < beta,   z - 0.5 beta otherwise

    beta == 0 is exactly L1 (torch calls l1_loss then; no z < 0 exists, so no 0 / 0 arises here either).
    """
    if beta == 0:
        return l1(x, y)
    return _piecewise(x, y, beta, None)
