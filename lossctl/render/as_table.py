"""Rich tables for people at a terminal. Every data cell is a Text, so nothing in the data is read as markup."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from . import BY_CLASS_COLUMNS, WORST_COLUMNS, ByTypeName, breakdown_header, number
from .as_plain import render as plain

TABLE_ROWS = 50  # a table of per-element values stops here; plain, csv and json give them all

if TYPE_CHECKING:
    from ..calibration_result import CalibrationFiles, CalibrationResult
    from ..command_results import Catalog, CheckReport, CheckResult, Explanation, GradientResult
    from ..result import MultiResult, Result

render = ByTypeName("table")


def _verdict(ok: bool, text: str | None = None) -> Text:
    return Text(text or ("ok" if ok else "FAIL"), style="green" if ok else "bold red")


def _fields(obj: Result) -> Table:
    t = Table(title=Text(f"lossctl {obj.loss}  ({obj.torch_name})"), show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    if obj.values is None:
        t.add_row(f"value ({obj.unit})" if obj.unit else "value", Text(number(obj.value), style="bold green"))
    t.add_row("reduction", Text(obj.reduction))
    t.add_row("denominator", Text(obj.denominator))
    t.add_row("dtype", Text(obj.dtype))
    t.add_row("backend", Text(obj.backend))
    if obj.shapes:  # a total over several files has none of its own
        t.add_row("shapes", Text(", ".join(f"{k} {tuple(v)}" for k, v in obj.shapes.items())))
    if obj.options:
        t.add_row("options", Text(", ".join(f"{k}={v}" for k, v in obj.options.items())))
    for name, b in obj.baselines.items():  # what a uniform / the best constant / any prediction would score
        ratio = "a baseline of 0: no ratio" if b["value"] == 0 else f"the loss is {b['ratio']:.4g}x this"
        t.add_row(f"baseline {name}", Text(f"{b['value']:.8g}  ({ratio})"))
    t.add_row("signature", Text(obj.signature, style="dim", overflow="fold"))
    for note in obj.notes:
        t.add_row("note", Text(note))
    for warning in obj.warnings:  # also on stderr, where pipelines see them
        t.add_row(Text("warning", style="bold yellow"), Text(warning, style="yellow"))
    return t


def _rows_table(title: str, rows: list[dict], columns: tuple[str, ...], loss_label: str = "") -> Table:
    t = Table(title=Text(title))
    for c in columns:
        t.add_column(breakdown_header(c, loss_label), justify="left" if c in ("class", "index") else "right")
    for r in rows[:TABLE_ROWS]:
        t.add_row(*(Text(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])) for c in columns))
    return t


@render.register("Result")
def _result(obj: Result):
    parts = [_fields(obj)]
    if obj.by_class is not None:
        parts.append(_rows_table("by class", obj.by_class, BY_CLASS_COLUMNS, obj.breakdown_loss))
    if obj.worst is not None:
        parts.append(_rows_table(f"the {len(obj.worst)} highest losses", obj.worst, WORST_COLUMNS,
                                 obj.breakdown_loss))
    if obj.values is None:
        return Group(*parts) if len(parts) > 1 else parts[0]
    if obj.summary is not None:
        summary = ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in obj.summary.items())
        parts += [Text("per-sample losses: " + summary), Text("\n".join(obj.histogram or []))]
    title = f"values ({obj.unit})" if obj.unit else "values"
    return Group(*parts, index_table(title, "value", np.asarray(obj.values), "use --format csv or plain for all"))


def index_table(title: str, column: str, values: np.ndarray, more: str) -> Table:
    """One row per element, [index] and value, up to TABLE_ROWS; then how to see the rest."""
    v = Table(title=Text(title))
    v.add_column("index")
    v.add_column(column, justify="right")
    for n, idx in enumerate(np.ndindex(values.shape)):
        if n == TABLE_ROWS:
            v.add_row("…", Text(f"{values.size - TABLE_ROWS} more: {more}"))
            break
        v.add_row(Text(str(list(idx))), Text(number(values[idx])))
    return v


@render.register("MultiResult")
def _multi_result(obj: MultiResult):
    t = Table(title=Text(f"lossctl {obj.total.loss}  ({obj.total.torch_name}), {len(obj.results)} files"))
    for name in ("file", "value", "denominator"):
        t.add_column(name, justify="right" if name == "value" else "left")
    for label, r in zip(obj.labels, obj.results, strict=True):
        t.add_row(Text(label), Text(number(r.value) if r.value is not None else "-"), Text(r.denominator))
    total = obj.total
    t.add_row(Text("total", style="bold"), Text(number(total.value) if total.value is not None else "-",
                                                style="bold green"), Text(total.denominator))
    # then the total as a single run shows itself: options, baselines, signature, notes, breakdowns, values
    return Group(t, _result(total))


@render.register("CheckResult")
def _check_result(obj: CheckResult):
    t = Table(title=Text(f"{obj.statement}"))
    for name in ("sample", obj.left_name, *obj.columns, obj.right_name, "residual", "ok"):
        t.add_column(name, justify="left" if name == "sample" else "right")
    for r in obj.rows[:TABLE_ROWS]:
        # Eight significant digits keep the table readable; plain, csv and json give full precision.
        t.add_row(Text(r.label), Text(f"{r.left:.8g}"), *(Text(f"{r.extra[k]:.8g}") for k in obj.columns),
                  Text(f"{r.right:.8g}"), Text(f"{r.residual:.3g}"), _verdict(r.ok))
    if len(obj.rows) > TABLE_ROWS:
        t.add_row("…", Text(f"{len(obj.rows) - TABLE_ROWS} more rows: use --format csv"))
    summary = (f"{obj.passed} of {len(obj.rows)} pass; largest residual {obj.max_residual:.3g}; "
               f"tolerance atol {obj.atol:g} + rtol {obj.rtol:g} x |value| ({obj.dtype}, {obj.backend})")
    return Group(t, Text(summary), *(Text("note: " + n) for n in obj.notes),
                 *(Text("warning: " + w, style="yellow") for w in obj.warnings))  # also on stderr


@render.register("CheckReport")
def _check_report(obj: CheckReport):
    t = Table(title=Text(f"lossctl check: the tutorial's identities  ({obj[0].backend})" if len(obj) else
                         "lossctl check: the tutorial's identities"))
    for name in ("check", "statement", "result", "max residual", "tolerance"):
        t.add_column(name)
    for c in obj:
        verdict = Text("skipped: " + c.skipped, style="dim") if c.skipped else _verdict(
            c.ok, f"{c.passed}/{len(c.rows)} pass")
        # a skipped identity compared nothing: no residual (0 would read as a perfect agreement), no tolerance
        t.add_row(Text(c.name), Text(c.statement), verdict, Text("-" if c.skipped else f"{c.max_residual:.3g}"),
                  Text("-" if c.skipped else f"atol {c.atol:g}, rtol {c.rtol:g}"))
    # a failed check's notes say why (such as torch's own nan); a passing one's stay in JSON
    return Group(t, *(Text(f"note ({c.name}): {n}") for c in obj if not c.ok for n in c.notes),
                 *(Text("warning: " + w, style="yellow") for w in obj.warnings))  # also on stderr


@render.register("Catalog")
def _catalog(obj: Catalog):
    t = Table(title=Text("lossctl losses"))
    for name in ("name", "torch", "arrays", "options", "meaning"):
        t.add_column(name)
    for r in obj.rows:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        t.add_row(Text(name), Text(r["torch"]), Text(" ".join(r["arrays"])),
                  Text(" ".join(f"{k}={v}" for k, v in r["options"].items())), Text(r["summary"]))
    return t


@render.register("Explanation")
def _explanation(expl: Explanation):
    return Text(plain(expl))  # an explanation is prose: the plain text is its terminal form


# --- calibration ---------------------------------------------------------------------------------------------

NORM_NAMES = {"l1": "ECE", "l2": "RMSCE", "max": "MCE"}


def _cell(x, fmt: str = ".6f") -> Text:
    return Text("-" if x is None else format(x, fmt))


@render.register("CalibrationResult")
def _calibration_result(obj: CalibrationResult):
    from ..calibration import reliability_lines

    t = Table(title=Text(f"lossctl calibration  ({obj.task})"), show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row(f"value ({NORM_NAMES[obj.norm]})", Text(number(obj.value), style="bold green"))
    for name, x in (("ECE (l1)", obj.ece), ("RMSCE (l2)", obj.rmsce), ("MCE (max)", obj.mce)):
        t.add_row(name, Text(number(x)))
    t.add_row("count", Text(str(obj.count)))
    t.add_row("bins", Text(f"{obj.n_bins} {obj.binning}"))
    if obj.dtype:
        t.add_row("dtype", Text(obj.dtype))
    t.add_row("backend", Text(obj.backend))
    for note in obj.notes:
        t.add_row("note", Text(note))
    for warning in obj.warnings:  # also on stderr, where pipelines see them
        t.add_row(Text("warning", style="bold yellow"), Text(warning, style="yellow"))
    b = Table(title=Text("bins"))
    for name in ("lower", "upper", "count", "confidence", "accuracy", "gap"):
        b.add_column(name, justify="right")
    for row in obj.bins:
        b.add_row(_cell(row["lower"], ".4f"), _cell(row["upper"], ".4f"), Text(str(row["count"])),
                  _cell(row["confidence"]), _cell(row["accuracy"]), _cell(row["gap"], "+.6f"))
    # Whole lines, never wrapped: a diagram wrapped at the terminal's edge is unreadable (a narrow one crops it).
    return Group(t, b, Text("\n".join(reliability_lines(obj, width=30)), no_wrap=True, overflow="crop"))


@render.register("CalibrationFiles")
def _calibration_files(obj: CalibrationFiles):
    t = Table(title=Text(f"lossctl calibration  ({obj.total.task}), {len(obj.results)} files"))
    for name in ("file", NORM_NAMES[obj.total.norm], "count"):
        t.add_column(name, justify="left" if name == "file" else "right")
    for label, r in zip(obj.labels, obj.results, strict=True):
        t.add_row(Text(label), Text(number(r.value)), Text(str(r.count)))
    t.add_row(Text("total", style="bold"), Text(number(obj.total.value), style="bold green"),
              Text(str(obj.total.count)))
    return Group(t, Text("; ".join(obj.total.notes)))


# --- gradients -----------------------------------------------------------------------------------------------

@render.register("GradientResult")
def _gradient_result(obj: GradientResult):
    t = Table(title=Text(f"lossctl grad {obj.loss}  ({obj.torch_name})"), show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row("loss", Text(number(obj.value), style="bold green"))
    t.add_row("reduction", Text(obj.reduction))
    t.add_row("dtype", Text(obj.dtype))
    t.add_row("backend", Text(obj.backend))
    t.add_row("gradients", Text(", ".join(f"d loss / d {role} {tuple(g.shape)}" for role, g in
                                          obj.gradients.items())))
    for note in obj.notes:
        t.add_row("note", Text(note))
    for warning in obj.warnings:  # also on stderr, where pipelines see them
        t.add_row(Text("warning", style="bold yellow"), Text(warning, style="yellow"))
    tables = [t]
    for role, g in obj.gradients.items():
        tables.append(index_table(f"d loss / d {role}", "gradient", g, "use --format csv or plain, or -o FILE.npy"))
    return Group(*tables)

