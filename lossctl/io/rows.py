"""Row readers for streaming: a big .npy file or text table read a chunk of rows at a time, in bounded memory.

An .npy reader fills a ring of reused buffers in turn with `readinto` (no memory map, whose touched pages would
count toward RSS). A text-table reader parses chunks with pandas' C engine when pandas is installed.
"""

from __future__ import annotations

import codecs
import io
import os
import re
from typing import Any, BinaryIO

import numpy as np

from ..errors import InputError
from . import READERS, split_key
from .npy import NpyHeader, read_header
from .remote import file_size, open_binary, reading
from .text import (
    HEADER_PEEK_ROWS,
    TABLE_DELIMITERS,
    check_header,
    comma_hint,
    index_column,
    may_pass_int64,
    pandas_sep,
    skips_header,
    sniff_delimiter,
    split_cells,
    table_lines,
)


class NpyRows:
    """Rows of a C-ordered .npy file. `read(n)` returns a view into one of `buffers` buffers, used in turn: a
    chunk stays valid until `buffers - 1` more have been read.

    `fp`: the file (local, or remote through fsspec) positioned just past the header, read front to back only;
    closed by close()."""

    def __init__(self, fp: BinaryIO, path: str, option: str, header: NpyHeader, step: int, buffers: int = 2):
        self.path, self.option, self.header = path, option, header
        self.dtype = header.dtype
        self.rows = header.shape[0]
        self.total_bytes = header.nbytes
        self._fp = fp
        # no more rows than the file has: a file of no rows allocates nothing, however wide its header says a row is
        self._buffers = [np.empty((min(step, self.rows), *header.shape[1:]), header.dtype)
                         for _ in range(max(buffers, 2))]
        self._slot = 0
        self._done = 0

    def read(self, n: int) -> np.ndarray:
        n = min(n, self.rows - self._done)
        view = self._buffers[self._slot][:n]
        self._slot = (self._slot + 1) % len(self._buffers)
        with reading(self.path, self.option):
            got = self._fp.readinto(memoryview(view).cast("B")) if n else 0
        if got != view.nbytes:
            raise InputError(f"truncated at row {self._done}: the file ended early", option=self.option,
                             source=self.path)
        self._done += n
        return view

    def position(self) -> int:
        return self._done * (self.total_bytes // max(self.rows, 1))

    @property
    def random_access(self) -> bool:
        """A local file: any rows can be read at their offset, from any thread (os.preadv releases the GIL)."""
        try:
            self._fp.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return False
        return hasattr(os, "preadv")

    def read_at(self, start: int, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows [start, start + n) read at their offset into `out` (or a new array), without moving the file."""
        n = max(0, min(n, self.rows - start))
        view = (out if out is not None else np.empty((n, *self.header.shape[1:]), self.dtype))[:n]
        row_bytes = self.total_bytes // max(self.rows, 1)
        got = os.preadv(self._fp.fileno(), [memoryview(view).cast("B")], self.header.offset + start * row_bytes) \
            if n else 0
        if got != view.nbytes:
            raise InputError(f"truncated at row {start}: the file ended early", option=self.option, source=self.path)
        return view

    def close(self) -> None:
        self._fp.close()


class CsvRows:
    """Rows of a CSV, TSV or whitespace-delimited file, parsed a chunk at a time by pandas (an optional dependency).

    Quoted cells, `#` comments, the delimiter (None: chosen from the first data line) and the header rule
    (`header`: "auto", "yes", "no") are text.parse_table's; the attribute `header` says whether a header row
    was skipped. Error line numbers count from the first data
    row, so a comment or blank line between data rows shifts them.
    """

    def __init__(self, path: str, option: str, delimiter: str | None, header: str = "auto"):
        import pandas as pd

        check_header(header)
        self.path, self.option = path, option
        self.total_bytes = file_size(path, option)
        with io.TextIOWrapper(open_binary(path, option), encoding="utf-8-sig", errors="replace") as fp:
            head = table_lines(fp, limit=HEADER_PEEK_ROWS + 1)  # as text.parse_table decides, on the same rows
        if not head:
            raise InputError("the file is empty", option=option, source=path)
        delimiter = sniff_delimiter([ln for _, ln in head[:2]], delimiter)
        rows = [split_cells(ln, delimiter) for _, ln in head]
        self.header = skips_header(rows, header)
        self._index = int(self.header and index_column(rows[:2], header))  # pandas' index column: left out as data
        if self.header and len(head) == 1:
            raise InputError("holds a header but no data rows", option=option, source=path)
        self._first_line = head[int(self.header)][0]
        self._delimiter, self._width = delimiter, len(split_cells(head[int(self.header)][1], delimiter))
        self._fp = open_binary(path, option)  # closed by close()
        try:
            self._reader = pd.read_csv(self._fp, sep=pandas_sep(delimiter), header=None,
                                       skiprows=self._first_line - 1, engine="c", chunksize=1 << 14,
                                       encoding="utf-8-sig", comment="#")
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            self._fp.close()
            raise self._parse_error(exc) from None
        self._pending: np.ndarray | None = None
        self._done = 0
        self._parsed = 0  # rows in the chunks pandas has handed over: where the next chunk's rows start
        self._integers = True  # as far as the chunks show, a table of integers (see _check_int64)
        self.dtype = None

    def read(self, n: int) -> np.ndarray:
        parts, have = [], 0
        while have < n:
            if self._pending is None:
                self._pending = self._next_chunk()
                if self._pending is None:
                    break
            take = self._pending[: n - have]
            self._pending = self._pending[n - have:] if len(self._pending) > n - have else None
            parts.append(take)
            have += len(take)
        if not parts:
            return np.empty((0,))
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._done += len(out)
        return out

    def _next_chunk(self) -> np.ndarray | None:
        import pandas as pd

        try:
            frame = self._reader.get_chunk()
        except StopIteration:
            return None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise self._parse_error(exc) from None
        frame = frame.iloc[:, self._index:]  # the labels stay the file's column numbers, from 0
        bad = [c for c in frame.columns if frame[c].dtype.kind not in "iuf"]
        if bad:
            raise self._bad_cell(frame[bad[0]], int(bad[0]))
        arr = frame.to_numpy()
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            r, c = (int(i) for i in np.argwhere(np.isnan(arr))[0])
            self._check_gap(r, c + self._index)
        if may_pass_int64(arr):
            self._check_int64(arr)
        self._parsed += len(arr)
        if self.dtype is None:
            self.dtype = np.dtype(np.float64) if arr.dtype.kind == "f" else arr.dtype
        return arr[:, 0] if arr.shape[1] == 1 else arr

    def _bad_cell(self, column, c: int) -> InputError:
        """The first cell of a column pandas could not read as numbers: a word, or an integer past int64."""
        import pandas as pd

        wrong = (pd.to_numeric(column, errors="coerce").isna() & column.notna()).to_numpy()
        if wrong.any():
            line, cells = self._data_line(self._parsed + int(np.flatnonzero(wrong)[0]))
            return InputError(f"row {line}, column {c + 1}: {cells[c][:40]!r} is not a number{comma_hint(cells[c])}",
                              option=self.option, source=self.path)
        big = next((i for i, v in enumerate(column.astype(str)) if _past_int64(v)), 0)
        line, cells = self._data_line(self._parsed + big)
        return InputError(f"row {line}, column {c + 1}: {cells[c][:40]!r} does not fit in int64", option=self.option,
                          source=self.path)

    def _check_int64(self, arr: np.ndarray) -> None:
        """Refuses an integer cell past int64 where the chunk holds whole numbers only, as a whole read refuses one in
        a table of integers; a cell written as a float (1e19), or among fractions, is a number. Asked until the
        file shows it is no table of integers."""
        if not self._integers:
            return
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.trunc(arr)).all()):
            self._integers = False
            return
        r, c = (int(i) for i in np.argwhere(np.abs(arr) >= 2**63)[0])
        line, cells = self._data_line(self._parsed + r)
        cell = cells[c + self._index]
        if _past_int64(cell):
            raise InputError(f"row {line}, column {c + self._index + 1}: {cell[:40]!r} does not fit in int64",
                             option=self.option, source=self.path)
        self._integers = False

    def _check_gap(self, r: int, c: int) -> None:
        """pandas reads an empty cell, a short row, NA or null and a written `nan` alike as NaN: the others are
        refused as a whole read refuses them; a written nan is returned, for the finiteness check to name."""
        line, cells = self._data_line(self._parsed + r)
        if len(cells) != self._width:
            raise InputError(f"ragged rows: row {line} has {len(cells)} columns, expected {self._width}",
                             option=self.option, source=self.path)
        try:  # a written nan reads as a number; '', NA and null, NaN to pandas too, are refused as a whole read does
            float(cells[c])
        except ValueError:
            raise InputError(f"row {line}, column {c + 1}: {cells[c][:40]!r} is not a number", option=self.option,
                             source=self.path) from None

    def _parse_error(self, exc: Exception) -> InputError:
        """pandas' complaint in the words a whole read uses: a long row is a ragged row, a bad byte is named by
        its offset in the file (pandas' own offset counts within its buffer)."""
        if isinstance(exc, UnicodeDecodeError):
            return InputError(f"not UTF-8 text (bad byte at offset {self._bad_byte()})", option=self.option,
                              source=self.path)
        text = str(exc).strip().splitlines()
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text[-1] if text else "")
        if found:
            width, line, got = found.groups()
            return InputError(f"ragged rows: row {line} has {got} columns, expected {width}", option=self.option,
                              source=self.path)
        return InputError(f"cannot parse ({text[-1][:160] if text else type(exc).__name__})", option=self.option,
                          source=self.path)

    def _bad_byte(self) -> int:
        """The offset of the file's first byte that is not UTF-8: read again, a block at a time (an error path)."""
        decoder, done = codecs.getincrementaldecoder("utf-8")(), 0
        with open_binary(self.path, self.option) as fp:
            while block := fp.read(1 << 20):
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    return done - pending + exc.start
                done += len(block)
        return done

    def _data_line(self, k: int) -> tuple[int, list[str]]:
        """(its line in the file, its cells) of data row k, counted from 0 after any header: read from the file
        again, line by line, on an error path only."""
        seen = -int(self.header)
        with io.TextIOWrapper(open_binary(self.path, self.option), encoding="utf-8-sig", errors="replace") as fp:
            for number, line in enumerate(fp, 1):
                data = line.split("#", 1)[0]
                if data.strip():
                    if seen == k:
                        return number, split_cells(data, self._delimiter)
                    seen += 1
        return 0, []

    def position(self) -> int:
        return self._fp.tell()

    def close(self) -> None:
        self._fp.close()


def _past_int64(cell: str) -> bool:
    try:
        return not -(2**63) <= int(cell) < 2**63
    except ValueError:
        return False


def open_rows(source: str, option: str, step: int, header: str = "auto", buffers: int = 2):
    """A row reader for a big .npy, text table (.csv, .tsv, .txt, .dat), Parquet/Arrow (FILE:COLUMN) or JSON Lines
    (FILE:KEY) file, or None when the file is not streamable that way. The key may be left out where the file holds
    one column or key.

    `header` ("auto", "yes", "no") applies to text tables only; `buffers`: how many chunks of an .npy file stay
    valid at once (see NpyRows).
    """
    path, key = split_key(source)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        fp = open_binary(path, option)
        try:
            with reading(path, option):
                npy = read_header(fp, option=option, source=path, size=file_size(path, option))
        except BaseException:
            fp.close()
            raise
        if npy.fortran or not npy.shape:
            fp.close()
            return None
        return NpyRows(fp, path, option, npy, step, buffers)
    if ext == ".safetensors":
        from .safetensors import rows_header

        npy = rows_header(path, key, option)
        if npy is None:
            return None
        fp = open(path, "rb")  # noqa: SIM115  closed by NpyRows.close
        fp.seek(npy.offset)
        return NpyRows(fp, source, option, npy, step, buffers)
    if ext in TABLE_DELIMITERS:
        try:
            import pandas  # noqa: F401
        except ImportError:
            return None
        return CsvRows(path, option, TABLE_DELIMITERS[ext], header)
    rows = READERS[ext].rows() if ext in READERS else None
    if rows is not None:  # Parquet/Arrow by record batch, JSON Lines a chunk of lines at a time
        return rows(path, option, key, step)
    return None


def open_row_set(sources: dict[str, str], step: int, header: str = "auto", buffers: int = 2) -> dict[str, Any]:
    """A row reader (open_rows) for each option's source, in their order; the keys of one JSON Lines file share
    one reader, which parses each line once for all of them (jsonl.SharedRows)."""
    from .jsonl import EXTS

    files: dict[str, dict[str, str | None]] = {}
    for option, source in sources.items():
        path, key = split_key(source)
        if os.path.splitext(path)[1].lower() in EXTS:
            files.setdefault(path, {})[option] = key
    shared: dict[str, Any] = {}
    out: dict[str, Any] = {}
    try:
        for path, keyed in files.items():
            keys = list(keyed.values())
            if len(keys) > 1 and None not in keys and len(set(keys)) == len(keys):  # distinct keys, each named
                from .jsonl import SharedRows

                shared.update(zip(keyed, SharedRows(path, keyed).views(), strict=True))
        for option, source in sources.items():
            out[option] = shared[option] if option in shared else open_rows(source, option, step, header, buffers)
    except BaseException:
        for reader in [*out.values(), *shared.values()]:
            if reader is not None:
                reader.close()
        raise
    return out
