"""Every registered loss against torch and against an independent float64 reference, for every reduction.

The registry drives the cases: a loss registered without an entry in CASES fails `test_every_loss_has_cases`.
Each case gives the arrays and options, `torch_fn(tensors, reduction)` (the torch.nn module, or torch's own
functions where torch.nn has no such loss) and `ref()`: the per-element values written out in numpy/scipy,
plus the mean where it is not the plain mean of those values.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from conftest import ROOT, assert_close, result_value
from scipy.spatial.distance import jensenshannon
from scipy.special import log_expit, log_softmax, logsumexp, softmax, xlogy
from torch import nn

import lossctl
from lossctl.specs import all_specs, list_losses

REF_TOL = {"rtol": 1e-9, "atol": 1e-12}
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")  # torch's KLDivLoss advice


@dataclass
class Case:
    label: str
    arrays: dict[str, np.ndarray]
    torch_fn: Callable[[dict, str], torch.Tensor] | None
    ref: Callable[[], tuple[np.ndarray, float | None]] | None
    options: dict = field(default_factory=dict)
    rows: int = 1  # for batchmean
    float32: bool = True  # also compare with torch in float32


def tensors(arrays: dict[str, np.ndarray], dtype) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(np.asarray(v), dtype=torch.float64 if dtype == np.float64 else torch.float32)
            if v.dtype.kind == "f" else torch.tensor(np.asarray(v), dtype=torch.int64) for k, v in arrays.items()}


def reduce_t(values: torch.Tensor, reduction: str) -> torch.Tensor:
    return {"none": values, "sum": values.sum(), "mean": values.mean()}[reduction]


def module(cls, *names: str, **kwargs):
    """torch_fn calling torch.nn.<cls>(reduction=r, **kwargs) on the named arrays, in order."""
    return lambda T, r: cls(reduction=r, **kwargs)(*(T[n] for n in names))


R = np.random.default_rng(20240601)


def normal(*shape: int) -> np.ndarray:
    return R.normal(size=shape)


def signs(*shape: int) -> np.ndarray:
    return R.choice([-1.0, 1.0], size=shape)


def classes(c: int, *shape: int) -> np.ndarray:
    return R.integers(0, c, size=shape)


def probs(*shape: int, axis: int = -1) -> np.ndarray:
    return softmax(R.normal(size=shape), axis=axis)


# --- classification (core) ---------------------------------------------------------------------------------

def ce_ref(x, t, weight=None, ignore_index=-100, eps=0.0, kind="index"):
    axis = 0 if x.ndim == 1 else 1
    n_classes = x.shape[axis]
    logp = np.moveaxis(log_softmax(x, axis=axis), axis, -1)
    w = np.ones(n_classes) if weight is None else weight
    if kind == "index":
        keep = t != ignore_index
        tt = np.where(keep, t, 0)
        picked = np.take_along_axis(logp, tt[..., None], -1)[..., 0]
        smooth = eps / n_classes * (logp * w).sum(-1) if eps else 0.0  # no smoothing: a masked -inf adds nothing
        values = np.where(keep, -(1 - eps) * w[tt] * picked - smooth, 0.0)
        return values, values.sum() / (w[tt] * keep).sum()
    q = np.moveaxis(t, axis, -1) * (1 - eps) + eps / n_classes
    return -(q * w * logp).sum(-1), None


def ce_cases():
    x3, t3 = normal(4, 5, 3), classes(5, 4, 3)
    w = R.uniform(0.5, 2, 5)
    t_ign = classes(5, 6)
    t_ign[[1, 4]] = -100
    x6 = normal(6, 5)
    p = probs(4, 5)
    xs, ts = normal(5), np.array(2)
    t6 = classes(5, 6)
    masked = x6.copy()
    masked[t6 != 0, 0] = -np.inf  # a -inf logit masks class 0 wherever it is not the target
    onehot = np.eye(5, dtype=np.int64)[t6]
    ce = nn.CrossEntropyLoss
    return [
        Case("N,C", {"logits": x6, "target": t_ign}, module(ce, "logits", "target"), lambda: ce_ref(x6, t_ign), rows=6),
        Case("C", {"logits": xs, "target": ts}, module(ce, "logits", "target"), lambda: ce_ref(xs, ts)),
        Case("N,C,d-weight", {"logits": x3, "target": t3, "weight": w}, module_w(ce, "logits", "target"),
             lambda: ce_ref(x3, t3, w), rows=4),
        Case("weight-ignore-smoothing", {"logits": x6, "target": t_ign, "weight": w},
             module_w(ce, "logits", "target", label_smoothing=0.2), lambda: ce_ref(x6, t_ign, w, eps=0.2),
             options={"label_smoothing": 0.2}, rows=6),
        Case("prob", {"logits": x3[:, :, 0], "target": p}, module(ce, "logits", "target"),
             lambda: ce_ref(x3[:, :, 0], p, kind="prob"), rows=4),
        Case("prob-weight-smoothing", {"logits": x3[:, :, 0], "target": p, "weight": w},
             module_w(ce, "logits", "target", label_smoothing=0.1),
             lambda: ce_ref(x3[:, :, 0], p, w, eps=0.1, kind="prob"), options={"label_smoothing": 0.1}, rows=4),
        Case("custom-ignore-index", {"logits": x6, "target": t6}, module(ce, "logits", "target", ignore_index=2),
             lambda: ce_ref(x6, t6, ignore_index=2), options={"ignore_index": 2}, rows=6),
        Case("masked-logit", {"logits": masked, "target": t6}, module(ce, "logits", "target"),
             lambda: ce_ref(masked, t6), rows=6),
        Case("one-hot-integers", {"logits": x6, "target": onehot},
             lambda T, r: ce(reduction=r)(T["logits"], T["target"].double()), lambda: ce_ref(x6, onehot, kind="prob"),
             rows=6),
        Case("target-logits", {"logits": x6, "target": x6[::-1].copy()},
             lambda T, r: ce(reduction=r)(T["logits"], torch.softmax(T["target"], 1)),
             lambda: ce_ref(x6, softmax(x6[::-1], 1), kind="prob"), options={"target_kind": "logits"}, rows=6),
    ]


def module_w(cls, *names: str, **kwargs):
    """Like `module`, with the case's class weight passed to the constructor."""
    return lambda T, r: cls(weight=T.get("weight"), reduction=r, **kwargs)(*(T[n] for n in names))


def nll_ref(logp, t, weight=None, ignore_index=-100):
    n_classes = logp.shape[1 if logp.ndim > 1 else 0]
    w = np.ones(n_classes) if weight is None else weight
    lp = np.moveaxis(logp, 1, -1) if logp.ndim > 1 else logp
    keep = t != ignore_index
    tt = np.where(keep, t, 0)
    values = np.where(keep, -w[tt] * np.take_along_axis(lp, tt[..., None], -1)[..., 0], 0.0)
    return values, values.sum() / (w[tt] * keep).sum()


def nll_cases():
    x, t, w = normal(6, 4), classes(4, 6), R.uniform(0.5, 2, 4)
    t[2] = -100
    lp, p = log_softmax(x, 1), softmax(x, 1)
    x3, t3 = normal(3, 4, 2), classes(4, 3, 2)
    nl = nn.NLLLoss
    return [
        Case("log-probs-weight", {"log_probs": lp, "target": t, "weight": w}, module_w(nl, "log_probs", "target"),
             lambda: nll_ref(lp, t, w)),
        Case("logits", {"logits": x, "target": t},
             lambda T, r: nl(reduction=r)(torch.log_softmax(T["logits"], 1), T["target"]), lambda: nll_ref(lp, t)),
        Case("probs", {"probs": p, "target": t}, lambda T, r: nl(reduction=r)(torch.log(T["probs"]), T["target"]),
             lambda: nll_ref(lp, t)),
        Case("N,C,d", {"logits": x3, "target": t3},
             lambda T, r: nl(reduction=r)(torch.log_softmax(T["logits"], 1), T["target"]),
             lambda: nll_ref(log_softmax(x3, 1), t3)),
    ]


def kl_cases():
    lq, p = log_softmax(normal(5, 4), 1), probs(5, 4)
    x, q = normal(5, 4), probs(5, 4)
    p0 = p.copy()
    p0[:, 0] = 0.0  # zero target probabilities: 0 log 0 = 0
    p0 /= p0.sum(-1, keepdims=True)
    kl = nn.KLDivLoss
    return [
        Case("prob", {"log_probs": lq, "target": p}, module(kl, "log_probs", "target"),
             lambda: (xlogy(p, p) - p * lq, None), rows=5),
        Case("log-prob", {"log_probs": lq, "target": np.log(p)},
             lambda T, r: kl(reduction=r, log_target=True)(T["log_probs"], T["target"]),
             lambda: (xlogy(p, p) - p * lq, None), options={"target_kind": "log-prob"}, rows=5),
        Case("logits-zero-target", {"logits": x, "target": p0},
             lambda T, r: kl(reduction=r)(torch.log_softmax(T["logits"], -1), T["target"]),
             lambda: (xlogy(p0, p0) - p0 * log_softmax(x, -1), None), rows=5),
        Case("probs-target-logits", {"probs": q, "target": x},
             lambda T, r: kl(reduction=r)(torch.log(T["probs"]), torch.softmax(T["target"], -1)),
             lambda: (xlogy(softmax(x, -1), softmax(x, -1)) - softmax(x, -1) * np.log(q), None),
             options={"target_kind": "logits"}, rows=5),
    ]


def entropy_ref(p):
    p = p / p.sum(-1, keepdims=True)
    return -xlogy(p, p).sum(-1), None


def entropy_cases():
    p, x, v = probs(5, 4), normal(3, 6), probs(7)
    cat = torch.distributions.Categorical
    return [
        Case("probs", {"probs": p}, lambda T, r: reduce_t(cat(probs=T["probs"]).entropy(), r),
             lambda: entropy_ref(p)),
        Case("logits", {"logits": x}, lambda T, r: reduce_t(cat(logits=T["logits"]).entropy(), r),
             lambda: entropy_ref(softmax(x, -1))),
        Case("C", {"probs": v}, lambda T, r: reduce_t(cat(probs=T["probs"]).entropy(), r), lambda: entropy_ref(v)),
    ]


def bce_cases():
    x, y, w, pw = normal(5, 3), R.uniform(0, 1, (5, 3)), R.uniform(0.5, 2, (5, 3)), R.uniform(0.5, 2, 3)
    p = 1 / (1 + np.exp(-x))
    p[0, 0], y[0, 0] = 0.0, 1.0  # the log clamp at -100
    x3, y3 = normal(2, 4, 3), R.integers(0, 2, (2, 4, 3)).astype(float)
    p01, y01 = np.array([0.0, 0.0, 1.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])  # every log clamped at -100 or 0

    def probs_ref():
        return -w * (y * np.maximum(np.log(np.where(p > 0, p, 1e-300)), -100)
                     + (1 - y) * np.maximum(np.log1p(-p), -100)), None

    return [
        Case("probs-weight", {"probs": p, "target": y, "weight": w},
             lambda T, r: nn.BCELoss(weight=T["weight"], reduction=r)(T["probs"], T["target"]), probs_ref),
        Case("logits-pos-weight", {"logits": x, "target": y, "weight": w, "pos_weight": pw},
             lambda T, r: nn.BCEWithLogitsLoss(weight=T["weight"], pos_weight=T["pos_weight"], reduction=r)(
                 T["logits"], T["target"]),
             lambda: (-w * (pw * y * log_expit(x) + (1 - y) * log_expit(-x)), None)),
        Case("logits-pos-weight-N,d,C", {"logits": x3, "target": y3, "pos_weight": pw},
             lambda T, r: nn.BCEWithLogitsLoss(pos_weight=T["pos_weight"], reduction=r)(T["logits"], T["target"]),
             lambda: (-(pw * y3 * log_expit(x3) + (1 - y3) * log_expit(-x3)), None)),
        Case("probs-0-and-1", {"probs": p01, "target": y01},
             lambda T, r: nn.BCELoss(reduction=r)(T["probs"], T["target"]),
             lambda: (np.array([100.0, 0.0, 100.0, 0.0]), None)),
    ]


# --- embeddings and distances ------------------------------------------------------------------------------

def cos(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def cosine_embedding_cases():
    x1, x2, y = normal(6, 4), normal(6, 4), signs(6)
    v1, v2 = normal(4), normal(4)

    def ref(a, b, t, m):
        c = cos(a, b)
        return np.where(t == 1, 1 - c, np.maximum(0, c - m)), None

    return [
        Case("N,D", {"x1": x1, "x2": x2, "target": y}, module(nn.CosineEmbeddingLoss, "x1", "x2", "target",
                                                                margin=0.2),
             lambda: ref(x1, x2, y, 0.2), options={"margin": 0.2}),
        Case("D", {"x1": v1, "x2": v2, "target": np.array(-1.0)},
             module(nn.CosineEmbeddingLoss, "x1", "x2", "target"), lambda: ref(v1, v2, -1, 0.0)),
    ]


def cosine_similarity_cases():
    x1, x2, v1, v2, z1, z2 = normal(5, 4), normal(5, 4), normal(4), normal(4), normal(3, 4, 2), normal(3, 4, 2)

    def fn(dim):
        return lambda T, r: reduce_t(nn.CosineSimilarity(dim=dim)(T["x1"], T["x2"]), r)

    return [
        Case("N,D", {"x1": x1, "x2": x2}, fn(1), lambda: (cos(x1, x2), None)),
        Case("broadcast", {"x1": x1, "x2": x2[:1]}, fn(1), lambda: (cos(x1, x2[:1]), None)),
        Case("D-dim0", {"x1": v1, "x2": v2}, fn(0), lambda: (cos(v1, v2), None), options={"dim": 0}),
        Case("N,D,K", {"x1": z1, "x2": z2}, fn(1),
             lambda: (cos(np.moveaxis(z1, 1, -1), np.moveaxis(z2, 1, -1)), None)),
    ]


def pdist(a, b, p=2.0, eps=1e-6):
    return (np.abs(a - b + eps) ** p).sum(-1) ** (1 / p)


def pairwise_distance_cases():
    x1, x2 = normal(5, 4), normal(5, 4)
    pd = nn.PairwiseDistance
    return [
        Case("N,D", {"x1": x1, "x2": x2}, lambda T, r: reduce_t(pd()(T["x1"], T["x2"]), r),
             lambda: (pdist(x1, x2), None)),
        Case("p1-keepdim", {"x1": x1, "x2": x2}, lambda T, r: reduce_t(pd(p=1.0, keepdim=True)(T["x1"], T["x2"]), r),
             lambda: (pdist(x1, x2, 1.0)[:, None], None), options={"p": 1.0, "keepdim": True}),
    ]


# --- regression --------------------------------------------------------------------------------------------

SHAPES = ((), (7,), (4, 3), (2, 3, 2))


def elementwise_cases(cls, formula, options=None, torch_kwargs=None, target=normal):
    out = []
    for shape in SHAPES:
        x, y = normal(*shape), target(*shape)
        out.append(Case("x".join(map(str, shape)) or "scalar", {"input": x, "target": y},
                        module(cls, "input", "target", **(torch_kwargs or {})),
                        (lambda x=x, y=y: (formula(x, y), None)), options=options or {}))
    return out


def huber_ref(x, y, delta):
    d = np.abs(x - y)
    return np.where(d < delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def smooth_l1_ref(x, y, beta):
    d = np.abs(x - y)
    return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


def poisson_cases():
    x, y = normal(4, 3), R.poisson(2.0, (4, 3)).astype(float)
    rate = np.exp(x)

    def stirling(y):
        return np.where(y > 1, xlogy(y, y) - y + 0.5 * np.log(2 * np.pi * np.where(y > 1, y, 1)), 0)

    pn = nn.PoissonNLLLoss
    return [
        Case("log-input", {"input": x, "target": y}, module(pn, "input", "target"),
             lambda: (np.exp(x) - y * x, None)),
        Case("rate-full", {"input": rate, "target": y}, module(pn, "input", "target", log_input=False, full=True),
             lambda: (rate - y * np.log(rate + 1e-8) + stirling(y), None),
             options={"log_input": False, "full": True}),
    ]


def gaussian_cases():
    x, y = normal(4, 3), normal(4, 3)
    var = R.uniform(0.1, 2, (4, 3))
    var[0, 0] = 1e-9  # clamped to eps

    def ref(v, full=False):
        v = np.maximum(v, 1e-6)
        return 0.5 * (np.log(v) + (x - y) ** 2 / v) + (0.5 * np.log(2 * np.pi) if full else 0), None

    gn = nn.GaussianNLLLoss
    return [
        Case("same-shape", {"input": x, "target": y, "var": var}, module(gn, "input", "target", "var"),
             lambda: ref(var)),
        Case("var-N", {"input": x, "target": y, "var": var[:, 1]}, module(gn, "input", "target", "var", full=True),
             lambda: ref(var[:, 1:2], full=True), options={"full": True}),
        Case("var-N,1", {"input": x, "target": y, "var": var[:, 1:2]}, module(gn, "input", "target", "var"),
             lambda: ref(var[:, 1:2])),
        Case("var-1,C", {"input": x, "target": y, "var": var[2:3]}, module(gn, "input", "target", "var"),
             lambda: ref(var[2:3])),
        Case("target-N,1", {"input": x, "target": y[:, :1], "var": var}, module(gn, "input", "target", "var"),
             lambda: (0.5 * (np.log(np.maximum(var, 1e-6)) + (x - y[:, :1]) ** 2 / np.maximum(var, 1e-6)), None)),
        # torch takes one float for every element, as var * ones_like(input) (so that it is differentiated)
        Case("var-float", {"input": x, "target": y, "var": np.array(0.7)},
             lambda T, r: gn(reduction=r)(T["input"], T["target"], T["var"] * torch.ones_like(T["input"])),
             lambda: ref(np.array(0.7))),
    ]


# --- margin ------------------------------------------------------------------------------------------------

def multilabel_soft_margin_cases():
    x, y, w, v = normal(5, 4), R.integers(0, 2, (5, 4)).astype(float), R.uniform(0.5, 2, 4), normal(4)

    def ref(x, y, w):
        return -(w * (y * log_expit(x) + (1 - y) * log_expit(-x))).mean(-1), None

    ml = nn.MultiLabelSoftMarginLoss
    return [
        Case("N,C-weight", {"input": x, "target": y, "weight": w}, module_w(ml, "input", "target"),
             lambda: ref(x, y, w)),
        Case("C", {"input": v, "target": y[0]}, module(ml, "input", "target"), lambda: ref(v, y[0], 1.0)),
    ]


def multilabel_margin_ref(x, t):
    x2, t2 = np.atleast_2d(x), np.atleast_2d(t)
    out = []
    for xs, ts in zip(x2, t2, strict=True):
        targets = []
        for j in ts:
            if j == -1:
                break
            targets.append(j)
        others = [i for i in range(len(xs)) if i not in targets]
        out.append(sum(max(0.0, 1 - (xs[j] - xs[i])) for j in targets for i in others) / len(xs))
    return np.array(out).reshape(np.shape(x)[:-1]), None


def multilabel_margin_cases():
    x = normal(4, 5)
    t = np.array([[3, 0, -1, 1, 2], [1, -1, 4, 4, 4], [-1, 2, 2, 2, 2], [0, 1, 2, 3, 4]])
    ml = nn.MultiLabelMarginLoss
    return [
        Case("N,C", {"input": x, "target": t}, module(ml, "input", "target"), lambda: multilabel_margin_ref(x, t)),
        Case("C", {"input": x[0], "target": t[0]}, module(ml, "input", "target"),
             lambda: multilabel_margin_ref(x[0], t[0])),
    ]


def multi_margin_ref(x, t, p=1, margin=1.0, w=None):
    x2, t2 = np.atleast_2d(x), np.atleast_1d(t)
    n_classes = x2.shape[1]
    w = np.ones(n_classes) if w is None else w
    out = [sum(w[y] * max(0.0, margin - xs[y] + xs[i]) ** p for i in range(n_classes) if i != y) / n_classes
           for xs, y in zip(x2, t2, strict=True)]
    return np.array(out).reshape(np.shape(t)), None


def multi_margin_cases():
    x, t, w = normal(6, 4), classes(4, 6), R.uniform(0.5, 2, 4)
    mm = nn.MultiMarginLoss
    return [
        Case("N,C", {"input": x, "target": t}, module(mm, "input", "target"), lambda: multi_margin_ref(x, t)),
        Case("p2-margin-weight", {"input": x, "target": t, "weight": w},
             module_w(mm, "input", "target", p=2, margin=0.5), lambda: multi_margin_ref(x, t, 2, 0.5, w),
             options={"p": 2, "margin": 0.5}),
        Case("C", {"input": x[0], "target": t[0]}, module(mm, "input", "target"),
             lambda: multi_margin_ref(x[0], t[0])),
        # one sample's target may be (1) or (): torch takes either with (C) or (1, C), and none has its shape
        Case("C-target-1", {"input": x[0], "target": t[:1]}, module(mm, "input", "target"),
             lambda: multi_margin_ref(x[0], t[:1])),
        Case("1,C-target-scalar", {"input": x[:1], "target": np.array(t[0])}, module(mm, "input", "target"),
             lambda: multi_margin_ref(x[:1], np.array(t[0]))),
    ]


def margin_ranking_cases():
    x1, x2, y = normal(6), normal(6), signs(6)
    mr = nn.MarginRankingLoss
    return [
        Case("N", {"x1": x1, "x2": x2, "target": y}, module(mr, "x1", "x2", "target", margin=0.3),
             lambda: (np.maximum(0, -y * (x1 - x2) + 0.3), None), options={"margin": 0.3}),
        Case("scalar", {"x1": np.array(x1[0]), "x2": np.array(x2[0]), "target": np.array(y[0])},
             module(mr, "x1", "x2", "target"),
             lambda: (np.maximum(0, -y[0] * (x1[0] - x2[0])), None)),
    ]


def triplet_ref(a, p, n, dist, margin=1.0, swap=False):
    d_neg = dist(a, n)
    if swap:
        d_neg = np.minimum(d_neg, dist(p, n))
    return np.maximum(dist(a, p) - d_neg + margin, 0), None


def triplet_margin_cases():
    a, p, n = normal(6, 4), normal(6, 4), normal(6, 4)
    tm = nn.TripletMarginLoss
    names = ("anchor", "positive", "negative")
    arrays = dict(zip(names, (a, p, n), strict=True))
    return [
        Case("N,D", arrays, module(tm, *names), lambda: triplet_ref(a, p, n, pdist)),
        Case("p1-swap-margin", arrays, module(tm, *names, p=1.0, swap=True, margin=2.0),
             lambda: triplet_ref(a, p, n, lambda u, v: pdist(u, v, 1.0), 2.0, True),
             options={"p": 1.0, "swap": True, "margin": 2.0}),
        Case("D", {k: v[0] for k, v in arrays.items()}, module(tm, *names),
             lambda: triplet_ref(a[0], p[0], n[0], pdist)),
        # torch takes (N, L, D) too, the distances along the last axis (lossctl once refused it)
        Case("N,L,D", {k: v.reshape(3, 2, 4) for k, v in arrays.items()}, module(tm, *names),
             lambda: triplet_ref(a.reshape(3, 2, 4), p.reshape(3, 2, 4), n.reshape(3, 2, 4), pdist)),
        # torch broadcasts the three (of one number of axes): one negative for every anchor (lossctl once refused)
        Case("N,D-negative-1,D", {**arrays, "negative": n[:1]}, module(tm, *names),
             lambda: triplet_ref(a, p, n[:1], pdist)),
        Case("1,D-anchor-N,1-positive-swap", {**arrays, "anchor": a[:1], "positive": p[:, :1]},
             module(tm, *names, swap=True), lambda: triplet_ref(a[:1], p[:, :1], n, pdist, swap=True),
             options={"swap": True}),
    ]


def triplet_with_distance_cases():
    a, p, n = normal(6, 4), normal(6, 4), normal(6, 4)
    tm = nn.TripletMarginWithDistanceLoss
    names = ("anchor", "positive", "negative")
    arrays = dict(zip(names, (a, p, n), strict=True))

    def cosine_distance(u, v):
        return 1.0 - nn.functional.cosine_similarity(u, v, dim=-1)

    return [
        Case("pairwise", arrays, module(tm, *names), lambda: triplet_ref(a, p, n, pdist)),
        Case("cosine-swap", arrays, module(tm, *names, distance_function=cosine_distance, swap=True, margin=0.5),
             lambda: triplet_ref(a, p, n, lambda u, v: 1 - cos(u, v), 0.5, True),
             options={"distance": "cosine", "swap": True, "margin": 0.5}),
        # torch's docs allow (N, *): the distances along the last axis (lossctl once refused it)
        Case("N,L,D", {k: v.reshape(3, 2, 4) for k, v in arrays.items()}, module(tm, *names),
             lambda: triplet_ref(a.reshape(3, 2, 4), p.reshape(3, 2, 4), n.reshape(3, 2, 4), pdist)),
        Case("N,L,D-cosine", {k: v.reshape(3, 2, 4) for k, v in arrays.items()},
             module(tm, *names, distance_function=cosine_distance),
             lambda: triplet_ref(*(v.reshape(3, 2, 4) for v in (a, p, n)), lambda u, v: 1 - cos(u, v)),
             options={"distance": "cosine"}),
        Case("1,D-anchor-cosine", {**arrays, "anchor": a[:1]}, module(tm, *names, distance_function=cosine_distance),
             lambda: triplet_ref(a[:1], p, n, lambda u, v: 1 - cos(u, v)), options={"distance": "cosine"}),
        Case("N,L,D-negative-N,1,D", {**{k: v.reshape(3, 2, 4) for k, v in arrays.items()},
                                      "negative": n[:3].reshape(3, 1, 4)}, module(tm, *names),
             lambda: triplet_ref(a.reshape(3, 2, 4), p.reshape(3, 2, 4), n[:3].reshape(3, 1, 4), pdist)),
    ]


def hinge_embedding_cases():
    return elementwise_cases(nn.HingeEmbeddingLoss, lambda x, y: np.where(y == 1, x, np.maximum(0, 0.5 - x)),
                             {"margin": 0.5}, {"margin": 0.5}, target=signs)


# --- sequence ----------------------------------------------------------------------------------------------

def ctc_forward(lp, target, blank=0):
    """-log p(target | lp) by the CTC forward recursion over the blank-extended label, in log space."""
    ext = [blank]
    for c in target:
        ext += [int(c), blank]
    alpha = np.full(len(ext), -np.inf)
    alpha[0] = lp[0, blank]
    if len(ext) > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, len(lp)):
        prev = alpha.copy()
        for s in range(len(ext)):
            terms = [prev[s]] + ([prev[s - 1]] if s >= 1 else [])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(prev[s - 2])
            alpha[s] = logsumexp(terms) + lp[t, ext[s]]
    return -logsumexp(alpha[-2:]) if len(ext) > 1 else -alpha[-1]


def ctc_ref(lp, targets, in_len, tg_len, blank=0, zero_infinity=False):
    values = np.array([ctc_forward(lp[:il, n], tg[:tl], blank)
                       for n, (tg, il, tl) in enumerate(zip(targets, in_len, tg_len, strict=True))])
    if zero_infinity:
        values = np.where(np.isinf(values), 0.0, values)
    return values, float(np.mean(values / np.maximum(tg_len, 1)))


def ctc_cases():
    T, N, C = 8, 3, 5
    lp = log_softmax(normal(T, N, C), -1)
    padded = R.integers(1, C, (N, 4))
    in_len, tg_len = np.array([8, 6, 7]), np.array([4, 2, 0])
    concat = np.concatenate([padded[n, :tg_len[n]] for n in range(N)])
    short_len = np.array([8, 1, 7])  # sample 1: 2 labels in 1 step, impossible
    ctc = nn.CTCLoss
    names = ("log_probs", "target", "input_lengths", "target_lengths")

    def arrays(target, il=in_len):
        return dict(zip(names, (lp, target, il, tg_len), strict=True))

    blank = 2
    padded_b = np.where(padded == blank, 1, padded)
    return [
        Case("padded", arrays(padded), module(ctc, *names), lambda: ctc_ref(lp, padded, in_len, tg_len)),
        Case("concatenated", arrays(concat), module(ctc, *names), lambda: ctc_ref(lp, padded, in_len, tg_len)),
        Case("zero-infinity", arrays(padded, short_len), module(ctc, *names, zero_infinity=True),
             lambda: ctc_ref(lp, padded, short_len, tg_len, zero_infinity=True), options={"zero_infinity": True}),
        Case("blank", arrays(padded_b), module(ctc, *names, blank=blank),
             lambda: ctc_ref(lp, padded_b, in_len, tg_len, blank), options={"blank": blank}),
        Case("unbatched", {"log_probs": lp[:, 0], "target": padded[0], "input_lengths": np.array(8),
                           "target_lengths": np.array(4)}, module(ctc, *names),
             lambda: (np.array(ctc_forward(lp[:, 0], padded[0])), ctc_forward(lp[:, 0], padded[0]) / 4)),
        Case("unbatched-lengths-1", {"log_probs": lp[:, 0], "target": padded[0], "input_lengths": np.array([8]),
                                     "target_lengths": np.array([4])}, module(ctc, *names),
             lambda: (np.array(ctc_forward(lp[:, 0], padded[0])), ctc_forward(lp[:, 0], padded[0]) / 4)),
    ]


# --- beyond torch.nn ---------------------------------------------------------------------------------------

def focal_cases():
    x, y = normal(5, 3), R.integers(0, 2, (5, 3)).astype(float)
    xm, t, w = normal(6, 4), classes(4, 6), R.uniform(0.5, 2, 4)
    t[3] = -100
    x3, t3 = normal(3, 4, 2), classes(4, 3, 2)

    def sigmoid_ref(alpha=0.25, gamma=2.0):
        p = 1 / (1 + np.exp(-x))
        ce = -(y * log_expit(x) + (1 - y) * log_expit(-x))
        p_t = p * y + (1 - p) * (1 - y)
        a_t = alpha * y + (1 - alpha) * (1 - y) if alpha >= 0 else 1.0
        return a_t * (1 - p_t) ** gamma * ce, None

    def multi_ref(x, t, w=None, alpha=0.25, gamma=2.0):
        logp = np.moveaxis(log_softmax(x, 1), 1, -1)
        keep = t != -100
        tt = np.where(keep, t, 0)
        lp = np.take_along_axis(logp, tt[..., None], -1)[..., 0]
        wt = np.ones_like(lp) if w is None else w[tt]
        values = np.where(keep, -alpha * wt * (1 - np.exp(lp)) ** gamma * lp, 0.0)
        return values, values.sum() / keep.sum()

    return [
        Case("sigmoid", {"logits": x, "target": y}, None, sigmoid_ref),
        Case("sigmoid-no-alpha-gamma0", {"logits": x, "target": y},
             lambda T, r: nn.BCEWithLogitsLoss(reduction=r)(T["logits"], T["target"]),
             lambda: sigmoid_ref(-1.0, 0.0), options={"alpha": -1.0, "gamma": 0.0}),
        Case("multi-class-weight-ignore", {"logits": xm, "target": t, "weight": w}, None,
             lambda: multi_ref(xm, t, w)),
        Case("multi-class-gamma0-is-ce", {"logits": xm, "target": t},
             lambda T, r: nn.CrossEntropyLoss(reduction=r)(T["logits"], T["target"]),
             lambda: multi_ref(xm, t, alpha=1.0, gamma=0.0), options={"alpha": -1.0, "gamma": 0.0}),
        Case("multi-class-N,C,d", {"logits": x3, "target": t3}, None, lambda: multi_ref(x3, t3)),
        # whole-number floats of the index shape are class indices, as ce reads them (once a shape error)
        Case("multi-class-float-indices", {"logits": xm, "target": t.astype(float)}, None, lambda: multi_ref(xm, t)),
    ]


def js_torch(T, r, p_kind="prob", q_kind="prob"):
    """JS = H(m) - (H(p) + H(q)) / 2, with torch's Categorical entropies."""
    p = T["p"] if p_kind == "prob" else torch.softmax(T["p"], -1)
    q = T["q"] if q_kind == "prob" else torch.softmax(T["q"], -1)
    cat = torch.distributions.Categorical
    return reduce_t(cat(probs=0.5 * (p + q)).entropy() - 0.5 * (cat(probs=p).entropy() + cat(probs=q).entropy()), r)


def js_cases():
    p, q = probs(5, 4), probs(5, 4)
    p[0] = [1.0, 0.0, 0.0, 0.0]
    q[0] = [0.0, 0.5, 0.5, 0.0]  # disjoint supports: exactly ln 2
    xp, xq = normal(6), normal(6)
    return [
        Case("prob", {"p": p, "q": q}, js_torch, lambda: (jensenshannon(p, q, axis=-1) ** 2, None)),
        Case("logits-C", {"p": xp, "q": xq}, lambda T, r: js_torch(T, r, "logits", "logits"),
             lambda: (np.array(jensenshannon(softmax(xp), softmax(xq)) ** 2), None),
             options={"p_kind": "logits", "q_kind": "logits"}),
    ]


def perplexity_cases():
    x, t, w = normal(6, 5), classes(5, 6), R.uniform(0.5, 2, 5)
    t[[0, 5]] = -100
    x3, t3 = normal(2, 5, 4), classes(5, 2, 4)

    def ref(*args):
        _, mean = ce_ref(*args)
        return np.array(math.exp(mean)), math.exp(mean)

    def torch_ppl(T, r):
        return torch.exp(nn.CrossEntropyLoss(weight=T.get("weight"), reduction=r)(T["logits"], T["target"]))

    return [
        Case("ignore", {"logits": x, "target": t}, torch_ppl, lambda: ref(x, t)),
        Case("weight", {"logits": x, "target": t, "weight": w}, torch_ppl, lambda: ref(x, t, w)),
        Case("N,C,T", {"logits": x3, "target": t3}, torch_ppl, lambda: ref(x3, t3)),
    ]


CASES: dict[str, Callable[[], list[Case]]] = {
    "ce": ce_cases, "nll": nll_cases, "kl": kl_cases, "entropy": entropy_cases, "bce": bce_cases,
    "cosine-embedding": cosine_embedding_cases, "cosine-similarity": cosine_similarity_cases,
    "pairwise-distance": pairwise_distance_cases,
    "l1": lambda: elementwise_cases(nn.L1Loss, lambda x, y: np.abs(x - y)),
    "mse": lambda: elementwise_cases(nn.MSELoss, lambda x, y: (x - y) ** 2),
    "huber": lambda: elementwise_cases(nn.HuberLoss, lambda x, y: huber_ref(x, y, 0.7), {"delta": 0.7},
                                       {"delta": 0.7}),
    "smooth-l1": lambda: elementwise_cases(nn.SmoothL1Loss, lambda x, y: smooth_l1_ref(x, y, 0.5), {"beta": 0.5},
                                           {"beta": 0.5}),
    "poisson-nll": poisson_cases, "gaussian-nll": gaussian_cases, "hinge-embedding": hinge_embedding_cases,
    "soft-margin": lambda: elementwise_cases(nn.SoftMarginLoss, lambda x, y: np.log1p(np.exp(-y * x)),
                                             target=signs),
    "multilabel-soft-margin": multilabel_soft_margin_cases, "multilabel-margin": multilabel_margin_cases,
    "multi-margin": multi_margin_cases, "margin-ranking": margin_ranking_cases,
    "triplet-margin": triplet_margin_cases, "triplet-margin-with-distance": triplet_with_distance_cases,
    "ctc": ctc_cases, "focal": focal_cases, "js": js_cases, "perplexity": perplexity_cases,
}

PARAMS = [pytest.param(spec, case, id=f"{spec.name}-{case.label}")
          for spec in all_specs() if spec.name in CASES for case in CASES[spec.name]()]


def test_every_loss_has_cases():
    assert set(CASES) == set(list_losses())


def ref_reduced(case: Case, reduction: str):
    values, mean = case.ref()
    values = np.asarray(values, dtype=np.float64)
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "batchmean":
        return values.sum() / case.rows
    return values.mean() if mean is None else mean


def with_backends(params):
    """Each case once per backend the loss has: its NumPy kernel and torch must both agree with torch.nn."""
    return [pytest.param(*p.values, backend, id=f"{p.id}-{backend}") for p in params
            for backend in p.values[0].backends]


@pytest.mark.parametrize(("spec", "case", "backend"), with_backends(PARAMS))
def test_against_torch_and_reference(spec, case, backend):
    for reduction in spec.reductions:
        res = lossctl.compute(spec.name, reduction=reduction, backend=backend, **case.arrays, **case.options)
        assert res.backend.split()[0] == backend
        got = result_value(res)
        if case.torch_fn is not None:
            assert_close(got, case.torch_fn(tensors(case.arrays, np.float64), reduction))
        if case.ref is not None:
            np.testing.assert_allclose(got, ref_reduced(case, reduction), **REF_TOL,
                                       err_msg=f"{spec.name} {case.label} reduction={reduction}")


@pytest.mark.parametrize(("spec", "case", "backend"),
                         with_backends([p for p in PARAMS if p.values[1].torch_fn and p.values[1].float32]))
def test_float32_against_torch(spec, case, backend):
    arrays = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in case.arrays.items()}
    for reduction in spec.reductions:
        res = lossctl.compute(spec.name, reduction=reduction, backend=backend, **arrays, **case.options)
        assert res.dtype == "float32"
        want = case.torch_fn(tensors(arrays, np.float32), reduction)
        # torch.testing's float32 tolerances; lossctl sums the float32 values in float64, torch in float32
        torch.testing.assert_close(torch.as_tensor(np.asarray(result_value(res)), dtype=torch.float64),
                                   want.detach().double(), rtol=1.3e-6, atol=1e-5)


@pytest.mark.parametrize(("spec", "case"), [p for p in PARAMS if "numpy" in p.values[0].backends])
def test_backends_give_the_same_warnings_and_notes(spec, case):
    for reduction in spec.reductions:
        a, b = (lossctl.compute(spec.name, reduction=reduction, backend=backend, **case.arrays, **case.options)
                for backend in ("numpy", "torch"))
        assert (a.warnings, a.notes, a.denominator) == (b.warnings, b.notes, b.denominator)


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_compute_function_parameters_are_the_specs_roles_and_options(spec):
    params = inspect.signature(spec.compute_fn()).parameters
    assert list(params)[-1] == "ctx" and params["ctx"].kind is inspect.Parameter.KEYWORD_ONLY
    assert set(params) - {"ctx"} == {r.name for r in spec.roles} | {o.name for o in spec.options}
    for o in spec.options:
        assert params[o.name].kind is inspect.Parameter.KEYWORD_ONLY, o.name
        assert params[o.name].default == o.default, (o.name, params[o.name].default, o.default)
    for r in spec.roles:
        if not r.required or r.group:
            assert params[r.name].default is None, r.name
    assert spec.compute_fn().__doc__, "a compute function's docstring gives its formula"


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_spec_is_complete(spec):
    assert spec.summary and spec.formula and spec.torch_name and spec.denominator
    assert spec.default_reduction in spec.reductions
    names = [r.name for r in spec.roles] + [o.name for o in spec.options]
    assert len(names) == len(set(names))


def test_every_torch_nn_loss_is_a_command_but_the_one_the_readme_names():
    """README: every torch.nn loss is a command, except LinearCrossEntropyLoss (CE of its own linear layer)."""
    from torch.nn.modules import loss as torch_losses

    classes = {name for name, c in vars(torch_losses).items()
               if isinstance(c, type) and issubclass(c, torch_losses._Loss) and not name.startswith("_")}
    named = {part.strip().removeprefix("torch.nn.") for s in all_specs() for part in s.torch_name.split("/")}
    assert classes - named - {"NLLLoss2d"} <= {"LinearCrossEntropyLoss"}  # NLLLoss2d: NLLLoss's deprecated alias
    readme = (ROOT / "README.md").read_text()
    assert "LinearCrossEntropyLoss" in readme and "`NLLLoss2d`, NLLLoss's deprecated alias" in readme
    assert issubclass(torch_losses.NLLLoss2d, torch_losses.NLLLoss)


REFUSALS = [
    ("hinge-embedding", {"input": [1.0, 2.0], "target": [1.0, 0.0]}, "--target", "must be 1 or -1"),
    ("soft-margin", {"input": [1.0], "target": [0.0]}, "--target", "must be 1 or -1"),
    ("multilabel-soft-margin", {"input": [[1.0, 2.0]], "target": [[1.0, 0.5]]}, "--target", "0 or 1"),
    ("multilabel-margin", {"input": [0.1, 0.2, 0.4], "target": [2, -1, 7]}, "--target", "found 7 at index [2]"),
    ("multi-margin", {"input": [[0.1, 0.2]], "target": [2]}, "--target", "out of range [0, 2)"),
    ("multi-margin", {"input": [[0.1, 0.2]], "target": [1], "p": 3}, "--p", "must be 1 or 2"),
    ("gaussian-nll", {"input": [[1.0, 2.0]], "target": [[1.0, 2.0]], "var": [[-1.0, 1.0]]}, "--var", ">= 0"),
    ("gaussian-nll", {"input": [[1.0, 2.0], [3.0, 4.0]], "target": [1.0, 2.0], "var": 1.0}, "--target",
     "one of its sizes made 1"),
    ("gaussian-nll", {"input": [[1.0, 2.0]], "target": [[1.0, 2.0]], "var": [1.0, 1.0, 1.0]}, "--var", "fits"),
    ("gaussian-nll", {"input": [[1.0, 2.0], [3.0, 4.0]], "target": [[1.0, 2.0], [3.0, 4.0]], "var": [[1.0]]}, "--var",
     "fits"),
    ("poisson-nll", {"input": [1.0], "target": [-1.0]}, "--target", ">= 0"),
    ("huber", {"input": [1.0], "target": [1.0], "delta": 0.0}, "--delta", "> 0"),
    ("l1", {"input": [1.0, 2.0], "target": [1.0]}, "--target", "does not match"),
    ("ctc", {"log_probs": np.zeros((3, 1, 4)), "target": [[1, 0]], "input_lengths": [3], "target_lengths": [2]},
     "--target", "blank label 0"),
    ("ctc", {"log_probs": np.zeros((3, 1, 4)), "target": [[1, 2]], "input_lengths": [4], "target_lengths": [2]},
     "--input-lengths", "in [0, T = 3]"),
    ("ctc", {"log_probs": np.zeros((3, 4)), "target": [1, 2, 3], "input_lengths": 3, "target_lengths": 2},
     "--target", "add up to 2"),
    ("ctc", {"log_probs": np.zeros((3, 1, 4)), "target": [[1, 2]], "input_lengths": [2.5], "target_lengths": [2]},
     "--input-lengths", "lengths must be integers; found 2.5"),
    ("ctc", {"log_probs": np.zeros((3, 4)), "target": [1, 2], "input_lengths": 3, "target_lengths": 1.5},
     "--target-lengths", "lengths must be integers; found 1.5"),
    ("triplet-margin-with-distance", {"anchor": [[1.0]], "positive": [[1.0]], "negative": [[1.0]], "margin": 0.0},
     "--margin", "> 0"),
    ("focal", {"logits": [[1.0, 2.0]], "target": [[1.0, 2.0]]}, "--target", "in [0, 1]"),
    ("focal", {"logits": [[1.0, 2.0]], "target": [[1.0, 0.0]], "weight": [1.0, 1.0]}, "--weight", "multi-class"),
    ("js", {"p": [0.5, 0.5], "q": [0.5, 0.5, 0.0]}, "--q", "does not match"),
    # binary logits with their 0/1 targets given to a softmax loss: torch reads one sample of 3 classes
    ("nll", {"logits": [0.5, -1.0, 2.0], "target": [1, 0, 1]}, "--target",
     "shape (3,) does not match the input (3,); expected (); 1-d scores are one sample's scores of its classes"),
    ("ce", {"logits": [0.5, -1.0, 2.0], "target": [1, 0, 1], "target_kind": "index"}, "--target",
     "(binary scores with 0/1 targets of shape (N) go to bce)"),
    ("perplexity", {"logits": [[1.0, 2.0]], "target": [0], "reduction": "sum"}, "--reduction", "one of mean"),
    ("cosine-similarity", {"x1": [1.0, 2.0], "x2": [1.0, 2.0]}, "--dim", "out of range"),
]


@pytest.mark.parametrize(("name", "kwargs", "option", "text"), REFUSALS, ids=[f"{r[0]}-{r[2]}" for r in REFUSALS])
def test_refusals(name, kwargs, option, text):
    from lossctl.errors import LossctlError

    with pytest.raises(LossctlError) as info:
        lossctl.compute(name, **kwargs)
    assert info.value.option == option
    assert text in str(info.value)


def test_js_is_bounded_by_ln2_and_symmetric():
    p, q = probs(50, 6), probs(50, 6)
    p[0], q[0] = [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]
    forward = lossctl.compute("js", p=p, q=q, reduction="none").values
    assert np.all(forward <= math.log(2) + 1e-12) and forward[0] == pytest.approx(math.log(2), rel=1e-12)
    np.testing.assert_allclose(forward, lossctl.compute("js", p=q, q=p, reduction="none").values, rtol=1e-12)
    assert lossctl.compute("js", p=p[:1], q=q[:1], base="2").value == pytest.approx(1.0, rel=1e-12)
