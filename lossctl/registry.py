"""The loss registry: one frozen `LossSpec` per loss, the only place that says what is particular to a loss.

A registry in the torchvision/timm shape: a dict, `register_loss` (raises on a duplicate name), `get_loss` and
`list_losses`. It does not import the loss families: `lossctl.specs` does, and registers them. Declaring a spec
imports neither numpy nor torch; its functions are "module:function" strings, imported when first called.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

BACKENDS = ("numpy", "torch")
NUMPY_AND_TORCH = ("numpy", "torch")  # a loss with a NumPy kernel; torch stays its definition


def flag(name: str) -> str:
    """The command-line option for a role or option name: `log_probs` -> `--log-probs`."""
    return "--" + name.replace("_", "-")


def resolve(path: str | Callable[..., Any] | None) -> Callable[..., Any] | None:
    """A "module:function" string (or a callable, or None) -> the callable, importing its module now."""
    if path is None or callable(path):
        return path
    module, _, func = path.partition(":")
    return getattr(importlib.import_module(module), func)


# The spec classes compare by identity (eq=False): each spec is built once, at import, and a generated __eq__
# and __hash__ would only cost start-up time.
@dataclass(frozen=True, eq=False)
class Role:
    """One array the loss reads, e.g. `logits`. Roles sharing a `group` are alternatives: exactly one is given."""

    name: str
    help: str
    required: bool = True
    group: str | None = None
    neg_inf_ok: bool = False  # -inf is meaningful here (a masked logit, log 0)
    # data with a batch axis, its first (ctc's time-first log_probs, which never streams, hold it at axis 1);
    # False for per-class arrays such as CE's weight, which shards must share for their partials to merge
    batched: bool = True
    # torch refuses an integer or bool tensor here, where lossctl reads its numbers as floats (a note says so)
    floats_only: bool = False
    # its values choose a branch of the formula (+-1 labels) and are no operand: a float64 one does not widen a
    # float32 input, as torch computes such a loss in the input's dtype
    label: bool = False
    # torch computes with this input in its own dtype before it meets a wider operand (log_softmax, log-sigmoid or
    # exp of float32 logits, then the float64 target), or all the way (HuberLoss casts the target to the input's
    # dtype): a float32 one keeps float32's precision, so a float64 operand does not widen it
    own_dtype: bool = False

    @property
    def flag(self) -> str:
        return flag(self.name)


@dataclass(frozen=True, eq=False)
class Opt:
    """A scalar option with torch's default; `type` is one of float, int, bool, str."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return flag(self.name)


@dataclass(frozen=True, eq=False)
class Streaming:
    """How a loss streams a big file: chunks of rows (a batch axis is needed) or of elements.

    `when(options, ndim)`: whether these options allow it for an input of `ndim` axes (entropy's classes may lie
    along the batch axis); None: always. A target with one axis fewer than the input (class indices) streams
    beside it when `index_target` is set.
    """

    along: str  # "rows" or "elements"
    when: Callable[[dict[str, Any], int], bool] | None = None
    index_target: bool = False

    def allows(self, options: dict[str, Any], ndim: int) -> bool:
        if self.along == "rows" and ndim < 2:
            return False  # a (C) input is one distribution: there is no batch axis to split
        return self.when is None or self.when(options, ndim)


@dataclass(frozen=True, eq=False)
class LossSpec:
    """Everything particular to one loss.

    compute: the loss function, "module:function", with keyword parameters named as its roles and options
        plus `ctx`; it validates, then computes with the backend `ctx` names.
    backends: the backends `compute` has: ("numpy", "torch") where a NumPy kernel exists, else ("torch",).
    stream: how it streams, or None when it does not.
    explain_steps: "module:function" giving the worked computation for `lossctl explain` with arrays.
    post: "module:function" applied to the reduced value, its partial and the compute dtype, giving (value, note,
        warnings): perplexity's exp; the partial stays the loss's own, so shards merge before it.
    lints, report, baseline, class_roles: the sanity reports that apply to the loss (see lossctl.reports).
    breakdown_loss: what the "loss" of --by-class and --worst is where it is not the loss itself (perplexity's is
        each target's cross entropy): their label in every output format.
    """

    name: str
    torch_name: str
    summary: str
    formula: str
    roles: tuple[Role, ...]
    compute: str
    options: tuple[Opt, ...] = ()
    aliases: tuple[str, ...] = ()
    reductions: tuple[str, ...] = ("mean", "sum", "none")
    default_reduction: str = "mean"
    information: bool = False  # measured in nats, so --base applies
    backends: tuple[str, ...] = ("torch",)
    stream: Streaming | None = None
    explain_steps: str | None = None
    post: str | None = None
    lints: tuple[str, ...] = ()  # input-convention rules by name (lossctl.reports.LINTS, VALUE_LINTS)
    report: str | None = None  # "module:function": a run's (or chunk's) mergeable ReportPartial
    baseline: str | None = None  # which baselines apply: "ce", "bce" or "focal"
    class_roles: tuple[str, ...] = ()  # roles with the classes on torch's axis 1, which --class-axis moves there
    breakdown_loss: str = ""
    traps: tuple[str, ...] = ()
    denominator: str = "the number of elements"

    def compute_fn(self) -> Callable[..., Any]:
        return resolve(self.compute)

    def role(self, name: str) -> Role:
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(name)

    def groups(self) -> dict[str, tuple[Role, ...]]:
        out: dict[str, list[Role]] = {}
        for role in self.roles:
            out.setdefault(role.group or role.name, []).append(role)
        return {k: tuple(v) for k, v in out.items()}


_REGISTRY: dict[str, LossSpec] = {}
_ALIASES: dict[str, str] = {}


def register_loss(spec: LossSpec) -> LossSpec:
    for name in (spec.name, *spec.aliases):
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"loss name {name!r} is already registered")
    unknown = set(spec.backends) - set(BACKENDS)
    if unknown or "torch" not in spec.backends:
        raise ValueError(f"{spec.name}: backends must include torch and be among {BACKENDS}")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def get_loss(name: str) -> LossSpec:
    key = _ALIASES.get(name, name)
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(list_losses())
        raise UsageError(f"unknown loss {name!r}; known losses: {known}") from None


def list_losses(pattern: str | None = None) -> list[str]:
    """The registered names, sorted; with a glob, those whose name or one of whose aliases matches it (`ppl` and
    `cross*` find perplexity and ce, as `lossctl ppl` and `lossctl cross-entropy` run them)."""
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if any(fnmatch.fnmatchcase(a, pattern) for a in (n, *_REGISTRY[n].aliases))]
    return names


def all_specs() -> list[LossSpec]:
    return [_REGISTRY[n] for n in list_losses()]


def listed_arrays(spec: LossSpec) -> list[str]:
    """The arrays as `lossctl list` shows them: an optional one with `?`, the alternatives of a group as one entry
    (`--log-probs|--logits|--probs`: exactly one is given)."""
    shown: list[str] = []
    at: dict[str, int] = {}
    for r in spec.roles:
        if r.group in at:
            shown[at[r.group]] += "|" + r.flag
            continue
        if r.group:
            at[r.group] = len(shown)
        shown.append(r.flag + ("" if r.required or r.group else "?"))
    return shown


def describe_spec(spec: LossSpec) -> dict[str, Any]:
    """What `lossctl list` shows of a loss, as data."""
    return {
        "name": spec.name, "aliases": list(spec.aliases), "torch": spec.torch_name,
        "arrays": listed_arrays(spec),
        "options": {o.flag: o.default for o in spec.options}, "reductions": list(spec.reductions),
        "default_reduction": spec.default_reduction, "backends": list(spec.backends),
        "streams": spec.stream is not None, "summary": spec.summary,
    }
