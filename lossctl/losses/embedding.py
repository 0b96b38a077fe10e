"""Losses over pairs of embeddings."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, ValueRangeError
from ..reduce import LossOutput
from ._common import Context, at_index, check_nonempty


def cosine_embedding(x1, x2, target, *, margin: float = 0.0, ctx: Context) -> LossOutput:
    """torch.nn.CosineEmbeddingLoss: 1 - cos(x1_n, x2_n) where y_n = 1; max(0, cos(x1_n, x2_n) - margin) where
    y_n = -1. Other targets are refused (torch gives them 0 loss without a word)."""
    check_nonempty("x1", x1)
    if x1.shape != x2.shape or x1.ndim not in (1, 2):
        raise ShapeError(f"--x1 {x1.shape} and --x2 {x2.shape} must have one shape, (N, D) or (D)", option="--x2")
    expected = x1.shape[:1] if x1.ndim == 2 else ()
    if target.shape != expected:
        raise ShapeError(f"shape {target.shape} does not match --x1 {x1.shape}; expected {expected}",
                         option="--target")
    bad = np.flatnonzero((target != 1) & (target != -1))
    if bad.size:
        raise ValueRangeError(f"targets must be 1 or -1 (torch silently gives 0 loss for others); found "
                              f"{target.flat[bad[0]].item()!r}{at_index(target, bad[0])}", option="--target")
    values = ctx.kernels().cosine_embedding(ctx.array(x1), ctx.array(x2), ctx.array(target), margin=margin)
    return LossOutput(values, rows=x1.shape[0] if x1.ndim == 2 else 1, unit="pairs")
