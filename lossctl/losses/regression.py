"""Elementwise regression losses, as torch.nn computes them."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import Context, check_nonempty, check_range, check_shape, floats


def _pair(a: dict, ctx: Context):
    """--input and --target of one shape (torch broadcasts with only a warning; lossctl refuses)."""
    x, y = a["input"], a["target"]
    check_nonempty("input", x)
    check_shape("target", y, x.shape, "--input", x.shape)
    return floats(x, ctx), floats(y, ctx)


def _rows(arr: np.ndarray) -> int:
    return arr.shape[0] if arr.ndim else 1


def _elementwise(fn_name: str, a: dict, ctx: Context, **kwargs) -> LossOutput:
    import torch.nn.functional as F

    x, y = _pair(a, ctx)
    return LossOutput(getattr(F, fn_name)(x, y, reduction="none", **kwargs), rows=_rows(a["input"]))


def l1(a: dict, o: dict, ctx: Context) -> LossOutput:
    return _elementwise("l1_loss", a, ctx)


def mse(a: dict, o: dict, ctx: Context) -> LossOutput:
    return _elementwise("mse_loss", a, ctx)


def huber(a: dict, o: dict, ctx: Context) -> LossOutput:
    if not o["delta"] > 0:
        raise UsageError(f"must be > 0; got {o['delta']}", option="--delta")
    return _elementwise("huber_loss", a, ctx, delta=o["delta"])


def smooth_l1(a: dict, o: dict, ctx: Context) -> LossOutput:
    if o["beta"] < 0:
        raise UsageError(f"must be >= 0; got {o['beta']}", option="--beta")
    return _elementwise("smooth_l1_loss", a, ctx, beta=o["beta"])


def poisson_nll(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch.nn.functional as F

    if not o["log_input"]:
        check_range("input", a["input"], 0.0, None, "rates must be >= 0 without --log-input")
    check_range("target", a["target"], 0.0, None, "Poisson targets must be >= 0")
    x, y = _pair(a, ctx)
    values = F.poisson_nll_loss(x, y, log_input=o["log_input"], full=o["full"], eps=o["eps"], reduction="none")
    return LossOutput(values, rows=_rows(a["input"]))


def gaussian_nll(a: dict, o: dict, ctx: Context) -> LossOutput:
    import torch.nn.functional as F

    x, y = _pair(a, ctx)
    var = a["var"]
    shape = a["input"].shape
    fits = var.shape == shape or (len(shape) and (var.shape == shape[:-1] or var.shape == (*shape[:-1], 1)))
    if not fits:
        raise ShapeError(f"shape {var.shape} fits neither the input's {shape}, nor {shape[:-1]}, nor "
                         f"{(*shape[:-1], 1)}", option="--var")
    check_range("var", var, 0.0, None, "variances must be >= 0")
    if o["eps"] < 0:
        raise UsageError(f"must be >= 0; got {o['eps']}", option="--eps")
    values = F.gaussian_nll_loss(x, y, floats(var, ctx), full=o["full"], eps=o["eps"], reduction="none")
    out = LossOutput(values, rows=_rows(a["input"]))
    clamped = int((var < o["eps"]).sum())
    if clamped:
        out.notes.append(f"{clamped} variance(s) below --eps ({o['eps']:g}) were clamped to eps, as torch does")
    return out
