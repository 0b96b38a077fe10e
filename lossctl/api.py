"""The Python API: `compute("ce", logits=..., target=..., **options)`, `decompose(...)`, `check(...)`.

A small public face over the engine (`pipeline`, `stream`, `batch`, `checks`); the CLI calls these too.
"""

from __future__ import annotations

from typing import Any

from .batch import PARTIAL_KIND, expand, load_partials, merge, pair, run_many
from .calibration_result import CalibrationResult
from .calibration_run import PARTIAL_KIND as CALIBRATION_KIND
from .calibration_run import calibrate, merge_calibration
from .checks import check, decompose
from .errors import UsageError
from .pipeline import settings
from .result import MultiResult, Result
from .specs import get_loss
from .stream import evaluate

__all__ = ["calibrate", "check", "compute", "compute_files", "decompose", "merge_files"]


def compute(name: str, *, reduction: str | None = None, dtype: str = "auto", base: str = "e",
            device: str = "cpu", strict: bool = False, backend: str = "auto", threads: int | None = None,
            header: str = "auto", bundle: str | None = None, stream: bool | None = None, **kwargs: Any) -> Result:
    """Compute loss `name` on arrays (numpy, lists, tensors, or sources: a path, '-' or a JSON literal).

    Keyword arguments named as the loss's arrays (logits, target, weight...) are its inputs; the others are its
    options (ignore_index, label_smoothing...), with torch's defaults.

    >>> compute("ce", logits=[[2.0, 1.0, 0.1]], target=[0]).value  # doctest: +ELLIPSIS
    0.41703...
    """
    spec = get_loss(name)
    roles = {r.name for r in spec.roles}
    sources = {k: v for k, v in kwargs.items() if k in roles}
    options = {k: v for k, v in kwargs.items() if k not in roles}
    st = settings(spec, options, reduction=reduction, base=base, device=device, strict=strict, backend=backend,
                  threads=threads, header=header)
    return evaluate(spec, sources, st, dtype=dtype, bundle=bundle, stream=stream)


def compute_files(name: str, sources: dict[str, list[Any] | None], options: dict[str, Any], *,
                  reduction: str | None = None, dtype: str = "auto", base: str = "e", device: str = "cpu",
                  strict: bool = False, backend: str = "auto", threads: int | None = None, header: str = "auto",
                  bundle: str | None = None, stream: bool | None = None, partials: bool = False, progress=None
                  ) -> Result | MultiResult:
    """What `lossctl NAME` computes: each role may name several files (or a glob), paired in sorted order;
    one set gives a Result, several a MultiResult with one row per set and the exact total.

    partials: the total is itself a partial (`--partials`), to be checked once merged.
    """
    spec = get_loss(name)
    st = settings(spec, options, reduction=reduction, base=base, device=device, strict=strict, backend=backend,
                  threads=threads, header=header)
    expanded = {r.name: expand(sources.get(r.name), r.flag) for r in spec.roles}
    return run_many(spec, pair(spec, expanded), st, dtype=dtype, bundle=bundle, progress=progress, stream=stream,
                    final=not partials)


# --- calibration, and merging partials of either kind --------------------------------------------------------

def merge_files(paths: list[str]) -> Result | CalibrationResult:
    """What `lossctl merge` computes: loss partials (`lossctl LOSS --partials`) into the exact loss, or calibration
    partials (`lossctl calibration --partials`) into the exact calibration error; never the two mixed."""
    docs = [d for p in paths for d in load_partials(p, kinds=(PARTIAL_KIND, CALIBRATION_KIND))]
    kinds = {d["kind"] for d in docs}
    if kinds == {CALIBRATION_KIND}:
        return merge_calibration(docs)
    if CALIBRATION_KIND in kinds:
        raise UsageError("cannot merge calibration partials with loss partials", option="merge")
    return merge(docs)
