"""The tutorial's identities as functions that return data (`CheckResult`, `CheckReport`); they never print.

- decompose: CE = H(target) + KL(target || softmax(logits)), per sample.
- check: CE with index targets = NLL of log_softmax; CE with one-hot targets = CE with indices;
  BCE = two-class NLL; and the decomposition's summary. torch computes both sides of every identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .command_results import CheckReport, CheckResult, CheckRow
from .errors import UsageError, ValueRangeError
from .losses._common import (
    MODEL_PROBS_TOL,
    Context,
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
from .losses.classification import check_ignore_index_of_probs, split_classes, target_kind_of
from .pipeline import check_denominator, check_finite, compute_dtype, gather, resolve_options
from .reduce import Partial
from .reports import PROBS_FIX, RAW_FIX
from .sanity_lint import lint_logits_are_probs, lint_sigmoid_applied
from .specs import get_loss
from .tolerance import check_tolerances, close

TOLERANCE = {np.dtype(np.float32): (1e-5, 1e-5), np.dtype(np.float64): (1e-10, 1e-10)}
DECOMPOSE = "CE = H(target) + KL(target || softmax(logits))"
CE_NLL = "CE(logits, index) = NLL(log_softmax(logits), index)"
ONEHOT = "CE(logits, one_hot(index)) = CE(logits, index)"
BCE_NLL = "BCE(p, y) = NLL(log[1 - p, p], y)"
CE_GRAD = ("autograd's d CE / d logits = w_y (softmax(x) - onehot(y)) / sum_n w_{y_n}; probability targets: "
           "(softmax(x) - q) / N")
KL_ZERO_NOTE = ("KL counts 0 where the target is 0, as H does (0 log 0 = 0, scipy's rel_entr): torch's kl_div "
                "gives nan there when the logit is -inf (0 * -inf), so `lossctl kl` does")
NEEDS = {"ce-nll": "(N, C) logits with class-index targets", "onehot-index": "(N, C) logits with class-index "
         "targets", "bce-nll": "binary data: (N) or (N, 2) logits or probabilities with (N) 0/1 targets, or "
         "probabilities with a 0/1 label each",
         "decompose": "(N, C) logits", "ce-grad": "(N, C) logits with class-index or probability targets"}


def _prepare(sources: Mapping[str, Any], options: Mapping[str, Any], dtype: str, bundle: str | None,
             loss: str = "ce", *, command: str):
    """Load and validate the arrays as `loss` reads them, so that errors name the option that was given (and a
    missing one `command`, not the loss)."""
    spec = get_loss(loss)
    loaded = gather(spec, sources, bundle, command=command)
    check_finite(spec, loaded)
    opts = resolve_options(spec, options)
    ctx = Context(dtype=compute_dtype(spec, loaded, dtype), reduction="none")
    return {k: v.array for k, v in loaded.items()}, opts, ctx


def _tolerances(dtype, atol: float | None, rtol: float | None) -> tuple[float, float]:
    atol_d, rtol_d = TOLERANCE[np.dtype(dtype)]
    return (atol_d if atol is None else atol), (rtol_d if rtol is None else rtol)


def _rows_last(t, axis: int):
    """(N, C, d...) -> (N * d..., C): one row per prediction, classes last."""
    import torch

    return torch.movedim(t, axis, -1).reshape(-1, t.shape[axis]) if t.ndim > 1 else t.reshape(1, -1)


def _target_distribution(x, t_np, kind: str, opts: dict, axis: int, n_classes: int, w, ctx: Context, notes: list):
    """(CE per sample, the target distribution q as rows, which rows count) for index or probability targets."""
    import torch
    import torch.nn.functional as F

    eps = opts["label_smoothing"]
    if kind == "index":
        check_classes("target", t_np, n_classes, opts["ignore_index"])
        t = ints(t_np, "target", ctx)
        ce = F.cross_entropy(x, t, weight=w, ignore_index=opts["ignore_index"], reduction="none", label_smoothing=eps)
        if not eps:  # smoothing mixes the uniform distribution into the one-hot target: H > 0 then
            notes.append("class-index targets: the target is one-hot, so H = 0 and CE = KL")
        q = F.one_hot(t.clamp(0, n_classes - 1).reshape(-1), n_classes).to(x.dtype)
        return ce, q, (t != opts["ignore_index"]).reshape(-1)
    check_ignore_index_of_probs(opts["ignore_index"])
    if kind == "prob":
        check_range("target", t_np, 0.0, None, "probabilities must be >= 0")
    q_t = floats(t_np, ctx)
    if kind == "logits":
        q_t = torch.softmax(q_t, dim=axis)
    ce = F.cross_entropy(x, q_t, weight=w, reduction="none", label_smoothing=eps)
    return ce, _rows_last(q_t, axis), None


def _entropy_and_kl(x, q, w, axis: int, eps: float, n_classes: int, notes: list):
    """H(q) and KL(q || softmax(x)) per row, with the label smoothing and class weights CE used."""
    import torch
    import torch.nn.functional as F

    if eps:
        q = q * (1 - eps) + eps / n_classes
        notes.append(f"label smoothing {eps} changes the target to (1 - {eps}) q + {eps}/C: "
                     "H and KL are of that smoothed target")
    logp = torch.log_softmax(_rows_last(x, axis), dim=-1)
    h_terms = torch.special.entr(q)  # -q log q with 0 log 0 = 0, torch's convention
    kl_terms = F.kl_div(logp, q, reduction="none")
    zero_mass = (q == 0) & kl_terms.isnan()
    if bool(zero_mass.any()):
        # kl_div computes q log q - q log p, so q = 0 at a -inf logit (a mask) is 0 * -inf = nan
        kl_terms = kl_terms.masked_fill(zero_mass, 0.0)
        notes.append(KL_ZERO_NOTE)
    if w is not None:
        h_terms, kl_terms = h_terms * w, kl_terms * w
        notes.append("class weights: CE_w = sum_c w_c q_c (-log p_c) is not H + KL; the form that holds scales "
                     "each class's term: CE_w = H_w + KL_w with H_w = -sum_c w_c q_c log q_c")
    return h_terms.sum(-1).double(), kl_terms.sum(-1).double()


def decompose(*, logits, target, weight=None, target_kind: str = "auto", label_smoothing: float = 0.0,
              ignore_index: int = -100, dtype: str = "auto", atol: float | None = None,
              rtol: float | None = None, bundle: str | None = None) -> CheckResult:
    """Per sample: CE, the target's entropy H, KL(target || softmax(logits)), and whether CE = H + KL."""
    check_tolerances(atol=atol, rtol=rtol)
    arrays, opts, ctx = _prepare({"logits": logits, "target": target, "weight": weight},
                                 {"target_kind": target_kind, "label_smoothing": label_smoothing,
                                  "ignore_index": ignore_index}, dtype, bundle, command="decompose")
    x_np, t_np, w_np = arrays["logits"], arrays["target"], arrays.get("weight")
    check_nonempty("logits", x_np)
    check_unit_interval("label_smoothing", opts["label_smoothing"])
    axis, n_classes, index_shape = split_classes(x_np)
    check_weight(w_np, n_classes)
    kind = target_kind_of(opts["target_kind"], x_np, t_np, index_shape)
    check_shape("target", t_np, index_shape if kind == "index" else x_np.shape, "--logits", x_np.shape)
    x = floats(x_np, ctx)
    w = floats(w_np, ctx) if w_np is not None else None
    notes: list[str] = []
    if kind == "prob":  # as ce warns: H and KL are an entropy and a divergence only of rows that sum to 1
        unnormalised = row_sum_warning("target", np.asarray(t_np), axis, sum_tolerance(ctx.dtype),
                                       then="; the identity still holds, but H and KL are not an entropy and a "
                                            "divergence")
        notes += [unnormalised] if unnormalised else []
    ce, q, keep = _target_distribution(x, t_np, kind, opts, axis, n_classes, w, ctx, notes)
    if keep is not None and not bool(keep.any()):  # as ce refuses the mean of nothing; a check of nothing never passes
        raise ValueRangeError(f"all {keep.numel()} targets equal --ignore-index: no sample is left to check; check "
                              "the targets or --ignore-index", option="--target")
    h, kl = _entropy_and_kl(x, q, w, axis, opts["label_smoothing"], n_classes, notes)
    atol, rtol = _tolerances(ctx.dtype, atol, rtol)
    rows = _decompose_rows(ce.reshape(-1).double(), h, kl, keep, index_shape if x_np.ndim > 1 else (), atol, rtol)
    notes += _masked_nan_notes(ce.reshape(-1), h + kl) if kind != "index" else []
    if keep is not None and not bool(keep.all()):
        notes.append(f"{int((~keep).sum())} targets equal --ignore-index and are left out")
    # as ce warns; the identity holds either way, but of the softmax of probabilities
    return CheckResult("decompose", DECOMPOSE, "ce", "entropy+kl", rows, atol, rtol, str(ctx.dtype), notes,
                       columns=("entropy", "kl"), warnings=lint_logits_are_probs(x_np, fix=RAW_FIX))


def _decompose_rows(ce, h, kl, keep, shape: tuple[int, ...], atol: float, rtol: float) -> list[CheckRow]:
    rows = []
    for i in range(ce.numel()):
        if keep is not None and not bool(keep[i]):
            continue
        label = str([int(j) for j in np.unravel_index(i, shape)]) if len(shape) > 1 else str(i)
        c, hh, kk = float(ce[i]), float(h[i]), float(kl[i])
        rows.append(CheckRow(label, c, hh + kk, close(c, hh + kk, atol, rtol), {"entropy": hh, "kl": kk}))
    return rows


def _per_sample(name: str, statement: str, names: tuple[str, str], left, right, tol: tuple[float, float],
                dtype: str, notes=()) -> CheckResult:
    left, right = left.reshape(-1).double(), right.reshape(-1).double()
    rows = [CheckRow(str(i), float(a), float(b), close(float(a), float(b), *tol))
            for i, (a, b) in enumerate(zip(left, right, strict=True))]
    return CheckResult(name, statement, names[0], names[1], rows, tol[0], tol[1], dtype, list(notes))


def _index_checks(x_np, t_np, ctx: Context, tol) -> list[CheckResult]:
    """CE = NLL of log_softmax, and one-hot targets = index targets, on (N, C[, d...]) logits."""
    import torch
    import torch.nn.functional as F

    axis, n_classes, index_shape = split_classes(x_np)
    if t_np.shape != index_shape:
        raise UsageError(f"class indices must have shape {index_shape} for --logits {x_np.shape}", option="--target")
    check_classes("target", t_np, n_classes, None)
    x, t = floats(x_np, ctx), ints(t_np, "target", ctx)
    ce = F.cross_entropy(x, t, reduction="none")
    nll = F.nll_loss(torch.log_softmax(x, dim=axis), t, reduction="none")
    onehot = torch.movedim(F.one_hot(t, n_classes).to(x.dtype), -1, axis)
    ce_onehot = F.cross_entropy(x, onehot, reduction="none")
    dt = str(ctx.dtype)
    return [_per_sample("ce-nll", CE_NLL, ("ce", "nll"), ce, nll, tol, dt),
            _per_sample("onehot-index", ONEHOT, ("ce_onehot", "ce_index"), ce_onehot, ce, tol, dt,
                        _masked_nan_notes(ce_onehot, ce, "; the index form never reads that class"))]


def _masked_nan_notes(torch_side, other, why: str = "") -> list[str]:
    """Why torch's probability-target CE is nan where the other side is not: the identity fails in torch, and
    lossctl says so rather than change torch's number."""
    bad = (torch_side.isnan() & ~other.isnan()).reshape(-1)
    if not bool(bad.any()):
        return []
    n = int(bad.sum())
    rows = ", ".join(str(int(i)) for i in bad.nonzero().reshape(-1)[:5]) + (", ..." if n > 5 else "")
    return [f"torch's CE with probability targets is nan on {n} of {bad.numel()} rows ({rows}): it multiplies "
            f"before it sums, so a -inf logit (a mask) where the target is 0 gives 0 * -inf = nan{why}; "
            "`lossctl ce` with these targets gives the same nan"]


def _binary_check(x_np, t_np, probs_given: bool, ctx: Context, tol) -> CheckResult:
    """BCE(p, y) = NLL(log[1 - p, p], y), with p the probabilities, sigmoid(logits) or softmax(logits)[:, 1]."""
    import torch
    import torch.nn.functional as F

    role = "probs" if probs_given else "logits"
    if x_np.shape == (2,) and t_np.ndim == 0:  # one two-class sample with its label, as ce and nll read it
        x_np, t_np = x_np.reshape(1, 2), t_np.reshape(1)
    # (N, 2) scores with (N) labels are two classes; probabilities of the labels' shape are one per label
    two_class = x_np.ndim == 2 and x_np.shape[1] == 2 and (not probs_given or t_np.shape == x_np.shape[:1])
    check_shape("target", t_np, x_np.shape[:1] if two_class else x_np.shape, flag(role), x_np.shape)
    if probs_given:
        check_range("probs", x_np, 0.0, 1.0, "probabilities must be in [0, 1]")
    x = floats(x_np, ctx)
    if probs_given and two_class:
        p1, note = x[:, 1], "p = probs[:, 1] (two classes: the tutorial's rows [1 - p, p])"
        unnormalised = row_sum_warning("probs", np.asarray(x_np), 1, MODEL_PROBS_TOL,
                                       then="; both sides read column 1 only, as 1 - p and p")
        note += f"; {unnormalised}" if unnormalised else ""
    elif probs_given:
        p1, note = x.reshape(-1), "p = the given probabilities"
    elif x_np.ndim == 1:
        p1, note = torch.sigmoid(x), "p = sigmoid(logits)"
    else:
        p1, note = torch.softmax(x, dim=1)[:, 1], "p = softmax(logits)[:, 1] (two classes)"
    t = ints(t_np, "target", ctx).reshape(-1)
    bce = F.binary_cross_entropy(p1, t.to(x.dtype), reduction="none")
    nll = F.nll_loss(torch.log(torch.stack([1 - p1, p1], dim=-1)), t, reduction="none")
    return _per_sample("bce-nll", BCE_NLL, ("bce", "nll"), bce, nll, tol, str(ctx.dtype), [note])


def check(*, logits=None, target=None, probs=None, weight=None, dtype: str = "auto", atol: float | None = None,
          rtol: float | None = None, bundle: str | None = None) -> CheckReport:
    """Every tutorial identity that applies to the given data; the others come back with `skipped` set.

    Data on which no identity applies is a usage error: a check that checked nothing has not passed.
    """
    check_tolerances(atol=atol, rtol=rtol)
    if (logits is None) == (probs is None) and bundle is None:
        raise UsageError("give one of --logits or --probs", option="--logits")
    arrays, _, ctx = _prepare({"logits": logits, "probs": probs, "target": target, "weight": weight}, {}, dtype,
                              bundle, loss="nll", command="check")
    probs_given = "probs" in arrays
    x_np, t_np = arrays.get("logits", arrays.get("probs")), arrays["target"]
    check_nonempty("probs" if probs_given else "logits", x_np)
    ignored = np.flatnonzero(np.asarray(t_np) == -100)
    if ignored.size:  # the identities compare every sample's two sides: an ignored one has neither
        raise UsageError(f"holds -100, torch's ignore_index, at index {ignored[0]}; check's identities compare every "
                         "sample, so leave the ignored ones out (ce and decompose take --ignore-index)",
                         option="--target")
    tol = _tolerances(ctx.dtype, atol, rtol)
    # (C) logits with one class index, or with a (C) distribution that is no 0/1 labels, are one unbatched sample,
    # as ce reads them; (N) logits with 0/1 labels are binary
    labels01 = set(np.unique(t_np).tolist()) <= {0, 1}
    unbatched = not probs_given and x_np.ndim == 1 and (t_np.ndim == 0 or (t_np.shape == x_np.shape and not labels01))
    multi = not probs_given and (x_np.ndim >= 2 or unbatched)
    binary = probs_given or (x_np.ndim == 1 and not unbatched) or (x_np.ndim <= 2 and x_np.shape[-1:] == (2,))
    # whole-number floats are class indices (or 0/1 labels) where their shape says so, as the losses read them
    index_shape = (t_np.ndim == x_np.ndim - 1 or (binary and t_np.shape == x_np.shape[:1])
                   or (probs_given and t_np.shape == x_np.shape))  # a 0/1 label per probability
    # integers of the logits' shape are one-hot rows: probabilities, as `lossctl ce` reads them
    is_index = index_shape and (t_np.dtype.kind in "iub" or bool(np.all(t_np == np.round(t_np))))
    found: dict[str, CheckResult] = {}
    if multi and is_index:
        found.update((c.name, c) for c in _index_checks(x_np, t_np, ctx, tol))
    if binary and is_index and labels01:
        found["bce-nll"] = _binary_check(x_np, t_np, probs_given, ctx, tol)
    if multi:
        found["decompose"] = decompose(logits=x_np, target=t_np, dtype=str(ctx.dtype), atol=tol[0], rtol=tol[1])
    if multi and (is_index or t_np.shape == x_np.shape):
        found["ce-grad"] = ce_gradient_check(x_np, t_np, arrays.get("weight"), is_index, ctx, tol)
    if not found:
        needs = "; ".join(f"{name} needs {what}" for name, what in NEEDS.items())
        raise UsageError(f"no identity applies to --{'probs' if probs_given else 'logits'} {x_np.shape} with "
                         f"--target {t_np.shape}: {needs}", option="--target")
    statements = {"ce-nll": CE_NLL, "onehot-index": ONEHOT, "bce-nll": BCE_NLL, "decompose": DECOMPOSE,
                  "ce-grad": CE_GRAD}
    results = [found.get(name) or CheckResult(name, statements[name], "left", "right", [], *tol, str(ctx.dtype),
                                              skipped=f"needs {NEEDS[name]}") for name in NEEDS]
    if "weight" in arrays:
        for r in (r for r in results if r.name != "ce-grad"):
            r.notes.append("the weight given is not used: these identities are stated without class weights "
                           "(`lossctl decompose --weight` checks the weighted form of CE = H + KL)")
    for r in results:
        r.warnings = []  # decompose's input lints: the report says them once, for the whole data
    return CheckReport(results, warnings=_check_lints(x_np, probs_given, multi, binary))


def _check_lints(x_np, probs_given: bool, multi: bool, binary: bool) -> list[str]:
    """The input lints of ce and bce on check's logits; --probs takes binary rows, (N, 2) or (N), as they are."""
    if probs_given:
        return []
    if multi:
        return lint_logits_are_probs(x_np, fix=PROBS_FIX if binary else RAW_FIX)
    return lint_sigmoid_applied(x_np, fix=PROBS_FIX)


# --- the gradient of cross entropy ---------------------------------------------------------------------------

def ce_gradient_closed_form(x, q, w, axis: int, denominator):
    """d mean CE / d logits written out: (softmax(x) sum_c w_c q_c - w q) / denominator, per element.

    x: logits (N, C, d...); q: the target distribution in x's shape (one-hot for class indices); w: class weights
    (C) or None. For index targets sum_c w_c q_c = w_y, so this is w_y (softmax(x) - onehot(y)); for probability
    rows summing to 1 without weights, softmax(x) - q. The denominator is the mean's: sum_n w_{y_n} for index
    targets, the number of predictions N * d... for probability targets.
    """
    import torch

    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    wq = q if w is None else q * w.reshape(shape)
    return (torch.softmax(x, dim=axis) * wq.sum(dim=axis, keepdim=True) - wq) / denominator


def ce_gradient_check(x_np, t_np, w_np, is_index: bool, ctx: Context, tol) -> CheckResult:
    """autograd's gradient of torch's mean CE against the closed form, one row per prediction (its worst class)."""
    import torch
    import torch.nn.functional as F

    axis, n_classes, _ = split_classes(x_np)
    check_weight(w_np, n_classes)
    w = floats(w_np, ctx) if w_np is not None else None
    x = floats(x_np, ctx).clone().requires_grad_(True)
    if is_index:
        check_classes("target", t_np, n_classes, None)
        t = ints(t_np, "target", ctx)
        q = torch.movedim(F.one_hot(t, n_classes).to(x.dtype), -1, axis)
        denominator = w[t].sum() if w is not None else t.numel()
        if w is not None:  # weights summing to 0 over the targets: refused as `lossctl ce` refuses them
            total = float(F.cross_entropy(x.detach(), t, weight=w, reduction="sum"))
            check_denominator(Partial(total, float(denominator), t.numel()), "mean", "targets")
    else:
        t = q = floats(t_np, ctx)
        denominator = x.numel() // n_classes
    F.cross_entropy(x, t, weight=w).backward()
    closed = ce_gradient_closed_form(x.detach(), q, w, axis, denominator)
    rows = gradient_rows(_rows_last(x.grad, axis), _rows_last(closed, axis), *tol)
    notes = [] if is_index else ["probability targets: the closed form is (softmax(x) sum_c w_c q_c - w q) / N, "
                                 "softmax(x) - q over N for rows of q summing to 1 without weights"]
    if w is not None and not is_index:
        notes.append("class weights with probability targets: torch's mean still divides by N")
    return CheckResult("ce-grad", CE_GRAD, "autograd", "closed_form", rows, *tol, str(ctx.dtype), notes)


def gradient_rows(auto, closed, atol: float, rtol: float) -> list[CheckRow]:
    """One row per prediction: both gradients at the class where they differ most; ok when every class agrees."""
    auto, closed = auto.detach().double(), closed.detach().double()
    residual = (auto - closed).abs()
    ok = (residual <= atol + rtol * closed.abs()).all(dim=-1)
    worst = residual.argmax(dim=-1)
    rows = []
    for i in range(auto.shape[0]):
        j = int(worst[i])
        rows.append(CheckRow(f"{i}", float(auto[i, j]), float(closed[i, j]), bool(ok[i]), {"class": float(j)}))
    return rows
