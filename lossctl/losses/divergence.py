"""KL divergence and Shannon entropy."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import (
    MODEL_PROBS_TOL,
    Context,
    Finding,
    check_choice,
    check_nonempty,
    check_range,
    check_shape,
    flag,
    position,
    row_sum_warning,
    sum_tolerance,
)
from .classification import log_probs_of, unnormalised_probs

KL_MEAN_WARNING = ("kl: reduction 'mean' divides the total loss by both the batch size and the support size; "
                   "'batchmean' divides only by the batch size and matches the KL definition (torch's warning)")
LAST_AXIS = -1  # KLDivLoss is elementwise; the distributions lie along the last axis, as softmax(dim=-1) makes them


def kl(log_probs=None, logits=None, probs=None, target=None, *, target_kind: str = "prob",
       ctx: Context) -> LossOutput:
    """torch.nn.KLDivLoss, elementwise: loss_{n,c} = p_{n,c} (log p_{n,c} - log q_{n,c}), KL(target || model).

    p is the target (probabilities, log-probabilities with --target-kind log-prob, or logits softmaxed over the
    last axis); log q the model's log-probabilities (--log-probs as given, log_softmax of --logits, log of
    --probs). torch takes 0 log 0 = 0 where the target is 0.
    """
    given = {"log_probs": log_probs, "logits": logits, "probs": probs}
    role, arr = next((r, a) for r, a in given.items() if a is not None)
    check_nonempty(role, arr)
    raw, logq = log_probs_of(given, lambda _: LAST_AXIS, ctx)
    check_shape("target", target, raw.shape, "the input", raw.shape)
    check_choice("target_kind", target_kind, ("prob", "log-prob", "logits"))
    warnings = [KL_MEAN_WARNING] if ctx.reduction == "mean" else []
    k = ctx.kernels()
    t = ctx.array(target)
    if target_kind == "prob":
        check_range("target", target, 0.0, None, "probabilities must be >= 0")
        w = row_sum_warning("target", target, LAST_AXIS, sum_tolerance(ctx.dtype))
        warnings += [w] if w else []
    elif target_kind == "logits":
        t = k.softmax(t, LAST_AXIS)  # the tutorial's softmax(target_logits)
    values = k.kl_div(logq, t, log_target=(target_kind == "log-prob"))
    if probs is not None:
        warnings += unnormalised_probs(probs, LAST_AXIS, ctx)
    warnings += _zero_zero_warning(role, arr, target, target_kind)
    return LossOutput(values, rows=raw.shape[0] if raw.ndim else 1, warnings=warnings)


def _zero_zero_warning(role: str, model: np.ndarray, target: np.ndarray, target_kind: str) -> list[str]:
    """torch's kl_div computes target * (log target - log q): where the model and the target both give probability
    0 (a probability of 0; a log-probability or logit of -inf) that is 0 * -inf = nan."""
    model_zero = model == 0 if role == "probs" else np.isneginf(model)
    target_zero = target == 0 if target_kind == "prob" else np.isneginf(target)
    # log_target: torch computes exp(t) * (t - log q), 0 * -inf = nan wherever t = -inf, whatever the model gives
    both = np.flatnonzero(target_zero if target_kind == "log-prob" else model_zero & target_zero)
    if not both.size:
        return []
    at = position(model, both[0])
    if not model_zero.flat[both[0]]:
        return [Finding("kl-zero-zero", f"--target gives probability 0 (log-probability -inf, first at index {at}): "
                        "with --target-kind log-prob torch computes exp(t) * (t - log q) = 0 * -inf = nan there, "
                        f"whatever {flag(role)} gives; the textbook (and scipy) take 0 log 0 = 0")]
    if role == "probs" and target_kind == "prob":
        said = f"--probs and --target are both 0 (first at index {at})"
    else:
        said = f"{flag(role)} and --target both give probability 0 (first at index {at}: {model.flat[both[0]]} and " \
               f"{target.flat[both[0]]})"
    return [Finding("kl-zero-zero", f"{said}: torch computes 0 * (log 0 - log 0) = 0 * -inf = nan there; the textbook "
                    "(and scipy) take 0 log 0 = 0")]


def entropy(probs=None, logits=None, *, dim: int = -1, ctx: Context) -> LossOutput:
    """Shannon entropy of each distribution along --dim, as torch.distributions.Categorical(...).entropy():

    H_n = -sum_c p_{n,c} log p_{n,c} with 0 log 0 = 0; probabilities are normalised first, logits softmaxed.
    """
    given, raw = ("probs", probs) if probs is not None else ("logits", logits)
    if raw.ndim == 0:
        raise ShapeError("is a single number; a distribution needs at least one axis", option=flag(given))
    if not -raw.ndim <= dim < raw.ndim:
        raise UsageError(f"axis {dim} is out of range for {flag(given)} of shape {raw.shape}", option="--dim")
    check_nonempty(given, raw)
    warnings = []
    if given == "probs":
        check_range("probs", raw, 0.0, None, "probabilities must be >= 0")
        w = row_sum_warning("probs", raw, dim, MODEL_PROBS_TOL,
                            then="; Categorical normalises each row before the entropy")
        warnings = [w] if w else []
        values = ctx.kernels().entropy(probs=ctx.array(raw), axis=dim)
    else:
        values = ctx.kernels().entropy(logits=ctx.array(raw), axis=dim)
    return LossOutput(values, rows=raw.shape[0] if raw.ndim > 1 else 1, unit="distributions", warnings=warnings)
