"""Big inputs (.npy, and CSV/TSV when pandas is installed) streamed a chunk of rows at a time.

Every chunk yields a `Partial` (sum of losses, sum of denominators); adding them gives exactly the
single-pass reduction. A reader thread fills the next chunk while the current one is computed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import Settings, call_loss, check_finite, compute_dtype, fingerprints, load_source, make_result
from .errors import ShapeError
from .io import Loaded
from .io.npy import NpyHeader, read_header
from .io.rows import open_rows
from .losses._common import ROW_OFFSET, Context, check_unit_interval, flag
from .reduce import Partial, partial_of
from .registry import LossSpec
from .result import Result

STREAM_MIN_BYTES = 64 << 20  # smaller inputs are read whole: one pass is faster than the bookkeeping
CHUNK_BYTES = 4 << 20  # a chunk of a few MiB amortises the per-chunk work and stays near the cache

Progress = Callable[[int, int], None]


@dataclass
class _Input:
    role: str
    path: str
    row_bytes: int  # bytes of one row as computed, to size the chunks
    header: NpyHeader | None  # .npy only


def _describe(path: Any, role: str) -> _Input | None:
    """What streaming needs of one source: its rows' size and, for .npy, its header; None if not streamable."""
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        with open(path, "rb") as fp:
            h = read_header(fp, option=flag(role), source=path, size=os.fstat(fp.fileno()).st_size)
        if h.fortran or not h.shape:
            return None
        return _Input(role, path, max(h.nbytes // max(h.shape[0], 1), 1), h)
    if ext in (".csv", ".tsv"):
        with open(path, "rb") as fp:
            first = fp.readline(1 << 20)
        return _Input(role, path, (first.count(b"\t" if ext == ".tsv" else b",") + 1) * 8, None)
    return None


def _ndim(i: _Input) -> int:
    if i.header is not None:
        return len(i.header.shape)
    return 2 if i.row_bytes > 8 else 1  # a CSV: one column is a vector


def plan(spec: LossSpec, sources: Mapping[str, Any], st: Settings, *, force: bool = False
         ) -> tuple[list[_Input], dict[str, Any]] | None:
    """(the inputs to stream, the sources read whole), or None when one in-memory pass serves better.

    A role is streamed when its first axis is the batch: the primary input's rows, or a target with one axis
    fewer (class indices). Others (a per-class weight, a broadcast weight) are read whole.
    """
    if spec.stream is None or st.reduction == "none":
        return None
    given = [r for r in spec.roles if sources.get(r.name) is not None]
    described = {r.name: _describe(sources[r.name], r.name) for r in given if r.batched}
    primary = next((r.name for r in given if r.batched), None)
    if primary is None or described[primary] is None:
        return None
    head = described[primary]
    ndim = _ndim(head)
    if spec.stream == "rows" and ndim < 2:
        return None  # (C) input is one distribution: there is no batch axis to split
    if spec.name == "entropy" and st.options.get("dim", -1) % ndim == 0:
        return None  # the classes lie along the batch axis
    inputs, whole = [head], {r.name: sources[r.name] for r in given if not r.batched}
    for name, item in described.items():
        if name == primary:
            continue
        if item is None:
            return None
        rows_match = item.header is None or head.header is None or item.header.shape[0] == head.header.shape[0]
        if _ndim(item) == ndim and rows_match or (name == "target" and _ndim(item) == ndim - 1 and rows_match):
            inputs.append(item)
        elif _ndim(item) < ndim:
            whole[name] = sources[name]  # broadcast along the batch, e.g. BCE's weight of shape (C,)
        else:
            return None  # shapes disagree: the in-memory path reports the mismatch with both shapes
    if any(i.header is None for i in inputs):
        try:
            import pandas  # noqa: F401  the chunked CSV reader
        except ImportError:
            return None
    if not force and sum(os.path.getsize(i.path) for i in inputs) < STREAM_MIN_BYTES:
        return None
    return inputs, whole


def _kernel(spec: LossSpec, chunk: Mapping[str, np.ndarray], st: Settings, dtype: np.dtype):
    """The NumPy kernel for CE/NLL with class-index targets, or None where torch computes the chunk."""
    opts, target = st.options, chunk.get("target")
    if st.device != "cpu" or target is None or target.dtype.kind not in "iu":
        return None
    if spec.name in ("ce", "perplexity") and opts["target_kind"] in ("auto", "index"):
        kind = "logits"
    elif spec.name == "nll":
        kind = next(k for k in ("log_probs", "logits", "probs") if chunk.get(k) is not None)
    else:
        return None
    x = chunk[kind]
    if x.ndim < 2 or target.shape != x.shape[:1] + x.shape[2:]:
        return None  # not class indices for these logits (a one-hot target is probabilities): torch decides
    eps = opts.get("label_smoothing", 0.0)
    check_unit_interval("label_smoothing", eps)
    from .losses.fast import index_partial

    x = x if x.dtype == dtype else x.astype(dtype)  # integer logits compute in the float dtype, as in torch
    return lambda: index_partial(x, target, chunk.get("weight"), ignore_index=opts["ignore_index"],
                                 label_smoothing=eps, input_kind=kind)


def run_stream(spec: LossSpec, inputs: list[_Input], whole: Mapping[str, Any], st: Settings, *, dtype: str,
               progress: Progress | None = None, final: bool = True) -> Result:
    """Stream `inputs` (the batched roles) chunk by chunk; `whole` holds the other roles' sources."""
    others = {role: load_source(src, flag(role)) for role, src in whole.items() if src is not None}
    step = max(1, CHUNK_BYTES // inputs[0].row_bytes)
    probe = {i.role: Loaded(np.empty(0, i.header.dtype if i.header else np.float64), i.path, i.header is not None)
             for i in inputs}
    np_dtype = compute_dtype(spec, {**probe, **others}, dtype)
    ctx = Context(dtype=np_dtype, device=st.device, reduction=st.reduction)
    check_finite(spec, others)
    partial, warnings, notes = Partial(), [], []
    unit, weighted, engine, chunks, start = "elements", False, "torch", 0, 0
    shape_tail: dict[str, tuple[int, ...]] = {}
    paths = {i.role: i.path for i in inputs}
    with ExitStack() as stack:
        readers = {}
        for i in inputs:
            readers[i.role] = open_rows(i.path, flag(i.role), step)
            stack.callback(readers[i.role].close)

        def read() -> dict[str, np.ndarray]:
            chunk = {role: r.read(step) for role, r in readers.items()}
            lengths = {role: len(a) for role, a in chunk.items()}
            if len(set(lengths.values())) > 1:
                desc = ", ".join(f"--{r.replace('_', '-')} {start + n}" for r, n in lengths.items())
                raise ShapeError(f"the files have different numbers of rows (at least: {desc})",
                                 option=flag(inputs[-1].role))
            return chunk

        total_bytes = sum(r.total_bytes for r in readers.values())
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        pending = pool.submit(read)
        while True:
            chunk = pending.result()
            n = len(next(iter(chunk.values())))
            if n == 0:
                break
            pending = pool.submit(read)  # the reader fills the other buffer while this chunk computes
            chunk = {r: (a.astype(np_dtype) if a.dtype.kind == "f" and a.dtype != np_dtype else a)
                     for r, a in chunk.items()}
            shape_tail = {r: a.shape[1:] for r, a in chunk.items()}
            arrays = {**chunk, **{r: item.array for r, item in others.items()}}
            token = ROW_OFFSET.set(start)
            try:
                named = {r: Loaded(a, paths[r], True) for r, a in chunk.items()} | others
                check_finite(spec, named)
                kernel = _kernel(spec, arrays, st, np_dtype)
                if kernel is not None:
                    part, engine = call_loss(spec, kernel, named), "numpy"
                    unit, weighted = "targets", arrays.get("weight") is not None
                    if weighted and st.reduction == "mean":
                        notes.append("weighted mean: torch divides by the sum of the targets' class weights, not N")
                else:
                    out = call_loss(spec, functools.partial(spec.compute_fn(), arrays, st.options, ctx), named)
                    part = partial_of(out, st.reduction)
                    unit, weighted = out.unit, out.weighted
                    warnings += out.warnings
                    notes += out.notes
            finally:
                ROW_OFFSET.reset(token)
            partial = partial + part
            start += n
            chunks += 1
            if progress is not None:
                progress(sum(r.position() for r in readers.values()), total_bytes)
    if start == 0:
        raise ShapeError("has no rows: there is nothing to compute", option=flag(inputs[0].role))
    if st.scale != 1.0:
        partial.total /= st.scale
    notes.append(f"streamed in {chunks} chunks of up to {step} rows; sums accumulated in float64"
                 + ("; per-row losses by lossctl's NumPy kernel (torch's formula, held to torch by the tests)"
                    if engine == "numpy" else ""))
    shapes = {r: [start, *tail] for r, tail in shape_tail.items()}
    shapes.update({r: list(item.array.shape) for r, item in others.items()})
    return make_result(spec, st, partial, dtype=np_dtype, shapes=shapes, unit=unit, weighted=weighted,
                       warnings=warnings, notes=notes, final=final,
                       constants=fingerprints(spec, {r: item.array for r, item in others.items()}))
