"""The data lossctl hands to its renderers: a computed loss, a checked identity, the catalog, an explanation.

No printing here: `lossctl.render` turns each of these into every output format.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `lossctl list` and `explain` render without importing numpy
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
    summary: dict[str, Any] | None = None  # reduction none: count, mean, min, p50, p90, p99, max
    histogram: list[str] | None = None  # reduction none: the per-sample losses, as text for a terminal
    # What a total over many files or shards needs to add up the reports (not shown): their mergeable sums
    # (reports.ReportPartial) and the per-class weight the baselines are computed with.
    report: Any = field(default=None, repr=False)
    class_weight: Any = field(default=None, repr=False)

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
        for key in ("baselines", "by_class", "worst", "summary"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        d["signature"] = self.signature
        return d


@dataclass
class CheckRow:
    label: str
    left: float
    right: float
    ok: bool
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def residual(self) -> float:
        return abs(self.left - self.right)


@dataclass
class CheckResult:
    """One identity over some data: a row per sample (or one row), each with both sides and a verdict."""

    name: str
    statement: str
    left_name: str
    right_name: str
    rows: list[CheckRow]
    atol: float
    rtol: float
    dtype: str
    notes: list[str] = field(default_factory=list)
    columns: tuple[str, ...] = ()  # names of each row's `extra` values, in display order
    skipped: str | None = None  # why the identity could not be checked on this data

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.rows)

    @property
    def max_residual(self) -> float:
        return max((r.residual for r in self.rows), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name, "statement": self.statement, "ok": self.ok, "passed": self.passed,
            "total": len(self.rows), "max_residual": self.max_residual, "atol": self.atol, "rtol": self.rtol,
            "dtype": self.dtype, "notes": self.notes, "skipped": self.skipped,
            "rows": [{"label": r.label, **r.extra, self.left_name: r.left, self.right_name: r.right,
                      "residual": r.residual, "ok": r.ok} for r in self.rows],
        }


@dataclass
class CheckReport:
    """`lossctl check`: every identity, each checked on the data or skipped with the reason."""

    checks: list[CheckResult]
    warnings: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __getitem__(self, i: int) -> CheckResult:
        return self.checks[i]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


@dataclass
class Catalog:
    """`lossctl list`: one dict per loss (name, aliases, torch, arrays, options, summary)."""

    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"losses": self.rows}


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


@dataclass
class Step:
    """One sample of a worked computation: a label such as `sample [0]` and `name = value` lines."""

    label: str
    lines: list[tuple[str, str]]


@dataclass
class Explanation:
    """`lossctl explain NAME`: what the spec says of a loss and, given arrays, the computation step by step."""

    name: str
    aliases: list[str]
    torch_name: str
    summary: str
    formula: str
    arrays: list[dict[str, Any]]
    options: list[dict[str, Any]]
    reductions: list[str]
    default_reduction: str
    denominator: str
    traps: list[str]
    information: bool
    steps: list[Step] = field(default_factory=list)
    totals: list[tuple[str, str]] = field(default_factory=list)  # the sum, the denominator, the value
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [{"label": s.label, **dict(s.lines)} for s in self.steps]
        d["totals"] = dict(self.totals)
        return d


@dataclass
class GradientResult:
    """`lossctl grad LOSS`: d loss / d input for each differentiated input, by torch autograd.

    value: the scalar differentiated (the reduced loss; the sum of the per-element losses for reduction none).
    gradients: one array per input role, of that input's shape.
    """

    loss: str
    torch_name: str
    reduction: str
    dtype: str
    value: float
    gradients: dict[str, np.ndarray]
    shapes: dict[str, list[int]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "torch": self.torch_name, "reduction": self.reduction, "value": self.value,
                "gradients": {role: g.tolist() for role, g in self.gradients.items()}, "dtype": self.dtype,
                "shapes": self.shapes, "options": self.options, "warnings": self.warnings, "notes": self.notes}
