"""What a loss run hands to the renderers: one computed loss (Result) and a total over many files (MultiResult).

No printing here: `lossctl.render` turns each into every output format. The other commands' data (check, list,
explain, grad) is in `lossctl.command_results`, kept apart so that a loss run does not build those classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only
    import numpy as np

    from .reduce import Partial


@dataclass
class Result:
    loss: str
    torch_name: str
    reduction: str
    dtype: str
    shapes: dict[str, list[int]]
    options: dict[str, Any]
    partial: Partial
    denominator: str
    value: float | None = None  # reduced losses
    values: np.ndarray | None = None  # reduction none
    unit: str = "nats"
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    weighted: bool = False  # the mean divides by a sum of class weights
    denominator_unit: str = "elements"  # what one denominator counts: targets, elements, samples...
    constants: dict[str, str] = field(default_factory=dict)  # digests of per-class arrays (weight, pos_weight)
    backend: str = ""  # what computed the number: "numpy" or "torch 2.13.0"
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # uniform/prior/floor: value, ratio
    by_class: list[dict[str, Any]] | None = None  # --by-class
    worst: list[dict[str, Any]] | None = None  # --worst K
    breakdown_loss: str = ""  # what their "loss" is where it is not this loss (LossSpec.breakdown_loss)
    summary: dict[str, Any] | None = None  # reduction none: count, mean, min, p50, p90, p99, max
    histogram: list[str] | None = None  # reduction none: the per-sample losses, as text for a terminal
    # What a total over many files or shards needs to add up the reports (not shown): their mergeable sums
    # (reports.ReportPartial), the per-class weight the baselines are computed with, and the values the
    # per-sample summary reads.
    report: Any = field(default=None, repr=False)
    class_weight: Any = field(default=None, repr=False)
    kept: Any = field(default=None, repr=False)  # reduction none: the values of the targets not ignored
    # rules met on too few values to conclude here (losses._common.weak_findings), which files or shards join
    pending: list[str] = field(default_factory=list, repr=False)
    # what the loss's computation noted (a weighted mean, --zero-infinity's count), which a total repeats per file
    loss_notes: list[str] = field(default_factory=list, repr=False)

    @property
    def signature(self) -> str:
        """Everything that determines the number, in one string (as sacreBLEU signs its scores)."""
        from .signature import result_signature

        return result_signature(self)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"loss": self.loss, "torch": self.torch_name, "reduction": self.reduction}
        if self.values is not None:
            d["values"] = self.values.tolist()
        else:
            d["value"] = self.value
        d.update(dtype=self.dtype, backend=self.backend, shapes=self.shapes, options=self.options,
                 denominator=self.denominator,
                 partial=self.partial.to_dict(), warnings=self.warnings, notes=self.notes)
        if self.unit != "nats":
            d["unit"] = self.unit
        for key in ("baselines", "by_class", "worst", "breakdown_loss", "summary"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        d["signature"] = self.signature
        return d


@dataclass
class MultiResult:
    """One Result per file (set of paired files) and the exact total over all of them."""

    labels: list[str]
    results: list[Result]
    total: Result
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"files": [{"file": f, **r.to_dict()} for f, r in zip(self.labels, self.results, strict=True)],
                "total": self.total.to_dict()}
