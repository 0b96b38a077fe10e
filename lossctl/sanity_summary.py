"""The spread of per-sample losses (summary numbers, a text histogram) and a compact signature of a run."""

from __future__ import annotations

import math
import re

import numpy as np

from .errors import UsageError

PERCENTILES = {"p50": 50, "p90": 90, "p99": 99}


def loss_summary(values) -> dict[str, float | int]:
    """{"count", "nan", "mean", "min", "p50", "p90", "p99", "max"} of per-sample losses, in float64.

    NaN values are left out of every statistic and counted under "nan"; "count" is the values kept. With none
    kept, every statistic is nan. +-inf stay in: mean/max become inf; a percentile between an infinite and a
    finite neighbour is the infinite one (the limit of the interpolation), otherwise numpy's default 'linear'
    method: h = (n - 1) q, v = s[floor h] + (s[ceil h] - s[floor h]) (h - floor h) over the sorted values s.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    nan = np.isnan(v)
    s = np.sort(v[~nan])
    out: dict[str, float | int] = {"count": int(s.size), "nan": int(nan.sum())}
    if not s.size:
        return out | {k: math.nan for k in ("mean", "min", *PERCENTILES, "max")}
    with np.errstate(invalid="ignore"):
        out["mean"] = float(s.mean())
    out["min"] = float(s[0])
    for name, q in PERCENTILES.items():
        out[name] = _percentile(s, q)
    out["max"] = float(s[-1])
    return out


def _percentile(s: np.ndarray, q: float) -> float:
    h = (s.size - 1) * q / 100
    lo = math.floor(h)
    hi = min(lo + 1, s.size - 1)
    a, b, frac = float(s[lo]), float(s[hi]), h - lo
    if a == b or frac == 0 or math.isinf(a):
        return a
    return b if math.isinf(b) else a + (b - a) * frac


def histogram_lines(values, bins: int = 10, width: int = 40) -> list[str]:
    """A text histogram of the finite values: one line per bin, `lo .. hi | ####   count`, the longest bar
    `width` characters (a non-empty bin at least one). NaN and inf are left out and counted in a last line."""
    if bins < 1 or width < 1:
        raise UsageError(f"a histogram needs at least 1 bin and 1 column; got bins={bins}, width={width}")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = v[np.isfinite(v)]
    lines = []
    if finite.size:
        try:
            counts, edges = np.histogram(finite, bins=bins)
        except ValueError:  # a range too narrow for `bins` finite-sized bins (values equal to the last ulps)
            counts, edges = np.array([finite.size]), np.array([finite.min(), finite.max()])
        labels = [f"{e:.4g}" for e in edges]
        left, right = max(map(len, labels[:-1])), max(map(len, labels[1:]))
        top = int(counts.max())
        for i, n in enumerate(counts.tolist()):
            bar = "#" * (max(1, round(width * n / top)) if n else 0)
            lines.append(f"{labels[i]:>{left}} .. {labels[i + 1]:>{right}} | {bar:<{width}} {n}")
    skipped = v.size - finite.size
    if skipped:
        lines.append(f"({skipped} non-finite value{'s' if skipped > 1 else ''} not shown)")
    return lines


# Signature keys, in the order they are written: what is computed, the loss's options, how it is computed,
# and the versions. Keys not listed here come after the options, alphabetically.
SIGNATURE_KEYS = {
    "loss": "the loss's name (ce, nll, bce, ...)",
    "red": "the reduction",
    "target": "the target kind (index, prob, ...)",
    "ls": "label smoothing",
    "ii": "ignore index",
    "w": "class or element weights given (yes/no)",
    "pw": "pos_weight given (yes/no)",
    "alpha": "focal alpha",
    "gamma": "focal gamma",
    "dtype": "the compute dtype",
    "backend": "numpy or torch",
    "base": "the logarithm's base (e or 2)",
    "lossctl": "lossctl's version",
    "torch": "torch's version",
}
_TAIL = ("dtype", "backend", "base", "lossctl", "torch")
_KEY = re.compile(r"[a-z][a-z0-9_]*\Z")


def signature(fields: dict) -> str:
    """A sacreBLEU-style string that names everything that determined the number, e.g.
    "loss:ce|red:mean|ls:0.1|ii:-100|w:yes|dtype:float32|backend:numpy|base:e|lossctl:0.1.0|torch:2.13.0".

    Like sacreBLEU, every field that determines the number is written, defaults included, so two signatures
    compare equal only when the numbers are comparable; a field whose value is None does not apply and is left
    out. Keys are written in SIGNATURE_KEYS' order, unknown keys after the loss options in alphabetical order.
    Values: True/False as yes/no, floats in their shortest repr (0.1), '|' replaced by '/' so that values never
    contain the separator.
    """
    for key in fields:
        if not isinstance(key, str) or not _KEY.match(key):
            raise UsageError(f"signature keys are lowercase names like 'ls'; got {key!r}")
    known = [k for k in SIGNATURE_KEYS if k not in _TAIL]
    order = known + sorted(set(fields) - set(SIGNATURE_KEYS)) + list(_TAIL)
    return "|".join(f"{k}:{_format(fields[k])}" for k in order if fields.get(k) is not None)


def _format(value) -> str:
    if hasattr(value, "item"):
        value = value.item()  # a numpy scalar
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)
    return str(value).replace("|", "/")
