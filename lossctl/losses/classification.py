"""Cross entropy, negative log-likelihood and binary cross entropy, as torch.nn computes them."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import (
    MODEL_PROBS_TOL,
    Context,
    check_choice,
    check_classes,
    check_nonempty,
    check_range,
    check_shape,
    check_unit_interval,
    check_weight,
    flag,
    index_dtype_notes,
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


def target_kind_of(kind: str, logits: np.ndarray, target: np.ndarray, index_shape: tuple[int, ...]) -> str:
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


def check_ignore_index_of_probs(ignore_index: int) -> None:
    """torch refuses ignore_index >= 0 with probability targets ("not supported for floating point target")."""
    if ignore_index >= 0:
        raise UsageError(f"applies only to class-index targets; torch refuses {ignore_index} with probability "
                         "targets (only a negative value, such as the default -100, is accepted)",
                         option="--ignore-index")


def index_output(values, denominators, *, ignored: int, rows: int, weighted: bool) -> LossOutput:
    """An index target's per-target losses and denominators: its class weight (1 each), 0 where ignored."""
    return LossOutput(values, weights=denominators, rows=rows, unit="targets", ignored=ignored, weighted=weighted)


def _ce_notes(kind: str, weighted: bool, eps: float, reduction: str) -> list[str]:
    notes = []
    if weighted and reduction == "mean":
        notes.append("weighted mean: torch divides by the sum of the targets' class weights, not by N"
                     if kind == "index" else
                     "probability targets with weights: torch's mean divides by N, not by a sum of weights")
    if eps:
        notes.append(f"label smoothing {eps}: the target is mixed with the uniform distribution before the loss")
    return notes


def cross_entropy(logits, target, weight=None, *, ignore_index: int = -100, label_smoothing: float = 0.0,
                  target_kind: str = "auto", ctx: Context) -> LossOutput:
    """torch.nn.CrossEntropyLoss per target, for logits (C), (N, C) or (N, C, d1..dk).

    Index targets y:        loss_n = (1 - eps) w_{y_n} (-log p_{n,y_n}) + eps/C sum_c w_c (-log p_{n,c})
    Probability targets q:  loss_n = -sum_c w_c q'_{n,c} log p_{n,c},  q' = (1 - eps) q + eps/C
    with p = softmax(logits) over the class axis and eps the label smoothing. The mean of index targets
    divides by sum_n w_{y_n} over the targets not ignored; of probability targets by N * d1 * ... * dk.
    """
    check_nonempty("logits", logits)
    axis, n_classes, index_shape = split_classes(logits)
    check_choice("target_kind", target_kind, ("auto", "index", "prob", "logits"))
    check_unit_interval("label_smoothing", label_smoothing)
    check_weight(weight, n_classes)
    kind = target_kind_of(target_kind, logits, target, index_shape)
    k = ctx.kernels()
    x = ctx.array(logits)
    # torch refuses an integer weight beside class indices but promotes one beside probabilities: there it is read
    # as floats without float_dtype_notes' note (a float copy, which is not the input it names)
    w = None if weight is None else ctx.array(weight if kind == "index" else np.asarray(weight, dtype=ctx.dtype))
    rows = logits.shape[0] if logits.ndim > 1 else 1
    notes = _ce_notes(kind, weight is not None, label_smoothing, ctx.reduction)
    if kind == "index":
        check_shape("target", target, index_shape, "--logits", logits.shape)
        ignored = check_classes("target", target, n_classes, ignore_index)
        values, denominators = k.cross_entropy_index(x, ctx.indices(target, "target"), w, ignore_index=ignore_index,
                                                     label_smoothing=label_smoothing, input_kind="logits")
        out = index_output(values, denominators, ignored=ignored, rows=rows, weighted=weight is not None)
        notes += index_dtype_notes(target, accepted=class_index_dtypes(target))
    else:
        check_shape("target", target, logits.shape, "--logits", logits.shape)
        check_ignore_index_of_probs(ignore_index)
        warnings = []
        if kind == "logits":
            q = k.softmax(ctx.array(target), axis)
        else:
            check_range("target", target, 0.0, None, "probabilities must be >= 0")
            warning = row_sum_warning("target", target, axis, sum_tolerance(ctx.dtype))
            warnings = [warning] if warning else []
            q = ctx.array(target)
        values = k.cross_entropy_prob(x, q, w, label_smoothing=label_smoothing)
        out = LossOutput(values, rows=rows, unit="samples", warnings=warnings)
    out.notes.extend(notes)
    return out


def log_probs_of(arrays: dict, axis_of, ctx: Context):
    """(the given array, the model's log-probabilities) from whichever of log_probs, logits, probs is given."""
    k = ctx.kernels()
    if arrays.get("log_probs") is not None:
        return arrays["log_probs"], ctx.array(arrays["log_probs"])
    if arrays.get("logits") is not None:
        arr = arrays["logits"]
        return arr, k.log_softmax(ctx.array(arr), axis_of(arr))
    arr = arrays["probs"]
    check_range("probs", arr, 0.0, None, "probabilities must be >= 0")
    return arr, k.log(ctx.array(arr))


def nll(log_probs=None, logits=None, probs=None, target=None, weight=None, *, ignore_index: int = -100,
        ctx: Context) -> LossOutput:
    """torch.nn.NLLLoss: loss_n = -w_{y_n} logp_{n,y_n}; the mean divides by sum_n w_{y_n} (ignored excluded).

    --log-probs are taken as they are; --logits get log_softmax over the class axis, --probs get log.
    """
    given, kind = next((a, k) for a, k in ((log_probs, "log_probs"), (logits, "logits"), (probs, "probs"))
                       if a is not None)
    check_nonempty(kind, given)
    axis, n_classes, index_shape = split_classes(given, kind)
    check_weight(weight, n_classes)
    check_shape("target", target, index_shape, "the input", given.shape)
    ignored = check_classes("target", target, n_classes, ignore_index)
    warnings = []
    if kind == "probs":
        check_range("probs", given, 0.0, None, "probabilities must be >= 0")
        warnings = unnormalised_probs(given, axis, ctx)
    w = ctx.array(weight) if weight is not None else None
    values, denominators = ctx.kernels().cross_entropy_index(
        ctx.array(given), ctx.indices(target, "target"), w, ignore_index=ignore_index, input_kind=kind)
    out = index_output(values, denominators, ignored=ignored, rows=given.shape[0] if given.ndim > 1 else 1,
                       weighted=weight is not None)
    out.warnings += warnings
    out.notes += index_dtype_notes(target, accepted=class_index_dtypes(target))
    return out


def class_index_dtypes(target: np.ndarray) -> tuple:
    """The dtypes torch's cross_entropy and nll_loss take for these class indices (by trying torch): int64, and
    uint8 for one sample's or a batch's (N) targets only; (N, d1, ...) targets of uint8 (a PNG mask) are refused
    ("expected scalar type Long but found Byte")."""
    return (np.int64, np.uint8) if target.ndim <= 1 else (np.int64,)


def unnormalised_probs(probs: np.ndarray, axis: int, ctx: Context) -> list[str]:
    """The model's --probs (nll, kl) should be distributions: rows that do not sum to 1 (sigmoid outputs per class,
    say) are logged as they are, and the loss reads lower or higher than the model's."""
    warning = row_sum_warning("probs", probs, axis, MODEL_PROBS_TOL,
                              then="; the log of each is taken as given, not renormalised")
    return [warning] if warning else []


def bce(probs=None, logits=None, target=None, weight=None, pos_weight=None, *, ctx: Context) -> LossOutput:
    """torch.nn.BCELoss (--probs) or BCEWithLogitsLoss (--logits), per element:

    loss = -w [pos_weight y log p + (1 - y) log(1 - p)], p = probs or sigmoid(logits); BCELoss clamps each log
    at -100 and has no pos_weight. The mean divides by the number of elements, weights or not.
    """
    given, raw = ("probs", probs) if probs is not None else ("logits", logits)
    check_nonempty(given, raw)
    check_shape("target", target, raw.shape, f"--{given}", raw.shape)
    check_range("target", target, 0.0, 1.0, "BCE targets must be in [0, 1]")
    k = ctx.kernels()
    w = _broadcast("weight", weight, raw.shape, ctx)
    if given == "probs":
        if pos_weight is not None:
            raise UsageError("applies only with --logits (BCEWithLogitsLoss)", option="--pos-weight")
        check_range("probs", raw, 0.0, 1.0, "BCE probabilities must be in [0, 1]")
        values = k.bce_probs(ctx.array(raw), ctx.array(target), w)
    else:
        pw = _broadcast("pos_weight", pos_weight, raw.shape[-1:], ctx,
                        f"one weight per class, along the last axis of --logits {raw.shape}")
        values = k.bce_logits(ctx.array(raw), ctx.array(target), w, pw)
    out = LossOutput(values, rows=raw.shape[0] if raw.ndim else 1)
    if given == "probs" and _clamped(raw, target):
        out.notes.append("torch clamps each log term at -100, and some are clamped here: where p is 0 (below "
                         "e^-100) or 1 against the label, log p or log(1 - p) counts as -100, not -inf")
    return out


def _clamped(p: np.ndarray, y: np.ndarray) -> bool:
    """Whether BCELoss's clamp of log p or log(1 - p) at -100 changes some term: log p < -100 where y > 0, or
    p = 1 (log1p(-p) = -inf; no float is within e^-100 of 1) where y < 1."""
    with np.errstate(invalid="ignore"):
        return bool(np.any((p < math.exp(-100.0)) & (y > 0)) or np.any((p == 1) & (y < 1)))


def _broadcast(role: str, arr: np.ndarray | None, shape: tuple[int, ...], ctx: Context, why: str = ""):
    """arr broadcast to `shape` (the input's own, unless `why` says what else it is)."""
    if arr is None:
        return None
    try:
        np.broadcast_shapes(arr.shape, shape)
        if np.broadcast_shapes(arr.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        to = f"{tuple(shape)}: {why}" if why else f"the input's {tuple(shape)}"
        raise ShapeError(f"shape {arr.shape} does not broadcast to {to}",
                         option=flag(role)) from None
    return ctx.array(arr)
