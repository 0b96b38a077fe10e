"""CSV: a header row, then one row per value, file, check or loss."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import numpy as np

from ..reduce import divisor
from . import BY_CLASS_COLUMNS, WORST_COLUMNS, ByTypeName, breakdown_header, number, value_blocks

if TYPE_CHECKING:
    from ..calibration_result import CalibrationFiles, CalibrationResult
    from ..command_results import Catalog, CheckReport, CheckResult, Explanation, GradientResult
    from ..result import MultiResult, Result

render = ByTypeName("CSV")


def _table(header: list[str], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().rstrip("\n")


def _value(r: Result) -> str:
    return number(r.value) if r.value is not None else ""


def _breakdown(obj: Result) -> str | None:
    """--by-class or --worst K (one of them: check_breakdowns refuses both) as the CSV's one table."""
    if obj.by_class is not None:
        return _table([breakdown_header(c, obj.breakdown_loss) for c in BY_CLASS_COLUMNS],
                      ([_cell(r[c]) for c in BY_CLASS_COLUMNS] for r in obj.by_class))
    if obj.worst is not None:  # the index is one column per axis, as reduction none's values are; an index of
        # fewer axes (several files of different shapes) leaves the others empty, as the gradients' rows do
        ndim = max((len(r["index"]) for r in obj.worst), default=1)
        return _table([*(f"i{d}" for d in range(ndim)), *(breakdown_header(c, obj.breakdown_loss)
                                                           for c in WORST_COLUMNS[1:])],
                      ([*r["index"], *[""] * (ndim - len(r["index"])), *(_cell(r[c]) for c in WORST_COLUMNS[1:])]
                       for r in obj.worst))
    return None


@render.register("Result")
def _result(obj: Result) -> str:
    breakdown = _breakdown(obj)
    if breakdown is not None:
        return breakdown
    if obj.values is not None:
        return value_blocks(obj.values, index=True,
                            header=",".join([*(f"i{d}" for d in range(np.ndim(obj.values))), "value"]))
    return _table(["loss", "reduction", "value", "total", "denominator", "dtype", "backend"],
                  [[obj.loss, obj.reduction, _value(obj), number(obj.partial.total), _denominator(obj), obj.dtype,
                    obj.backend]])


def _denominator(r: Result) -> str:
    # what the value divides the total by, so that total / denominator is the value (batchmean: the rows)
    return number(divisor(r.partial, r.reduction))


@render.register("MultiResult")
def _multi_result(obj: MultiResult) -> str:
    breakdown = _breakdown(obj.total)  # of all the files together
    if breakdown is not None:
        return breakdown
    if obj.total.values is not None:
        return render(obj.total)  # reduction none: every value, files in order, as plain prints them
    rows = [[label, r.loss, r.reduction, _value(r), number(r.partial.total), _denominator(r), r.dtype, r.backend]
            for label, r in [*zip(obj.labels, obj.results, strict=True), ("total", obj.total)]]
    return _table(["file", "loss", "reduction", "value", "total", "denominator", "dtype", "backend"], rows)


@render.register("CheckResult")
def _check_result(obj: CheckResult) -> str:
    return _table(["sample", obj.left_name, *obj.columns, obj.right_name, "residual", "ok"],
                  ([r.label, number(r.left), *(number(r.extra[k]) for k in obj.columns), number(r.right),
                    number(r.residual), r.ok] for r in obj.rows))


@render.register("CheckReport")
def _check_report(obj: CheckReport) -> str:
    return _table(["check", "ok", "passed", "total", "max_residual", "skipped"],
                  ([c.name, c.ok, c.passed, len(c.rows), "" if c.skipped else number(c.max_residual), c.skipped or ""]
                   for c in obj))


@render.register("Catalog")
def _catalog(obj: Catalog) -> str:
    return _table(["name", "aliases", "torch", "arrays", "options", "summary"],
                  ([r["name"], " ".join(r["aliases"]), r["torch"], " ".join(r["arrays"]),
                    " ".join(f"{k}={v}" for k, v in r["options"].items()), r["summary"]] for r in obj.rows))


@render.register("Explanation")
def _explanation(expl: Explanation) -> str:
    rows = [["formula", "", expl.formula], ["denominator", "", expl.denominator]]
    rows += [["trap", "", t] for t in expl.traps]
    rows += [["step", s.label, f"{k} = {v}"] for s in expl.steps for k, v in s.lines]
    rows += [["result", k, v] for k, v in expl.totals]
    return _table(["section", "label", "text"], rows)


# --- calibration ---------------------------------------------------------------------------------------------

BIN_COLUMNS = ("lower", "upper", "count", "confidence", "accuracy", "gap")


def _cell(x) -> str:
    return "" if x is None else str(x) if isinstance(x, int) else number(x)


@render.register("CalibrationResult")
def _calibration_result(obj: CalibrationResult) -> str:
    return _table(list(BIN_COLUMNS), ([_cell(b[k]) for k in BIN_COLUMNS] for b in obj.bins))


@render.register("CalibrationFiles")
def _calibration_files(obj: CalibrationFiles) -> str:
    rows = [[label, r.task, r.norm, number(r.value), number(r.ece), number(r.rmsce), number(r.mce), r.count, r.dtype,
             r.backend] for label, r in [*zip(obj.labels, obj.results, strict=True), ("total", obj.total)]]
    return _table(["file", "task", "norm", "value", "ece", "rmsce", "mce", "count", "dtype", "backend"], rows)


# --- gradients -----------------------------------------------------------------------------------------------

@render.register("GradientResult")
def _gradient_result(obj: GradientResult) -> str:
    # One row per element: the input's role, its index (padded to the input with the most axes), the gradient.
    ndim = max(np.ndim(g) for g in obj.gradients.values())
    rows = ([role, *idx, *([""] * (ndim - len(idx))), number(g[idx])]
            for role, g in obj.gradients.items() for idx in np.ndindex(g.shape))
    return _table(["input", *(f"i{d}" for d in range(ndim)), "gradient"], rows)

