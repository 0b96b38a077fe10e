"""JSON Lines (.jsonl, .ndjson): one record per line, read a chunk of lines at a time in bounded memory.

A line is either a JSON object (`FILE.jsonl:KEY` takes one field of every line; `--from` takes every field of
the first line that holds numbers) or a bare number or list of numbers. A field of numbers gives (N,), of lists
(N, C). Errors name the line, counted from 1 as an editor counts, blank lines included.
"""

from __future__ import annotations

import io
import json
from itertools import chain

import numpy as np

from ..errors import InputError
from .common import listing, one_name
from .npy import STDIN, STDIN_KEYS
from .remote import file_size, open_binary, reading
from .text import FAST_JSON_CHARS

EXTS = (".jsonl", ".ndjson")
CHUNK_LINES = 1 << 14  # lines parsed per chunk when a whole file is read
MAX_LINE = 1 << 26  # a record of a few numbers is far shorter; longer lines are refused, not buffered
NUMBER = (int, float)  # exact types: json gives bool for true/false, which is no number here


def _fast_loads(size: int):
    """orjson's loads where it is installed (the `fast` extra): a line of numbers parses about 3x faster. Its import
    (about 14 ms) is paid only for a file of `size` bytes big enough to win it back (text.FAST_JSON_CHARS, as JSON
    files decide), or of a size the server does not say (0); once imported, it parses any file."""
    global _FAST
    if _FAST is None:
        if 0 < size < FAST_JSON_CHARS:
            return None
        try:
            from orjson import loads
        except ImportError:
            loads = False
        _FAST = loads
    return _FAST


_FAST = None  # orjson.loads once looked up; False where it is not installed


def _past_int64(a: np.ndarray) -> bool:
    """Whether a float column holds a value as large as an integer past int64 (|x| >= 2^63, finite)."""
    return a.dtype.kind == "f" and bool((np.abs(a[np.isfinite(a)]) >= 2.0**63).any()) if a.size else False


def _loads(no: int, raw: bytes, *, option: str, source: str, fast=None):
    """One line's value. `fast`: orjson.loads, tried first; it refuses what json reads (NaN, Infinity, a byte-order
    mark) and what is no JSON, so the standard library then reads the line or names the error."""
    if fast:
        try:
            return fast(raw)
        except ValueError:
            pass
    try:
        return json.loads(raw.decode("utf-8-sig").rstrip())
    except UnicodeDecodeError as exc:
        raise InputError(f"line {no}: not UTF-8 text (bad byte at offset {exc.start})", option=option,
                         source=source) from None
    except RecursionError:
        raise InputError(f"line {no}: JSON nested too deeply", option=option, source=source) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"line {no}: not JSON ({exc.msg} at column {exc.colno})", option=option,
                         source=source) from None


def _holds_numbers(v) -> bool:
    return type(v) in NUMBER or (type(v) is list and all(type(x) in NUMBER for x in v))


def _describe(v) -> str:
    return json.dumps(v)[:40]


def _layout(no: int, obj, key: str | None, bundle: bool, *, option: str, source: str) -> list[str | None]:
    """The keys to read, decided by the first line; None stands for a bare value per line."""
    if isinstance(obj, dict):
        if bundle:
            keys = [k for k, v in obj.items() if _holds_numbers(v)]
            if not keys:
                raise InputError(f"line {no} holds no numbers or lists of numbers (its keys: "
                                 f"{listing(obj) or 'none'})", option=option, source=source)
            return keys
        if key is None and source == STDIN and len(obj) > 1:
            raise InputError(f"holds several keys ({listing(obj)}); {STDIN_KEYS}", option=option, source=source)
        return [one_name(list(obj), key, what="key", hint="FILE.jsonl:KEY", option=option, source=source)]
    if bundle:
        raise InputError(f"--from needs a JSON object on every line; line {no} holds {_describe(obj)}",
                         option=option, source=source)
    if key is not None:
        raise InputError(f"line {no} is not a JSON object, so it has no key {key!r}", option=option, source=source)
    return [None]


class JsonlRows:
    """Rows of a JSON Lines file, parsed a chunk of lines at a time: one array per key read. `data`: the bytes
    of standard input (`path` then names it), read from memory."""

    def __init__(self, path: str, option: str, key: str | None, step: int = CHUNK_LINES, *, bundle: bool = False,
                 data: bytes | None = None):
        self.path, self.option = path, option
        self.options: dict[str | None, str] = {}  # the option each key is read for, where several share the file
        # Standard input's bytes, or a local file or a URL read front to back (closed by close()); a size of 0: a
        # server that does not say.
        self.total_bytes = len(data) if data is not None else file_size(path, option) or 0
        self._fp = io.BytesIO(data) if data is not None else open_binary(path, option)
        self._line = 0
        self._widths: dict[str | None, tuple[int | None, int]] = {}  # key -> (C or None, the line that set it)
        try:
            self._head = self._lines(1)
            if not self._head:
                raise InputError("the file is empty" if not self.total_bytes else "holds only blank lines",
                                 option=option, source=path)
            no, raw = self._head[0]
            first = _loads(no, raw, option=option, source=path)
            self.keys = _layout(no, first, key, bundle, option=option, source=path)
        except BaseException:
            self._fp.close()
            raise
        self.fields = list(first) if isinstance(first, dict) else []  # the first record's keys (SharedRows)
        value = first if self.keys[0] is None else first.get(self.keys[0])
        self.dtype = np.dtype(np.float64 if float in map(type, chain([value], value if type(value) is list
                                                                     else [])) else np.int64)

    def _lines(self, n: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        readline = self._fp.readline
        # a remote file system's failure is one line naming the URL; entered once a chunk, not once a line
        with reading(self.path, self.option):
            while len(out) < n:
                raw = readline(MAX_LINE + 1)
                if not raw:
                    break
                self._line += 1
                if len(raw) > MAX_LINE:
                    raise InputError(f"line {self._line} is longer than {MAX_LINE} bytes", option=self.option,
                                     source=self.path)
                if raw.strip():
                    out.append((self._line, raw))
        return out

    def read_arrays(self, n: int) -> dict[str | None, np.ndarray]:
        """The next `n` records (fewer at the end of the file), one array per key."""
        lines, self._head = self._head + self._lines(n - len(self._head)), []
        fast = _fast_loads(self.total_bytes)
        columns = self._parse(lines, fast)
        if fast and any(_past_int64(a) for a in columns.values()):
            # orjson reads an integer past int64 as a float, where json's exact int is refused, naming its line
            columns = self._parse(lines, None)
        return columns

    def _parse(self, lines: list[tuple[int, bytes]], fast) -> dict[str | None, np.ndarray]:
        where = {"option": self.option, "source": self.path}
        values: dict[str | None, list] = {k: [] for k in self.keys}
        for no, raw in lines:
            obj = _loads(no, raw, **where, fast=fast)
            for k, out in values.items():
                if k is None:
                    out.append(obj)
                elif not isinstance(obj, dict):
                    raise InputError(f"line {no}: not a JSON object but {_describe(obj)}", **where)
                elif k not in obj:
                    raise InputError(f"line {no}: no key {k!r} (it has: {listing(obj) or 'none'})",
                                     option=self.options.get(k, self.option), source=self.path)
                else:
                    out.append(obj[k])
        return {k: self._column(vals, lines, k) for k, vals in values.items()}

    def read(self, n: int) -> np.ndarray:
        return self.read_arrays(n)[self.keys[0]]

    def _column(self, vals: list, lines: list[tuple[int, bytes]], key: str | None) -> np.ndarray:
        if not vals:
            width = self._widths.get(key, (None, 0))[0]
            return np.empty((0,) if width is None else (0, width), self.dtype)
        if key not in self._widths:
            self._widths[key] = (len(vals[0]) if type(vals[0]) is list else None, lines[0][0])
        width, set_by = self._widths[key]
        name = "" if key is None else f", key {key!r}"
        option = self.options.get(key, self.option)
        if width is None:
            flat, kinds = vals, set(map(type, vals))
        else:
            for (no, _), v in zip(lines, vals, strict=True):
                if type(v) is not list or len(v) != width:
                    got = f"a list of {len(v)}" if type(v) is list else _describe(v)
                    raise InputError(f"line {no}{name}: {got} where line {set_by} has a list of {width} (ragged)",
                                     option=option, source=self.path)
            flat = list(chain.from_iterable(vals))
            kinds = set(map(type, flat))
        if not kinds <= set(NUMBER):
            self._refuse_non_number(vals, lines, name, option, rows=width is not None)
        return self._to_array(flat, (len(vals),) if width is None else (len(vals), width), float in kinds, lines,
                              name, option)

    def _refuse_non_number(self, vals: list, lines: list[tuple[int, bytes]], name: str, option: str, *,
                           rows: bool):
        for (no, _), v in zip(lines, vals, strict=True):
            for x in (v if rows else [v]):
                if type(x) not in NUMBER:
                    raise InputError(f"line {no}{name}: {_describe(x)} is not a number", option=option,
                                     source=self.path)

    def _to_array(self, flat: list, shape: tuple[int, ...], floats: bool, lines: list[tuple[int, bytes]],
                  name: str, option: str) -> np.ndarray:
        per_row = shape[1] if len(shape) > 1 else 1
        try:
            arr = np.array(flat, dtype=np.float64 if floats else np.int64).reshape(shape)
        except OverflowError:
            i = next(i for i, v in enumerate(flat) if not -(2**63) <= v < 2**63)
            raise InputError(f"line {lines[i // per_row][0]}{name}: {flat[i]} does not fit in int64",
                             option=option, source=self.path) from None
        if floats and np.isinf(arr).any():
            for r in np.unique(np.flatnonzero(np.isinf(arr.reshape(len(lines), -1)).any(axis=1))):
                no, raw = lines[r]
                if b"Infinity" not in raw:  # written as a number too large (1e999), not as Infinity
                    raise InputError(f"line {no}{name}: a number overflows float64", option=option,
                                     source=self.path)
        return arr

    def position(self) -> int:
        return self._fp.tell()

    def close(self) -> None:
        self._fp.close()


def _read_all(path: str, option: str, key: str | None, bundle: bool, data: bytes | None = None
              ) -> dict[str | None, np.ndarray]:
    rows = JsonlRows(path, option, key, bundle=bundle, data=data)
    try:
        parts: list[dict[str | None, np.ndarray]] = []
        while True:
            chunk = rows.read_arrays(CHUNK_LINES)
            if not len(next(iter(chunk.values()))):
                break
            parts.append(chunk)
    finally:
        rows.close()
    # An integer chunk beside a float chunk becomes float64, as one JSON array with a float in it would.
    return {k: np.concatenate([p[k] for p in parts]) for k in rows.keys}


def read_key(path: str, key: str | None, option: str, data: bytes | None = None) -> np.ndarray:
    """`FILE.jsonl[:KEY]`: that field of every line (or the bare value of every line); `data`: standard input's
    bytes, `path` its name."""
    (arr,) = _read_all(path, option, key, False, data).values()
    return arr


class SharedRows:
    """Several keys of one JSON Lines file streamed together (--logits F.jsonl:logits --target F.jsonl:target):
    each line is parsed once for all of them, where a reader per key parsed every line once per key. `views`
    gives each key a reader of its own rows; they are read in turn, the same number of rows each."""

    def __init__(self, path: str, keyed: dict[str, str | None]):
        options = list(keyed)
        self.rows = JsonlRows(path, options[0], keyed[options[0]], 1)
        try:
            self.rows.keys = [one_name(self.rows.fields, key, what="key", hint="FILE.jsonl:KEY", option=option,
                                       source=path) for option, key in keyed.items()]
        except BaseException:
            self.rows.close()
            raise
        self.rows.options = dict(zip(self.rows.keys, options, strict=True))
        self._ready: dict[str | None, np.ndarray] = {}

    def take(self, key: str | None, n: int) -> np.ndarray:
        if key not in self._ready:
            self._ready = self.rows.read_arrays(n)
        return self._ready.pop(key)

    def views(self) -> list[KeyRows]:
        return [KeyRows(self, key, option) for key, option in self.rows.options.items()]


class KeyRows:
    """One key's rows of a SharedRows file, read as a JsonlRows is."""

    def __init__(self, shared: SharedRows, key: str | None, option: str):
        self.shared, self.key, self.option, self.path = shared, key, option, shared.rows.path
        self.total_bytes = shared.rows.total_bytes

    def read(self, n: int) -> np.ndarray:
        return self.shared.take(self.key, n)

    def position(self) -> int:
        return self.shared.rows.position()

    def close(self) -> None:
        self.shared.rows.close()


def key_names(path: str) -> list[str]:
    """The fields `--from FILE` reads (read_keys' choice), from the first line holding data alone."""
    rows = JsonlRows(path, "--from", None, 1, bundle=True)
    rows.close()
    return [str(k) for k in rows.keys]


def read_keys(path: str, data: bytes | None = None) -> dict[str, np.ndarray]:
    """`--from FILE.jsonl`: each field of the first line that holds numbers, read from every line."""
    return {str(k): v for k, v in _read_all(path, "--from", None, True, data).items()}


def is_json_lines(text: str) -> bool:
    """Whether text that is no one JSON value is JSON Lines: its first line holding data is a JSON value by itself,
    and more lines follow."""
    first, _, rest = text.strip().partition("\n")
    if not rest.strip():
        return False
    try:
        json.loads(first)
    except (ValueError, RecursionError):
        return False
    return True
