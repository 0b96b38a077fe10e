"""Is this loss sensible? The reports beside a loss: baselines, input-convention lints, per-class and worst-K
breakdowns, the per-sample summary and the run's signature.

A loss's spec says which apply (`lints`, `report`, `baseline`); the rules themselves live in lossctl.sanity*.
Everything a streamed or sharded run must add up is a mergeable partial (`ReportPartial`), and every lint is a
`Finding` whose text does not depend on the chunk it was found in, so a streamed run reports what one pass does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .errors import UsageError
from .losses._common import Finding, focal_index
from .reduce import as_numpy
from .sanity_lint import (
    SIGMOID_MIN_COUNT,
    SIGMOID_MIN_SPREAD,
    lint_log_probs_are_probs,
    lint_logits_are_probs,
    lint_negative_kl,
    lint_sigmoid_applied,
)

# The baselines and breakdowns (lossctl.sanity_baselines, sanity_breakdown, sanity_summary) are imported where they
# are computed: a plain run prints one number and needs only the lints.


class Wants(NamedTuple):
    """The breakdowns asked for: --by-class, --worst K."""

    by_class: bool = False
    worst: int = 0


@dataclass
class ReportPartial:
    """Mergeable report sums of one chunk, file or shard."""

    counts: Any = None  # kept index targets per class (ndarray): a streamed run's baselines need no more
    by_class: Any = None  # sanity_breakdown.ByClassPartial
    worst: Any = None  # sanity_breakdown.WorstK
    sums: Any = None  # the baselines' sums of other targets: sanity_baselines.LabelSums or ProbSums

    def __add__(self, other: ReportPartial) -> ReportPartial:
        def add(a, b):
            return b if a is None else a if b is None else a + b

        return ReportPartial(_add_sums(self.counts, other.counts), add(self.by_class, other.by_class),
                             add(self.worst, other.worst), _add_sums(self.sums, other.sums))


# Sums of files whose classes (or label columns) differ: each file's loss stands, but the whole has no baseline.
MIXED = "mixed"


def _add_sums(a, b):
    if a is None or b is None:
        return b if a is None else a
    if a is MIXED or b is MIXED or _width(a) != _width(b):
        return MIXED
    return a + b


def _width(sums) -> tuple[int, ...]:
    return sums.shape if isinstance(sums, np.ndarray) else sums.width


# --- lints ---------------------------------------------------------------------------------------------------

def _first(arrays: dict, *roles: str):
    return next((arrays[r] for r in roles if arrays.get(r) is not None), None)


# What to do instead, as the command offers it: its own --probs, else where the same loss takes probabilities.
PROBS_FIX = "pass them as --probs, or pass the raw logits"
CE_FIX = ("pass the raw logits, or pass the probabilities to `lossctl nll --probs`, whose loss is their cross "
          "entropy")
RAW_FIX = "pass the raw logits"
MLSM_FIX = "pass the raw logits (`lossctl bce --probs` takes probabilities; its mean equals this loss's mean)"


def _logits_are_probs(arrays: dict, options: dict, inputs: tuple[str, ...], fix: str | None = None
                      ) -> list[Finding]:
    x = arrays.get("logits")
    if x is None:
        return []
    fix = fix or (PROBS_FIX if "probs" in inputs else CE_FIX)
    return [Finding("logits-are-probs", w, every=True) for w in lint_logits_are_probs(x, fix=fix)]


def _log_probs_are_probs(arrays: dict, options: dict, inputs: tuple[str, ...], class_axis: int | None = None
                         ) -> list[Finding]:
    x = arrays.get("log_probs")
    if x is None or (class_axis is not None and not -x.ndim <= class_axis < max(x.ndim, 1)):
        return []
    # the fix names --probs and --logits where the loss takes them (kl, nll); ctc takes neither
    found = lint_log_probs_are_probs(x, class_axis, other_inputs="probs" in inputs and "logits" in inputs)
    # "rows that are probabilities" must hold everywhere; "a value above 0" anywhere
    return [Finding("log-probs-are-probs", w, every=True) if w.startswith("--log-probs look like")
            else Finding("log-probs-above-0", w) for w in found]


def _log_probs_last_are_probs(arrays: dict, options: dict, inputs: tuple[str, ...]) -> list[Finding]:
    """kl and ctc ((T, N, C)): log-probabilities with the classes last, not on torch's axis 1."""
    return _log_probs_are_probs(arrays, options, inputs, -1)


def _sigmoid_applied(arrays: dict, options: dict, inputs: tuple[str, ...]) -> list[Finding]:
    x = _first(arrays, "logits", "input")
    t = arrays.get("target")
    if x is None or focal_index(x, t, options.get("target_kind", "auto")):
        return []
    option = "--logits" if arrays.get("logits") is not None else "--input"
    fix = PROBS_FIX if "probs" in inputs else MLSM_FIX if option == "--input" else RAW_FIX
    found = lint_sigmoid_applied(x, min_count=1, min_spread=0.0, option=option, fix=fix)
    # too few values, or too close together, to conclude alone (a stream's short chunk, a model at initialisation)
    if not found:
        return []
    lo, hi = float(np.min(x)), float(np.max(x))  # np.ptp refuses bools
    # the whole array's count and spread decide: a stream's chunks add theirs up (Finding.joined)
    extent = (int(np.size(x)), lo, hi, SIGMOID_MIN_COUNT, SIGMOID_MIN_SPREAD)
    weak = np.size(x) < SIGMOID_MIN_COUNT or hi - lo < SIGMOID_MIN_SPREAD
    return [Finding("sigmoid-applied", w, every=True, weak=weak, extent=extent) for w in found]


def _index_logits_are_probs(arrays: dict, options: dict, inputs: tuple[str, ...]) -> list[Finding]:
    """focal: softmax probabilities as --logits matter to its multi-class form (index targets), as the loss
    decides it; its sigmoid form has sigmoid-applied."""
    x, t = arrays.get("logits"), arrays.get("target")
    if x is None or t is None or options.get("target_kind") == "binary":
        return []
    if not focal_index(x, t, options.get("target_kind", "auto")):
        return []
    return _logits_are_probs(arrays, options, inputs, RAW_FIX)


def _dim_logits_are_probs(arrays: dict, options: dict, inputs: tuple[str, ...]) -> list[Finding]:
    """kl, entropy: their softmax runs along the last axis (entropy's --dim), not torch's class axis 1."""
    x, dim = arrays.get("logits"), options.get("dim", -1)
    if x is None or not -x.ndim <= dim < max(x.ndim, 1):
        return []
    return [Finding("logits-are-probs", w, every=True) for w in lint_logits_are_probs(x, class_axis=dim, fix=PROBS_FIX)]


def _kind_logits_are_probs(arrays: dict, options: dict, inputs: tuple[str, ...]) -> list[Finding]:
    """js: --p-kind / --q-kind logits apply softmax over the last axis to rows that may be probabilities already."""
    found = []
    for role in ("p", "q"):
        x = arrays.get(role)
        if x is not None and x.ndim and options.get(f"{role}_kind") == "logits":
            found += [Finding(f"{role}-logits-are-probs", w, every=True) for w in lint_logits_are_probs(
                x, class_axis=-1, option=f"--{role}", fix=f"drop --{role}-kind logits (prob is the default), or "
                                                          f"pass the raw logits")]
    return found


LINTS = {"logits-are-probs": _logits_are_probs, "log-probs-are-probs": _log_probs_are_probs,
         "log-probs-last-are-probs": _log_probs_last_are_probs, "sigmoid-applied": _sigmoid_applied,
         "index-logits-are-probs": _index_logits_are_probs,
         "dim-logits-are-probs": _dim_logits_are_probs, "kind-logits-are-probs": _kind_logits_are_probs}
VALUE_LINTS = {"negative-kl": lint_negative_kl}


def input_lints(rules: tuple[str, ...], arrays: dict, options: dict, inputs: tuple[str, ...]) -> list[Finding]:
    """The spec's input-convention rules on these arrays (a whole file, or one chunk of it); `inputs` are the
    command's input roles, which the fixes the warnings suggest are chosen from."""
    return [w for rule in rules if rule in LINTS for w in LINTS[rule](arrays, options, inputs)]


def value_lints(rules: tuple[str, ...], value: float | None) -> list[str]:
    return [w for rule in rules if rule in VALUE_LINTS and value is not None for w in VALUE_LINTS[rule](value)]


# --- breakdowns ----------------------------------------------------------------------------------------------

def _is_index_target(target, x, options: dict | None = None) -> bool:
    """Class indices, as the loss reads them: the scores' shape without the class axis (whole-number floats
    too), unless --target-kind says otherwise."""
    if target is None or x is None or x.ndim == 0:
        return False
    kind = (options or {}).get("target_kind", "auto")
    if kind in ("index", "auto"):
        index_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        return target.shape == index_shape and (kind == "index" or target.shape != x.shape)
    return False


def _log_probs(arrays: dict) -> np.ndarray:
    from .kernels import log, log_softmax

    if arrays.get("log_probs") is not None:
        return np.asarray(arrays["log_probs"], dtype=np.float64)
    if arrays.get("probs") is not None:
        return log(np.asarray(arrays["probs"], dtype=np.float64))
    x = np.asarray(arrays["logits"], dtype=np.float64)
    return log_softmax(x, 0 if x.ndim == 1 else 1)


def index_report(arrays: dict, options: dict, out, wants: Wants, first_row: int, *, baselines: bool = True
                 ) -> ReportPartial:
    """CE, NLL, perplexity, multi-class focal with class-index targets: class counts, and the breakdowns asked.
    baselines: whether to add up what the baselines read (reduction mean, for a table or JSON)."""
    x, t = _first(arrays, "logits", "log_probs", "probs"), arrays.get("target")
    if not _is_index_target(t, x, options):
        if wants.by_class or wants.worst:
            raise UsageError("breakdowns by class and the worst samples need class-index targets; these are "
                             "probabilities", option="--by-class" if wants.by_class else "--worst")
        if not baselines or t is None or x is None:
            return ReportPartial()
        return ReportPartial(sums=_prob_sums(arrays, options))
    n_classes, ignore = x.shape[0 if x.ndim == 1 else 1], options.get("ignore_index", -100)
    t = t.astype(np.int64) if t.dtype.kind == "f" else t
    keep = t != ignore
    rep = ReportPartial(counts=np.bincount(t[keep].reshape(-1), minlength=n_classes) if baselines else None)
    if not (wants.by_class or wants.worst):
        return rep
    from .sanity_breakdown import ByClassPartial, WorstK

    logp = _log_probs(arrays)
    axis = 0 if x.ndim == 1 else 1
    predicted = np.argmax(logp, axis=axis)
    p_target = np.exp(np.take_along_axis(logp, np.expand_dims(np.where(keep, t, 0), axis), axis)).squeeze(axis)
    losses = as_numpy(out.values)
    if wants.by_class:
        rep.by_class = ByClassPartial.of_index(losses, t, predicted, p_target, n_classes=n_classes,
                                               ignore_index=ignore)
    if wants.worst:
        rep.worst = WorstK(wants.worst, ignore_index=ignore)
        t1 = np.atleast_1d(t)
        rep.worst.push(losses, first_row * math.prod(t1.shape[1:]), t1.shape, t1, np.atleast_1d(predicted),
                       np.atleast_1d(p_target))
    return rep


def _prob_sums(arrays: dict, options: dict):
    """CE with probability targets (or target logits): the sums its baselines read."""
    from .sanity_baselines import prob_sums

    _, opts = _baseline_options("ce", arrays, options)
    return prob_sums(opts["target"], opts["n_classes"], weight=opts["weight"],
                     label_smoothing=opts["label_smoothing"])


def label_report(arrays: dict, options: dict, out, wants: Wants, first_row: int, *, baselines: bool = True
                 ) -> ReportPartial:
    """BCE and sigmoid focal: the sums their baselines read (when `baselines`), per label column (the last axis),
    and the breakdowns asked."""
    x, y = _first(arrays, "logits", "probs"), arrays.get("target")
    if x is not None and focal_index(x, y, options.get("target_kind", "auto")):
        return index_report(arrays, options, out, wants, first_row, baselines=baselines)  # multi-class focal
    if y is None or x is None:
        return ReportPartial()
    from .sanity_baselines import label_sums

    rep = ReportPartial(sums=label_sums(y, arrays.get("pos_weight"), arrays.get("weight")) if baselines else None)
    if not (wants.by_class or wants.worst):
        return rep
    from .sanity_breakdown import ByClassPartial, WorstK

    p = np.asarray(arrays["probs"], np.float64) if arrays.get("probs") is not None else \
        1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))
    losses = as_numpy(out.values)
    if wants.by_class:
        rep.by_class = ByClassPartial.of_labels(losses, y, p)
    if wants.worst:
        y1 = np.atleast_1d(np.asarray(y, np.float64))
        rep.worst = WorstK(wants.worst, ignore_index=None)
        rep.worst.push(losses, first_row * math.prod(y1.shape[1:]), y1.shape, y1, (np.atleast_1d(p) > 0.5) * 1,
                       np.where(y1 > 0.5, np.atleast_1d(p), 1 - np.atleast_1d(p)))
    return rep


# --- baselines -----------------------------------------------------------------------------------------------

def _baseline_options(kind: str, arrays: dict, options: dict) -> tuple[str, dict]:
    x, t = _first(arrays, "logits", "log_probs", "probs"), arrays["target"]
    if kind == "focal":
        kind = "focal_index" if focal_index(x, t, options.get("target_kind", "auto")) else "focal_sigmoid"
    opts: dict[str, Any] = {"target": t}
    if kind in ("ce", "focal_index"):
        opts.update(n_classes=x.shape[0 if x.ndim == 1 else 1], weight=arrays.get("weight"),
                    ignore_index=options.get("ignore_index", -100))
    if kind == "ce":
        index = _is_index_target(t, x, options)
        opts.update(label_smoothing=options.get("label_smoothing", 0.0), target_kind="index" if index else "prob")
        if index and t.dtype.kind == "f":
            opts["target"] = t.astype(np.int64)
        if options.get("target_kind") == "logits":
            from .kernels import softmax

            opts["target"] = softmax(np.asarray(t, np.float64), 0 if t.ndim == 1 else 1)
    if kind == "bce":
        opts.update(pos_weight=arrays.get("pos_weight"), bce_weight=arrays.get("weight"))
    if kind.startswith("focal"):
        opts.update(alpha=options["alpha"], gamma=options["gamma"])
    return kind, opts


def baselines_in_memory(kind: str, arrays: dict, options: dict, scale: float) -> dict[str, float] | None:
    """uniform, prior and (where above 0) floor, for the loss's own options, from the whole arrays."""
    from .sanity_baselines import baselines

    kind, opts = _baseline_options(kind, arrays, options)
    return baselines(kind, scale=scale, **opts)


def baselines_from_counts(kind: str, rep: ReportPartial | None, weight, options: dict, scale: float
                          ) -> dict[str, float] | None:
    """The baselines of a streamed or many-file run, from the report's sums alone (O(classes) memory): class
    counts for index targets (CE, multi-class focal), ProbSums for CE's probability targets, LabelSums for BCE and
    sigmoid focal. None where those do not determine them (sigmoid focal with soft labels)."""
    from .sanity_baselines import baselines_of_counts, baselines_of_label_sums, baselines_of_prob_sums

    alpha, gamma = options.get("alpha", 0.25), options.get("gamma", 2.0)
    if rep is None or rep.counts is MIXED or rep.sums is MIXED:
        return None
    if rep.counts is not None and kind in ("ce", "focal"):
        return baselines_of_counts("ce" if kind == "ce" else "focal_index", rep.counts, weight=weight,
                                   label_smoothing=options.get("label_smoothing", 0.0), alpha=alpha, gamma=gamma,
                                   scale=scale)
    if rep.sums is None:
        return None
    if kind == "ce":
        return baselines_of_prob_sums(rep.sums, scale=scale)
    return baselines_of_label_sums("bce" if kind == "bce" else "focal_sigmoid", rep.sums, alpha=alpha, gamma=gamma,
                                   scale=scale)


@dataclass
class Reports:
    """The report fields of a Result; empty where they do not apply."""

    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {"value", "ratio"}
    by_class: list[dict] | None = None
    worst: list[dict] | None = None
    summary: dict | None = None
    histogram: list[str] | None = None
    notes: list[str] = field(default_factory=list)


def finish_reports(value: float | None, values, found: dict[str, float] | None, rep: ReportPartial | None,
                   transform=None, raw_value: float | None = None) -> Reports:
    """Baselines with the loss's ratio to each (post-processed as the loss is: perplexity's exp, of the value before
    it, `raw_value`), the breakdowns, and the per-sample summary of reduction none."""
    from .sanity_baselines import chance_note, ratios
    from .sanity_breakdown import by_class_rows
    from .sanity_summary import loss_summary

    out = Reports()
    if found and value is not None:
        note = chance_note(value, found)
        if transform is not None:  # perplexity: exp of CE's baselines, as of its value; at chance as CE is
            note = chance_note(raw_value, found, shown=transform) if raw_value is not None else None
            found = {k: transform(v) for k, v in found.items()}
        ratio = ratios(value, found)  # 0 / 0 (one class: every loss is 0) is nan, not inf
        out.baselines = {k: {"value": v, "ratio": ratio[k]} for k, v in found.items()}
        out.notes += [note] if note else []
    if rep is not None and rep.by_class is not None:
        out.by_class = by_class_rows(rep.by_class)
    if rep is not None and rep.worst is not None:
        out.worst = rep.worst.rows()
    if values is not None:
        from .sanity_summary import histogram_lines

        out.summary, out.histogram = loss_summary(values), histogram_lines(values)
    return out
