"""The engine every entry point shares: validated settings, loading and validation, one in-memory run, and the
assembly of a `Result`.

Layers (nothing imports upwards; `tests/test_structure.py` fails on any import cycle, lazy imports included):

    cli -> api -> batch -> stream -> pipeline -> io, specs/registry, losses, reduce, result
    checks, explain -> pipeline          render -> result

`api` is the small public face; `stream` runs one set of big files chunk by chunk and `batch` many sets of
files; `checks` and `explain` build on the same run. A loss's particulars live in its `LossSpec` only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

import numpy as np

from .errors import (
    ComputeError,
    InputError,
    LossctlError,
    MissingKeyError,
    StrictWarningError,
    UsageError,
    ValueRangeError,
)
from .io import Loaded, load_array, load_bundle, read_stdin, split_key, tensor_to_numpy
from .losses._common import Context, concluded, float_dtype_notes, position, weak_findings
from .reduce import LossOutput, Partial, as_numpy, describe, finish, partial_of
from .registry import LossSpec, flag, resolve
from .reports import ReportPartial, Wants, input_lints, value_lints
from .result import Result

BASES = {"e": 1.0, "2": math.log(2.0), "10": math.log(10.0)}
UNITS = {"e": "nats", "2": "bits", "10": "bans"}
DTYPES = ("auto", "float32", "float64")
BACKEND_CHOICES = ("auto", "numpy", "torch")
DEVICES = ("cpu", "cuda", "mps", "auto")
HEADERS = ("auto", "yes", "no")

Progress = Callable[[int, int], None]  # a streamed run's (bytes done, bytes in all)


# --- settings ------------------------------------------------------------------------------------------------

class Settings(NamedTuple):
    """The validated settings of one loss computation, shared by the in-memory, streamed and many-file paths."""

    reduction: str
    options: dict[str, Any]
    base: str = "e"
    device: str = "cpu"
    strict: bool = False
    backend: str = "auto"
    threads: int | None = None  # streamed chunks computed at once; None: the machine's cores
    header: str = "auto"  # whether text tables start with a header row: auto, yes, no
    class_axis: int = 1  # where --logits hold their classes; torch's is 1, Hugging Face's -1
    wants: Wants = Wants()  # the breakdowns asked for (--by-class, --worst)
    details: bool = True  # compute what a table or JSON shows beside the number: baselines, summary
    partials: bool = False  # --partials: the run prints sums for merge, never a value

    @property
    def scale(self) -> float:
        return BASES[self.base]


def settings(spec: LossSpec, options: Mapping[str, Any], *, reduction: str | None = None, base: str = "e",
             device: str = "cpu", strict: bool = False, backend: str = "auto", threads: int | None = None,
             header: str = "auto", class_axis: int = 1, wants: Wants = Wants(), details: bool = True) -> Settings:
    """Check every setting against the spec before any file is read."""
    reduction = reduction or spec.default_reduction
    _choose("--reduction", reduction, spec.reductions, f" for {spec.name}")
    _choose("--base", base, tuple(BASES))
    if base != "e" and not spec.information:
        raise UsageError(f"{spec.name} is not measured in nats, so --base does not apply", option="--base")
    _choose("--backend", backend, BACKEND_CHOICES)
    if backend == "numpy" and "numpy" not in spec.backends:
        raise UsageError(f"{spec.name} has no NumPy kernel; torch computes it (--backend torch or auto)",
                         option="--backend")
    _choose("--header", header, HEADERS)
    threads = check_threads(threads)
    if not isinstance(device, str):
        raise UsageError(f"must be cpu, cuda, mps or auto; got {device!r}", option="--device")
    device = resolve_device(device)
    class_axis = typed_option("--class-axis", int, class_axis)
    wants = Wants(typed_option("--by-class", bool, wants.by_class), typed_option("--worst", int, wants.worst))
    if wants.worst < 0:
        raise UsageError(f"must be 0 or more; got {wants.worst}", option="--worst")
    if backend == "numpy" and device != "cpu":
        raise UsageError(f"the NumPy kernels compute on the CPU; --device {device} needs --backend torch",
                         option="--backend")
    if class_axis != 1 and not spec.class_roles:
        raise UsageError(f"{spec.name} has no class axis to move", option="--class-axis")
    if (wants.by_class or wants.worst) and spec.report is None:
        raise UsageError(f"{spec.name} has no per-class breakdown",
                         option="--by-class" if wants.by_class else "--worst")
    return Settings(reduction, resolve_options(spec, options), base, device, strict, backend, threads, header,
                    class_axis, wants, details)


def _choose(option: str, value: Any, choices: tuple[str, ...], where: str = "") -> None:
    if value not in choices:
        raise UsageError(f"must be one of {', '.join(choices)}{where}; got {value!r}", option=option)


def resolve_options(spec: LossSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's options with torch's defaults, overridden by the given ones (None: not given)."""
    known = {o.name: o for o in spec.options}
    out = {o.name: o.default for o in spec.options}
    for key, value in options.items():
        name = key.replace("-", "_")
        if name not in known:
            raise UsageError(f"{spec.name} has no option {flag(key)}", option=flag(key))
        if value is None:
            continue
        opt = known[name]
        if opt.choices:
            _choose(opt.flag, value, opt.choices)
        out[name] = typed_option(opt.flag, opt.type, value)
    return out


def typed_option(option: str, kind: type, value: Any):
    """An option's value as its type, refusing what would silently mean something else: a string for a yes/no
    ('False' is truthy), True for a number, 1.5 for an integer. NaN is never a value (torch refuses some options,
    computes nan from others); integers fit int64 as torch's do; infinities pass (pairwise-distance's --p inf takes
    one, the losses' own checks refuse the rest)."""
    if kind is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise UsageError(f"must be true or false; got {value!r}", option=option)
        return bool(value)
    if kind is str:
        if not isinstance(value, str):
            raise UsageError(f"must be a string; got {value!r}", option=option)
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UsageError(f"must be a number; got {value!r}", option=option)
    if kind is float and isinstance(value, (int, np.integer)) and abs(int(value)) > 2**1023:
        raise UsageError(f"must be a number a float holds; got {_short(value)}", option=option)
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        raise UsageError("must be a number; got nan", option=option)
    if kind is int:
        if isinstance(value, (float, np.floating)) and (not math.isfinite(value) or value != math.floor(value)):
            raise UsageError(f"must be a whole number; got {value!r}", option=option)
        if not -(2**63) <= int(value) < 2**63:
            raise UsageError(f"must fit in a 64-bit integer; got {_short(int(value))}", option=option)
        return int(value)
    return kind(value)


def _short(n: int) -> str:
    text = str(n)
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"


MAX_THREADS = 256  # each thread holds its chunk's buffers (about 10 MiB): more only costs memory


def check_threads(threads: int | None) -> int | None:
    """--threads as an int from 1 to MAX_THREADS, or None (the machine's cores)."""
    if threads is None:
        return None
    threads = typed_option("--threads", int, threads)
    if not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"must be from 1 to {MAX_THREADS}; got {threads}", option="--threads")
    return threads


def resolve_device(device: str) -> str:
    """cpu, cuda, mps or auto (the first accelerator torch finds, else cpu). Imports torch only when asked."""
    if device == "cpu":
        return device
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"must be cpu, cuda, mps or auto; got {device!r}", option="--device")
    import torch

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device.startswith("cuda") and not cuda) or (device == "mps" and not mps):
        raise UsageError(f"{device} was asked for but torch finds no such device here", option="--device")
    return device


def backend_for(spec: LossSpec, st: Settings, sources: Mapping[str, Any] | None = None) -> str:
    """auto: the NumPy kernel where the loss has one, on the CPU, with no .pt input (reading it needs torch)."""
    if st.backend != "auto":
        return st.backend
    torch_file = any(isinstance(v, str) and split_key(v)[0].lower().endswith((".pt", ".pth"))
                     for v in (sources or {}).values())
    return "numpy" if "numpy" in spec.backends and st.device == "cpu" and not torch_file else "torch"


def backend_label(backend: str) -> str:
    """What a result says computed it: `numpy`, or `torch 2.13.0` (torch is imported by then)."""
    if backend == "numpy":
        return "numpy"
    import torch

    return f"torch {torch.__version__.split('+')[0]}"


# --- loading and validation ----------------------------------------------------------------------------------

def gather(spec: LossSpec, sources: Mapping[str, Any], bundle: str | None = None, header: str = "auto", *,
           command: str | None = None) -> dict[str, Loaded]:
    """Load every given role: from its own source (path, '-', literal, array) or from the --from bundle.

    header: whether text tables start with a header row (auto, yes, no). command: the command that reads the
    arrays as `spec` does (decompose reads them as ce), which a missing role's error names.
    """
    if isinstance(bundle, os.PathLike):
        bundle = os.fspath(bundle)
    if bundle is not None and not isinstance(bundle, str):
        raise UsageError(f"takes a path (or '-'); got a {type(bundle).__name__}", option="--from")
    sources = {k: v for k, v in sources.items() if v is not None}
    readers = [k for k, v in sources.items() if isinstance(v, str) and v == "-"]
    if bundle == "-":
        readers.append("from")
    if len(readers) > 1:
        flags = ", ".join(flag(r) for r in readers)
        raise UsageError(f"only one option may read standard input; {flags} all ask for '-'", option=flag(readers[1]))
    stdin = read_stdin(flag(readers[0])) if readers else None
    loaded = bundle_roles(spec, bundle, stdin, sources, header) if bundle is not None else {}
    for role, value in sources.items():
        loaded[role] = load_source(value, flag(role), stdin, header)
    if bundle is not None and bundle != "-":
        loaded.update(_key_read_alone(spec, loaded, bundle, header))
    check_roles(spec, loaded, bundle, command=command)
    return loaded


def bundle_roles(spec: LossSpec, bundle: str, stdin: bytes | None, given: Collection[str], header: str = "auto"
                 ) -> dict[str, Loaded]:
    """The roles a --from bundle fills: each key named as a role whose group (--probs or --logits, say) no option of
    its own gives, so `--from f.npz --logits f.npz:logits` picks the logits of a bundle that holds probs too."""
    arrays, binary = load_bundle(bundle, stdin=stdin)
    group = {r.name: r.group or r.name for r in spec.roles}
    taken, role = {group[g] for g in given if g in group}, {key: key.replace("-", "_") for key in arrays}
    return {role[key]: _bundled(arr, bundle, key, binary, header) for key, arr in arrays.items()
            if role[key] in group and group[role[key]] not in taken}


def _bundled(arr: np.ndarray | None, bundle: str, key: str, binary: bool, header: str) -> Loaded:
    """A bundle's key for a role; one that holds no numbers (None) is read alone, which says what is wrong with it."""
    if arr is not None:
        return Loaded.of(np.asanyarray(arr), f"{bundle}:{key}", binary)
    if bundle == "-":
        raise InputError(f"key {key!r} holds no numbers", option="--from", source="<stdin>")
    return load_array(f"{bundle}:{key}", option="--from", header=header)


def _key_read_alone(spec: LossSpec, loaded: Mapping[str, Loaded], bundle: str, header: str) -> dict[str, Loaded]:
    """A required role the bundle did not give, read as FILE:KEY: a Parquet/Arrow or JSON Lines bundle leaves out
    columns or fields whose first value holds no numbers (an id, a note, a null), so this says what is wrong with
    the key, or reads it. (.npz, JSON and .pt bundles give such keys as None: _bundled reads them alone.)"""
    found: dict[str, Loaded] = {}
    for roles in spec.groups().values():
        if any(r.name in loaded for r in roles) or not all(r.required for r in roles):
            continue
        for r in roles:
            try:
                found[r.name] = load_array(f"{bundle}:{r.name}", option="--from", header=header)
                break
            except MissingKeyError:
                continue
            except UsageError:
                return found  # a format without keys
    return found


def load_source(value: Any, flag: str, stdin: bytes | None = None, header: str = "auto") -> Loaded:
    """A source as given to the API: a path (str or os.PathLike), '-' or a literal (str), a Loaded, an array, a
    list or a tensor."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return load_array(value, option=flag, stdin=stdin, header=header)
    if isinstance(value, Loaded):
        return value
    # Arrays, NumPy scalars and tensors keep their float dtype under auto, as a binary file does; Python lists and
    # numbers are text-like.
    binary = isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "detach")
    return Loaded.of(_as_array(value, flag), "array", binary)


def _as_array(value: Any, flag: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: refused as the same tensor in a .pt file is
        arr = tensor_to_numpy(value, flag, "array")
    else:
        try:
            arr = np.asarray(value)
        except ValueError:  # NumPy's "inhomogeneous shape"
            raise InputError("nested lists of different lengths (ragged rows)", option=flag) from None
    if arr.dtype.kind not in "biuf":
        what = f"a {type(value).__name__}" if arr.dtype == object and arr.ndim == 0 else f"dtype {arr.dtype}"
        raise InputError(f"must be numbers (an array, a tensor, a list, a path or a literal); got {what}",
                         option=flag)
    return arr


def one_source(values: list[Any] | None, option: str, command: str) -> Any:
    """The one source of an array option that was given as a list (the option repeats, so that a second is refused
    rather than kept silently, as Click keeps the last): for the commands that work one set of arrays through."""
    if values and len(values) > 1:
        raise UsageError(f"{command} works one set of arrays through; got {len(values)} sources (run it once per set)",
                         option=option)
    return values[0] if values else None


def check_roles(spec: LossSpec, loaded: Mapping[str, Any], bundle: str | None = None, *,
                command: str | None = None) -> None:
    """Exactly one role of each group, and every required one (a missing one named as `command`'s, else the
    loss's)."""
    for roles in spec.groups().values():
        given = [r for r in roles if r.name in loaded]
        flags = " or ".join(r.flag for r in roles)
        if len(given) > 1:
            bundled = [r for r in given if bundle and str(getattr(loaded[r.name], "source", "")).startswith(bundle)]
            hint = (f" (--from {bundle} holds {' and '.join(r.name for r in bundled)}: name the one to use, as "
                    f"{bundled[0].flag} {bundle}:{bundled[0].name})") if len(bundled) > 1 else ""
            raise UsageError(f"give only one of {flags}{hint}", option=given[1].flag)
        if not given and all(r.required for r in roles):
            where = f" (and --from {bundle} has no key {' or '.join(r.name for r in roles)} holding numbers)" \
                if bundle else ""
            raise UsageError(f"{command or spec.name} needs {flags}{where}", option=roles[0].flag)


def compute_dtype(spec: LossSpec, loaded: Mapping[str, Loaded], dtype: str, *, promote: bool = True) -> np.dtype:
    """auto: the float dtype of the first binary float input, float32 at least, widened to float64 by a float64
    input of its shape that the loss needs (torch promotes float32 predictions met by float64 targets: mse, bce,
    kl, probability targets; a whole-number index target has another shape, and optional weights and +-1 labels
    do not promote); float32 wherever an input torch computes with in its own dtype first (Role.own_dtype) is
    float32 or narrower, whichever role it is: its log-softmax or norm bounds torch's precision however wide the
    others are; text inputs compute in float64. promote=False: the first binary float input alone decides
    (calibration, whose labels are no operand: torchmetrics computes in the scores' dtype)."""
    _choose("--dtype", dtype, DTYPES)
    if dtype != "auto":
        return np.dtype(dtype)
    floats = [(role, item.array) for role in spec.roles if (item := loaded.get(role.name)) is not None
              and item.binary and item.array.dtype.kind == "f"]
    if not floats:
        return np.dtype(np.float64)
    if promote and any(role.own_dtype and a.dtype.itemsize < 8 for role, a in floats):
        return np.dtype(np.float32)
    first = floats[0][1]
    # by size, not equality: a big-endian float64 file ('>f8') computes in float64 too
    wide = first.dtype.itemsize >= 8 or promote and any(
        role.required and not role.label and a.dtype.itemsize >= 8 and a.shape == first.shape for role, a in floats)
    return np.dtype(np.float64) if wide else np.dtype(np.float32)


def check_finite(spec: LossSpec, loaded: Mapping[str, Loaded], dtype: np.dtype | None = None) -> None:
    """NaN is never a loss input; +inf never; -inf only where it means something (masked logits, log 0).
    dtype: the compute dtype; a finite value it cannot hold (1e39 under --dtype float32) is refused too."""
    for role in spec.roles:
        item = loaded.get(role.name)
        if item is None or item.array.dtype.kind != "f" or item.array.size == 0:
            continue
        arr = item.array
        # Cheap passes in the common case: the max propagates NaN and shows +inf, the min shows -inf (a max or
        # min costs a quarter of a sum); only a failing array takes the slower look for the first bad value.
        hi = arr.max()
        lo = arr.min() if not role.neg_inf_ok or _narrows(arr, dtype) else None
        if np.isfinite(hi) and (role.neg_inf_ok or np.isfinite(lo)):
            _check_fits(role, item, dtype, hi, lo)
            continue
        bad = np.isnan(arr) | np.isposinf(arr) | (np.isneginf(arr) if not role.neg_inf_ok else False)
        idx = np.flatnonzero(bad)
        if idx.size:
            raise ValueRangeError(f"{arr.flat[idx[0]]}{_where(role, arr, idx[0])} ({item.source}); inputs "
                                  "must be finite" + ("" if not role.neg_inf_ok else " (-inf is allowed, as a mask)"),
                                  option=role.flag)


def _narrows(arr: np.ndarray, dtype: np.dtype | None) -> bool:
    return dtype is not None and np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize < arr.dtype.itemsize


def _check_fits(role, item: Loaded, dtype: np.dtype | None, hi, lo) -> None:
    """A finite value past the compute dtype's largest would become inf when cast: refuse it, naming it."""
    arr = item.array
    if not _narrows(arr, dtype):
        return
    top = float(np.finfo(dtype).max)
    if hi <= top and lo >= -top:
        return
    with np.errstate(invalid="ignore"):  # past the cheap test (a -inf mask fails it too): the exact look
        idx = np.flatnonzero(np.isfinite(arr) & (np.abs(arr) > top))
    if not idx.size:
        return
    raise ValueRangeError(f"{arr.flat[idx[0]]}{_where(role, arr, idx[0])} ({item.source}) does not fit "
                          f"{np.dtype(dtype).name} (its largest is {top:.4g}); use --dtype float64", option=role.flag)


def _where(role, arr: np.ndarray, i: int) -> str:
    """' at index [i, j]' of a flat position (rows of the whole file for batched roles); nothing for a single
    number, which has no index."""
    if not arr.ndim:
        return ""
    return f" at index {position(arr, i) if role.batched else [int(j) for j in np.unravel_index(i, arr.shape)]}"


def row_mismatch_hint(loaded: Mapping[str, Loaded]) -> str | None:
    """Text tables whose row counts differ by exactly one: a header row read as data (or one missed)."""
    tables = {role: item for role, item in loaded.items()
              if getattr(item, "header", None) is not None and item.array.ndim >= 1}
    counts = {item.array.shape[0] for item in tables.values()}
    if len(counts) != 2 or abs(max(counts) - min(counts)) != 1:
        return None
    return ("the text inputs differ by exactly one row; a header row may have been read as data or taken for "
            "one (--header yes|no decides)")


# --- one run -------------------------------------------------------------------------------------------------

def call_loss(spec: LossSpec, fn, loaded: Mapping[str, Loaded]):
    """Run a loss computation; its errors name their file, and torch's own refusals become one clear line."""
    try:
        return fn()
    except LossctlError as exc:
        role = (exc.option or "")[2:].replace("-", "_")
        if exc.source is None and role in loaded:
            raise exc.with_source(loaded[role].source) from None
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:  # torch's own argument checks: the backstop
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise ComputeError(f"{spec.name}: torch refused these inputs: {lines[0][:200]}") from None


def move_class_axis(spec: LossSpec, arrays: Mapping[str, np.ndarray], st: Settings) -> dict[str, np.ndarray]:
    """--class-axis: the class scores, and probability targets of their shape, with their classes moved to torch's
    axis 1 (a view, no copy)."""
    arrays = dict(arrays)
    for role in spec.class_roles if st.class_axis != 1 else ():
        arr = arrays.get(role)
        if arr is not None and arr.ndim > 1:
            if not -arr.ndim <= st.class_axis < arr.ndim:
                raise UsageError(f"must be in [{-arr.ndim}, {arr.ndim}) for {flag(role)} of shape {arr.shape}; "
                                 f"got {st.class_axis}", option="--class-axis")
            arrays[role] = np.moveaxis(arr, st.class_axis, 1)
            target = arrays.get("target")
            if target is not None and target.shape == arr.shape:  # probability targets: their classes lie alike
                arrays["target"] = np.moveaxis(target, st.class_axis, 1)
    return arrays


def _classes_last_hint(spec: LossSpec, arrays: Mapping[str, np.ndarray], exc: LossctlError) -> LossctlError:
    """torch refuses classes-last logits (N, L, C) with targets (N, L); say so, and how lossctl takes them."""
    from .sanity_lint import classes_last_hint

    x = next((arrays[r] for r in spec.class_roles if arrays.get(r) is not None), None)
    t = arrays.get("target")
    hint = classes_last_hint(x.shape, t.shape) if x is not None and t is not None and x.ndim > 2 else None
    if hint is None or "torch refuses" not in hint:
        return exc
    return type(exc)(f"{exc.message}; {hint[hint.index('look like') + 10:]}", option=exc.option, source=exc.source)


def compute_output(spec: LossSpec, arrays: Mapping[str, np.ndarray], st: Settings, ctx: Context,
                   loaded: Mapping[str, Loaded]) -> LossOutput:
    """The loss function on validated arrays, in the unit of --base, with the spec's input-convention lints."""
    fn = spec.compute_fn()
    ctx = ctx._replace(floated=[])
    try:
        out = call_loss(spec, lambda: fn(**arrays, **st.options, ctx=ctx), loaded)
    except LossctlError as exc:
        exc, hint = _classes_last_hint(spec, arrays, exc), row_mismatch_hint(loaded)
        raise (type(exc)(f"{exc.message}; {hint}", option=exc.option, source=exc.source) if hint else exc) from None
    # a binary file's dtype is the user's; a text file's integers are lossctl's reading of its whole numbers
    typed = {name: arr for name, arr in arrays.items() if name in loaded and loaded[name].binary}
    stored = {name: item.stored for name, item in loaded.items() if item.stored}
    out.notes = [*out.notes, *float_dtype_notes(spec.roles, typed, ctx.floated, ctx.dtype, stored)]
    out.warnings = [*out.warnings, *input_lints(spec.lints, arrays, st.options, tuple(r.name for r in spec.roles))]
    if st.scale != 1.0:
        out.values = out.values / st.scale
        if out.mean_values is not None:
            out.mean_values = out.mean_values / st.scale
    return out


def run_loaded(spec: LossSpec, loaded: Mapping[str, Loaded], st: Settings, dtype: str = "auto", *,
               backend: str | None = None, final: bool = True) -> Result:
    """One in-memory pass over loaded arrays: the loss's per-element values, their float64 sums, the Result."""
    backend = backend or backend_for(spec, st)
    ctx = Context(dtype=compute_dtype(spec, loaded, dtype), device=st.device, reduction=st.reduction,
                  backend=backend)
    check_finite(spec, loaded, ctx.dtype)
    arrays = move_class_axis(spec, {n: item.array for n, item in loaded.items()}, st)
    out = compute_output(spec, arrays, st, ctx, loaded)
    partial = partial_of(out, st.reduction)
    report = run_report(spec, arrays, st, out, 0)
    found = None
    if wants_baselines(spec, st, partial):
        from .reports import baselines_from_counts, baselines_in_memory

        # from the report's sums, as a stream does, where they determine the baselines; else from the arrays
        found = baselines_from_counts(spec.baseline, report, arrays.get("weight"), st.options, st.scale) or \
            baselines_in_memory(spec.baseline, arrays, st.options, st.scale)
    values = as_numpy(out.values) if st.reduction == "none" else None
    result = make_result(spec, st, partial, dtype=ctx.dtype, unit=out.unit, weighted=out.weighted,
                         shapes={name: list(item.array.shape) for name, item in loaded.items()},
                         warnings=out.warnings, notes=out.notes, final=final, backend=backend,
                         constants={**fingerprints(spec, arrays), **({"form": out.form} if out.form else {})},
                         report=report, baselines=found, values=values,
                         kept=not_ignored(values, arrays.get("target"), st.options.get("ignore_index")))
    result.class_weight = arrays.get("weight") if "weight" not in {r.name for r in spec.roles if r.batched} else None
    result.loss_notes = list(dict.fromkeys(out.notes))
    return result


def not_ignored(values, target, ignore_index):
    """Per-target values without the targets --ignore-index removes (they cost 0 and are no samples)."""
    if values is None or target is None or ignore_index is None or np.shape(target) != np.shape(values):
        return None
    return values[np.asarray(target) != ignore_index]


def run_report(spec: LossSpec, arrays: Mapping[str, np.ndarray], st: Settings, out: LossOutput, first_row: int
               ) -> ReportPartial | None:
    """The spec's report of one run or chunk: class counts, and the breakdowns asked for."""
    if spec.report is None or not (st.details or st.wants.by_class or st.wants.worst):
        return None
    baselines = st.details and spec.baseline is not None and st.reduction == "mean"
    return resolve(spec.report)(dict(arrays), st.options, out, st.wants, first_row, baselines=baselines)


def run_sources(spec: LossSpec, sources: Mapping[str, Any], st: Settings, *, dtype: str = "auto",
                bundle: str | None = None, final: bool = True) -> Result:
    """Load the sources whole and run once."""
    return run_loaded(spec, gather(spec, sources, bundle, st.header), st, dtype,
                      backend=backend_for(spec, st, {**sources, "from": bundle}), final=final)


# --- result assembly -----------------------------------------------------------------------------------------

def wants_baselines(spec: LossSpec, st: Settings, partial: Partial) -> bool:
    """Whether a run reports its baselines: a mean, shown as a table or JSON, that has a denominator (where it has
    none, every target ignored or class weights summing to 0, check_denominator says so, or one file of many
    adds nothing to the total's)."""
    return bool(st.details and spec.baseline and st.reduction == "mean" and partial.denominator != 0)


def missing_denominator(partial: Partial, reduction: str, unit: str) -> tuple[str, str] | None:
    """Why a mean has no denominator (torch's division by 0) and what torch returns there; None where it has one
    (or covers nothing at all, which the loaders refuse)."""
    if reduction != "mean" or partial.denominator != 0 or partial.count == 0:
        return None
    if partial.ignored == partial.count:
        return f"all {partial.count} {unit} equal --ignore-index", "nan"
    # torch divides the weighted sum by 0: nan where that sum is 0 too (all weights 0), else an infinity
    return "the targets' class weights sum to 0", "nan" if partial.total == 0 else "±inf"


def check_denominator(partial: Partial, reduction: str, unit: str) -> None:
    """torch's mean over nothing is 0/0 = nan; say why instead of printing nan."""
    missing = missing_denominator(partial, reduction, unit)
    if missing is None:
        return
    reason, gives = missing
    if partial.ignored == partial.count:
        raise ValueRangeError(f"{reason}: the mean has no denominator (torch returns {gives} here); use --reduction "
                              "sum or check the targets", option="--target")
    raise ValueRangeError(f"{reason}: the weighted mean has no denominator (torch returns {gives} here)",
                          option="--weight")


def _nothing_counted(partial: Partial, reduction: str, unit: str) -> list[str]:
    """A sum (or the values) over targets that are all ignored: torch's 0 there is no loss of zero. (A mean over
    them has no denominator: check_denominator refuses it.)"""
    if reduction == "mean" or partial.count == 0 or partial.ignored != partial.count:
        return []
    what = "the sum is 0" if reduction == "sum" else "every value is 0"
    return [f"--target: all {partial.count} {unit} equal --ignore-index: {what} because nothing is counted, as "
            "torch gives it, not because the predictions are right"]


def fingerprints(spec: LossSpec, arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """A digest of each per-class array (weight, pos_weight): partials merge only when these agree."""
    out = {}
    for role in spec.roles:
        arr = arrays.get(role.name)
        if arr is not None and not role.batched:
            import hashlib

            h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode() + np.ascontiguousarray(arr).tobytes())
            out[role.name] = h.hexdigest()[:16]
    return out


def value_warnings(spec: LossSpec, st: Settings, partial: Partial, value: float | None, unit: str, *,
                   final: bool = True) -> list[str]:
    """What the reduced value (None for reduction none) says beside the inputs' lints: the spec's value lints
    (a negative KL) and, for a final result, a sum or values over targets all ignored."""
    warnings = value_lints(spec.lints, value) if value is not None and spec.lints else []
    return [*warnings, *(_nothing_counted(partial, st.reduction, unit) if final else [])]


def checked_warnings(spec: LossSpec, st: Settings, partial: Partial, warnings: list[str]) -> list[str]:
    if not math.isfinite(partial.total) and not any("nan" in w or "inf" in w for w in warnings):
        # torch gives the same; say where it usually comes from rather than print a bare nan or inf. Only roles
        # that allow -inf can hold it: the other inputs were checked finite.
        cause = ("an input of -inf (a masked logit, log 0) meets a target with non-zero probability"
                 if any(r.neg_inf_ok for r in spec.roles) else "an option is infinite")
        warnings = [*warnings, f"the result is {partial.total} as torch computes it: {cause}, or a loss overflows "
                    "or is undefined (log 0, 0/0, 0 x inf, inf - inf)"]
    warnings = list(dict.fromkeys(warnings))
    if st.strict and warnings:
        raise StrictWarningError(warnings[0] + " (--strict makes warnings errors)", option="--strict")
    return warnings


FLOAT32_MAX = 3.4028234663852886e38


def float32_overflow(value: float | None, partial: Partial, reduction: str, dtype: str) -> tuple[float | None,
                                                                                                  list[str]]:
    """torch sums float32 losses in float32, where lossctl adds them in float64: a sum past float32's largest is
    inf in torch (and so is its mean), which the float64 total would print as a finite number torch never gives.
    The value becomes torch's inf, with a warning giving the float64 one."""
    if value is None or dtype != "float32" or not math.isfinite(value) or abs(partial.total) <= FLOAT32_MAX:
        return value, []
    inf = math.copysign(math.inf, partial.total)
    return inf, [f"the {reduction} is {inf}: the float32 losses sum to {partial.total:.6g}, past float32's largest "
                 f"(3.4e38), and torch sums float32 losses in float32; in float64 it is {value:.6g} (--dtype float64)"]


def make_result(spec: LossSpec, st: Settings, partial: Partial, *, dtype: np.dtype | str,
                shapes: dict[str, list[int]], unit: str, weighted: bool, warnings: list[str], notes: list[str],
                backend: str, values=None, constants: dict[str, str] | None = None, final: bool = True,
                report: ReportPartial | None = None, baselines: dict[str, float] | None = None, kept=None) -> Result:
    """Assemble a Result: apply --strict to the warnings, check and describe the denominator, divide, post-process.

    final: False for one file of many, or a partial to be merged: its denominator may be 0 (every target
    ignored) as long as the total's is not, so only the total is checked.
    report, baselines: the reports' mergeable sums, and the baselines when they were computed from whole arrays.
    kept: reduction none's values without the ignored targets, for the per-sample summary.
    """
    value = None if st.reduction == "none" else finish(partial, st.reduction)
    value, overflow = float32_overflow(value, partial, st.reduction, str(dtype))
    warnings = [*warnings, *overflow, *value_warnings(spec, st, partial, value, unit, final=final)]
    post, shown = resolve(spec.post), value
    if post is not None and value is not None:
        shown, note, post_warnings = post(value, partial, str(dtype))
        # they describe the value shown (perplexity's overflow); a partial shows none, and merge warns of the total
        notes, warnings = [*notes, note], [*warnings, *([] if st.partials else post_warnings)]
    pending, warnings = weak_findings(warnings), checked_warnings(spec, st, partial, concluded(warnings))
    if final:
        check_denominator(partial, st.reduction, unit)
    result = Result(
        loss=spec.name, torch_name=spec.torch_name, reduction=st.reduction, dtype=str(dtype), shapes=shapes,
        options={**st.options, **({"base": st.base} if spec.information else {})}, partial=partial,
        denominator=describe(partial, st.reduction, unit=unit, weighted=weighted),
        unit=UNITS[st.base] if spec.information else "", warnings=warnings,
        notes=list(dict.fromkeys(notes)), weighted=weighted, denominator_unit=unit, constants=constants or {},
        backend=backend_label(backend) if backend in ("numpy", "torch") else backend, pending=pending,
    )
    if st.reduction == "none":
        result.values, result.kept = values, values if kept is None else kept
    else:
        result.value = shown
    if st.details or report is not None:
        attach_reports(result, spec, st, report, baselines, post, partial, result.kept)
    return result


def attach_reports(result: Result, spec: LossSpec, st: Settings, report: ReportPartial | None,
                   found: dict[str, float] | None, post, partial: Partial, kept=None) -> None:
    """Baselines, breakdowns and the per-sample summary (of `kept`: the values of the targets not ignored) onto
    the result."""
    from .reports import finish_reports

    result.report = report
    transform = (lambda v: post(v, partial, result.dtype)[0]) if post is not None else None
    raw = finish(partial, st.reduction) if transform is not None and result.value is not None else None
    reps = finish_reports(result.value, kept if st.details else None, found, report, transform, raw)
    result.baselines, result.by_class, result.worst = reps.baselines, reps.by_class, reps.worst
    if reps.by_class is not None or reps.worst is not None:
        # their loss is in the unit of --base, as the value is: said where it is not nats
        in_base = f"loss ({result.unit})" if result.unit not in ("", "nats") else ""
        result.breakdown_loss = spec.breakdown_loss or in_base
    result.summary, result.histogram = reps.summary, reps.histogram
    result.notes += reps.notes
