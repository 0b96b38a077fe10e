"""lossctl.kernels against the torch functions they mirror, per element, in float64 and float32.

float64 within rtol 1e-12; float32 within torch.testing.assert_close's float32 defaults. Every case is compared
with torch (or a torchvision/lossctl formula written in torch), never with lossctl's own output.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

from lossctl.kernels import classification as kc
from lossctl.kernels import distance as kd
from lossctl.kernels import divergence as kv
from lossctl.kernels import regression as kr

DTYPES = [np.float64, np.float32]
TOLERANCE = {np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-13},
             np.dtype(np.float32): {"rtol": 1.3e-6, "atol": 1e-5}}  # torch.testing.assert_close's float32
INF = math.inf


def close(actual, expected, dtype, atol=None) -> None:
    """Same shape, the compute dtype, and equal within the dtype's tolerance (nan where torch has nan)."""
    dtype = np.dtype(dtype)
    expected = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == dtype, (actual.dtype, dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    tol = dict(TOLERANCE[dtype])
    if atol is not None:
        tol["atol"] = atol
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), equal_nan=True, **tol)


def T(arr) -> torch.Tensor:  # noqa: N802
    # ascontiguousarray makes a 0-d array 1-d, and torch treats a () target unlike a (1,) one
    return torch.from_numpy(np.ascontiguousarray(arr).reshape(np.shape(arr)))


def rand(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def probs_like(rng, shape, dtype, axis=-1):
    p = rng.random(shape) + 0.05
    return (p / p.sum(axis=axis, keepdims=True)).astype(dtype)


def unchanged(fn, *arrays, **kwargs):
    """Call a kernel and check that it left its inputs alone (they may be a caller's shared chunk)."""
    copies = [a.copy() if isinstance(a, np.ndarray) else a for a in arrays]
    out = fn(*arrays, **kwargs)
    for a, c in zip(arrays, copies, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, c)
    return out


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((7,), 0), ((6, 5), 1), ((4, 5, 3, 2), 1), ((6, 5), 0)])
def test_log_softmax(rng, dtype, shape, axis):
    x = rand(rng, shape, dtype)
    close(unchanged(kc.log_softmax, x, axis), torch.log_softmax(T(x), dim=axis), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_masks(dtype):
    x = np.array([[0.5, -INF, 1.0], [-INF, -INF, -INF], [INF, 0.0, 1.0]], dtype=dtype)
    got = kc.log_softmax(x, 1)
    close(got, torch.log_softmax(T(x), dim=1), dtype)
    assert np.isneginf(got[0, 1]) and np.isnan(got[1]).all()


def _ce_torch(x, t, w, ignore_index, eps, kind):
    if kind == "logits":
        return F.cross_entropy(T(x), T(t), weight=w, ignore_index=ignore_index, label_smoothing=eps, reduction="none")
    logp = T(x) if kind == "log_probs" else torch.log(T(x))
    return F.nll_loss(logp, T(t), weight=w, ignore_index=ignore_index, reduction="none")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (8, 5), (3, 5, 4, 2)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind,eps", [("logits", 0.0), ("logits", 0.2), ("log_probs", 0.0), ("probs", 0.0)])
def test_cross_entropy_index(rng, dtype, shape, weighted, kind, eps):
    axis = 0 if len(shape) == 1 else 1
    n_classes = shape[axis]
    x = rand(rng, shape, dtype)
    if kind != "logits":
        x = kc.log_softmax(x, axis)
        x = np.exp(x) if kind == "probs" else x
    t = rng.integers(0, n_classes, size=shape[:axis] + shape[axis + 1:])
    if t.ndim:
        t.flat[::3] = -1  # ignore_index
    w = (rng.random(n_classes) + 0.1).astype(dtype) if weighted else None
    values, denom = unchanged(kc.cross_entropy_index, x, t, w, ignore_index=-1, label_smoothing=eps,
                              input_kind=kind)
    tw = T(w) if weighted else None
    close(values, _ce_torch(x, t, tw, -1, eps, kind), dtype)
    keep = t != -1
    close(denom, (w[np.where(keep, t, 0)] if weighted else np.ones(t.shape, dtype)) * keep, dtype)
    if kind == "logits":
        mean = F.cross_entropy(T(x), T(t), weight=tw, ignore_index=-1, label_smoothing=eps)
    else:
        mean = F.nll_loss(T(x) if kind == "log_probs" else torch.log(T(x)), T(t), weight=tw, ignore_index=-1)
    close(np.asarray(values.sum(dtype=np.float64) / denom.sum(dtype=np.float64), dtype=dtype), mean, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_masked_logits(dtype, eps):
    x = np.array([[0.0, -INF, 1.0], [0.0, -INF, 1.0], [-INF, -INF, -INF], [-INF, -INF, -INF], [2.0, 1.0, 0.0]],
                 dtype=dtype)
    t = np.array([0, 1, 0, -100, -100])
    values, denom = kc.cross_entropy_index(x, t, label_smoothing=eps)
    expected = F.cross_entropy(T(x), T(t), label_smoothing=eps, reduction="none")
    close(values, expected, dtype)
    # a masked non-target class: finite (inf with smoothing); masked target: inf; all -inf: nan; ignored: 0
    assert np.isfinite(values[0]) != bool(eps) and np.isposinf(values[1]) and np.isnan(values[2])
    assert values[3] == 0 and values[4] == 0
    np.testing.assert_array_equal(denom, [1, 1, 1, 0, 0])


def test_cross_entropy_float32_rows_outside_exps_range_equal_torch():
    """The float32 (N, C) path sums exp(x) without subtracting each row's max; rows where that sum under- or
    overflows, or holds +inf, nan or only -inf, are recomputed the torch way. Each kind of row, beside ordinary
    ones, against torch."""
    rows = [[0.5, -1.0, 2.0, 0.0], [100.0, 99.0, 0.0, -3.0], [-100.0, -101.0, -130.0, -99.5],
            [88.0, -88.0, 0.0, 1.0], [-INF, -INF, -INF, -INF], [INF, 0.0, 1.0, 2.0], [math.nan, 0.0, 1.0, 2.0],
            [1e30, -1e30, 0.0, 5.0], [-60.0, -61.0, -62.0, -80.0], [0.0, -INF, -INF, 3.0], [3.0, 2.0, 1.0, 0.0],
            [1000.0, 1000.0, 1000.0, 999.0], [3e38, 3e38, 3e38, 3e38], [80.0, 80.0, 79.5, 80.0]]
    x = np.array(rows, dtype=np.float32)
    t = np.array([2, 0, 3, 1, 0, 1, 1, 1, 0, 1, 0, 3, 2, 1])
    values, _ = kc.cross_entropy_index(x, t)
    close(values, F.cross_entropy(T(x), T(t), reduction="none"), np.float32)
    assert np.isposinf(values[9]) and np.isnan(values[4:7]).all()


def test_cross_entropy_float32_rows_of_sure_predictions_are_never_negative(rng):
    """One class, or a target logit far above the rest: torch's loss is 0 (or 1e-18) and never below it. The
    rows path once gave -1e-8 here (log of the float32 exp(x_y) is x_y only to rounding); focal shares the path."""
    x = np.zeros((500, 2), np.float32)
    x[:, 0] = rng.uniform(15, 40, 500)
    x[:, 1] = -x[:, 0]
    for logits in (x, rng.standard_normal((50, 1)).astype(np.float32)):
        t = np.zeros(len(logits), np.int64)
        values, _ = kc.cross_entropy_index(logits, t)
        expected = F.cross_entropy(T(logits), T(t), reduction="none")
        assert (expected >= 0).all() and (values >= 0).all()
        close(values, expected, np.float32)
        focal, _ = kc.focal_index(logits, t, gamma=0.5)
        assert (focal >= 0).all()


@pytest.mark.parametrize("shift", [0.0, 50.0, 300.0, 1e4, 1e6, -300.0])
def test_cross_entropy_float32_shifted_logits_equal_torch(rng, shift):
    """Logits far from 0 (a shift torch's max subtraction removes): torch's values within float32 tolerance."""
    x = (rng.standard_normal((64, 10)) * 2 + shift).astype(np.float32)
    t = rng.integers(0, 10, 64)
    values, _ = kc.cross_entropy_index(x, t)
    close(values, F.cross_entropy(T(x), T(t), reduction="none"), np.float32)


def test_cross_entropy_float32_many_classes_and_blocks_equal_torch(rng, monkeypatch):
    """A GPT-2-sized vocabulary (one row is several blocks of the exp temporary) and confident rows, whose loss is
    a small difference of large numbers; and many rows split into blocks of a few rows."""
    x = (rng.standard_normal((6, 50257)) * 3).astype(np.float32)
    x[0, 7] = 40.0  # a confident row: the loss is about exp(-30)
    t = np.array([7, 1, 2, 3, 4, 5])
    values, _ = kc.cross_entropy_index(x, t)
    close(values, F.cross_entropy(T(x), T(t), reduction="none"), np.float32)
    monkeypatch.setattr(kc, "BLOCK_BYTES", 64)  # 4 rows of 4 classes a block
    x, t = rand(rng, (37, 4), np.float32), rng.integers(0, 4, 37)
    close(kc.cross_entropy_index(x, t)[0], F.cross_entropy(T(x), T(t), reduction="none"), np.float32)


def test_cross_entropy_float32_where_torchs_own_sum_drops_terms_is_the_exact_value():
    """100,000 classes, the target 17 above the rest: each other term (e^-17) is under half a float32 step of a
    running sum near 1, which torch's float32 kernel drops, so its number depends on its CPU's vector width. The
    kernel's pairwise sum keeps them: it equals torch's float64 value within float32 tolerance, in every layout
    (the (N, C) rows path and the shifted path of a 1-d input). README: "Which engine computes"."""
    x = np.zeros((2, 100_000), np.float32)
    x[0, 0], x[1, 5] = 17.0, 18.0
    t = np.array([0, 5])
    exact = F.cross_entropy(T(x).double(), T(t), reduction="none").numpy()
    close(kc.cross_entropy_index(x, t)[0], exact, np.float32)
    close(kc.cross_entropy_index(x[0], np.array(0))[0], exact[0], np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_zero_weight_on_masked_target_is_nan(dtype):
    x = np.array([[0.0, -INF, 1.0]], dtype=dtype)
    w = np.array([1.0, 0.0, 2.0], dtype=dtype)
    values, denom = kc.cross_entropy_index(x, np.array([1]), w)
    close(values, F.cross_entropy(T(x), T(np.array([1])), weight=T(w), reduction="none"), dtype)
    assert np.isnan(values[0]) and denom[0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_cross_entropy_every_target_ignored(rng, dtype, eps):
    x = rand(rng, (4, 3, 2), dtype)
    t = np.full((4, 2), -100)
    w = np.array([1.0, 2.0, 3.0], dtype=dtype)
    values, denom = kc.cross_entropy_index(x, t, w, label_smoothing=eps)
    close(values, F.cross_entropy(T(x), T(t), weight=T(w), label_smoothing=eps, reduction="none"), dtype)
    assert not values.any() and not denom.any()
    assert torch.isnan(F.cross_entropy(T(x), T(t), weight=T(w), label_smoothing=eps))  # torch's mean is 0 / 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_smoothing_with_weights_formula(rng, dtype):
    """torch: (1 - eps) w_y (-logp_y) + eps / C sum_c w_c (-logp_c), the form the kernel's docstring states."""
    x, t = rand(rng, (6, 4), dtype), rng.integers(0, 4, size=6)
    w, eps = np.array([0.5, 1.0, 2.0, 4.0], dtype=dtype), 0.25
    logp = torch.log_softmax(T(x), 1)
    formula = (1 - eps) * T(w)[T(t)] * -logp[torch.arange(6), T(t)] + eps / 4 * (-(logp * T(w)).sum(1))
    values, _ = kc.cross_entropy_index(x, t, w, label_smoothing=eps)
    close(values, F.cross_entropy(T(x), T(t), weight=T(w), label_smoothing=eps, reduction="none"), dtype)
    close(values, formula, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_one_dimensional(rng, dtype):
    x = rand(rng, (5,), dtype)
    for eps in (0.0, 0.1):
        values, denom = kc.cross_entropy_index(x, np.array(3), label_smoothing=eps)
        close(values, F.cross_entropy(T(x), torch.tensor(3), label_smoothing=eps, reduction="none"), dtype)
        assert denom.shape == () and denom == 1
    values, denom = kc.cross_entropy_index(x, np.array(-100))
    assert values.shape == () and values == 0 and denom == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (7, 4), (3, 4, 2, 3)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.15])
def test_cross_entropy_prob(rng, dtype, shape, weighted, eps):
    axis = 0 if len(shape) == 1 else 1
    x, q = rand(rng, shape, dtype), probs_like(rng, shape, dtype, axis)
    w = (rng.random(shape[axis]) + 0.1).astype(dtype) if weighted else None
    got = unchanged(kc.cross_entropy_prob, x, q, w, label_smoothing=eps)
    close(got, F.cross_entropy(T(x), T(q), weight=T(w) if weighted else None, label_smoothing=eps,
                               reduction="none"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_prob_zero_target_on_masked_logit_is_nan(dtype):
    x = np.array([[0.0, -INF, 1.0], [0.0, -INF, 1.0]], dtype=dtype)
    q = np.array([[0.5, 0.0, 0.5], [0.5, 0.5, 0.0]], dtype=dtype)
    got = kc.cross_entropy_prob(x, q)
    close(got, F.cross_entropy(T(x), T(q), reduction="none"), dtype)
    assert np.isnan(got[0]) and np.isposinf(got[1])  # torch forms 0 * -inf before it sums


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wshape", [None, (5,), (4, 5), (4, 1)])
def test_bce_probs(rng, dtype, wshape):
    p = rng.random((4, 5)).astype(dtype)
    y = rng.random((4, 5)).astype(dtype)
    w = (rng.random(wshape) + 0.1).astype(dtype) if wshape else None
    got = unchanged(kc.bce_probs, p, y, w)
    close(got, F.binary_cross_entropy(T(p), T(y), weight=T(w) if wshape else None, reduction="none"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_probs_log_clamp(dtype):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1e-8, 1 - 1e-7], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0], dtype=dtype)
    got = kc.bce_probs(p, y)
    close(got, F.binary_cross_entropy(T(p), T(y), reduction="none"), dtype)
    np.testing.assert_array_equal(got[:6], [0, 0, 100, 100, 50, 50])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4), (4,)])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_logits(rng, dtype, shape, with_weight, with_pos_weight):
    x = rand(rng, shape, dtype, scale=8.0)
    x.flat[:3] = [-1000.0, 1000.0, 0.0]  # the stable form never overflows
    y = rng.random(shape).astype(dtype)
    y.flat[:2] = [1.0, 0.0]
    w = (rng.random(shape[-1:]) + 0.1).astype(dtype) if with_weight else None
    pw = (rng.random(shape[-1:]) * 3).astype(dtype) if with_pos_weight else None  # broadcast along the last axis
    got = unchanged(kc.bce_logits, x, y, w, pw)
    expected = F.binary_cross_entropy_with_logits(T(x), T(y), weight=T(w) if with_weight else None,
                                                  pos_weight=T(pw) if with_pos_weight else None, reduction="none")
    close(got, expected, dtype)
    assert np.isfinite(got).all()


def _torchvision_focal(x, y, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss (reduction='none'), written out as torchvision has it."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.6, 0.0), (0.25, 1.5)])
def test_focal_sigmoid(rng, dtype, alpha, gamma):
    x = rand(rng, (6, 5), dtype)
    y = (rng.random((6, 5)) < 0.3).astype(dtype)
    y[0] = rng.random(5)  # soft targets too
    got = unchanged(kc.focal_sigmoid, x, y, alpha=alpha, gamma=gamma)
    close(got, _torchvision_focal(T(x), T(y), alpha, gamma), dtype)


def _focal_index_torch(x, t, w, alpha, gamma, ignore_index):
    """lossctl/losses/extra.py's multi-class focal loss, in torch."""
    logp = torch.log_softmax(x, dim=1 if x.ndim > 1 else 0)
    values = F.nll_loss((1 - logp.exp()) ** gamma * logp, t, weight=w, ignore_index=ignore_index, reduction="none")
    return alpha * values if alpha >= 0 else values


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 4), (3, 4, 2, 3)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.5), (1.0, 0.0)])
def test_focal_index(rng, dtype, shape, weighted, alpha, gamma):
    x = rand(rng, shape, dtype)
    t = rng.integers(0, shape[1], size=shape[:1] + shape[2:])
    t.flat[::4] = -100
    w = (rng.random(shape[1]) + 0.1).astype(dtype) if weighted else None
    values, denom = unchanged(kc.focal_index, x, t, w, alpha=alpha, gamma=gamma)
    close(values, _focal_index_torch(T(x), T(t), T(w) if weighted else None, alpha, gamma, -100), dtype)
    np.testing.assert_array_equal(denom, (t != -100).astype(dtype))
    assert denom.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_index_masked_target(dtype):
    x = np.array([[0.0, -INF, 1.0], [-INF, -INF, -INF]], dtype=dtype)
    t = np.array([1, -100])
    values, denom = kc.focal_index(x, t)
    close(values, _focal_index_torch(T(x), T(t), None, 0.25, 2.0, -100), dtype)
    assert np.isposinf(values[0]) and values[1] == 0


# ---------------------------------------------------------------- divergence


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(rng, dtype, log_target):
    log_q = kc.log_softmax(rand(rng, (5, 6), dtype), 1)
    target = probs_like(rng, (5, 6), dtype)
    target[0, :2] = 0  # zero targets: 0 log 0 = 0
    with np.errstate(divide="ignore"):
        target = np.log(target) if log_target else target
    log_q[1, 0] = -INF
    target[1, 0] = 0.0 if not log_target else -INF
    got = unchanged(kv.kl_div, log_q, target, log_target=log_target)
    expected = F.kl_div(T(log_q), T(target), reduction="none", log_target=log_target)
    close(got, expected, dtype)
    if not log_target:
        assert (got[0, :2] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_div_zero_target_on_minus_inf(dtype):
    log_q = np.array([-INF, -INF, -1.0], dtype=dtype)
    target = np.array([0.0, 0.3, 0.0], dtype=dtype)
    got = kv.kl_div(log_q, target)
    close(got, F.kl_div(T(log_q), T(target), reduction="none"), dtype)
    assert np.isnan(got[0]) and np.isposinf(got[1]) and got[2] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((6, 5), -1), ((5,), 0), ((3, 5, 4), 1), ((3, 4, 5), 2)])
def test_entropy_probs(rng, dtype, shape, axis):
    probs = (rng.random(shape) * 3).astype(dtype)  # unnormalised: Categorical normalises first
    probs.flat[0] = probs.flat[-1] = 0  # 0 log 0 = 0
    got = unchanged(kv.entropy, probs, axis=axis)
    expected = torch.distributions.Categorical(probs=torch.movedim(T(probs), axis, -1), validate_args=False).entropy()
    close(got, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_edge_rows(dtype):
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 0.0]], dtype=dtype)
    got = kv.entropy(probs=probs)
    close(got, torch.distributions.Categorical(probs=T(probs), validate_args=False).entropy(), dtype)
    eps = np.finfo(dtype).eps
    assert 0 < got[0] <= 2 * eps and np.isnan(got[1])  # a one-hot row is -log(1 - eps), not 0
    close(got[2:], np.array([math.log(2)]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((6, 5), -1), ((5,), 0), ((3, 5, 4), 1)])
def test_entropy_logits(rng, dtype, shape, axis):
    logits = rand(rng, shape, dtype)
    logits.flat[:2] = -INF
    got = unchanged(kv.entropy, logits=logits, axis=axis)
    expected = torch.distributions.Categorical(logits=torch.movedim(T(logits), axis, -1),
                                               validate_args=False).entropy()
    close(got, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_masked_logits(dtype):
    logits = np.array([[0.0, -INF, -INF], [-INF, -INF, -INF], [1.0, 1.0, -INF]], dtype=dtype)
    got = kv.entropy(logits=logits)
    close(got, torch.distributions.Categorical(logits=T(logits), validate_args=False).entropy(), dtype)
    assert got[0] == 0 and np.isnan(got[1])


def _js_torch(p, q):
    """lossctl/losses/extra.py's js, in torch."""
    m = 0.5 * (p + q)
    kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(dim=-1)
    kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(dim=-1)
    return (0.5 * (kl_pm + kl_qm)).clamp(min=0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 5), (5,), (2, 3, 4)])
def test_js(rng, dtype, shape):
    p, q = probs_like(rng, shape, dtype), probs_like(rng, shape, dtype)
    p.flat[0] = 0
    q.flat[1] = 0
    p.flat[-1] = q.flat[-1] = 0
    got = unchanged(kv.js, p, q)
    close(got, _js_torch(T(p), T(q)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_js_identical_and_disjoint(dtype):
    p = np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    q = np.array([[0.2, 0.8, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    got = kv.js(p, q)
    close(got, _js_torch(T(p), T(q)), dtype)
    assert got[0] == 0
    close(got[1:], np.array([math.log(2)]), dtype)


# ---------------------------------------------------------------- regression


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kernel,option", [("l1_loss", kr.l1, {}), ("mse_loss", kr.mse, {}),
                                                ("huber_loss", kr.huber, {"delta": 1.0}),
                                                ("huber_loss", kr.huber, {"delta": 0.3}),
                                                ("smooth_l1_loss", kr.smooth_l1, {"beta": 1.0}),
                                                ("smooth_l1_loss", kr.smooth_l1, {"beta": 2.5}),
                                                ("smooth_l1_loss", kr.smooth_l1, {"beta": 0.0})])
@pytest.mark.parametrize("shape", [(7, 3), (11,), ()])
def test_regression(rng, dtype, name, kernel, option, shape):
    x, y = rand(rng, shape, dtype, 2.0), rand(rng, shape, dtype, 2.0)
    got = unchanged(kernel, x, y, **option)
    close(got, getattr(F, name)(T(x), T(y), reduction="none", **option), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kernel,key", [("huber_loss", kr.huber, "delta"),
                                             ("smooth_l1_loss", kr.smooth_l1, "beta")])
@pytest.mark.parametrize("threshold", [1.0, 0.5, 2.0])
def test_regression_at_the_threshold(dtype, name, kernel, key, threshold):
    y = np.zeros(6, dtype=dtype)
    x = np.array([threshold, -threshold, 0.0, threshold / 2, 3 * threshold, -INF], dtype=dtype)
    got = kernel(x, y, **{key: threshold})
    close(got, getattr(F, name)(T(x), T(y), reduction="none", **{key: threshold}), dtype)
    at = 0.5 * threshold * threshold if key == "delta" else 0.5 * threshold
    np.testing.assert_array_equal(got[:2], [at, at])  # both branches agree at |d| = threshold


@pytest.mark.parametrize("dtype", DTYPES)
def test_smooth_l1_beta_zero_is_l1(rng, dtype):
    x, y = rand(rng, (5, 4), dtype), rand(rng, (5, 4), dtype)
    y[0, 0] = x[0, 0]
    got = kr.smooth_l1(x, y, beta=0.0)
    close(got, F.smooth_l1_loss(T(x), T(y), beta=0.0, reduction="none"), dtype)
    np.testing.assert_array_equal(got, np.abs(x - y))


# ---------------------------------------------------------------- distance


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("s1,s2,dim", [((6, 5), (6, 5), 1), ((6, 5), (5,), -1), ((1, 5), (4, 1), 1),
                                       ((5,), (5,), 0), ((3, 4, 2), (3, 4, 2), 1), ((3, 4, 2), (3, 4, 2), 0)])
def test_cosine_similarity(rng, dtype, s1, s2, dim):
    x1, x2 = rand(rng, s1, dtype), rand(rng, s2, dtype)
    got = unchanged(kd.cosine_similarity, x1, x2, dim=dim)
    close(got, F.cosine_similarity(T(x1), T(x2), dim=dim), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-8, 1e-3, 0.0])
def test_cosine_similarity_eps(dtype, eps):
    x1 = np.array([[1e-5, 0.0], [1e-9, 0.0], [0.0, 0.0], [3.0, 4.0], [0.0, 0.0]], dtype=dtype)
    x2 = np.array([[1e-5, 0.0], [1e-9, 0.0], [1.0, 2.0], [3.0, 4.0], [0.0, 0.0]], dtype=dtype)
    got = kd.cosine_similarity(x1, x2, eps=eps)
    close(got, F.cosine_similarity(T(x1), T(x2), eps=eps), dtype)
    if eps == 1e-8:  # each norm is clamped separately: 1 for norm 1e-5, (1e-9 / 1e-8)^2 for norm 1e-9
        close(got[:3], np.array([1.0, 0.01, 0.0]), dtype, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, INF, -INF, 0.0, 0.5])
@pytest.mark.parametrize("s1,s2", [((6, 5), (6, 5)), ((6, 5), (5,)), ((5,), (6, 5)), ((5,), (5,)), ((2, 3, 4), (4,))])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance(rng, dtype, p, s1, s2, keepdim):
    x1, x2 = rand(rng, s1, dtype), rand(rng, s2, dtype)
    got = unchanged(kd.pairwise_distance, x1, x2, p=p, keepdim=keepdim)
    close(got, F.pairwise_distance(T(x1), T(x2), p=p, keepdim=keepdim), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, INF, 0.0])
@pytest.mark.parametrize("eps", [1e-6, 0.0, 0.1])
def test_pairwise_distance_identical_and_zero(dtype, p, eps):
    x1 = np.array([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0]], dtype=dtype)
    got = kd.pairwise_distance(x1, x1.copy(), p=p, eps=eps)
    close(got, F.pairwise_distance(T(x1), T(x1.copy()), p=p, eps=eps), dtype)
    zero = kd.pairwise_distance(np.zeros(3, dtype), np.zeros(3, dtype), p=p, eps=eps)
    close(zero, F.pairwise_distance(torch.zeros(3, dtype=T(x1).dtype), torch.zeros(3, dtype=T(x1).dtype), p=p,
                                    eps=eps), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pairwise_distance_zero_dimensional(dtype):
    x1, x2 = np.array(1.5, dtype=dtype), np.array(-2.0, dtype=dtype)
    close(kd.pairwise_distance(x1, x2, p=3.0), F.pairwise_distance(T(x1), T(x2), p=3.0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [2.0, 3.0, 1.0, 0.5, -1.0, 0.0, INF, -INF])
@pytest.mark.parametrize("keepdim", [False, True])
def test_norms_of_one_element_are_torchs_absolute_value_at_any_magnitude(dtype, p, keepdim):
    """Along an axis of size 1 torch's norm is |d| (1 for d != 0 at p = 0): 1e300 stays 1e300 and 1e-300 stays
    1e-300. The kernels once squared (or raised to p) first: inf for the distance, 0 for the cosine."""
    big, tiny = (1e300, 1e-300) if dtype == np.float64 else (1e30, 1e-30)
    x1 = np.array([[big], [-big], [tiny], [2.0], [0.0]], dtype=dtype)
    x2 = np.array([[0.0], [0.5], [0.0], [-1.0], [0.0]], dtype=dtype)
    close(kd.pairwise_distance(x1, x2, p=p, eps=0.0, keepdim=keepdim),
          F.pairwise_distance(T(x1), T(x2), p=p, eps=0.0, keepdim=keepdim), dtype)
    for eps in (0.0, 1e-8):
        close(kd.cosine_similarity(x1[:4], x2[[3, 3, 3, 3]], dim=1, eps=eps),
              F.cosine_similarity(T(x1[:4]), T(x2[[3, 3, 3, 3]]), dim=1, eps=eps), dtype)
    assert np.isfinite(kd.pairwise_distance(x1, x2, p=p)).all()

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 5), (5,)])
@pytest.mark.parametrize("margin", [0.0, 0.3, -0.2])
def test_cosine_embedding(rng, dtype, shape, margin):
    x1, x2 = rand(rng, shape, dtype), rand(rng, shape, dtype)
    y = rng.choice([-1, 1], size=shape[:-1]).astype(dtype)
    if len(shape) == 2:
        x1[0] = 0  # a zero vector: the 1e-12 makes its cosine 0
        x2[1] = x1[1]
    got = unchanged(kd.cosine_embedding, x1, x2, y, margin=margin)
    close(got, F.cosine_embedding_loss(T(x1), T(x2), T(y), margin=margin, reduction="none"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_integer_targets_and_tiny_vectors(dtype):
    x1 = np.array([[1e-7, 0.0], [0.0, 0.0], [1.0, 1.0]], dtype=dtype)
    x2 = np.array([[1e-7, 0.0], [1.0, 0.0], [-1.0, -1.0]], dtype=dtype)
    y = np.array([1, 1, -1])
    got = kd.cosine_embedding(x1, x2, y)
    close(got, F.cosine_embedding_loss(T(x1), T(x2), T(y), reduction="none"), dtype)
    assert got[1] == 1.0


# ---------------------------------------------------------------- the package


def test_kernels_never_import_torch():
    code = ("import sys\nimport lossctl.kernels.classification, lossctl.kernels.divergence, "
            "lossctl.kernels.regression, lossctl.kernels.distance\nprint('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "False"


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dimensional_elementwise(dtype):
    """0-d inputs give 0-d arrays (not NumPy scalars) wherever torch accepts them."""
    x, y = np.array(0.3, dtype=dtype), np.array(0.8, dtype=dtype)
    close(kc.bce_probs(x, y), F.binary_cross_entropy(T(x), T(y), reduction="none"), dtype)
    close(kc.bce_logits(x, y), F.binary_cross_entropy_with_logits(T(x), T(y), reduction="none"), dtype)
    close(kc.focal_sigmoid(x, y), _torchvision_focal(T(x), T(y), 0.25, 2.0), dtype)
    close(kv.kl_div(x, y), F.kl_div(T(x), T(y), reduction="none"), dtype)
