"""Cosine similarity and pairwise distance, as torch.nn.CosineSimilarity and PairwiseDistance compute them."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import Context, check_nonempty


def _broadcast_pair(x1: np.ndarray, x2: np.ndarray) -> tuple[int, ...]:
    check_nonempty("x1", x1)
    check_nonempty("x2", x2)
    try:
        return np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ShapeError(f"shape {x2.shape} does not broadcast with --x1 {x1.shape}", option="--x2") from None


def _rows(values) -> int:
    return int(values.shape[0]) if values.ndim else 1


def cosine_similarity(x1, x2, *, dim: int = 1, eps: float = 1e-8, ctx: Context) -> LossOutput:
    """torch.nn.CosineSimilarity: cos_n = x1_n . x2_n / max(||x1_n|| ||x2_n||, eps), along --dim."""
    shape = _broadcast_pair(x1, x2)
    if not -len(shape) <= dim < len(shape):
        raise UsageError(f"is out of range for inputs of shape {shape}; got {dim}", option="--dim")
    if eps < 0:
        raise UsageError(f"must be >= 0; got {eps}", option="--eps")
    values = ctx.kernels().cosine_similarity(ctx.array(x1), ctx.array(x2), dim=dim, eps=eps)
    return LossOutput(values, rows=_rows(values), unit="rows")


def pairwise_distance(x1, x2, *, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False,
                      ctx: Context) -> LossOutput:
    """torch.nn.PairwiseDistance: d_n = ||x1_n - x2_n + eps||_p along the last axis."""
    _broadcast_pair(x1, x2)
    values = ctx.kernels().pairwise_distance(ctx.array(x1), ctx.array(x2), p=p, eps=eps, keepdim=keepdim)
    return LossOutput(values, rows=_rows(values), unit="rows")
