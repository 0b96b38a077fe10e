"""Result or CheckResult -> text for stdout: a Rich table for people; plain, JSON or CSV for pipelines.

Each format is a function from data to a string (or a Rich renderable for tables). Nothing here prints.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .result import Catalog, CheckResult, MultiResult, Result

FORMATS = ("auto", "table", "json", "csv", "plain")
TABLE_ROWS = 50  # a table of per-element values stops here; plain, csv and json give them all


def number(x: float) -> str:
    """repr precision, the shortest text that reads back as the same float."""
    return repr(float(x))


def _json_value(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no inf or nan; say it in text rather than emit invalid JSON
    if isinstance(x, list):
        return [_json_value(v) for v in x]
    if isinstance(x, dict):
        return {k: _json_value(v) for k, v in x.items()}
    if isinstance(x, np.generic):
        return x.item()
    return x


def to_json(obj: Result | Sequence[CheckResult] | CheckResult | Catalog | MultiResult) -> str:
    if isinstance(obj, (Result, CheckResult, Catalog, MultiResult)):
        data = obj.to_dict()
    else:
        data = {"ok": all(c.ok for c in obj), "checks": [c.to_dict() for c in obj]}
    return json.dumps(_json_value(data), allow_nan=False)


def to_plain(obj: Result | Sequence[CheckResult] | CheckResult | Catalog | MultiResult) -> str:
    if isinstance(obj, MultiResult):
        # One number per file, then the exact total on the last line.
        if obj.total.values is not None:
            return to_plain(obj.total)
        return "\n".join(number(r.value) for r in [*obj.results, obj.total])
    if isinstance(obj, Catalog):
        return "\n".join(f"{r['name']}\t{r['torch']}\t{r['summary']}" for r in obj.rows)
    if isinstance(obj, Result):
        if obj.values is not None:
            return "\n".join(number(v) for v in np.asarray(obj.values).reshape(-1))
        return number(obj.value)
    checks = [obj] if isinstance(obj, CheckResult) else list(obj)
    lines = []
    for c in checks:
        if c.skipped:
            lines.append(f"{c.name}\tskipped")
        elif isinstance(obj, CheckResult):
            lines.extend(f"{r.label}\t{number(r.left)}\t{number(r.right)}\t{'ok' if r.ok else 'FAIL'}" for r in c.rows)
        else:
            lines.append(f"{c.name}\t{'ok' if c.ok else 'FAIL'}\t{number(c.max_residual)}")
    return "\n".join(lines)


def to_csv(obj: Result | Sequence[CheckResult] | CheckResult | Catalog | MultiResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if isinstance(obj, MultiResult) and obj.total.values is not None:
        return to_csv(obj.total)  # reduction none: every value, files in order, as plain prints them
    if isinstance(obj, MultiResult):
        w.writerow(["file", "loss", "reduction", "value", "total", "denominator", "dtype"])
        for label, r in [*zip(obj.labels, obj.results, strict=True), ("total", obj.total)]:
            w.writerow([label, r.loss, r.reduction, number(r.value) if r.value is not None else "",
                        number(r.partial.total), number(r.partial.denominator), r.dtype])
        return buf.getvalue().rstrip("\n")
    if isinstance(obj, Catalog):
        w.writerow(["name", "aliases", "torch", "arrays", "options", "summary"])
        for r in obj.rows:
            w.writerow([r["name"], " ".join(r["aliases"]), r["torch"], " ".join(r["arrays"]),
                        " ".join(f"{k}={v}" for k, v in r["options"].items()), r["summary"]])
        return buf.getvalue().rstrip("\n")
    if isinstance(obj, Result):
        if obj.values is not None:
            values = np.asarray(obj.values)
            w.writerow([*(f"i{d}" for d in range(values.ndim)), "value"])
            for idx in np.ndindex(values.shape):
                w.writerow([*idx, number(values[idx])])
        else:
            w.writerow(["loss", "reduction", "value", "total", "denominator", "dtype"])
            w.writerow([obj.loss, obj.reduction, number(obj.value), number(obj.partial.total),
                        number(obj.partial.denominator), obj.dtype])
        return buf.getvalue().rstrip("\n")
    checks = [obj] if isinstance(obj, CheckResult) else list(obj)
    if isinstance(obj, CheckResult):
        w.writerow(["sample", obj.left_name, *obj.columns, obj.right_name, "residual", "ok"])
        for r in obj.rows:
            w.writerow([r.label, number(r.left), *(number(r.extra[k]) for k in obj.columns), number(r.right),
                        number(r.residual), r.ok])
    else:
        w.writerow(["check", "ok", "passed", "total", "max_residual", "skipped"])
        for c in checks:
            w.writerow([c.name, c.ok, c.passed, len(c.rows), number(c.max_residual), c.skipped or ""])
    return buf.getvalue().rstrip("\n")


def to_table(obj: Result | Sequence[CheckResult] | CheckResult | Catalog | MultiResult):
    """A Rich renderable. Every data cell is a Text, so nothing in the data is read as markup."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if isinstance(obj, MultiResult):
        t = Table(title=Text(f"lossctl {obj.total.loss}  ({obj.total.torch_name}), {len(obj.results)} files"))
        for name in ("file", "value", "denominator"):
            t.add_column(name, justify="right" if name == "value" else "left")
        for label, r in zip(obj.labels, obj.results, strict=True):
            t.add_row(Text(label), Text(number(r.value) if r.value is not None else "-"), Text(r.denominator))
        total = obj.total
        t.add_row(Text("total", style="bold"), Text(number(total.value) if total.value is not None else "-",
                                                    style="bold green"), Text(total.denominator))
        return Group(t, Text(f"dtype {total.dtype}; " + "; ".join(total.notes)))

    if isinstance(obj, Catalog):
        t = Table(title=Text("lossctl losses"))
        for name in ("name", "torch", "arrays", "options", "meaning"):
            t.add_column(name)
        for r in obj.rows:
            name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
            t.add_row(Text(name), Text(r["torch"]), Text(" ".join(r["arrays"])),
                      Text(" ".join(f"{k}={v}" for k, v in r["options"].items())), Text(r["summary"]))
        return t

    if isinstance(obj, Result):
        t = Table(title=Text(f"lossctl {obj.loss}  ({obj.torch_name})"), show_header=False)
        t.add_column("field", style="bold")
        t.add_column("value")
        if obj.values is None:
            label = obj.unit and f"value ({obj.unit})" or "value"
            t.add_row(label, Text(number(obj.value), style="bold green"))
        t.add_row("reduction", Text(obj.reduction))
        t.add_row("denominator", Text(obj.denominator))
        t.add_row("dtype", Text(obj.dtype))
        t.add_row("shapes", Text(", ".join(f"{k} {tuple(v)}" for k, v in obj.shapes.items())))
        if obj.options:
            t.add_row("options", Text(", ".join(f"{k}={v}" for k, v in obj.options.items())))
        for note in obj.notes:
            t.add_row("note", Text(note))
        for warning in obj.warnings:  # also on stderr, where pipelines see them
            t.add_row(Text("warning", style="bold yellow"), Text(warning, style="yellow"))
        if obj.values is None:
            return t
        values = np.asarray(obj.values)
        v = Table(title=Text(f"values ({obj.unit})" if obj.unit else "values"))
        v.add_column("index")
        v.add_column("value", justify="right")
        for n, idx in enumerate(np.ndindex(values.shape)):
            if n == TABLE_ROWS:
                v.add_row("…", Text(f"{values.size - TABLE_ROWS} more: use --format csv or plain for all"))
                break
            v.add_row(Text(str(list(idx))), Text(number(values[idx])))
        return Group(t, v)
    if isinstance(obj, CheckResult):
        t = Table(title=Text(f"{obj.statement}"))
        for name in ("sample", obj.left_name, *obj.columns, obj.right_name, "residual", "ok"):
            t.add_column(name, justify="left" if name == "sample" else "right")
        for r in obj.rows[:TABLE_ROWS]:
            # Eight significant digits keep the table readable; plain, csv and json give full precision.
            t.add_row(Text(r.label), Text(f"{r.left:.8g}"), *(Text(f"{r.extra[k]:.8g}") for k in obj.columns),
                      Text(f"{r.right:.8g}"), Text(f"{r.residual:.3g}"), _verdict(r.ok))
        if len(obj.rows) > TABLE_ROWS:
            t.add_row("…", Text(f"{len(obj.rows) - TABLE_ROWS} more rows: use --format csv"))
        return Group(t, Text(summary(obj)), *(Text("note: " + n) for n in obj.notes))
    t = Table(title=Text("lossctl check: the tutorial's identities"))
    for name in ("check", "statement", "result", "max residual", "tolerance"):
        t.add_column(name)
    for c in obj:
        verdict = Text("skipped: " + c.skipped, style="dim") if c.skipped else _verdict(
            c.ok, f"{c.passed}/{len(c.rows)} pass")
        t.add_row(Text(c.name), Text(c.statement), verdict, Text(f"{c.max_residual:.3g}"),
                  Text(f"atol {c.atol:g}, rtol {c.rtol:g}"))
    return t


def summary(c: CheckResult) -> str:
    return (f"{c.passed} of {len(c.rows)} pass; largest residual {c.max_residual:.3g}; "
            f"tolerance atol {c.atol:g} + rtol {c.rtol:g} x |value| ({c.dtype})")


def _verdict(ok: bool, text: str | None = None):
    from rich.text import Text

    return Text(text or ("ok" if ok else "FAIL"), style="green" if ok else "bold red")


RENDERERS = {"json": to_json, "plain": to_plain, "csv": to_csv, "table": to_table}
