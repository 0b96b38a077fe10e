"""The command line: parse, call the API, render, map errors to exit codes (0 ok, 1 a check failed, 2 bad usage or
input). No logic of its own.

Loss commands are generated from the registry, so a registered loss is a command with no code here; a run of one
loss builds only its own command. Nothing on the --help, list, --version or usage-error paths imports torch
(--help and --version not numpy either).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
import time
from typing import Annotated, Any, Literal

import typer

from . import __version__
from .errors import EXIT_CHECK_FAILED, LossctlError, UsageError
from .registry import LossSpec
from .specs import all_specs, get_loss

FORMATS = ("auto", "table", "json", "csv", "plain")  # lossctl.render.FORMATS, without importing it
DEVICES = ("cpu", "cuda", "mps", "auto")
KINDS = ("auto", "index", "prob", "logits")
COMMON = ("reduction", "dtype", "base", "device", "backend", "threads", "header", "from_", "format", "strict",
          "partials", "stream", "scheduler", "scheduler_timeout")

app = typer.Typer(
    name="lossctl", no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Compute PyTorch losses from files, exactly as torch.nn does.",
)


def choice(*values: str) -> Any:
    """A choice as Typer offers it: shown in --help as <mean|sum|none>, checked, and completed in the shell."""
    return Literal[values]


FormatOpt = Annotated[choice(*FORMATS), typer.Option("--format", "-f",
                                        help="auto: a table on a terminal, plain in a pipe.")]
DtypeOpt = Annotated[choice("auto", "float32", "float64"), typer.Option("--dtype",
                                       help="auto: binary files keep their float dtype, text computes in float64.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="One file of named arrays (.npz, JSON object, .pt "
                                                "dict) filling each role from the key of its name.")]
HeaderOpt = Annotated[choice("auto", "yes", "no"), typer.Option(
    "--header", help="Whether text tables (CSV, TSV, whitespace) start with a header row; auto: a row of words, or "
    "pandas' default 0,1,...,C-1 above non-integer data.")]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Turn every warning into an error (exit 2).")]
TolOpt = Annotated[float | None, typer.Option(help="Tolerance [default: by dtype].")]

SOURCE_HELP = ("SOURCE: a path (.npy, .npz[:key], .json, .csv, .tsv, .txt, .dat, .pt[:key]) or a URL (s3://, gs://, "
               "az://, http(s)://, hf://); several paths (repeat the option) "
               "or a quoted glob, paired in sorted order; '-' for standard input; or a JSON literal such as "
               "'[[2.0, 1.0]]'.")


def _err(text: str) -> None:
    sys.stderr.write(f"lossctl: {text}\n")


def handles_errors(func):
    """One line on stderr and the error's exit code for a LossctlError; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LossctlError as exc:
            _err(f"error: {exc}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def emit(obj: Any, fmt: str) -> None:
    """Warnings to stderr, then the data in `fmt` to stdout."""
    from .render import render

    if fmt == "auto":
        fmt = "table" if sys.stdout.isatty() else "plain"
    for w in getattr(obj, "warnings", ()):
        _err(f"warning: {w}")
    out = render(obj, fmt)
    if isinstance(out, str):
        sys.stdout.write(out + "\n")
    else:
        from rich.console import Console

        Console(highlight=False, markup=False, soft_wrap=False).print(out)


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


def _array_params(spec: LossSpec) -> list[inspect.Parameter]:
    def need(r) -> str:
        return "" if r.required and not r.group else " Optional." if not r.group else f" One of the {r.group} group."

    return [_param(r.name, Annotated[list[str] | None, typer.Option(
        r.flag, help=r.help + need(r), metavar="SOURCE", rich_help_panel="Arrays")], None) for r in spec.roles]


def _option_params(spec: LossSpec) -> list[inspect.Parameter]:
    params = []
    for o in spec.options:
        decl = f"{o.flag}/--no-{o.flag[2:]}" if o.type is bool else o.flag
        kind = choice(*o.choices) if o.choices else o.type
        params.append(_param(o.name, Annotated[kind | None, typer.Option(
            decl, help=f"{o.help} [default: {o.default}]", show_default=False)], None))
    return params


def _common_params(spec: LossSpec) -> list[inspect.Parameter]:
    params = [
        _param("reduction", Annotated[choice(*spec.reductions) | None, typer.Option(
            "--reduction", help=f"[default: {spec.default_reduction}]",
            show_default=False)], None),
        _param("dtype", DtypeOpt, "auto"),
    ]
    if spec.information:
        params.append(_param("base", Annotated[choice("e", "2", "10"), typer.Option(
            "--base", help="Logarithm base: e (nats), 2 (bits) or 10 (bans).")],
            "e"))
    params += [
        _param("device", Annotated[str, typer.Option(
            "--device", metavar="<" + "|".join(DEVICES) + ">", autocompletion=lambda: list(DEVICES),
            help="Where torch computes (cuda:N for one GPU of several).")], "cpu"),
        _param("backend", Annotated[choice("auto", *spec.backends), typer.Option("--backend",
               help="auto: the NumPy kernel where the loss has one (on the CPU, no .pt input), else torch.")],
               "auto"),
        _param("header", HeaderOpt, "auto"), _param("from_", FromOpt, None), _param("format", FormatOpt, "auto"),
        _param("strict", StrictOpt, False),
        _param("partials", Annotated[bool, typer.Option("--partials", help="Print the mergeable partial sums as "
                                                         "JSON, for `lossctl merge`.")], False),
    ]
    if spec.stream is not None:
        params += [
            _param("stream", Annotated[bool | None, typer.Option(
                "--stream/--no-stream", show_default=False,
                help="Stream .npy (and CSV/TSV) inputs in chunks [default: when they pass 64 MiB together].")], None),
            _param("threads", Annotated[int | None, typer.Option(
                "--threads", min=1, show_default=False,
                help="Threads computing streamed chunks [default: the machine's cores].")], None),
        ]
    return params + _cluster_params()


def _cluster_params() -> list[inspect.Parameter]:
    """--scheduler and its timeout: each file set computed as one task on a Dask cluster (lossctl.cluster)."""
    return [
        _param("scheduler", Annotated[str | None, typer.Option(
            "--scheduler", metavar="ADDRESS", rich_help_panel="Cluster", show_default=False,
            help="Compute each file set as a task on a Dask cluster: tcp://HOST:PORT of a running scheduler, or "
            "local[:N] for N local worker processes [default N: 2]. Needs pip install 'lossctl[cluster]'.")], None),
        _param("scheduler_timeout", Annotated[float | None, typer.Option(
            "--scheduler-timeout", metavar="SECONDS", rich_help_panel="Cluster", show_default=False,
            help="How long to wait for the scheduler to answer [default: 10].")], None),
    ]


def loss_command(spec: LossSpec):
    """A Typer command for one spec: an option per array role and per loss option, then the common ones."""
    params = _array_params(spec) + _option_params(spec) + _common_params(spec)

    @handles_errors
    def command(**kw: Any) -> None:
        _run_loss(spec, kw)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = f"{spec.summary} ({spec.torch_name})"
    command.__name__ = spec.name.replace("-", "_")
    return command


def split_params(spec: LossSpec, kw: dict[str, Any]) -> tuple[dict, dict, dict]:
    """A loss command's parameters -> (sources per role, the loss's options, the common settings)."""
    roles = {r.name for r in spec.roles}
    sources = {k: v for k, v in kw.items() if k in roles}
    common = {k: v for k, v in kw.items() if k in COMMON}
    options = {k: v for k, v in kw.items() if k not in roles and k not in COMMON}
    return sources, options, common


def _run_loss(spec: LossSpec, kw: dict[str, Any]) -> None:
    from .api import compute_files

    sources, options, common = split_params(spec, kw)
    fmt, partials = common.pop("format"), common.pop("partials")
    with progress_bar() as progress:
        result = compute_files(spec.name, sources, options, bundle=common.pop("from_"), partials=partials,
                               progress=progress, **common)
    if partials:
        import json

        from .batch import partial_document

        for w in result.warnings:
            _err(f"warning: {w}")
        sys.stdout.write(json.dumps(partial_document(result)) + "\n")
    else:
        emit(result, fmt)


LOSS_COMMANDS: dict[str, Any] = {}
for _spec in all_specs():
    _cmd = loss_command(_spec)
    app.command(_spec.name, rich_help_panel="Losses", epilog=SOURCE_HELP)(_cmd)
    for _name in (_spec.name, *_spec.aliases):
        LOSS_COMMANDS[_name] = _cmd
    for _alias in _spec.aliases:
        app.command(_alias, hidden=True)(_cmd)


@functools.cache
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
    target_kind: Annotated[choice(*KINDS), typer.Option("--target-kind",
                                             help="auto: integers are indices, the logits' shape probabilities.")
                           ] = "auto",
    label_smoothing: Annotated[float, typer.Option("--label-smoothing")] = 0.0,
    ignore_index: Annotated[int, typer.Option("--ignore-index")] = -100,
    atol: TolOpt = None, rtol: TolOpt = None, dtype: DtypeOpt = "auto", from_: FromOpt = None,
    format: FormatOpt = "auto",
) -> None:
    """Check CE = H(target) + KL(target || softmax(logits)) for every sample; exit 1 if any row fails."""
    from .api import decompose

    result = decompose(logits=logits, target=target, weight=weight, target_kind=target_kind,
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
    atol: TolOpt = None, rtol: TolOpt = None, dtype: DtypeOpt = "auto", from_: FromOpt = None,
    format: FormatOpt = "auto",
) -> None:
    """Run the tutorial's identities on the data: CE = NLL of log_softmax, one-hot = index, BCE = 2-class NLL."""
    from .api import check

    report = check(logits=logits, probs=probs, target=target, dtype=dtype, atol=atol, rtol=rtol, bundle=from_)
    emit(report, format)
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("list")
@handles_errors
def list_cmd(
    pattern: Annotated[str | None, typer.Argument(help="Only names matching this glob.")] = None,
    format: FormatOpt = "auto",
) -> None:
    """List every loss: name, aliases, torch equivalent, arrays, options and meaning."""
    from .registry import describe_spec
    from .result import Catalog
    from .specs import list_losses

    emit(Catalog([describe_spec(get_loss(n)) for n in list_losses(pattern)]), format)


@app.command("explain", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def explain_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The loss, e.g. ce. Then, optionally, its arrays and options "
                                        "(--logits X --target T ...) to see the computation step by step.")],
    samples: Annotated[int, typer.Option("--samples", min=0, help="How many samples to work through.")] = 3,
    format: FormatOpt = "auto",
) -> None:
    """Explain a loss: formula, options, the mean's denominator, the traps; with arrays, each step."""
    from .explain import explain, explain_data

    spec = get_loss(name)
    if not ctx.args:
        emit(explain(spec.name), format)
        return
    sources, options, common = split_params(spec, parse_loss_args(spec, ctx.args))
    if not any(sources.values()) and common.get("from_") is None:
        raise UsageError("options need arrays to explain a computation; give the loss's arrays too",
                         option="explain")
    first = {role: (v[0] if v else None) for role, v in sources.items()}
    emit(explain_data(spec.name, first, options, reduction=common.get("reduction"), dtype=common["dtype"],
                      base=common.get("base", "e"), bundle=common.get("from_"), samples=samples), format)


def parse_loss_args(spec: LossSpec, args: list[str]) -> dict[str, Any]:
    """Parse `args` exactly as `lossctl NAME` would (its Click command); a mistake is one UsageError line."""
    command = single_loss_command(spec.name)
    try:
        with command.make_context(f"lossctl explain {spec.name}", list(args)) as ctx:
            return dict(ctx.params)
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # Click's usage errors (Typer may carry its own copy of Click)
            raise
        raise UsageError(exc.format_message(), option="explain") from None


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


@functools.cache
def root_command():
    return typer.main.get_command(app)


def main() -> None:
    """The `lossctl` entry point. Click's own usage errors (an unknown option, a value not among the choices) are
    shown as lossctl's errors are: one line on stderr, exit 2."""
    args = sys.argv[1:]
    if args and args[0] in LOSS_COMMANDS:
        command, args, prog = single_loss_command(args[0]), args[1:], f"lossctl {args[0]}"
    else:
        command, prog = root_command(), "lossctl"
    try:
        code = command.main(args=args, prog_name=prog, standalone_mode=False)
    except BrokenPipeError:
        # The reader closed early (| head): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except Exception as exc:
        if type(exc).__name__ == "Abort":  # Click's form of Ctrl-C
            _err("interrupted")
            sys.exit(130)
        if not hasattr(exc, "format_message"):  # not one of Click's usage errors
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `lossctl`: the help, as a usage error
            sys.stderr.write(exc.format_message() + "\n")
            sys.exit(2)
        _err(f"error: {click_message(exc)} (see {prog} --help)")
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def click_message(exc: Exception) -> str:
    """Click's message for a usage error, a value outside the choices said as lossctl says it."""
    param, message = getattr(exc, "param", None), exc.format_message()
    choices = getattr(getattr(param, "type", None), "choices", None)
    got = re.match(r"^'(.*)' is not one of", getattr(exc, "message", ""))
    if param is not None and choices and got:
        return f"{param.opts[0]}: must be one of {', '.join(map(str, choices))}; got {got.group(1)!r}"
    return message
