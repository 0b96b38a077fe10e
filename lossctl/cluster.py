"""Many file sets on a Dask cluster: one task per set, each task's partial Result back, merged as locally.

`--scheduler tcp://HOST:PORT` connects to a running scheduler; `local` or `local:N` starts a LocalCluster of N
worker processes for the run. A task carries the loss's name, one set's sources (file paths, URLs or literals,
never their data) and the validated settings; its worker runs `route.evaluate(..., final=False)` and returns the
Result. The client puts the Results back in file order and `batch.run_many` adds their float64 partial sums in
that order, so the total has the same bits as the same files computed locally. A worker that dies is replaced
and its task rerun by Dask; a LossctlError raised on a worker comes back as itself. dask is imported here only,
and only when a scheduler is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import ClusterError, LossctlError, UsageError
from .io import looks_literal
from .pipeline import Progress, Settings
from .registry import LossSpec
from .result import Result
from .route import evaluate
from .specs import get_loss

LOCAL_WORKERS = 2  # `--scheduler local`
DEFAULT_TIMEOUT = 10.0  # seconds to reach the scheduler (or start the local cluster)
MAX_TIMEOUT = 86400.0
OPTION = "--scheduler"


def max_local_workers() -> int:
    """Each local worker is a Python process of about 100 MiB: more than 4 per core only costs memory."""
    return 4 * (os.cpu_count() or 1)


def parse_scheduler(address: str) -> int | str:
    """`local` -> 2 and `local:N` -> N local worker processes; anything else is a scheduler address for Dask."""
    address = address.strip()
    if address == "local":
        return LOCAL_WORKERS
    if address.startswith("local:"):
        n = address[len("local:"):]
        most = max_local_workers()
        if not n.isdigit() or not 1 <= int(n) <= most:
            raise UsageError(f"local:N takes a number of worker processes from 1 to {most} (4 per core here); got "
                             f"{address!r}", option=OPTION)
        return int(n)
    if not address:
        raise UsageError("give a scheduler address (tcp://HOST:PORT) or local[:N]", option=OPTION)
    return address


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError("computing on a Dask cluster needs dask.distributed: pip install 'lossctl[cluster]'",
                         option=OPTION) from None
    return distributed


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Dask logs reconnects and lost workers on stderr; lossctl reports what matters in its own one line."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def connect(address: str, timeout: float | None = None) -> Iterator[Any]:
    """A dask.distributed Client for `address` (see parse_scheduler), closed (with its local cluster) on exit."""
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    if not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(f"must be a number of seconds above 0, at most {MAX_TIMEOUT:g} (a day); got {timeout}",
                         option="--scheduler-timeout")
    target = parse_scheduler(address)
    distributed = _distributed()
    import dask

    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_logs())
        stack.enter_context(dask.config.set({"distributed.comm.timeouts.connect": f"{timeout}s"}))
        try:
            if isinstance(target, int):
                # On 127.0.0.1 only; no dashboard, and its HTTP server on any free port (8787 may be taken).
                target = stack.enter_context(distributed.LocalCluster(
                    n_workers=target, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.CRITICAL, timeout=timeout))
            client = stack.enter_context(distributed.Client(target, timeout=timeout))
        except ValueError as exc:  # Dask's parse of the address
            raise UsageError(f"not a scheduler address ({_first_line(exc)}); give tcp://HOST:PORT or local[:N]",
                             option=OPTION) from None
        except (OSError, TimeoutError):  # Dask retries a refused or unresolved address until the timeout
            what = "the local cluster did not start" if isinstance(target, int) else "no Dask scheduler answered"
            raise ClusterError(f"{what} at {address} within {timeout:g} s", option=OPTION) from None
        yield client


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def portable(value: Any) -> Any:
    """A local path made absolute (a worker does not share the client's working directory); URLs, literals
    and arrays as they are. Standard input stays on this machine, so it cannot be sent."""
    if getattr(value, "source", None) == "<stdin>" or value == "-":  # '-', or '-' read once for several files
        raise UsageError("standard input ('-') cannot be sent to the workers; give files they can read",
                         option=OPTION)
    if not isinstance(value, str) or looks_literal(value) or "://" in value:
        return value
    return os.path.abspath(value)


def evaluate_set(name: str, sources: Mapping[str, Any], st: Settings, kwargs: Mapping[str, Any]) -> Result:
    """Runs on a worker: one set's Result (partial, final=False, unless it is the whole run)."""
    return evaluate(get_loss(name), sources, st, **kwargs)


def evaluate_on_cluster(spec: LossSpec, sets: list[dict[str, Any]], st: Settings, *, scheduler: str,
                        timeout: float | None = None, progress: Progress | None = None, **kwargs: Any
                        ) -> list[Result]:
    """Each set's Result in file order, each computed as one task on the cluster (kwargs: route.evaluate's)."""
    sent = [{role: portable(v) for role, v in s.items()} for s in sets]
    given = [v for s in sets for v in s.values()]
    if kwargs.get("bundle") is not None:
        given.append(kwargs["bundle"])
        kwargs["bundle"] = portable(kwargs["bundle"])
    given = {portable(v): v for v in given if isinstance(v, str) and portable(v) != v}
    run = uuid.uuid4().hex[:8]
    with connect(scheduler, timeout) as client:
        futures = [client.submit(evaluate_set, spec.name, s, st, kwargs, key=f"lossctl-{spec.name}-{i}-{run}")
                   for i, s in enumerate(sent)]
        try:
            return _gather(client, futures, progress, [_label(s) for s in sets])
        except LossctlError as exc:
            raise _as_given(exc, given) from None


def _label(sources: Mapping[str, Any]) -> str:
    """A set as a failure names it: its first source, as given."""
    return str(next((v for v in sources.values() if v is not None), "a file set"))


def _gather(client: Any, futures: list[Any], progress: Progress | None, labels: list[str]) -> list[Result]:
    """Results in file order; the bar follows tasks as they finish. On a failure, the first failed set in file
    order is reported, as a local run (which stops at the first bad set) would."""
    distributed = _distributed()
    order = {f.key: i for i, f in enumerate(futures)}
    results: list[Result | None] = [None] * len(futures)
    for done, fut in enumerate(distributed.as_completed(futures), start=1):
        i = order[fut.key]
        if fut.status != "finished":
            client.cancel(futures[i + 1:])
            distributed.wait(futures[:i])
            first = next(f for f in futures[: i + 1] if f.status != "finished")
            raise _task_error(first, labels[order[first.key]])
        results[i] = fut.result()
        if progress is not None:
            progress(done, len(futures))
    return results  # type: ignore[return-value]


def _task_error(fut: Any, label: str) -> LossctlError:
    """A task's own LossctlError as raised on the worker; anything else (a lost worker, a missing package on the
    worker) as one line naming the set."""
    try:
        exc = fut.exception()
    except Exception as err:  # noqa: BLE001  a cancelled future raises instead of returning its exception
        exc = err
    if isinstance(exc, LossctlError):
        return exc
    return ClusterError(f"the task for {label} failed on the cluster: {type(exc).__name__}: "
                        f"{_first_line(exc)[:200]}", option=OPTION)


def _as_given(exc: LossctlError, given: Mapping[str, str]) -> LossctlError:
    """The error naming its file as the user gave it, not as made absolute for the workers."""
    for sent, original in given.items():
        if exc.source == sent or (exc.source or "").startswith(sent + ":"):
            return type(exc)(exc.message, option=exc.option, source=original + exc.source[len(sent):])
    return exc
