"""The CTC loss, as torch.nn.CTCLoss computes it."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UsageError, ValueRangeError
from ..reduce import LossOutput
from ._common import (
    INTEGER_DTYPES,
    Context,
    at_index,
    check_classes,
    check_nonempty,
    check_range,
    check_whole,
    flag,
    floats,
    index_dtype_notes,
    ints,
)


def _lengths(lp: np.ndarray, in_len: np.ndarray, tg_len: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lengths checked against (T, N, C) or (T, C) log-probs: (N) or () whole numbers, each input <= T."""
    length_shape = (lp.shape[1],) if lp.ndim == 3 else ()
    if lp.ndim == 2:  # torch takes an unbatched sequence's lengths as () or (1,), as [7] is often written
        in_len, tg_len = (a.reshape(()) if a.shape == (1,) else a for a in (in_len, tg_len))
    for role, arr in (("input_lengths", in_len), ("target_lengths", tg_len)):
        if arr.shape != length_shape:
            raise ShapeError(f"shape {arr.shape} does not match --log-probs {lp.shape}; expected {length_shape}",
                             option=flag(role))
        check_whole(arr, role, "lengths")
    check_range("input_lengths", in_len, 0, lp.shape[0], f"input lengths must be in [0, T = {lp.shape[0]}]")
    check_range("target_lengths", tg_len, 0, None, "target lengths must be >= 0")
    return in_len, tg_len


def ctc(log_probs, target, input_lengths, target_lengths, *, blank: int = 0, zero_infinity: bool = False,
        ctx: Context) -> LossOutput:
    """torch.nn.CTCLoss: loss_n = -log sum over the alignments a of target_n of prod_t p_t(a_t); 'mean' divides
    each loss by its target length (at least 1) before averaging over the sequences."""
    import torch
    import torch.nn.functional as F

    lp, in_len, tg_len = log_probs, input_lengths, target_lengths
    check_nonempty("log_probs", lp)
    if lp.ndim not in (2, 3):
        raise ShapeError(f"must be (T, N, C) or (T, C); got shape {lp.shape}", option="--log-probs")
    batched = lp.ndim == 3
    n_classes = lp.shape[-1]
    n = lp.shape[1] if batched else None
    in_len, tg_len = _lengths(lp, in_len, tg_len)
    if not 0 <= blank < n_classes:
        raise UsageError(f"must be a class index in [0, {n_classes}); got {blank}", option="--blank")
    lengths = np.atleast_1d(tg_len).astype(np.int64)
    if target.ndim == 2 and (batched or target.shape[0] == 1):  # torch pads an unbatched target as one row too
        rows = n or 1
        if target.shape[0] != rows or lengths.max(initial=0) > target.shape[1]:
            raise ShapeError(f"padded targets {target.shape} need {rows} row{'s' if rows != 1 else ''} of at least "
                             f"{int(lengths.max())} labels", option="--target")
        used = np.arange(target.shape[1])[None, :] < lengths[:, None]
    elif target.ndim == 1:
        need = int(lengths.sum()) if batched else int(lengths[0])
        if target.shape[0] != need:
            raise ShapeError(f"concatenated targets hold {target.shape[0]} labels; the target lengths add up to "
                             f"{need}", option="--target")
        used = np.arange(target.shape[0]) < need
    else:
        raise ShapeError(f"must be (N, S) or concatenated (sum of target lengths); got shape {target.shape}",
                         option="--target")
    kept = np.where(used, target, 0)
    check_classes("target", kept, n_classes, None)
    blanks = np.flatnonzero(used & (target == blank))
    if blanks.size:
        raise ValueRangeError(f"the blank label {blank} appears{at_index(target, blanks[0])}",
                              option="--target")
    t = ints(target, "target", ctx)
    il, tl = ints(in_len, "input_lengths", ctx), ints(tg_len, "target_lengths", ctx)
    values = F.ctc_loss(floats(lp, ctx), t, il, tl, blank=blank, reduction="none",
                        zero_infinity=zero_infinity)
    # torch's 'mean' divides each sequence's loss by its target length (at least 1), then averages
    mean_values = values / tl.clamp(min=1).to(values.dtype)
    out = LossOutput(values, mean_values=mean_values, rows=n or 1, unit="sequences")
    for role, arr in (("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        out.notes += index_dtype_notes(arr, role, accepted=INTEGER_DTYPES, what="lengths")
    if ctx.reduction == "mean":
        out.notes.append("mean: each loss is divided by its target length, then averaged over the sequences")
    if bool(torch.isinf(values).any()):
        out.warnings.append("some sequences have no alignment of non-zero probability (an input too short for its "
                            "target, or log-probabilities of -inf on every path): their loss is inf; "
                            "--zero-infinity sets it to 0")
    if zero_infinity and bool((values == 0).any()):  # only a zeroed loss or a certain alignment is 0
        out.notes += _zeroed_note(lambda: F.ctc_loss(floats(lp, ctx), t, il, tl, blank=blank, reduction="none"),
                                  values.numel(), ctx.reduction)
    return out


def _zeroed_note(losses, n: int, reduction: str) -> list[str]:
    """--zero-infinity: how many losses it set to 0, from `losses()` without it, and that the mean still counts them."""
    import torch

    with torch.no_grad():
        zeroed = int(losses().isinf().sum())
    if not zeroed:
        return []
    return [f"--zero-infinity set the infinite loss of {zeroed} of {n} sequence{'s' if n != 1 else ''} to 0 (no "
            "alignment of non-zero probability)" + (f"; {'they still count' if zeroed > 1 else 'it still counts'} in "
                                                   "the mean's denominator, as torch counts them"
                                                   if reduction == "mean" else "")]
