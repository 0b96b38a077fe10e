"""Reading .npy safely: the header is checked against the bytes present before anything is allocated."""

from __future__ import annotations

import io
import re
import struct
from typing import BinaryIO, NamedTuple

import numpy as np

from ..errors import InputError, MissingKeyError
from .common import listing, native
from .remote import file_size, open_binary, reading

MAGIC = b"\x93NUMPY"
STDIN = "<stdin>"
STDIN_READS = "standard input reads .npy, .npz, JSON, JSON Lines and text tables; give the file by its path"
STDIN_KEYS = "standard input cannot name one: give the file's path as FILE:KEY, or pipe it to --from -"
MAX_HEADER = 1 << 16  # numpy refuses headers past 10 KiB unless told; a header of numbers is far smaller


class NpyHeader(NamedTuple):
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


def read_header(fp: BinaryIO, *, option: str, source: str, size: int | None = None,
                numbers: bool = True) -> NpyHeader:
    """Parse and validate the header of an .npy stream at its start, reading it forward only.

    The header's length is checked before its bytes are read, and its shape against `size` (the bytes
    present) before the data is allocated. numbers: False lets a dtype of no numbers (objects, strings) pass.
    """
    head = fp.read(len(MAGIC) + 2)
    if head[:len(MAGIC)] != MAGIC:
        if not head:
            raise InputError("the file is empty", option=option, source=source)
        raise InputError("not an .npy file (bad magic bytes)", option=option, source=source)
    version = (head[len(MAGIC)], head[len(MAGIC) + 1]) if len(head) == len(MAGIC) + 2 else None
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise InputError(f"unsupported .npy format version {version}", option=option, source=source)
    lenfmt = "<H" if version == (1, 0) else "<I"
    raw_len = fp.read(struct.calcsize(lenfmt))
    if len(raw_len) != struct.calcsize(lenfmt):
        raise InputError("truncated in the header", option=option, source=source)
    (hlen,) = struct.unpack(lenfmt, raw_len)
    if hlen > MAX_HEADER:
        raise InputError(f"malformed .npy header: it claims {hlen} bytes (more than {MAX_HEADER} is refused)",
                         option=option, source=source)
    raw = fp.read(hlen)
    if len(raw) != hlen:
        raise InputError(f"truncated in the header ({len(raw)} of {hlen} bytes)", option=option, source=source)
    fmt = np.lib.format
    reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    try:
        if version == (3, 0):  # utf-8 header: numpy reads it the same way once re-encoded as latin-1
            raw = raw.decode("utf-8").encode("latin1")
        shape, fortran, dtype = reader(io.BytesIO(raw_len + raw), max_header_size=MAX_HEADER)
    except Exception as exc:  # noqa: BLE001  numpy parses a hostile header with literal_eval: anything can fly
        raise InputError(f"malformed .npy header ({_first_line(exc)})", option=option, source=source) from None
    if numbers and dtype.hasobject:
        raise InputError(
            "holds Python objects (a pickle); lossctl never unpickles, save numbers instead",
            option=option, source=source,
        )
    if numbers and dtype.kind not in "biuf":
        raise InputError(f"unsupported dtype {dtype} (need numbers)", option=option, source=source)
    if any(int(d) < 0 for d in shape):
        raise InputError(f"malformed .npy header: negative dimension in shape {shape}", option=option, source=source)
    header = NpyHeader(tuple(int(d) for d in shape), dtype, bool(fortran), len(head) + len(raw_len) + hlen)
    _check_fits(header, option=option, source=source)
    if size is not None and header.offset + header.nbytes > size:
        raise InputError(
            f"truncated: the header declares shape {header.shape} ({header.nbytes} bytes of {dtype}) "
            f"but only {max(size - header.offset, 0)} bytes of data are present",
            option=option, source=source,
        )
    return header


def _check_fits(header: NpyHeader, *, option: str, source: str) -> None:
    """A shape NumPy cannot make an array of: more than 64 axes, or (zero-size ones too, which pass the bytes
    check) dimensions whose non-zero product in bytes is past the largest address."""
    limit, n = np.iinfo(np.intp).max, header.dtype.itemsize
    for d in header.shape:
        n *= d or 1
    if len(header.shape) > 64 or n > limit:
        why = f"{len(header.shape)} axes, NumPy's limit is 64" if len(header.shape) > 64 else "too big for an array"
        raise InputError(f"malformed .npy header: shape {_shape_text(header.shape)} ({why})",
                         option=option, source=source)


def _shape_text(shape: tuple[int, ...]) -> str:
    return str(shape) if len(shape) <= 8 else f"({', '.join(map(str, shape[:4]))}, ... {len(shape)} axes)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # literal_eval names what it refused by its repr ('<ast.BinOp object at 0x7f...>'): say what kind it is instead
    line = re.sub(r"<ast\.(\w+) object at 0x[0-9a-fA-F]+>", lambda m: f"an expression ({m.group(1)})", text[0]) \
        if text else type(exc).__name__
    return line[:200]


def read_npy(fp: BinaryIO, *, option: str, source: str, size: int | None = None) -> np.ndarray:
    header = read_header(fp, option=option, source=source, size=size)
    # A bytearray keeps the array writable (torch warns on read-only arrays) and is the one copy made.
    data = bytearray(header.nbytes)
    got = fp.readinto(data) if header.nbytes else 0
    while got < header.nbytes:
        more = fp.readinto(memoryview(data)[got:])
        if not more:
            raise InputError(
                f"truncated: expected {header.nbytes} bytes of data for shape {header.shape}, got {got}",
                option=option, source=source,
            )
        got += more
    order = "F" if header.fortran else "C"
    arr = np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order=order)
    return native(arr)


def load_npy_path(path: str, *, option: str) -> np.ndarray:
    """An .npy file, local or remote (a URL: read front to back through fsspec)."""
    with open_binary(path, option) as fp, reading(path, option):
        return read_npy(fp, option=option, source=path, size=file_size(path, option))


def load_npy_bytes(data: bytes, *, option: str, source: str) -> np.ndarray:
    return read_npy(io.BytesIO(data), option=option, source=source, size=len(data))


def load_npz(fp, *, option: str, source: str, key: str | None) -> np.ndarray | dict[str, np.ndarray]:
    """Read one array (`key`, or the only one) of an .npz; with key None and several arrays, return them all."""
    import zipfile
    import zlib

    # What a damaged or exotic archive raises: CRC and size errors, encryption, unknown compression.
    broken = (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error)
    try:
        zf = zipfile.ZipFile(fp)
    except broken as exc:
        raise InputError(f"not a readable .npz archive ({_first_line(exc)})", option=option, source=source) from None
    with zf:
        names = {n[:-4] if n.endswith(".npy") else n: n for n in zf.namelist()}
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            how = STDIN_READS if source == STDIN else "name it .pt"
            raise InputError(f"a PyTorch archive (torch.save), not an .npz: {how}", option=option, source=source)

        def read(name: str) -> np.ndarray:
            info = zf.getinfo(names[name])
            try:
                with zf.open(info) as member:
                    # Streamed: the header is checked against the member's declared size before any allocation.
                    return read_npy(member, option=option, source=f"{source}:{name}", size=info.file_size)
            except broken as exc:
                raise InputError(f"key {name!r}: corrupt archive member ({_first_line(exc)})",
                                 option=option, source=source) from None

        if key is not None:
            if key not in names:
                raise MissingKeyError(f"no array named {key!r}; it holds: {listing(names) or 'nothing'}",
                                 option=option, source=source)
            return read(key)
        if not names:
            raise InputError("the archive holds no arrays", option=option, source=source)
        if option == "--from":  # members of no numbers (class names, pickled objects) cannot fill a role: None
            return {name: read(name) if _holds_numbers(zf, names[name]) else None for name in names}
        if len(names) > 1:
            how = STDIN_KEYS if source == STDIN else "name one as FILE.npz:KEY"
            raise InputError(f"holds several arrays ({listing(names)}); {how}", option=option, source=source)
        return read(next(iter(names)))


def _holds_numbers(zf, member: str) -> bool:
    """Whether an archive member's .npy header (read alone) declares numbers; a damaged one is left to the read,
    and a member that is no .npy (a README beside the arrays) left out."""
    if not member.endswith(".npy"):
        return False
    try:
        with zf.open(member) as fp:
            dtype = read_header(fp, option="--from", source=member, numbers=False).dtype
    except Exception:  # noqa: BLE001  the read of the member names what is wrong with it
        return True
    return dtype.kind in "biuf" and not dtype.hasobject
