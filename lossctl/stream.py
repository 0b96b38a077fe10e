"""Big inputs (.npy, and CSV/TSV when pandas is installed) streamed a chunk of rows at a time, on a pool of threads.

The main thread reads chunk after chunk into a ring of reused buffers; a pool of `--threads` workers runs the
loss function (the same one, with the same checks, as an in-memory run) on each chunk. NumPy releases the GIL in
its kernels, so chunks compute in parallel. Every chunk yields a `Partial`; they are added in chunk order, and the
chunk size does not depend on the thread count, so the total has the same bits whatever the number of threads.
"""

from __future__ import annotations

import io
import os
import threading
from collections import deque
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ShapeError
from .io import Loaded, split_key
from .io.common import native
from .io.npy import NpyHeader, read_header
from .io.remote import file_size, is_file, is_url, open_binary
from .io.rows import open_row_set, open_rows
from .io.text import TABLE_DELIMITERS, index_column, sniff_delimiter, split_cells, table_lines
from .losses._common import ROW_OFFSET, Context
from .pipeline import (
    Progress,
    Settings,
    check_finite,
    compute_dtype,
    compute_output,
    fingerprints,
    load_source,
    make_result,
    move_class_axis,
    not_ignored,
    run_report,
    wants_baselines,
)
from .reduce import Partial, as_numpy, partial_of
from .registry import LossSpec, flag
from .result import Result

CHUNK_BYTES = 8 << 20  # each chunk costs some Python work (checks, reports, sums): 8 MiB makes that small


@dataclass
class _Input:
    role: str
    path: str  # the source as given: a path, FILE:KEY (Parquet, Arrow, JSON Lines) or a URL
    row_bytes: int  # bytes of one row as computed, to size the chunks
    header: NpyHeader | None  # .npy only
    columns: int = 1  # values per row of a table (text, Parquet list column, JSON Lines list), 2 at least for
    # a list column so that ndim says 2 (a list of one value is still a row)
    width: int = 0  # the values per row as read (0 for an .npy, whose header says its shape)
    dtype: np.dtype = np.dtype(np.float64)  # the float dtype it is read in
    binary: bool = False  # keeps its float dtype under --dtype auto, as the same file read whole does

    @property
    def ndim(self) -> int:
        if self.header is not None:
            return len(self.header.shape)
        return 2 if self.columns > 1 else 1  # a table: one column is a vector


@dataclass
class Plan:
    """The batched roles to stream (the primary input first) and the other roles' sources, read whole."""

    inputs: list[_Input]
    whole: dict[str, Any]

    @property
    def nbytes(self) -> int:
        """Bytes in the files that stream (0 for a remote file whose server does not say)."""
        return sum(file_size(split_key(i.path)[0], flag(i.role)) or 0 for i in self.inputs)


def _describe(source: Any, role: str, header: str = "auto") -> _Input | None:
    """What streaming needs of one source: its rows' size and, for .npy, its header; None if not streamable.
    header: --header, which says whether a text table's first row heads an index column."""
    if not isinstance(source, str):
        return None
    path, key = split_key(source)
    if not is_file(path):
        return None
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        with open_binary(path, flag(role)) as fp:
            h = read_header(fp, option=flag(role), source=path, size=file_size(path, flag(role)))
        if h.fortran or not h.shape or 0 in h.shape:  # no element: read whole, which says it is empty
            return None
        return _Input(role, path, max(h.nbytes // max(h.shape[0], 1), 1), h, dtype=h.dtype, binary=True)
    if ext == ".safetensors":
        from .io.safetensors import rows_header

        h = rows_header(path, key, flag(role))
        if h is None or 0 in h.shape:
            return None
        return _Input(role, source, max(h.nbytes // max(h.shape[0], 1), 1), h, dtype=h.dtype, binary=True)
    if ext in TABLE_DELIMITERS:
        with io.TextIOWrapper(open_binary(path, flag(role)), encoding="utf-8-sig", errors="replace") as fp:
            head = table_lines(fp, limit=2)  # the first lines holding data: comments and blank lines come first
        first = head[0][1] if head else ""
        sep = TABLE_DELIMITERS[ext] and sniff_delimiter([ln for _, ln in head], TABLE_DELIMITERS[ext])
        cells = len(first.split(sep)) - index_column([split_cells(first, sep)], header) if sep else len(first.split())
        return _Input(role, path, max(cells, 1) * 8, None, columns=cells, width=cells)
    return _describe_rows(source, role, ext)


def _describe_rows(source: str, role: str, ext: str) -> _Input | None:
    """Parquet/Arrow (by record batch) and JSON Lines (a chunk of lines at a time): one row tells the width."""
    from .io import READERS

    path = split_key(source)[0]
    if ext not in READERS or READERS[ext].rows_name is None or not (os.path.isfile(path) or (
            is_url(path) and READERS[ext].takes(path))):
        return None  # the other remote files are copied and read whole (see io.Reader.remote)
    reader = open_rows(source, flag(role), 1)
    try:
        first = reader.read(1)
        rows = getattr(reader, "rows", None) or max(reader.total_bytes // 64, 1)
    finally:
        reader.close()
    columns = int(np.prod(first.shape[1:])) if first.ndim > 1 else 1
    dtype = first.dtype if first.dtype.kind == "f" else np.dtype(np.float64)
    return _Input(role, source, max(reader.total_bytes // max(rows, 1), columns * dtype.itemsize, 1), None,
                  columns=max(columns, 2) if first.ndim > 1 else 1, width=columns, dtype=dtype,
                  binary=READERS[ext].binary)


def _fits(item: _Input, head: _Input, index_target: bool, class_axis: int = 1) -> str:
    """How a batched role streams beside the primary input: 'rows' (chunked alike), 'whole' (broadcast), ''.
    Rows whose other axes disagree do not stream, so that the loss's check names the whole arrays' shapes, not a
    chunk's."""
    rows_match = item.header is None or head.header is None or item.header.shape[0] == head.header.shape[0]
    if rows_match and item.ndim == head.ndim:
        return "rows" if _same_tail(item, head) else ""
    if rows_match and index_target and item.ndim == head.ndim - 1:
        if item.header is None or head.header is None:
            return "rows"
        full = head.header.shape
        axis = class_axis % len(full)
        return "rows" if item.header.shape[1:] == (full[:axis] + full[axis + 1:])[1:] else ""
    if item.ndim < head.ndim:
        return "whole"  # broadcast along the batch, e.g. BCE's weight of shape (C,)
    return ""  # shapes disagree: the in-memory path reports the mismatch with both shapes


def _same_tail(item: _Input, head: _Input) -> bool:
    """Whether the axes after the rows agree (or broadcast: an axis of 1), as far as the files tell."""
    if item.header is not None and head.header is not None:
        return all(a == b or a == 1 for a, b in zip(item.header.shape[1:], head.header.shape[1:], strict=True))
    if item.header is None and head.header is None and item.ndim == 2:
        return item.width in (head.width, 1)  # tables, Parquet list columns, JSON Lines lists: their widths
    return True  # an .npy beside a table: the chunks' shapes are checked as they come


def plan(spec: LossSpec, sources: Mapping[str, Any], st: Settings) -> Plan | None:
    """What to stream, or None when the inputs do not allow streaming. route.stream_plan calls it once the loss
    and reduction allow streaming, and weighs the size."""
    given = [r for r in spec.roles if sources.get(r.name) is not None]
    described = {r.name: _describe(sources[r.name], r.name, st.header) for r in given if r.batched}
    primary = next((r.name for r in given if r.batched), None)
    if primary is None or described[primary] is None:
        return None
    head = described[primary]
    if not spec.stream.allows(st.options, head.ndim):
        return None
    out = Plan([head], {r.name: sources[r.name] for r in given if not r.batched})
    for name, item in described.items():
        if name == primary:
            continue
        how = _fits(item, head, spec.stream.index_target, st.class_axis) if item is not None else ""
        if not how or (how == "whole" and name == "target"):
            return None  # a target is never broadcast: the in-memory path names the mismatch with whole shapes
        if how == "rows":
            out.inputs.append(item)
        else:
            out.whole[name] = sources[name]
    tables = [i for i in out.inputs if os.path.splitext(split_key(i.path)[0])[1].lower() in TABLE_DELIMITERS]
    if tables and not _has_pandas():
        return None  # text tables stream through pandas' chunked reader
    return out


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401  the chunked CSV reader
    except ImportError:
        return False
    return True


@dataclass
class _Totals:
    """What the chunks add up to, in chunk order."""

    partial: Partial = field(default_factory=Partial)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unit: str = "elements"
    weighted: bool = False
    form: str = ""  # which of the loss's forms computed it (focal's), a constant of its partial as in memory
    chunks: int = 0
    every: dict[str, str] = field(default_factory=dict)  # findings about the whole file: kept if every chunk has them
    report: Any = None  # the reports' mergeable sums (ReportPartial)
    values: list[np.ndarray] = field(default_factory=list)  # reduction none: each chunk's values, in chunk order
    kept: list[np.ndarray | None] = field(default_factory=list)  # and those of the targets not ignored

    def add(self, part: Partial, out, report, values=None, kept=None) -> None:
        self.partial = self.partial + part
        if values is not None:
            self.values.append(values)
            self.kept.append(kept)
        # the first finding of each rule, in chunk order: what one pass over the whole file reports
        seen = {getattr(w, "key", w) for w in self.warnings}
        self.warnings += [w for w in out.warnings
                          if not getattr(w, "every", False) and getattr(w, "key", w) not in seen]
        every = {w.key: w for w in out.warnings if getattr(w, "every", False)}
        # a rule every chunk reports, kept in the words of its first chunk that could conclude it (not weak)
        self.every = every if self.chunks == 0 else {k: v.joined(every[k]) for k, v in self.every.items() if k in every}
        self.notes += out.notes
        self.unit, self.weighted, self.form = out.unit, out.weighted, out.form
        self.report = report if self.report is None else self.report + report if report is not None else self.report
        self.chunks += 1


class Chunks:
    """Aligned chunks of rows from every streamed input.

    Local .npy files are read at their offsets (`at`), each chunk by the thread that computes it, into that
    thread's own buffers; other sources (text tables, remote files) are read front to back (`read`), in the
    calling thread, into a ring of `buffers` reused buffers.
    """

    def __init__(self, p: Plan, stack: ExitStack, step: int, buffers: int, header: str):
        self.step, self.start = step, 0
        opened = open_row_set({flag(i.role): i.path for i in p.inputs}, step, header, buffers=buffers)
        self.readers = {i.role: opened[flag(i.role)] for i in p.inputs}
        for reader in self.readers.values():
            stack.callback(reader.close)
        self.total_bytes = sum(r.total_bytes for r in self.readers.values())
        self.shape_tail: dict[str, tuple[int, ...]] = {}
        self.random_access = all(getattr(r, "random_access", False) for r in self.readers.values())
        if self.random_access:
            self.rows = self._same_rows({role: r.rows for role, r in self.readers.items()}, 0)
            self.shape_tail = {role: tuple(r.header.shape[1:]) for role, r in self.readers.items()}
        self._local = threading.local()

    def _same_rows(self, lengths: dict[str, int], start: int) -> int:
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{flag(r)} {start + n}" for r, n in lengths.items())
            raise ShapeError(f"the files have different numbers of rows (at least: {desc})",
                             option=flag(list(lengths)[-1]))
        return next(iter(lengths.values()))

    def read(self) -> dict[str, np.ndarray]:
        chunk = {role: r.read(self.step) for role, r in self.readers.items()}
        self._same_rows({role: len(a) for role, a in chunk.items()}, self.start)
        self.shape_tail = {r: a.shape[1:] for r, a in chunk.items()}
        return chunk

    def at(self, start: int) -> dict[str, np.ndarray]:
        """The chunk of rows from `start`, read by the calling thread into buffers of its own."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = {role: np.empty((min(self.step, r.rows), *r.header.shape[1:]), r.dtype)
                                             for role, r in self.readers.items()}
        return {role: r.read_at(start, self.step, buffers[role]) for role, r in self.readers.items()}

    def position(self) -> int:
        return sum(r.position() for r in self.readers.values())


def _row_shape(i: _Input) -> tuple[int, ...]:
    """No rows of the input's shape: (0, *an .npy's trailing axes), (0, values per row) of a table, or (0,)."""
    if i.header is not None:
        return (0, *i.header.shape[1:])
    return (0, i.width or i.columns) if i.ndim == 2 else (0,)


def run_stream(spec: LossSpec, p: Plan, st: Settings, *, dtype: str, backend: str, progress: Progress | None = None,
               final: bool = True) -> Result:
    """Stream the plan's inputs chunk by chunk on `st.threads` workers; the other roles are read whole."""
    others = {role: load_source(src, flag(role), header=st.header) for role, src in p.whole.items()
              if src is not None}
    step = max(1, CHUNK_BYTES // p.inputs[0].row_bytes)
    # empty, with a row's shape: compute_dtype compares the inputs' shapes
    probe = {i.role: Loaded(np.empty(_row_shape(i), i.dtype), i.path, i.binary) for i in p.inputs}
    ctx = Context(dtype=compute_dtype(spec, {**probe, **others}, dtype), device=st.device, reduction=st.reduction,
                  backend=backend)
    check_finite(spec, others, ctx.dtype)
    paths, binary = {i.role: i.path for i in p.inputs}, {i.role: i.binary for i in p.inputs}
    threads = st.threads or os.cpu_count() or 1

    def work(chunk: dict[str, np.ndarray], start: int):
        token = ROW_OFFSET.set(start)  # errors name rows of the whole file
        try:
            check_finite(spec, {r: Loaded(a, paths[r], True) for r, a in chunk.items()}, ctx.dtype)
            # as a whole read holds them (native byte order, the file's own dtype): the input lints judge them
            # by that dtype, and the loss computes in ctx.dtype either way
            chunk = {r: native(a) for r, a in chunk.items()}
            named = {r: Loaded(a, paths[r], binary[r]) for r, a in chunk.items()} | others
            arrays = move_class_axis(spec, {**chunk, **{r: item.array for r, item in others.items()}}, st)
            out = compute_output(spec, arrays, st, ctx, named)
            done = partial_of(out, st.reduction), out, run_report(spec, arrays, st, out, start)
            return done + _chunk_values(out, arrays, st) if st.reduction == "none" else done
        finally:
            ROW_OFFSET.reset(token)

    totals = _Totals()
    with ExitStack() as stack:
        chunks = Chunks(p, stack, step, buffers=threads + 2, header=st.header)
        pool = None
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor  # a streamed run only

            pool = stack.enter_context(ThreadPoolExecutor(max_workers=threads))
        runner = _InOrder(pool, threads, totals, chunks, progress)
        for job in _jobs(chunks, work):
            runner.submit(job)
        runner.finish()
    return _streamed_result(spec, st, totals, chunks, others, ctx, step, threads, final)


def _chunk_values(out, arrays: Mapping[str, np.ndarray], st: Settings) -> tuple[np.ndarray, np.ndarray | None]:
    """Reduction none: a chunk's values and those of its targets not ignored, copied off the reused buffers."""
    values = as_numpy(out.values)
    if any(np.may_share_memory(values, a) for a in arrays.values()):
        values = values.copy()
    kept = not_ignored(values, arrays.get("target"), st.options.get("ignore_index"))
    return values, values if kept is not None and kept.size == values.size else kept


def _jobs(chunks: Chunks, work):
    """One callable per chunk, in file order: local .npy chunks are read by the thread that computes them."""
    if chunks.random_access:
        for start in range(0, chunks.rows, chunks.step):
            chunks.start = min(start + chunks.step, chunks.rows)
            yield lambda start=start: work(chunks.at(start), start)
        return
    while True:
        start, chunk = chunks.start, chunks.read()
        n = len(next(iter(chunk.values())))
        if n == 0:
            return
        chunks.start += n
        yield lambda chunk=chunk, start=start: work(chunk, start)


class _InOrder:
    """Runs chunk jobs inline (one thread: it reads and computes) or on the pool, with at most `threads` chunks in
    flight, and adds their results in chunk order, so the total does not depend on the thread count."""

    def __init__(self, pool, threads: int, totals: _Totals, chunks: Chunks, progress: Progress | None):
        self.pool, self.threads, self.totals, self.chunks, self.progress = pool, threads, totals, chunks, progress
        self.pending: deque = deque()  # concurrent.futures.Future, in chunk order

    def submit(self, job) -> None:
        if self.pool is None:
            self._add(job())
            return
        self.pending.append(self.pool.submit(job))
        # a chunk read at its offset lands in the buffers of the thread that runs it, so queueing more costs no
        # memory and keeps every thread busy; chunks read here are held until computed, so at most one per thread
        while len(self.pending) > (2 * self.threads if self.chunks.random_access else self.threads):
            self._add(self.pending.popleft().result())

    def finish(self) -> None:
        while self.pending:
            self._add(self.pending.popleft().result())

    def _add(self, result) -> None:
        self.totals.add(*result)
        if self.progress is not None:
            c = self.chunks
            done = c.position() if not c.random_access else min(self.totals.chunks * c.step, c.rows) * \
                c.total_bytes // max(c.rows, 1)
            self.progress(done if self.pending or not c.random_access else c.total_bytes, c.total_bytes)


def streamed_note(chunks: int, step: int, threads: int, sums: str) -> str:
    """How a stream ran, for the result's notes: `sums` names what was added up in chunk order."""
    return (f"streamed in {chunks} chunk{'s' if chunks != 1 else ''} of up to {step} rows on {threads} "
            f"thread{'s' if threads != 1 else ''}; {sums} accumulated in float64, in chunk order")


def _streamed_result(spec: LossSpec, st: Settings, totals: _Totals, chunks: Chunks, others: dict[str, Loaded],
                     ctx: Context, step: int, threads: int, final: bool) -> Result:
    rows = chunks.start
    if rows == 0:  # as a whole read says it (check_nonempty)
        role, reader = next(iter(chunks.readers.items()))
        shape = (0, *chunks.shape_tail.get(role, ()))
        raise ShapeError(f"is empty (shape {shape}): there is nothing to compute", option=flag(role),
                         source=getattr(reader, "path", None))
    notes = [*totals.notes, streamed_note(totals.chunks, step, threads, "sums")]
    shapes = {r: [rows, *tail] for r, tail in chunks.shape_tail.items()}
    shapes.update({r: list(item.array.shape) for r, item in others.items()})
    found, rep = None, totals.report
    weight = others["weight"].array if "weight" in others else None
    if wants_baselines(spec, st, totals.partial):
        from .reports import baselines_from_counts

        found = baselines_from_counts(spec.baseline, rep, weight, st.options, st.scale)
        if found is None:
            notes.append("baselines: a streamed run has them from sums of the targets (class counts, probability "
                         "and label sums); sigmoid focal with soft labels needs every label in memory (--no-stream)")
    values, kept = _joined(totals) if st.reduction == "none" else (None, None)
    result = make_result(spec, st, totals.partial, dtype=ctx.dtype, shapes=shapes, unit=totals.unit,
                         weighted=totals.weighted, warnings=[*totals.warnings, *totals.every.values()], notes=notes,
                         final=final, backend=ctx.backend, report=rep, baselines=found,
                         constants={**fingerprints(spec, {r: i.array for r, i in others.items()}),
                                    **({"form": totals.form} if totals.form else {})}, values=values,
                         kept=kept)
    result.class_weight, result.loss_notes = weight, list(dict.fromkeys(totals.notes))
    return result


def _joined(totals: _Totals) -> tuple[np.ndarray, np.ndarray | None]:
    """Reduction none: the chunks' values as one array, as a whole read gives them (chunks split the first axis)."""
    if any(k is None for k in totals.kept):
        kept = None
    elif all(k is v for k, v in zip(totals.kept, totals.values, strict=True)):
        kept = ...  # nothing ignored: the values themselves, flattened below
    else:
        kept = np.concatenate([k.reshape(-1) for k in totals.kept])
    values = np.concatenate(totals.values)
    totals.values, totals.kept = [], []  # the chunks' copies go once joined: the output is held once, not twice
    return values, values.reshape(-1) if kept is ... else kept
