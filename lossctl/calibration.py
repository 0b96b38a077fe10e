"""Calibration error (ECE, RMSCE, MCE) as torchmetrics defines it, in NumPy, from mergeable per-bin sums.

Three steps, like a loss: `calibration_inputs` turns scores and targets into one confidence and one 0/1 outcome
per sample; `calibration_partial` sums them per bin (chunks, files and shards add their partials);
`finish_calibration` divides and applies the norm. Every sum is float64. Nothing here imports torch.

Binning follows torchmetrics' `_binning_bucketize`: `torch.bucketize(confidence, edges, right=True) - 1`, so a bin
is [lower, upper) and a confidence on an edge belongs to the bin above it. A confidence equal to the last edge
(exactly 1.0) lands one past the last bin: torchmetrics keeps that slot (its per-bin arrays have bins + 1
entries), so those samples form a bin of their own, [1, 1]; so do they here. MulticlassCalibrationError casts
the confidences to float32 (.float()), so the bin of a multiclass confidence is decided in float32 here too: a
float32 0.7 (0.69999999) is on the 0.7 edge, as there. BinaryCalibrationError compares the scores in their own
dtype, so a binary confidence is decided in the dtype it was computed in: float64 p = 1 - 1e-9 stays in the last
bin, as there, where float32 would make it 1.0. The sums stay float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .calibration_result import CalibrationResult
from .errors import ShapeError, UsageError, ValueRangeError
from .losses._common import MODEL_PROBS_TOL, at_index, check_choice, check_classes, check_nonempty, row_sum_warning

TASKS = ("auto", "binary", "multiclass")
NORMS = ("l1", "l2", "max")
NO_SAMPLES = "no samples: the calibration error is undefined"


def calibration_inputs(*, logits=None, probs=None, target, task: str = "auto", ignore_index: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-sample (confidence, correct, task): float64 confidence in [0, 1] and a bool outcome.

    multiclass: (N, C) or (N, C, d...) scores with (N) or (N, d...) class indices. confidence = max softmax (or
    max probability), correct = argmax == target; ties go to the first maximum, as torch.argmax.
    binary: scores and 0/1 targets of one shape. As torchmetrics' BinaryCalibrationError: confidence = p (the
    sigmoid of a logit) and the "accuracy" is the target itself; not the top label (p = 0.1 with target 0 counts
    as confidence 0.1 and accuracy 0, not as 0.9 and 1).
    auto: 1-d scores with 1-d targets are binary; scores with one more axis than the targets are multiclass.
    ignore_index: samples whose target equals it are left out, as torchmetrics' ignore_index drops them before
    anything is computed (default None: none, as there).
    Unlike torchmetrics, which applies softmax/sigmoid only when some score lies outside [0, 1], logits are
    always normalised and probabilities never are.
    """
    role, scores = _scores(logits, probs)
    target = np.asarray(target)
    task = _task_of(task, scores, target)
    _check_whole(target)
    if task == "binary":
        if target.shape != scores.shape:
            raise ShapeError(f"shape {target.shape} does not match --{role} {scores.shape}; binary calibration needs "
                             "one 0/1 target per score", option="--target")
        keep = _kept(target, 2, ignore_index)
        confidence = _sigmoid(scores) if role == "logits" else scores
        return confidence.ravel()[keep], target.ravel()[keep] == 1, task
    if scores.ndim < 2:
        raise ShapeError(f"shape {scores.shape} is not (N, C): multiclass calibration needs a score per class; 1-d "
                         "scores of p(class 1) are binary (--task binary, or auto)", option=f"--{role}")
    expected = scores.shape[:1] + scores.shape[2:]
    if target.shape != expected:
        last = scores.ndim > 2 and scores.shape[:-1] == target.shape  # Hugging Face's (N, L, C)
        raise ShapeError(f"shape {target.shape} does not match --{role} {scores.shape}; multiclass calibration "
                         f"needs (N, C) scores and (N) class indices, so expected {expected}"
                         + ("; for classes on the last axis pass --class-axis -1" if last else ""), option="--target")
    n_classes = scores.shape[1]
    keep = _kept(target, n_classes, ignore_index)
    rows = np.moveaxis(scores, 1, -1).reshape(-1, n_classes)[keep]
    predicted = rows.argmax(axis=1)
    if role == "logits":
        # The largest softmax probability is exp(0) / sum(exp(x - max)).
        confidence = 1.0 / np.exp(rows - rows.max(axis=1, keepdims=True)).sum(axis=1)
    else:
        confidence = rows[np.arange(rows.shape[0]), predicted]
    return confidence, predicted == target.ravel()[keep], task


def _kept(target: np.ndarray, n_classes: int, ignore_index: int | None) -> np.ndarray:
    """Which of the flattened targets count: every one in [0, n_classes) or the error, bar --ignore-index's."""
    flat = target.ravel()
    try:
        check_classes("target", target, n_classes, ignore_index)
    except ValueRangeError as exc:
        if ignore_index is not None:
            raise
        # padding (-100) and segmentation's void (255) are the usual: torchmetrics drops them with ignore_index
        v = int(flat[(flat < 0) | (flat >= n_classes)][0])  # a whole number: _check_whole came first
        raise ValueRangeError(f"{exc.message}; if {v} marks targets to leave out (padding), pass --ignore-index {v}, "
                              "as torchmetrics' ignore_index", option=exc.option, source=exc.source) from None
    return flat != ignore_index if ignore_index is not None else np.ones(flat.shape, dtype=bool)


def probability_warnings(probs) -> list[str]:
    """Multiclass probability rows (axis 1) that do not sum to 1, naming the worst row and its sum.

    Tolerance MODEL_PROBS_TOL (1e-2: half-precision outputs). torchmetrics takes such rows as they are; so does lossctl.
    """
    probs = np.asarray(probs)
    if probs.ndim < 2 or probs.size == 0:
        return []
    warning = row_sum_warning("probs", probs, 1, MODEL_PROBS_TOL)
    return [warning + "; the confidence is the largest value as given, not renormalised"] if warning else []


def _scores(logits, probs) -> tuple[str, np.ndarray]:
    if (logits is None) == (probs is None):
        given = logits is not None
        raise UsageError("give either --logits or --probs, not both" if given else "needs --logits or --probs",
                         option="--logits" if given else "--probs")
    role, scores = ("logits", logits) if logits is not None else ("probs", probs)
    scores = np.asarray(scores)
    check_nonempty(role, scores)
    if scores.dtype.kind not in "fiub":
        raise ValueRangeError(f"must be numbers; got dtype {scores.dtype}", option=f"--{role}")
    scores = scores.astype(np.float64)
    _check_range(role, scores, -math.inf if role == "logits" else 0.0, math.inf if role == "logits" else 1.0)
    return role, scores


def _check_range(role: str, arr: np.ndarray, lo: float, hi: float) -> None:
    """Finite (for logits) or in [lo, hi] (for probabilities); NaN fails both."""
    inside = np.isfinite(arr) if math.isinf(lo) else (arr >= lo) & (arr <= hi)
    bad = np.flatnonzero(~inside)
    if bad.size:
        what = "must be finite" if math.isinf(lo) else f"must be probabilities in [{lo:g}, {hi:g}]"
        raise ValueRangeError(f"{what}; found {arr.flat[bad[0]].item()!r}{at_index(arr, bad[0])}",
                              option=f"--{role}")


def _check_whole(target: np.ndarray) -> None:
    if target.dtype.kind not in "fiub":
        raise ValueRangeError(f"must be class indices; got dtype {target.dtype}", option="--target")
    if target.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(target) | (target != np.round(target)))
        if bad.size:
            raise ValueRangeError(f"class indices must be integers; found {target.flat[bad[0]].item()!r}"
                                  f"{at_index(target, bad[0])}", option="--target")


def task_by_ndim(task: str, scores: int, target: int) -> str | None:
    """The task that scores and targets of these numbers of axes are: `task` where they fit it, binary (1-d both)
    or multiclass (scores of one more axis, at least 2) for auto; None where they are neither."""
    fits = {"binary": scores == target, "multiclass": scores >= 2 and scores == target + 1}
    if task in fits:
        return task if fits[task] else None
    return "binary" if fits["binary"] and scores == 1 else "multiclass" if fits["multiclass"] else None


def _task_of(task: str, scores: np.ndarray, target: np.ndarray) -> str:
    check_choice("task", task, TASKS)
    if task != "auto":
        return task
    found = task_by_ndim(task, scores.ndim, target.ndim)
    if found is not None:
        return found
    raise ShapeError(f"shape {target.shape} with scores {scores.shape} is neither binary (1-d scores and targets) "
                     "nor multiclass ((N, C) scores, (N) targets); name the task", option="--target")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-x))) neither overflows nor loses the small probabilities of very negative logits.
    return np.exp(-np.logaddexp(0.0, -x))


@dataclass
class CalibrationPartial:
    """Mergeable per-bin float64 sums for one chunk, file or shard.

    edges: bins + 1 ascending floats from 0 to 1. count, conf_sum, acc_sum: one entry per bin plus the slot for
    confidences equal to the last edge (exactly 1.0), which torchmetrics also keeps apart; so len(edges) entries.
    Partials add only when their edges are identical: equal-width bins always are; quantile edges come from one
    data set's confidences, so partials of other data cannot share them.
    """

    edges: np.ndarray
    count: np.ndarray
    conf_sum: np.ndarray
    acc_sum: np.ndarray
    binning: str = "uniform"

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    def __add__(self, other: CalibrationPartial) -> CalibrationPartial:
        if self.binning != other.binning or not np.array_equal(self.edges, other.edges):
            raise UsageError(f"cannot add calibration sums over different bins ({self.n_bins} {self.binning} and "
                             f"{other.n_bins} {other.binning})", option="--bins")
        return CalibrationPartial(self.edges.copy(), self.count + other.count, self.conf_sum + other.conf_sum,
                                  self.acc_sum + other.acc_sum, self.binning)

    def to_dict(self) -> dict:
        return {"binning": self.binning, "edges": self.edges.tolist(), "count": self.count.tolist(),
                "conf_sum": self.conf_sum.tolist(), "acc_sum": self.acc_sum.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> CalibrationPartial:
        edges = _checked_edges(np.asarray(d["edges"], dtype=np.float64))
        arrays = [np.asarray(d[k], dtype=dt) for k, dt in (("count", np.int64), ("conf_sum", np.float64),
                                                            ("acc_sum", np.float64))]
        if any(a.shape != edges.shape for a in arrays):
            raise ShapeError(f"calibration sums need {len(edges)} entries each (bins + 1)", option="--bins")
        return cls(edges, *arrays, binning=str(d.get("binning", "uniform")))


def uniform_edges(bins: int) -> np.ndarray:
    """Equal-width edges i / bins, each the float nearest the exact fraction.

    torchmetrics uses torch.linspace(0, 1, bins + 1) in the confidences' dtype, whose CPU kernel computes the
    upper half as 1 - step * k, fused into one multiply-add where the CPU has FMA; so for many bin counts some
    edges are one ulp off the exact fraction, and which depends on the CPU (bins=15, float32, torch 2.13 on
    AVX-512: 6 of 16 edges; 5 and 10 bins exact in float32). A confidence within one ulp of such an edge can fall in the
    neighbouring bin there. These edges put a decimal written on an edge (0.2, 0.6) in the bin above, on every CPU.
    """
    _check_bins(bins)
    return np.arange(bins + 1, dtype=np.float64) / bins


def quantile_edges(confidence, bins: int) -> np.ndarray:
    """Equal-count edges: each of the `bins` bins holds N / bins samples, give or take one.

    Not in torchmetrics. The edges depend on every confidence, so compute them over all the data and pass them
    to every chunk's `calibration_partial`; partials binned on different data's quantiles do not add. Tied
    confidences (ties in the dtype bins are decided in) cannot be split and confidences of exactly 1.0 still
    form their own bin, so with either the counts can differ by more than one.
    """
    _check_bins(bins)
    c = np.sort(np.asarray(confidence, dtype=np.float64).ravel())
    check_nonempty("probs", c)
    # With [lower, upper) bins, edge k at the (k * N // bins)-th smallest confidence starts bin k there.
    interior = c[(np.arange(1, bins) * c.size) // bins]
    return np.concatenate([[0.0], interior, [1.0]])


def calibration_partial(confidence, correct, *, bins: int = 15, edges=None, binning: str | None = None,
                        decide_in=np.float32) -> CalibrationPartial:
    """Per-bin counts and float64 sums of confidence and correctness.

    Bins: `bins` equal-width bins on [0, 1], or the given `edges` (ascending, from 0 to 1; e.g. quantile_edges,
    then pass binning="quantile"). Assignment as torchmetrics: torch.bucketize(c, edges, right=True) - 1, which
    is np.searchsorted(edges, c, side="right") - 1, with both in `decide_in`: float32 for multiclass, the scores'
    dtype for binary (see the module's docstring and binning_dtype).
    """
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct).ravel()
    if correct.shape != confidence.shape:
        raise ShapeError(f"{correct.size} outcomes for {confidence.size} confidences", option="--target")
    _check_range("probs", confidence, 0.0, 1.0)
    if edges is None:
        edges, binning = uniform_edges(bins), binning or "uniform"
    else:
        edges, binning = _checked_edges(np.asarray(edges, dtype=np.float64)), binning or "custom"
    # Decided in decide_in, as torchmetrics does; rounding is monotone, so the rounded edges still ascend.
    index = np.searchsorted(edges.astype(decide_in), confidence.astype(decide_in), side="right") - 1
    slots = len(edges)
    return CalibrationPartial(edges, np.bincount(index, minlength=slots).astype(np.int64),
                              np.bincount(index, weights=confidence, minlength=slots),
                              np.bincount(index, weights=correct.astype(np.float64), minlength=slots), binning)


def binning_dtype(task: str, dtype) -> np.dtype:
    """The dtype torchmetrics decides bins in: float32 for multiclass (it casts the confidences), the scores' own
    (here: the dtype they were computed in) for binary."""
    return np.dtype(dtype) if task == "binary" and np.dtype(dtype) == np.float64 else np.dtype(np.float32)


MAX_BINS = 100_000  # each bin is a table row and four float64 sums; more than this is a mistake, not a diagram


def _check_bins(bins: int) -> None:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= MAX_BINS:
        raise UsageError(f"must be a whole number from 1 to {MAX_BINS}; got {bins!r}", option="--bins")


def _checked_edges(edges: np.ndarray) -> np.ndarray:
    if edges.ndim != 1 or edges.size < 2 or edges[0] != 0.0 or edges[-1] != 1.0 or np.any(np.diff(edges) < 0):
        raise UsageError("bin edges must ascend from 0 to 1", option="--bins")
    return edges


def finish_calibration(partial: CalibrationPartial, *, norm: str = "l1", task: str,
                       warnings: Sequence[str] = ()) -> CalibrationResult:
    """The calibration errors of summed bins, as torchmetrics' `_ce_compute` (debias off, as in its metrics).

    With n_b samples in bin b of N, accuracy acc_b and mean confidence conf_b:
    l1 (ECE)   = sum_b (n_b / N) |acc_b - conf_b|
    l2 (RMSCE) = sqrt(sum_b (n_b / N) (acc_b - conf_b)^2); torchmetrics takes the root too (0 when the sum is 0)
    max (MCE)  = max_b |acc_b - conf_b| over the non-empty bins
    `value` is the chosen norm's. No samples: every error is NaN, with a warning.
    """
    check_choice("norm", norm, NORMS)
    count = partial.count
    n = int(count.sum())
    filled = count > 0
    conf = np.divide(partial.conf_sum, count, out=np.zeros(count.shape), where=filled)
    acc = np.divide(partial.acc_sum, count, out=np.zeros(count.shape), where=filled)
    gap = acc - conf
    warnings = list(warnings)
    if n:
        weight = count / n
        ece = float(np.sum(weight * np.abs(gap)))
        squared = float(np.sum(weight * gap * gap))
        rmsce = math.sqrt(squared) if squared > 0 else 0.0
        mce = float(np.max(np.abs(gap[filled])))
    else:
        ece = mce = rmsce = math.nan
        warnings.append(NO_SAMPLES)
    table = _bin_table(partial.edges, count, conf, acc)
    value = {"l1": ece, "l2": rmsce, "max": mce}[norm]
    return CalibrationResult(task, norm, partial.n_bins, partial.binning, n, ece, mce, rmsce, value, table,
                             warnings, _notes(partial, task))


def _bin_table(edges: np.ndarray, count: np.ndarray, conf: np.ndarray, acc: np.ndarray) -> list[dict]:
    rows = []
    for i, k in enumerate(count.tolist()):
        if i == len(edges) - 1 and not k:
            break  # the slot for confidences on the last edge is shown only when it holds some
        upper = edges[i + 1] if i + 1 < len(edges) else edges[i]
        c, a = (float(conf[i]), float(acc[i])) if k else (None, None)
        rows.append({"lower": float(edges[i]), "upper": float(upper), "count": int(k), "confidence": c,
                     "accuracy": a, "gap": a - c if k else None})
    return rows


def _notes(partial: CalibrationPartial, task: str) -> list[str]:
    notes = []
    if task == "binary":
        notes.append("binary: confidence is p(class 1) and accuracy the share of positives, as torchmetrics' "
                     "BinaryCalibrationError (not the top-label confidence)")
    if partial.count[-1]:
        notes.append(f"{int(partial.count[-1])} samples with confidence 1.0 (in float32 for multiclass, as "
                     "torchmetrics compares them) form a bin of their own, as in torchmetrics (torch.bucketize with "
                     "right=True puts them past the last edge)")
    if partial.binning == "quantile":
        notes.append("quantile bins: the edges come from these confidences; not comparable with torchmetrics, and "
                     "sums over other data's quantile edges do not add")
    return notes


def reliability_lines(result: CalibrationResult, width: int = 40) -> list[str]:
    """A plain-text reliability diagram: a header, then one line per bin.

    Each bin shows its range, count, mean confidence, accuracy and gap, then a bar of `width` cells: `#` up to
    the accuracy, `|` in the cell of the bin's mean confidence, where the bar would end were the bin calibrated
    (the diagonal). A `|` past the bar: overconfident; inside it: underconfident.
    """
    if width < 1:
        raise UsageError(f"the reliability diagram needs a width >= 1; got {width}")
    # the legend fits beside the columns in 80 characters: the table crops the line at the terminal's edge
    lines = [f"{'bin':<14}{'n':>7}{'conf':>8}{'acc':>8}{'gap':>8}  # = accuracy, | = confidence"]
    for b in result.bins:
        label = (f"[{b['lower']:.2f}, {b['upper']:.2f})" if b["upper"] > b["lower"] else f"[{b['lower']:.2f}]")
        if not b["count"]:
            lines.append(f"{label:<14}{0:>7}{'-':>8}{'-':>8}{'-':>8}")
            continue
        cells = ["#" if i < round(b["accuracy"] * width) else "." for i in range(width)]
        cells[min(int(b["confidence"] * width), width - 1)] = "|"
        lines.append(f"{label:<14}{b['count']:>7}{b['confidence']:>8.3f}{b['accuracy']:>8.3f}{b['gap']:>+8.3f}  "
                     + "".join(cells))
    return lines
