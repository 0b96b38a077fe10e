"""The command line: parse, call the API, render, map errors to exit codes (0 ok, 1 a check failed, 2 bad usage or
input). No logic of its own.

Loss commands are generated from the registry, so a registered loss is a command with no code here; a run of one
loss builds only its own command. Nothing on the --help, list, --version or usage-error paths imports torch
(--help and --version not numpy either).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import io
import os
import re
import sys
import time
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperCommand, TyperGroup

from . import __version__
from .errors import EXIT_CHECK_FAILED, LossctlError, UsageError
from .registry import LossSpec, flag
from .specs import all_specs, get_loss

FORMATS = ("auto", "table", "json", "csv", "plain")  # lossctl.render.FORMATS, without importing it
DEVICES = ("cpu", "cuda", "mps", "auto")
KINDS = ("auto", "index", "prob", "logits")
COMMON = ("reduction", "dtype", "base", "device", "backend", "threads", "header", "from_", "format", "strict",
          "partials", "stream", "class_axis", "by_class", "worst", "expect", "rtol", "atol", "scheduler",
          "scheduler_timeout")

# The loss commands' settings that `explain` with arrays does not use (it reads the first set, in memory).
EXPLAIN_IGNORES = ("device", "backend", "threads", "format", "strict", "partials", "stream", "by_class",
                   "worst", "expect", "rtol", "atol", "scheduler", "scheduler_timeout")
# of those, the ones explain refuses whatever their value (it takes --device cpu, and has its own --format)
EXPLAIN_REFUSES = frozenset(EXPLAIN_IGNORES) - {"device", "format"}


class LossesGroup(TyperGroup):
    """The root command group. A loss's command is built only when it is run or completed; --help lists the losses
    from their specs without building their commands (Typer converts one in a few milliseconds; all of them were
    most of --help's time)."""

    def list_commands(self, ctx) -> list[str]:
        return [*(spec.name for spec in all_specs()), *super().list_commands(ctx)]

    def get_command(self, ctx, name: str):
        if name in LOSS_NAMES:
            return single_loss_command(name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in LOSS_NAMES:
                rows.append((name, short_help(get_loss(name).summary, limit)))
            elif (cmd := super().get_command(ctx, name)) is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def short_help(text: str, limit: int) -> str:
    """The first sentence, cut at a word to fit `limit` characters, as Click shortens a command's help."""
    first = text.split(". ")[0].rstrip(".")
    if len(first) <= limit:
        return first
    return first[: max(limit - 3, 0)].rsplit(" ", 1)[0] + "..."


app = typer.Typer(
    name="lossctl", cls=LossesGroup, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Compute PyTorch losses from files, exactly as torch.nn does.",
)


def choice(*values: str) -> Any:
    """A choice as Typer offers it: shown in --help as <mean|sum|none>, checked, and completed in the shell."""
    return Literal[values]


FormatOpt = Annotated[choice(*FORMATS), typer.Option("--format", "-f",
                                        help="auto: a table on a terminal, plain in a pipe.")]
# the loss commands that have --by-class and --worst: in a pipe, auto prints the breakdown asked for
BreakdownFormatOpt = Annotated[choice(*FORMATS), typer.Option(
    "--format", "-f", help="auto: a table on a terminal, plain in a pipe (--by-class or --worst: CSV; both: JSON).")]
DtypeOpt = Annotated[choice("auto", "float32", "float64"), typer.Option("--dtype",
                                       help="auto: binary files keep their float dtype (float16 computes in "
                                            "float32; float32 beside a float64 array of its shape in float64, as "
                                            "torch promotes, but float32 logits stay float32, as torch takes "
                                            "their log-softmax or log-sigmoid in float32), text computes in "
                                            "float64.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="One file of named arrays (.npz, JSON object, .pt "
                                                "dict, .safetensors, Parquet/Arrow columns, JSON Lines fields) "
                                                "filling each role from the key of its name.")]
HeaderOpt = Annotated[choice("auto", "yes", "no"), typer.Option(
    "--header", help="Whether text tables (CSV, TSV, whitespace) start with a header row; auto: a row of words, or "
    "pandas' default 0,1,...,C-1 above non-integer data.")]
CLASS_AXIS_HELP = ("The axis of the logits that holds the classes: torch's 1, or -1 for the classes-last (N, L, C) "
                   "layout Hugging Face models give.")
CLASS_AXIS = inspect.Parameter("class_axis", inspect.Parameter.KEYWORD_ONLY, default=1, annotation=Annotated[
    int, typer.Option("--class-axis", help=CLASS_AXIS_HELP)])
StrictOpt = Annotated[bool, typer.Option("--strict", help="Turn every warning into an error (exit 2).")]
TolOpt = Annotated[float | None, typer.Option(help="Tolerance: |left - right| <= atol + rtol |right| [default: 1e-5 "
                                                   "float32, 1e-10 float64].")]

SOURCE_FORMS = ("SOURCE: a path (.npy, .npz[:key], .json[:key], .csv, .tsv, .txt, .dat, .pt[:key], "
                ".safetensors[:key], .parquet/.arrow/.feather[:column], .jsonl/.ndjson[:key]) or a URL (s3://, "
                "gs://, az://, http(s)://, hf://); ")
SOURCE_HELP = (SOURCE_FORMS + "several paths (repeat the option) or a quoted glob, paired in sorted order; '-' for "
               "standard input; or a JSON literal such as '[[2.0, 1.0]]'.")
# grad, decompose and check work one set of inputs through: they refuse several files for an option
ONE_SOURCE_HELP = SOURCE_FORMS + "'-' for standard input; or a JSON literal such as '[[2.0, 1.0]]'. One per option."

STREAM_HELP = ("Stream big inputs (.npy, text tables, Parquet/Arrow columns, JSON Lines) in chunks [default: when "
               "they pass 64 MiB together].")


# A line break (or another control character) in a file name or literal that a message quotes, escaped as Python
# writes it: every message is one line, as scripts that read stderr line by line count on.
ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(32), 127) if c != 9} | {10: "\\n", 13: "\\r"}


def _to_devnull(stream) -> None:
    """Point `stream`'s descriptor at /dev/null: what is left in its buffer (or written later) goes nowhere, so that
    a stream that failed cannot fail again at exit (Python's 'Exception ignored', exit 120)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _err(text: str) -> None:
    """One line on stderr. A stderr that cannot take it (a full disk, or closed: 2>&-) has nowhere to be told: the
    exit code still says how the run went (2 for bad input, 0 with a warning), not a traceback and exit 1, which
    means a failed check. What is left in its buffer is dropped, so that it cannot fail again at exit."""
    try:
        sys.stderr.write(f"lossctl: {text.translate(ONE_LINE)}\n")
        sys.stderr.flush()
    except OSError:
        _to_devnull(sys.stderr)


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


def resolve_format(fmt: str, *, by_class: bool = False, worst: int = 0) -> str:
    """auto: a table on a terminal; in a pipe plain numbers, or the breakdown asked for as CSV (both as JSON)."""
    if fmt != "auto":
        return fmt
    if sys.stdout.isatty():
        return "table"
    return ("json" if by_class and worst else "csv") if by_class or worst else "plain"


# What a run exits with when the reader of its pipe leaves before all was printed (| head): 0, or 1 where the check
# or --expect it was printing had already failed, which the reader leaving does not undo (and --expect's line).
PIPE_CLOSED_EXIT: dict[str, Any] = {"code": 0, "line": None}


def emit(obj: Any, fmt: str, *, failed: bool = False, line: str | None = None) -> None:
    """Warnings to stderr, then the data in `fmt` to stdout. `failed`: the run exits 1 after it (a check or
    --expect failed), and says `line` on stderr, even if the reader leaves early."""
    from .render import Blocks, render

    PIPE_CLOSED_EXIT.update(code=EXIT_CHECK_FAILED if failed else 0, line=line)
    fmt = resolve_format(fmt)
    for w in getattr(obj, "warnings", ()):
        _err(f"warning: {w}")
    out = render(obj, fmt)
    if isinstance(out, str):
        if out:  # nothing to print (a list that matches no loss) is no line, not an empty one
            write_out(out + "\n")
        return
    if isinstance(out, Blocks):
        with stdout_errors():
            for block in out:
                sys.stdout.write(block + "\n")
        return
    from rich.console import Console

    class Quiet(Console):
        def on_broken_pipe(self) -> None:  # Rich's own exits 1, which means a failed check here
            _pipe_closed()

    with stdout_errors():
        Quiet(highlight=False, markup=False, soft_wrap=False).print(out)


@contextlib.contextmanager
def stdout_errors():
    """A write to stdout that fails (a full disk: ENOSPC, EIO) is one error line and exit 2, as a failed -o or
    --plot is, not a traceback and exit 1 (a failed check). Flushed here, so that it cannot fail at exit instead.
    A reader gone early (BrokenPipeError) is left to main, which exits 0."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        _to_devnull(sys.stdout)
        raise UsageError(f"cannot write the output: {exc.strerror or exc}", option="stdout") from None


def write_out(text: str) -> None:
    with stdout_errors():
        sys.stdout.write(text)


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


def reduction_help(spec: LossSpec) -> str:
    """What each of the loss's reductions gives, the mean's denominator from the spec (as explain says it)."""
    parts = [text for name, text in (("none", "none: the unreduced values, as torch's reduction='none'"),
                                     ("sum", "sum: their sum")) if name in spec.reductions]
    return "; ".join([*parts, f"mean divides the sum by: {spec.denominator}"]) + "."


def _base_params(spec: LossSpec) -> list[inspect.Parameter]:
    """--base, for the losses measured in nats."""
    if not spec.information:
        return []
    return [_param("base", Annotated[choice("e", "2", "10"), typer.Option(
        "--base", help="Logarithm base: e (nats), 2 (bits) or 10 (bans).")], "e")]


def _common_params(spec: LossSpec) -> list[inspect.Parameter]:
    params = [
        _param("reduction", Annotated[choice(*spec.reductions) | None, typer.Option(
            "--reduction", help=f"{reduction_help(spec)} [default: {spec.default_reduction}]",
            show_default=False)], None),
        _param("dtype", DtypeOpt, "auto"),
    ]
    params += _base_params(spec)
    params += [
        _param("device", Annotated[str, typer.Option(
            "--device", metavar="<" + "|".join(DEVICES) + ">", autocompletion=lambda: list(DEVICES),
            help="Where torch computes (cuda:N for one GPU of several).")], "cpu"),
        _param("backend", Annotated[choice("auto", *spec.backends), typer.Option("--backend",
               help="auto: the NumPy kernel where the loss has one (on the CPU, no .pt input), else torch.")],
               "auto"),
        _param("header", HeaderOpt, "auto"), _param("from_", FromOpt, None),
        _param("format", FormatOpt if spec.report is None else BreakdownFormatOpt, "auto"),
        _param("strict", StrictOpt, False),
        _param("partials", Annotated[bool, typer.Option("--partials", help="Print the mergeable partial sums as "
                                                         "JSON, for `lossctl merge`.")], False),
    ]
    if spec.class_roles:
        params.append(CLASS_AXIS)
    if spec.report is not None:
        params += [
            _param("by_class", Annotated[bool, typer.Option("--by-class", help="Per class: count, mean loss, share "
                   "of the total, accuracy, mean probability given to it (per label column for BCE).")], False),
            _param("worst", Annotated[int, typer.Option("--worst", min=0, metavar="K", help="The K samples with "
                   "the highest loss (where label errors hide).")], 0),
        ]
    params += [
        _param("expect", Annotated[float | None, typer.Option("--expect", help="Exit 1 when the loss is not this "
               "value (within --rtol/--atol), for CI jobs that pin the loss of a fixed batch.")], None),
        _param("rtol", Annotated[float | None, typer.Option("--rtol", help="For --expect [default: 1e-5 "
               "float32, 1e-9 float64].")], None),
        _param("atol", Annotated[float | None, typer.Option("--atol", help="For --expect [default: 1e-6 "
               "float32, 1e-12 float64].")], None),
    ]
    if spec.stream is not None:
        params += [
            _param("stream", Annotated[bool | None, typer.Option(
                "--stream/--no-stream", show_default=False,
                help=STREAM_HELP)], None),
            _param("threads", Annotated[int | None, typer.Option(
                "--threads", show_default=False,
                help="Threads computing streamed chunks, 1 to 256 [default: the machine's cores].")], None),
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
    return typed_command(params, lambda kw: _run_loss(spec, kw), f"{spec.summary} ({spec.torch_name})",
                         spec.name.replace("-", "_"))


def typed_command(params: list[inspect.Parameter], run, doc: str, name: str):
    """A function Typer reads as a command with these parameters; its body runs `run(kwargs)`, errors as one line."""

    @handles_errors
    def command(**kw: Any) -> None:
        run(kw)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__, command.__name__ = doc, name
    return command


def split_params(spec: LossSpec, kw: dict[str, Any]) -> tuple[dict, dict, dict]:
    """A loss command's parameters -> (sources per role, the loss's options, the common settings)."""
    roles = {r.name for r in spec.roles}
    sources = {k: v for k, v in kw.items() if k in roles}
    common = {k: v for k, v in kw.items() if k in COMMON}
    options = {k: v for k, v in kw.items() if k not in roles and k not in COMMON}
    return sources, options, common


def _run_loss(spec: LossSpec, kw: dict[str, Any]) -> None:
    from .api import check_expect, compute_files
    from .render import check_breakdowns

    sources, options, common = split_params(spec, kw)
    partials = common.pop("partials")
    expect = [common.pop(k) for k in ("expect", "rtol", "atol")]
    check_expect(spec.name, common.get("reduction"), expect=expect[0], rtol=expect[1], atol=expect[2],
                 partials=partials)
    if partials:
        refuse_format_beside_partials(common["format"])
    fmt = resolve_format(common.pop("format"), by_class=common.get("by_class", False), worst=common.get("worst", 0))
    if not partials:  # --partials refuses the breakdowns itself
        check_breakdowns(fmt, by_class=common.get("by_class", False), worst=common.get("worst", 0))
    with progress_bar() as progress:
        result = compute_files(spec.name, sources, options, bundle=common.pop("from_"), partials=partials,
                               progress=progress, details=fmt != "plain" and not partials, **common)
    if partials:
        import json

        from .batch import partial_document
        from .render.as_json import json_value

        for w in result.warnings:
            _err(f"warning: {w}")
        # strict JSON, as every JSON output: a sum of inf or nan (torch's own result) is written as a string
        write_out(json.dumps(json_value(partial_document(result)), allow_nan=False) + "\n")
        return
    emit_verdict(result, fmt, expected(result, *expect))


def refuse_format_beside_partials(fmt: str) -> None:
    """--partials prints one JSON document for `lossctl merge`: a -f asking for anything else is refused rather
    than ignored, as a breakdown plain output cannot show is."""
    if fmt not in ("auto", "json"):
        raise UsageError(f"prints the partial sums as JSON, for lossctl merge; -f {fmt} does not apply (leave -f out, "
                         "or use -f json)", option="--partials")


def expected(result: Any, expect: float | None, rtol: float | None, atol: float | None) -> str | None:
    """--expect's verdict on a result (on the total over several files): None where it holds or was not asked,
    else the line that says by how much it is off."""
    if expect is None:
        return None
    from .api import expectation

    off = expectation(getattr(result, "total", result), expect, rtol=rtol, atol=atol)
    return f"expect: {off}" if off else None


def emit_verdict(result: Any, fmt: str, failure: str | None) -> None:
    """The result, then where `failure` (--expect's line, a check's) says it failed: that line on stderr and exit 1,
    even if the reader of stdout left early."""
    emit(result, fmt, failed=failure is not None, line=failure)
    if failure is not None:
        _err(failure)
        raise typer.Exit(EXIT_CHECK_FAILED)


LOSS_NAMES = {name for spec in all_specs() for name in (spec.name, *spec.aliases)}


class LossArgsCommand(TyperCommand):
    """explain and grad, which take a loss's options as extra arguments after NAME: the shell completes those
    options, and their choices, from that loss's own command."""

    def shell_complete(self, ctx, incomplete: str) -> list:
        name = ctx.params.get("name")
        if name not in LOSS_NAMES:
            return super().shell_complete(ctx, incomplete)
        command = (single_grad_command if self.name == "grad" else single_loss_command)(name)
        args = list(ctx.args)
        with command.make_context(f"lossctl {self.name} {name}", list(args), resilient_parsing=True) as sub:
            if incomplete.startswith("-"):  # the loss's options, then this command's own (--samples) not among them
                found = command.shell_complete(sub, incomplete)
                if self.name == "explain":  # not those explain refuses ('explain does not apply --stream')
                    refused = {o for p in command.get_params(sub) if p.name in EXPLAIN_REFUSES
                               for o in (*p.opts, *p.secondary_opts)}
                    found = [item for item in found if item.value not in refused]
                seen = {item.value for item in found}
                return found + [item for item in super().shell_complete(ctx, incomplete) if item.value not in seen]
            wants_value = [p for p in command.get_params(sub)
                           if args and args[-1] in getattr(p, "opts", ()) and getattr(p, "is_flag", None) is False]
            return wants_value[0].shell_complete(sub, incomplete) if wants_value else []


def complete_loss_name(incomplete: str) -> list[str]:
    """The shell completion of explain's and grad's NAME: the loss names that start so (as `lossctl <TAB>` offers
    them; an alias is taken too, but not offered)."""
    return [spec.name for spec in all_specs() if spec.name.startswith(incomplete)]


@functools.cache
def loss_function(name: str):
    """The command function of one loss (by name or alias), built when first asked for."""
    return loss_command(get_loss(name))


@functools.cache
def single_loss_command(name: str):
    """The Click command for one loss alone. Typer converts every registered command on each run (about a
    tenth of a second for all the losses); a run of one loss needs only its own."""
    one = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]})
    one.command(name, epilog=SOURCE_HELP)(loss_function(name))
    return typer.main.get_command(one)


def _version(value: bool) -> None:
    if value:
        write_out(f"lossctl {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """Compute PyTorch losses from files, exactly as torch.nn does."""


def source_option(flag_: str, help: str) -> Any:
    """An array option of decompose and check: repeatable, so that a second one is refused (one_source) where
    Click would keep the last silently."""
    return Annotated[list[str] | None, typer.Option(flag_, metavar="SOURCE", help=help)]


@app.command("decompose", rich_help_panel="Checks", epilog=ONE_SOURCE_HELP)
@handles_errors
def decompose_cmd(
    logits: source_option("--logits", "Logits (C), (N, C) or (N, C, d...).") = None,
    target: source_option("--target", "Class indices or a target distribution.") = None,
    weight: source_option("--weight", "Class weights (C,).") = None,
    target_kind: Annotated[choice(*KINDS), typer.Option("--target-kind",
                                             help="auto: integers are indices, the logits' shape probabilities.")
                           ] = "auto",
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", help="Mix the target with the uniform "
                                                   "distribution, in [0, 1], as ce does; H is then the mixture's.")
                               ] = 0.0,
    ignore_index: Annotated[int, typer.Option("--ignore-index", help="Samples whose target is this class index are "
                                              "left out.")] = -100,
    atol: TolOpt = None, rtol: TolOpt = None, dtype: DtypeOpt = "auto", from_: FromOpt = None,
    format: FormatOpt = "auto",
) -> None:
    """Check CE = H(target) + KL(target || softmax(logits)) for every sample; exit 1 if any row fails."""
    from .api import decompose
    from .command_results import failure_line
    from .pipeline import one_source

    logits, target, weight = (one_source(v, f, "decompose") for v, f in ((logits, "--logits"), (target, "--target"),
                                                                         (weight, "--weight")))
    result = decompose(logits=logits, target=target, weight=weight, target_kind=target_kind,
                       label_smoothing=label_smoothing, ignore_index=ignore_index, dtype=dtype, atol=atol,
                       rtol=rtol, bundle=from_)
    emit_verdict(result, format, failure_line([result]))


@app.command("check", rich_help_panel="Checks", epilog=ONE_SOURCE_HELP)
@handles_errors
def check_cmd(
    logits: source_option("--logits", "Logits: (N, C), (N, 2), (N), or (C) with one class index or "
                          "distribution.") = None,
    probs: source_option("--probs", "Binary probabilities instead: (N), (N, 2) rows (or one (2) row), or one per "
                         "0/1 label.") = None,
    target: source_option("--target", "Class indices (or 0/1), or probabilities of the logits' shape.") = None,
    weight: source_option("--weight", "Class weights (C,), for the gradient identity.") = None,
    atol: TolOpt = None, rtol: TolOpt = None, dtype: DtypeOpt = "auto", from_: FromOpt = None,
    format: FormatOpt = "auto",
) -> None:
    """Run the tutorial's identities on the data: CE = NLL of log_softmax, one-hot = index, BCE = 2-class NLL,
    and autograd's gradient of CE against its closed form."""
    from .api import check
    from .command_results import failure_line
    from .pipeline import one_source

    logits, probs, target, weight = (one_source(v, f, "check") for v, f in (
        (logits, "--logits"), (probs, "--probs"), (target, "--target"), (weight, "--weight")))
    report = check(logits=logits, probs=probs, target=target, weight=weight, dtype=dtype, atol=atol, rtol=rtol,
                   bundle=from_)
    emit_verdict(report, format, failure_line(report.checks))


@app.command("list")
@handles_errors
def list_cmd(
    pattern: Annotated[str | None, typer.Argument(help="Only losses whose name or an alias matches this glob.")] = None,
    format: FormatOpt = "auto",
) -> None:
    """List every loss: name, aliases, torch equivalent, arrays, options and meaning."""
    from .command_results import Catalog
    from .registry import describe_spec
    from .specs import list_losses

    names = list_losses(pattern)
    emit(Catalog([describe_spec(get_loss(n)) for n in names]), format)
    if pattern and not names:  # the glob matches whole names: 'margin' alone finds none of the margin losses
        _err(f"note: no loss name or alias matches {pattern!r}; the pattern is a glob over whole names, "
             f"e.g. '*{pattern.strip('*')}*'")


@app.command("explain", cls=LossArgsCommand,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def explain_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The loss, e.g. ce. Then, optionally, its arrays and options "
                                        "(--logits X --target T ...) to see the computation step by step.",
                                        autocompletion=complete_loss_name)],
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
    ignored = [k for k in EXPLAIN_IGNORES if common.get(k) not in (None, False, 0, "auto", "cpu")]
    if ignored:  # explain works a few samples through in memory: these would change nothing, so say so
        raise UsageError(f"explain does not apply {flag(ignored[0])}; run `lossctl {spec.name}` for it",
                         option=flag(ignored[0]))
    emit(explain_data(spec.name, _one_set(spec.name, sources), options, reduction=common.get("reduction"),
                      dtype=common["dtype"], base=common.get("base", "e"), bundle=common.get("from_"), samples=samples,
                      class_axis=common.get("class_axis", 1), header=common.get("header", "auto")), format)


def _one_set(name: str, sources: dict[str, Any]) -> dict[str, Any]:
    """explain works one set of arrays through: several files (or a glob of them) for one option are refused
    rather than all but the first dropped."""
    from .batch import expand

    first = {}
    for role, given in sources.items():
        files = expand(given, flag(role))
        if files and len(files) > 1:
            raise UsageError(f"explain works one set of arrays through, and this names {len(files)} files; give "
                             f"one, or run `lossctl {name}` for the loss over all of them", option=flag(role))
        first[role] = files[0] if files else None
    return first


def parse_loss_args(spec: LossSpec, args: list[str]) -> dict[str, Any]:
    """Parse `args` exactly as `lossctl NAME` would (its Click command); a mistake is one UsageError line."""
    command = single_loss_command(spec.name)
    try:
        with command.make_context(f"lossctl explain {spec.name}", list(args)) as ctx:
            return dict(ctx.params)
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # Click's usage errors (Typer may carry its own copy of Click)
            raise
        raise UsageError(click_message(exc)) from None


@app.command("merge")
@handles_errors
def merge_cmd(
    files: Annotated[list[str], typer.Argument(help="JSON files written by --partials (one object, a list, or "
                                               "one per line); '-' for standard input.")],
    format: FormatOpt = "auto",
    expect: Annotated[float | None, typer.Option("--expect", help="Exit 1 when the merged loss (or calibration "
                      "error) is not this value (within --rtol/--atol), as a loss command's --expect.")] = None,
    rtol: Annotated[float | None, typer.Option("--rtol", help="For --expect [default: 1e-5 float32, 1e-9 "
                    "float64].")] = None,
    atol: Annotated[float | None, typer.Option("--atol", help="For --expect [default: 1e-6 float32, 1e-12 "
                    "float64].")] = None,
) -> None:
    """Add partial sums from --partials runs (shards, machines) into the exact total loss or calibration error."""
    from .api import merge_files
    from .tolerance import check_expect_tolerances

    check_expect_tolerances(expect=expect, atol=atol, rtol=rtol)  # before anything is read
    result = merge_files(files)
    emit_verdict(result, format, expected(result, expect, rtol, atol))


# --- calibration -----------------------------------------------------------------------------------------------

CalSourceOpt = list[str] | None


@app.command("calibration", rich_help_panel="Metrics", epilog=SOURCE_HELP)
@handles_errors
def calibration_cmd(
    logits: Annotated[CalSourceOpt, typer.Option("--logits", metavar="SOURCE", help="Logits (N, C), softmaxed; or "
                                                 "(N), sigmoid. One of the input group.")] = None,
    probs: Annotated[CalSourceOpt, typer.Option("--probs", metavar="SOURCE", help="Probabilities (N, C); or "
                                                "p(class 1), shape (N). One of the input group.")] = None,
    target: Annotated[CalSourceOpt, typer.Option("--target", metavar="SOURCE",
                                                 help="Class indices (N), or 0/1 of the scores' shape.")] = None,
    bins: Annotated[int, typer.Option("--bins", help="Number of bins, 1 to 100000.")] = 15,
    norm: Annotated[choice("l1", "l2", "max"), typer.Option(
        "--norm", help="The value reported: l1 (ECE), l2 (RMSCE) or max (MCE).")] = "l1",
    binning: Annotated[choice("uniform", "quantile"), typer.Option(
        "--binning", help="uniform: equal-width bins, as torchmetrics; quantile: equal-count bins (whole reads "
        "only).")] = "uniform",
    task: Annotated[choice("auto", "binary", "multiclass"), typer.Option(
        "--task", help="auto: 1-d scores with 1-d targets are binary, (N, C) scores with (N) targets multiclass.")
    ] = "auto",
    plot: Annotated[str | None, typer.Option("--plot", metavar="FILE", help="Also write the reliability diagram "
                                             "to FILE (.png or .svg; needs matplotlib: lossctl[plot]).")] = None,
    dtype: DtypeOpt = "auto", header: HeaderOpt = "auto", from_: FromOpt = None, format: FormatOpt = "auto",
    strict: StrictOpt = False,
    partials: Annotated[bool, typer.Option("--partials", help="Print the mergeable per-bin sums as JSON, for "
                                           "`lossctl merge`.")] = False,
    stream: Annotated[bool | None, typer.Option("--stream/--no-stream", show_default=False, help=STREAM_HELP)] = None,
    threads: Annotated[int | None, typer.Option("--threads", show_default=False,
                                                help="Threads binning streamed chunks, 1 to 256 [default: the "
                                                "machine's cores].")] = None,
    ignore_index: Annotated[int | None, typer.Option("--ignore-index", show_default=False, help="Leave out the "
                                                     "samples whose target is this value (padding), as "
                                                     "torchmetrics' ignore_index [default: none].")] = None,
    class_axis: Annotated[int, typer.Option("--class-axis", help=CLASS_AXIS_HELP)] = 1,
) -> None:
    """Calibration error (ECE, RMSCE, MCE) and the reliability table, as torchmetrics computes them."""
    from .calibration_run import calibrate_files, calibration_document, calibration_settings

    cs = calibration_settings(bins=bins, norm=norm, binning=binning, task=task, strict=strict, threads=threads,
                              header=header, ignore_index=ignore_index, class_axis=class_axis)
    if partials and plot:
        raise UsageError("a partial has no final bins to draw; plot the merged result instead", option="--plot")
    if partials:
        refuse_format_beside_partials(format)
    sources = {"logits": logits, "probs": probs, "target": target}
    with progress_bar() as progress:
        if partials:
            _print_partial(calibration_document(sources, cs, dtype=dtype, bundle=from_, stream=stream,
                                                progress=progress))
            return
        result = calibrate_files(sources, cs, dtype=dtype, bundle=from_, stream=stream, progress=progress)
    if plot:
        from .plot import plot_reliability

        plot_reliability(getattr(result, "total", result), plot)
    emit(result, format)


def _print_partial(doc: dict[str, Any]) -> None:
    import json

    from .render.as_json import json_value

    for w in doc.get("warnings", ()):
        _err(f"warning: {w}")
    write_out(json.dumps(json_value(doc), allow_nan=False) + "\n")


# --- gradients -------------------------------------------------------------------------------------------------

GRAD_COMMON = ("reduction", "dtype", "base", "header", "from_", "class_axis", "target_grad", "strict")


def _target_grad_params(spec: LossSpec) -> list:
    """--target-grad, for the losses that take a --target."""
    if not any(r.name == "target" for r in spec.roles):
        return []
    return [_param("target_grad", Annotated[bool, typer.Option(
        "--target-grad", help="Also give d loss / d target, where torch differentiates the target (a float target: "
        "not class indices, nor the signs that select terms).")], False)]


def grad_command(spec: LossSpec):
    """`lossctl grad NAME`: the loss command's arrays and options, then --reduction, --dtype, --from, -f, -o."""
    params = _array_params(spec) + _option_params(spec) + [
        _param("reduction", Annotated[choice(*spec.reductions) | None, typer.Option(
            "--reduction", help=f"[default: {spec.default_reduction}]; none: the gradient of the sum of the "
            "per-element losses.", show_default=False)], None),
        _param("dtype", Annotated[choice("float32", "float64"), typer.Option(
            "--dtype", help="The dtype autograd computes in.")], "float64"),
    ] + _base_params(spec) + _target_grad_params(spec) + [
        _param("header", HeaderOpt, "auto"), _param("from_", FromOpt, None), _param("format", FormatOpt, "auto"),
        _param("strict", StrictOpt, False),
        _param("output", Annotated[str | None, typer.Option(
            "--output", "-o", metavar="FILE", help="Write the gradients to FILE instead: .npy (one input) or .npz "
            "(one key per input, named as its option).")], None),
    ] + ([CLASS_AXIS] if spec.class_roles else [])

    return typed_command(params, lambda kw: _run_grad(spec, kw),
                         f"d loss / d input of {spec.name} ({spec.torch_name}), by torch autograd.",
                         "grad_" + spec.name.replace("-", "_"))


def _run_grad(spec: LossSpec, kw: dict[str, Any]) -> None:
    from .grad import gradient_files, save_gradients

    fmt, output = kw.pop("format"), kw.pop("output")
    sources = {r.name: kw.pop(r.name) for r in spec.roles}
    common = {k: kw.pop(k) for k in GRAD_COMMON if k in kw}
    result = gradient_files(spec.name, sources, kw, bundle=common.pop("from_"), **common)
    if output is None:
        emit(result, fmt)
        return
    for w in result.warnings:
        _err(f"warning: {w}")
    path = save_gradients(result, output)
    shapes = ", ".join(f"{role} {tuple(g.shape)}" for role, g in result.gradients.items())
    _err(f"wrote d loss / d input ({shapes}, {result.dtype}) to {path}")


@functools.cache
def single_grad_command(name: str):
    """The Click command for `lossctl grad NAME` alone (see single_loss_command)."""
    one = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]})
    one.command(name, epilog=ONE_SOURCE_HELP)(grad_command(get_loss(name)))
    return typer.main.get_command(one)


@app.command("grad", rich_help_panel="Checks", cls=LossArgsCommand,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def grad_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The loss, e.g. ce; then its arrays and options as `lossctl NAME` "
                                        "takes them (see lossctl grad NAME --help).",
                                        autocompletion=complete_loss_name)],
) -> None:
    """d loss / d input by torch autograd (float64), for each float input; -o FILE.npy or .npz to save it."""
    spec = get_loss(name)
    command = single_grad_command(spec.name)
    command.main(args=list(ctx.args), prog_name=f"lossctl grad {spec.name}", standalone_mode=False)


@functools.cache
def root_command():
    return typer.main.get_command(app)


def _pipe_closed() -> None:
    """The reader closed early (| head): stop quietly and keep Python from complaining at exit; exit 0, or 1 with
    --expect's line where what was being printed had already failed (PIPE_CLOSED_EXIT)."""
    _to_devnull(sys.stdout)
    if PIPE_CLOSED_EXIT["line"]:
        _err(PIPE_CLOSED_EXIT["line"])
    sys.exit(PIPE_CLOSED_EXIT["code"])


def _escape_unencodable_output() -> None:
    """stdout in its own encoding whatever a file name holds: a name that is not valid UTF-8 (Python keeps its bytes
    as surrogates) or a character outside the encoding is written as a backslash escape, as Python writes it to
    stderr, rather than raising UnicodeEncodeError after the loss was computed (a traceback and no output under
    a strict UTF-8 stdout, PYTHONIOENCODING=utf-8) or writing bytes a UTF-8 reader of the CSV or table refuses."""
    if callable(getattr(sys.stdout, "reconfigure", None)):
        sys.stdout.reconfigure(errors="backslashreplace")


# the output cannot be written (EBADF: the process was started with stdout closed, `>&-`)
OUTPUT_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EBADF)


class ClosedStdout(io.TextIOBase):
    """sys.stdout where the process was started with stdout closed (`lossctl list >&-`): Python leaves it None, and
    every command was an AttributeError traceback and exit 1 (a failed check). A write to it fails as a write to a
    closed descriptor does, so it is the one stdout error line and exit 2; a run that prints nothing (grad -o F)
    still succeeds."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")


def main() -> None:
    """The `lossctl` entry point. Click's own usage errors (an unknown option, a value not among the choices) are
    shown as lossctl's errors are: one line on stderr, exit 2."""
    if sys.stdout is None:
        sys.stdout = ClosedStdout()
    if sys.stderr is None:  # started with stderr closed (2>&-): its lines have nowhere to go, the exit code still says
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (open for the process's life, as sys.stderr is)
    _escape_unencodable_output()
    PIPE_CLOSED_EXIT.update(code=0, line=None)  # a run in-process after another (tests) starts afresh
    args = sys.argv[1:]
    if args and args[0] in LOSS_NAMES:
        command, args, prog = single_loss_command(args[0]), args[1:], f"lossctl {args[0]}"
    elif len(args) > 1 and args[0] == "grad" and args[1] in LOSS_NAMES:  # its own options and --help
        command, args, prog = single_grad_command(args[1]), args[2:], f"lossctl grad {args[1]}"
    else:
        command, prog = root_command(), "lossctl"
        if len(args) > 2 and args[0] == "explain" and args[1] in LOSS_NAMES:
            args = [*args[:2], *_values_attached(single_loss_command(args[1]), args[2:])]
    try:
        code = command.main(args=args, prog_name=prog, standalone_mode=False)
        sys.stdout.flush()  # what Click printed itself (--help, --version) fails here, not at exit
    except BrokenPipeError:
        _pipe_closed()
    except OSError as exc:
        # Click's own writes (--help, --version, completion) to a full disk; lossctl's own output is guarded where
        # it is written (stdout_errors)
        if not _stdout_fails(exc):
            raise
        _err(f"error: stdout: cannot write the output: {exc.strerror or exc}")
        sys.exit(2)
    except SystemExit as exc:
        # Click turns a write to a closed pipe into exit 1 (which means a failed check here), after wrapping
        # stdout in its PacifyFlushWrapper: that is the reader closing early, too.
        if exc.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            _pipe_closed()
        raise
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(130)
    except LossctlError as exc:  # raised outside a command's handles_errors (an eager option's callback)
        _err(f"error: {exc}")
        sys.exit(exc.exit_code)
    except Exception as exc:
        if type(exc).__name__ == "Abort":  # Click's form of Ctrl-C
            _err("interrupted")
            sys.exit(130)
        if not hasattr(exc, "format_message"):  # not one of Click's usage errors
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `lossctl`: the help, as a usage error
            sys.stderr.write(exc.format_message() + "\n")
            sys.exit(2)
        # the help of the command that refused it (`lossctl decompose`), not the root's list of commands
        where = getattr(getattr(exc, "ctx", None), "command_path", None) or prog
        _err(f"error: {click_message(exc)} (see {where} --help)")
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _stdout_fails(exc: OSError) -> bool:
    """Whether an OSError that reached main (Click's own writes: --help, completion) is stdout failing to take
    what was written (a full disk, an I/O error): then what is left in its buffer is dropped (_to_devnull). The
    commands turn their own OSErrors into lossctl
    errors, so none of them gets here."""
    if exc.errno not in OUTPUT_ERRNOS:
        return False
    _to_devnull(sys.stdout)
    return True


def _values_attached(command, args: list[str]) -> list[str]:
    """`--opt VALUE` as `--opt=VALUE` for a loss's options that take a value. explain passes them on unparsed, and
    Click would read a value such as -inf as short options there (-i -n -f: --format, taking the next word)."""
    takes = {o for p in command.params if not getattr(p, "is_flag", False) for o in p.opts if o.startswith("--")}
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--":
            return out + args[i:]
        if args[i] in takes and i + 1 < len(args):  # as Click takes the next word, whatever it is
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def click_message(exc: Exception) -> str:
    """Click's message for a usage error, a value outside the choices said as lossctl says it."""
    param, message = getattr(exc, "param", None), exc.format_message()
    choices = getattr(getattr(param, "type", None), "choices", None)
    got = re.match(r"^'(.*)' is not one of", getattr(exc, "message", ""))
    if param is not None and choices and got:
        return f"{param.opts[0]}: must be one of {', '.join(map(str, choices))}; got {got.group(1)!r}"
    return message
