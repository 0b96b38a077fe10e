"""The calibration data lossctl renders: one set of files' errors and bins, and many files with their total.

Apart from `lossctl.calibration` (which imports NumPy) so that the renderers can register these types without
loading NumPy on paths such as `lossctl list` that never compute anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class CalibrationResult:
    """Calibration errors and the reliability table. `bins`: one dict per bin, plus a last [1, 1] bin when some
    confidences are exactly 1.0; `gap` = accuracy - confidence (negative: overconfident); None for empty bins."""

    task: str
    norm: str
    n_bins: int
    binning: str
    count: int
    ece: float
    mce: float
    rmsce: float
    value: float
    bins: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dtype: str = ""  # what the scores were binned in
    backend: ClassVar[str] = "numpy"  # lossctl.calibration bins with NumPy alone, whatever the inputs

    def to_dict(self) -> dict:
        """JSON-safe: plain floats, and None for an undefined (NaN) error."""
        d = {k: getattr(self, k) for k in ("task", "norm", "n_bins", "binning", "count", "dtype", "backend")}
        d.update({k: _json_float(getattr(self, k)) for k in ("ece", "mce", "rmsce", "value")})
        d.update(bins=[dict(b) for b in self.bins], warnings=list(self.warnings), notes=list(self.notes))
        return d


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@dataclass
class CalibrationFiles:
    """`lossctl calibration` over several sets of files: one result per set and the exact total over all of them
    (their per-bin sums added, then divided)."""

    labels: list[str]
    results: list[CalibrationResult]
    total: CalibrationResult
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"files": [{"file": f, **r.to_dict()} for f, r in zip(self.labels, self.results, strict=True)],
                "total": self.total.to_dict()}
