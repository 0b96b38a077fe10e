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

from .api import Settings, call_loss, check_finite, compute_dtype, load_source, make_result
from .errors import ShapeError
from .io import Loaded
from .io.npy import NpyHeader, read_header
from .io.rows import open_rows
from .losses._common import ROW_OFFSET, Context
from .reduce import Partial, partial_of
from .registry import LossSpec
from .result import Result

STREAM_MIN_BYTES = 64 << 20  # smaller inputs are read whole: one pass is faster than the bookkeeping
CHUNK_BYTES = 4 << 20  # a chunk of a few MiB amortises the per-chunk work and stays near the cache
STREAMED = ("ce", "nll", "kl", "bce", "entropy", "perplexity")
ROWS_NEEDED = ("ce", "nll", "entropy", "perplexity")  # (C) input is one sample: there is no batch axis to split

Progress = Callable[[int, int], None]


@dataclass
class _Input:
    role: str
    path: str
    row_bytes: int  # bytes of one row as computed, to size the chunks
    header: NpyHeader | None  # .npy only


def _describe(path: Any, role: str, spec: LossSpec) -> _Input | None:
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    ext = os.path.splitext(path)[1].lower()
    flag = "--" + role.replace("_", "-")
    if ext == ".npy":
        with open(path, "rb") as fp:
            h = read_header(fp, option=flag, source=path, size=os.fstat(fp.fileno()).st_size)
        if h.fortran or not h.shape or (spec.name in ROWS_NEEDED and len(h.shape) < 2 and role != "target"):
            return None
        return _Input(role, path, max(h.nbytes // max(h.shape[0], 1), 1), h)
    if ext in (".csv", ".tsv"):
        with open(path, "rb") as fp:
            first = fp.readline(1 << 20)
        cols = first.count(b"\t" if ext == ".tsv" else b",") + 1
        if spec.name in ROWS_NEEDED and cols < 2 and role != "target":
            return None
        return _Input(role, path, cols * 8, None)
    return None


def plan(spec: LossSpec, sources: Mapping[str, Any], st: Settings, *, force: bool = False) -> list[_Input] | None:
    """The inputs to stream, or None when the request is better served in one in-memory pass."""
    if spec.name not in STREAMED or st.reduction == "none":
        return None
    batched = [r for r in spec.roles if sources.get(r.name) is not None and r.batched]
    if not batched:
        return None
    inputs = [_describe(sources[r.name], r.name, spec) for r in batched]
    if any(i is None for i in inputs):
        return None
    if any(i.path.lower().endswith((".csv", ".tsv")) for i in inputs):
        try:
            import pandas  # noqa: F401  the chunked CSV reader
        except ImportError:
            return None
    rows = {i.header.shape[0] for i in inputs if i.header is not None}
    if len(rows) > 1:
        return None  # shapes disagree: the in-memory path reports the mismatch with both shapes
    if spec.name == "entropy" and st.options.get("dim") == 0:
        return None  # the classes lie along the batch axis
    if not force and sum(os.path.getsize(i.path) for i in inputs) < STREAM_MIN_BYTES:
        return None
    return inputs


def _kernel(spec: LossSpec, chunk: Mapping[str, np.ndarray], st: Settings):
    """The NumPy kernel for CE/NLL with class-index targets, or None where torch computes the chunk."""
    opts = st.options
    if st.device != "cpu" or "target" not in chunk or chunk["target"].dtype.kind not in "iu":
        return None
    if spec.name in ("ce", "perplexity") and opts["target_kind"] in ("auto", "index") and chunk["logits"].ndim >= 2:
        kind = "logits"
    elif spec.name == "nll":
        kind = next(k for k in ("log_probs", "logits", "probs") if chunk.get(k) is not None)
    else:
        return None
    eps = opts.get("label_smoothing", 0.0)
    if not 0.0 <= eps <= 1.0:
        return None  # the torch path raises the usage error
    from .losses.fast import index_partial

    return lambda: index_partial(chunk[kind], chunk["target"], chunk.get("weight"),
                                 ignore_index=opts["ignore_index"], label_smoothing=eps, input_kind=kind)


def run_stream(spec: LossSpec, inputs: list[_Input], whole: Mapping[str, Any], st: Settings, *, dtype: str,
               progress: Progress | None = None) -> Result:
    """Stream `inputs` (the batched roles) chunk by chunk; `whole` holds the other roles' sources."""
    others = {role: load_source(src, "--" + role.replace("_", "-")) for role, src in whole.items() if src is not None}
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
            readers[i.role] = open_rows(i.path, "--" + i.role.replace("_", "-"), step)
            stack.callback(readers[i.role].close)

        def read() -> dict[str, np.ndarray]:
            chunk = {role: r.read(step) for role, r in readers.items()}
            lengths = {role: len(a) for role, a in chunk.items()}
            if len(set(lengths.values())) > 1:
                desc = ", ".join(f"--{r.replace('_', '-')} {start + n}" for r, n in lengths.items())
                raise ShapeError(f"the files have different numbers of rows (at least: {desc})",
                                 option="--" + inputs[-1].role.replace("_", "-"))
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
                kernel = _kernel(spec, arrays, st)
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
        raise ShapeError("has no rows: there is nothing to compute", option="--" + inputs[0].role.replace("_", "-"))
    if st.scale != 1.0:
        partial.total /= st.scale
    notes.append(f"streamed in {chunks} chunks of up to {step} rows; sums accumulated in float64"
                 + ("; per-row losses by lossctl's NumPy kernel (torch's formula, held to torch by the tests)"
                    if engine == "numpy" else ""))
    shapes = {r: [start, *tail] for r, tail in shape_tail.items()}
    shapes.update({r: list(item.array.shape) for r, item in others.items()})
    return make_result(spec, st, partial, dtype=np_dtype, shapes=shapes, unit=unit, weighted=weighted,
                       warnings=warnings, notes=notes)
