"""Plain text: numbers only, one per line, for shells and pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ByTypeName, number, value_blocks

if TYPE_CHECKING:
    from ..calibration_result import CalibrationFiles, CalibrationResult
    from ..command_results import Catalog, CheckReport, CheckResult, Explanation, GradientResult
    from ..result import MultiResult, Result

render = ByTypeName("plain")


@render.register("Result")
def _result(obj: Result) -> str:
    if obj.values is not None:
        return value_blocks(obj.values, index=False)
    return number(obj.value)


@render.register("MultiResult")
def _multi_result(obj: MultiResult) -> str:
    # One number per file, then the exact total on the last line; reduction none: every value, files in order.
    if obj.total.values is not None:
        return render(obj.total)
    return "\n".join(number(r.value) for r in [*obj.results, obj.total])


@render.register("CheckResult")
def _check_result(obj: CheckResult) -> str:
    if obj.skipped:
        return f"{obj.name}\tskipped"
    return "\n".join(f"{r.label}\t{number(r.left)}\t{number(r.right)}\t{'ok' if r.ok else 'FAIL'}" for r in obj.rows)


@render.register("CheckReport")
def _check_report(obj: CheckReport) -> str:
    return "\n".join(f"{c.name}\tskipped" if c.skipped else f"{c.name}\t{'ok' if c.ok else 'FAIL'}\t"
                     f"{number(c.max_residual)}" for c in obj)


@render.register("Catalog")
def _catalog(obj: Catalog) -> str:
    return "\n".join(f"{r['name']}\t{r['torch']}\t{r['summary']}" for r in obj.rows)


@render.register("Explanation")
def _explanation(expl: Explanation) -> str:
    out = [f"{expl.name}" + (f" (aliases: {', '.join(expl.aliases)})" if expl.aliases else "")
           + f": {expl.torch_name}", f"  {expl.summary}", "", "formula", f"  {expl.formula}", "", "arrays"]
    for a in expl.arrays:
        need = "required" if a["required"] else f"one of the {a['group']} group" if a["group"] else "optional"
        out.append(f"  {a['flag']} ({need}): {a['help']}")
    if expl.options:
        out += ["", "options"] + [f"  {o['flag']} [default: {o['default']}]: {o['help']}" for o in expl.options]
    out += ["", "reduction", f"  --reduction {' | '.join(expl.reductions)} [default: {expl.default_reduction}]",
            f"  mean divides by: {expl.denominator}"]
    if expl.information:
        out.append("  --base e | 2 | 10: nats (default), bits or bans")
    if expl.traps:
        out += ["", "traps"] + [f"  - {t}" for t in expl.traps]
    if expl.steps:
        out += ["", f"step by step (first {len(expl.steps)})"]
        for s in expl.steps:
            out += [f"  {s.label}"] + [f"    {k} = {v}" for k, v in s.lines]
    if expl.totals:
        out += ["", "result"] + [f"  {k}: {v}" for k, v in expl.totals]
    return "\n".join(out)


# --- calibration ---------------------------------------------------------------------------------------------

@render.register("CalibrationResult")
def _calibration_result(obj: CalibrationResult) -> str:
    return number(obj.value)


@render.register("CalibrationFiles")
def _calibration_files(obj: CalibrationFiles) -> str:
    # One value per file, then the exact total on the last line, as for losses.
    return "\n".join(number(r.value) for r in [*obj.results, obj.total])


# --- gradients -----------------------------------------------------------------------------------------------

@render.register("GradientResult")
def _gradient_result(obj: GradientResult) -> str:
    # One number per line, as reduction none prints values; with several inputs each line starts with its role.
    several = len(obj.gradients) > 1
    return "\n".join(f"{role}\t{number(v)}" if several else number(v)
                     for role, g in obj.gradients.items() for v in g.reshape(-1))

