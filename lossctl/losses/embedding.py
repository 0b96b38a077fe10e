"""Losses over pairs of embeddings."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, ValueRangeError
from ..reduce import LossOutput
from ._common import Context, check_nonempty, floats, position


def cosine_embedding(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch.nn.functional as F

    x1, x2, target = a["x1"], a["x2"], a["target"]
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
                              f"{target.flat[bad[0]].item()!r} at index {position(target, bad[0])}", option="--target")
    values = F.cosine_embedding_loss(floats(x1, ctx), floats(x2, ctx), floats(target, ctx), margin=o["margin"],
                                     reduction="none")
    return LossOutput(values, rows=x1.shape[0] if x1.ndim == 2 else 1, unit="pairs")
