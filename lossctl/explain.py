"""`lossctl explain NAME`: what a loss computes, as data, from its spec; with arrays, the computation step by step.

Pure functions returning an `Explanation`; `to_text` turns it into plain text. Nothing here prints. Without arrays
only the registry is read (no numpy, no torch); with arrays the loss runs, and for cross entropy each step
(softmax, the picked log-probability, the weight, the sum and the denominator) is recomputed in float64 NumPy
beside torch's result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UsageError
from .registry import LossSpec, get_loss

COMMON = ("reduction", "dtype", "base", "from")
CE_STEPS = ("ce", "perplexity")


@dataclass
class Step:
    """One sample of the worked computation: a label such as `sample [0]` and `name = value` lines."""

    label: str
    lines: list[tuple[str, str]]


@dataclass
class Explanation:
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


def parse_args(spec: LossSpec, args: list[str]) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """`--logits FILE --ignore-index 3 --reduction sum` -> (sources, options, common settings)."""
    roles = {r.name for r in spec.roles}
    opts = {o.name: o for o in spec.options}
    sources: dict[str, str] = {}
    options: dict[str, Any] = {}
    common: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--"):
            raise UsageError(f"unexpected argument {token!r}; give arrays and options as --flag VALUE",
                             option="explain")
        flag, has_value, value = token.partition("=")
        name = flag[2:].replace("-", "_")
        if name.startswith("no_") and name[3:] in opts and opts[name[3:]].type is bool:
            options[name[3:]] = False
            i += 1
            continue
        if name in opts and opts[name].type is bool and not has_value:
            options[name] = True
            i += 1
            continue
        if name not in roles and name not in opts and name not in COMMON:
            raise UsageError(f"{spec.name} has no array or option {flag}", option=flag)
        if not has_value:
            if i + 1 >= len(args):
                raise UsageError("needs a value", option=flag)
            value = args[i + 1]
            i += 1
        i += 1
        if name in roles:
            sources[name] = value
        elif name in COMMON:
            common[name] = value
        else:
            options[name] = _convert(opts[name], value, flag)
    return sources, options, common


def _convert(opt, value: str, flag: str) -> Any:
    if opt.type is bool:
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
    else:
        try:
            return opt.type(value)
        except ValueError:
            pass
    raise UsageError(f"expects a {opt.type.__name__}; got {value!r}", option=flag)


def explain_data(name: str, sources: dict[str, Any], options: dict[str, Any] | None = None, *,
                 reduction: str | None = None, dtype: str = "auto", base: str = "e", bundle: str | None = None,
                 samples: int = 3) -> Explanation:
    """The explanation plus the computation on the given arrays: first `samples` samples, then the reduction."""
    from .api import gather, run_loss

    spec = get_loss(name)
    expl = explain(spec.name)
    options = options or {}
    loaded = gather(spec, sources, bundle)
    reduction = reduction or spec.default_reduction
    result = run_loss(spec, loaded, options, reduction=reduction, dtype=dtype, base=base)
    expl.warnings = list(result.warnings)
    unit = f" {result.unit}" if result.unit else ""
    if spec.name in CE_STEPS:
        from .explain_steps import ce_steps

        arrays = {k: v.array for k, v in loaded.items()}
        expl.steps, expl.totals = ce_steps(arrays, result.options, samples, perplexity=spec.name == "perplexity")
        if base != "e":
            expl.totals.append(("base", f"{base}: torch's nats are divided by ln {base}"))
    else:
        per = result if reduction == "none" else (
            run_loss(spec, loaded, options, reduction="none", dtype=dtype, base=base)
            if "none" in spec.reductions else None)
        if per is not None:
            from .explain_steps import value_steps

            expl.steps = value_steps(per.values, samples, unit)
    expl.totals += _reduction_lines(result, unit)
    return expl


def _reduction_lines(result, unit: str) -> list[tuple[str, str]]:
    from .render import number

    lines = [("reduction", result.reduction)]
    lines += [("torch sum", number(result.partial.total)), ("denominator", result.denominator)]
    if result.values is None:
        lines.append(("torch value", number(result.value) + unit))
    return lines + [("note", n) for n in result.notes]


def explain_command(name: str, args: list[str], *, samples: int = 3, fmt: str = "text") -> str:
    """What the CLI prints for `lossctl explain NAME [ARRAYS AND OPTIONS]`: text, or JSON with --format json."""
    spec = get_loss(name)
    sources, options, common = parse_args(spec, args)
    if fmt not in ("text", "json"):
        raise UsageError(f"must be text or json; got {fmt!r}", option="--format")
    if sources or "from" in common:
        expl = explain_data(spec.name, sources, options, reduction=common.get("reduction"),
                            dtype=common.get("dtype", "auto"), base=common.get("base", "e"),
                            bundle=common.get("from"), samples=samples)
    elif options or common:
        raise UsageError("options need arrays to explain a computation; give the loss's arrays too",
                         option="explain")
    else:
        expl = explain(spec.name)
    if fmt == "json":
        import json

        from .render import _json_value

        return json.dumps(_json_value(expl.to_dict()))
    return to_text(expl)


def to_text(expl: Explanation) -> str:
    out = [f"{expl.name}" + (f" (aliases: {', '.join(expl.aliases)})" if expl.aliases else "")
           + f": {expl.torch_name}", f"  {expl.summary}", "", "formula", f"  {expl.formula}", "", "arrays"]
    for a in expl.arrays:
        need = "required" if a["required"] else f"one of the {a['group']} group" if a["group"] else "optional"
        out.append(f"  {a['flag']} ({need}): {a['help']}")
    if expl.options:
        out += ["", "options"]
        for o in expl.options:
            out.append(f"  {o['flag']} [default: {o['default']}]: {o['help']}")
    out += ["", "reduction", f"  --reduction {' | '.join(expl.reductions)} [default: {expl.default_reduction}]",
            f"  mean divides by: {expl.denominator}"]
    if expl.information:
        out.append("  --base e | 2 | 10: nats (default), bits or bans")
    if expl.traps:
        out += ["", "traps"] + [f"  - {t}" for t in expl.traps]
    if expl.steps:
        out += ["", f"step by step (first {len(expl.steps)})"]
        for s in expl.steps:
            out.append(f"  {s.label}")
            out += [f"    {k} = {v}" for k, v in s.lines]
    if expl.totals:
        out += ["", "result"] + [f"  {k}: {v}" for k, v in expl.totals]
    out += [f"warning: {w}" for w in expl.warnings]
    return "\n".join(out)
