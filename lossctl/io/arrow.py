"""Parquet and Arrow IPC / Feather columns into numpy arrays, with pyarrow (an optional dependency).

A numeric column is a vector (N,); a list or fixed-size-list column of numbers is rows (N, C). Nulls and
ragged lists are errors naming the row (counted from 0, as Arrow and pandas count) and the column.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from ..errors import InputError
from .common import listing, numeric, one_name, require
from .remote import file_size, is_url, open_random

EXTS = (".parquet", ".arrow", ".feather")
BROKEN = (OSError, ValueError, TypeError, NotImplementedError)  # pyarrow's errors subclass these


def _what(path: str) -> str:
    return "Parquet" if path.lower().endswith(".parquet") else "Arrow IPC / Feather"


def _unreadable(path: str, exc: BaseException, option: str) -> InputError:
    text = str(exc).strip().splitlines()
    return InputError(f"not a readable {_what(path)} file ({text[0][:160] if text else type(exc).__name__})",
                      option=option, source=path)


def _pyarrow(path: str, option: str):
    ext = os.path.splitext(path)[1].lower()
    pa = require("pyarrow", ext=ext, option=option, source=path)
    require("pyarrow.parquet" if ext == ".parquet" else "pyarrow.ipc", ext=ext, option=option, source=path)
    return pa


def _ipc(pa, path: str, choose: Callable, option: str, streamed: bool = False):
    """(a reader of the columns `choose(schema)` names, their names, a closer), from the IPC file format (random
    access) or the stream format. A local file is memory-mapped (read as a plain file when streamed, so that its
    pages do not count as the process's memory); a seekable URL is read at offsets. Either way only the chosen
    columns' bytes are read (pyarrow's included_fields)."""
    if is_url(path):
        source = open_random(path, option)
    else:
        source = pa.OSFile(path) if streamed else pa.memory_map(path)
    try:
        schema = _open_ipc(pa, source).schema
        picked = choose(schema)
        names = [picked] if isinstance(picked, str) else picked
        fields = [schema.get_field_index(n) for n in names]
        return _open_ipc(pa, source, fields if -1 not in fields else None), names, source.close
    except BaseException:
        source.close()
        raise


def _open_ipc(pa, source, fields: list[int] | None = None):
    """An IPC file reader, or a stream reader where the file holds the stream format; `fields`: read only these."""
    options = pa.ipc.IpcReadOptions(included_fields=fields) if fields else None
    try:
        source.seek(0)
        return pa.ipc.open_file(source, options=options)
    except pa.ArrowInvalid as exc:
        try:
            source.seek(0)
            return pa.ipc.open_stream(source, options=options)
        except pa.ArrowInvalid:
            raise exc from None  # neither: the file format's complaint is the one that says what is wrong


def _parquet(path: str, option: str, *, streamed: bool = False):
    """(pq.ParquetFile, its closer): of a local path, memory-mapped, or of a seekable URL, read a block at a time.
    streamed: read a column chunk at a time (pyarrow's pre-buffering would read every row group at once), in reads
    of at most 1 MiB, from a plain file where local (a memory map's touched pages would count as the process's
    memory, as they would for .npy: see io.rows)."""
    import pyarrow.parquet as pq

    if not is_url(path) and not streamed:
        pf = pq.ParquetFile(path, memory_map=True)
        return pf, pf.close
    fp = open_random(path, option) if is_url(path) else open(path, "rb")  # noqa: SIM115  close() closes it
    try:
        pf = pq.ParquetFile(fp, pre_buffer=not streamed, buffer_size=(1 << 20) if streamed else 0)
    except BaseException:
        fp.close()
        raise

    def close() -> None:
        pf.close()
        fp.close()

    return pf, close


def batches(path: str, choose: Callable, step: int, option: str) -> tuple[str, int | None, Iterator,
                                                                        Callable[[], None]]:
    """(the column `choose(schema)` names, rows, its chunks read lazily, a closer): by row group and batch, or by
    IPC batch. The file is opened once: its schema, then its batches."""
    pa = _pyarrow(path, option)
    try:
        if path.lower().endswith(".parquet"):
            pf, close = _parquet(path, option, streamed=True)
            try:
                column = choose(pf.schema_arrow)
            except BaseException:
                close()
                raise
            chunks = (b.column(0) for b in pf.iter_batches(batch_size=step, columns=[column]))
            return column, pf.metadata.num_rows, chunks, close
        reader, (column,), close = _ipc(pa, path, choose, option, streamed=True)
    except BROKEN as exc:
        raise _unreadable(path, exc, option) from None
    try:
        if isinstance(reader, pa.ipc.RecordBatchFileReader):
            n = reader.num_record_batches
            # Mapped, a batch costs only its metadata until its column is converted: counting rows is cheap. A
            # remote file's batches would be fetched twice to count them, so its rows are counted as they come.
            rows = sum(reader.get_batch(i).num_rows for i in range(n)) if not is_url(path) else None
            return column, rows, (reader.get_batch(i).column(column) for i in range(n)), close
        # The stream format has no index of its batches; read from the map, its buffers are not copied.
        table = reader.read_all().select([column])
    except BROKEN as exc:
        close()
        raise _unreadable(path, exc, option) from None
    except BaseException:
        close()
        raise
    return column, table.num_rows, (b.column(0) for b in table.to_batches(max_chunksize=step)), close


def is_list(t) -> bool:
    import pyarrow as pa

    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def is_numbers(t) -> bool:
    """A type lossctl reads: numbers, or a (large, fixed-size) list of numbers."""
    import pyarrow as pa

    t = t.value_type if is_list(t) else t
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def to_numpy(col, name: str, *, option: str, source: str, first_row: int = 0, width: int | None = None):
    """One column (an Array or ChunkedArray) as (N,) or (N, C); `width` is C where earlier chunks fixed it."""
    import pyarrow.compute as pc

    where = f"column {name!r}"
    if not is_numbers(col.type):
        raise InputError(f"{where} holds {col.type}, not numbers or lists of numbers", option=option, source=source)
    _no_nulls(col, where, first_row, option=option, source=source)
    if not is_list(col.type):
        return numeric(plain(col), option=option, source=source)
    lengths = plain(pc.list_value_length(col))
    if width is None:
        width = int(lengths[0]) if len(lengths) else getattr(col.type, "list_size", 0)
    bad = np.flatnonzero(lengths != width)
    if len(bad):
        i = int(bad[0])
        raise InputError(f"{where}, row {first_row + i}: a list of {lengths[i]} values where earlier rows hold "
                         f"{width} (ragged lists)", option=option, source=source)
    values = pc.list_flatten(col)
    _no_nulls(values, f"{where} (inside a list)", first_row, option=option, source=source, per_row=max(width, 1))
    flat = numeric(plain(values), option=option, source=source)
    return flat.reshape(len(lengths), width)


def plain(arr) -> np.ndarray:
    """Numbers without nulls into numpy through DLPack: pyarrow's own to_numpy imports pandas (0.4 s)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        parts = [plain(c) for c in arr.chunks]
        return np.concatenate(parts) if parts else np.empty(0, arr.type.to_pandas_dtype())
    if pa.types.is_boolean(arr.type):  # bit-packed: DLPack cannot carry it
        return plain(arr.cast(pa.uint8())).astype(bool)
    try:
        return np.from_dlpack(arr)
    except (AttributeError, TypeError, BufferError, pa.ArrowException):  # a pyarrow before 15 has no DLPack
        return arr.to_numpy(zero_copy_only=False)


def _no_nulls(col, where: str, first_row: int, *, option: str, source: str, per_row: int = 1) -> None:
    if col.null_count:
        i = int(np.flatnonzero(plain(col.is_null()))[0]) // per_row
        raise InputError(f"{where}, row {first_row + i}: null value (counting rows from 0)", option=option,
                         source=source)


def data_names(schema) -> list[str]:
    """The columns but pandas' index columns, which its metadata in the schema names (`__index_level_0__` once a
    DataFrame's rows were filtered, or the index's own name): pyarrow's to_pandas makes them the index, no data."""
    meta = (schema.metadata or {}).get(b"pandas")
    if not meta:
        return list(schema.names)
    import json

    try:
        index = {c for c in json.loads(meta).get("index_columns", ()) if isinstance(c, str)}  # a RangeIndex: a dict
    except (ValueError, AttributeError, TypeError):
        return list(schema.names)  # metadata pandas did not write: every column is data
    return [n for n in schema.names if n not in index]


def choose_column(schema, key: str | None, *, path: str, option: str) -> str:
    """The column KEY names (any column), or the only data column (see data_names)."""
    hint = f"FILE{os.path.splitext(path)[1]}:COLUMN"
    names = list(schema.names) if key is not None else data_names(schema)
    return one_name(names, key, what="column", hint=hint, option=option, source=path)


def read_column(path: str, key: str | None, option: str) -> np.ndarray:
    """`FILE.parquet[:COLUMN]` (or .arrow, .feather): one column, or the only one."""

    def choose(schema) -> list[str]:
        return [choose_column(schema, key, path=path, option=option)]

    table = _read_table(path, choose, option)
    name = table.column_names[0]
    return to_numpy(table.column(name), name, option=option, source=path)


def read_columns(path: str) -> dict[str, np.ndarray]:
    """`--from FILE.parquet`: every column of numbers or lists of numbers, by name; other columns, and pandas'
    index columns, are left out."""

    def choose(schema) -> list[str]:
        data = set(data_names(schema))
        names = [f.name for f in schema if f.name in data and is_numbers(f.type)]
        if not names:
            raise InputError(f"holds no column of numbers (it holds: {listing(schema.names) or 'nothing'})",
                             option="--from", source=path)
        return names

    table = _read_table(path, choose, "--from")
    return {n: to_numpy(table.column(n), n, option="--from", source=path) for n in table.column_names}


def column_names(path: str) -> list[str]:
    """The columns `--from FILE` reads (read_columns' choice), from the schema alone: no column is read."""
    names: list[str] = []

    def choose(schema) -> list[str]:
        data = set(data_names(schema))
        names.extend(f.name for f in schema if f.name in data and is_numbers(f.type))
        return names[:1] or list(schema.names[:1])

    pa = _pyarrow(path, "--from")
    try:
        if path.lower().endswith(".parquet"):
            pf, close = _parquet(path, "--from")
            close()
            choose(pf.schema_arrow)
        else:
            _, _, close = _ipc(pa, path, choose, "--from")
            close()
    except BROKEN as exc:
        raise _unreadable(path, exc, "--from") from None
    return names


def _read_table(path: str, choose: Callable, option: str):
    """The columns `choose(schema)` names, read whole; the file is opened once."""
    pa = _pyarrow(path, option)
    try:
        if path.lower().endswith(".parquet"):
            # Not pq.read_table: it goes through pyarrow.dataset, which imports pandas.
            pf, close = _parquet(path, option)
            try:
                return pf.read(columns=choose(pf.schema_arrow), use_pandas_metadata=False)
            finally:
                close()
        reader, names, close = _ipc(pa, path, choose, option)
        try:
            return reader.read_all().select(names)
        finally:
            close()
    except BROKEN as exc:
        raise _unreadable(path, exc, option) from None


class ArrowRows:
    """Rows of one column of a Parquet or Arrow IPC file, converted a record batch at a time."""

    def __init__(self, path: str, option: str, key: str | None, step: int):
        self.path, self.option = path, option
        self.column, self.rows, self._batches, self._close = batches(path, lambda schema: self._choose(schema, key),
                                                                     step, option)
        self.total_bytes = file_size(path, option) or 0
        self._pending: np.ndarray | None = None
        self._width: int | None = None
        self._done = self._parsed = 0

    def _choose(self, schema, key: str | None) -> str:
        """The column to read (KEY, or the only one), which must hold numbers; sets the dtype they read as."""
        column = choose_column(schema, key, path=self.path, option=self.option)
        t = schema.field(column).type
        if not is_numbers(t):
            raise InputError(f"column {column!r} holds {t}, not numbers or lists of numbers", option=self.option,
                             source=self.path)
        value = t.value_type if is_list(t) else t
        self.dtype = numeric(np.empty(0, value.to_pandas_dtype()), option=self.option, source=self.path).dtype
        return column

    def read(self, n: int) -> np.ndarray:
        parts, have = [], 0
        while have < n:
            if self._pending is None or not len(self._pending):
                self._pending = self._next_chunk()
                if self._pending is None:
                    break
            take, self._pending = self._pending[: n - have], self._pending[n - have:]
            parts.append(take)
            have += len(take)
        if not parts:
            return np.empty((0,) if self._width is None else (0, self._width), self.dtype)
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._done += len(out)
        return out

    def _next_chunk(self) -> np.ndarray | None:
        try:
            col = next(self._batches)
        except StopIteration:
            return None
        except BROKEN as exc:
            raise _unreadable(self.path, exc, self.option) from None
        arr = to_numpy(col, self.column, option=self.option, source=self.path, first_row=self._parsed,
                       width=self._width)
        self._parsed += len(arr)
        if arr.ndim == 2:
            self._width = arr.shape[1]
        return arr

    def position(self) -> int:
        """Bytes read, estimated from the rows read (where rows are counted as they come: the values read)."""
        if self.rows is None:
            return min(self._done * (self._width or 1) * self.dtype.itemsize, self.total_bytes)
        return self._done * self.total_bytes // max(self.rows, 1)

    def close(self) -> None:
        self._batches.close()
        self._close()
