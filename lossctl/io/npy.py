"""Reading .npy safely: the header is checked against the bytes present before anything is allocated."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..errors import InputError

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20  # numpy itself refuses headers past 10 KiB unless told; 1 MiB is generous


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes before the data

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * self.dtype.itemsize


def read_header(fp: BinaryIO, *, option: str, source: str, size: int | None = None) -> NpyHeader:
    """Parse and validate the header of an .npy stream positioned at its start."""
    fmt = np.lib.format
    start = fp.tell()
    head = fp.read(len(MAGIC))
    if head != MAGIC:
        if not head:
            raise InputError("the file is empty", option=option, source=source)
        raise InputError("not an .npy file (bad magic bytes)", option=option, source=source)
    fp.seek(start)
    try:
        version = fmt.read_magic(fp)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(fp, max_header_size=MAX_HEADER)
    except (ValueError, SyntaxError, TypeError, EOFError, OverflowError, MemoryError) as exc:
        raise InputError(f"malformed .npy header ({_first_line(exc)})", option=option, source=source) from None
    if dtype.hasobject:
        raise InputError(
            "holds Python objects (a pickle); lossctl never unpickles, save numbers instead",
            option=option, source=source,
        )
    if dtype.kind not in "biuf":
        raise InputError(f"unsupported dtype {dtype} (need numbers)", option=option, source=source)
    header = NpyHeader(tuple(int(d) for d in shape), dtype, bool(fortran), fp.tell() - start)
    if size is not None and header.offset + header.nbytes > size:
        raise InputError(
            f"truncated: the header declares shape {header.shape} ({header.nbytes} bytes of {dtype}) "
            f"but only {max(size - header.offset, 0)} bytes of data are present",
            option=option, source=source,
        )
    return header


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def read_npy(fp: BinaryIO, *, option: str, source: str, size: int | None = None) -> np.ndarray:
    header = read_header(fp, option=option, source=source, size=size)
    data = fp.read(header.nbytes)
    if len(data) != header.nbytes:
        raise InputError(
            f"truncated: expected {header.nbytes} bytes of data for shape {header.shape}, got {len(data)}",
            option=option, source=source,
        )
    order = "F" if header.fortran else "C"
    arr = np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order=order)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False) if not arr.dtype.isnative else arr


def load_npy_path(path: str, *, option: str) -> np.ndarray:
    with open(path, "rb") as fp:
        return read_npy(fp, option=option, source=path, size=os.fstat(fp.fileno()).st_size)


def load_npy_bytes(data: bytes, *, option: str, source: str) -> np.ndarray:
    return read_npy(io.BytesIO(data), option=option, source=source, size=len(data))


def load_npz(fp, *, option: str, source: str, key: str | None) -> np.ndarray | dict[str, np.ndarray]:
    """Read one array (`key`, or the only one) of an .npz; with key None and several arrays, return them all."""
    import zipfile

    try:
        zf = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"not a readable .npz archive ({_first_line(exc)})", option=option, source=source) from None
    with zf:
        names = {n[:-4] if n.endswith(".npy") else n: n for n in zf.namelist()}

        def read(name: str) -> np.ndarray:
            info = zf.getinfo(names[name])
            try:
                with zf.open(info) as member:
                    data = member.read(info.file_size + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise InputError(f"key {name!r}: corrupt archive member ({_first_line(exc)})",
                                 option=option, source=source) from None
            return load_npy_bytes(data, option=option, source=f"{source}:{name}")

        if key is not None:
            if key not in names:
                raise InputError(f"no array named {key!r}; it holds: {', '.join(sorted(names)) or 'nothing'}",
                                 option=option, source=source)
            return read(key)
        if not names:
            raise InputError("the archive holds no arrays", option=option, source=source)
        if option == "--from":
            return {name: read(name) for name in names}
        if len(names) > 1:
            raise InputError(
                f"holds several arrays ({', '.join(sorted(names))}); name one as FILE.npz:KEY",
                option=option, source=source,
            )
        return read(next(iter(names)))
