"""KL divergence, Shannon entropy and Jensen-Shannon divergence, with torch's 0 log 0 = 0 conventions."""

from __future__ import annotations

import numpy as np

from ._common import QUIET, scalar


def _xlogy_into(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """torch.xlogy: x * log(y), but 0 where x == 0 (even for y = 0 or inf), and nan wherever y is nan."""
    np.log(y, out=out)
    out *= x
    np.copyto(out, 0, where=(x == 0) & (y == y))
    return out


def kl_div(log_q: np.ndarray, target: np.ndarray, *, log_target: bool = False) -> np.ndarray:
    """F.kl_div(log_q, target, reduction='none', log_target=...): elementwise, log_q's shape and dtype.

        log_target False:  xlogy(t, t) - t * log_q      (0 log 0 = 0, so a zero target adds 0 * -log_q)
        log_target True:   exp(t) * (t - log_q)

    torch subtracts t * log_q as a separate product, so a zero target where log_q = -inf gives 0 - 0 * -inf = nan,
    not 0; a positive target where log_q = -inf gives inf.
    """
    out = np.empty(np.broadcast_shapes(log_q.shape, target.shape), dtype=log_q.dtype)
    tmp = np.empty_like(out)
    with np.errstate(**QUIET):
        if log_target:
            np.exp(target, out=out)
            np.subtract(target, log_q, out=tmp)
            out *= tmp
        else:
            _xlogy_into(target, target, out)
            np.multiply(target, log_q, out=tmp)
            out -= tmp
    return out


def _logsumexp(x: np.ndarray, axis: int, scratch: np.ndarray) -> np.ndarray:
    """torch.logsumexp(keepdim=True): the max is taken as 0 where it is +-inf, so an all -inf row gives -inf."""
    m = np.max(x, axis=axis, keepdims=True)
    m[np.isinf(m)] = 0
    np.subtract(x, m, out=scratch)
    np.exp(scratch, out=scratch)
    s = np.sum(scratch, axis=axis, keepdims=True)
    np.log(s, out=s)
    s += m
    return s


def _softmax_into(x: np.ndarray, axis: int, out: np.ndarray) -> np.ndarray:
    """torch.softmax: exp(x - max) / sum(exp(x - max))."""
    np.subtract(x, np.max(x, axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True)
    return out


def entropy(probs: np.ndarray | None = None, logits: np.ndarray | None = None, *, axis: int = -1) -> np.ndarray:
    """torch.distributions.Categorical(probs=... or logits=...).entropy(), the distributions along `axis`.

    Exactly one of probs, logits (at least 1-d). Returns the input's shape without `axis`, its dtype.

        probs:   P = probs / probs.sum(axis);  H = -sum P * log(clamp(P, eps, 1 - eps))   (eps = finfo(dtype).eps)
        logits:  L = logits - logsumexp(logits);  H = -sum softmax(L) * max(L, finfo(dtype).min)

    So 0 log 0 = 0, unnormalised rows are normalised first, and a one-hot probs row gives -log(1 - eps) (2.2e-16 in
    float64, 1.2e-7 in float32), not 0, as torch does. A probs row summing to 0 and an all -inf logits row give nan.
    """
    if (probs is None) == (logits is None):
        raise ValueError("give exactly one of probs and logits")
    x = probs if probs is not None else logits
    info = np.finfo(x.dtype)
    a = np.empty_like(x)
    b = np.empty_like(x)
    with np.errstate(**QUIET):
        if probs is not None:
            np.divide(probs, np.sum(probs, axis=axis, keepdims=True), out=a)
            np.clip(a, scalar(x.dtype, info.eps), scalar(x.dtype, 1 - info.eps), out=b)
            np.log(b, out=b)
        else:
            lse = _logsumexp(logits, axis, a)
            np.subtract(logits, lse, out=b)
            _softmax_into(b, axis, a)
            np.maximum(b, scalar(x.dtype, info.min), out=b)  # torch clamps -inf log-probs, so 0 * -inf never arises
        b *= a
        values = np.negative(np.sum(b, axis=axis))
    return np.asarray(values)


def _kl_rows(p: np.ndarray, m: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over the last axis of xlogy(p, p) - xlogy(p, m), using a and b as scratch."""
    _xlogy_into(p, p, a)
    _xlogy_into(p, m, b)
    a -= b
    return np.sum(a, axis=-1)


def js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence per distribution along the last axis (lossctl's js, losses/extra.py).

    p, q: probabilities of one shape (..., C). Returns (...), p's dtype:

        m = 0.5 (p + q),  values = max(0.5 * (KL(p || m) + KL(q || m)), 0),  KL(p || m) = sum xlogy(p, p) - xlogy(p, m)

    xlogy makes 0 log 0 = 0, and m > 0 wherever p or q is; the clamp removes a rounding-negative result.
    """
    dt = p.dtype
    m = np.add(p, q)
    m *= scalar(dt, 0.5)
    a = np.empty_like(m)
    b = np.empty_like(m)
    with np.errstate(**QUIET):
        kl_pm = _kl_rows(p, m, a, b)
        kl_qm = _kl_rows(q, m, a, b)
        values = np.add(kl_pm, kl_qm)
        values *= scalar(dt, 0.5)
    return np.asarray(np.maximum(values, scalar(dt, 0.0)))
