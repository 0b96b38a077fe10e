"""Big .npy inputs, streamed in chunks of rows through reused buffers, in bounded memory.

Every chunk yields a `Partial` (sum of losses, sum of denominators); adding them gives exactly the
single-pass reduction. A reader thread fills the next chunk's buffers while the current one is computed.
The buffers are read with `readinto`, not memory-mapped, so pages already used do not stay in RSS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import Settings, check_finite, load_source, make_result
from .errors import InputError
from .io import Loaded
from .io.npy import NpyHeader, read_header
from .losses._common import ROW_OFFSET, Context
from .reduce import Partial, partial_of
from .registry import LossSpec
from .result import Result

STREAM_MIN_BYTES = 64 << 20  # smaller inputs are read whole: one pass is faster than the bookkeeping
CHUNK_BYTES = 4 << 20  # rows per chunk fit a few MiB: big enough to amortise, small enough to stay in cache
STREAMED = ("ce", "nll", "kl", "bce", "entropy")

Progress = Callable[[int, int], None]


@dataclass
class _Input:
    role: str
    path: str
    header: NpyHeader


def _npy_header(path: str, role: str) -> NpyHeader | None:
    if not (isinstance(path, str) and path.lower().endswith(".npy") and os.path.isfile(path)):
        return None
    with open(path, "rb") as fp:
        return read_header(fp, option="--" + role.replace("_", "-"), source=path,
                           size=os.fstat(fp.fileno()).st_size)


def plan(spec: LossSpec, sources: Mapping[str, Any], st: Settings, *, force: bool = False) -> list[_Input] | None:
    """The inputs to stream, or None when the request is better served in one in-memory pass."""
    if spec.name not in STREAMED or st.reduction == "none":
        return None
    given = [r for r in spec.roles if sources.get(r.name) is not None]
    batched = [r for r in given if r.batched]
    if not batched:
        return None
    headers = {r.name: _npy_header(sources[r.name], r.name) for r in batched}
    if any(h is None or h.fortran for h in headers.values()):
        return None
    primary = headers[batched[0].name]
    if not primary.shape or (spec.name in ("ce", "nll", "entropy") and len(primary.shape) < 2):
        return None  # no batch axis to split: (C) logits are one sample
    if spec.name == "entropy" and st.options.get("dim") in (0, -len(primary.shape)):
        return None  # the classes lie along the batch axis
    n = primary.shape[0]
    if any(not h.shape or h.shape[0] != n for h in headers.values()):
        return None  # shapes disagree: the in-memory path reports the mismatch
    if not force and sum(h.nbytes for h in headers.values()) < STREAM_MIN_BYTES:
        return None
    return [_Input(r.name, sources[r.name], headers[r.name]) for r in batched]


def _kernel(spec: LossSpec, chunk: Mapping[str, np.ndarray], st: Settings):
    """The NumPy kernel for CE/NLL with class-index targets, or None where torch computes the chunk."""
    opts = st.options
    if spec.name == "ce" and chunk["target"].dtype.kind in "iu" and opts["target_kind"] in ("auto", "index"):
        kind, x = "logits", chunk["logits"]
    elif spec.name == "nll" and chunk["target"].dtype.kind in "iu":
        kind = next(k for k in ("log_probs", "logits", "probs") if chunk.get(k) is not None)
        x = chunk[kind]
    else:
        return None
    if st.device != "cpu":
        return None
    from .losses.fast import index_partial

    eps = opts.get("label_smoothing", 0.0)
    if not 0.0 <= eps <= 1.0:
        return None  # let the torch path raise its usage error
    return lambda: index_partial(x, chunk["target"], chunk.get("weight"), ignore_index=opts["ignore_index"],
                                 label_smoothing=eps, input_kind=kind)


def run_stream(spec: LossSpec, inputs: list[_Input], whole: Mapping[str, Any], st: Settings, *, dtype: str,
               progress: Progress | None = None) -> Result:
    """Stream `inputs` (batched .npy roles) chunk by chunk; `whole` holds the other roles' sources."""
    from .api import compute_dtype

    others = {role: load_source(src, "--" + role.replace("_", "-")) for role, src in whole.items() if src is not None}
    first = inputs[0].header
    row_bytes = max(first.nbytes // max(first.shape[0], 1), 1)
    n_rows = first.shape[0]
    step = max(1, CHUNK_BYTES // row_bytes)
    total_bytes = sum(i.header.nbytes for i in inputs)
    probe = {i.role: Loaded(np.empty((0,), i.header.dtype), i.path, True) for i in inputs}
    np_dtype = compute_dtype(spec, {**probe, **others}, dtype)
    ctx = Context(dtype=np_dtype, device=st.device, reduction=st.reduction)
    check_finite(spec, others)
    partial, warnings, notes = Partial(), [], []
    unit, weighted, engine = "elements", False, "torch"
    with ExitStack() as stack:
        files = {i.role: stack.enter_context(open(i.path, "rb")) for i in inputs}
        for i in inputs:
            files[i.role].seek(i.header.offset)
        buffers = [{i.role: np.empty((step, *i.header.shape[1:]), i.header.dtype) for i in inputs} for _ in (0, 1)]

        def read(start: int, slot: int) -> int:
            n = min(step, n_rows - start)
            for i in inputs:
                view = buffers[slot][i.role][:n]
                got = files[i.role].readinto(memoryview(view).cast("B"))
                if got != view.nbytes:
                    raise InputError(f"truncated at row {start}: the file ended early",
                                     option="--" + i.role.replace("_", "-"), source=i.path)
            return n

        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        pending = pool.submit(read, 0, 0)
        for k, start in enumerate(range(0, n_rows, step)):
            n = pending.result()
            if start + step < n_rows:
                pending = pool.submit(read, start + step, (k + 1) % 2)
            chunk = {role: buf[:n] for role, buf in buffers[k % 2].items()}
            if np_dtype != chunk[inputs[0].role].dtype:
                chunk = {r: (a.astype(np_dtype) if a.dtype.kind == "f" else a) for r, a in chunk.items()}
            arrays = {**chunk, **{r: item.array for r, item in others.items()}}
            token = ROW_OFFSET.set(start)
            try:
                check_finite(spec, {r: Loaded(a, files[r].name, True) for r, a in chunk.items()})
                kernel = _kernel(spec, arrays, st)
                if kernel is not None:
                    part = kernel()
                    engine = "numpy"
                    unit, weighted = "targets", arrays.get("weight") is not None
                    if weighted and st.reduction == "mean":
                        notes.append("weighted mean: torch divides by the sum of the targets' class weights, not N")
                else:
                    out = spec.compute_fn()(arrays, st.options, ctx)
                    part = partial_of(out, st.reduction)
                    unit, weighted = out.unit, out.weighted
                    warnings += out.warnings
                    notes += out.notes
            finally:
                ROW_OFFSET.reset(token)
            partial = partial + part
            if progress is not None:
                progress(min(total_bytes, (start + n) * total_bytes // n_rows), total_bytes)
    if st.scale != 1.0:
        partial.total /= st.scale
    notes.append(f"streamed in {-(-n_rows // step)} chunks of {step} rows; sums accumulated in float64"
                 + ("; per-row losses by lossctl's NumPy kernel (torch's formula, held to torch by the tests)"
                    if engine == "numpy" else ""))
    shapes = {i.role: list(i.header.shape) for i in inputs}
    shapes.update({r: list(item.array.shape) for r, item in others.items()})
    return make_result(spec, st, partial, dtype=np_dtype, shapes=shapes, unit=unit, weighted=weighted,
                       warnings=warnings, notes=notes)
