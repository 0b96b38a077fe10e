"""Cosine similarity and pairwise distance, as torch.nn.CosineSimilarity and PairwiseDistance compute them."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import Context, check_nonempty, floats


def _pair(a: dict) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    x1, x2 = a["x1"], a["x2"]
    check_nonempty("x1", x1)
    check_nonempty("x2", x2)
    try:
        shape = np.broadcast_shapes(x1.shape, x2.shape)
    except ValueError:
        raise ShapeError(f"shape {x2.shape} does not broadcast with --x1 {x1.shape}", option="--x2") from None
    return x1, x2, shape


def cosine_similarity(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch.nn.functional as F

    x1, x2, shape = _pair(a)
    dim = o["dim"]
    if not -len(shape) <= dim < len(shape):
        raise UsageError(f"is out of range for inputs of shape {shape}; got {dim}", option="--dim")
    if o["eps"] < 0:
        raise UsageError(f"must be >= 0; got {o['eps']}", option="--eps")
    values = F.cosine_similarity(floats(x1, ctx), floats(x2, ctx), dim=dim, eps=o["eps"])
    return LossOutput(values, rows=int(values.shape[0]) if values.ndim else 1, unit="rows")


def pairwise_distance(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch.nn.functional as F

    x1, x2, _ = _pair(a)
    values = F.pairwise_distance(floats(x1, ctx), floats(x2, ctx), p=o["p"], eps=o["eps"], keepdim=o["keepdim"])
    return LossOutput(values, rows=int(values.shape[0]) if values.ndim else 1, unit="rows")
