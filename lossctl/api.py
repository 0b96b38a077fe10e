"""The Python API: `compute("ce", logits=..., target=..., **options)`; the CLI is a thin layer over it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InputError, StrictWarningError, UsageError, ValueRangeError
from .io import Loaded, load_array, load_bundle, read_stdin
from .reduce import as_numpy, describe, finish, partial_of
from .registry import LossSpec, get_loss
from .result import Result

BASES = {"e": 1.0, "2": math.log(2.0), "10": math.log(10.0)}
UNITS = {"e": "nats", "2": "bits", "10": "bans"}
DTYPES = ("auto", "float32", "float64")


def gather(spec: LossSpec, sources: Mapping[str, Any], bundle: str | None = None) -> dict[str, Loaded]:
    """Load every given role: from its own source (path, '-', literal, array) or from the --from bundle."""
    sources = {k: v for k, v in sources.items() if v is not None}
    readers = [k for k, v in sources.items() if isinstance(v, str) and v == "-"]
    if bundle == "-":
        readers.append("from")
    if len(readers) > 1:
        flags = ", ".join("--" + r.replace("_", "-") for r in readers)
        raise UsageError(f"only one option may read standard input; {flags} all ask for '-'", option="-")
    stdin = read_stdin("--" + readers[0].replace("_", "-")) if readers else None
    loaded: dict[str, Loaded] = {}
    if bundle is not None:
        arrays, binary = load_bundle(bundle, stdin=stdin)
        names = {r.name for r in spec.roles}
        for key, arr in arrays.items():
            role = key.replace("-", "_")
            if role in names and role not in sources:
                loaded[role] = Loaded(np.asarray(arr), f"{bundle}:{key}", binary)
    for role, value in sources.items():
        flag = "--" + role.replace("_", "-")
        if isinstance(value, str):
            loaded[role] = load_array(value, option=flag, stdin=stdin)
        elif isinstance(value, Loaded):
            loaded[role] = value
        else:
            loaded[role] = Loaded(_as_array(value, flag), "array", _is_binary(value))
    _check_roles(spec, loaded, bundle)
    return loaded


def _as_array(value: Any, flag: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        if value.dtype.is_floating_point and value.element_size() < 4:
            value = value.float()
        return value.numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"must be numeric, got dtype {arr.dtype}", option=flag)
    return arr


def _is_binary(value: Any) -> bool:
    # Arrays and tensors keep their float dtype under auto, as a binary file does; Python lists are text-like.
    return isinstance(value, np.ndarray) or hasattr(value, "detach")


def _check_roles(spec: LossSpec, loaded: Mapping[str, Loaded], bundle: str | None) -> None:
    for roles in spec.groups().values():
        given = [r for r in roles if r.name in loaded]
        flags = " or ".join(r.flag for r in roles)
        if len(given) > 1:
            raise UsageError(f"give only one of {flags}", option=given[1].flag)
        if not given and all(r.required for r in roles):
            where = f" (and --from {bundle} has no key {' or '.join(r.name for r in roles)})" if bundle else ""
            raise UsageError(f"{spec.name} needs {flags}{where}", option=roles[0].flag)


def compute_dtype(spec: LossSpec, loaded: Mapping[str, Loaded], dtype: str) -> np.dtype:
    """auto: the float dtype of the first binary float input, float32 at least; text inputs compute in float64."""
    if dtype not in DTYPES:
        raise UsageError(f"must be one of {', '.join(DTYPES)}; got {dtype!r}", option="--dtype")
    if dtype != "auto":
        return np.dtype(dtype)
    for role in spec.roles:
        item = loaded.get(role.name)
        if item is not None and item.binary and item.array.dtype.kind == "f":
            return np.dtype(np.float64) if item.array.dtype == np.float64 else np.dtype(np.float32)
    return np.dtype(np.float64)


def check_finite(spec: LossSpec, loaded: Mapping[str, Loaded]) -> None:
    """NaN is never a loss input; +inf never; -inf only where it means something (masked logits, log 0)."""
    for role in spec.roles:
        item = loaded.get(role.name)
        if item is None or item.array.dtype.kind != "f":
            continue
        arr = item.array
        bad = np.isnan(arr) | (np.isposinf(arr)) | (np.isneginf(arr) if not role.neg_inf_ok else False)
        idx = np.flatnonzero(bad)
        if idx.size:
            pos = [int(i) for i in np.unravel_index(idx[0], arr.shape)] if arr.ndim else []
            raise ValueRangeError(f"{arr.flat[idx[0]]} at index {pos} ({item.source}); inputs must be finite"
                                  + ("" if not role.neg_inf_ok else " (-inf is allowed, as a mask)"),
                                  option=role.flag)


def resolve_options(spec: LossSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    known = {o.name: o for o in spec.options}
    out = {o.name: o.default for o in spec.options}
    for key, value in options.items():
        name = key.replace("-", "_")
        if name not in known:
            raise UsageError(f"{spec.name} has no option --{key.replace('_', '-')}", option="--" + key)
        if value is None:
            continue
        opt = known[name]
        if opt.choices and value not in opt.choices:
            raise UsageError(f"must be one of {', '.join(opt.choices)}; got {value!r}", option=opt.flag)
        out[name] = opt.type(value)
    return out


def run_loss(spec: LossSpec, loaded: Mapping[str, Loaded], options: Mapping[str, Any], *,
             reduction: str | None = None, dtype: str = "auto", base: str = "e", device: str = "cpu",
             strict: bool = False) -> Result:
    from .losses._common import Context

    reduction = reduction or spec.default_reduction
    if reduction not in spec.reductions:
        raise UsageError(f"must be one of {', '.join(spec.reductions)} for {spec.name}; got {reduction!r}",
                         option="--reduction")
    if base not in BASES:
        raise UsageError(f"must be one of e, 2, 10; got {base!r}", option="--base")
    if base != "e" and not spec.information:
        raise UsageError(f"{spec.name} is not measured in nats, so --base does not apply", option="--base")
    opts = resolve_options(spec, options)
    ctx = Context(dtype=compute_dtype(spec, loaded, dtype), device=device, reduction=reduction)
    check_finite(spec, loaded)
    arrays = {name: item.array for name, item in loaded.items()}
    out = spec.compute_fn()(arrays, opts, ctx)
    if strict and out.warnings:
        raise StrictWarningError(out.warnings[0] + " (--strict makes warnings errors)", option="--strict")
    if BASES[base] != 1.0:
        out.values = out.values / BASES[base]
        if out.mean_values is not None:
            out.mean_values = out.mean_values / BASES[base]
    partial = partial_of(out, reduction)
    result = Result(
        loss=spec.name, torch_name=spec.torch_name, reduction=reduction, dtype=str(ctx.dtype),
        shapes={name: list(item.array.shape) for name, item in loaded.items()},
        options={**opts, **({"base": base} if spec.information else {})}, partial=partial,
        denominator=describe(partial, reduction, unit=out.unit, weighted=out.weighted),
        unit=UNITS[base] if spec.information else "", warnings=list(out.warnings), notes=list(out.notes),
    )
    if reduction == "none":
        result.values = as_numpy(out.values)
    else:
        result.value = finish(partial, reduction)
    return result


def compute(name: str, *, reduction: str | None = None, dtype: str = "auto", base: str = "e",
            device: str = "cpu", strict: bool = False, bundle: str | None = None, **kwargs: Any) -> Result:
    """Compute loss `name` on arrays (numpy, lists, tensors, or sources: a path, '-' or a JSON literal).

    >>> compute("ce", logits=[[2.0, 1.0, 0.1]], target=[0]).value  # doctest: +ELLIPSIS
    0.41703...
    """
    spec = get_loss(name)
    roles = {r.name for r in spec.roles}
    sources = {k: v for k, v in kwargs.items() if k in roles}
    options = {k: v for k, v in kwargs.items() if k not in roles}
    loaded = gather(spec, sources, bundle)
    return run_loss(spec, loaded, options, reduction=reduction, dtype=dtype, base=base, device=device,
                    strict=strict)
