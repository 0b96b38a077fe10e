"""The Python API: `compute("ce", logits=..., target=..., **options)`; the CLI is a thin layer over it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ComputeError, InputError, LossctlError, StrictWarningError, UsageError, ValueRangeError
from .io import Loaded, load_array, load_bundle, read_stdin
from .reduce import Partial, as_numpy, describe, finish, partial_of
from .registry import LossSpec, flag, get_loss
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
        flags = ", ".join(flag(r) for r in readers)
        raise UsageError(f"only one option may read standard input; {flags} all ask for '-'", option=flag(readers[1]))
    stdin = read_stdin(flag(readers[0])) if readers else None
    loaded: dict[str, Loaded] = {}
    if bundle is not None:
        arrays, binary = load_bundle(bundle, stdin=stdin)
        names = {r.name for r in spec.roles}
        for key, arr in arrays.items():
            role = key.replace("-", "_")
            if role in names and role not in sources:
                loaded[role] = Loaded(np.asarray(arr), f"{bundle}:{key}", binary)
    for role, value in sources.items():
        loaded[role] = load_source(value, flag(role), stdin)
    _check_roles(spec, loaded, bundle)
    return loaded


def load_source(value: Any, flag: str, stdin: bytes | None = None) -> Loaded:
    """A source as given to the API: a path, '-' or a literal (str), a Loaded, an array, a list or a tensor."""
    if isinstance(value, str):
        return load_array(value, option=flag, stdin=stdin)
    if isinstance(value, Loaded):
        return value
    return Loaded(_as_array(value, flag), "array", _is_binary(value))


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
    from .losses._common import position

    for role in spec.roles:
        item = loaded.get(role.name)
        if item is None or item.array.dtype.kind != "f":
            continue
        arr = item.array
        if arr.size == 0:
            continue
        # One cheap pass in the common case: max propagates NaN and shows +inf; min shows -inf.
        top = arr.max()
        if np.isfinite(top) and (role.neg_inf_ok or np.isfinite(arr.min())):
            continue
        bad = np.isnan(arr) | (np.isposinf(arr)) | (np.isneginf(arr) if not role.neg_inf_ok else False)
        idx = np.flatnonzero(bad)
        if idx.size:
            pos = position(arr, idx[0]) if role.batched else [int(i) for i in np.unravel_index(idx[0], arr.shape)]
            raise ValueRangeError(f"{arr.flat[idx[0]]} at index {pos} ({item.source}); inputs must be finite"
                                  + ("" if not role.neg_inf_ok else " (-inf is allowed, as a mask)"),
                                  option=role.flag)


def resolve_options(spec: LossSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    known = {o.name: o for o in spec.options}
    out = {o.name: o.default for o in spec.options}
    for key, value in options.items():
        name = key.replace("-", "_")
        if name not in known:
            raise UsageError(f"{spec.name} has no option {flag(key)}", option=flag(key))
        if value is None:
            continue
        opt = known[name]
        if opt.choices and value not in opt.choices:
            raise UsageError(f"must be one of {', '.join(opt.choices)}; got {value!r}", option=opt.flag)
        out[name] = opt.type(value)
    return out


@dataclass(frozen=True)
class Settings:
    """The validated settings of one loss computation, shared by the in-memory and streamed paths."""

    reduction: str
    options: dict[str, Any]
    base: str
    device: str
    strict: bool

    @property
    def scale(self) -> float:
        return BASES[self.base]


def settings(spec: LossSpec, options: Mapping[str, Any], *, reduction: str | None = None, base: str = "e",
             device: str = "cpu", strict: bool = False) -> Settings:
    reduction = reduction or spec.default_reduction
    if reduction not in spec.reductions:
        raise UsageError(f"must be one of {', '.join(spec.reductions)} for {spec.name}; got {reduction!r}",
                         option="--reduction")
    if base not in BASES:
        raise UsageError(f"must be one of e, 2, 10; got {base!r}", option="--base")
    if base != "e" and not spec.information:
        raise UsageError(f"{spec.name} is not measured in nats, so --base does not apply", option="--base")
    return Settings(reduction, resolve_options(spec, options), base, resolve_device(device), strict)


def resolve_device(device: str) -> str:
    """cpu, cuda, mps or auto (the first accelerator torch finds, else cpu). Imports torch only when asked."""
    if device == "cpu":
        return device
    if device not in ("cuda", "mps", "auto") and not device.startswith("cuda:"):
        raise UsageError(f"must be cpu, cuda, mps or auto; got {device!r}", option="--device")
    import torch

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device.startswith("cuda") and not cuda) or (device == "mps" and not mps):
        raise UsageError(f"{device} was asked for but torch finds no such device here", option="--device")
    return device


def check_denominator(partial: Partial, reduction: str, unit: str) -> None:
    """torch's mean over nothing is 0/0 = nan; say why instead of printing nan."""
    if reduction != "mean" or partial.denominator != 0 or partial.count == 0:
        return
    if partial.ignored == partial.count:
        raise ValueRangeError(f"all {partial.count} {unit} equal --ignore-index: the mean has no denominator "
                              "(torch returns nan here); use --reduction sum or check the targets", option="--target")
    raise ValueRangeError("the targets' class weights sum to 0: the weighted mean has no denominator "
                          "(torch returns nan here)", option="--weight")


def fingerprints(spec: LossSpec, arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """A digest of each per-class array (weight, pos_weight): partials merge only when these agree."""
    import hashlib

    out = {}
    for role in spec.roles:
        arr = arrays.get(role.name)
        if arr is not None and not role.batched:
            h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode() + np.ascontiguousarray(arr).tobytes())
            out[role.name] = h.hexdigest()[:16]
    return out


def make_result(spec: LossSpec, st: Settings, partial: Partial, *, dtype: np.dtype | str,
                shapes: dict[str, list[int]], unit: str, weighted: bool, warnings: list[str], notes: list[str],
                values=None, constants: dict[str, str] | None = None, final: bool = True) -> Result:
    """Assemble a Result: apply --strict to the warnings, check and describe the denominator, divide.

    final: False for one file of many, or a partial to be merged: its denominator may be 0 (every target
    ignored) as long as the total's is not, so only the total is checked.
    """
    if not math.isfinite(partial.total):
        # torch gives the same; say where it usually comes from rather than print a bare nan or inf.
        warnings = [*warnings, f"the result is {partial.total} as torch computes it: an input of -inf (a masked "
                    "logit, log 0) meets a target with non-zero probability, or a loss overflows"]
    if st.strict and warnings:
        raise StrictWarningError(warnings[0] + " (--strict makes warnings errors)", option="--strict")
    if final:
        check_denominator(partial, st.reduction, unit)
    result = Result(
        loss=spec.name, torch_name=spec.torch_name, reduction=st.reduction, dtype=str(dtype), shapes=shapes,
        options={**st.options, **({"base": st.base} if spec.information else {})}, partial=partial,
        denominator=describe(partial, st.reduction, unit=unit, weighted=weighted),
        unit=UNITS[st.base] if spec.information else "", warnings=list(dict.fromkeys(warnings)),
        notes=list(dict.fromkeys(notes)), weighted=weighted, denominator_unit=unit, constants=constants or {},
    )
    if st.reduction == "none":
        result.values = values
    else:
        result.value = finish(partial, st.reduction)
        if spec.post == "exp":
            # The partial stays a CE partial, so shards merge before the exp, as perplexity requires.
            result.value = math.exp(result.value)
            result.notes.append(f"perplexity = exp(mean cross entropy) = exp({result.partial.total:.6g} / "
                                f"{result.partial.denominator:.6g})")
    return result


def run_loss(spec: LossSpec, loaded: Mapping[str, Loaded], options: Mapping[str, Any], *,
             reduction: str | None = None, dtype: str = "auto", base: str = "e", device: str = "cpu",
             strict: bool = False) -> Result:
    """One in-memory pass over loaded arrays."""
    st = settings(spec, options, reduction=reduction, base=base, device=device, strict=strict)
    return _run_loaded(spec, loaded, st, dtype)


def name_source(exc: LossctlError, loaded: Mapping[str, Loaded]) -> LossctlError:
    """A loss names the option of a bad value; add the file (or `literal`) that option was read from."""
    role = (exc.option or "")[2:].replace("-", "_")
    if exc.source is None and role in loaded:
        return exc.with_source(loaded[role].source)
    return exc


def call_loss(spec: LossSpec, fn, loaded: Mapping[str, Loaded]):
    """Run a loss computation; its errors name their file, and torch's own refusals become one clear line."""
    try:
        return fn()
    except LossctlError as exc:
        raise name_source(exc, loaded) from None
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:  # torch's own argument checks: the backstop
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise ComputeError(f"{spec.name}: torch refused these inputs: {lines[0][:200]}") from None


def _run_loaded(spec: LossSpec, loaded: Mapping[str, Loaded], st: Settings, dtype: str, final: bool = True
                ) -> Result:
    """torch computes the per-element losses; reduce sums them in float64."""
    from .losses._common import Context

    ctx = Context(dtype=compute_dtype(spec, loaded, dtype), device=st.device, reduction=st.reduction)
    check_finite(spec, loaded)
    out = call_loss(spec, lambda: spec.compute_fn()({n: item.array for n, item in loaded.items()}, st.options, ctx),
                    loaded)
    if st.scale != 1.0:
        out.values = out.values / st.scale
        if out.mean_values is not None:
            out.mean_values = out.mean_values / st.scale
    partial = partial_of(out, st.reduction)
    return make_result(spec, st, partial, dtype=ctx.dtype, unit=out.unit, weighted=out.weighted,
                       shapes={name: list(item.array.shape) for name, item in loaded.items()},
                       warnings=out.warnings, notes=out.notes, final=final,
                       constants=fingerprints(spec, {n: item.array for n, item in loaded.items()}),
                       values=as_numpy(out.values) if st.reduction == "none" else None)


def evaluate(spec: LossSpec, sources: Mapping[str, Any], st: Settings, *, dtype: str = "auto",
             bundle: str | None = None, stream: bool | None = None, progress=None, final: bool = True) -> Result:
    """One loss over one set of sources: streamed in chunks when big .npy or CSV files allow, else in memory.

    stream: None decides by size, True streams whenever the inputs allow it, False never streams.
    final: False when this result is one part of a total (see make_result).
    """
    streamable = any(isinstance(v, str) and v.lower().endswith((".npy", ".csv", ".tsv")) for v in sources.values())
    if bundle is None and stream is not False and streamable:
        from .stream import plan, run_stream

        planned = plan(spec, sources, st, force=bool(stream))
        if planned:
            inputs, whole = planned
            return run_stream(spec, inputs, whole, st, dtype=dtype, progress=progress, final=final)
    return _run_loaded(spec, gather(spec, sources, bundle), st, dtype, final=final)


def compute(name: str, *, reduction: str | None = None, dtype: str = "auto", base: str = "e",
            device: str = "cpu", strict: bool = False, bundle: str | None = None, stream: bool | None = None,
            **kwargs: Any) -> Result:
    """Compute loss `name` on arrays (numpy, lists, tensors, or sources: a path, '-' or a JSON literal).

    >>> compute("ce", logits=[[2.0, 1.0, 0.1]], target=[0]).value  # doctest: +ELLIPSIS
    0.41703...
    """
    spec = get_loss(name)
    roles = {r.name for r in spec.roles}
    sources = {k: v for k, v in kwargs.items() if k in roles}
    options = {k: v for k, v in kwargs.items() if k not in roles}
    st = settings(spec, options, reduction=reduction, base=base, device=device, strict=strict)
    return evaluate(spec, sources, st, dtype=dtype, bundle=bundle, stream=stream)
