"""Cross entropy, negative log-likelihood and binary cross entropy, as torch.nn computes them."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import (
    Context,
    check_choice,
    check_classes,
    check_nonempty,
    check_range,
    check_shape,
    check_unit_interval,
    check_weight,
    flag,
    floats,
    ints,
    row_sum_warning,
    sum_tolerance,
)


def split_classes(logits: np.ndarray, role: str = "logits") -> tuple[int, int, tuple[int, ...]]:
    """(class axis, number of classes, shape of an index target) for (C), (N, C) or (N, C, d1..dk) input."""
    if logits.ndim == 0:
        raise ShapeError("is a single number; class scores have shape (C), (N, C) or (N, C, d1..dk)",
                         option=flag(role))
    axis = 0 if logits.ndim == 1 else 1
    return axis, logits.shape[axis], logits.shape[:axis] + logits.shape[axis + 1:]


def target_kind(kind: str, logits: np.ndarray, target: np.ndarray, index_shape: tuple[int, ...]) -> str:
    """auto: integers are class indices; a target of the logits' shape is probabilities."""
    if kind != "auto":
        return kind
    if target.shape == logits.shape and target.shape != index_shape:
        return "prob"  # one-hot rows written as integers (a CSV of 0s and 1s) are probabilities too
    if target.dtype.kind in "iub":
        return "index"
    if target.shape == index_shape:
        return "index"  # whole numbers written as floats, e.g. 2.0 in a CSV; ints() refuses any other
    raise ShapeError(
        f"shape {target.shape} fits neither class indices {index_shape} nor probabilities {logits.shape} "
        f"for --logits {logits.shape}", option="--target")


def index_output(values, target, weight, ignore_index: int, n_classes: int, ctx: Context, ignored: int,
                 rows: int) -> LossOutput:
    """Per-target denominators for an index target: its class weight (1 without weights), 0 where ignored."""
    keep = target != ignore_index
    if weight is not None:
        denom = weight[target.clamp(0, n_classes - 1)] * keep
    else:
        denom = keep.to(values.dtype)
    return LossOutput(values, weights=denom, rows=rows, unit="targets", ignored=ignored, weighted=weight is not None)


def cross_entropy(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch
    import torch.nn.functional as F

    logits, target, weight = a["logits"], a["target"], a.get("weight")
    check_nonempty("logits", logits)
    axis, n_classes, index_shape = split_classes(logits)
    check_choice("target_kind", o["target_kind"], ("auto", "index", "prob", "logits"))
    eps = o["label_smoothing"]
    check_unit_interval("label_smoothing", eps)
    check_weight(weight, n_classes)
    kind = target_kind(o["target_kind"], logits, target, index_shape)
    x = floats(logits, ctx)
    w = floats(weight, ctx) if weight is not None else None
    rows = logits.shape[0] if logits.ndim > 1 else 1
    notes = []
    if weight is not None and kind == "index" and ctx.reduction == "mean":
        notes.append("weighted mean: torch divides by the sum of the targets' class weights, not by N")
    if eps:
        notes.append(f"label smoothing {eps}: the target is mixed with the uniform distribution before the loss")
    if kind == "index":
        check_shape("target", target, index_shape, "--logits", logits.shape)
        ignored = check_classes("target", target, n_classes, o["ignore_index"])
        t = ints(target, "target", ctx)
        values = F.cross_entropy(x, t, weight=w, ignore_index=o["ignore_index"], reduction="none",
                                 label_smoothing=eps)
        out = index_output(values, t, w, o["ignore_index"], n_classes, ctx, ignored, rows)
    else:
        check_shape("target", target, logits.shape, "--logits", logits.shape)
        p = floats(target, ctx)
        warnings = []
        if kind == "logits":
            p = torch.softmax(p, dim=axis)
        else:
            check_range("target", target, 0.0, None, "probabilities must be >= 0")
            warning = row_sum_warning("target", target, axis, sum_tolerance(ctx.dtype))
            warnings = [warning] if warning else []
        values = F.cross_entropy(x, p, weight=w, reduction="none", label_smoothing=eps)
        out = LossOutput(values, rows=rows, unit="samples", warnings=warnings)
        if weight is not None and ctx.reduction == "mean":
            notes.append("probability targets with weights: torch's mean divides by N, not by a sum of weights")
    out.notes.extend(notes)
    return out


def log_probs_of(a: dict, axis_of, ctx: Context):
    """The model's log-probabilities from whichever of --log-probs, --logits, --probs was given."""
    import torch

    if a.get("log_probs") is not None:
        return a["log_probs"], floats(a["log_probs"], ctx)
    if a.get("logits") is not None:
        arr = a["logits"]
        return arr, torch.log_softmax(floats(arr, ctx), dim=axis_of(arr))
    arr = a["probs"]
    check_range("probs", arr, 0.0, None, "probabilities must be >= 0")
    return arr, torch.log(floats(arr, ctx))


def nll(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch.nn.functional as F

    given = next(r for r in ("log_probs", "logits", "probs") if a.get(r) is not None)
    split_classes(a[given], given)
    raw, logp = log_probs_of(a, lambda arr: split_classes(arr)[0], ctx)
    check_nonempty(given, raw)
    target, weight = a["target"], a.get("weight")
    axis, n_classes, index_shape = split_classes(raw, given)
    check_weight(weight, n_classes)
    check_shape("target", target, index_shape, "the input", raw.shape)
    ignored = check_classes("target", target, n_classes, o["ignore_index"])
    t = ints(target, "target", ctx)
    w = floats(weight, ctx) if weight is not None else None
    values = F.nll_loss(logp, t, weight=w, ignore_index=o["ignore_index"], reduction="none")
    rows = raw.shape[0] if raw.ndim > 1 else 1
    return index_output(values, t, w, o["ignore_index"], n_classes, ctx, ignored, rows)


def bce(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch.nn.functional as F

    given = "probs" if a.get("probs") is not None else "logits"
    raw, target = a[given], a["target"]
    check_nonempty(given, raw)
    check_shape("target", target, raw.shape, f"--{given}", raw.shape)
    check_range("target", target, 0.0, 1.0, "BCE targets must be in [0, 1]")
    x, t = floats(raw, ctx), floats(target, ctx)
    w = _broadcast("weight", a.get("weight"), raw.shape, ctx)
    if given == "probs":
        if a.get("pos_weight") is not None:
            raise UsageError("applies only with --logits (BCEWithLogitsLoss)", option="--pos-weight")
        check_range("probs", raw, 0.0, 1.0, "BCE probabilities must be in [0, 1]")
        values = F.binary_cross_entropy(x, t, weight=w, reduction="none")
    else:
        pw = _broadcast("pos_weight", a.get("pos_weight"), raw.shape[-1:], ctx)
        values = F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction="none")
    out = LossOutput(values, rows=raw.shape[0] if raw.ndim else 1)
    if given == "probs":
        out.notes.append("torch clamps each log term at -100, so a confident wrong probability costs at most 100")
    return out


def _broadcast(role: str, arr: np.ndarray | None, shape: tuple[int, ...], ctx: Context):
    if arr is None:
        return None
    try:
        np.broadcast_shapes(arr.shape, shape)
        if np.broadcast_shapes(arr.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ShapeError(f"shape {arr.shape} does not broadcast to the input's {tuple(shape)}",
                         option=flag(role)) from None
    return floats(arr, ctx)
