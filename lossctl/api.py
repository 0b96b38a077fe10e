"""The Python API: `compute("ce", logits=..., target=..., **options)`, `decompose(...)`, `check(...)`.

A small public face over the engine (`pipeline`, `stream`, `batch`, `checks`); the CLI calls these too.
"""

from __future__ import annotations

from typing import Any

from .batch import expand, pair, run_many
from .checks import check, decompose
from .pipeline import settings
from .result import MultiResult, Result
from .specs import get_loss
from .stream import evaluate

__all__ = ["check", "compute", "compute_files", "decompose"]


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
                  bundle: str | None = None, stream: bool | None = None, partials: bool = False, progress=None,
                  scheduler: str | None = None, scheduler_timeout: float | None = None) -> Result | MultiResult:
    """What `lossctl NAME` computes: each role may name several files (or a glob), paired in sorted order;
    one set gives a Result, several a MultiResult with one row per set and the exact total.

    partials: the total is itself a partial (`--partials`), to be checked once merged.
    scheduler: compute each set as a task on a Dask cluster: `tcp://HOST:PORT`, or `local[:N]` for N local
    worker processes; the total has the same bits as computed here. scheduler_timeout: seconds to reach it (10).
    """
    spec = get_loss(name)
    st = settings(spec, options, reduction=reduction, base=base, device=device, strict=strict, backend=backend,
                  threads=threads, header=header)
    expanded = {r.name: expand(sources.get(r.name), r.flag) for r in spec.roles}
    return run_many(spec, pair(spec, expanded), st, dtype=dtype, bundle=bundle, progress=progress, stream=stream,
                    final=not partials, scheduler=scheduler, scheduler_timeout=scheduler_timeout)
