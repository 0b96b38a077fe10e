"""Helpers shared by the loss families: the compute context, tensors from arrays, the checks torch does not make."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

import numpy as np

from ..errors import ShapeError, UsageError, ValueRangeError
from ..registry import flag


class Context(NamedTuple):
    """How to compute: the float dtype (numpy), the backend ("numpy" or "torch"), the torch device and the
    reduction asked for (some notes depend on it).

    leaf: for `lossctl grad` only: given an input array, the leaf tensor (requires_grad) that stands for it, or
    None for arrays that are not differentiated; `floats` (and so `array`) returns that leaf, so autograd reaches
    the inputs whichever way a loss function converts them.
    """

    dtype: np.dtype
    device: str = "cpu"
    reduction: str = "mean"
    backend: str = "torch"
    leaf: Callable[[np.ndarray], Any] | None = None
    floated: list | None = None  # where given, the inputs read as floats are added to it

    def kernels(self):
        """The per-element formulas for this context: lossctl.kernels (NumPy) or their torch definitions."""
        if self.backend == "numpy":
            from .. import kernels

            return kernels
        from .torch_ops import TorchKernels

        return TorchKernels(self.device)

    def array(self, arr: np.ndarray):
        """A float input in the compute dtype, as the backend computes it (ndarray or tensor)."""
        if self.backend == "numpy":
            self.saw(arr)
            return np.asarray(arr, dtype=self.dtype)
        return floats(arr, self)

    def saw(self, arr) -> None:
        """Keep an input read as floats, for the notes on what torch does with its dtype (float_dtype_notes)."""
        if self.floated is not None:
            self.floated.append(arr)

    def indices(self, arr: np.ndarray, role: str):
        """Class indices as int64, as the backend computes them; whole-number floats are accepted."""
        if self.backend == "numpy":
            check_whole(arr, role)
            return np.asarray(arr, dtype=np.int64)
        return ints(arr, role, self)


INTEGER_DTYPES = tuple(np.dtype(c) for c in np.typecodes["AllInteger"])


def index_dtype_notes(arr: np.ndarray, role: str = "target", *, accepted: tuple, what: str = "class indices"
                      ) -> list[str]:
    """torch takes indices of some integer dtypes only, and refuses the others, where lossctl reads whole numbers
    of any dtype as indices: a note says so. `accepted`, by trying torch: ce and nll int64, or uint8 for (N) targets
    (classification.class_index_dtypes); multi-margin and multilabel-margin int64 ("expected scalar type Long"); ctc's
    lengths any integer ("must be integral")."""
    if any(arr.dtype == d for d in accepted):
        return []
    takes = "integers" if accepted == INTEGER_DTYPES else " or ".join(str(np.dtype(d)) for d in accepted)
    return [f"{flag(role)} holds {arr.dtype} {what}, read as the whole numbers they are; torch refuses {what} of "
            f"dtype {arr.dtype} (it takes {takes}: {role}.long())"]


def float_dtype_notes(roles, arrays: dict, floated: list, dtype: np.dtype, stored: dict | None = None) -> list[str]:
    """Notes on inputs whose dtype torch treats otherwise. Integers and bools: torch computes these losses on
    floating-point tensors only, where lossctl reads them as the numbers they are; a note names each one read as
    floats in a role torch refuses them in (`floats_only`). float16: lossctl computes in float32 at least, where
    torch computes a float16 tensor's loss in float16 (rounding every step to it), or refuses it; beside a wider
    float input torch promotes it (mse of float16 and float32 computes in float32), and that gets no note, unless
    torch computes with it in its own dtype first (Role.own_dtype: the log-softmax of float16 logits is float16's
    beside a float64 target, and HuberLoss casts the target to float16).
    `stored`: the dtype a role's float32 array was widened from where NumPy cannot hold it (bfloat16), noted as
    float16 is."""
    name, method = np.dtype(dtype).name, "double" if np.dtype(dtype) == np.float64 else "float"

    def low(role: str, arr) -> str:
        return "float16" if _half(arr) else (stored or {}).get(role, "")

    # one half dtype among the float inputs: torch promotes float16 beside bfloat16, or beside a wider one
    kinds = {low(n, a) for n, a in arrays.items() if a.dtype.kind == "f"}
    half = len(kinds) == 1 and "" not in kinds
    notes = []
    for role in roles:
        arr = arrays.get(role.name)
        if arr is None or not any(a is arr for a in floated):
            continue
        kind = low(role.name, arr)
        if kind and (half or role.own_dtype):
            notes.append(f"{role.flag} holds {kind} values, computed in {name}; torch computes a {kind} tensor's "
                         f"loss in {kind}, rounding each step to it, or refuses it ({role.name}.{method}() gives "
                         "torch this number)")
        elif role.floats_only and arr.dtype.kind in "biu":
            notes.append(f"{role.flag} holds {arr.dtype.name} values, read as {name} numbers; torch refuses "
                         f"{role.name} of dtype {arr.dtype.name} (it takes floating-point tensors: "
                         f"{role.name}.{method}())")
    return notes


def _half(arr) -> bool:
    """float16 in either byte order (an array given to the API keeps a big-endian file's '>f2')."""
    return arr.dtype.kind == "f" and arr.dtype.itemsize == 2


def floats(arr: np.ndarray, ctx: Context):
    ctx.saw(arr)
    if ctx.leaf is not None:
        leaf = ctx.leaf(arr)
        if leaf is not None:
            return leaf
    import torch

    # ascontiguousarray makes a 0-d array 1-d; keep the shape, since torch treats () and (1,) targets differently.
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=ctx.dtype).reshape(np.shape(arr))).to(ctx.device)


def check_whole(arr: np.ndarray, role: str, what: str = "class indices", *, bounded: bool = True) -> None:
    """Float arrays are class indices (or lengths, counts: `what`) only when every value is a whole number.
    bounded=False leaves huge values to a range check that follows."""
    if arr.dtype.kind == "f":
        # Past 2**62 a float is no class index, and its cast to int64 would wrap around.
        bad = np.flatnonzero((arr != np.round(arr)) | ((np.abs(arr) > 2.0**62) & bounded))
        if bad.size:
            raise ValueRangeError(f"{what} must be integers; found {arr.flat[bad[0]].item()!r}"
                                  f"{at_index(arr, bad[0])}", option=flag(role))


def ints(arr: np.ndarray, role: str, ctx: Context):
    """Class indices as an int64 tensor; float arrays are accepted only when every value is a whole number."""
    import torch

    check_whole(arr, role)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.int64).reshape(np.shape(arr))).to(ctx.device)


# When a file is streamed in chunks of rows, positions in a chunk are offset by the rows before it.
ROW_OFFSET: ContextVar[int] = ContextVar("row_offset", default=0)


def at_index(arr: np.ndarray, flat_index: int) -> str:
    """" at index [i, j]" for a flat position in `arr`; nothing for a single number (0-d), which has no index."""
    return f" at index {position(arr, flat_index)}" if arr.ndim else ""


def position(arr: np.ndarray, flat_index: int) -> list[int]:
    """The index of a flat position in `arr`, in the coordinates of the whole (unchunked) array."""
    if not arr.ndim:
        return []
    pos = [int(i) for i in np.unravel_index(int(flat_index), arr.shape)]
    pos[0] += ROW_OFFSET.get()
    return pos


def check_shape(role: str, arr: np.ndarray, expected: tuple[int, ...], other: str, other_shape: tuple[int, ...]):
    if tuple(arr.shape) != tuple(expected):
        # 1-d class scores with a target per score: one score per sample (binary), where torch reads one sample
        one_sample = (tuple(expected) == () and len(other_shape) == 1 and tuple(arr.shape) == tuple(other_shape))
        raise ShapeError(f"shape {tuple(arr.shape)} does not match {other} {tuple(other_shape)}; expected "
                         f"{tuple(expected)}" + ("; 1-d scores are one sample's scores of its classes, so its "
                                                 "target is one class index (binary scores with 0/1 targets of "
                                                 "shape (N) go to bce)" if one_sample else ""), option=flag(role))


def focal_index(logits, target, target_kind: str = "auto") -> bool:
    """Whether focal (and the reports on it) reads `target` as class indices, its multi-class form: under auto
    when it has the (N, C, d...) logits' shape without the class axis, whole-number floats too as ce reads them;
    else it is 0/1 labels, the sigmoid form."""
    if target_kind != "auto":
        return target_kind == "index"
    return target is not None and logits.ndim > 1 and target.shape == logits.shape[:1] + logits.shape[2:]


def check_nonempty(role: str, arr: np.ndarray) -> None:
    if arr.size == 0:
        raise ShapeError(f"is empty (shape {tuple(arr.shape)}): there is nothing to compute", option=flag(role))


def check_range(role: str, arr: np.ndarray, lo: float | None, hi: float | None, what: str) -> None:
    bad = np.zeros(arr.shape, dtype=bool)
    if lo is not None:
        bad |= arr < lo
    if hi is not None:
        bad |= arr > hi
    idx = np.flatnonzero(bad)
    if idx.size:
        raise ValueRangeError(f"{what}; found {arr.flat[idx[0]].item()!r}{at_index(arr, idx[0])}",
                              option=flag(role))


def check_classes(role: str, target: np.ndarray, n_classes: int, ignore_index: int | None) -> int:
    """Validate class indices; returns how many equal ignore_index."""
    check_whole(target, role, bounded=False)  # a fractional index is named as such, whatever its value
    t = target  # compared as given: a cast to int64 first would wrap a huge float index into range
    ignored = (t == ignore_index) if ignore_index is not None else np.zeros(t.shape, dtype=bool)
    bad = np.flatnonzero(((t < 0) | (t >= n_classes)) & ~ignored)
    if bad.size:
        v = t.flat[bad[0]].item()
        raise ValueRangeError(f"class index {v}{at_index(t, bad[0])} is out of range [0, {n_classes})"
                              + (f" and is not --ignore-index ({ignore_index})" if ignore_index is not None else ""),
                              option=flag(role))
    return int(ignored.sum())


def check_weight(weight: np.ndarray | None, n_classes: int, role: str = "weight") -> None:
    if weight is None:
        return
    if weight.shape != (n_classes,):
        raise ShapeError(f"needs one weight per class: shape ({n_classes},), got {tuple(weight.shape)}",
                         option=flag(role))


def check_unit_interval(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"must be in [0, 1]; got {value}", option=flag(name))


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"must be one of {', '.join(choices)}; got {value!r}", option=flag(name))


class Finding(str):
    """A warning that names the rule it comes from (`key`). A streamed run keeps the first finding of each rule,
    in chunk order, which is the one a single pass over the whole array reports; so the text names the first
    place the rule fails, never a count or a worst case that only the whole array could know."""

    key: str
    every: bool  # the rule is about the whole array ("every row ..."): a streamed run reports it only if every
    # chunk does; otherwise the rule is about some place in it, and the first chunk to find it reports it
    weak: bool  # an every-rule that holds on too few values to conclude (a short last chunk): it does not refute
    # the rule in a stream, and alone (every chunk weak, or a small array read whole) it is not reported

    extent: tuple | None  # where weak depends on the whole array: (values, least, largest, values needed, spread
    # needed), which parts of one array add up (joined) to decide it as one read of the whole would

    def __new__(cls, key: str, text: str, every: bool = False, weak: bool = False,
                extent: tuple | None = None) -> Finding:
        obj = super().__new__(cls, text)
        obj.key, obj.every, obj.weak, obj.extent = key, every, weak, extent
        return obj

    def __reduce__(self):  # pickled to and from Dask workers: str's own reduce would lose the key
        return (Finding, (self.key, str(self), self.every, self.weak, self.extent))

    def joined(self, later: Finding) -> Finding:
        """This every-rule's finding over this part and a later part of one array: in the words of the first part
        that could conclude it; weak unless the parts together conclude it (their extents, where they have one)."""
        first = later if self.weak and not later.weak else self
        if self.extent is None or later.extent is None:
            return first
        (n, lo, hi, need_n, need_spread), (m, lo2, hi2, *_) = self.extent, later.extent
        extent = (n + m, min(lo, lo2), max(hi, hi2), need_n, need_spread)
        weak = extent[0] < need_n or extent[2] - extent[1] < need_spread
        return Finding(self.key, str(first), self.every, weak, extent)


def concluded(warnings: list[str]) -> list[str]:
    """The warnings without weak findings (a rule met on too few values to conclude): what a run reports."""
    return [w for w in warnings if not getattr(w, "weak", False)]


def weak_findings(warnings: list[str]) -> list[Finding]:
    """The findings `concluded` leaves out, which parts of one array (files, shards) join (joined_findings)."""
    return [w for w in warnings if getattr(w, "weak", False)]


def joined_findings(parts: list[list[str]]) -> list[Finding]:
    """Each every-rule that every part reports (weak or not), its findings joined in part order: over files or
    shards of one array, what a read of the whole would decide (too few values in each, enough together)."""
    found = [{w.key: w for w in part if getattr(w, "every", False)} for part in parts]
    keys = [k for k in found[0] if all(k in f for f in found[1:])] if found else []
    return [functools.reduce(Finding.joined, (f[k] for f in found)) for k in keys]


def row_sum_warning(role: str, probs: np.ndarray, axis: int, atol: float, then: str = "") -> Finding | None:
    """Probability rows should sum to 1: name the first row that does not."""
    sums = probs.sum(axis=axis, dtype=np.float64)
    bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if not bad.size:
        return None
    i = int(bad[0])
    if not sums.ndim:  # one distribution (a 1-d input): it has no row index to name
        return Finding(f"row-sum:{role}", f"{flag(role)}: its one row (a 1-d array is one sample's classes) sums to "
                       f"{float(sums):.6g}, not 1{then}")
    return Finding(f"row-sum:{role}", f"{flag(role)}: rows do not sum to 1 (first: row {position(sums, i)} sums "
                   f"to {float(sums.flat[i]):.6g}){then}")


# A model's probabilities (--probs, js's --p/--q) may come from half precision, read as float32: a bf16 softmax
# over 1000 classes sums within about 1.8e-3 of 1, past float32's 1e-3; outputs that are no distribution (a sigmoid
# per class) are off by far more. Targets keep sum_tolerance: they are written, not computed in half precision.
MODEL_PROBS_TOL = 1e-2


def sum_tolerance(dtype: np.dtype) -> float:
    return 1e-3 if np.dtype(dtype) == np.float32 else 1e-6
