"""Reference losses to read a loss against: a uniform guess, the best constant guess, and the least reachable loss.

Every classification loss here is a weighted sum of `-log p` terms (CE, NLL, perplexity, BCE) or of a focal
variant of them, divided by a denominator that does not depend on the prediction. Written that way:

    CE, index targets:  L(P) = sum_n sum_c b_{y_n, c} * (-log p_{n,c}) / D
        b_{y, c} = (1 - eps) * w_y * [c = y] + eps * w_c / C,  D = sum over kept targets of w_{y_n}
        (torch: (1 - eps) * nll + eps / C * sum_c -w_c log p_c, the smoothing part also divided by D)
    CE, probability targets q:  b_{n, c} = w_c * ((1 - eps) q_{n,c} + eps / C),  D = number of samples
    BCE:  L(p) = sum_e [a_e * (-log p_e) + b_e * (-log(1 - p_e))] / E,  a_e = w_e * pw_e * y_e,  b_e = w_e (1 - y_e)

- uniform: all-zero logits, p_c = 1/C (p = 1/2 for BCE): L = ln C * sum_{n,c} b_{n,c} / D.
- prior: one distribution p for every sample. L(p) = -sum_c a_c log p_c / D with a_c = sum_n b_{n,c} >= 0;
  by Gibbs' inequality the minimum over the simplex is at p_c = a_c / sum_c a_c. Without weights or smoothing
  a_c counts class c, so p is the class frequencies and L their entropy. With weights p_c is proportional to
  (1 - eps) w_c n_c + eps N w_c / C (weighted frequencies, mixed with the weights themselves).
  For BCE, per column j (the last axis; a 1-D target is one column): p_j = A_j / (A_j + B_j), the
  (pos_weight-, weight-)weighted positive rate, A_j = sum over the column of a_e, B_j of b_e.
- floor: the least any prediction can reach. Each sample is minimised alone (D does not depend on p):
  p_{n,c} = b_{n,c} / sum_c b_{n,c}, the smoothed target tilted by the class weights (the smoothed target itself
  without weights), and L = sum_n -sum_c b_{n,c} log(b_{n,c} / B_n) / D. Reported for CE with label smoothing or
  probability targets and for BCE with targets strictly between 0 and 1: elsewhere it is 0.
- focal losses have no closed form: see sanity_focal.

All values use reduction mean and are divided by `scale` (ln 2 turns nats into bits). 0 log 0 = 0 throughout,
so a class that no target has gets prior probability 0 (logit -inf), which costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ShapeError, UsageError, ValueRangeError
from .losses._common import check_classes, check_range, check_unit_interval, check_weight
from .registry import flag
from .sanity_focal import focal_index, focal_sigmoid, focal_sigmoid_counts

KINDS = ("ce", "bce", "focal_sigmoid", "focal_index")
AT_CHANCE_RTOL = 0.01


def baselines(kind: str, *, target, n_classes: int | None = None, weight=None, ignore_index: int = -100,
              label_smoothing: float = 0.0, pos_weight=None, bce_weight=None, alpha: float = 0.25,
              gamma: float = 2.0, scale: float = 1.0, target_kind: str = "index") -> dict[str, float]:
    """{"uniform": .., "prior": .. [, "floor": ..]} for the mean loss, in the result's unit (nats / scale).

    kind: "ce" (also nll and perplexity: take exp of the values for perplexity), "bce", "focal_sigmoid",
    "focal_index". target: class indices (N, d...) for ce/focal_index, or for ce with target_kind="prob"
    probabilities (C) or (N, C, d...) with classes on axis 1; 0/1 labels (or probabilities) for bce/focal_sigmoid.
    weight: per-class weights (C,) of ce/focal_index; bce_weight and pos_weight: BCE's, broadcast to the target
    (pos_weight along the last axis). alpha and gamma are the focal options (alpha < 0 disables alpha).
    """
    values, _ = _solve(kind, target=target, n_classes=n_classes, weight=weight, ignore_index=ignore_index,
                       label_smoothing=label_smoothing, pos_weight=pos_weight, bce_weight=bce_weight, alpha=alpha,
                       gamma=gamma, target_kind=target_kind)
    return {name: v / scale for name, v in values.items()}


def baselines_of_counts(kind: str, counts, *, weight=None, label_smoothing: float = 0.0, alpha: float = 0.25,
                        gamma: float = 2.0, scale: float = 1.0) -> dict[str, float]:
    """baselines() for class-index targets given only their class counts (the targets not ignored): CE's and
    the multi-class focal loss's baselines depend on nothing else, so a streamed run needs O(C) memory for them."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() == 0:
        raise ValueRangeError("every target is --ignore-index: there is no baseline", option="--target")
    w = _class_weight(weight, counts.size)
    if kind == "focal_index":
        values, _ = focal_index(counts, w, alpha, gamma)
    else:
        check_unit_interval("label_smoothing", label_smoothing)
        values, _ = _index_log_loss(counts, w, label_smoothing)
    return {name: v / scale for name, v in values.items()}


def best_constant(kind: str, **options) -> np.ndarray:
    """The constant prediction behind the prior baseline: a distribution (C,) for ce/focal_index, the
    probability of a positive per column (columns,) for bce/focal_sigmoid. Takes baselines()' options."""
    options.pop("scale", None)
    return _solve(kind, **options)[1]


def ratios(value: float, reference: dict[str, float]) -> dict[str, float]:
    """The loss divided by each baseline (same unit): below 1 beats it. A zero baseline gives inf (or nan at 0)."""
    return {name: (value / b if b else (math.inf if value > 0 else math.nan)) for name, b in reference.items()}


def at_or_above_uniform(value: float, reference: dict[str, float], *, rtol: float = AT_CHANCE_RTOL,
                        shown=None) -> str | None:
    """A note when the loss is no better than chance: at or above the uniform baseline, or within `rtol` (1%)
    below it, since a model 1% better than a uniform guess has learnt next to nothing.

    shown: how the value and the baselines are shown when they are post-processed (perplexity's exp); the note is
    decided on them as given, in the loss's own unit, so that perplexity notes what cross entropy does."""
    uniform = reference.get("uniform")
    if uniform is None or not math.isfinite(value) or value < uniform * (1.0 - rtol):
        return None
    shown = shown or (lambda v: v)
    note = (f"the loss is at or above chance: a uniform prediction scores {shown(uniform):.6g} (the loss is "
            f"{shown(value):.6g})")
    if "prior" in reference:
        note += f"; the best constant prediction scores {shown(reference['prior']):.6g}"
    return note


def chance_note(value: float, reference: dict[str, float], *, rtol: float = AT_CHANCE_RTOL, shown=None) -> str | None:
    """The note of at_or_above_uniform, else one when the loss is no better than the best constant prediction
    (within `rtol` below it): on imbalanced classes that is below uniform, and it is where a model whose final
    bias was set to the class frequencies starts; a trained model there has learnt nothing more."""
    note = at_or_above_uniform(value, reference, rtol=rtol, shown=shown)
    prior = reference.get("prior")
    # a prior of 0 (every target one class) is a perfect constant: any loss is 'no better', which says nothing
    if note or prior is None or prior <= 0 or not math.isfinite(value) or value < prior * (1.0 - rtol):
        return note
    shown = shown or (lambda v: v)
    return (f"the loss is no better than the best constant prediction, which scores {shown(prior):.6g} (the loss is "
            f"{shown(value):.6g}): the predictions say nothing of the targets beyond their class frequencies")


def _solve(kind: str, *, target, n_classes=None, weight=None, ignore_index=-100, label_smoothing=0.0,
           pos_weight=None, bce_weight=None, alpha=0.25, gamma=2.0, target_kind="index"):
    if kind not in KINDS:
        raise UsageError(f"baselines exist for {', '.join(KINDS)}; got {kind!r}")
    target = np.asarray(target)
    if kind in ("ce", "focal_index"):
        if n_classes is None or n_classes < 1:
            raise UsageError(f"{kind} baselines need the number of classes; got {n_classes!r}")
        w = _class_weight(weight, n_classes)
        if kind == "focal_index":
            if gamma < 0:
                raise UsageError(f"must be >= 0; got {gamma}", option="--gamma")
            counts = _class_counts(target, n_classes, ignore_index)
            return focal_index(counts, w, alpha, gamma)
        check_unit_interval("label_smoothing", label_smoothing)
        if target_kind == "prob":
            return _prob_log_loss(prob_sums(target, n_classes, weight=weight, label_smoothing=label_smoothing))
        if target_kind != "index":
            raise UsageError(f"must be index or prob; got {target_kind!r}", option="--target-kind")
        return _index_log_loss(_class_counts(target, n_classes, ignore_index), w, label_smoothing)
    if target.size == 0:
        raise ValueRangeError("is empty: there is no baseline", option="--target")
    check_range("target", target, 0.0, 1.0, "binary targets must be in [0, 1]")
    y = target.astype(np.float64)
    if kind == "focal_sigmoid":
        if gamma < 0:
            raise UsageError(f"must be >= 0; got {gamma}", option="--gamma")
        return focal_sigmoid(label_columns(y), alpha, gamma)
    return _bce(label_sums(y, pos_weight, bce_weight))


def baselines_of_label_sums(kind: str, sums: LabelSums, *, alpha: float = 0.25, gamma: float = 2.0,
                            scale: float = 1.0) -> dict[str, float] | None:
    """baselines() of "bce" or "focal_sigmoid" from LabelSums, so a streamed or many-file run needs O(columns)
    memory for them; None for sigmoid focal with soft labels, whose prior needs every label."""
    if sums.elements == 0:
        raise ValueRangeError("is empty: there is no baseline", option="--target")
    if kind == "focal_sigmoid":
        if sums.soft:
            return None
        values, _ = focal_sigmoid_counts(sums.positives, sums.rows, alpha, gamma)
    else:
        values, _ = _bce(sums)
    return {name: v / scale for name, v in values.items()}


def _class_weight(weight, n_classes: int) -> np.ndarray:
    if weight is None:
        return np.ones(n_classes)
    weight = np.asarray(weight)
    check_weight(weight, n_classes)
    return weight.astype(np.float64)


def _class_counts(target: np.ndarray, n_classes: int, ignore_index: int) -> np.ndarray:
    check_classes("target", target, n_classes, ignore_index)
    kept = target[target != ignore_index].astype(np.int64)
    if kept.size == 0:
        raise ValueRangeError(f"every target is --ignore-index ({ignore_index}): there is no baseline",
                              option="--target")
    return np.bincount(kept.reshape(-1), minlength=n_classes).astype(np.float64)


def _index_log_loss(counts: np.ndarray, w: np.ndarray, eps: float):
    """uniform, prior and floor for index targets in O(C), without the (C, C) rows
    b_{y,c} = (1 - eps) w_y [c = y] + t w_c.

    Row y has B_y = (1 - eps) w_y + t S (t = eps / C, S = sum_c w_c); its floor term is
    -sum_c b_{y,c} log(b_{y,c} / B_y) = -[xlogx(diag_y) + X - xlogx(t w_y) - (diag_y + t S - t w_y) log B_y],
    diag_y = (1 - eps + t) w_y, X = sum_c xlogx(t w_c).
    """
    t = eps / len(w)
    n, s = counts.sum(), w.sum()
    denom = float(counts @ w)
    a = (1.0 - eps) * w * counts + t * w * n
    values, prior = _from_marginal(a, denom)
    if eps > 0:
        big_b = (1.0 - eps) * w + t * s
        diag, off = (1.0 - eps + t) * w, t * w
        with np.errstate(divide="ignore", invalid="ignore"):
            log_b = np.where(big_b > 0, np.log(np.where(big_b > 0, big_b, 1.0)), 0.0)
        h = -(_xlogx(diag) + _xlogx(off).sum() - _xlogx(off) - (diag + t * s - off) * log_b)
        values["floor"] = float(counts @ h) / denom
    return values, prior


@dataclass
class ProbSums:
    """What CE's baselines read of probability targets, as sums that add up over chunks and files: the marginal
    a_c = sum_n b_{n,c}, the samples (torch's mean divides by them) and the floor's numerator."""

    marginal: np.ndarray
    samples: float
    floor: float

    @property
    def width(self) -> tuple[int, ...]:
        return self.marginal.shape

    def __add__(self, other: ProbSums) -> ProbSums:
        return ProbSums(self.marginal + other.marginal, self.samples + other.samples, self.floor + other.floor)


def prob_sums(target: np.ndarray, n_classes: int, *, weight=None, label_smoothing: float = 0.0) -> ProbSums:
    """ProbSums of probability targets (C) or (N, C, d...), classes on axis 1, with CE's class weight and
    label smoothing."""
    check_unit_interval("label_smoothing", label_smoothing)
    rows, samples = _prob_rows(np.asarray(target), n_classes, _class_weight(weight, n_classes), label_smoothing)
    floor = 0.0 - float(_xlogx_ratio(rows, rows.sum(axis=1, keepdims=True)).sum())
    return ProbSums(rows.sum(axis=0), samples, floor)


def baselines_of_prob_sums(sums: ProbSums, *, scale: float = 1.0) -> dict[str, float]:
    """baselines() of CE with probability targets from their ProbSums."""
    values, _ = _prob_log_loss(sums)
    return {name: v / scale for name, v in values.items()}


def _prob_rows(target: np.ndarray, n_classes: int, w: np.ndarray, eps: float):
    """One coefficient row per sample for probability targets; torch's mean divides by the samples, unweighted."""
    q = target.astype(np.float64)
    q = q.reshape(1, -1) if q.ndim == 1 else np.moveaxis(q, 1, -1).reshape(-1, q.shape[1])
    if q.shape[1] != n_classes:
        raise UsageError(f"probability targets have {q.shape[1]} classes, not {n_classes}", option="--target")
    return w[None, :] * ((1.0 - eps) * q + eps / n_classes), float(len(q))


def _xlogx(a: np.ndarray) -> np.ndarray:
    """a * log(a) with 0 log 0 = 0."""
    return _xlogx_ratio(a, 1.0)


def _xlogx_ratio(a: np.ndarray, total) -> np.ndarray:
    """a * log(a / total) with 0 log 0 = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / total), 0.0)


def _from_marginal(a: np.ndarray, denom: float):
    """uniform and prior from a_c = sum_n b_{n,c}: ln C * sum_c a_c / D and -sum_c a_c log(a_c / A) / D."""
    total = a.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {"uniform": math.log(len(a)) * float(total) / denom,
                  "prior": (0.0 - float(_xlogx_ratio(a, total).sum())) / denom}
        return values, a / total


def _prob_log_loss(sums: ProbSums):
    """uniform, prior and floor of L(P) = sum_n sum_c b_{n,c} (-log p_{n,c}) / D, from their sums."""
    values, prior = _from_marginal(sums.marginal, sums.samples)
    values["floor"] = sums.floor / sums.samples
    return values, prior


def _broadcast(role: str, arr, shape: tuple[int, ...]) -> np.ndarray:
    """BCE's weight or pos_weight at the target's shape; pos_weight lines up with the last axis."""
    try:
        return np.broadcast_to(np.asarray(arr, dtype=np.float64), shape)
    except ValueError:
        raise ShapeError(f"shape {np.shape(arr)} does not broadcast to the target's {shape}",
                         option=flag(role)) from None


@dataclass
class LabelSums:
    """What BCE's and sigmoid focal's baselines read of 0/1 (or soft) labels, per label column, as sums that add up
    over the chunks of a stream or the files of a run: a_j and b_j (BCE's weighted positive and negative mass),
    the positives (labels equal to 1), the rows and elements, the floor's numerator and whether a label is soft."""

    pos_mass: np.ndarray
    neg_mass: np.ndarray
    positives: np.ndarray
    rows: int
    elements: int
    floor: float
    soft: bool

    @property
    def width(self) -> tuple[int, ...]:
        return self.pos_mass.shape

    def __add__(self, other: LabelSums) -> LabelSums:
        return LabelSums(self.pos_mass + other.pos_mass, self.neg_mass + other.neg_mass,
                         self.positives + other.positives, self.rows + other.rows, self.elements + other.elements,
                         self.floor + other.floor, self.soft or other.soft)


def label_sums(y: np.ndarray, pos_weight=None, weight=None) -> LabelSums:
    """LabelSums of labels y in [0, 1] (any shape; the last axis holds the columns) with BCE's weight and
    pos_weight broadcast to them."""
    y = np.asarray(y, dtype=np.float64)
    check_range("target", y, 0.0, 1.0, "binary targets must be in [0, 1]")
    # w * pw * y and w * (1 - y), with w and pw multiplied in only where given; b an array even for 0-d y
    a, b = y, np.subtract(1.0, y, out=np.empty_like(y))
    if weight is not None:
        w = _broadcast("weight", weight, y.shape)
        a, b = a * w, np.multiply(b, w, out=b)
    if pos_weight is not None:
        a = a * _broadcast("pos_weight", pos_weight, y.shape)
    a, b = label_columns(a), label_columns(b)
    soft = bool(np.any((y > 0) & (y < 1)))
    floor = 0.0
    if soft:
        both = a + b
        floor = 0.0 - float((_xlogx_ratio(a, both) + _xlogx_ratio(b, both)).sum())
    return LabelSums(a.sum(axis=0), b.sum(axis=0), (label_columns(y) == 1).sum(axis=0).astype(np.float64),
                     a.shape[0], y.size, floor, soft)


def _bce(sums: LabelSums):
    col_a, col_b = sums.pos_mass, sums.neg_mass
    col_total = col_a + col_b
    with np.errstate(divide="ignore", invalid="ignore"):
        p = col_a / col_total
    values = {"uniform": math.log(2.0) * float(col_total.sum()) / sums.elements,
              "prior": (0.0 - float((_xlogx_ratio(col_a, col_total) + _xlogx_ratio(col_b, col_total)).sum()))
              / sums.elements}
    if sums.soft:
        values["floor"] = sums.floor / sums.elements
    return values, p


def label_columns(arr: np.ndarray) -> np.ndarray:
    """BCE's labels as (rows, columns) with the last axis as columns; a 0-d or 1-D array is one column."""
    return arr.reshape(-1, 1) if arr.ndim <= 1 else arr.reshape(-1, arr.shape[-1])
