"""The one place where per-element losses become a reduced result.

A loss yields, for each chunk, a `Partial`: the float64 sum of its losses and the sum of its denominators
(1 per element for a plain mean, the target's class weight for a weighted CE/NLL mean and 0 where ignored,
rows for `batchmean`). Chunks, files and machines combine by adding partials; the mean is the last division.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LossOutput:
    """What a compute function returns: torch's `reduction='none'` values and how `mean` divides them.

    values: per-element losses (an ndarray or a tensor, as the backend computed them), exactly as the torch
        module gives them with reduction='none'.
    weights: per-element denominators for `mean` (None: 1 each).
    mean_values: values whose mean torch reports when it differs from `values` (CTC divides by target length).
    rows: the batch size, for `batchmean`.
    unit: what one denominator counts ("targets", "elements", "samples", "rows").
    ignored: how many targets ignore_index removed.
    form: which of the loss's forms computed the values, where its inputs choose one (focal: the multi-class form
        for index targets, else the sigmoid form); files of two forms give no one loss, so their sums never add.
    """

    values: Any
    weights: Any = None
    mean_values: Any = None
    rows: int = 1
    unit: str = "elements"
    ignored: int = 0
    weighted: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    form: str = ""


@dataclass
class Partial:
    """Mergeable sums for one chunk, file or shard."""

    total: float = 0.0
    denominator: float = 0.0
    count: int = 0  # elements (or samples) the values cover
    ignored: int = 0
    rows: int = 0

    def __add__(self, other: Partial) -> Partial:
        return Partial(self.total + other.total, self.denominator + other.denominator,
                       self.count + other.count, self.ignored + other.ignored, self.rows + other.rows)

    def to_dict(self) -> dict[str, float | int]:
        return {"total": self.total, "denominator": self.denominator, "count": self.count,
                "ignored": self.ignored, "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict) -> Partial:
        return cls(float(d["total"]), float(d["denominator"]), int(d["count"]), int(d["ignored"]), int(d["rows"]))


def partial_of(out: LossOutput, reduction: str) -> Partial:
    """Float64 sums of one LossOutput for the given reduction, whichever backend computed it."""
    source = out.mean_values if (reduction == "mean" and out.mean_values is not None) else out.values
    v = as_numpy(source)
    total = float(v.sum(dtype=np.float64))
    count = int(v.size)
    denominator = float(count) if out.weights is None else float(as_numpy(out.weights).sum(dtype=np.float64))
    return Partial(total, denominator, count, out.ignored, out.rows)


def finish(partial: Partial, reduction: str) -> float:
    """The reduced value, as torch defines it: mean divides by the denominators, batchmean by rows."""
    if reduction == "sum":
        return partial.total
    if reduction == "batchmean":
        return partial.total / partial.rows if partial.rows else math.nan
    if partial.denominator == 0:
        return math.nan
    return partial.total / partial.denominator


def divisor(partial: Partial, reduction: str) -> float:
    """What the reduction divides the total by, as `finish` does: the rows for batchmean, else the denominators
    (a sum divides by none, but a mean of the same values would by these)."""
    return float(partial.rows) if reduction == "batchmean" else partial.denominator


def describe(partial: Partial, reduction: str, *, unit: str, weighted: bool) -> str:
    """The denominator in words, e.g. 'mean over 6 of 8 targets; 2 ignored'."""
    if reduction == "none":
        return f"none: {_counted(partial.count, 'values')}, not reduced"
    if reduction == "sum":
        return f"sum over {_counted(partial.count, unit)}" + (f"; {partial.ignored} ignored" if partial.ignored else "")
    if reduction == "batchmean":
        return f"batchmean: sum / {_counted(partial.rows, 'rows')}"
    kept = partial.count - partial.ignored
    if weighted:
        text = f"weighted mean: sum / {_num(partial.denominator)} (sum of the targets' class weights)"
    elif partial.ignored:
        text = f"mean over {kept} of {partial.count} {unit}"
    else:
        text = f"mean over {_counted(partial.denominator, unit)}"
    if partial.ignored:
        text += f"; {partial.ignored} ignored"
    return text


def _counted(n: float, unit: str) -> str:
    """'1 sequence', '2 sequences': one sample (an unbatched CTC sequence, one multi-margin sample) in the singular."""
    return f"{_num(n)} {unit[:-1] if float(n) == 1 and unit.endswith('s') else unit}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def as_numpy(values) -> np.ndarray:
    """An ndarray of values that may be a torch tensor (on any device)."""
    if isinstance(values, np.ndarray):
        return values
    if hasattr(values, "detach"):
        return values.detach().cpu().numpy()
    return np.asarray(values)
