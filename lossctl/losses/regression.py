"""Elementwise regression losses, as torch.nn computes them."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError
from ..reduce import LossOutput
from ._common import Context, check_nonempty, check_range, check_shape, floats


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    """--input and --target of one shape (torch broadcasts with only a warning; lossctl refuses)."""
    check_nonempty("input", x)
    check_shape("target", y, x.shape, "--input", x.shape)


def _rows(arr: np.ndarray) -> int:
    return arr.shape[0] if arr.ndim else 1


def l1(input, target, *, ctx: Context) -> LossOutput:
    """torch.nn.L1Loss: loss_i = |x_i - y_i|."""
    _check_pair(input, target)
    return LossOutput(ctx.kernels().l1(ctx.array(input), ctx.array(target)), rows=_rows(input))


def mse(input, target, *, ctx: Context) -> LossOutput:
    """torch.nn.MSELoss: loss_i = (x_i - y_i)^2."""
    _check_pair(input, target)
    return LossOutput(ctx.kernels().mse(ctx.array(input), ctx.array(target)), rows=_rows(input))


def huber(input, target, *, delta: float = 1.0, ctx: Context) -> LossOutput:
    """torch.nn.HuberLoss: d = x - y; 0.5 d^2 if |d| < delta, else delta (|d| - 0.5 delta)."""
    if not delta > 0:
        raise UsageError(f"must be > 0; got {delta}", option="--delta")
    _check_pair(input, target)
    return LossOutput(ctx.kernels().huber(ctx.array(input), ctx.array(target), delta=delta), rows=_rows(input))


def smooth_l1(input, target, *, beta: float = 1.0, ctx: Context) -> LossOutput:
    """torch.nn.SmoothL1Loss: d = x - y; 0.5 d^2 / beta if |d| < beta, else |d| - 0.5 beta (beta = 0: L1)."""
    if beta < 0:
        raise UsageError(f"must be >= 0; got {beta}", option="--beta")
    _check_pair(input, target)
    return LossOutput(ctx.kernels().smooth_l1(ctx.array(input), ctx.array(target), beta=beta), rows=_rows(input))


def poisson_nll(input, target, *, log_input: bool = True, full: bool = False, eps: float = 1e-8,
                ctx: Context) -> LossOutput:
    """torch.nn.PoissonNLLLoss: exp(x) - y x with --log-input, else x - y log(x + eps); --full adds Stirling's
    y log y - y + 0.5 log(2 pi y) where y > 1."""
    import torch.nn.functional as F

    if not log_input:
        check_range("input", input, 0.0, None, "rates must be >= 0 without --log-input")
    check_range("target", target, 0.0, None, "Poisson targets must be >= 0")
    _check_pair(input, target)
    values = F.poisson_nll_loss(floats(input, ctx), floats(target, ctx), log_input=log_input, full=full, eps=eps,
                                reduction="none")
    return LossOutput(values, rows=_rows(input))


def _shares_one_dim(arr: np.ndarray, shape: tuple[int, ...]) -> bool:
    """`shape` with exactly one of its sizes made 1: the array is shared (broadcast) along that dim."""
    return arr.ndim == len(shape) and [a for s, a in zip(shape, arr.shape, strict=True) if s != a] == [1]


def gaussian_nll(input, target, var, *, full: bool = False, eps: float = 1e-6, ctx: Context) -> LossOutput:
    """torch.nn.GaussianNLLLoss: 0.5 (log max(var, eps) + (x - y)^2 / max(var, eps)) [+ 0.5 log(2 pi) if --full]."""
    import torch.nn.functional as F

    check_nonempty("input", input)
    shape = input.shape
    if not (target.shape == shape or _shares_one_dim(target, shape)):  # torch documents both target shapes
        raise ShapeError(f"shape {target.shape} does not match --input {shape}; expected {shape}, or that shape with "
                         "one of its sizes made 1", option="--target")
    # torch's rule: the input's shape, that shape less its last dim, a size of 1 in one of its dims (shared), or a
    # float for every element
    if not (var.shape == shape or (len(shape) and var.shape == shape[:-1]) or _shares_one_dim(var, shape)
            or var.ndim == 0):
        raise ShapeError(f"shape {var.shape} fits neither the input's {shape}, nor {shape[:-1]}, nor that shape "
                         "with one of its sizes made 1, nor one number for every element", option="--var")
    check_range("var", var, 0.0, None, "variances must be >= 0")
    if eps < 0:
        raise UsageError(f"must be >= 0; got {eps}", option="--eps")
    v = floats(var, ctx)
    if var.ndim == 0:  # one variance for every element: torch takes it as a float, var * ones_like(input)
        v = v.expand(shape)
    values = F.gaussian_nll_loss(floats(input, ctx), floats(target, ctx), v, full=full, eps=eps, reduction="none")
    out = LossOutput(values, rows=_rows(input))
    clamped = int((var < eps).sum())
    if clamped:
        out.notes.append(f"{clamped} variance(s) below --eps ({eps:g}) were clamped to eps, as torch does")
    return out
