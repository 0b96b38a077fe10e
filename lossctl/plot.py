"""A reliability diagram as a PNG or SVG file. matplotlib is optional (`lossctl[plot]`) and imported only here,
inside the function, so no other command pays for it."""

from __future__ import annotations

from pathlib import Path

from .calibration import CalibrationResult
from .errors import UsageError

FORMATS = ("png", "svg")
SLIVER = 0.015  # drawn width of the bin of confidences exactly 1.0


def plot_reliability(result: CalibrationResult, path: str | Path) -> Path:
    """Write the reliability diagram (accuracy per bin against the diagonal, counts below) to `path`.

    The format follows the extension: .png (Agg) or .svg. Returns the path written.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UsageError(f"writes .png or .svg files; got {path.name!r}", option="--plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("needs matplotlib: pip install 'lossctl[plot]'", option="--plot") from None
    # A bare Figure with its own Agg canvas: no pyplot, so no global backend or figure state is touched.
    fig = Figure(figsize=(5.5, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    _draw_reliability(top, result)
    _draw_counts(bottom, result)
    # No date in the SVG, so the same result writes the same file.
    metadata = {"Date": None} if fmt == "svg" else None
    try:
        fig.savefig(path, format=fmt, metadata=metadata)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}", option="--plot") from None
    return path


def _filled(result: CalibrationResult) -> tuple[list[dict], list[float], list[float]]:
    """Non-empty bins with their bars' left edges and widths; the [1, 1] bin of confidences exactly 1.0 is drawn
    as a sliver right of 1."""
    bins = [b for b in result.bins if b["count"]]
    return bins, [b["lower"] for b in bins], [b["upper"] - b["lower"] or SLIVER for b in bins]


def _draw_reliability(ax, result: CalibrationResult) -> None:
    bins, lefts, widths = _filled(result)
    ax.bar(lefts, [b["accuracy"] for b in bins], widths, align="edge", color="#4c72b0", edgecolor="white",
           label="accuracy")
    gaps = [b["confidence"] - b["accuracy"] for b in bins]
    ax.bar(lefts, gaps, widths, bottom=[b["accuracy"] for b in bins], align="edge", facecolor="none", hatch="//",
           edgecolor="#c44e52", label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1 + SLIVER * any(b["upper"] == b["lower"] for b in bins))
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    names = {"l1": "ECE", "l2": "RMSCE", "max": "MCE"}
    ax.set_title(f"{result.task}: {names[result.norm]} {result.value:.4f} ({result.n_bins} {result.binning} bins, "
                 f"N={result.count})")
    ax.legend(loc="upper left", fontsize="small")


def _draw_counts(ax, result: CalibrationResult) -> None:
    bins, lefts, widths = _filled(result)
    ax.bar(lefts, [b["count"] for b in bins], widths, align="edge", color="gray", edgecolor="white")
    ax.set_xlabel("confidence")
    ax.set_ylabel("samples")
