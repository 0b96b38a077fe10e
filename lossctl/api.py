"""The Python API: `compute("ce", logits=..., target=..., **options)`, `decompose(...)`, `check(...)`.

A small public face over the engine (`pipeline`, `stream`, `batch`, `checks`); the CLI calls these too.
"""

from __future__ import annotations

import os
from typing import Any

from .batch import expand, pair, run_many
from .errors import UsageError
from .pipeline import settings
from .reports import Wants
from .result import MultiResult, Result
from .route import evaluate
from .specs import get_loss
from .tolerance import check_expect_tolerances, check_tolerances, close

__all__ = ["calibrate", "check", "check_expect", "compute", "compute_files", "decompose", "expectation",
           "merge_files"]


def check(**kwargs: Any):
    """Every tutorial identity that applies to the data (lossctl.checks.check)."""
    from .checks import check as run

    return run(**kwargs)


def decompose(**kwargs: Any):
    """CE = H + KL per sample (lossctl.checks.decompose)."""
    from .checks import decompose as run

    return run(**kwargs)


def calibrate(**kwargs: Any):
    """Top-label calibration error and its per-bin table (lossctl.calibration_run.calibrate)."""
    from .calibration_run import calibrate as run

    return run(**kwargs)


def compute(name: str, *, reduction: str | None = None, dtype: str = "auto", base: str = "e",
            device: str = "cpu", strict: bool = False, backend: str = "auto", threads: int | None = None,
            header: str = "auto", class_axis: int = 1, by_class: bool = False, worst: int = 0,
            bundle: str | None = None, stream: bool | None = None, **kwargs: Any) -> Result:
    """Compute loss `name` on arrays (numpy, lists, tensors, or sources: a path, '-' or a JSON literal).

    Keyword arguments named as the loss's arrays (logits, target, weight...) are its inputs; the others are its
    options (ignore_index, label_smoothing...), with torch's defaults. by_class and worst K add those breakdowns;
    class_axis -1 takes classes-last logits (N, L, C), as Hugging Face models give them.

    >>> compute("ce", logits=[[2.0, 1.0, 0.1]], target=[0]).value  # doctest: +ELLIPSIS
    0.41703...
    """
    spec = get_loss(name)
    roles = {r.name for r in spec.roles}
    sources = {k: v for k, v in kwargs.items() if k in roles}
    options = {k: v for k, v in kwargs.items() if k not in roles}
    st = settings(spec, options, reduction=reduction, base=base, device=device, strict=strict, backend=backend,
                  threads=threads, header=header, class_axis=class_axis, wants=Wants(by_class, worst))
    return evaluate(spec, sources, st, dtype=dtype, bundle=bundle, stream=stream)


def compute_files(name: str, sources: dict[str, list[Any] | None], options: dict[str, Any], *,
                  reduction: str | None = None, dtype: str = "auto", base: str = "e", device: str = "cpu",
                  strict: bool = False, backend: str = "auto", threads: int | None = None, header: str = "auto",
                  class_axis: int = 1, by_class: bool = False, worst: int = 0, details: bool = True,
                  bundle: str | None = None, stream: bool | None = None, partials: bool = False, progress=None,
                  scheduler: str | None = None, scheduler_timeout: float | None = None) -> Result | MultiResult:
    """What `lossctl NAME` computes: each role may name several files (or a glob), paired in sorted order;
    one set gives a Result, several a MultiResult with one row per set and the exact total.

    partials: the total is itself a partial (`--partials`), to be checked once merged.
    scheduler: compute each set as a task on a Dask cluster: `tcp://HOST:PORT`, or `local[:N]` for N local
    worker processes; the total has the same bits as computed here. scheduler_timeout: seconds to reach it (10).
    """
    spec = get_loss(name)
    if partials and (by_class or worst):  # refused before anything is read, rather than dropped from the output
        raise UsageError("a partial carries the loss's sums only, not --by-class or --worst: run those on the whole "
                         "data (several files or a glob give the exact total)", option="--partials")
    st = settings(spec, options, reduction=reduction, base=base, device=device, strict=strict, backend=backend,
                  threads=threads, header=header, class_axis=class_axis, wants=Wants(by_class, worst), details=details
                  )._replace(partials=partials)
    expanded = {r.name: expand(sources.get(r.name), r.flag) for r in spec.roles}
    sets = pair(spec, expanded, st.header, bundle)
    bundle = None if bundle == "-" and len(sets) > 1 else bundle  # pair read standard input into every set
    return run_many(spec, sets, st, dtype=dtype, bundle=bundle, progress=progress,
                    stream=stream, final=not partials, scheduler=scheduler, scheduler_timeout=scheduler_timeout)


EXPECT_TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-9, 1e-12)}


def check_expect(name: str, reduction: str | None, *, expect: float | None, rtol: float | None,
                 atol: float | None, partials: bool = False) -> None:
    """Refuse --expect, --rtol and --atol where they cannot apply, before anything is read or printed."""
    check_expect_tolerances(expect=expect, atol=atol, rtol=rtol)
    if expect is None:
        return
    reduction = reduction or get_loss(name).default_reduction
    if reduction == "none":
        raise UsageError(f"needs a reduced loss (--reduction mean, sum or batchmean); {name} computes reduction none "
                         "here", option="--expect")
    if partials:
        raise UsageError("a partial is not the loss; give --expect to lossctl merge, which checks the total",
                         option="--expect")


def expectation(result: Result, expect: float, *, rtol: float | None = None, atol: float | None = None
                ) -> str | None:
    """None when the loss equals `expect` within rtol/atol (defaults by the result's dtype), else the one line
    that says by how much it is off (--expect, for CI jobs that pin the loss of a fixed batch). A non-finite
    `expect` (inf, -inf, nan) matches only that same value."""
    import math

    check_tolerances(atol=atol, rtol=rtol)
    if result.value is None:
        raise UsageError("needs a reduced loss (mean, sum or batchmean), not --reduction none", option="--expect")
    d_rtol, d_atol = EXPECT_TOLERANCE.get(result.dtype.split("+")[0], EXPECT_TOLERANCE["float32"])
    rtol, atol = (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol)
    got = result.value
    if close(got, expect, atol, rtol, equal_nan=True):
        return None
    what = "loss" if hasattr(result, "loss") else "calibration error"  # lossctl merge of calibration partials
    if not (math.isfinite(got) and math.isfinite(expect)):
        return f"the {what} is {got!r}, expected {expect!r} (a non-finite value matches only itself)"
    diff = abs(got - expect)
    relative = diff / abs(expect) if expect else math.inf
    return (f"the {what} is {got!r}, expected {expect!r}: off by {diff:.6g} (relative {relative:.3g}; tolerance "
            f"atol {atol:g} + rtol {rtol:g} x |expected|)")


# --- merging partials of either kind ---------------------------------------------------------------------------

def merge_files(paths: str | os.PathLike | list[str | os.PathLike]):
    """What `lossctl merge` computes: loss partials (`lossctl LOSS --partials`) into the exact loss, or calibration
    partials (`lossctl calibration --partials`) into the exact calibration error; never the two mixed."""
    from .batch import PARTIAL_KIND, load_partials, merge, partial_problem
    from .calibration_run import PARTIAL_KIND as CALIBRATION_KIND
    from .calibration_run import calibration_partial_problem, merge_calibration

    paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    if paths.count("-") > 1:
        raise UsageError("standard input ('-') is read once: give it once (its partials, one per line)",
                         option="merge")
    kinds = {PARTIAL_KIND: partial_problem, CALIBRATION_KIND: calibration_partial_problem}
    found = [(p, d) for p in paths for d in load_partials(p, kinds=kinds)]
    docs = [d for _, d in found]
    kinds = {d["kind"] for d in docs}
    if kinds == {CALIBRATION_KIND}:
        return merge_calibration(docs)
    if CALIBRATION_KIND in kinds:
        raise UsageError("cannot merge calibration partials with loss partials", option="merge")
    return merge(docs, paths, [p for p, _ in found])
