"""The per-element formulas as torch computes them: the definition every NumPy kernel is held to.

`TorchKernels` has the same methods, parameters and results as the functions of `lossctl.kernels`, so a loss
function validates its inputs once and then computes with whichever the context names. Arrays come in as
validated NumPy arrays (or tensors these methods returned); results are tensors on the context's device.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TorchKernels:
    def __init__(self, device: str = "cpu"):
        self.device = device

    def _t(self, arr: Any):
        import torch

        if arr is None or isinstance(arr, torch.Tensor):
            return arr
        arr = np.asarray(arr)
        # ascontiguousarray makes a 0-d array 1-d; keep the shape, since torch treats () and (1,) differently.
        return torch.from_numpy(np.ascontiguousarray(arr).reshape(arr.shape)).to(self.device)

    def _idx(self, arr: Any):
        import torch

        return self._t(arr).to(torch.int64)

    # --- classification ---------------------------------------------------------------------------------
    def log_softmax(self, x, axis: int):
        return self._t(x).log_softmax(dim=axis)

    def cross_entropy_index(self, x, target, weight=None, *, ignore_index: int = -100, label_smoothing: float = 0.0,
                            input_kind: str = "logits"):
        """(values, denominators) of CE (logits) or NLL (log_probs, probs) with class-index targets."""
        import torch
        import torch.nn.functional as F

        xt, t, w = self._t(x), self._idx(target), self._t(weight)
        if input_kind == "logits":
            values = F.cross_entropy(xt, t, weight=w, ignore_index=ignore_index, reduction="none",
                                     label_smoothing=label_smoothing)
        else:
            logp = xt if input_kind == "log_probs" else torch.log(xt)
            values = F.nll_loss(logp, t, weight=w, ignore_index=ignore_index, reduction="none")
        keep = t != ignore_index
        n_classes = xt.shape[0 if xt.ndim == 1 else 1]
        denominators = w[t.clamp(0, n_classes - 1)] * keep if w is not None else keep.to(values.dtype)
        return values, denominators

    def cross_entropy_prob(self, x, q, weight=None, *, label_smoothing: float = 0.0):
        import torch.nn.functional as F

        return F.cross_entropy(self._t(x), self._t(q), weight=self._t(weight), reduction="none",
                               label_smoothing=label_smoothing)

    def softmax(self, x, axis: int):
        return self._t(x).softmax(dim=axis)

    def log(self, p):
        return self._t(p).log()

    def bce_probs(self, p, y, weight=None):
        import torch.nn.functional as F

        return F.binary_cross_entropy(self._t(p), self._t(y), weight=self._t(weight), reduction="none")

    def bce_logits(self, x, y, weight=None, pos_weight=None):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(self._t(x), self._t(y), weight=self._t(weight),
                                                  pos_weight=self._t(pos_weight), reduction="none")

    def focal_sigmoid(self, x, y, *, alpha: float = 0.25, gamma: float = 2.0):
        """torchvision.ops.sigmoid_focal_loss, written out."""
        import torch
        import torch.nn.functional as F

        xt, yt = self._t(x), self._t(y)
        p = torch.sigmoid(xt)
        ce = F.binary_cross_entropy_with_logits(xt, yt, reduction="none")
        p_t = p * yt + (1 - p) * (1 - yt)
        values = ce * ((1 - p_t) ** gamma)
        if alpha >= 0:
            values = (alpha * yt + (1 - alpha) * (1 - yt)) * values
        return values

    def focal_index(self, x, target, weight=None, *, alpha: float = 0.25, gamma: float = 2.0,
                    ignore_index: int = -100):
        import torch.nn.functional as F

        xt, t = self._t(x), self._idx(target)
        logp = xt.log_softmax(dim=1)
        # nll_loss picks -w_y * ((1 - p)^gamma log p)_y and zeroes ignored targets
        values = F.nll_loss((1 - logp.exp()) ** gamma * logp, t, weight=self._t(weight),
                            ignore_index=ignore_index, reduction="none")
        if alpha >= 0:
            values = alpha * values
        return values, (t != ignore_index).to(values.dtype)

    # --- divergence -------------------------------------------------------------------------------------
    def kl_div(self, log_q, target, *, log_target: bool = False):
        import torch.nn.functional as F

        return F.kl_div(self._t(log_q), self._t(target), reduction="none", log_target=log_target)

    def entropy(self, probs=None, logits=None, *, axis: int = -1):
        import torch
        from torch.distributions import Categorical

        if probs is not None:
            dist = Categorical(probs=torch.movedim(self._t(probs), axis, -1), validate_args=False)
        else:
            dist = Categorical(logits=torch.movedim(self._t(logits), axis, -1), validate_args=False)
        return dist.entropy()

    def js(self, p, q):
        import torch

        p, q = self._t(p), self._t(q)
        m = 0.5 * (p + q)
        # xlogy gives 0 log 0 = 0, and m > 0 wherever p or q is
        kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(dim=-1)
        kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(dim=-1)
        return (0.5 * (kl_pm + kl_qm)).clamp(min=0.0)

    # --- regression -------------------------------------------------------------------------------------
    def l1(self, x, y):
        import torch.nn.functional as F

        return F.l1_loss(self._t(x), self._t(y), reduction="none")

    def mse(self, x, y):
        import torch.nn.functional as F

        return F.mse_loss(self._t(x), self._t(y), reduction="none")

    def huber(self, x, y, *, delta: float = 1.0):
        import torch.nn.functional as F

        return F.huber_loss(self._t(x), self._t(y), reduction="none", delta=delta)

    def smooth_l1(self, x, y, *, beta: float = 1.0):
        import torch.nn.functional as F

        return F.smooth_l1_loss(self._t(x), self._t(y), reduction="none", beta=beta)

    # --- distance ---------------------------------------------------------------------------------------
    def cosine_similarity(self, x1, x2, *, dim: int = 1, eps: float = 1e-8):
        import torch.nn.functional as F

        return F.cosine_similarity(self._t(x1), self._t(x2), dim=dim, eps=eps)

    def pairwise_distance(self, x1, x2, *, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        import torch.nn.functional as F

        return F.pairwise_distance(self._t(x1), self._t(x2), p=p, eps=eps, keepdim=keepdim)

    def cosine_embedding(self, x1, x2, y, *, margin: float = 0.0):
        import torch.nn.functional as F

        return F.cosine_embedding_loss(self._t(x1), self._t(x2), self._t(y), margin=margin, reduction="none")
