"""The command line: parse, call the API, render, map errors to exit codes. Kept thin.

Loss commands are generated from the registry, so a registered loss is a command with no code here.
Nothing on the --help, list, --version or usage-error paths imports torch (--help and --version not numpy
either).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import time
from typing import Annotated, Any

import typer

from . import __version__
from .errors import EXIT_CHECK_FAILED, LossctlError, UsageError
from .registry import LossSpec, all_specs, get_loss

app = typer.Typer(
    name="lossctl", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
    help="Compute PyTorch losses from files, exactly as torch.nn does.",
)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="auto (table on a terminal, plain in a pipe), "
                                        "table, json, csv or plain.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto: binary files keep their float dtype, text computes "
                                       "in float64; or float32, float64.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="One file of named arrays (.npz, JSON object, .pt "
                                                "dict) filling each role from the key of its name.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Turn every warning into an error (exit 2).")]


SOURCE_HELP = ("SOURCE: a path (.npy, .npz[:key], .json, .csv, .tsv, .pt[:key]); several paths (repeat the option) "
               "or a quoted glob, paired in sorted order; '-' for standard input; or a JSON literal such as "
               "'[[2.0, 1.0]]'.")


def _err(text: str) -> None:
    sys.stderr.write(f"lossctl: {text}\n")


def _fail(exc: LossctlError) -> typer.Exit:
    _err(f"error: {exc}")
    return typer.Exit(exc.exit_code)


def handles_errors(func):
    """One line on stderr and the error's exit code for a LossctlError; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LossctlError as exc:
            raise _fail(exc) from None

    return wrapper


def check_format(fmt: str) -> None:
    """Before any work: a typo in --format should not cost a streamed file."""
    from .render import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"must be one of {', '.join(FORMATS)}; got {fmt!r}", option="--format")


def emit(obj: Any, fmt: str) -> None:
    from .render import RENDERERS

    check_format(fmt)
    if fmt == "auto":
        fmt = "table" if sys.stdout.isatty() else "plain"
    for w in getattr(obj, "warnings", ()):
        _err(f"warning: {w}")
    out = RENDERERS[fmt](obj)
    if isinstance(out, str):
        sys.stdout.write(out + "\n")
    else:
        from rich.console import Console

        Console(highlight=False, markup=False, soft_wrap=False).print(out)


def _run_loss(spec: LossSpec, kw: dict[str, Any]) -> None:
    from .api import settings
    from .batch import expand, pair, partial_document, run_many

    sources = {r.name: expand(kw.pop(r.name), r.flag) for r in spec.roles}
    fmt, bundle, partials, dtype, stream = (kw.pop(k) for k in ("format", "from_", "partials", "dtype", "stream"))
    common = {k: kw.pop(k) for k in ("reduction", "base", "device", "strict") if k in kw}
    check_format(fmt)
    st = settings(spec, kw, **common)
    with progress_bar() as progress:
        result = run_many(spec, pair(spec, sources), st, dtype=dtype, bundle=bundle, progress=progress,
                          stream=stream, final=not partials)
    if partials:
        import json

        for w in result.warnings:
            _err(f"warning: {w}")
        sys.stdout.write(json.dumps(partial_document(result)) + "\n")
    else:
        emit(result, fmt)


@contextlib.contextmanager
def progress_bar():
    """A progress callback that shows a Rich bar on stderr once work has run a second; none in pipes."""
    if not sys.stderr.isatty():
        yield None
        return
    state: dict[str, Any] = {"t0": time.monotonic()}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            if time.monotonic() - state["t0"] < 1.0:
                return
            from rich.console import Console
            from rich.progress import Progress

            state["bar"] = Progress(console=Console(stderr=True), transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task("streaming", total=total)
        state["bar"].update(state["task"], completed=done, total=total)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].stop()


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def loss_command(spec: LossSpec):
    """A Typer command for one spec: an option per array role and per loss option, then the common ones."""
    params = [_param(r.name, Annotated[list[str] | None, typer.Option(r.flag, help=r.help + (
        "" if r.required and not r.group else " Optional." if not r.group else f" One of the {r.group} group."),
        metavar="SOURCE", rich_help_panel="Arrays")], None) for r in spec.roles]
    for o in spec.options:
        decl = f"{o.flag}/--no-{o.flag[2:]}" if o.type is bool else o.flag
        params.append(_param(o.name, Annotated[o.type | None, typer.Option(
            decl, help=f"{o.help} [default: {o.default}]", show_default=False)], None))
    params += [
        _param("reduction", Annotated[str | None, typer.Option(
            "--reduction", help=f"{', '.join(spec.reductions)} [default: {spec.default_reduction}]")], None),
        _param("dtype", DtypeOpt, "auto"),
    ]
    if spec.information:
        params.append(_param("base", Annotated[str, typer.Option(
            "--base", help="Logarithm base: e (nats), 2 (bits) or 10 (bans).")], "e"))
    params += [
        _param("device", Annotated[str, typer.Option("--device", help="cpu, cuda, mps or auto.")], "cpu"),
        _param("from_", FromOpt, None), _param("format", FormatOpt, "auto"), _param("strict", StrictOpt, False),
        _param("partials", Annotated[bool, typer.Option("--partials", help="Print the mergeable partial sums as "
                                                         "JSON, for `lossctl merge`.")], False),
        _param("stream", Annotated[bool | None, typer.Option(
            "--stream/--no-stream", show_default=False,
            help="Stream .npy (and CSV/TSV) inputs in chunks [default: when they pass 64 MiB together].")], None),
    ]

    @handles_errors
    def command(**kw: Any) -> None:
        _run_loss(spec, kw)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = f"{spec.summary} ({spec.torch_name})"
    command.__name__ = spec.name.replace("-", "_")
    return command


LOSS_COMMANDS: dict[str, Any] = {}
for _spec in all_specs():
    _cmd = loss_command(_spec)
    app.command(_spec.name, rich_help_panel="Losses", epilog=SOURCE_HELP)(_cmd)
    for _name in (_spec.name, *_spec.aliases):
        LOSS_COMMANDS[_name] = _cmd
    for _alias in _spec.aliases:
        app.command(_alias, hidden=True)(_cmd)


def single_loss_command(name: str):
    """The Click command for one loss alone. Typer converts every registered command on each run (about a
    tenth of a second for all the losses); a run of one loss needs only its own."""
    one = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]})
    one.command(name, epilog=SOURCE_HELP)(LOSS_COMMANDS[name])
    return typer.main.get_command(one)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"lossctl {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """Compute PyTorch losses from files, exactly as torch.nn does."""


@app.command("decompose", rich_help_panel="Checks")
@handles_errors
def decompose_cmd(
    logits: Annotated[str | None, typer.Option("--logits", help="Logits (N, C) or (N, C, d...).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Class indices or a target distribution.")] = None,
    weight: Annotated[str | None, typer.Option("--weight", help="Class weights (C,).")] = None,
    target_kind: Annotated[str, typer.Option("--target-kind", help="auto, index, prob or logits.")] = "auto",
    label_smoothing: Annotated[float, typer.Option("--label-smoothing")] = 0.0,
    ignore_index: Annotated[int, typer.Option("--ignore-index")] = -100,
    atol: Annotated[float | None, typer.Option("--atol", help="Absolute tolerance [default: by dtype].")] = None,
    rtol: Annotated[float | None, typer.Option("--rtol", help="Relative tolerance [default: by dtype].")] = None,
    dtype: DtypeOpt = "auto", from_: FromOpt = None, format: FormatOpt = "auto",
) -> None:
    """Check CE = H(target) + KL(target || softmax(logits)) for every sample; exit 1 if any row fails."""
    from .checks import decompose

    result = decompose(logits=logits, target=target, weight=weight, target_kind_=target_kind,
                       label_smoothing=label_smoothing, ignore_index=ignore_index, dtype=dtype, atol=atol,
                       rtol=rtol, bundle=from_)
    emit(result, format)
    if not result.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("check", rich_help_panel="Checks")
@handles_errors
def check_cmd(
    logits: Annotated[str | None, typer.Option("--logits", help="Logits: (N, C), (N, 2) or (N).")] = None,
    probs: Annotated[str | None, typer.Option("--probs", help="Binary probabilities (N), instead.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Class indices (or 0/1).")] = None,
    atol: Annotated[float | None, typer.Option("--atol")] = None,
    rtol: Annotated[float | None, typer.Option("--rtol")] = None,
    dtype: DtypeOpt = "auto", from_: FromOpt = None, format: FormatOpt = "auto",
) -> None:
    """Run the tutorial's identities on the data: CE = NLL of log_softmax, one-hot = index, BCE = 2-class NLL."""
    from .checks import check

    results = check(logits=logits, probs=probs, target=target, dtype=dtype, atol=atol, rtol=rtol, bundle=from_)
    emit(results, format)
    if not all(c.ok for c in results):
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("list")
@handles_errors
def list_cmd(
    pattern: Annotated[str | None, typer.Argument(help="Only names matching this glob.")] = None,
    format: FormatOpt = "auto",
) -> None:
    """List every loss: name, aliases, torch equivalent, arrays, options and meaning."""
    from .registry import describe_spec, list_losses
    from .result import Catalog

    emit(Catalog([describe_spec(get_loss(n)) for n in list_losses(pattern)]), format)


@app.command("explain", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def explain_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The loss, e.g. ce. Then, optionally, its arrays and options "
                                        "(--logits X --target T ...) to see the computation step by step.")],
    samples: Annotated[int, typer.Option("--samples", help="How many samples to work through.")] = 3,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """Explain a loss: formula, options, the mean's denominator, the traps; with arrays, each step."""
    from .explain import explain_command

    sys.stdout.write(explain_command(name, list(ctx.args), samples=samples, fmt=format) + "\n")


@app.command("merge")
@handles_errors
def merge_cmd(
    files: Annotated[list[str], typer.Argument(help="JSON files written by --partials (one object, a list, or "
                                               "one per line).")],
    format: FormatOpt = "auto",
) -> None:
    """Add partial sums from --partials runs (shards, machines) into the exact total loss."""
    from .batch import load_partials, merge

    emit(merge([d for f in files for d in load_partials(f)]), format)


def main() -> None:
    args = sys.argv[1:]
    try:
        if args and args[0] in LOSS_COMMANDS:
            single_loss_command(args[0]).main(args=args[1:], prog_name=f"lossctl {args[0]}")
        else:
            app(prog_name="lossctl")
    except BrokenPipeError:
        # The reader closed early (| head): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
