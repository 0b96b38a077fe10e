"""Reading .safetensors without torch: a local file through the safetensors package's NumPy interface
(memory-mapped), a file on a seekable URL (s3, gs, az, hf) by range requests for its header and then only for the
tensors read.

The header (8-byte little-endian length, a JSON object {name: {dtype, shape, data_offsets}}, then the data) is
checked here against the file's size before the package sees it, so a hostile header costs no allocation; a remote
tensor's bytes are read at the offsets this check passed. NumPy has no bfloat16: BF16 tensors are read as raw
uint16 and widened to float32 here.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .common import numeric, one_name, require, widened
from .remote import is_url, open_random, reading

EXT = ".safetensors"
MAX_HEADER = 100_000_000  # the safetensors package's own cap
ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "U32": 4, "I32": 4, "U64": 8, "I64": 8,
            "F16": 2, "BF16": 2, "F32": 4, "F64": 8}
# The NumPy dtype of each (little-endian, as the format stores every number); BF16's bits are read as uint16.
NUMPY = {"BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4", "U64": "<u8",
         "I64": "<i8", "F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8"}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets into the data, which starts at `Header.offset` in the file
    end: int


@dataclass(frozen=True)
class Header:
    tensors: dict[str, TensorInfo]
    offset: int  # bytes before the data: 8 + the header's length


def read_header(path: str, *, option: str) -> Header:
    """The validated header of a local file: see parse_header."""
    with open(path, "rb") as fp:
        return parse_header(fp, os.path.getsize(path), option=option, source=path)


def parse_header(fp, size: int, *, option: str, source: str) -> Header:
    """The header of the file `fp` (at its start) of `size` bytes: its length, JSON, dtypes, shapes and offsets
    all checked against the size."""
    raw_len = fp.read(8)
    if len(raw_len) < 8:
        why = "the file is empty" if not raw_len else "truncated: too short to hold a .safetensors header"
        raise InputError(why, option=option, source=source)
    (hlen,) = struct.unpack("<Q", raw_len)
    if hlen > MAX_HEADER:
        raise InputError(f"malformed .safetensors header: it claims {hlen} bytes (more than {MAX_HEADER} "
                         "is refused)", option=option, source=source)
    if 8 + hlen > size:
        raise InputError(f"truncated: the header claims {hlen} bytes but only {size - 8} follow its length",
                         option=option, source=source)
    raw = fp.read(hlen)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"malformed .safetensors header (not JSON: {why})", option=option, source=source) from None
    if not isinstance(obj, dict):
        raise InputError("malformed .safetensors header (not a JSON object)", option=option, source=source)
    data = size - 8 - hlen
    tensors = {name: _tensor_info(name, entry, data, option=option, source=source)
               for name, entry in obj.items() if name != "__metadata__"}
    return Header(tensors, 8 + hlen)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _tensor_info(name: str, entry, data: int, *, option: str, source: str) -> TensorInfo:
    bad = f"malformed .safetensors header: tensor {name!r}"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise InputError(f"{bad} lacks dtype, shape or data_offsets", option=option, source=source)
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str):
        raise InputError(f"{bad} has dtype {str(dtype)[:40]!r}", option=option, source=source)
    if not isinstance(shape, list) or len(shape) > 64 or not all(map(_is_count, shape)):
        raise InputError(f"{bad} has shape {str(shape)[:60]}", option=option, source=source)
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
            and offsets[0] <= offsets[1]):
        raise InputError(f"{bad} has data_offsets {str(offsets)[:60]}", option=option, source=source)
    begin, end = offsets
    if end > data:
        raise InputError(f"truncated: tensor {name!r} ends at byte {end} of the data but only {data} are present",
                         option=option, source=source)
    if dtype in ITEMSIZE and (end - begin) != math.prod(shape) * ITEMSIZE[dtype]:
        raise InputError(f"{bad} has shape {tuple(shape)} of {dtype} ({math.prod(shape) * ITEMSIZE[dtype]} "
                         f"bytes) but its data_offsets span {end - begin} bytes", option=option, source=source)
    return TensorInfo(dtype, tuple(shape), begin, end)


def _read(path: str, header: Header, name: str, safe, *, option: str) -> np.ndarray:
    """A tensor of a local file: from the package's mapped file (`safe`), BF16 from the file's bytes."""
    info = header.tensors[name]
    where = f"{path}:{name}"
    if info.dtype not in ITEMSIZE:
        raise InputError(_unsupported(info.dtype), option=option, source=where)
    if info.dtype == "BF16":
        bits = np.fromfile(path, dtype="<u2", count=math.prod(info.shape), offset=header.offset + info.begin)
        return _decode(bits, info)
    try:
        arr = safe.get_tensor(name)
    except Exception as exc:  # noqa: BLE001  the package reports damage with its own error types
        raise InputError(f"not a readable .safetensors file ({_first_line(exc)})", option=option,
                         source=where) from None
    return numeric(arr, option=option, source=where)


def _unsupported(dtype: str) -> str:
    """Why a tensor of `dtype` is not read: a float8 is a number, but one NumPy cannot hold."""
    if dtype.startswith("F8"):
        return f"unsupported dtype {dtype} (float8, which NumPy cannot hold: save it as F16, BF16 or F32)"
    return f"unsupported dtype {dtype} (need numbers)"


def _decode(data: np.ndarray, info: TensorInfo) -> np.ndarray:
    """A tensor from its bytes (their length already checked against its shape and dtype by parse_header)."""
    if info.dtype == "BF16":
        # bfloat16 is the top half of a float32: shifting its bits up 16 places gives the same value exactly.
        bits = data.view("<u2")
        return widened((bits.astype(np.uint32) << 16).view(np.float32).reshape(info.shape), "bfloat16")
    return data.view(NUMPY[info.dtype]).reshape(info.shape)


def _read_remote(fp, url: str, header: Header, name: str, *, option: str) -> np.ndarray:
    """A tensor of a remote file: its bytes alone, read at their offset."""
    info = header.tensors[name]
    where = f"{url}:{name}"
    if info.dtype not in ITEMSIZE:
        raise InputError(_unsupported(info.dtype), option=option, source=where)
    data = np.empty(info.end - info.begin, np.uint8)
    fp.seek(header.offset + info.begin)
    if fp.readinto(data) != data.size:
        raise InputError(f"truncated: tensor {name!r} ends early", option=option, source=where)
    return numeric(_decode(data, info), option=option, source=where)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def _open(path: str, option: str):
    package = require("safetensors", ext=EXT, option=option, source=path)
    header = read_header(path, option=option)
    try:
        return header, package.safe_open(path, framework="np")
    except Exception as exc:  # noqa: BLE001  SafetensorError, or an OSError from mapping the file
        raise InputError(f"not a readable .safetensors file ({_first_line(exc)})", option=option,
                         source=path) from None


def _remote(url: str, names, option: str) -> dict[str, np.ndarray]:
    """The tensors `names(header)` picks from a file on a seekable URL: its header, then each tensor's bytes."""
    with open_random(url, option) as fp, reading(url, option):  # a network failure is one line naming the URL
        header = parse_header(fp, fp.size, option=option, source=url)
        return {name: _read_remote(fp, url, header, name, option=option) for name in names(header)}


def read_tensor(path: str, key: str | None, option: str) -> np.ndarray:
    """`FILE.safetensors[:KEY]`: the tensor named `key`, or the only one."""

    def names(header: Header) -> list[str]:
        return [one_name(list(header.tensors), key, what="tensor", hint="FILE.safetensors:KEY", option=option,
                         source=path)]

    if is_url(path):
        return next(iter(_remote(path, names, option).values()))
    header, opened = _open(path, option)
    with opened as safe:
        return _read(path, header, names(header)[0], safe, option=option)


STREAMED = ("F32", "F64", "I64")  # read as they are stored: no widening (F16, BF16) or dtype note (I32, U8, BOOL)


def rows_header(path: str, key: str | None, option: str):
    """A local file's tensor as an .npy header (its shape, dtype, and the offset of its bytes), so that it streams
    by rows as an .npy does; None where it is read whole: a URL, another dtype, a scalar, or a key that does not
    name one tensor (the whole read says which)."""
    if is_url(path):
        return None
    from .npy import NpyHeader

    header = _checked_header(path, option)
    try:
        name = one_name(list(header.tensors), key, what="tensor", hint="FILE.safetensors:KEY", option=option,
                        source=path)
    except InputError:
        return None
    info = header.tensors[name]
    if info.dtype not in STREAMED or not info.shape:
        return None
    return NpyHeader(info.shape, np.dtype(NUMPY[info.dtype]), False, header.offset + info.begin)


def tensor_names(path: str) -> list[str] | None:
    """The tensors `--from FILE` reads, from a local file's header alone; None for a URL (read whole)."""
    if is_url(path):
        return None
    return list(_checked_header(path, "--from").tensors)


def _checked_header(path: str, option: str) -> Header:
    """The header of a local file, checked as the whole read checks it: by this module, then by the package, which
    refuses tensors that overlap and bytes no tensor covers. A stream reads the bytes at the header's offsets, so
    it must refuse what the whole read refuses, with the same line, not compute from them."""
    header, opened = _open(path, option)
    with opened:
        return header


def read_tensors(path: str) -> dict[str, np.ndarray]:
    """`--from FILE.safetensors`: every tensor, by name."""
    if is_url(path):
        return _remote(path, lambda header: list(header.tensors), "--from")
    header, opened = _open(path, "--from")
    with opened as safe:
        return {name: _read(path, header, name, safe, option="--from") for name in header.tensors}
