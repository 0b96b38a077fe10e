"""Data -> text for stdout, one module per output format, each dispatched on the data's type (by its name).

`as_plain`, `as_json`, `as_csv`: strings for pipelines; `as_table`: a Rich renderable for people. Every format
handles every kind of data lossctl produces (Result, MultiResult, CheckResult, CheckReport, Catalog,
Explanation); nothing here prints: only the CLI writes to the terminal.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

FORMATS = ("auto", "table", "json", "csv", "plain")
_MODULES = {"plain": "as_plain", "json": "as_json", "csv": "as_csv", "table": "as_table"}

# The columns of --by-class and --worst K, as the table and CSV show them (the JSON rows hold the same keys).
BY_CLASS_COLUMNS = ("class", "count", "loss", "share", "accuracy", "p_target")
WORST_COLUMNS = ("index", "target", "predicted", "p_target", "loss")


def breakdown_header(column: str, loss_label: str) -> str:
    """A breakdown column's header: "loss" says what it is where that is not the loss itself (perplexity)."""
    return loss_label if column == "loss" and loss_label else column


def check_breakdowns(fmt: str, *, by_class: bool, worst: int) -> None:
    """Refuse, before anything is read, a breakdown the format cannot show: plain prints the loss only, and a CSV
    is one table. The table and JSON show both."""
    from ..errors import UsageError

    option = "--by-class" if by_class else "--worst" if worst else None
    if option is None:
        return
    if fmt == "plain":
        raise UsageError("-f plain prints the loss only; use -f csv for the breakdown's rows or -f json for "
                         "everything (without -f, a pipe gets them so)", option=option)
    if fmt == "csv" and by_class and worst:
        raise UsageError("-f csv prints one table: ask for --by-class or --worst, or use -f json for both",
                         option=option)


def render(obj: Any, fmt: str):
    """`obj` in format `fmt` (not auto: the CLI resolves it); a string, Blocks of text, or a Rich renderable for
    tables."""
    return importlib.import_module(f"{__name__}.{_MODULES[fmt]}").render(obj)


BLOCK = 1 << 16  # values per block of text: reduction none's millions of lines are formatted a block at a time


class Blocks:
    """Text made a block of lines at a time, so that millions of values (reduction none) never stand in memory as
    one string beside a list of their lines; the CLI writes each block as it comes. str() joins them."""

    def __init__(self, blocks: Callable[[], Any]):
        self._blocks = blocks  # a function giving an iterator of blocks, each lines joined by newlines

    def __iter__(self):
        return (b for b in self._blocks() if b)

    def __str__(self) -> str:
        return "\n".join(self)

    def __eq__(self, other) -> bool:
        return str(self) == (str(other) if isinstance(other, Blocks) else other)

    __hash__ = None


def value_blocks(values, index: bool, header: str | None = None) -> Blocks:
    """reduction none's values at repr precision, one per line, in row-major order; with `index`, each line led by
    its index, one column per axis (CSV), and `header` first."""

    def blocks():
        import numpy as np

        arr = np.asarray(values)
        flat = arr.reshape(-1)
        if header is not None:
            yield header
        for start in range(0, flat.size, BLOCK):
            texts = [repr(v) for v in flat[start:start + BLOCK].tolist()]
            if index and arr.ndim:
                at = np.unravel_index(np.arange(start, min(start + BLOCK, flat.size)), arr.shape)
                texts = map(",".join, zip(*([str(i) for i in a.tolist()] for a in at), texts, strict=True))
            yield "\n".join(texts)

    return Blocks(blocks)


def number(x: float) -> str:
    """repr precision, the shortest text that reads back as the same float."""
    return repr(float(x))


class ByTypeName:
    """A renderer that hands each object to the handler registered for its type's name, as functools.singledispatch
    does for its class: `render = ByTypeName("plain")`, then `@render.register("Result")` on each handler.

    By name rather than by class so that no renderer imports the classes it renders: a loss run then never builds
    the check, list, explain, grad and calibration result classes, whose creation (dataclasses) costs start-up time.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.handlers: dict[str, Callable[[Any], Any]] = {}

    def register(self, type_name: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
        def add(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
            self.handlers[type_name] = handler
            return handler

        return add

    def __call__(self, obj: Any) -> Any:
        for cls in type(obj).__mro__:  # a subclass renders as its nearest rendered base
            handler = self.handlers.get(cls.__name__)
            if handler is not None:
                return handler(obj)
        raise TypeError(f"no {self.fmt} form for {type(obj).__name__}")
