"""Many files in one run, and partial sums that merge across runs and machines.

Array options take several paths or a quoted glob; files are paired in sorted order. Each file gives a
Result; their partials add up to the exact loss over all of them. `--partials` prints that partial as JSON
and `merge` adds such documents, so any engine that maps a command over shards can total them exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .errors import InputError, LossctlError, UsageError, ValueRangeError
from .io import STDIN, load_array, looks_literal, read_stdin
from .io.remote import expand_glob, has_glob
from .losses._common import Finding, joined_findings, weak_findings
from .pipeline import Settings, bundle_roles, check_roles, make_result, missing_denominator, settings, wants_baselines
from .reduce import Partial
from .registry import LossSpec, flag
from .result import MultiResult, Result
from .route import evaluate
from .specs import get_loss

PARTIAL_KIND = "lossctl-partial"


def expand(values: str | Sequence[str] | None, option: str) -> list[Any] | None:
    """Paths as given, globs expanded (sorted); '-' and inline literals pass through."""
    if values is None:
        return None
    if isinstance(values, (str, os.PathLike)) or not isinstance(values, Sequence):
        values = [values]
    out: list[Any] = []
    for v in values:
        v = os.fspath(v) if isinstance(v, os.PathLike) else v
        if not isinstance(v, str) or v == "-" or looks_literal(v) or os.path.exists(v.rsplit(":", 1)[0]):
            out.append(v)
        elif has_glob(v):
            matches = expand_glob(v, option)  # local, or URLs where the file system can list them
            if not matches:
                raise InputError("the pattern matches no file", option=option, source=v)
            out.extend(matches)
        else:
            out.append(v)  # the loader reports a missing file with its name
    return out


def pair(spec: LossSpec, sources: Mapping[str, list[Any] | None], header: str = "auto", bundle: str | None = None
         ) -> list[dict[str, Any]]:
    """Sets of sources, one per file: roles given several files are paired in order; single ones are shared (a
    shared '-' is read once, with `header`, for every set; so is `--from -`, whose keys then fill every set, and
    the caller passes no bundle on)."""
    many = {r: v for r, v in sources.items() if v is not None and len(v) > 1}
    counts = {len(v) for v in many.values()}
    if len(counts) > 1:
        desc = ", ".join(f"{flag(r)} has {len(v)}" for r, v in many.items())
        raise UsageError(f"file counts must match to pair them: {desc}", option=flag(next(iter(many))))
    n = counts.pop() if counts else 1
    readers = [r for r, v in sources.items() for x in v or () if isinstance(x, str) and x == "-"]
    readers += ["from"] if bundle == "-" else []
    if len(readers) > 1:
        raise UsageError(f"only one option may read standard input; {', '.join(map(flag, readers))} all ask for "
                         "'-'", option=flag(readers[1]))
    shared = {r: v[0] for r, v in sources.items() if v and r not in many}
    if n > 1 and readers and readers[0] in shared:
        role = readers[0]
        shared[role] = load_array("-", option=flag(role), stdin=read_stdin(flag(role)), header=header)
    if n > 1 and bundle == "-":  # named as standard input, which the workers of --scheduler cannot be sent
        keys = bundle_roles(spec, "-", read_stdin("--from"), {r for r, v in sources.items() if v}, header)
        shared.update({r: item._replace(source=STDIN) for r, item in keys.items()})
        check_roles(spec, {**shared, **many}, "-")  # a role missing from both says so of the bundle, as gather does
    return [{r: (v[i] if r in many else shared.get(r)) for r, v in sources.items()} for i in range(n)]


def run_many(spec: LossSpec, sets: list[dict[str, Any]], st: Settings, *, dtype: str = "auto",
             bundle: str | None = None, progress=None, stream: bool | None = None, final: bool = True,
             scheduler: str | None = None, scheduler_timeout: float | None = None) -> Result | MultiResult:
    """Evaluate each set (torch is imported once, on first use); a single set gives a plain Result.

    final: False when the total is itself a partial (--partials), to be checked once merged.
    scheduler: a Dask scheduler's address, or local[:N], to compute each set as a task there (lossctl.cluster).
    """
    parts = len(sets) > 1 or not final
    results = evaluate_sets(spec, sets, st, dtype=dtype, bundle=bundle, progress=progress, stream=stream,
                            final=not parts, scheduler=scheduler, scheduler_timeout=scheduler_timeout)
    if len(results) == 1:
        return results[0]
    labels = set_labels(spec, sets)
    _same_constants(results, labels)
    _same_classes(results, labels)
    total = Partial()
    for r in results:
        total = total + r.partial
    values = kept = None
    if st.reduction == "none":  # every value, in file order; the summary reads those of the targets not ignored
        values = np.concatenate([np.asarray(r.values).reshape(-1) for r in results])
        kept = np.concatenate([np.asarray(r.kept).reshape(-1) for r in results])
    first = results[0]
    report, found = merged_reports(spec, st, results, total)
    loss_notes = files_notes(labels, [r.loss_notes for r in results])
    notes = [f"every value of {len(results)} files, in file order" if st.reduction == "none" else
             f"exact total over {len(results)} files: their partial sums added"
             + (", then divided" if st.reduction != "sum" else ""), *loss_notes]
    if found is None and wants_baselines(spec, st, total):
        notes.append("baselines: the files' targets do not determine them together (their classes or label "
                     "columns differ, or sigmoid focal's labels are soft)")
    # the files whose own mean is empty: warned of on the total, where --strict applies and JSON carries them
    merged = make_result(spec, st, total, dtype="+".join(sorted({r.dtype for r in results})), shapes={},
                         unit=first.denominator_unit, weighted=first.weighted, constants=first.constants,
                         # a rule each file met on too few values may conclude on all of them, as on one file
                         warnings=[*_empty_means(st, results, labels),
                                   *joined_findings([[*r.warnings, *r.pending] for r in results])],
                         final=final,
                         backend="+".join(sorted({r.backend for r in results})), notes=notes,
                         values=values, kept=kept, report=report, baselines=found)
    warnings = [w for r in results for w in r.warnings] + merged.warnings
    merged.loss_notes = loss_notes
    return MultiResult(labels, results, merged, warnings=list(dict.fromkeys(warnings)))


def set_labels(spec: LossSpec, sets: list[dict[str, Any]]) -> list[str]:
    """A name for each set of files: the file of its first role whose file differs between the sets (a shared
    --logits, or a shared '-' read once, names none of them), else of its first role given as files; else 'set N'."""
    def files(role: str) -> list:
        values = [getattr(s.get(role), "source", s.get(role)) for s in sets]  # a shared '-' read once is a Loaded
        return values if all(isinstance(v, str) and v != STDIN for v in values) else []

    named = [names for r in spec.roles if (names := files(r.name))]
    return next((names for names in named if len(set(names)) == len(sets)),
                named[0] if named else [f"set {i + 1}" for i in range(len(sets))])


EACH_FILE = "each file: "  # a note every file of a run gave; a partial of several files holds its notes so, and
# a merge takes them as that partial's own


def files_notes(labels: Sequence[str], parts: list[list[str]]) -> list[str]:
    """What the files' computations noted, for their total: a note every file gave once, as each file's; any
    other after the name of the file that gave it (a count such as --zero-infinity's is that file's)."""
    if len(parts) < 2:
        return [n for part in parts for n in part]
    common = set(parts[0]).intersection(*parts[1:])
    return [f"{EACH_FILE}{n}" for n in parts[0] if n in common] + \
        [f"{label}: {n}" for label, notes in zip(labels, parts, strict=True) for n in notes if n not in common]


def _same_classes(results: list[Result], labels: list[str]) -> None:
    """--by-class over files of different numbers of classes (or label columns): their rows do not add up."""
    widths = [(label, len(r.report.by_class.count)) for label, r in zip(labels, results, strict=True)
              if r.report is not None and r.report.by_class is not None]
    for label, width in widths[1:]:
        if width != widths[0][1]:
            raise UsageError(f"{label} has {width} classes (or label columns) and {widths[0][0]} {widths[0][1]}: "
                             "their per-class rows do not add up; ask --by-class of each file alone",
                             option="--by-class")


def _empty_means(st: Settings, results: list[Result], labels: list[str]) -> list[str]:
    """A file whose mean has no denominator (every target ignored, or its weights sum to 0) shows torch's value
    for itself; say so, and that it adds nothing to the total's denominator."""
    out = []
    for label, r in zip(labels, results, strict=True):
        missing = missing_denominator(r.partial, st.reduction, r.denominator_unit)
        if missing is not None:
            reason, gives = missing
            out.append(f"{label}: {reason}, so its mean has no denominator: it shows torch's {gives}, and the "
                       "total counts nothing of it")
    return out


def merged_reports(spec: LossSpec, st: Settings, results: list[Result], total: Partial):
    """The files' report sums added (class counts, per-class sums, worst-K heaps), and the baselines of the whole
    where the class counts determine them."""
    parts, rows = [], 0
    for r in results:  # a file's worst entries are indexed as rows of the files taken together
        if r.report is not None:
            per_row = math.prod((r.shapes.get("target") or [1])[1:])
            worst = r.report.worst.shifted(rows, per_row) if r.report.worst is not None and rows else None
            parts.append(replace(r.report, worst=worst) if worst is not None else r.report)
        rows += (r.shapes.get("target") or [1])[0]
    if not parts:
        return None, None
    report = parts[0]
    for part in parts[1:]:
        report = report + part
    found = None
    if wants_baselines(spec, st, total):
        from .reports import baselines_from_counts

        found = baselines_from_counts(spec.baseline, report, results[0].class_weight, st.options, st.scale)
    return report, found


def evaluate_sets(spec: LossSpec, sets: list[dict[str, Any]], st: Settings, *, scheduler: str | None = None,
                  scheduler_timeout: float | None = None, **kwargs: Any) -> list[Result]:
    """Each set's Result in file order: here one after another, or as tasks on a Dask cluster (kwargs:
    route.evaluate's). Either way run_many adds the same partials in the same order."""
    if scheduler is None:
        if scheduler_timeout is not None:
            raise UsageError("applies only with --scheduler", option="--scheduler-timeout")
        return [evaluate(spec, s, st, **kwargs) for s in sets]
    from .cluster import evaluate_on_cluster

    return evaluate_on_cluster(spec, sets, st, scheduler=scheduler, timeout=scheduler_timeout, **kwargs)


def _same_constants(results: list[Result], labels: list[str]) -> None:
    """Per-class arrays (weight, pos_weight) must be one and the same for a total to be one torch call."""
    for label, r in zip(labels, results, strict=True):
        forms = (r.constants.get("form"), results[0].constants.get("form"))
        if forms[0] != forms[1]:  # focal's multi-class form beside its sigmoid form: two losses
            raise UsageError(f"{label} gives the {forms[0]} form and {labels[0]} the {forms[1]} form: their sums "
                             "do not add up to one loss", option="--target")
        if r.constants != results[0].constants:
            role = next(iter(set(r.constants) ^ set(results[0].constants) or r.constants))
            raise UsageError(f"{label} was computed with another {role} than {labels[0]}: their sums do not add "
                             "up to one loss", option=flag(role))
        if r.weighted != results[0].weighted:  # the same weights, but index targets beside probability targets
            raise UsageError(f"{label} and {labels[0]} give one weighted mean (class-index targets with --weight: "
                             "divided by the sum of the targets' weights) and one mean over N (probability "
                             "targets): their sums do not add up to one loss", option="--target")


def partial_document(obj: Result | MultiResult) -> dict[str, Any]:
    """What --partials prints: enough to merge exactly, and to refuse merging unlike things."""
    r = obj.total if isinstance(obj, MultiResult) else obj
    if r.reduction == "none":
        raise UsageError("partials need a reduction (mean, sum or batchmean), not none", option="--partials")
    files = obj.labels if isinstance(obj, MultiResult) else []
    return {"kind": PARTIAL_KIND, "version": 1, "loss": r.loss, "reduction": r.reduction, "options": r.options,
            "dtype": r.dtype, "backend": r.backend, "unit": r.denominator_unit, "weighted": r.weighted,
            "constants": r.constants,
            "partial": r.partial.to_dict(), "files": files, "warnings": list(dict.fromkeys(obj.warnings)),
            "pending": pending_document(r.pending), "notes": list(r.loss_notes)}


def pending_document(warnings: list[str]) -> list[dict[str, Any]]:
    """The weak findings among `warnings` (too few values to conclude alone), as a partial writes them."""
    return [{"key": w.key, "text": str(w), "extent": w.extent} for w in weak_findings(warnings)]


def pending_findings(doc: dict[str, Any]) -> list[Finding]:
    """A partial's findings too weak to report alone, as the Findings merge joins (see pending_document)."""
    return [Finding(p["key"], p["text"], every=True, weak=True, extent=tuple(p["extent"]) if p["extent"] else None)
            for p in doc.get("pending") or []]


def load_partials(path: str, kinds: Mapping[str, Callable[[dict], str | None]] | None = None
                  ) -> list[dict[str, Any]]:
    """A file of partial documents of the given kinds: one JSON object, a list of them, or one per line.

    kinds: each kind's check, the one place a document's structure is validated (loss partials by default), so
    that merge reads only fields of the right types; a document that fails is one error naming the file.
    """
    kinds = {PARTIAL_KIND: partial_problem} if kinds is None else kinds
    try:
        if path == "-":  # `... --partials | lossctl merge -`, as array options read '-'
            path = STDIN
            text = read_stdin("merge").decode("utf-8")
        else:
            with open(path, encoding="utf-8") as fp:
                text = fp.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ({exc})", option="merge", source=path) from None
    flat = [d for doc in _json_documents(text, path) for d in (doc if isinstance(doc, list) else [doc])]
    if not flat:  # an empty file (a shard whose --partials run failed) must not drop out of the total unnoticed
        raise InputError("holds no partial (an empty file or list: did the run that wrote it fail?)", option="merge",
                         source=path)
    for d in flat:
        if isinstance(d, dict):
            _revive_non_finite(d)
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str) or d["kind"] not in kinds:
            raise InputError("not a lossctl partial (made by --partials)", option="merge", source=path)
        problem = kinds[d["kind"]](d)
        if problem:
            raise InputError(f"not a lossctl partial: {problem}", option="merge", source=path)
    return flat


NON_FINITE = ("inf", "-inf", "nan")


def _revive_non_finite(doc: dict[str, Any]) -> None:
    """inf, -inf and nan, which --partials writes as strings (JSON has no such numbers), as floats again: in the
    sums, and in the options (pairwise-distance's --p inf); no string option takes these words."""
    for part in (doc.get("partial"), doc.get("options")):
        if isinstance(part, dict):
            for key, value in part.items():
                if isinstance(value, str) and value in NON_FINITE:
                    part[key] = float(value)


def _json_documents(text: str, path: str) -> list[Any]:
    import json  # merge only

    try:
        try:
            return [json.loads(text)]
        except ValueError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise InputError(f"not JSON ({exc})", option="merge", source=path) from None
    except RecursionError:
        raise InputError("not a lossctl partial: its JSON is nested too deeply", option="merge",
                         source=path) from None


# What merge reads of a loss partial: each field's JSON type (a tuple: any of those; None: may be absent or null).
NUMBER = (int, float)
SUMS_FIELDS = {"total": NUMBER, "denominator": NUMBER, "count": int, "ignored": int, "rows": int}
PARTIAL_FIELDS = {"version": int, "loss": str, "reduction": str, "options": dict, "dtype": str,
                  "backend": (str, None), "unit": str, "weighted": bool, "constants": (dict, None),
                  "partial": SUMS_FIELDS, "files": (list, None), "warnings": (list, None), "pending": (list, None),
                  "notes": (list, None)}
PENDING_FIELDS = {"key": str, "text": str, "extent": (list, None)}


def partial_problem(doc: dict[str, Any]) -> str | None:
    """What makes `doc` not a loss partial that merge can add (a field missing or of the wrong type, a value
    lossctl never writes), or None."""
    problem = fields_problem(doc, PARTIAL_FIELDS)
    if problem:
        return problem
    if doc["version"] != 1:
        return f"version {doc['version']}; this lossctl reads version 1"
    options = doc["options"]
    try:
        spec = get_loss(doc["loss"])
        known = {"base": str, **{o.name: o.type for o in spec.options}}  # settings() refuses other names
        for key, value in options.items():
            want = known.get(key)
            if value is not None and want and fields_problem({key: value}, {key: NUMBER if want is float else want}):
                return f"'options.{key}' is {json_type(value)}, not {JSON_NAMES[want]}"
        if doc["reduction"] == "none":  # partial_document refuses it
            return "reduction 'none' has no partial sums"
        settings(spec, {k: v for k, v in options.items() if k != "base"}, reduction=doc["reduction"],
                 base=options.get("base", "e"))
    except LossctlError as exc:
        return str(exc)
    if any(not isinstance(w, str) for w in [*(doc.get("warnings") or []), *(doc.get("notes") or [])]):
        return "'warnings' and 'notes' are lists of strings"
    problem = pending_problem(doc.get("pending") or [])
    if problem:
        return problem
    if any(not isinstance(v, str) for v in (doc.get("constants") or {}).values()):
        return "'constants' maps each per-class array to its digest, a string"
    sums = doc["partial"]
    if min(sums["count"], sums["ignored"], sums["rows"]) < 0 or sums["ignored"] > sums["count"]:
        return f"'partial' has impossible counts: {sums!r}"
    return None


def pending_problem(pending: list[Any]) -> str | None:
    """What makes a partial's 'pending' list not the findings pending_document writes, or None."""
    for i, p in enumerate(pending):
        problem = fields_problem(p, PENDING_FIELDS, f"pending[{i}]")
        if problem:
            return problem
        extent = p["extent"]
        if extent is not None and (len(extent) != 5 or not all(isinstance(v, NUMBER) and not isinstance(v, bool)
                                                                for v in extent)):
            return f"'pending[{i}].extent' is 5 numbers (values, least, largest, values needed, spread needed)"
    return None


def fields_problem(doc: Any, fields: Mapping[str, Any], where: str = "") -> str | None:
    """The first field of `doc` that is missing or not of its JSON type in `fields` (key -> a type, a tuple of
    types, with None for optional, or a nested mapping of the same form), or None. A bool is never a number."""
    if not isinstance(doc, dict):
        return f"{repr(where) if where else 'the document'} is {json_type(doc)}, not an object"
    for key, want in fields.items():
        name = f"{where}.{key}" if where else key
        if isinstance(want, Mapping):
            problem = fields_problem(doc[key], want, name) if key in doc else f"no {name!r}"
        else:
            problem = _type_problem(doc.get(key), want if isinstance(want, tuple) else (want,), name, key in doc)
        if problem:
            return problem
    return None


def _type_problem(value: Any, types: tuple, name: str, present: bool) -> str | None:
    if value is None and None in types:
        return None
    if not present:
        return f"no {name!r}"
    types = tuple(t for t in types if t is not None)
    if isinstance(value, types) and (bool in types or not isinstance(value, bool)):
        return None
    return f"{name!r} is {json_type(value)}, not {JSON_NAMES[NUMBER if set(NUMBER) <= set(types) else types[0]]}"


JSON_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true or false", int: "an integer",
              NUMBER: "a number", float: "a number"}


def json_type(value: Any) -> str:
    """A JSON value's type in words, with the value where it is short."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (dict, list)):
        return JSON_NAMES[type(value)]
    return f"{JSON_NAMES.get(type(value), type(value).__name__)} ({value!r})"


def merge(docs: list[dict[str, Any]], sources: Sequence[str] = (), labels: Sequence[str] = ()) -> Result:
    """Add partial documents of one loss, reduction and options into the exact total (sources: their files;
    labels: each document's file, naming the notes of one)."""
    if not docs:
        raise UsageError("give at least one partial file", option="merge")
    first = docs[0]
    for d in docs[1:]:
        forms = ((d.get("constants") or {}).get("form"), (first.get("constants") or {}).get("form"))
        if None not in forms and forms[0] != forms[1]:  # a partial of a version before forms says none
            raise UsageError(f"cannot merge partials of two forms of the loss, {forms[1]} and {forms[0]}: their sums "
                             "do not add up to one loss", option="merge")
        for key in ("loss", "reduction", "options", "constants"):
            mine, theirs = (_without_form(x.get(key)) if key == "constants" else x.get(key) for x in (d, first))
            if mine != theirs:  # the form was compared above, where both partials name one
                what = "per-class arrays (weight, pos_weight)" if key == "constants" else key
                raise UsageError(f"cannot merge partials whose {what} differ: {theirs!r} and {mine!r}", option="merge")
        if d.get("weighted") != first.get("weighted"):  # the same weights, one mean divided by their sum
            raise UsageError("cannot merge a weighted mean (class-index targets with --weight: divided by the sum of "
                             "the targets' weights) with an unweighted one (probability targets: divided by N)",
                             option="merge")
    spec = get_loss(first["loss"])
    total = Partial()
    for d in docs:
        total = total + Partial.from_dict(d["partial"])
    _check_merged_denominator(total, first, sources)
    options = {k: v for k, v in first["options"].items() if k != "base"}
    st = Settings(first["reduction"], options, first["options"].get("base", "e"))
    # Partials are float64 sums whatever the shards computed in, so float32 and float64 shards merge exactly.
    # a partial of several files already names its dtypes and backends joined by "+": name each one once
    dtypes = "+".join(sorted({t for d in docs for t in d["dtype"].split("+")}))
    backends = "+".join(sorted({b for d in docs for b in (d.get("backend") or "unknown").split("+")}))
    warnings = list(dict.fromkeys(w for d in docs for w in d.get("warnings") or []))  # what each shard warned
    warnings += joined_findings([pending_findings(d) for d in docs])  # what they conclude together, as one file would
    then = ", then divided" if st.reduction != "sum" else ""
    labels = labels if len(labels) == len(docs) else [f"partial {i + 1}" for i in range(len(docs))]
    notes = [f"merged from {len(docs)} partial{'s' if len(docs) != 1 else ''}: sums added{then}",
             *files_notes(labels, [[n.removeprefix(EACH_FILE) for n in d.get("notes") or []] for d in docs])]
    if wants_baselines(spec, st, total):  # a run over the files together has them (run_many)
        notes.append("baselines: a partial carries the loss's sums only, so a merge has none; give the files to one "
                     "run (several files or a glob) for them")
    return make_result(spec, st, total, dtype=dtypes, shapes={}, unit=first["unit"], constants=first.get("constants"),
                       weighted=first["weighted"], warnings=warnings, backend=backends, notes=notes)


def _without_form(constants: dict | None) -> dict:
    """A partial's per-class arrays without focal's form, which a partial of an older lossctl does not name."""
    return {k: v for k, v in (constants or {}).items() if k != "form"}


def _check_merged_denominator(total: Partial, first: dict[str, Any], sources: Sequence[str]) -> None:
    """A merged mean over nothing is torch's 0/0: say so of the files, not of options this run never had."""
    if first["reduction"] != "mean" or total.denominator != 0:
        return
    missing = missing_denominator(total, "mean", first["unit"])
    if missing is None or not (first["weighted"] or total.ignored == total.count):  # hand-made sums
        missing = ("the partials cover nothing" if total.count == 0 else "their denominators sum to 0",
                   "nan" if total.total == 0 else "±inf")
    reason, gives = missing
    raise ValueRangeError(f"the merged mean has no denominator: {reason} (torch returns {gives} here); merge "
                          "partials made with --reduction sum instead", option="merge", source=", ".join(sources))
