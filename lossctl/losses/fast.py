"""NumPy kernels for the streamed hot path: cross entropy and NLL with class-index targets.

Streaming a large .npy spends most of its time in reading and in one log-sum-exp per row; importing torch
alone costs more than that. These kernels compute the same formula as torch's CrossEntropyLoss/NLLLoss
(per element in the input's dtype, sums in float64) and return the mergeable partial sums directly.
The tests hold them to torch's single-pass result for every reduction and option.
"""

from __future__ import annotations

import numpy as np

from ..reduce import Partial
from ._common import check_classes, check_weight


def _rows(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, d...) -> (N * d..., C) rows with classes last, and the matching flat targets."""
    if x.ndim > 2:
        x = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    return x, t.reshape(-1)


def index_partial(x: np.ndarray, t: np.ndarray, weight: np.ndarray | None, *, ignore_index: int,
                  label_smoothing: float, input_kind: str) -> Partial:
    """Partial sums of CE (input_kind 'logits') or NLL ('log_probs', 'probs') over one chunk of rows."""
    n_classes = x.shape[1]
    check_weight(weight, n_classes)
    batch = x.shape[0]
    ignored = check_classes("target", t, n_classes, ignore_index)
    x, t = _rows(x, t)
    keep = t != ignore_index
    tt = np.where(keep, t, 0)
    rows = np.arange(x.shape[0])
    picked = x[rows, tt]
    if input_kind == "logits":
        m = x.max(axis=1, keepdims=True)
        m[~np.isfinite(m)] = 0  # a fully masked row: let it come out as torch does (inf or nan), not warn here
        z = np.subtract(x, m)
        np.exp(z, out=z)
        with np.errstate(divide="ignore", invalid="ignore"):
            lse = np.log(z.sum(axis=1)) + m[:, 0]
            logp_t = picked - lse
    elif input_kind == "log_probs":
        lse = None
        logp_t = picked
    else:
        with np.errstate(divide="ignore"):
            logp_t = np.log(picked)
        lse = None
    logp_t = np.where(keep, logp_t, 0.0)  # an ignored target costs 0 even where its stand-in class is masked
    w_t = weight[tt].astype(np.float64) if weight is not None else np.ones(len(tt))
    w_t[~keep] = 0.0
    loss = -(1.0 - label_smoothing) * w_t * logp_t.astype(np.float64)
    if label_smoothing:
        # sum_c w_c * log p_c, without materialising log p: sum_c w_c x_c - lse * sum_c w_c for logits.
        wc = weight.astype(np.float64) if weight is not None else np.ones(n_classes)
        if input_kind == "logits":
            smooth = x.astype(np.float64) @ wc - lse.astype(np.float64) * wc.sum()
        elif input_kind == "log_probs":
            smooth = x.astype(np.float64) @ wc
        else:
            with np.errstate(divide="ignore"):
                smooth = np.log(x).astype(np.float64) @ wc
        loss -= np.where(keep, smooth, 0.0) * (label_smoothing / n_classes)
    return Partial(total=float(loss.sum()), denominator=float(w_t.sum()), count=int(t.size), ignored=ignored,
                   rows=int(batch))
