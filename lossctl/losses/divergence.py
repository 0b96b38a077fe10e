"""KL divergence and Shannon entropy."""

from __future__ import annotations

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import (
    Context,
    check_choice,
    check_nonempty,
    check_range,
    check_shape,
    flag,
    floats,
    row_sum_warning,
    sum_tolerance,
)
from .classification import log_probs_of

KL_MEAN_WARNING = ("kl: reduction 'mean' divides the total loss by both the batch size and the support size; "
                   "'batchmean' divides only by the batch size and matches the KL definition (torch's warning)")


def class_axis(arr) -> int:
    # KLDivLoss is elementwise; the distributions lie along the last axis, as softmax(dim=-1) makes them.
    return -1


def kl(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch
    import torch.nn.functional as F

    raw, logq = log_probs_of(a, class_axis, ctx)
    check_nonempty("input", raw)
    target = a["target"]
    check_shape("target", target, raw.shape, "the input", raw.shape)
    kind = o["target_kind"]
    check_choice("target_kind", kind, ("prob", "log-prob", "logits"))
    warnings = []
    if ctx.reduction == "mean":
        warnings.append(KL_MEAN_WARNING)
    t = floats(target, ctx)
    if kind == "prob":
        check_range("target", target, 0.0, None, "probabilities must be >= 0")
        w = row_sum_warning("target", target, -1, sum_tolerance(ctx.dtype))
        warnings += [w] if w else []
    elif kind == "logits":
        t = torch.softmax(t, dim=-1)  # the tutorial's softmax(target_logits)
    values = F.kl_div(logq, t, reduction="none", log_target=(kind == "log-prob"))
    return LossOutput(values, rows=raw.shape[0] if raw.ndim else 1, warnings=warnings)


def entropy(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch
    from torch.distributions import Categorical

    dim = o["dim"]
    given = "probs" if a.get("probs") is not None else "logits"
    if a[given].ndim == 0:
        raise ShapeError("is a single number; a distribution needs at least one axis", option=flag(given))
    if not -a[given].ndim <= dim < a[given].ndim:
        raise UsageError(f"axis {dim} is out of range for {flag(given)} of shape {a[given].shape}", option="--dim")
    if a.get("probs") is not None:
        raw = a["probs"]
        check_nonempty("probs", raw)
        check_range("probs", raw, 0.0, None, "probabilities must be >= 0")
        w = row_sum_warning("probs", raw, dim, sum_tolerance(ctx.dtype))
        dist = Categorical(probs=torch.movedim(floats(raw, ctx), dim, -1), validate_args=False)
        warnings = [w + "; Categorical normalises each row before the entropy"] if w else []
    else:
        raw = a["logits"]
        check_nonempty("logits", raw)
        dist = Categorical(logits=torch.movedim(floats(raw, ctx), dim, -1), validate_args=False)
        warnings = []
    values = dist.entropy()
    return LossOutput(values, rows=raw.shape[0] if raw.ndim > 1 else 1, unit="distributions", warnings=warnings)
