"""Turn a path, `-`, an inline literal or a `--from` bundle into validated numpy arrays.

Knows formats, nothing about losses. Every failure is an `InputError` naming the option and the source.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np

from ..errors import InputError, MissingKeyError, UsageError
from .common import listing, unwrap, widened
from .npy import MAGIC, STDIN, STDIN_KEYS, STDIN_READS, load_npy_bytes, load_npy_path, load_npz
from .remote import is_url, local_copy, open_whole, read_bytes, seekable
from .text import TABLE_DELIMITERS, check_header, decode_utf8, json_to_array, parse_json, parse_table

FORMATS = (".npy", ".npz", ".json", ".csv", ".tsv", ".txt", ".dat", ".pt", ".pth", ".safetensors", ".parquet",
           ".arrow", ".feather", ".jsonl", ".ndjson")
SUPPORTED = (".npy, .npz[:key], .json, .csv, .tsv, .txt, .dat, .pt[:key], .safetensors[:key], "
             ".parquet/.arrow/.feather[:column], .jsonl/.ndjson[:key], '-' (stdin) or an inline JSON literal; "
             "files as local paths or URLs (s3://, gs://, az://, http(s)://, hf://)")


class Loaded(NamedTuple):
    """An array and where it came from; `binary` sources keep their float dtype under --dtype auto.

    `header`: True when a text table's header row was skipped, False for a table read without one, None for
    sources that are no table (binary, JSON, literals).
    `stored`: the dtype a float32 array was widened from, where NumPy cannot hold it (bfloat16); else "".
    """

    array: np.ndarray
    source: str
    binary: bool
    header: bool | None = None
    stored: str = ""

    @classmethod
    def of(cls, arr: np.ndarray, source: str, binary: bool) -> Loaded:
        """A reader's array, unwrapped from the dtype it was widened from (common.Widened)."""
        arr, stored = unwrap(arr)
        return cls(arr, source, binary, None, stored)


class Reader(NamedTuple):
    """One format family, its module imported only when a file of its format is read.

    In lossctl.io.<module>: `array(path, key, option)` reads FILE[:KEY], `bundle(path)` every array for --from,
    and `rows` (if any) is its row reader class for streaming, `keys_name` the function naming the keys --from reads
    without reading them (so that a bundle of rows streams). `remote` says which URLs the reader opens itself (so
    that a remote file streams): "any" (it reads front to back), "seekable" (it reads at offsets: remote.seekable
    URLs), or "" (none); other URLs are copied to a local file first.
    """

    module: str
    array_name: str
    bundle_name: str
    binary: bool  # binary sources keep their float dtype under --dtype auto
    rows_name: str | None = None
    remote: str = ""
    keys_name: str | None = None

    def takes(self, path: str) -> bool:
        """Whether this reader opens `path` itself (a local path, or a URL of a kind it reads)."""
        return not is_url(path) or self.remote == "any" or (self.remote == "seekable" and seekable(path))

    def _get(self, name: str):
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{self.module}"), name)

    def array(self, path: str, key: str | None, option: str) -> np.ndarray:
        return self._get(self.array_name)(path, key, option)

    def bundle(self, path: str) -> dict[str, np.ndarray]:
        return self._get(self.bundle_name)(path)

    def rows(self):
        return self._get(self.rows_name) if self.rows_name else None


def bundle_keys(source: str) -> list[str] | None:
    """The keys `--from SOURCE` reads, where its format streams by rows (Parquet/Arrow, JSON Lines, a local
    .safetensors) and its reader opens it itself; None for any other bundle (read whole)."""
    reader = READERS.get(os.path.splitext(source)[1].lower()) if source != "-" else None
    if reader is None or reader.keys_name is None or not reader.takes(source) or not (
            is_url(source) or os.path.isfile(source)):
        return None
    return reader._get(reader.keys_name)(source)


READERS: dict[str, Reader] = {}


def register_reader(exts: tuple[str, ...], reader: Reader) -> None:
    for ext in exts:
        if ext in READERS:
            raise ValueError(f"a reader for {ext} is already registered")
        READERS[ext] = reader


register_reader((".safetensors",), Reader("safetensors", "read_tensor", "read_tensors", binary=True,
                                          remote="seekable", keys_name="tensor_names"))
register_reader((".parquet",), Reader("arrow", "read_column", "read_columns", binary=True, rows_name="ArrowRows",
                                      remote="seekable", keys_name="column_names"))
register_reader((".arrow", ".feather"), Reader("arrow", "read_column", "read_columns", binary=True,
                                               rows_name="ArrowRows", remote="seekable", keys_name="column_names"))
register_reader((".jsonl", ".ndjson"), Reader("jsonl", "read_key", "read_keys", binary=False, rows_name="JsonlRows",
                                               remote="any", keys_name="key_names"))


def split_key(source: str) -> tuple[str, str | None]:
    """`file.npz:key` -> (`file.npz`, `key`); anything else -> (source, None)."""
    if ":" in source and not os.path.exists(source):
        path, key = source.rsplit(":", 1)
        if os.path.splitext(path)[1].lower() in (".npz", ".pt", ".pth", ".json", *READERS):
            return path, key
    return source, None


def looks_literal(source: str) -> bool:
    s = source.strip()
    if not s or os.path.exists(source):
        return False
    if s[0] == "[":
        return True
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_array(source: str, *, option: str, stdin: bytes | None = None, header: str = "auto") -> Loaded:
    """Read one array. `stdin` carries the bytes of standard input when `source` is `-`.

    `header` ("auto", "yes", "no") says whether a text table's first row is a header (see text.parse_table);
    binary and JSON sources ignore it.
    """
    check_header(header)
    if source == "-":
        data = stdin if stdin is not None else read_stdin(option)
        return _sniff_bytes(data, option=option, source="<stdin>", header=header)
    if looks_literal(source):
        obj = parse_json(source, option=option, source="literal")
        return Loaded(json_to_array(obj, option=option, source="literal"), "literal", False)
    path, key = split_key(source)
    ext = _check_path(path, option)
    if ext in READERS:
        reader = READERS[ext]
        with (nullcontext(path) if reader.takes(path) else local_copy(path, option)) as local:
            return Loaded.of(reader.array(local, key, option), path, reader.binary)
    if ext == ".npy":
        return Loaded(load_npy_path(path, option=option), path, True)
    if ext == ".npz":
        with open_whole(path, option) as fp:
            return Loaded(load_npz(fp, option=option, source=path, key=key), path, True)
    if ext in (".pt", ".pth"):
        obj = load_pt(path, option=option)
        picked = _pick(obj, key, option=option, source=path)
        where = path if not isinstance(obj, dict) else f"{path}:{key or next(iter(obj))}"
        return Loaded.of(_as_numbers(picked, option=option, source=where), path, True)
    text = decode_utf8(_read_bytes(path, option), option=option, source=path)
    if ext == ".json":
        obj = parse_json(text, option=option, source=path)
        where = path
        if isinstance(obj, dict):
            _refuse_pandas_json(obj, key, option=option, source=path)
            where = f"{path}:{key or next(iter(obj), '')}"
            obj = _pick(obj, key, option=option, source=path)
        return Loaded(json_to_array(obj, option=option, source=where), path, False)
    arr, skipped = parse_table(text, option=option, source=path, delimiter=TABLE_DELIMITERS.get(ext), header=header)
    return Loaded(arr, path, False, skipped)


def load_bundle(source: str, *, stdin: bytes | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """`--from FILE`: every named array in an .npz, a JSON object, a .pt dict, .safetensors, Parquet/Arrow or JSON
    Lines (standard input: .npz, a JSON object or JSON Lines); returns (arrays, binary).

    A key of an .npz, JSON or .pt bundle that holds no numbers (class names, a note, a config) maps to None: it
    cannot fill a role, and a role named so is read alone (pipeline), which says what is wrong with it."""
    option = "--from"
    if source == "-":
        data = stdin if stdin is not None else read_stdin(option)
        _refuse_unread(data, option=option)
        if data.startswith(b"PK"):
            import io as _io
            return load_npz(_io.BytesIO(data), option=option, source="<stdin>", key=None), True
        obj, lines = _json_or_lines(decode_utf8(data, option=option, source=STDIN), option=option)
        if lines:
            from .jsonl import read_keys

            return read_keys(STDIN, data), False
        return _json_bundle(obj, STDIN), False
    ext = _check_path(source, option)
    if ext in READERS:
        reader = READERS[ext]
        with (nullcontext(source) if reader.takes(source) else local_copy(source, option)) as local:
            return reader.bundle(local), reader.binary
    if ext == ".npz":
        with open_whole(source, option) as fp:
            out = load_npz(fp, option=option, source=source, key=None)
        return (out if isinstance(out, dict) else {"": out}), True
    if ext in (".pt", ".pth"):
        obj = load_pt(source, option=option)
        if not isinstance(obj, dict):
            raise InputError("holds one tensor, not a dict of named tensors", option=option, source=source)
        return {k: _numbers_or_none(_as_numbers, v, f"{source}:{k}") for k, v in obj.items()}, True
    if ext == ".json":
        obj = parse_json(decode_utf8(_read_bytes(source, option), option=option, source=source),
                         option=option, source=source)
        return _json_bundle(obj, source), False
    raise InputError(f"a bundle must be .npz, .json (an object), .pt (a dict), {', '.join(READERS)}; "
                     f"got {ext or 'no extension'}",
                     option=option, source=source)


def _json_bundle(obj, source: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise InputError("must be a JSON object mapping role names to arrays", option="--from", source=source)
    return {str(k): _numbers_or_none(json_to_array, v, f"{source}:{k}") for k, v in obj.items()}


def _numbers_or_none(read, value, source: str) -> np.ndarray | None:
    """A bundle's value as numbers, or None where it holds none (class names, a note, a config, null)."""
    if isinstance(value, bool):
        return None
    try:
        return read(value, option="--from", source=source)
    except InputError:
        return None


def _refuse_pandas_json(obj: dict, key: str | None, *, option: str, source: str) -> None:
    """pandas' to_json writes a Series as {index: value} and a DataFrame as {column: {index: value}}: no arrays to
    pick, and a value per row listed as if it were one; say what to write instead."""
    if key is not None or len(obj) < 2:
        return
    first = next(iter(obj.values()))
    frame = all(isinstance(v, dict) for v in obj.values())
    index = first if frame else obj  # the keys pandas writes for the rows: 0, 1, ... for a default index
    if (frame or all(isinstance(v, (int, float)) for v in obj.values())) and all(k.isdigit() for k in index):
        what = "DataFrame" if frame else "Series"
        raise InputError(f"an object keyed by row number, as pandas' to_json writes a {what}: write it with "
                         "orient='values' (lossctl reads nested lists)", option=option, source=source)


def _pick(obj, key: str | None, *, option: str, source: str):
    if not isinstance(obj, dict):
        if key is not None:
            raise InputError(f"holds a single array, not a dict with key {key!r}", option=option, source=source)
        return obj
    if key is None:
        if len(obj) != 1:
            how = STDIN_KEYS if source == STDIN else "name one as FILE:KEY"
            raise InputError(f"holds several arrays ({listing(obj)}); {how}",
                             option=option, source=source)
        key = next(iter(obj))
    if key not in obj:
        raise MissingKeyError(f"no array named {key!r}; it holds: {listing(obj)}",
                         option=option, source=source)
    return obj[key]


def load_pt(path: str, *, option: str):
    """A tensor or a dict of tensors, loaded with weights_only=True: anything else is refused, never run.

    A dict may hold other plain values beside its tensors (an epoch, a note); they stay Python objects here
    and are refused only when picked as an array.
    """
    with open_whole(path, option) as fp:  # a remote file is fetched whole; torch.load reads the file object
        head = fp.read(4)
        fp.seek(0)
        obj = _torch_load(fp, option=option, path=path, head=head)
    import torch

    if isinstance(obj, torch.Tensor):
        return tensor_to_numpy(obj, option, path)
    if isinstance(obj, dict):
        return {str(k): tensor_to_numpy(v, option, f"{path}:{k}") if isinstance(v, torch.Tensor) else v
                for k, v in obj.items()}
    raise InputError(f"holds a {type(obj).__name__}, not a tensor or a dict of tensors", option=option, source=path)


def _torch_load(target, *, option: str, path: str, head: bytes):
    import pickle

    if not head:
        raise InputError("the file is empty", option=option, source=path)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise InputError("not a .pt file (torch.save writes a zip archive or a pickle; this is neither)",
                         option=option, source=path)
    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on old pickle protocols: the refusal below says enough
            warnings.simplefilter("ignore")
            obj = torch.load(target, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        why = next((ln for ln in lines if "global" in ln.lower()), None)
        if why is None:
            raise InputError(f"not a readable .pt file ({_unpickler_detail(lines)[:160]})", option=option,
                             source=path) from None
        found = re.search(r"GLOBAL ([\w.]+)", why)
        what = f"a {found.group(1)}" if found else "more than tensors"
        raise InputError(
            f"refused: the file holds {what}, and lossctl loads .pt with weights_only=True, "
            "which never builds or runs what a file carries", option=option, source=path,
        ) from None
    except Exception as exc:  # noqa: BLE001  torch.load on a damaged archive raises many kinds of error
        msg = str(exc).strip().splitlines()
        raise InputError(f"not a readable .pt file ({msg[0][:160] if msg else type(exc).__name__})",
                         option=option, source=path) from None
    return obj


def _unpickler_detail(lines: list[str]) -> str:
    """What torch's weights-only unpickler objected to: the words after "WeightsUnpickler error:" (on its line or
    the next), else its first line."""
    for i, ln in enumerate(lines):
        if "Unpickler error" in ln:
            rest = ln.split("error:", 1)[-1].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return f"torch's weights-only loader refused it: {rest}" if rest else ln
    return lines[0] if lines else "torch's weights-only loader refused it"


def _as_numbers(value, *, option: str, source: str) -> np.ndarray:
    """A value picked from a .pt dict: a tensor already converted, or plain numbers (a list, an int)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, int, float)) and not isinstance(value, bool):
        return json_to_array(value, option=option, source=source)
    raise InputError(f"holds a {type(value).__name__}, not a tensor", option=option, source=source)


def tensor_to_numpy(t, option: str, source: str) -> np.ndarray:
    """A tensor as a NumPy array (a copy off the GPU, detached); what NumPy cannot hold is one line."""
    import torch

    if getattr(t, "is_nested", False):
        raise InputError("a nested tensor; pad it first (torch.nested.to_padded_tensor)", option=option,
                         source=source)
    if t.layout != torch.strided:
        raise InputError(f"a {str(t.layout).removeprefix('torch.')} tensor; make it dense (tensor.to_dense())",
                         option=option, source=source)
    if t.is_meta:
        raise InputError("a meta tensor: it has a shape but no values", option=option, source=source)
    if t.is_complex():
        raise InputError("complex tensors are not supported", option=option, source=source)
    stored = ""
    if t.is_floating_point() and t.element_size() < 4 and t.dtype != torch.float16:
        # numpy has no bfloat16 or float8; float32 holds them exactly
        stored, t = str(t.dtype).removeprefix("torch."), t.float()
    try:
        arr = t.detach().cpu().numpy()  # strided as it is: NumPy takes any strides
        return widened(arr, stored) if stored else arr
    except (TypeError, RuntimeError):  # quantized and other dtypes NumPy has no counterpart for
        raise InputError(f"a {str(t.dtype).removeprefix('torch.')} tensor, which NumPy cannot hold (need "
                         "integers, bool or floats)", option=option, source=source) from None


def _check_path(path: str, option: str) -> str:
    if is_url(path):  # whether it exists is asked when it is read: one request, not two
        return _check_ext(path, option)
    if not os.path.exists(path):
        raise InputError("no such file (and not an inline JSON literal)", option=option, source=path)
    if os.path.isdir(path):
        raise InputError("is a directory, not a file", option=option, source=path)
    return _check_ext(path, option)


def _check_ext(path: str, option: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise InputError(f"unknown format {ext or '(no extension)'}; supported: {SUPPORTED}",
                         option=option, source=path)
    return ext


def _read_bytes(path: str, option: str) -> bytes:
    return read_bytes(path, option)


def read_stdin(option: str) -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("reads standard input ('-') but nothing is piped in", option=option)
    try:
        return sys.stdin.buffer.read()
    except OSError as exc:  # a read error on the pipe or terminal (EIO), or a stdin that refuses reads
        raise InputError(f"cannot read standard input ({exc.strerror or exc})", option=option, source=STDIN) from None


def _sniff_bytes(data: bytes, *, option: str, source: str, header: str = "auto") -> Loaded:
    """Bytes of standard input: .npy, .npz, JSON, JSON Lines, or a text table (comma, semicolon, tab or whitespace)."""
    if not data.strip():
        raise InputError("standard input is empty", option=option, source=source)
    _refuse_unread(data, option=option)
    if data.startswith(MAGIC):
        return Loaded(load_npy_bytes(data, option=option, source=source), source, True)
    if data.startswith(b"PK"):
        import io as _io
        return Loaded(load_npz(_io.BytesIO(data), option=option, source=source, key=None), source, True)
    text = decode_utf8(data, option=option, source=source)
    if "\x00" in text:
        raise InputError("binary data that is neither .npy nor .npz (text must be JSON or a CSV/whitespace table)",
                         option=option, source=source)
    if text.lstrip()[:1] in ("[", "{"):
        obj, lines = _json_or_lines(text, option=option)
        if lines:
            from .jsonl import read_key

            return Loaded(read_key(source, None, option, data), source, False)
        if isinstance(obj, dict):
            obj = _pick(obj, None, option=option, source=source)
        return Loaded(json_to_array(obj, option=option, source=source), source, False)
    arr, skipped = parse_table(text, option=option, source=source, header=header)
    return Loaded(arr, source, False, skipped)


def _json_or_lines(text: str, *, option: str) -> tuple[object, bool]:
    """Standard input's text as (its one JSON value, False), or (None, True) where it is JSON Lines instead: several
    JSON values, one per line, which json refuses as one value followed by "Extra data"."""
    try:
        return parse_json(text, option=option, source=STDIN), False
    except InputError:
        from .jsonl import is_json_lines

        if is_json_lines(text):
            return None, True
        raise


# Binary formats standard input does not read, by their first bytes (a .pt zip archive is told apart by load_npz).
_UNREAD = ((b"PAR1", "a Parquet file"), (b"ARROW1", "an Arrow IPC / Feather file"),
           (b"\xff\xff\xff\xff", "an Arrow IPC stream"),
           (b"\x80\x02", "a pickle (a .pt file of torch's legacy format)"))


def _refuse_unread(data: bytes, *, option: str) -> None:
    """One line naming the format of a binary file piped in that standard input does not read."""
    what = None
    if data[8:10] in (b'{"', b"{}") and 8 + int.from_bytes(data[:8], "little") <= len(data):
        what = "a .safetensors file"  # an 8-byte little-endian header length, then the JSON header
    what = what or next((what for magic, what in _UNREAD if data.startswith(magic)), None)
    if option == "--from" and data.startswith(MAGIC):
        raise InputError("an .npy file holds one array with no name: a bundle is an .npz or a JSON object",
                         option=option, source=STDIN)
    if what is not None:
        raise InputError(f"{what}: {STDIN_READS}", option=option, source=STDIN)
