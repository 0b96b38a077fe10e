"""`lossctl calibration`: the calibration core (`lossctl.calibration`) run over files as the losses are run.

One set of files is read whole, or streamed a chunk of rows at a time when big .npy/CSV files allow it (the plan
and the chunk reader are stream.py's, the pool and the in-order sum follow run_stream); each chunk gives a
`CalibrationPartial` of per-bin sums, added in chunk order. Several sets of files (repeated options, globs) give
one result each and the exact total; `--partials` prints the summed bins as JSON and `merge` adds such documents.
Equal-width bins only where sums must add: quantile edges depend on every confidence, so they need one whole
read of one set of files.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import stream as streaming
from .batch import expand, fields_problem, pair, pending_document, pending_findings, pending_problem, set_labels
from .calibration import (
    NO_SAMPLES,
    NORMS,
    TASKS,
    CalibrationPartial,
    binning_dtype,
    calibration_inputs,
    calibration_partial,
    finish_calibration,
    probability_warnings,
    quantile_edges,
    task_by_ndim,
    uniform_edges,
)
from .calibration_result import CalibrationFiles, CalibrationResult
from .errors import InputError, LossctlError, ShapeError, StrictWarningError, UsageError
from .io import Loaded
from .losses._common import ROW_OFFSET, check_choice, concluded, joined_findings
from .pipeline import (
    HEADERS,
    Settings,
    call_loss,
    check_finite,
    check_threads,
    compute_dtype,
    gather,
    move_class_axis,
    typed_option,
)
from .registry import LossSpec, Role, Streaming, flag
from .reports import input_lints
from .route import stream_plan

PARTIAL_KIND = "lossctl-calibration-partial"
BINNINGS = ("uniform", "quantile")

# Not a registered loss: a spec only for what the loaders and checks read of one (roles, groups, streaming).
CALIBRATION = LossSpec(
    name="calibration", torch_name="torchmetrics MulticlassCalibrationError / BinaryCalibrationError",
    summary="Expected, RMS and maximum calibration error, with the reliability table.",
    formula="ECE = sum_b (n_b / N) |acc_b - conf_b|", compute="lossctl.calibration:calibration_inputs",
    roles=(Role("logits", "Logits (N, C) (softmax) or (N) (sigmoid).", group="input"),
           Role("probs", "Probabilities (N, C), or p(class 1) of shape (N).", group="input"),
           Role("target", "Class indices (N), or 0/1 of the scores' shape.")),
    stream=Streaming("elements", index_target=True), class_roles=("logits", "probs"),
)


@dataclass(frozen=True)
class CalibrationSettings:
    """The validated settings of one calibration run."""

    bins: int = 15
    norm: str = "l1"
    binning: str = "uniform"
    task: str = "auto"
    strict: bool = False
    threads: int | None = None  # streamed chunks computed at once; None: the machine's cores
    header: str = "auto"
    ignore_index: int | None = None  # targets left out, as torchmetrics' ignore_index; None: none, as there
    class_axis: int = 1  # where the scores hold their classes, moved to torch's 1 (-1: classes last)

    def loss_settings(self) -> Settings:
        """What the loaders, the stream planner and move_class_axis read of these settings."""
        return Settings("mean", {}, threads=self.threads, header=self.header, class_axis=self.class_axis)


def calibration_settings(*, bins: int = 15, norm: str = "l1", binning: str = "uniform", task: str = "auto",
                         strict: bool = False, threads: int | None = None, header: str = "auto",
                         ignore_index: int | None = None, class_axis: int = 1) -> CalibrationSettings:
    """Check every setting before any file is read."""
    uniform_edges(bins)  # refuses a bin count that is not a whole number >= 1
    check_choice("norm", norm, NORMS)
    check_choice("binning", binning, BINNINGS)
    check_choice("task", task, TASKS)
    check_choice("header", header, HEADERS)
    threads = check_threads(threads)
    if ignore_index is not None:
        ignore_index = typed_option("--ignore-index", int, ignore_index)
    class_axis = typed_option("--class-axis", int, class_axis)
    return CalibrationSettings(bins, norm, binning, task, strict, threads, header, ignore_index, class_axis)


@dataclass
class CalibrationSums:
    """One set of files' per-bin sums, with the task they were binned for and the warnings and notes met."""

    partial: CalibrationPartial
    task: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dtype: str = ""  # the dtype the scores were binned in ("float32+float64" for files of both)


# --- one set of arrays ---------------------------------------------------------------------------------------

def sums_of_arrays(arrays: Mapping[str, np.ndarray], cs: CalibrationSettings, dtype: np.dtype,
                   whole: bool = True) -> CalibrationSums:
    """The per-bin sums of validated arrays (a whole file or one chunk of rows), scores cast to `dtype` first.

    whole: quantile edges are taken from these confidences; a chunk (whole=False) only ever has uniform bins.
    """
    role = "logits" if arrays.get("logits") is not None else "probs"
    arrays = move_class_axis(CALIBRATION, arrays, cs.loss_settings())
    scores = np.asarray(arrays[role])
    if scores.dtype.kind == "f" and scores.dtype != dtype:
        scores = scores.astype(dtype)
    confidence, correct, task = calibration_inputs(**{role: scores}, target=arrays["target"], task=cs.task,
                                                   ignore_index=cs.ignore_index)
    if role == "logits":  # probabilities passed as logits get softmax or sigmoid a second time, as in ce and bce
        warnings = input_lints(("logits-are-probs" if task == "multiclass" else "sigmoid-applied",), arrays, {},
                               ("logits", "probs"))
    else:
        warnings = probability_warnings(scores) if task == "multiclass" else []
    edges = quantile_edges(confidence, cs.bins) if cs.binning == "quantile" and whole else None
    partial = calibration_partial(confidence, correct, bins=cs.bins, edges=edges, binning=cs.binning,
                                  decide_in=binning_dtype(task, dtype))
    return CalibrationSums(partial, task, warnings, dtype=str(np.dtype(dtype)))


def _sums_whole(sources: Mapping[str, Any], cs: CalibrationSettings, dtype: str, bundle: str | None
                ) -> CalibrationSums:
    loaded = gather(CALIBRATION, sources, bundle, cs.header)
    check_finite(CALIBRATION, loaded)
    dt = compute_dtype(CALIBRATION, loaded, dtype, promote=False)
    arrays = {role: item.array for role, item in loaded.items()}
    return call_loss(CALIBRATION, lambda: sums_of_arrays(arrays, cs, dt), loaded)  # weak findings kept: see finish


# --- streamed ------------------------------------------------------------------------------------------------

def _plan(sources: Mapping[str, Any], cs: CalibrationSettings, stream: bool | None, bundle: str | None,
          partials: bool) -> streaming.Plan | None:
    """What to stream, or None to read whole. Quantile bins need every confidence: never streamed, and refused
    where the sums must add (--stream, --partials)."""
    if cs.binning == "quantile":
        if stream or partials:
            option = "--stream" if stream else "--partials"
            raise UsageError("quantile bins need every confidence at once, so their sums cannot be streamed or "
                             "merged; use --binning uniform, or read the files whole (--no-stream, no --partials)",
                             option=option)
        return None
    # a bundle of rows (Parquet/Arrow, JSON Lines, .safetensors) streams as its keys do
    planned = stream_plan(CALIBRATION, sources, cs.loss_settings(), stream, bundle=bundle)
    return planned if planned is None or _task_fits(planned, cs.task) else None


def _task_fits(p: streaming.Plan, task: str) -> bool:
    """Whether the files' shapes give the task, as calibration_inputs decides it (task_by_ndim); where they do not,
    the files are read whole, so that the error names their shapes, not a chunk's."""
    ndim = {i.role: i.ndim for i in p.inputs}
    scores = next((n for role, n in ndim.items() if role != "target"), None)
    target = ndim.get("target")
    if scores is None or target is None:
        return True
    return task_by_ndim(task, scores, target) is not None


def _sums_streamed(p: streaming.Plan, cs: CalibrationSettings, dtype: str, progress=None) -> CalibrationSums:
    """Chunks of rows, binned on `cs.threads` workers, their sums added in chunk order."""
    step = max(1, streaming.CHUNK_BYTES // p.inputs[0].row_bytes)
    probe = {i.role: Loaded(np.empty(0, i.header.dtype if i.header else np.float64), i.path, i.header is not None)
             for i in p.inputs}
    dt = compute_dtype(CALIBRATION, probe, dtype, promote=False)
    paths = {i.role: i.path for i in p.inputs}
    threads = cs.threads or os.cpu_count() or 1

    def work(chunk: dict[str, np.ndarray], start: int) -> CalibrationSums:
        token = ROW_OFFSET.set(start)  # errors name rows of the whole file
        try:
            named = {r: Loaded(a, paths[r], True) for r, a in chunk.items()}
            check_finite(CALIBRATION, named)
            return call_loss(CALIBRATION, lambda: sums_of_arrays(chunk, cs, dt, whole=False), named)
        finally:
            ROW_OFFSET.reset(token)

    parts: list[CalibrationSums] = []
    with ExitStack() as stack:
        chunks = streaming.Chunks(p, stack, step, buffers=threads + 2, header=cs.header)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=threads))
        pending: deque[Future] = deque()

        def collect() -> None:  # the oldest chunk first, so the sums add up in chunk order
            parts.append(pending.popleft().result())
            if progress is not None:
                progress(chunks.position() if pending else chunks.total_bytes, chunks.total_bytes)

        while True:
            chunk = chunks.read()
            n = len(next(iter(chunk.values())))
            if n == 0:
                break
            pending.append(pool.submit(work, chunk, chunks.start))
            chunks.start += n
            while len(pending) > threads:  # at most `threads` chunks in flight, plus the one being read
                collect()
        while pending:
            collect()
    if not parts:
        raise ShapeError("has no rows: there is nothing to compute", option=flag(next(iter(chunks.readers))))
    total = _added(parts)
    total.notes.append(streaming.streamed_note(len(parts), step, threads, "per-bin sums"))
    return total


def _added(parts: list[CalibrationSums]) -> CalibrationSums:
    """Sums added in order; a probability warning is kept once (the first chunk or file to raise it), a finding
    about every score (probabilities passed as logits) only if every part has it, in the words of the first that
    could conclude it, and weak if the parts together cannot (finish leaves it out)."""
    total = parts[0].partial
    for s in parts[1:]:
        total = total + s.partial
    warnings = [w for s in parts for w in s.warnings if not getattr(w, "every", False)][:1]
    warnings += joined_findings([s.warnings for s in parts])
    return CalibrationSums(total, parts[0].task, warnings,
                           list(dict.fromkeys(n for s in parts for n in s.notes)),
                           dtype="+".join(sorted({s.dtype for s in parts if s.dtype})))


# --- results -------------------------------------------------------------------------------------------------

def sums_of(sources: Mapping[str, Any], cs: CalibrationSettings, *, dtype: str = "auto", bundle: str | None = None,
            stream: bool | None = None, progress=None, partials: bool = False) -> CalibrationSums:
    """One set of sources: streamed when big files allow it (or --stream asks), else read whole."""
    planned = _plan(sources, cs, stream, bundle, partials)
    if planned is not None:
        return _sums_streamed(planned, cs, dtype, progress)
    return _sums_whole(sources, cs, dtype, bundle)


def finish(sums: CalibrationSums, cs: CalibrationSettings, notes: list[str] | None = None) -> CalibrationResult:
    """The result of summed bins; --strict turns its first warning into an error."""
    result = finish_calibration(sums.partial, norm=cs.norm, task=sums.task, warnings=concluded(sums.warnings))
    result.notes += [*sums.notes, *(notes or [])]
    result.dtype = sums.dtype
    result.warnings = _strict(result.warnings, cs)
    return result


def _strict(warnings: list[str], cs: CalibrationSettings) -> list[str]:
    warnings = list(dict.fromkeys(warnings))
    if cs.strict and warnings:
        raise StrictWarningError(warnings[0] + " (--strict makes warnings errors)", option="--strict")
    return warnings


def calibrate(*, logits=None, probs=None, target=None, bins: int = 15, norm: str = "l1", binning: str = "uniform",
              task: str = "auto", dtype: str = "auto", strict: bool = False, threads: int | None = None,
              header: str = "auto", bundle: str | None = None, stream: bool | None = None,
              ignore_index: int | None = None, class_axis: int = 1) -> CalibrationResult:
    """The calibration error of scores (logits or probabilities: arrays, lists, tensors, paths or JSON literals)
    against targets, as torchmetrics' MulticlassCalibrationError / BinaryCalibrationError compute it (with its
    ignore_index); class_axis: where the scores hold their classes (-1: classes last)."""
    cs = calibration_settings(bins=bins, norm=norm, binning=binning, task=task, strict=strict, threads=threads,
                              header=header, ignore_index=ignore_index, class_axis=class_axis)
    sources = {"logits": logits, "probs": probs, "target": target}
    return finish(sums_of(sources, cs, dtype=dtype, bundle=bundle, stream=stream), cs)


def _labelled_sums(sources: Mapping[str, Any], cs: CalibrationSettings, *, dtype: str, bundle: str | None,
                   stream: bool | None, progress, partials: bool) -> list[tuple[str, CalibrationSums]]:
    """Each set of paired files (several paths or a glob per option) with its sums."""
    expanded = {r.name: expand(sources.get(r.name), r.flag) for r in CALIBRATION.roles}
    sets = pair(CALIBRATION, expanded, cs.header, bundle)
    bundle = None if bundle == "-" and len(sets) > 1 else bundle  # pair read standard input into every set
    if len(sets) > 1 and cs.binning == "quantile":
        raise UsageError("quantile bins are drawn from one set of confidences; several files need --binning "
                         "uniform, whose sums add", option="--binning")
    primary = next((r.name for r in CALIBRATION.roles if sets[0].get(r.name) is not None), "logits")
    labelled = [(label, sums_of(s, cs, dtype=dtype, bundle=bundle, stream=stream, progress=progress, partials=partials))
                for label, s in zip(set_labels(CALIBRATION, sets), sets, strict=True)]
    for label, sums in labelled[1:]:  # as merge refuses partials of two tasks
        if sums.task != labelled[0][1].task:
            raise UsageError(f"{label} is {sums.task} and {labelled[0][0]} {labelled[0][1].task}: their bins do not "
                             "add up to one calibration error", option=flag(primary))
    return labelled


def calibrate_files(sources: Mapping[str, Any], cs: CalibrationSettings, *, dtype: str = "auto",
                    bundle: str | None = None, stream: bool | None = None, progress=None
                    ) -> CalibrationResult | CalibrationFiles:
    """What `lossctl calibration` computes: one set of files gives a CalibrationResult, several a CalibrationFiles
    with one result per set and the exact total over all of them."""
    labelled = _labelled_sums(sources, cs, dtype=dtype, bundle=bundle, stream=stream, progress=progress,
                              partials=False)
    if len(labelled) == 1:
        return finish(labelled[0][1], cs)
    results = [finish(s, cs) for _, s in labelled]
    total = finish(_added([s for _, s in labelled]), cs,
                   [f"exact total over {len(labelled)} files: their per-bin sums added, then divided"])
    labels = [label for label, _ in labelled]
    # the files' warnings (one with no samples named, as a loss names a file whose mean is empty), then the total's
    warnings = [w if not (r.count == 0 and w == NO_SAMPLES) else f"{label}: {w} (every target ignored, or none "
                "given); the total counts nothing of it" for label, r in zip(labels, results, strict=True)
                for w in r.warnings]
    return CalibrationFiles(labels, results, total, warnings=list(dict.fromkeys([*warnings, *total.warnings])))


def calibration_document(sources: Mapping[str, Any], cs: CalibrationSettings, *, dtype: str = "auto",
                         bundle: str | None = None, stream: bool | None = None, progress=None) -> dict[str, Any]:
    """What `lossctl calibration --partials` prints: the summed bins of every given file, for `lossctl merge`."""
    labelled = _labelled_sums(sources, cs, dtype=dtype, bundle=bundle, stream=stream, progress=progress,
                              partials=True)
    sums = _added([s for _, s in labelled])
    warnings = _strict(concluded([*(w for _, s in labelled for w in s.warnings), *sums.warnings]), cs)
    return {"kind": PARTIAL_KIND, "version": 1, "task": sums.task, "norm": cs.norm, "bins": cs.bins,
            "binning": cs.binning, "dtype": sums.dtype, "partial": sums.partial.to_dict(), "warnings": warnings,
            "files": [label for label, _ in labelled] if len(labelled) > 1 else [],
            "pending": pending_document(sums.warnings), "ignore_index": cs.ignore_index}


# What merge reads of a calibration partial (see lossctl.batch.fields_problem).
BIN_SUMS_FIELDS = {"edges": list, "count": list, "conf_sum": list, "acc_sum": list, "binning": (str, None)}
CALIBRATION_FIELDS = {"version": int, "task": str, "norm": str, "bins": int, "binning": str,
                      "partial": BIN_SUMS_FIELDS, "warnings": (list, None), "files": (list, None), "dtype": (str, None),
                      "pending": (list, None), "ignore_index": (int, None)}


def calibration_partial_problem(doc: dict[str, Any]) -> str | None:
    """What makes `doc` not a calibration partial that merge can add, or None."""
    problem = fields_problem(doc, CALIBRATION_FIELDS)
    if problem:
        return problem
    if doc["version"] != 1:
        return f"version {doc['version']}; this lossctl reads version 1"
    if any(not isinstance(w, str) for w in doc.get("warnings") or []):
        return "'warnings' is a list of strings"
    problem = pending_problem(doc.get("pending") or [])
    if problem:
        return problem
    try:
        calibration_settings(bins=doc["bins"], norm=doc["norm"], binning=doc["binning"], task=doc["task"])
    except LossctlError as exc:
        return str(exc)
    sizes = {len(doc["partial"][k]) for k in ("edges", "count", "conf_sum", "acc_sum")}
    if sizes != {doc["bins"] + 1}:
        return f"'partial' needs {doc['bins'] + 1} entries in each list ('bins' + 1)"
    for key in ("edges", "count", "conf_sum", "acc_sum"):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in doc["partial"][key]):
            return f"'partial.{key}' holds something other than numbers"
    edges = doc["partial"]["edges"]
    if edges[0] != 0 or edges[-1] != 1 or any(b < a for a, b in zip(edges, edges[1:], strict=False)):
        return "'partial.edges' must ascend from 0 to 1"
    return None


def merge_calibration(docs: list[dict[str, Any]]) -> CalibrationResult:
    """Add calibration partial documents of one task, norm and binning into the exact total."""
    if not docs:
        raise UsageError("give at least one partial file", option="merge")
    first = docs[0]
    for d in docs[1:]:
        for key in ("task", "norm", "bins", "binning", "ignore_index"):  # ignore_index: None where none was given
            if d.get(key) != first.get(key):
                a, b = ("none" if v is None else repr(v) for v in (first.get(key), d.get(key)))
                raise UsageError(f"cannot merge calibration partials whose {key} differ: {a} and {b}", option="merge")
    try:
        parts = [CalibrationPartial.from_dict(d["partial"]) for d in docs]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"a calibration partial is incomplete ({type(exc).__name__}: {exc})",
                         option="merge") from None
    sums = _added([CalibrationSums(p, first["task"], dtype=d.get("dtype") or "") for p, d in zip(parts, docs,
                                                                                               strict=True)])
    sums.warnings = list(dict.fromkeys(w for d in docs for w in d.get("warnings", [])))
    sums.warnings += joined_findings([pending_findings(d) for d in docs])  # what they conclude together
    cs = CalibrationSettings(bins=first["bins"], norm=first["norm"], binning=first["binning"], task=first["task"])
    partials = f"{len(docs)} partial{'s' if len(docs) != 1 else ''}"
    return finish(sums, cs, [f"merged from {partials}: per-bin sums added, then divided"])
