"""Pure NumPy loss kernels: per element exactly what torch.nn.functional computes with reduction='none'.

They run after validation: arrays arrive cast to the compute float dtype (float32 or float64), class indices as
integer arrays, options in range. Each step runs in the input's float dtype, as torch's CPU kernels do, so float32
results match torch to float32 rounding. A kernel holds at most a couple of temporaries the size of its input
(callers run them on chunks of a large file, on several threads; NumPy's ufuncs release the GIL), and none
imports torch. The tests hold every kernel to the torch function it mirrors (`lossctl.losses.torch_ops` has the
same functions, computed by torch).
"""

from __future__ import annotations

import importlib

import numpy as np

from ._common import QUIET
from .classification import log_softmax

# Each family's module is imported when one of its kernels is first asked for: a run imports only its own.
_FAMILY = {name: family for family, names in {
    "classification": ("bce_logits", "bce_probs", "cross_entropy_index", "cross_entropy_prob", "focal_index",
                       "focal_sigmoid"),
    "distance": ("cosine_embedding", "cosine_similarity", "pairwise_distance"),
    "divergence": ("entropy", "js", "kl_div"),
    "regression": ("huber", "l1", "mse", "smooth_l1"),
}.items() for name in names}

__all__ = sorted([*_FAMILY, "log", "log_softmax", "softmax"])


def __getattr__(name: str):
    if name in _FAMILY:
        return getattr(importlib.import_module(f"{__name__}.{_FAMILY[name]}"), name)
    raise AttributeError(name)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """exp(log_softmax(x)) along `axis`, in x's dtype."""
    out = log_softmax(x, axis)
    return np.exp(out, out=out)


def log(p: np.ndarray) -> np.ndarray:
    """Elementwise log, log 0 = -inf without a warning (as torch.log)."""
    with np.errstate(**QUIET):
        return np.log(p)
