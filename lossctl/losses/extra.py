"""Focal loss and Jensen-Shannon divergence: losses torch.nn lacks, built from its functions."""

from __future__ import annotations

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
    check_weight,
    focal_index,
    row_sum_warning,
)
from .classification import index_output, split_classes


def focal(logits, target, weight=None, *, alpha: float = 0.25, gamma: float = 2.0, target_kind: str = "auto",
          ignore_index: int = -100, ctx: Context) -> LossOutput:
    """Focal loss. Sigmoid form (torchvision.ops.sigmoid_focal_loss), per element:
        loss = alpha_t (1 - p_t)^gamma BCE(x, y), p = sigmoid(x), p_t = p y + (1 - p)(1 - y),
        alpha_t = alpha y + (1 - alpha)(1 - y) (alpha < 0: no alpha term).
    Multi-class form (index targets), per target: loss_n = -alpha w_{y_n} (1 - p_{n,y_n})^gamma log p_{n,y_n},
    p = softmax(x); the mean counts the targets not ignored, whatever their weights.
    """
    check_nonempty("logits", logits)
    if gamma < 0:
        raise UsageError(f"must be >= 0; got {gamma}", option="--gamma")
    if alpha > 1:
        raise UsageError(f"must be in [0, 1], or negative to disable; got {alpha}", option="--alpha")
    check_choice("target_kind", target_kind, ("auto", "binary", "index"))
    if focal_index(logits, target, target_kind):
        return _focal_multiclass(logits, target, weight, alpha, gamma, ignore_index, ctx)
    if weight is not None:
        raise UsageError("applies only to the multi-class form (index targets); use --alpha", option="--weight")
    check_shape("target", target, logits.shape, "--logits", logits.shape)
    check_range("target", target, 0.0, 1.0, "binary focal targets must be in [0, 1]")
    values = ctx.kernels().focal_sigmoid(ctx.array(logits), ctx.array(target), alpha=alpha, gamma=gamma)
    return LossOutput(values, rows=logits.shape[0] if logits.ndim else 1, form="sigmoid (0/1 labels)")


def _focal_multiclass(logits, target, weight, alpha: float, gamma: float, ignore_index: int,
                      ctx: Context) -> LossOutput:
    if logits.ndim < 2:
        raise UsageError("index targets need logits (N, C) or (N, C, d...)", option="--logits")
    axis, n_classes, index_shape = split_classes(logits)
    check_shape("target", target, index_shape, "--logits", logits.shape)
    ignored = check_classes("target", target, n_classes, ignore_index)
    check_weight(weight, n_classes)
    w = ctx.array(weight) if weight is not None else None
    values, denominators = ctx.kernels().focal_index(ctx.array(logits), ctx.indices(target, "target"), w,
                                                     alpha=alpha, gamma=gamma, ignore_index=ignore_index)
    # alpha and weight scale the loss, not the mean's denominator (as in kornia)
    out = index_output(values, denominators, ignored=ignored, rows=logits.shape[0], weighted=False)
    out.notes.append("multi-class focal loss (softmax): index targets")
    out.form = "multi-class (softmax, index targets)"
    return out


def _distribution(role: str, kind: str, arr: np.ndarray, ctx: Context, warnings: list[str]):
    check_choice(role + "_kind", kind, ("prob", "logits"))
    if kind == "logits":
        return ctx.kernels().softmax(ctx.array(arr), -1)
    check_range(role, arr, 0.0, None, "probabilities must be >= 0")
    warning = row_sum_warning(role, arr, -1, MODEL_PROBS_TOL)
    warnings += [warning] if warning else []
    return ctx.array(arr)


def js(p, q, *, p_kind: str = "prob", q_kind: str = "prob", ctx: Context) -> LossOutput:
    """Jensen-Shannon divergence per row over the last axis: 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2,
    with 0 log 0 = 0; at most ln 2."""
    if p.ndim == 0:  # as entropy refuses it: JS compares distributions along the last axis
        raise ShapeError("is a single number; a distribution needs at least one axis", option="--p")
    check_nonempty("p", p)
    check_shape("q", q, p.shape, "--p", p.shape)
    warnings: list[str] = []
    pp = _distribution("p", p_kind, p, ctx, warnings)
    qq = _distribution("q", q_kind, q, ctx, warnings)
    values = ctx.kernels().js(pp, qq)
    return LossOutput(values, rows=p.shape[0] if p.ndim > 1 else 1, unit="rows", warnings=warnings)


def perplexity(value: float, partial, dtype="float64") -> tuple[float, str, list[str]]:
    """exp of the mean cross entropy; the partial stays CE's, so shards merge before the exp. Gives the value, a
    note and the warnings.

    `value` may be a torch scalar (`lossctl grad`): its exp keeps the autograd graph, in the scalar's dtype.
    dtype: the compute dtype. torch takes the exp of its float32 CE in float32, which overflows to inf past
    ln(float32 max) = 88.72; the float64 exp taken here would print a finite number torch never gives.
    """
    import math

    note = f"perplexity = exp(mean cross entropy) = exp({partial.total:.6g} / {partial.denominator:.6g})"
    if hasattr(value, "exp"):
        ppl = value.exp()
        dtype = str(value.dtype).replace("torch.", "")
        return ppl, note, _overflow_warning(float(value.detach()), float(ppl.detach()), dtype)
    try:
        ppl = math.exp(value)  # exp(nan) is nan, as torch's
    except OverflowError:  # past ln(float64 max) = 709.78 torch.exp gives inf too
        ppl = math.inf
    if str(dtype) == "float32" and math.isfinite(ppl) and _exp_overflows_float32(float(np.float32(value))):
        return math.inf, note, _overflow_warning(value, math.inf, "float32", ppl)
    return ppl, note, _overflow_warning(value, ppl, str(dtype))


_FLOAT32_INF = 2.0 ** 128 - 2.0 ** 103  # the least value that rounds to inf in float32: its max plus half a step


def _exp_overflows_float32(ce: float) -> bool:
    """Whether exp of the float32 CE rounds to inf in float32 (a CE that is finite in float64 may round up past
    ln(float64 max) in float32, where math.exp itself overflows)."""
    import math

    return ce > 709.0 or math.exp(ce) >= _FLOAT32_INF


def _overflow_warning(ce: float, ppl: float, dtype: str, wide: float | None = None) -> list[str]:
    """Why a finite cross entropy gives an infinite perplexity: the exp overflows the compute dtype. `wide`: the
    float64 perplexity, where it is finite."""
    import math

    if not math.isfinite(ce) or not math.isinf(ppl):
        return []
    largest = {"float32": "exp(88.72) = 3.4e38", "float64": "exp(709.78) = 1.8e308"}.get(dtype, f"{dtype}'s max")
    wider = "" if dtype == "float64" or ce >= 709.78 else \
        f"; --dtype float64 gives {wide:.6g}" if wide is not None else "; --dtype float64 gives a finite value"
    return [f"perplexity is inf: exp({ce:.6g}) overflows {dtype} (at most {largest}), as torch.exp of the "
            f"{dtype} cross entropy does{wider}"]
