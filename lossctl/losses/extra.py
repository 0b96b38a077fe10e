"""Focal loss and Jensen-Shannon divergence: losses torch.nn lacks, built from its functions."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..reduce import LossOutput
from ._common import (
    Context,
    check_choice,
    check_classes,
    check_nonempty,
    check_range,
    check_shape,
    check_weight,
    floats,
    ints,
    row_sum_warning,
    sum_tolerance,
)
from .classification import index_output, split_classes


def focal(a: dict, o: dict, ctx: Context) -> LossOutput:
    logits, target = a["logits"], a["target"]
    check_nonempty("logits", logits)
    if o["gamma"] < 0:
        raise UsageError(f"must be >= 0; got {o['gamma']}", option="--gamma")
    if o["alpha"] > 1:
        raise UsageError(f"must be in [0, 1], or negative to disable; got {o['alpha']}", option="--alpha")
    kind = o["target_kind"]
    check_choice("target_kind", kind, ("auto", "binary", "index"))
    if kind == "auto":
        index_shape = split_classes(logits)[2] if logits.ndim > 1 else None
        kind = "index" if target.dtype.kind in "iu" and target.shape == index_shape else "binary"
    if kind == "index":
        return _focal_multiclass(a, o, ctx)
    if a.get("weight") is not None:
        raise UsageError("applies only to the multi-class form (index targets); use --alpha", option="--weight")
    return _focal_sigmoid(a, o, ctx)


def _focal_sigmoid(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch
    import torch.nn.functional as F

    logits, target = a["logits"], a["target"]
    check_shape("target", target, logits.shape, "--logits", logits.shape)
    check_range("target", target, 0.0, 1.0, "binary focal targets must be in [0, 1]")
    x, y = floats(logits, ctx), floats(target, ctx)
    # torchvision.ops.sigmoid_focal_loss, written out
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    values = ce * ((1 - p_t) ** o["gamma"])
    if o["alpha"] >= 0:
        values = (o["alpha"] * y + (1 - o["alpha"]) * (1 - y)) * values
    return LossOutput(values, rows=logits.shape[0] if logits.ndim else 1)


def _focal_multiclass(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch
    import torch.nn.functional as F

    logits, target, weight = a["logits"], a["target"], a.get("weight")
    if logits.ndim < 2:
        raise UsageError("index targets need logits (N, C) or (N, C, d...)", option="--logits")
    axis, n_classes, index_shape = split_classes(logits)
    check_shape("target", target, index_shape, "--logits", logits.shape)
    ignored = check_classes("target", target, n_classes, o["ignore_index"])
    check_weight(weight, n_classes)
    t = ints(target, "target", ctx)
    w = floats(weight, ctx) if weight is not None else None
    logp = torch.log_softmax(floats(logits, ctx), dim=axis)
    # nll_loss picks -w_y * ((1 - p)^gamma log p)_y and zeroes ignored targets
    values = F.nll_loss((1 - logp.exp()) ** o["gamma"] * logp, t, weight=w, ignore_index=o["ignore_index"],
                        reduction="none")
    if o["alpha"] >= 0:
        values = o["alpha"] * values
    # the mean counts the targets kept, whatever their weights (alpha and weight scale the loss, as in kornia)
    out = index_output(values, t, None, o["ignore_index"], n_classes, ctx, ignored, logits.shape[0])
    out.notes.append("multi-class focal loss (softmax): index targets")
    return out


def _distribution(role: str, kind: str, arr: np.ndarray, ctx: Context, warnings: list[str]):
    import torch

    check_choice(role + "_kind", kind, ("prob", "logits"))
    if kind == "logits":
        return torch.softmax(floats(arr, ctx), dim=-1)
    check_range(role, arr, 0.0, None, "probabilities must be >= 0")
    warning = row_sum_warning(role, arr, -1, sum_tolerance(ctx.dtype))
    warnings += [warning] if warning else []
    return floats(arr, ctx)


def js(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch

    p_arr, q_arr = a["p"], a["q"]
    check_nonempty("p", p_arr)
    check_shape("q", q_arr, p_arr.shape, "--p", p_arr.shape)
    warnings: list[str] = []
    p = _distribution("p", o["p_kind"], p_arr, ctx, warnings)
    q = _distribution("q", o["q_kind"], q_arr, ctx, warnings)
    m = 0.5 * (p + q)
    # xlogy gives 0 log 0 = 0, and m > 0 wherever p or q is
    kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(dim=-1)
    kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(dim=-1)
    values = (0.5 * (kl_pm + kl_qm)).clamp(min=0.0)
    return LossOutput(values, rows=p_arr.shape[0] if p_arr.ndim > 1 else 1, unit="rows", warnings=warnings)
