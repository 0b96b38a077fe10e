"""JSON and CSV/TSV text into numpy arrays, with errors that point at the offending place."""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np

from ..errors import InputError

_MAX_DEPTH = 32  # numpy arrays have at most 64 dims; no loss here takes more than a handful


def decode_utf8(data: bytes, *, option: str, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (bad byte at offset {exc.start})", option=option, source=source) from None


class _Named(float):
    """A NaN or infinity written as such (`NaN`, `-Infinity`): unlike 1e999 it is no overflow."""


def _named_constant(name: str) -> float:
    return _Named(name.replace("Infinity", "inf"))


def parse_json(text: str, *, option: str, source: str):
    if not text.strip():
        raise InputError("the file is empty" if source not in ("literal", "<stdin>") else "empty input",
                         option=option, source=source)
    try:
        import orjson  # optional: several times faster on big files
    except ImportError:
        orjson = None
    if orjson is not None:
        try:
            return orjson.loads(text)
        except ValueError:
            pass  # orjson refuses NaN, Infinity and 1e999, and caps nesting: json says which, and where
    try:
        return json.loads(text, parse_constant=_named_constant)
    except RecursionError:
        raise InputError("JSON nested too deeply to be an array", option=option, source=source) from None
    except ValueError as exc:  # json.JSONDecodeError
        msg = str(exc).splitlines()[0] if str(exc) else "invalid JSON"
        raise InputError(f"invalid JSON ({msg})", option=option, source=source) from None


def json_to_array(obj, *, option: str, source: str) -> np.ndarray:
    """Nested lists of numbers (or one number) to an array; ints stay int64, anything with a float is float64."""
    shape = _json_shape(obj, option=option, source=source)
    flat: list = []
    _flatten(obj, flat)
    if any(isinstance(v, float) for v in flat):
        arr = np.array(flat, dtype=np.float64)
        for i in np.flatnonzero(np.isinf(arr)):
            if not isinstance(flat[i], _Named):
                pos = np.unravel_index(i, shape) if shape else ()
                raise InputError(f"value at index {list(map(int, pos))} is infinite (overflows float64)",
                                 option=option, source=source)
    else:
        try:
            arr = np.array(flat, dtype=np.int64)
        except OverflowError:
            i = next(i for i, v in enumerate(flat) if not -(2**63) <= v < 2**63)
            pos = np.unravel_index(i, shape) if shape else ()
            raise InputError(f"the integer at index {list(map(int, pos))} does not fit in int64",
                             option=option, source=source) from None
    return arr.reshape(shape)


def _json_shape(obj, *, option: str, source: str) -> tuple[int, ...]:
    shape: list[int] = []
    node = obj
    while isinstance(node, list):
        if len(shape) >= _MAX_DEPTH:
            raise InputError(f"JSON nested deeper than {_MAX_DEPTH} levels", option=option, source=source)
        shape.append(len(node))
        if not node:
            break
        node = node[0]
    # Walk everything once to check the shape is rectangular and every leaf a number.
    stack = [(obj, ())]
    while stack:
        node, pos = stack.pop()
        depth = len(pos)
        if depth < len(shape):
            if not isinstance(node, list) or len(node) != shape[depth]:
                got = f"{len(node)} items" if isinstance(node, list) else "a number"
                raise InputError(
                    f"ragged array: at index {list(pos)} expected {shape[depth]} items, found {got}",
                    option=option, source=source,
                )
            stack.extend((child, (*pos, i)) for i, child in enumerate(node))
        elif isinstance(node, bool) or not isinstance(node, (int, float)):
            what = "a list" if isinstance(node, list) else json.dumps(node)[:40]
            raise InputError(f"non-numeric value {what} at index {list(pos)}", option=option, source=source)
    return tuple(shape)


def _flatten(obj, out: list) -> None:
    if isinstance(obj, list):
        stack = [iter(obj)]
        while stack:
            for item in stack[-1]:
                if isinstance(item, list):
                    stack.append(iter(item))
                    break
                out.append(item)
            else:
                stack.pop()
    else:
        out.append(obj)


_INT_TEXT = re.compile(r"^[\s,;\t+\-0-9]*$")


FAST_CSV_CHARS = 1 << 20  # from here pandas' C engine (when installed) pays for its import; see benchmarks/parsers.py


def _pandas_csv(text: str, delimiter: str, skip: int) -> np.ndarray | None:
    """The same parse by pandas' C engine, or None where this parser should look (and say what is wrong)."""
    try:
        import pandas as pd
    except ImportError:
        return None
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, skiprows=skip, engine="c")
    except Exception:  # noqa: BLE001  any complaint: the validating parser below names the row and column
        return None
    if any(dt.kind not in "iuf" for dt in frame.dtypes):
        return None
    arr = frame.to_numpy()
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return None  # a gap (ragged row), nan or an overflow: let the validating parser report or allow it
    arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float64, copy=False)
    return arr[:, 0] if arr.shape[1] == 1 else arr


def parse_csv(text: str, *, option: str, source: str, delimiter: str | None = None) -> np.ndarray:
    """CSV or TSV, with or without a header row. A single column gives a vector."""
    numbered = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    lines = [ln for _, ln in numbered]
    if not lines:
        raise InputError("the file is empty", option=option, source=source)
    if delimiter is None:
        first = lines[0]
        delimiter = "\t" if "\t" in first else ";" if ";" in first and "," not in first else ","
    rows = [ln.split(delimiter) for ln in lines]
    start = 0
    if not any(_is_number(c) for c in rows[0]):
        start = 1  # a header row: a first row mixing numbers and words is data with a bad cell
        if len(rows) == 1:
            raise InputError("holds a header but no data rows", option=option, source=source)
    if len(text) >= FAST_CSV_CHARS:
        fast = _pandas_csv(text, delimiter, numbered[start][0] - 1)
        if fast is not None:
            return fast
    width = len(rows[start])
    body = rows[start:]
    is_int = all(_INT_TEXT.match(ln) for ln in lines[start:])
    dtype = np.int64 if is_int else np.float64
    out = np.empty((len(body), width), dtype=dtype)
    for r, cells in enumerate(body):
        line_no = numbered[r + start][0]  # the line in the file, blank lines counted
        if len(cells) != width:
            raise InputError(f"ragged rows: row {line_no} has {len(cells)} columns, expected {width}",
                             option=option, source=source)
        for c, cell in enumerate(cells):
            try:
                value = dtype(cell.strip()) if dtype is np.float64 else int(cell.strip())
                out[r, c] = value
            except ValueError:
                raise InputError(f"row {line_no}, column {c + 1}: {cell.strip()[:40]!r} is not a number",
                                 option=option, source=source) from None
            except OverflowError:
                raise InputError(f"row {line_no}, column {c + 1}: {cell.strip()[:40]!r} does not fit in int64",
                                 option=option, source=source) from None
            if dtype is np.float64 and math.isinf(value) and "inf" not in cell.lower():
                raise InputError(f"row {line_no}, column {c + 1}: {cell.strip()[:40]!r} overflows float64",
                                 option=option, source=source)
    return out[:, 0] if width == 1 else out


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip())
    except ValueError:
        return False
    return True
