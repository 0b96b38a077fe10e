"""What the optional-format readers (.safetensors, Parquet/Arrow, JSON Lines) share: their optional imports and
the numeric check every array they return passes."""

from __future__ import annotations

import importlib

import numpy as np

from ..errors import InputError, MissingKeyError

# The pip extra that brings each optional package, as pyproject.toml names it.
EXTRAS = {"safetensors": "safetensors", "pyarrow": "parquet"}


def require(module: str, *, ext: str, option: str, source: str):
    """Import an optional package (or one of its submodules), or say in one line which extra brings it."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"reading {ext} needs {top}: pip install 'lossctl[{EXTRAS[top]}]'",
                         option=option, source=source) from None


class Widened(np.ndarray):
    """A float32 array read from a dtype NumPy cannot hold (bfloat16, float8): `stored` names that dtype, so that
    the loss can say it computed in float32 where torch computes in that dtype. Loaded unwraps it."""

    stored: str = ""

    def __array_finalize__(self, obj) -> None:
        self.stored = getattr(obj, "stored", "")


def widened(arr: np.ndarray, stored: str) -> np.ndarray:
    out = arr.view(Widened)
    out.stored = stored
    return out


def unwrap(arr) -> tuple[np.ndarray, str]:
    """A plain array and the dtype it was widened from ("" where it was not)."""
    if isinstance(arr, Widened):
        return arr.view(np.ndarray), arr.stored
    return arr, ""


def numeric(arr: np.ndarray, *, option: str, source: str) -> np.ndarray:
    """Numbers only, as every format's reader demands; float16 kept (it computes in float32, with a note, as an
    .npy's does), and writable for torch."""
    if arr.dtype.kind not in "biuf":
        raise InputError(f"unsupported dtype {arr.dtype} (need numbers)", option=option, source=source)
    arr = native(arr)
    return arr if arr.flags.writeable else arr.copy()


def native(arr: np.ndarray) -> np.ndarray:
    """The array in this machine's byte order (a big-endian file's '>f8' as float64): a copy only if it differs."""
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


LISTED = 20  # names an error lists at most: a pandas Series' to_json has a key per row


def listing(names) -> str:
    """The names, sorted and comma-separated, the first LISTED of them and how many more."""
    names = sorted(map(str, names))
    more = f", and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def one_name(names: list[str], key: str | None, *, what: str, hint: str, option: str, source: str) -> str:
    """The name `key` picks (or the only one when `key` is None), else an error listing the names."""
    listed = listing(names) or "nothing"
    if key is None:
        if len(names) == 1:
            return names[0]
        if not names:
            raise InputError(f"holds no {what}s", option=option, source=source)
        raise InputError(f"holds several {what}s ({listed}); name one as {hint}", option=option, source=source)
    if key not in names:
        raise MissingKeyError(f"no {what} named {key!r}; it holds: {listed}", option=option, source=source)
    return key
