"""What the commands other than a loss run hand to the renderers: checked identities, the catalog, an explanation
and a gradient. No printing here: `lossctl.render` turns each into every output format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `lossctl list` and `explain` render without importing numpy
    import numpy as np


@dataclass
class CheckRow:
    label: str
    left: float
    right: float
    ok: bool
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def residual(self) -> float:
        # equal infinities agree (inf - inf would be nan); nan on either side stays nan
        return 0.0 if self.left == self.right else abs(self.left - self.right)


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
    warnings: list[str] = field(default_factory=list)  # the input lints (probabilities as logits): shown on stderr

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def backend(self) -> str:
        """What computes the identities: torch (torch.nn.functional, autograd), the definition lossctl holds to."""
        from .signature import torch_version

        return f"torch {torch_version()}"

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.rows)

    @property
    def max_residual(self) -> float:
        residuals = [r.residual for r in self.rows]
        if any(r != r for r in residuals):  # a nan residual is the worst, not skipped by max's comparisons
            return float("nan")
        return max(residuals, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name, "statement": self.statement, "ok": self.ok, "passed": self.passed,
            # a skipped identity compared nothing: null, where 0.0 would read as a perfect agreement
            "total": len(self.rows), "max_residual": None if self.skipped else self.max_residual,
            "atol": self.atol, "rtol": self.rtol,
            "dtype": self.dtype, "backend": self.backend, "warnings": self.warnings, "notes": self.notes,
            "skipped": self.skipped,
            "rows": [{"label": r.label, **r.extra, self.left_name: r.left, self.right_name: r.right,
                      "residual": r.residual, "ok": r.ok} for r in self.rows],
        }


def failure_line(checks: list[CheckResult]) -> str | None:
    """The line on stderr of a check that failed (exit 1): which identities, how many rows, by how much; None where
    every identity held. A pipeline that keeps only stdout, or -f plain, still says why it exits 1."""
    failed = [c for c in checks if not c.ok]
    if not failed:
        return None
    said = [f"{c.name}: {len(c.rows) - c.passed} of {len(c.rows)} row{'s' if len(c.rows) != 1 else ''} differ by more "
            f"than atol {c.atol:g} + rtol {c.rtol:g} x |{c.right_name}| (largest residual {c.max_residual:.3g})"
            for c in failed]
    return "failed: " + "; ".join(said)


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
        backends = sorted({c.backend for c in self.checks})
        return {"ok": self.ok, "backend": "+".join(backends), "warnings": self.warnings,
                "checks": [c.to_dict() for c in self.checks]}


@dataclass
class Catalog:
    """`lossctl list`: one dict per loss (name, aliases, torch, arrays, options, summary)."""

    rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"losses": self.rows}


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
        # a result has several notes (a weighted mean's, label smoothing's, the baselines'): a list, since a dict
        # keyed by name would keep only the last
        d["totals"] = {k: v for k, v in self.totals if k != "note"}
        d["notes"] = [v for k, v in self.totals if k == "note"]
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
    backend: str = ""  # what computed them: torch autograd, `torch 2.13.0`, as a loss result names its backend

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "torch": self.torch_name, "reduction": self.reduction, "value": self.value,
                "gradients": {role: g.tolist() for role, g in self.gradients.items()}, "dtype": self.dtype,
                "backend": self.backend, "shapes": self.shapes, "options": self.options, "warnings": self.warnings,
                "notes": self.notes}
