"""Classification losses: cross entropy, NLL, binary cross entropy and focal loss, as torch computes them.

Class scores are (C), (N, C) or (N, C, d1..dk) with the classes along axis 1 (axis 0 for a 1-d input); an index
target has that shape without the class axis. Every function returns arrays of the compute dtype.
"""

from __future__ import annotations

import numpy as np

from ._common import QUIET, along, scalar

INPUT_KINDS = ("logits", "log_probs", "probs")


def class_axis(x: np.ndarray) -> int:
    """torch's class axis: 0 for a 1-d (C) input, else 1."""
    return 0 if x.ndim == 1 else 1


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """log p = (x - max) - log(sum(exp(x - max))) along `axis`, torch's CPU formula; x's shape and dtype.

    A fully -inf row gives nan (its max is -inf and -inf - -inf is nan), as torch does; so does a row holding +inf.
    A 0-d input is one class: its log-probability is 0, as torch gives.
    """
    if x.ndim == 0:  # NumPy turns 0-d results into scalars, which the in-place steps below cannot write to
        return log_softmax(x.reshape(1), 0).reshape(())
    with np.errstate(**QUIET):
        m = np.max(x, axis=axis, keepdims=True)
        z = np.subtract(x, m)
        e = np.exp(z)
        s = np.sum(e, axis=axis, keepdims=True)
        del e
        np.log(s, out=s)
        z -= s
    return z


# The float32 rows path below exponentiates a block of rows at a time into a temporary of about this size, so that
# the temporary stays in the core's cache between the exp and the sum.
BLOCK_BYTES = 1 << 20
# Rows whose sum of exp(x) is below this (or not finite) take torch's max-shifted formula instead. Above it, the
# row's largest term is at least e^-40 / C, so for up to a million classes every term that counts against
# float32's precision (within 30 of the largest) is a normal float32 number.
_MIN_ROW_SUM = float(np.exp(-40.0))


def _picked_log_softmax(x: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """log_softmax(x)[idx] along `axis` without keeping the whole log_softmax: one temporary of x's size."""
    if x.dtype == np.float32 and x.ndim == 2 and axis == 1 and x.flags.c_contiguous and x.size:
        return _picked_log_softmax_rows(x, idx)
    return _picked_log_softmax_shifted(x, idx, axis)


def _picked_log_softmax_shifted(x: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """torch's formula, (x_y - max) - log(sum(exp(x - max))), in x's dtype."""
    with np.errstate(**QUIET):
        m = np.max(x, axis=axis, keepdims=True)
        e = np.subtract(x, m)
        np.exp(e, out=e)
        s = np.sum(e, axis=axis, keepdims=True)
        del e
        np.log(s, out=s)
        picked = np.take_along_axis(x, idx, axis=axis)
        picked -= m
        picked -= s
    return picked


def _picked_log_softmax_rows(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """_picked_log_softmax of C-contiguous float32 (N, C) logits, the shape of a big file's chunks: x_y - lse.

    Unlike torch, which subtracts each row's maximum first (a pass to find it and one to subtract it), this sums
    exp(x) directly, a block of rows at a time, takes the log and x_y - log(sum) in float64, and rounds once to
    float32. float32 logits of a real model lie well inside exp's range, where the two agree to float32 rounding;
    rows outside it (a sum that underflows or overflows, +inf, nan, all -inf) take torch's formula, so they give
    what torch gives. Half the passes over the data of the shifted formula, which bound a big file's CE.
    Where torch's float32 running sum drops terms under half its step (many classes far below the largest), its
    number is the less exact; NumPy's pairwise sum keeps them (README: "Which engine computes").
    """
    n, c = x.shape
    sums = np.empty(n, np.float64)
    step = max(1, BLOCK_BYTES // max(c * x.itemsize, 1))
    buf = np.empty((min(step, n), c), x.dtype)
    with np.errstate(**QUIET):
        for start in range(0, n, step):
            block = x[start:start + step]
            e = np.exp(block, out=buf[:len(block)])
            sums[start:start + len(block)] = np.einsum("ij->i", e)  # one pass, in float32, as torch sums
        picked = np.take_along_axis(x, idx, axis=1).astype(np.float64)
        picked -= np.log(sums)[:, None]
        # log(float32 exp(x_y)) is x_y only to float32 rounding, so a sure row (one class; a logit far above the
        # rest) could come out a hair above 0: a negative loss. torch's shifted formula never exceeds 0; nor does this.
        np.minimum(picked, 0.0, out=picked)
        redo = np.flatnonzero(~(np.isfinite(sums) & (sums >= _MIN_ROW_SUM)))
        out = picked.astype(np.float32)
        if redo.size:
            out[redo] = _picked_log_softmax_shifted(x[redo], idx[redo], 1)
    return out


def _index_parts(target: np.ndarray, weight: np.ndarray | None, ignore_index: int, dtype: np.dtype, axis: int):
    """(kept mask, the targets as indices along the class axis with ignored ones read as class 0, w_y or None).

    An ignored target reads class 0 so that every lookup is valid; its loss is set to 0 afterwards.
    """
    keep = np.asarray(target != ignore_index)
    safe = np.where(keep, target, 0)
    idx = np.expand_dims(safe, axis).astype(np.intp, copy=False)
    w_t = np.asarray(weight[safe], dtype=dtype) if weight is not None else None
    return keep, idx, w_t


def _denominators(keep: np.ndarray, w_t: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    denom = np.asarray(w_t, dtype=dtype).copy() if w_t is not None else np.ones(keep.shape, dtype=dtype)
    denom[~keep] = 0
    return denom


def _log_probs(x: np.ndarray, axis: int, input_kind: str) -> np.ndarray:
    if input_kind == "logits":
        return log_softmax(x, axis)
    if input_kind == "log_probs":
        return x
    with np.errstate(**QUIET):
        return np.log(x)


def _picked_log_probs(x: np.ndarray, idx: np.ndarray, axis: int, input_kind: str) -> np.ndarray:
    if input_kind == "logits":
        return _picked_log_softmax(x, idx, axis)
    picked = np.take_along_axis(x, idx, axis=axis)
    if input_kind == "probs":
        with np.errstate(**QUIET):
            np.log(picked, out=picked)
    return picked


def cross_entropy_index(x: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *,
                        ignore_index: int = -100, label_smoothing: float = 0.0,
                        input_kind: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    """F.cross_entropy (input_kind 'logits') or F.nll_loss ('log_probs': on x, 'probs': on log x), index targets.

    x: (C), (N, C) or (N, C, d1..dk) floats; target: x's shape without the class axis, integer classes in [0, C)
    or ignore_index; weight: (C) or None. Returns (values, denominators), both of the target's shape and x's dtype:

        values = (1 - eps) * w_y * (-logp_y) + eps / C * sum_c w_c * (-logp_c),   0 where target == ignore_index
        denominators = w_y (1 without weight), 0 where ignored;   torch's mean = values.sum() / denominators.sum()

    logp is log_softmax(x) along the class axis (x itself for 'log_probs', log x for 'probs'). A row whose target
    class has logit -inf costs inf; a fully -inf row gives nan; an ignored row costs 0 whatever its scores. Class
    weight 0 on a -inf target is 0 * inf = nan, and with label smoothing any -inf logit makes the row inf (or nan
    where that class's weight is 0), exactly as torch (which forms w_c * logp_c for every class).
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}; got {input_kind!r}")
    axis = class_axis(x)
    keep, idx, w_t = _index_parts(target, weight, ignore_index, x.dtype, axis)
    if label_smoothing:
        logp = _log_probs(x, axis, input_kind)
        logp_t = np.take_along_axis(logp, idx, axis=axis)
    else:
        logp = None
        logp_t = _picked_log_probs(x, idx, axis, input_kind)
    values = np.negative(logp_t).squeeze(axis)
    with np.errstate(**QUIET):
        if w_t is not None:
            values *= w_t  # nll_loss: -logp_y * w_y
        if logp is not None:
            values = _smoothed(values, logp, weight, axis, label_smoothing)
    values = np.asarray(values)
    values[~keep] = 0
    return values, _denominators(keep, w_t, x.dtype)


def _smoothed(nll: np.ndarray, logp: np.ndarray, weight: np.ndarray | None, axis: int, eps: float) -> np.ndarray:
    """torch's label smoothing: (1 - eps) * nll + eps / C * (-sum_c w_c logp_c), each step in logp's dtype."""
    n_classes = logp.shape[axis]
    if weight is not None:
        logp = np.multiply(logp, along(weight, logp.ndim, axis))
    smooth = np.negative(np.sum(logp, axis=axis))
    nll *= scalar(logp.dtype, 1 - eps)
    smooth *= scalar(logp.dtype, eps / n_classes)
    nll += smooth
    return nll


def cross_entropy_prob(x: np.ndarray, q: np.ndarray, weight: np.ndarray | None = None, *,
                       label_smoothing: float = 0.0) -> np.ndarray:
    """F.cross_entropy with probability targets, reduction='none'.

    x, q: (C), (N, C) or (N, C, d1..dk), classes along axis 1 (0 for 1-d); weight: (C) or None. Returns x's shape
    without the class axis, x's dtype:

        values = -sum_c (logp_c * q'_c) * w_c,   q' = (1 - eps) q + eps / C,   logp = log_softmax(x)

    torch multiplies before it sums, so a class with q'_c = 0 and logit -inf contributes 0 * -inf = nan: the row is
    nan, not the finite value the formula suggests (torch 2.13 does so; lossctl matches it).
    """
    axis = class_axis(x)
    dt = x.dtype
    logp = log_softmax(x, axis)
    with np.errstate(**QUIET):
        if label_smoothing:
            qs = np.multiply(q, scalar(dt, 1 - label_smoothing))
            qs += scalar(dt, label_smoothing / x.shape[axis])
            logp *= qs
            del qs
        else:
            logp *= q
        if weight is not None:
            logp *= along(weight, logp.ndim, axis)
        values = np.negative(np.sum(logp, axis=axis))
    return np.asarray(values)


def bce_probs(p: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """F.binary_cross_entropy, reduction='none': p, y of one shape; weight broadcastable to it. p's shape and dtype.

        values = w * ((y - 1) * max(log1p(-p), -100) - y * max(log p, -100))

    torch clamps each log at -100, so p = 0 with y = 1 (or p = 1 with y = 0) costs exactly 100, and 0 * -inf never
    arises. torch uses log1p(-p), not log(1 - p): in float32, p = 1e-8 with y = 0 costs 1e-8, not 0.
    """
    dt = p.dtype
    floor = scalar(dt, -100.0)
    with np.errstate(**QUIET):
        out = np.negative(p, out=np.empty(np.broadcast_shapes(p.shape, y.shape), dtype=dt))
        np.log1p(out, out=out)
        np.maximum(out, floor, out=out)
        tmp = np.subtract(y, scalar(dt, 1.0), out=np.empty_like(out))
        out *= tmp
        np.log(p, out=tmp)
        np.maximum(tmp, floor, out=tmp)
        tmp *= y
        out -= tmp
        del tmp
        if weight is not None:
            out *= weight
    return out


def _bce_logits_into(x: np.ndarray, y: np.ndarray, out: np.ndarray, tmp: np.ndarray,
                     pos_weight: np.ndarray | None) -> np.ndarray:
    """BCE with logits into `out`, using `tmp` as scratch: torch's (1 - y) x - (1 + (pw - 1) y) * log_sigmoid(x)."""
    dt = out.dtype
    # log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|)): never exp of a large positive number
    np.abs(x, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    np.minimum(x, scalar(dt, 0.0), out=tmp)
    tmp -= out
    if pos_weight is not None:
        np.multiply(y, pos_weight - scalar(dt, 1.0), out=out)
        out += scalar(dt, 1.0)
        tmp *= out
    np.subtract(scalar(dt, 1.0), y, out=out)
    out *= x
    out -= tmp
    return out


def bce_logits(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None,
               pos_weight: np.ndarray | None = None) -> np.ndarray:
    """F.binary_cross_entropy_with_logits, reduction='none'. x's shape and dtype.

    x, y of one shape; weight broadcastable to it; pos_weight broadcast along the last axis ((C) for (N, C) or
    (N, d, C) input), as torch broadcasts it:

        values = w * ((1 - y) x - (1 + (pw - 1) y) * log_sigmoid(x)),   log_sigmoid(x) = min(x, 0) - log1p(exp(-|x|))

    which is stable for any finite x (x = -1000 with y = 1 costs 1000, not inf).
    """
    out = np.empty(np.broadcast_shapes(x.shape, y.shape), dtype=x.dtype)
    with np.errstate(**QUIET):
        _bce_logits_into(x, y, out, np.empty_like(out), pos_weight)
        if weight is not None:
            out *= weight
    return out


def _sigmoid_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """torch's sigmoid, 1 / (1 + exp(-x))."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += scalar(out.dtype, 1.0)
    np.reciprocal(out, out=out)
    return out


def focal_sigmoid(x: np.ndarray, y: np.ndarray, *, alpha: float = 0.25, gamma: float = 2.0) -> np.ndarray:
    """torchvision.ops.sigmoid_focal_loss, reduction='none': x (logits), y (targets in [0, 1]) of one shape.

        p = sigmoid(x),  p_t = p y + (1 - p)(1 - y),  values = alpha_t * BCEWithLogits(x, y) * (1 - p_t)^gamma
        alpha_t = alpha y + (1 - alpha)(1 - y), or 1 where alpha < 0 (torchvision's 'disabled')

    x's shape and dtype. Holds two temporaries besides the result.
    """
    dt = x.dtype
    out = np.empty(np.broadcast_shapes(x.shape, y.shape), dtype=dt)
    p = np.empty_like(out)
    not_y = np.empty_like(out)
    with np.errstate(**QUIET):
        _sigmoid_into(x, p)
        np.subtract(scalar(dt, 1.0), y, out=not_y)
        np.multiply(p, y, out=out)
        np.subtract(scalar(dt, 1.0), p, out=p)
        p *= not_y
        out += p  # p_t
        np.subtract(scalar(dt, 1.0), out, out=out)
        np.power(out, scalar(dt, gamma), out=out)  # (1 - p_t)^gamma
        if alpha >= 0:
            np.multiply(y, scalar(dt, alpha), out=p)
            not_y *= scalar(dt, 1 - alpha)
            p += not_y
            out *= p  # alpha_t
        out *= _bce_logits_into(x, y, p, not_y, None)
    return out


def focal_index(x: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None, *, alpha: float = 0.25,
                gamma: float = 2.0, ignore_index: int = -100) -> tuple[np.ndarray, np.ndarray]:
    """Multi-class (softmax) focal loss with index targets, lossctl's definition (losses/extra.py), torch's NLL form.

    x: (N, C) or (N, C, d1..dk) logits (or (C)); target: x's shape without axis 1; weight: (C) or None.
    Returns (values, denominators), both of the target's shape and x's dtype:

        values = alpha * (-w_y * ((1 - p_y)^gamma * logp_y)),   logp = log_softmax(x), p_y = exp(logp_y)
        (alpha < 0 drops the alpha factor), 0 where target == ignore_index;
        denominators = 1 per kept target, 0 where ignored (weights scale the loss, not the mean's denominator).
    """
    axis = class_axis(x)
    dt = x.dtype
    keep, idx, w_t = _index_parts(target, weight, ignore_index, dt, axis)
    logp_t = _picked_log_softmax(x, idx, axis).squeeze(axis)
    with np.errstate(**QUIET):
        mod = np.exp(logp_t)
        np.subtract(scalar(dt, 1.0), mod, out=mod)
        np.power(mod, scalar(dt, gamma), out=mod)
        mod *= logp_t
        values = np.negative(mod)
        if w_t is not None:
            values *= w_t
        if alpha >= 0:
            values *= scalar(dt, alpha)
    values = np.asarray(values)
    values[~keep] = 0
    return values, _denominators(keep, None, dt)
