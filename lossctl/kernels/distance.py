"""Cosine similarity, pairwise distance and the cosine embedding loss, as torch 2.13 computes them."""

from __future__ import annotations

import math

import numpy as np

from ._common import QUIET, scalar

# ATen's cosine_embedding_loss adds EPSILON to each squared magnitude; it is a C++ float, so even a float64
# input gets float32(1e-12) = 9.99999996e-13 (measured: the loss of two (1e-7, 0) vectors gives this value back).
EPSILON = float(np.float32(1e-12))


def _norm2(x: np.ndarray, axis: int, scratch: np.ndarray) -> np.ndarray:
    """||x||_2 along axis, keepdims: sqrt(sum x * x); |x| along an axis of size 1, as torch (no square to overflow
    at 1e300 or underflow at 1e-300)."""
    if x.shape[axis] == 1:
        return np.abs(x)
    np.multiply(x, x, out=scratch)
    n = np.sum(scratch, axis=axis, keepdims=True)
    np.sqrt(n, out=n)
    return n


def cosine_similarity(x1: np.ndarray, x2: np.ndarray, *, dim: int = 1, eps: float = 1e-8) -> np.ndarray:
    """F.cosine_similarity(x1, x2, dim, eps): x1, x2 broadcast together; the result drops `dim`; x1's dtype.

        values = sum_dim (x1 / max(||x1||, eps)) * (x2 / max(||x2||, eps))

    torch (since 1.12) clamps each norm separately, not the product ||x1|| ||x2||: two vectors of norm 1e-5 have
    similarity 1 with eps = 1e-8, two of norm 1e-9 have 0.01, and a zero vector gives 0. Norms are taken after
    broadcasting, so a size-1 `dim` broadcast against size k counts its value k times, as torch does.
    """
    shape = np.broadcast_shapes(x1.shape, x2.shape)
    dt = np.result_type(x1.dtype, x2.dtype)
    a, b = np.broadcast_to(x1, shape), np.broadcast_to(x2, shape)
    u = np.empty(shape, dtype=dt)
    v = np.empty(shape, dtype=dt)
    e = scalar(dt, eps)
    with np.errstate(**QUIET):
        np.divide(a, np.maximum(_norm2(a, dim, u), e), out=u)
        np.divide(b, np.maximum(_norm2(b, dim, v), e), out=v)
        u *= v
        values = np.sum(u, axis=dim)
    return np.asarray(values)


def _pnorm(d: np.ndarray, p: float, keepdim: bool) -> np.ndarray:
    """torch.norm(d, p, dim=-1) of |d| (already absolute), in place where it can. Of one element torch's norm is
    that element for any p but 0, never (d^p)^(1/p), which overflows at 1e300 (or 1e30 in float32)."""
    if d.shape[-1] == 1 and p != 0:
        return d if keepdim else d[..., 0]
    if p == math.inf:
        return np.max(d, axis=-1, keepdims=keepdim)
    if p == -math.inf:
        return np.min(d, axis=-1, keepdims=keepdim)
    if p == 0:
        return np.sum(d != 0, axis=-1, keepdims=keepdim, dtype=d.dtype)
    if p == 1:
        return np.sum(d, axis=-1, keepdims=keepdim)
    if p == 2:
        np.multiply(d, d, out=d)
        return np.sqrt(np.sum(d, axis=-1, keepdims=keepdim))
    np.power(d, scalar(d.dtype, p), out=d)
    return np.power(np.sum(d, axis=-1, keepdims=keepdim), scalar(d.dtype, 1.0 / p))


def pairwise_distance(x1: np.ndarray, x2: np.ndarray, *, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> np.ndarray:
    """F.pairwise_distance(x1, x2, p, eps, keepdim): ||x1 - x2 + eps||_p over the last axis; x1's dtype.

    x1, x2: (N, D) or (D), broadcast together ((D) against (N, D) gives (N)); two (D) inputs give a 0-d result
    ((1) with keepdim), as torch does. p = inf is the largest |d|, -inf the smallest, 0 the count of nonzero d,
    otherwise (sum |d|^p)^(1/p). eps is added to every difference, so identical vectors are eps * D^(1/p) apart
    (and p = 0 counts all D of them).
    """
    dt = np.result_type(x1.dtype, x2.dtype)
    with np.errstate(**QUIET):
        d = np.subtract(x1, x2, out=np.empty(np.broadcast_shapes(x1.shape, x2.shape), dtype=dt))
        d += scalar(dt, eps)
        np.abs(d, out=d)
        if d.ndim == 0:
            return d  # torch's norm over dim -1 of a 0-d tensor is |d|
        return np.asarray(_pnorm(d, p, keepdim))


def cosine_embedding(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, *, margin: float = 0.0) -> np.ndarray:
    """F.cosine_embedding_loss(x1, x2, y, margin, reduction='none'): x1, x2 (N, D) or (D); y (N) or () of +-1.

        cos = sum x1 x2 / sqrt((sum x1^2 + E) (sum x2^2 + E))      E = float32(1e-12), ATen's EPSILON
        values = 1 - cos where y == 1,  max(cos - margin, 0) where y == -1,  0 for any other y

    y's shape, x1's dtype. E makes a zero vector's cosine 0 rather than nan; being a C++ float it is 9.99999996e-13
    in float64 too.
    """
    dt = x1.dtype
    axis = y.ndim  # ATen sums over the target's ndim: 1 for (N, D), 0 for (D)
    e = scalar(dt, EPSILON)
    tmp = np.empty(np.broadcast_shapes(x1.shape, x2.shape), dtype=dt)
    with np.errstate(**QUIET):
        prod = np.sum(np.multiply(x1, x2, out=tmp), axis=axis)
        mag1 = np.sum(np.multiply(x1, x1, out=tmp), axis=axis) + e
        mag2 = np.sum(np.multiply(x2, x2, out=tmp), axis=axis) + e
        cos = np.asarray(prod / np.sqrt(mag1 * mag2))
        pos = scalar(dt, 1.0) - cos
        neg = np.maximum(cos - scalar(dt, margin), scalar(dt, 0.0))
    zero = scalar(dt, 0.0)
    return np.asarray(np.where(y == 1, pos, zero) + np.where(y == -1, neg, zero), dtype=dt)
