"""The tutorial's identities as functions that return data (`CheckResult`); they never print.

- decompose: CE = H(target) + KL(target || softmax(logits)), per sample.
- check: CE with index targets = NLL of log_softmax; CE with one-hot targets = CE with indices;
  BCE = two-class NLL; and the decomposition's summary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .api import compute_dtype, gather
from .errors import UsageError
from .losses._common import (
    Context,
    check_classes,
    check_nonempty,
    check_range,
    check_shape,
    check_weight,
    flag,
    floats,
    ints,
)
from .losses.classification import split_classes, target_kind
from .registry import get_loss
from .result import CheckResult, CheckRow

TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-5), np.dtype(np.float64): (1e-10, 1e-10)}


def _close(a: float, b: float, atol: float, rtol: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b  # else |100 - inf| <= rtol * inf would pass: an infinite side matches only itself
    return abs(a - b) <= atol + rtol * abs(b)


def _prepare(sources: Mapping[str, Any], options: Mapping[str, Any], dtype: str, bundle: str | None,
             loss: str = "ce"):
    """Load and validate the arrays as `loss` reads them, so that errors name the option that was given."""
    spec = get_loss(loss)
    loaded = gather(spec, sources, bundle)
    from .api import check_finite, resolve_options

    check_finite(spec, loaded)
    opts = resolve_options(spec, options)
    ctx = Context(dtype=compute_dtype(spec, loaded, dtype), reduction="none")
    arrays = {k: v.array for k, v in loaded.items()}
    return arrays, opts, ctx


def _rows_last(t, axis: int):
    """(N, C, d...) -> (N * d..., C): one row per prediction, classes last."""
    import torch

    return torch.movedim(t, axis, -1).reshape(-1, t.shape[axis]) if t.ndim > 1 else t.reshape(1, -1)


def decompose(*, logits, target, weight=None, target_kind_: str = "auto", label_smoothing: float = 0.0,
              ignore_index: int = -100, dtype: str = "auto", atol: float | None = None,
              rtol: float | None = None, bundle: str | None = None) -> CheckResult:
    """Per sample: CE, the target's entropy H, KL(target || softmax(logits)), and whether CE = H + KL."""
    import torch
    import torch.nn.functional as F

    arrays, opts, ctx = _prepare({"logits": logits, "target": target, "weight": weight},
                                 {"target_kind": target_kind_, "label_smoothing": label_smoothing,
                                  "ignore_index": ignore_index}, dtype, bundle)
    x_np, t_np, w_np = arrays["logits"], arrays["target"], arrays.get("weight")
    check_nonempty("logits", x_np)
    axis, n_classes, index_shape = split_classes(x_np)
    check_weight(w_np, n_classes)
    kind = target_kind(opts["target_kind"], x_np, t_np, index_shape)
    eps = opts["label_smoothing"]
    x = floats(x_np, ctx)
    w = floats(w_np, ctx) if w_np is not None else None
    notes: list[str] = []
    keep = None
    if kind == "index":
        check_shape("target", t_np, index_shape, "--logits", x_np.shape)
        check_classes("target", t_np, n_classes, opts["ignore_index"])
        t = ints(t_np, "target", ctx)
        ce = F.cross_entropy(x, t, weight=w, ignore_index=opts["ignore_index"], reduction="none",
                             label_smoothing=eps)
        keep = (t != opts["ignore_index"]).reshape(-1)
        q = F.one_hot(t.clamp(0, n_classes - 1).reshape(-1), n_classes).to(x.dtype)
        notes.append("class-index targets: the target is one-hot, so H = 0 and CE = KL")
    else:
        check_shape("target", t_np, x_np.shape, "--logits", x_np.shape)
        if kind == "prob":
            check_range("target", t_np, 0.0, None, "probabilities must be >= 0")
        q_t = floats(t_np, ctx)
        if kind == "logits":
            q_t = torch.softmax(q_t, dim=axis)
        ce = F.cross_entropy(x, q_t, weight=w, reduction="none", label_smoothing=eps)
        q = _rows_last(q_t, axis)
    if eps:
        q = q * (1 - eps) + eps / n_classes
        notes.append(f"label smoothing {eps} changes the target to (1 - {eps}) q + {eps}/C: "
                     "H and KL are of that smoothed target")
    logp = torch.log_softmax(_rows_last(x, axis), dim=-1)
    h_terms = torch.special.entr(q)  # -q log q with 0 log 0 = 0, torch's convention
    kl_terms = F.kl_div(logp, q, reduction="none")
    if w is not None:
        h_terms, kl_terms = h_terms * w, kl_terms * w
        notes.append("class weights: CE_w = sum_c w_c q_c (-log p_c) is not H + KL; the form that holds scales "
                     "each class's term: CE_w = H_w + KL_w with H_w = -sum_c w_c q_c log q_c")
    h, kl = h_terms.sum(-1).double(), kl_terms.sum(-1).double()
    ce = ce.reshape(-1).double()
    atol_d, rtol_d = TOLERANCE[np.dtype(ctx.dtype)]
    atol = atol_d if atol is None else atol
    rtol = rtol_d if rtol is None else rtol
    rows = []
    shape = index_shape if x_np.ndim > 1 else ()
    for i in range(ce.numel()):
        if keep is not None and not bool(keep[i]):
            continue
        label = str([int(j) for j in np.unravel_index(i, shape)]) if shape and len(shape) > 1 else str(i)
        c, hh, kk = float(ce[i]), float(h[i]), float(kl[i])
        rows.append(CheckRow(label, c, hh + kk, _close(c, hh + kk, atol, rtol), {"entropy": hh, "kl": kk}))
    if keep is not None and not bool(keep.all()):
        notes.append(f"{int((~keep).sum())} targets equal --ignore-index and are left out")
    return CheckResult("decompose", "CE = H(target) + KL(target || softmax(logits))", "ce", "entropy+kl", rows,
                       atol, rtol, str(ctx.dtype), notes, columns=("entropy", "kl"))


def check(*, logits=None, target=None, probs=None, dtype: str = "auto", atol: float | None = None,
          rtol: float | None = None, bundle: str | None = None) -> list[CheckResult]:
    """Every tutorial identity that applies to the given data; the others come back with `skipped` set."""
    import torch
    import torch.nn.functional as F

    if (logits is None) == (probs is None) and bundle is None:
        raise UsageError("give one of --logits or --probs", option="--logits")
    arrays, _, ctx = _prepare({"logits": logits, "probs": probs, "target": target}, {}, dtype, bundle, loss="nll")
    if "probs" in arrays:
        probs = arrays["probs"]
    x_np, t_np = arrays.get("logits", arrays.get("probs")), arrays["target"]
    check_nonempty("probs" if probs is not None else "logits", x_np)
    atol_d, rtol_d = TOLERANCE[np.dtype(ctx.dtype)]
    atol = atol_d if atol is None else atol
    rtol = rtol_d if rtol is None else rtol
    dt = str(ctx.dtype)
    results = []

    def per_sample(name, statement, left_name, right_name, left, right, notes=()):
        left, right = left.reshape(-1).double(), right.reshape(-1).double()
        rows = [CheckRow(str(i), float(a), float(b), _close(float(a), float(b), atol, rtol))
                for i, (a, b) in enumerate(zip(left, right, strict=True))]
        return CheckResult(name, statement, left_name, right_name, rows, atol, rtol, dt, list(notes))

    def skipped(name, statement, why):
        return CheckResult(name, statement, "left", "right", [], atol, rtol, dt, skipped=why)

    binary = probs is not None or x_np.ndim == 1 or (x_np.ndim == 2 and x_np.shape[1] == 2)
    is_index = t_np.dtype.kind in "iu" or (t_np.ndim == x_np.ndim - 1 and np.all(t_np == np.round(t_np)))
    multi = probs is None and x_np.ndim >= 2
    if multi and is_index:
        axis, n_classes, index_shape = split_classes(x_np)
        if t_np.shape != index_shape:
            raise UsageError(f"class indices must have shape {index_shape} for --logits {x_np.shape}",
                             option="--target")
        check_classes("target", t_np, n_classes, None)
        x, t = floats(x_np, ctx), ints(t_np, "target", ctx)
        ce = F.cross_entropy(x, t, reduction="none")
        nll = F.nll_loss(torch.log_softmax(x, dim=axis), t, reduction="none")
        results.append(per_sample("ce-nll", "CE(logits, index) = NLL(log_softmax(logits), index)", "ce", "nll",
                                  ce, nll))
        onehot = torch.movedim(F.one_hot(t, n_classes).to(x.dtype), -1, axis)
        results.append(per_sample("onehot-index", "CE(logits, one_hot(index)) = CE(logits, index)",
                                  "ce_onehot", "ce_index", F.cross_entropy(x, onehot, reduction="none"), ce))
    else:
        why = "needs (N, C) logits with class-index targets"
        results.append(skipped("ce-nll", "CE(logits, index) = NLL(log_softmax(logits), index)", why))
        results.append(skipped("onehot-index", "CE(logits, one_hot(index)) = CE(logits, index)", why))
    if binary and is_index and set(np.unique(t_np).tolist()) <= {0, 1}:
        role = "probs" if probs is not None else "logits"
        check_shape("target", t_np, x_np.shape[:1] if role == "logits" and x_np.ndim == 2 else x_np.shape,
                    flag(role), x_np.shape)
        if probs is not None:
            check_range("probs", x_np, 0.0, 1.0, "probabilities must be in [0, 1]")
        x = floats(x_np, ctx)
        if probs is not None:
            p1 = x.reshape(-1)
            note = "p = the given probabilities"
        elif x_np.ndim == 1:
            p1 = torch.sigmoid(x)
            note = "p = sigmoid(logits)"
        else:
            p1 = torch.softmax(x, dim=1)[:, 1]
            note = "p = softmax(logits)[:, 1] (two classes)"
        t = ints(t_np, "target", ctx).reshape(-1)
        bce = F.binary_cross_entropy(p1, t.to(x.dtype), reduction="none")
        two = torch.stack([1 - p1, p1], dim=-1)
        nll = F.nll_loss(torch.log(two), t, reduction="none")
        results.append(per_sample("bce-nll", "BCE(p, y) = NLL(log[1 - p, p], y)", "bce", "nll", bce, nll, [note]))
    else:
        results.append(skipped("bce-nll", "BCE(p, y) = NLL(log[1 - p, p], y)",
                               "needs binary data: (N) logits or probabilities, or (N, 2) logits, with 0/1 targets"))
    if multi:
        d = decompose(logits=x_np, target=t_np, dtype=dt, atol=atol, rtol=rtol)
        results.append(d)
    else:
        results.append(skipped("decompose", "CE = H(target) + KL(target || softmax(logits))",
                               "needs (N, C) logits"))
    if "weight" in arrays:
        for r in results:
            r.notes.append("the weight given is not used: these identities are stated without class weights "
                           "(decompose checks the weighted form)")
    return results
