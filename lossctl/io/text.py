"""JSON and text tables (CSV, TSV, whitespace) into numpy arrays, with errors that point at the offending place."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable

import numpy as np

from ..errors import InputError, UsageError

_MAX_DEPTH = 32  # numpy arrays have at most 64 dims; no loss here takes more than a handful


def decode_utf8(data: bytes, *, option: str, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # a UTF-16 byte-order mark: Excel's "Unicode Text" saves so
            raise InputError("UTF-16 text: save it as UTF-8", option=option, source=source) from None
        raise InputError(f"not UTF-8 text (bad byte at offset {exc.start})", option=option, source=source) from None


class _Named(float):
    """A NaN or infinity written as such (`NaN`, `-Infinity`): unlike 1e999 it is no overflow."""


def _named_constant(name: str) -> float:
    return _Named(name.replace("Infinity", "inf"))


# An inline literal is JSON, as a .json file is: Python's spellings (nan, inf, +1, .5) are not JSON numbers.
LITERAL_FORM = ("; an inline literal is JSON: a number (0.5, -2, 1e-3, NaN, Infinity, -Infinity) or nested lists of "
                "them ([[2.0, 1.0], [0.1, 3.0]])")
FAST_JSON_CHARS = 1 << 16  # from here orjson (when installed) pays for its import; see benchmarks/parsers.py


def parse_json(text: str, *, option: str, source: str):
    if not text.strip():
        raise InputError("the file is empty" if source not in ("literal", "<stdin>") else "empty input",
                         option=option, source=source)
    import json  # here, not at the top: a run on binary files never reads JSON

    orjson = None
    if len(text) >= FAST_JSON_CHARS:  # small text: the standard library's json is faster to import
        try:
            import orjson  # optional: several times faster on big files
        except ImportError:
            pass
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
        raise InputError(f"invalid JSON ({msg}){LITERAL_FORM if source == 'literal' else ''}", option=option,
                         source=source) from None


def json_to_array(obj, *, option: str, source: str) -> np.ndarray:
    """Nested lists of numbers (or one number) to an array; ints stay int64, anything with a float is float64."""
    shape = _json_shape(obj, option=option, source=source)
    flat: list = []
    _flatten(obj, flat)
    if any(isinstance(v, float) for v in flat):
        arr = np.array(flat, dtype=np.float64)
        for i in np.flatnonzero(np.isinf(arr)):
            if not isinstance(flat[i], _Named):
                raise InputError(f"value{_at(i, shape)} is infinite (overflows float64)",
                                 option=option, source=source)
    else:
        try:
            arr = np.array(flat, dtype=np.int64)
        except OverflowError:
            i = next(i for i, v in enumerate(flat) if not -(2**63) <= v < 2**63)
            raise InputError(f"the integer{_at(i, shape)} does not fit in int64",
                             option=option, source=source) from None
    return arr.reshape(shape)


def _at(flat_index: int, shape: tuple[int, ...]) -> str:
    """' at index [i, j]' of a flat position; nothing for a single number, which has no index."""
    return f" at index {[int(j) for j in np.unravel_index(flat_index, shape)]}" if shape else ""


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
            import json

            what = "a list" if isinstance(node, list) else json.dumps(node)[:40]
            where = f" at index {list(pos)}" if pos else ""
            raise InputError(f"non-numeric value {what}{where}", option=option, source=source)
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


_INT_TEXT = re.compile(r'^[\s,;\t+\-0-9"]*$')
_INT_CELL = re.compile(r"[+-]?[0-9]+")

HEADER_CHOICES = ("auto", "yes", "no")
HEADER_PEEK_ROWS = 1000  # rows below a 0,1,...,C-1 first row that decide whether it is pandas' header
WHITESPACE = " "  # as a delimiter: runs of spaces and tabs, as np.savetxt and shell tools write tables
# Text-table extensions and their delimiter; None: chosen from the first data line (sniff_delimiter).
TABLE_DELIMITERS: dict[str, str | None] = {".csv": ",", ".tsv": "\t", ".txt": None, ".dat": None}


def check_header(header: str) -> None:
    if header not in HEADER_CHOICES:
        raise UsageError(f"must be one of {', '.join(HEADER_CHOICES)}; got {header!r}", option="--header")


def table_lines(lines: Iterable[str], limit: int | None = None) -> list[tuple[int, str]]:
    """(line number, text before any `#` comment) of each line holding data; at most `limit` of them."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        data = line.split("#", 1)[0] if "#" in line else line
        if data.strip():
            out.append((number, data))
            if limit is not None and len(out) >= limit:
                break
    return out


def sniff_delimiter(lines: list[str], given: str | None = None) -> str:
    """The delimiter of a table whose first data lines are `lines` (one or two): `given` (its extension's) where
    there is one, else tab, semicolon, comma or whitespace, decided on the first. A .csv's comma gives way to a
    semicolon where both lines hold one outside quotes (no number holds one), as pandas' to_csv(sep=';') and
    spreadsheets set to a decimal comma write CSV; a header alone holding one (a column 'x;y') does not count."""
    line = lines[0] if lines else ""
    if given is not None:
        semicolons = all(";" in re.sub(r'"[^"]*"', "", ln) for ln in lines[:2]) and bool(lines)
        return ";" if given == "," and semicolons else given
    if "\t" in line and all(len(part.split()) <= 1 for part in line.split("\t")):
        return "\t"
    if ";" in line and "," not in line:
        return ";"
    return "," if "," in line else WHITESPACE


def split_cells(line: str, delimiter: str) -> list[str]:
    """The cells of one line, stripped, each without one pair of surrounding double quotes (QUOTE_ALL files)."""
    cells = [c.strip() for c in (line.split() if delimiter == WHITESPACE else line.split(delimiter))]
    return [c[1:-1] if len(c) >= 2 and c[0] == c[-1] == '"' else c for c in cells]


def skips_header(rows: list[list[str]], header: str) -> bool:
    """Whether the first of `rows` (split cells, the first data lines of a table) is a header; see parse_table."""
    if header != "auto":
        return header == "yes"
    first = rows[0]
    if not any(_is_number(c) for c in first) or index_column(rows):
        return True
    return _is_pandas_header(first, rows[1:1 + HEADER_PEEK_ROWS])


def index_column(rows: list[list[str]], header: str = "auto") -> bool:
    """Whether a table whose first rows have the cells `rows` starts with a header above an index column, as
    pandas' DataFrame.to_csv and R's write.csv write one by default: the first cell is empty, the others names, or
    pandas' default 0,1,...,C-1 above an index of integers or names (under `header` auto a fraction there is data:
    the first row then lacks its first value; under yes the first row is a header, so its empty cell heads an
    index of any values). The index is no data: read as a column, it would be a class's logits."""
    first, rest = rows[0], rows[0][1:]
    if len(first) < 2 or first[0] != "" or header == "no":
        return False
    if header == "yes":
        return True
    below = rows[1][0] if len(rows) > 1 and rows[1] else "0"
    return not any(map(_is_number, rest)) or (rest == [str(i) for i in range(len(rest))]
                                              and (bool(_INT_CELL.fullmatch(below)) or not _is_number(below)))


def _is_pandas_header(first: list[str], below: list[list[str]]) -> bool:
    if not below or first != [str(i) for i in range(len(first))]:
        return False
    largest = None
    for cells in below:
        for cell in cells:
            if _INT_CELL.fullmatch(cell):
                largest = int(cell) if largest is None else max(largest, int(cell))
            elif _is_number(cell):
                return True  # a float table under it: pandas' header above a float frame
    # Integers only: the row is a header when its C-1 is larger than every value below (a 0/1 one-hot or
    # multi-label frame of 3+ columns); where the values reach C-1 the row could be data, and stays data.
    return len(first) >= 2 and largest is not None and largest < len(first) - 1


FAST_CSV_CHARS = 1 << 20  # from here pandas' C engine (when installed) pays for its import; see benchmarks/parsers.py


def pandas_sep(delimiter: str) -> str:
    return r"\s+" if delimiter == WHITESPACE else delimiter


def _pandas_csv(text: str, delimiter: str, skip: int, drop: int = 0) -> np.ndarray | None:
    """The same parse by pandas' C engine, or None where this parser should look (and say what is wrong); the
    first `drop` columns (an index) left out."""
    try:
        import pandas as pd
    except ImportError:
        return None
    try:
        frame = pd.read_csv(io.StringIO(text), sep=pandas_sep(delimiter), header=None, skiprows=skip, engine="c",
                            comment="#")
    except Exception:  # noqa: BLE001  any complaint: the validating parser below names the row and column
        return None
    frame = frame.iloc[:, drop:]  # an index of names is no number, and no data
    if any(dt.kind not in "iuf" for dt in frame.dtypes):
        return None
    arr = frame.to_numpy()
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return None  # a gap (ragged row), nan or an overflow: let the validating parser report or allow it
    if may_pass_int64(arr):
        return None  # an integer past int64 or a float that big: the validating parser refuses one, reads the other
    arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float64, copy=False)
    return arr[:, 0] if arr.shape[1] == 1 else arr


def may_pass_int64(arr: np.ndarray) -> bool:
    """Whether pandas' parse may hold an integer cell past int64, which pandas reads as uint64, or as float64 where
    its internal chunks of one column disagree (int64 in one, uint64 in another): the cell's text decides."""
    if arr.dtype.kind == "u":
        return True
    return arr.dtype.kind == "f" and arr.size > 0 and bool(arr.max() >= 2.0**63 or arr.min() < -(2.0**63))


def parse_csv(text: str, *, option: str, source: str, delimiter: str | None = None,
              header: str = "auto") -> np.ndarray:
    """CSV, TSV or whitespace-delimited text, with or without a header row, as an array; see parse_table."""
    return parse_table(text, option=option, source=source, delimiter=delimiter, header=header)[0]


def parse_table(text: str, *, option: str, source: str, delimiter: str | None = None,
                header: str = "auto") -> tuple[np.ndarray, bool]:
    """A text table as (array, whether a header row was skipped). A single column gives a vector.

    `delimiter` is ",", ";", a tab, WHITESPACE (runs of spaces and tabs) or None to choose from the first data
    line. Cells may be quoted ("0.5", as csv.QUOTE_ALL writes). `#` starts a comment, to the end of its line,
    as np.loadtxt and pandas' comment="#" read it: no number holds a `#`, so this costs no table anything.

    `header` is "yes" (the first data line is a header), "no" (it is data) or "auto", where it is a header when
    - none of its cells is a number (`a,b,c`), or
    - it heads an index column (`,a,b` or `,0,1`: see index_column), which is then left out, or
    - it reads exactly 0,1,...,C-1, pandas' default header (`0` alone for a Series), and the rows below it
      (the first HEADER_PEEK_ROWS) show it is not data: some cell is a number but not an integer (pandas'
      float frames, which write 1.0 where an integer frame writes 1), or every value is an integer below C-1
      while C >= 2 (a 0/1 one-hot or multi-label frame of three or more columns).
    Under "auto" an integer table whose values reach C-1 keeps that row as data: it could be one (a
    two-column one-hot row 0,1; class 0 at the top of a target column), so a pandas integer Series or
    two-column one-hot frame needs header="yes".
    """
    check_header(header)
    numbered = table_lines(text.splitlines())
    if not numbered:
        raise InputError("the file is empty" if not text.strip() else "holds only comments, no data",
                         option=option, source=source)
    delimiter = sniff_delimiter([ln for _, ln in numbered[:2]], delimiter)
    rows = [split_cells(ln, delimiter) for _, ln in numbered]
    start = int(skips_header(rows, header))
    if start == len(rows):
        raise InputError("holds a header but no data rows", option=option, source=source)
    drop = int(bool(start) and index_column(rows[:2], header))  # pandas' index: the first column is left out
    if len(text) >= FAST_CSV_CHARS:
        fast = _pandas_csv(text, delimiter, numbered[start][0] - 1, drop)
        if fast is not None:
            return fast, bool(start)
    is_int = all(_INT_TEXT.match(ln) for _, ln in numbered[start:])
    out = _fill(rows[start:], [n for n, _ in numbered[start:]], np.int64 if is_int else np.float64,
                option=option, source=source, first_column=drop)
    return (out[:, 0] if out.shape[1] == 1 else out), bool(start)


def _fill(rows: list[list[str]], line_numbers: list[int], dtype, *, option: str, source: str,
          first_column: int = 0) -> np.ndarray:
    """Split cells into a (rows, columns) array from the column `first_column` on (an index before it is left
    out), naming the file's line and the column of any bad cell."""
    width = len(rows[0])
    out = np.empty((len(rows), width - first_column), dtype=dtype)
    for r, (cells, line_no) in enumerate(zip(rows, line_numbers, strict=True)):
        if len(cells) != width:
            raise InputError(f"ragged rows: row {line_no} has {len(cells)} columns, expected {width}",
                             option=option, source=source)
        for c in range(first_column, width):
            cell = cells[c]
            try:
                if "_" in cell:  # Python reads 1_0 as 10; numpy's and pandas' parsers, rightly, as no number
                    raise ValueError(cell)
                value = dtype(cell) if dtype is np.float64 else int(cell)
                out[r, c - first_column] = value
            except ValueError:
                raise InputError(f"row {line_no}, column {c + 1}: {cell[:40]!r} is not a number{comma_hint(cell)}",
                                 option=option, source=source) from None
            except OverflowError:
                raise InputError(f"row {line_no}, column {c + 1}: {cell[:40]!r} does not fit in int64",
                                 option=option, source=source) from None
            if dtype is np.float64 and math.isinf(value) and "inf" not in cell.lower():
                raise InputError(f"row {line_no}, column {c + 1}: {cell[:40]!r} overflows float64",
                                 option=option, source=source)
    return out


def comma_hint(cell: str) -> str:
    """A hint where a cell is a number written with a decimal comma (1,5)."""
    if "," in cell and _is_number(cell.replace(",", ".", 1)):
        return " (a decimal comma? numbers are read with '.')"
    return ""


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip())
    except ValueError:
        return False
    return True
