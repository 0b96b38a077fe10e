"""`lossctl explain NAME`: what a loss computes, as data, from its spec; with arrays, the computation step by step.

Pure functions returning an `Explanation`; `lossctl.render` shows it in every format. Without arrays only the
registry is read (no numpy, no torch). With arrays the loss runs through the same pipeline as `lossctl NAME`, and
where the spec names explain steps (cross entropy and perplexity) each step of the first samples is shown from
the same NumPy kernel that computes the loss.
"""

from __future__ import annotations

from typing import Any

from .command_results import Explanation
from .specs import get_loss


def explain(name: str) -> Explanation:
    """Everything the spec says about a loss; imports neither numpy nor torch."""
    spec = get_loss(name)
    return Explanation(
        name=spec.name, aliases=list(spec.aliases), torch_name=spec.torch_name, summary=spec.summary,
        formula=spec.formula,
        arrays=[{"flag": r.flag, "help": r.help, "required": r.required and not r.group, "group": r.group}
                for r in spec.roles],
        options=[{"flag": o.flag, "default": o.default, "help": o.help, "choices": list(o.choices)}
                 for o in spec.options],
        reductions=list(spec.reductions), default_reduction=spec.default_reduction, denominator=spec.denominator,
        traps=list(spec.traps), information=spec.information,
    )


def explain_data(name: str, sources: dict[str, Any], options: dict[str, Any] | None = None, *,
                 reduction: str | None = None, dtype: str = "auto", base: str = "e", bundle: str | None = None,
                 samples: int = 3, class_axis: int = 1, header: str = "auto") -> Explanation:
    """The explanation plus the computation on the given arrays: first `samples` samples, then the reduction.

    class_axis: where the logits hold their classes, as `lossctl NAME --class-axis` takes it (-1: classes last)."""
    from .pipeline import gather, move_class_axis, run_loaded, settings
    from .registry import resolve

    spec = get_loss(name)
    expl = explain(spec.name)
    loaded = gather(spec, sources, bundle, header)
    st = settings(spec, options or {}, reduction=reduction, base=base, class_axis=class_axis)
    result = run_loaded(spec, loaded, st, dtype)
    expl.warnings = list(result.warnings)
    unit = f" {result.unit}" if result.unit else ""
    steps = resolve(spec.explain_steps)
    if steps is not None:
        arrays = move_class_axis(spec, {k: v.array for k, v in loaded.items()}, st)
        expl.steps, expl.totals = steps(arrays, result.options, samples)
        if result.dtype != "float64":  # the steps are float64 for display; the loss is the run's own
            expl.totals.append(("steps in float64", f"the value below is computed in {result.dtype}, as `lossctl "
                                f"{spec.name}` computes it, so it agrees with these steps to {result.dtype} "
                                "rounding only"))
        if base != "e":
            expl.totals.append(("base", f"{base}: the nats above are divided by ln {base}"))
    elif "none" in spec.reductions:
        per = result if st.reduction == "none" else run_loaded(
            spec, loaded, settings(spec, options or {}, reduction="none", base=base, class_axis=class_axis), dtype)
        expl.steps = value_steps(per.values, samples, unit)
    expl.totals += _reduction_lines(result, unit)
    return expl


def value_steps(values, samples: int, unit: str) -> list:
    """The first per-sample (or per-element) values, as torch gives them with reduction='none'."""
    import numpy as np

    from .command_results import Step

    values = np.asarray(values)
    if values.ndim == 0:
        return [Step("the only value", [("loss", f"{float(values):.10g}{unit}")])]
    return [Step(f"element {list(idx)}", [("loss", f"{float(values[idx]):.10g}{unit}")])
            for _, idx in zip(range(samples), np.ndindex(values.shape), strict=False)]


def _reduction_lines(result, unit: str) -> list[tuple[str, str]]:
    lines = [("reduction", result.reduction), ("dtype", result.dtype), ("backend", result.backend),
             ("sum", repr(result.partial.total)), ("denominator", result.denominator)]
    if result.values is None:
        lines.append(("value", repr(result.value) + unit))
    return lines + [("note", n) for n in result.notes]
