"""One loss over one set of sources: streamed in chunks when big files allow it, else in memory.

The choice is made here so that a small input never imports the streaming machinery (`lossctl.stream`): a
source can only stream if it is a file, and only a file of at least STREAM_MIN_BYTES is worth it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import LossctlError
from .io import bundle_keys, split_key
from .io.remote import is_url
from .pipeline import Progress, Settings, backend_for, run_sources
from .registry import LossSpec
from .result import Result

if TYPE_CHECKING:
    from .stream import Plan

STREAM_MIN_BYTES = 64 << 20  # smaller inputs are read whole: one pass is faster than the bookkeeping


def evaluate(spec: LossSpec, sources: Mapping[str, Any], st: Settings, *, dtype: str = "auto",
             bundle: str | None = None, stream: bool | None = None, progress: Progress | None = None,
             final: bool = True) -> Result:
    """One loss over one set of sources: streamed in chunks when big files allow it, else in memory.

    stream: None decides by size, True streams whenever the inputs allow it, False never streams.
    final: False when this result is one part of a total (see pipeline.make_result).
    """
    planned = stream_plan(spec, sources, st, stream, bundle=bundle)
    if planned is not None:
        from .stream import run_stream

        return run_stream(spec, planned, st, dtype=dtype, backend=backend_for(spec, st, sources),
                          progress=progress, final=final)
    result = run_sources(spec, sources, st, dtype=dtype, bundle=bundle, final=final)
    if stream:  # asked for, and not done: say so rather than quietly read everything into memory
        result.notes.append(f"--stream: read whole instead, {_why_whole(spec, st, bundle)}")
    return result


def bundled_rows(spec: LossSpec, sources: Mapping[str, Any], bundle: str) -> dict[str, Any] | None:
    """A --from bundle that streams (Parquet/Arrow, JSON Lines, a local .safetensors) as FILE:KEY sources, one per
    role it fills (as pipeline.bundle_roles picks them: not a role whose group an option gives), so that it streams
    as those sources do; None where it is read whole: another format, or keys that do not give each required role
    exactly once (the whole read then names what is wrong)."""
    if isinstance(bundle, os.PathLike):
        bundle = os.fspath(bundle)
    try:
        keys = bundle_keys(bundle) if isinstance(bundle, str) else None
    except LossctlError:
        return None  # the whole read says what is wrong with the file
    if keys is None:
        return None
    given = {k: v for k, v in sources.items() if v is not None}
    group = {r.name: r.group or r.name for r in spec.roles}
    taken = {group[g] for g in given if g in group}
    filled = {key.replace("-", "_"): f"{bundle}:{key}" for key in keys}
    out = {**{r: s for r, s in filled.items() if r in group and group[r] not in taken}, **given}
    for roles in spec.groups().values():
        present = [r for r in roles if r.name in out]
        if len(present) > 1 or (not present and all(r.required for r in roles)):
            return None
    return out


def _why_whole(spec: LossSpec, st: Settings, bundle: str | None) -> str:
    if spec.stream is None:
        return f"as {spec.name} does not stream"
    if bundle is not None:
        return ("as this --from bundle is read whole (Parquet/Arrow, JSON Lines and .safetensors bundles stream "
                "where their keys fill each role once)")
    return ("as these inputs do not stream (only .npy in C order, text tables, Parquet/Arrow columns, JSON Lines "
            "keys and local float32/float64/int64 .safetensors tensors do, with rows that line up)")


def stream_plan(spec: LossSpec, sources: Mapping[str, Any], st: Settings, stream: bool | None, *,
                bundle: str | None = None) -> Plan | None:
    """What to stream (stream.plan), or None to read the sources whole; `stream` as in evaluate. A --from `bundle`
    streams as the FILE:KEY sources bundled_rows makes of it, its keys read only where the loss may stream."""
    if stream is False or spec.stream is None:
        return None
    if bundle is not None:
        sources = bundled_rows(spec, sources, bundle)
        if sources is None:
            return None
    if not _may_stream(spec, sources, st, force=bool(stream)):
        return None
    from .stream import plan

    planned = plan(spec, sources, st)
    if planned is None:
        return None
    if stream is None and planned.nbytes < STREAM_MIN_BYTES:  # by size: only the files that would stream count
        return None
    return planned


def _may_stream(spec: LossSpec, sources: Mapping[str, Any], st: Settings, *, force: bool) -> bool:
    """Whether streaming is worth planning for a loss that streams: its batched sources are big files together (or
    one is remote). An upper bound of stream_plan's test, read from the file sizes alone, without lossctl.stream."""
    if force:
        return True
    size = 0
    for role in spec.roles:
        source = sources.get(role.name)
        if not (role.batched and isinstance(source, str)):
            continue
        path = split_key(source)[0]
        if is_url(path):
            return True  # its size is the server's to say: the plan asks
        size += os.path.getsize(path) if os.path.isfile(path) else 0
    return size >= STREAM_MIN_BYTES
