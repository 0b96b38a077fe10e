"""Margin and ranking losses, as torch.nn computes them."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError, ValueRangeError
from ..reduce import LossOutput
from ._common import (
    Context,
    at_index,
    check_classes,
    check_nonempty,
    check_range,
    check_shape,
    check_weight,
    flag,
    floats,
    index_dtype_notes,
    ints,
)


def check_signs(role: str, arr: np.ndarray, why: str) -> None:
    bad = np.flatnonzero((arr != 1) & (arr != -1))
    if bad.size:
        raise ValueRangeError(f"targets must be 1 or -1 ({why}); found {arr.flat[bad[0]].item()!r}"
                              f"{at_index(arr, bad[0])}", option="--" + role)


def check_scores(arr: np.ndarray) -> int:
    """Scores (N, C) or (C); returns C."""
    check_nonempty("input", arr)
    if arr.ndim not in (1, 2):
        raise ShapeError(f"must be (N, C) or (C); got shape {arr.shape}", option="--input")
    return arr.shape[-1]


def _rows(arr: np.ndarray) -> int:
    return arr.shape[0] if arr.ndim > 1 else 1


def hinge_embedding(input, target, *, margin: float = 1.0, ctx: Context) -> LossOutput:
    """torch.nn.HingeEmbeddingLoss: x where y = 1, max(0, margin - x) where y = -1."""
    import torch.nn.functional as F

    x, y = input, target
    check_nonempty("input", x)
    check_shape("target", y, x.shape, "--input", x.shape)
    check_signs("target", y, "torch silently gives x + max(0, margin - x) for others")
    values = F.hinge_embedding_loss(floats(x, ctx), floats(y, ctx), margin=margin, reduction="none")
    return LossOutput(values, rows=x.shape[0] if x.ndim else 1)


def soft_margin(input, target, *, ctx: Context) -> LossOutput:
    """torch.nn.SoftMarginLoss: log(1 + exp(-y x)), targets 1 or -1."""
    import torch.nn.functional as F

    x, y = input, target
    check_nonempty("input", x)
    check_shape("target", y, x.shape, "--input", x.shape)
    check_signs("target", y, "a 0 target gives log 2 whatever the input")
    values = F.soft_margin_loss(floats(x, ctx), floats(y, ctx), reduction="none")
    return LossOutput(values, rows=x.shape[0] if x.ndim else 1)


def multilabel_soft_margin(input, target, weight=None, *, ctx: Context) -> LossOutput:
    """torch.nn.MultiLabelSoftMarginLoss: -(1/C) sum_c w_c [y log sigmoid(x) + (1 - y) log sigmoid(-x)] per sample."""
    import torch.nn.functional as F

    x, y = input, target
    n_classes = check_scores(x)
    check_shape("target", y, x.shape, "--input", x.shape)
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise ValueRangeError(f"multi-label targets must be 0 or 1; found {y.flat[bad[0]].item()!r}"
                              f"{at_index(y, bad[0])}", option="--target")
    check_weight(weight, n_classes)
    w = floats(weight, ctx) if weight is not None else None
    values = F.multilabel_soft_margin_loss(floats(x, ctx), floats(y, ctx), weight=w, reduction="none")
    return LossOutput(values, rows=_rows(x), unit="samples")


def multilabel_margin(input, target, *, ctx: Context) -> LossOutput:
    """torch.nn.MultiLabelMarginLoss: sum_{j in targets} sum_{i not in targets} max(0, 1 - (x[y_j] - x[i])) / C."""
    import torch.nn.functional as F

    x, y = input, target
    n_classes = check_scores(x)
    check_shape("target", y, x.shape, "--input", x.shape)
    t = ints(y, "target", ctx)
    check_range("target", y, -1, n_classes - 1, f"targets must be class indices in [0, {n_classes}) or -1")
    # torch reads each row's targets up to the first -1; what follows is never looked at
    read = np.cumprod(y != -1, axis=-1).astype(bool)
    values = F.multilabel_margin_loss(floats(x, ctx), t, reduction="none")
    out = LossOutput(values, rows=_rows(x), unit="samples", notes=index_dtype_notes(y, accepted=(np.int64,)))
    if not read.any(axis=-1).all():
        out.notes.append("a sample whose target starts with -1 has no target classes and a loss of 0")
    return out


def multi_margin(input, target, weight=None, *, p: int = 1, margin: float = 1.0, ctx: Context) -> LossOutput:
    """torch.nn.MultiMarginLoss: sum_{i != y} w_y max(0, margin - x[y] + x[i])^p / C per sample."""
    import torch.nn.functional as F

    x, y = input, target
    n_classes = check_scores(x)
    if p not in (1, 2):
        raise UsageError(f"must be 1 or 2; got {p}", option="--p")
    # torch takes a target of at most one axis with one index a sample: also (1) with (C) and () with (1, C)
    if y.ndim > 1 or y.size != _rows(x):
        check_shape("target", y, x.shape[:1] if x.ndim == 2 else (), "--input", x.shape)
    check_classes("target", y, n_classes, None)
    check_weight(weight, n_classes)
    w = floats(weight, ctx) if weight is not None else None
    values = F.multi_margin_loss(floats(x, ctx), ints(y, "target", ctx), p=p, margin=margin, weight=w,
                                 reduction="none")
    return LossOutput(values, rows=_rows(x), unit="samples", notes=index_dtype_notes(y, accepted=(np.int64,)))


def margin_ranking(x1, x2, target, *, margin: float = 0.0, ctx: Context) -> LossOutput:
    """torch.nn.MarginRankingLoss: max(0, -y (x1 - x2) + margin)."""
    import torch.nn.functional as F

    y = target
    check_nonempty("x1", x1)
    if x1.ndim > 1:
        raise ShapeError(f"must be (N) or (); got shape {x1.shape}", option="--x1")
    check_shape("x2", x2, x1.shape, "--x1", x1.shape)
    check_shape("target", y, x1.shape, "--x1", x1.shape)
    values = F.margin_ranking_loss(floats(x1, ctx), floats(x2, ctx), floats(y, ctx), margin=margin,
                                   reduction="none")
    out = LossOutput(values, rows=x1.shape[0] if x1.ndim else 1, unit="pairs")
    if ((y != 1) & (y != -1)).any():
        out.warnings.append("--target holds values other than 1 and -1; torch uses them as they are")
    return out


def _triplet(anchor: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[int, ...]:
    """The triplets' shape: torch takes three inputs of one number of axes that broadcast together ((1, D) beside
    (N, D)), the distances along the last, as pairwise_distance."""
    check_nonempty("anchor", anchor)
    if anchor.ndim == 0:
        raise ShapeError("is a single number; triplets are vectors: (D), (N, D) or (N, ..., D)", option="--anchor")
    shape = anchor.shape
    for role, arr in (("positive", pos), ("negative", neg)):
        check_nonempty(role, arr)
        if arr.ndim != anchor.ndim:  # torch refuses even a broadcastable (D) beside (N, D)
            raise ShapeError(f"is {arr.ndim}-d (shape {arr.shape}) where --anchor is {anchor.ndim}-d "
                             f"{anchor.shape}; torch takes the three with one number of axes", option=flag(role))
        try:
            shape = np.broadcast_shapes(shape, arr.shape)
        except ValueError:
            raise ShapeError(f"shape {arr.shape} does not broadcast with --anchor {anchor.shape}"
                             + (f" and --positive {pos.shape}" if role == "negative" else ""),
                             option=flag(role)) from None
    return shape


def triplet_margin(anchor, positive, negative, *, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                   swap: bool = False, ctx: Context) -> LossOutput:
    """torch.nn.TripletMarginLoss: max(||a - p + eps||_p - ||a - n + eps||_p + margin, 0)."""
    import torch.nn.functional as F

    shape = _triplet(anchor, positive, negative)
    pos, neg = positive, negative
    if p <= 0:
        raise UsageError(f"must be > 0; got {p}", option="--p")
    _positive_margin(margin)
    values = F.triplet_margin_loss(floats(anchor, ctx), floats(pos, ctx), floats(neg, ctx), margin=margin,
                                   p=p, eps=eps, swap=swap, reduction="none")
    return LossOutput(values, rows=shape[0] if len(shape) > 1 else 1, unit="triplets")


def _positive_margin(margin: float) -> None:
    if margin <= 0:
        raise UsageError(f"must be > 0 (torch refuses others); got {margin}", option="--margin")


def triplet_margin_with_distance(anchor, positive, negative, *, distance: str = "pairwise", margin: float = 1.0,
                                 swap: bool = False, ctx: Context) -> LossOutput:
    """torch.nn.TripletMarginWithDistanceLoss: max(d(a, p) - d(a, n) + margin, 0), d pairwise or 1 - cosine."""
    import torch.nn.functional as F

    shape = _triplet(anchor, positive, negative)
    pos, neg = positive, negative
    _positive_margin(margin)
    distance_function = None
    if distance == "cosine":
        def distance_function(u, v):
            return 1.0 - F.cosine_similarity(u, v, dim=-1)
    values = F.triplet_margin_with_distance_loss(floats(anchor, ctx), floats(pos, ctx), floats(neg, ctx),
                                                 distance_function=distance_function, margin=margin,
                                                 swap=swap, reduction="none")
    return LossOutput(values, rows=shape[0] if len(shape) > 1 else 1, unit="triplets")
