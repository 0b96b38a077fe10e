"""Sources with a URL scheme (s3://, gs://, az://, http(s)://, hf://, ...) read through fsspec, an optional dependency.

The functions here take a local path or a URL alike, so a reader need not care where its bytes come from: whole
reads fetch the file in one request, `open_binary` gives a file read front to back (the .npy, text and JSON Lines
row readers stream from it in bounded memory), `open_random` a file read at any offset (Parquet, Arrow IPC/Feather
and .safetensors from s3, gs, az, hf, or a web server that serves byte ranges), and where a web server does not,
those readers get a temporary copy. Credentials come from each file system's usual places (environment variables,
config files, instance metadata); lossctl never takes them as options nor prints them.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import os
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..errors import InputError, LossctlError, UsageError

URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
EXTRA = "pip install 'lossctl[remote]'"
# The package behind each protocol, where fsspec does not bring it; s3fs and aiohttp come with the remote extra.
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
            "abfss": "adlfs", "adl": "adlfs", "hf": "huggingface_hub", "http": "aiohttp", "https": "aiohttp"}
IN_EXTRA = ("s3fs", "aiohttp")
UNLISTABLE = ("http", "https")  # a web server gives no listing to match a glob against
BLOCK_BYTES = 4 << 20  # what one range request of a streamed file fetches ahead: the memory it holds beyond a chunk


def scheme(source: Any) -> str | None:
    """`s3` for `s3://bucket/key`; None for a local path (a Windows drive letter has no `//`)."""
    m = URL.match(source) if isinstance(source, str) else None
    return m.group(1).lower() if m else None


def is_url(source: Any) -> bool:
    return scheme(source) is not None


def filesystem(url: str, option: str) -> tuple[Any, str]:
    """The fsspec file system for a URL, and the path within it; a missing package is one line naming it."""
    proto = scheme(url)
    try:
        import fsspec
    except ImportError:
        raise InputError(f"reading {proto}:// URLs needs fsspec: {EXTRA}", option=option, source=url) from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError:
        package = PACKAGES.get(proto or "", f"the package fsspec names for {proto}://")
        how = EXTRA if package in IN_EXTRA else f"pip install {package}"
        raise InputError(f"reading {proto}:// URLs needs {package}: {how}", option=option, source=url) from None
    except ValueError as exc:  # Protocol not known
        raise InputError(f"no file system for {proto}:// ({_first_line(exc)})", option=option, source=url) from None
    except Exception as exc:  # noqa: BLE001  some file systems connect as they start (ftp, sftp): their errors vary
        raise InputError(f"cannot reach the server ({type(exc).__name__}: {_first_line(exc)})", option=option,
                         source=url) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:160] if lines else type(exc).__name__


@contextlib.contextmanager
def reading(url: str, option: str) -> Iterator[None]:
    """A remote file system's failures as one InputError line (the file system's own error types vary); a local
    path's errors pass through as the readers handle them."""
    if not is_url(url):
        yield
        return
    try:
        yield
    except LossctlError:
        raise
    except FileNotFoundError as exc:
        cause = exc.__cause__  # fsspec's http answers any failure to reach a server with FileNotFoundError
        if cause is not None and not isinstance(cause, FileNotFoundError) and getattr(cause, "status", None) != 404:
            raise InputError(f"cannot read ({type(cause).__name__}: {_first_line(cause)})", option=option,
                             source=url) from None
        raise InputError("no such file", option=option, source=url) from None
    except PermissionError as exc:
        raise InputError(f"access denied ({_first_line(exc)}); credentials come from the file system's usual "
                         "environment variables and config files", option=option, source=url) from None
    except Exception as exc:  # noqa: BLE001  botocore, aiohttp, the Azure and Google clients each raise their own
        raise InputError(f"cannot read ({type(exc).__name__}: {_first_line(exc)})", option=option,
                         source=url) from None


def read_bytes(path: str, option: str) -> bytes:
    """A whole file, local or remote (one request)."""
    if not is_url(path):
        try:
            with open(path, "rb") as fp:
                return fp.read()
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", option=option, source=path) from None
    fs, inner = filesystem(path, option)
    with reading(path, option):
        return fs.cat_file(inner)


def open_whole(path: str, option: str) -> BinaryIO:
    """A seekable file: a local one, or a remote one fetched whole into memory (for .npz and .pt archives)."""
    if not is_url(path):
        return open_binary(path, option)
    return io.BytesIO(read_bytes(path, option))


def open_binary(path: str, option: str) -> BinaryIO:
    """A file to read front to back, local or remote. A remote file holds at most BLOCK_BYTES beyond what is
    asked of it; over http(s) it is one streamed response (servers need not support range requests)."""
    if not is_url(path):
        try:
            return open(path, "rb")  # noqa: SIM115  the caller closes it
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", option=option, source=path) from None
    fs, inner = filesystem(path, option)
    block = 0 if scheme(path) in UNLISTABLE else BLOCK_BYTES
    with reading(path, option):
        # Buffered as a local file is: readline(limit), peek; big reads go straight through to the remote file.
        return io.BufferedReader(fs.open(inner, "rb", block_size=block), buffer_size=1 << 16)


def seekable(url: str) -> bool:
    """Whether a URL's file system reads at any offset (range requests); an http(s) server is asked (serves_ranges)."""
    if not is_url(url):
        return False
    return scheme(url) not in UNLISTABLE or serves_ranges(url)


@functools.lru_cache(maxsize=64)
def serves_ranges(url: str) -> bool:
    """Whether the web server behind an http(s) URL answers a range request with that range, as most file hosts
    do (Python's own http.server does not): a request for the file's size, then one for its last byte; the answer
    is remembered for the run (a failure reads as no ranges, and the copy that follows reports it)."""
    try:
        fs, inner = filesystem(url, "")
        with fs.open(inner, "rb", block_size=BLOCK_BYTES) as fp:
            fetch = getattr(fp, "_fetch_range", None)  # a file of unknown size is a stream: no ranges
            return fetch is not None and bool(fp.size) and len(fetch(fp.size - 1, fp.size)) == 1
    except Exception:  # noqa: BLE001  no ranges (fsspec's ValueError), or any failure: read front to back instead
        return False


def open_random(path: str, option: str) -> BinaryIO:
    """A remote file to read at any offset (a seekable URL: see seekable), fetching BLOCK_BYTES at a time."""
    fs, inner = filesystem(path, option)
    with reading(path, option):
        return fs.open(inner, "rb", block_size=BLOCK_BYTES)


def file_size(path: str, option: str) -> int | None:
    """Bytes in a local or remote file; None where a server does not say."""
    if not is_url(path):
        return os.path.getsize(path)
    fs, inner = filesystem(path, option)
    with reading(path, option):
        return fs.size(inner)


def is_file(path: str) -> bool:
    """Whether a local path or URL names a readable file (False on any doubt: the loader then says why)."""
    if not is_url(path):
        return os.path.isfile(path)
    try:
        fs, inner = filesystem(path, "")
        return bool(fs.isfile(inner))
    except Exception:  # noqa: BLE001  a missing package, refused credentials, a network error
        return False


def expand_glob(pattern: str, option: str) -> list[str]:
    """The files a glob matches, sorted: local paths, or URLs where the file system can list (not http)."""
    if not is_url(pattern):
        return sorted(glob.glob(pattern))
    proto = scheme(pattern)
    if proto in UNLISTABLE:
        raise UsageError(f"a glob cannot match {proto}:// URLs (a web server gives no listing); give each URL",
                         option=option)
    fs, inner = filesystem(pattern, option)
    with reading(pattern, option):
        return sorted(fs.unstrip_protocol(p) for p in fs.glob(inner) if not fs.isdir(p))


def has_glob(source: str) -> bool:
    """Whether a source is a pattern; `?` in an http(s) URL starts its query, not a pattern."""
    if scheme(source) in UNLISTABLE:
        return any(c in source for c in "*[")
    return glob.has_magic(source)


@contextlib.contextmanager
def local_copy(path: str, option: str) -> Iterator[str]:
    """A local path for readers that need one: the path itself, or a remote file copied to a temporary file.
    Errors raised inside name the URL, not the copy."""
    if not is_url(path):
        yield path
        return
    ext = os.path.splitext(path)[1]
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lossctl-", ignore_cleanup_errors=True) as tmp:
        copy = os.path.join(tmp, "copy" + ext)
        with open_binary(path, option) as src, open(copy, "wb") as dst, reading(path, option):
            shutil.copyfileobj(src, dst, BLOCK_BYTES)
        try:
            yield copy
        except LossctlError as exc:
            if exc.source is None or not exc.source.startswith(copy):
                raise
            raise type(exc)(exc.message.replace(copy, path), option=exc.option,
                            source=path + exc.source[len(copy):]) from None
