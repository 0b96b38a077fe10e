"""The data lossctl hands to its renderers: a computed loss or a checked identity. No printing here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"loss": self.loss, "torch": self.torch_name, "reduction": self.reduction}
        if self.values is not None:
            d["values"] = self.values.tolist()
        else:
            d["value"] = self.value
        d.update(dtype=self.dtype, shapes=self.shapes, options=self.options, denominator=self.denominator,
                 partial=self.partial.to_dict(), warnings=self.warnings, notes=self.notes)
        if self.unit != "nats":
            d["unit"] = self.unit
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
