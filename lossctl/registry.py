"""The loss registry: one frozen `LossSpec` per loss, from which commands, `list`, `explain` and tests follow.

Declaring a spec imports nothing heavy; the compute function imports torch when it runs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError


def flag(name: str) -> str:
    """The command-line option for a role or option name: `log_probs` -> `--log-probs`."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Role:
    """One array the loss reads, e.g. `logits`. Roles sharing a `group` are alternatives: exactly one is given."""

    name: str
    help: str
    required: bool = True
    group: str | None = None
    integer: bool = False  # holds class indices or labels, never cast to the float compute dtype
    neg_inf_ok: bool = False  # -inf is meaningful here (a masked logit, log 0)
    batched: bool = True  # its first axis is the batch; False for per-class arrays such as CE's weight

    @property
    def flag(self) -> str:
        return flag(self.name)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class LossSpec:
    name: str
    torch_name: str
    summary: str
    formula: str
    roles: tuple[Role, ...]
    compute: str | Callable[..., Any]  # "module:function", imported only when the loss is computed
    options: tuple[Opt, ...] = ()
    aliases: tuple[str, ...] = ()
    reductions: tuple[str, ...] = ("mean", "sum", "none")
    default_reduction: str = "mean"
    information: bool = False  # measured in nats, so --base applies
    post: str | None = None  # applied to the reduced value: "exp" makes perplexity of the mean CE
    stream: str | None = None  # big files stream in chunks of "rows" (a batch axis needed) or of "elements"
    traps: tuple[str, ...] = ()
    denominator: str = "the number of elements"
    extra: dict[str, Any] = field(default_factory=dict)

    def compute_fn(self) -> Callable[..., Any]:
        if callable(self.compute):
            return self.compute
        import importlib

        module, _, func = self.compute.partition(":")
        return getattr(importlib.import_module(module), func)

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
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def _load_builtin() -> None:
    # Importing the families registers their specs; none of them imports torch at module level.
    from . import specs  # noqa: F401


def get_loss(name: str) -> LossSpec:
    _load_builtin()
    key = _ALIASES.get(name, name)
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(list_losses())
        raise UsageError(f"unknown loss {name!r}; known losses: {known}") from None


def list_losses(pattern: str | None = None) -> list[str]:
    _load_builtin()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def all_specs() -> list[LossSpec]:
    return [_REGISTRY[n] for n in list_losses()]


def describe_spec(spec: LossSpec) -> dict[str, Any]:
    """What `lossctl list` shows of a loss, as data."""
    return {
        "name": spec.name, "aliases": list(spec.aliases), "torch": spec.torch_name,
        "arrays": [r.flag + ("" if r.required or r.group else "?") for r in spec.roles],
        "options": {o.flag: o.default for o in spec.options}, "reductions": list(spec.reductions),
        "default_reduction": spec.default_reduction, "summary": spec.summary,
    }
