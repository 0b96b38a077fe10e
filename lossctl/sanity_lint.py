"""Input-convention lints: arrays that are valid numbers but probably not what the option says they are.

Each lint returns a list of warning strings (empty when silent), each naming the rule, the evidence and the fix.
They only read arrays; the caller decides when a lint applies (which loss, which option).

Tolerances for "sums to 1": 1e-6 for float64 (and integers), 1e-3 for float32 (the tolerance lossctl already
uses for probability rows), 1e-2 for float16 (eps 1e-3, and a row of tens of classes sums that error up).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ShapeError, UsageError
from .losses._common import sum_tolerance

# Sigmoid outputs passed as logits: the lint needs this many values. A real model's logits lie in [0, 1] only where
# its probability lies in [0.5, 0.73]. For logits spread symmetrically around 0 (any untrained model, or a trained
# one on balanced data) each value is negative with probability 1/2, so all of 16 in [0, 1] by chance has
# probability below 2**-16 (1.5e-5); for N(0, 1) logits 0.34**16 (3e-8). Fewer values prove too little.
SIGMOID_MIN_COUNT = 16

# ... and the values must spread over at least this much of [0, 1]. A model's probabilities lean both ways (a trained
# binary classifier's span nearly all of it), but the logits of a model at initialisation sit close to the final
# bias, which the usual init sets to log(r / (1 - r)) for a positive rate r: in [0, 1] for r in [0.5, 0.73].
SIGMOID_MIN_SPREAD = 0.5

# A KL divergence of distributions is >= 0; a reduced float32 KL of equal distributions can come out a few
# ulps below 0, so only a value below -1e-5 (about 100 float32 ulps at 1) is reported.
NEGATIVE_KL_TOL = 1e-5


def row_tolerance(dtype) -> float:
    """How far a row of probabilities in this dtype may sum from 1."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize < 4:
        return 1e-2
    return sum_tolerance(np.float32 if dtype == np.float32 else np.float64)


def lint_logits_are_probs(logits, class_axis: int | None = None, *, option: str = "--logits",
                          fix: str = "pass them as --probs, or pass the raw logits") -> list[str]:
    """ce, nll, perplexity, kl, entropy, js, decompose, check: logits that look like probabilities get softmax
    applied twice.

    Rule: at least 2 classes, every value in [0, 1] and every row (along the class axis; torch's axis 1, or 0 for
    a 1-D input, unless class_axis says otherwise) sums to 1 within row_tolerance(dtype). Softmax of a
    probability row is close to uniform, so the loss sits near ln C whatever the model predicted.
    option: the flag that holds them; fix: what to do instead, as the command offers it.
    """
    rows = _probability_rows(np.asarray(logits), class_axis)
    if rows is None:
        return []
    tol = row_tolerance(np.asarray(logits).dtype)
    return [f"{option} {_look(option)} like probabilities (every value in [0, 1] and every row sums to 1 within "
            f"{tol:g}): softmax would be applied twice; {fix}"]


def _look(option: str) -> str:
    """The verb after a flag: --logits look, --input looks."""
    return "look" if option.endswith("s") else "looks"


def lint_log_probs_are_probs(log_probs, class_axis: int | None = None, *, other_inputs: bool = True) -> list[str]:
    """kl, nll, ctc: --log-probs must be log-probabilities, which are <= 0.

    Rule 1: every value in [0, 1] and every row sums to 1 within row_tolerance(dtype): probabilities were passed
    where their logarithm belongs. Rule 2 (otherwise): some value above row_tolerance(dtype), i.e. a
    "probability" above 1: raw logits, most likely (the NLL trap: torch takes them silently).
    other_inputs: the loss also takes --probs and --logits (kl, nll), which the fix then names; ctc does not.
    """
    arr = np.asarray(log_probs)
    rows = _probability_rows(arr, class_axis)
    tol = row_tolerance(arr.dtype)
    if rows is not None:
        return [f"--log-probs look like probabilities (every value in [0, 1] and every row sums to 1 within "
                f"{tol:g}), but log-probabilities are <= 0: "
                + ("pass them as --probs (the log is taken for you), or pass log(probs)" if other_inputs
                   else "pass log(probs)")]
    if arr.size and arr.dtype.kind in "fiu" and float(np.max(arr)) > tol:
        return ["--log-probs has values above 0, but log-probabilities are <= 0: these look like raw logits; "
                + ("pass them as --logits (log_softmax is applied for you)" if other_inputs
                   else "pass log_softmax(logits) over the classes")]
    return []


def lint_negative_kl(value: float, *, tol: float = NEGATIVE_KL_TOL) -> list[str]:
    """kl: a KL divergence reduced over whole distributions (sum, mean, batchmean) is >= 0.

    Rule: value < -tol (NEGATIVE_KL_TOL). Not for reduction none: single terms p (log p - log q) may be negative.
    """
    if not (math.isfinite(value) and value < -tol):
        return []
    return [f"KL is negative ({value:.6g} < 0), but KL(target || model) >= 0 for any two distributions: "
            "--log-probs must be log-probabilities (<= 0; probabilities go in --probs) and --target "
            "probabilities whose rows sum to 1 (log-probabilities need --target-kind log-prob)"]


def lint_sigmoid_applied(logits, min_count: int = SIGMOID_MIN_COUNT, min_spread: float = SIGMOID_MIN_SPREAD, *,
                         option: str = "--logits", fix: str = "pass them as --probs, or pass the raw logits"
                         ) -> list[str]:
    """bce, focal, multilabel-soft-margin: --logits that look like sigmoid outputs get sigmoid applied twice.

    Rule: at least min_count values (SIGMOID_MIN_COUNT = 16, see there for why), every one in [0, 1], and their
    largest at least min_spread (SIGMOID_MIN_SPREAD = 0.5) above their least.
    option: the flag that holds them; fix: what to do instead, as the command offers it.
    """
    arr = np.asarray(logits)
    first = arr.reshape(-1)[:64]  # a rule about every value: the first ones refute it cheaply
    if arr.size < min_count or not (float(first.min()) >= 0 and float(first.max()) <= 1):
        return []
    low, high = float(arr.min()), float(arr.max())
    if not (low >= 0 and high <= 1 and high - low >= min_spread):
        return []
    return [f"{option} {_look(option)} like sigmoid outputs (every value in [0, 1]; real logits are negative "
            f"wherever the model leans to 0): sigmoid would be applied twice; {fix}"]


def classes_last_hint(logits_shape, target_shape) -> str | None:
    """Logits (N, L, C) with index targets (N, L): the Hugging Face layout, classes last; torch wants (N, C, L).

    Fires when the logits' shape minus its last axis is the target's shape (3 or more axes). If torch refuses
    the shapes the hint says so; if it accepts them (L == C) the classes are ambiguous and the hint says that.
    """
    logits_shape, target_shape = tuple(logits_shape), tuple(target_shape)
    if len(logits_shape) < 3 or logits_shape[:-1] != target_shape:
        return None
    layout = (f"--logits {logits_shape} and --target {target_shape} look like classes on the last axis "
              f"({logits_shape[-1]} classes; the Hugging Face layout (N, L, C))")
    if logits_shape[:1] + logits_shape[2:] != target_shape:
        return f"{layout}, which torch refuses: it reads classes from axis 1, (N, C, L); pass --class-axis -1"
    return (f"{layout}, but torch reads classes from axis 1 and accepts these shapes too: if the classes are "
            "last, pass --class-axis -1")


def move_class_axis(logits, class_axis: int) -> np.ndarray:
    """The logits with their class axis moved to torch's position (1; a 1-D input is its classes): a view."""
    arr = np.asarray(logits)
    if arr.ndim == 0:
        raise ShapeError("is a single number; class scores need a class axis", option="--logits")
    if not -arr.ndim <= class_axis < arr.ndim:
        raise UsageError(f"must be in [{-arr.ndim}, {arr.ndim}) for --logits of shape {arr.shape}; "
                         f"got {class_axis}", option="--class-axis")
    return arr if arr.ndim == 1 else np.moveaxis(arr, class_axis, 1)


def _probability_rows(arr: np.ndarray, class_axis: int | None) -> int | None:
    """The number of rows when every value is in [0, 1] and every row sums to 1; else None."""
    if arr.ndim == 0 or arr.size == 0 or arr.dtype.kind not in "fiub":
        return None
    if class_axis is not None:
        arr = move_class_axis(arr, class_axis)
    axis = 0 if arr.ndim == 1 else 1
    first = arr.reshape(-1)[: arr.shape[axis] * 8]  # a rule about every value: the first rows refute it cheaply
    if arr.shape[axis] < 2 or not (float(first.min()) >= 0 and float(first.max()) <= 1):
        return None
    if not (float(arr.min()) >= 0 and float(arr.max()) <= 1):
        return None
    sums = arr.sum(axis=axis, dtype=np.float64)
    if np.max(np.abs(sums - 1.0)) > row_tolerance(arr.dtype):
        return None
    return int(sums.size)
