"""The tutorial's losses beyond the registry's matrix: each formula written out, the tutorial's identities, --base,
and the refusals. tests/test_registry.py holds every loss, option, dtype, reduction and backend to torch.nn."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import REALISTIC, assert_close, result_value
from hypothesis import given, settings
from hypothesis import strategies as st

import lossctl
from lossctl.errors import LossctlError, UsageError
from lossctl.grad import gradient
from lossctl.specs import all_specs, get_loss

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]
N, C = 5, 4


def T(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def torch_loss(module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KLDivLoss(reduction='mean') warns; lossctl says so itself
        return module(*args)


def probs(rng, shape, dtype, axis=-1):
    p = rng.random(shape) + 0.05
    return (p / p.sum(axis=axis, keepdims=True)).astype(dtype)


# Every loss issue 2 asks for has reference cases below; a newly registered loss must bring its own.
CORE = {"ce", "nll", "kl", "entropy", "bce", "cosine-embedding"}


def test_core_losses_are_registered_with_their_aliases():
    names = {s.name for s in all_specs()}
    assert CORE <= names
    for alias, name in [("cross-entropy", "ce"), ("kl-div", "kl"), ("cosine", "cosine-embedding")]:
        assert get_loss(alias).name == name


@pytest.mark.parametrize("spec", [s for s in all_specs() if s.name in CORE], ids=lambda s: s.name)
def test_core_specs_are_well_formed(spec):
    assert spec.default_reduction in spec.reductions
    assert {"mean", "sum", "none"} <= set(spec.reductions)
    assert callable(spec.compute_fn())
    assert spec.torch_name.startswith("torch")
    assert any(r.required for r in spec.roles)


# --- cross entropy ------------------------------------------------------------------------------------------


def test_ce_weighted_mean_formula(rng):
    """Independent reference: sum_n w[y_n] * -log_softmax(x_n)[y_n] / sum_n w[y_n], ignored targets left out."""
    x = rng.normal(size=(7, C))
    y = np.array([0, 1, 2, 3, -100, 1, 1])
    w = np.array([0.2, 1.5, 1.0, 3.0])
    keep = y != -100
    logp = sp.log_softmax(x, axis=1)[keep, y[keep]]
    expected = np.sum(-w[y[keep]] * logp) / np.sum(w[y[keep]])
    res = lossctl.compute("ce", logits=x, target=y, weight=w)
    assert res.value == pytest.approx(expected, rel=1e-13)
    assert res.partial.denominator == pytest.approx(np.sum(w[y[keep]]))
    assert "weighted mean" in res.denominator


def test_ce_label_smoothing_formula(rng):
    """(1 - eps) * NLL + eps/C * sum_c -log p_c per sample; the mean divides by the targets' weights."""
    eps = 0.1
    x = rng.normal(size=(6, C))
    y = rng.integers(0, C, size=6)
    w = np.array([1.0, 2.0, 0.5, 1.5])
    logp = sp.log_softmax(x, axis=1)
    per = (1 - eps) * -w[y] * logp[np.arange(6), y] + eps / C * -(logp * w).sum(axis=1)
    res = lossctl.compute("ce", logits=x, target=y, weight=w, label_smoothing=eps)
    assert res.value == pytest.approx(per.sum() / w[y].sum(), rel=1e-13)
    none = lossctl.compute("ce", logits=x, target=y, weight=w, label_smoothing=eps, reduction="none")
    np.testing.assert_allclose(none.values, per, rtol=1e-13)


def test_ce_probability_target_formula(rng):
    """The tutorial's second CE: -sum_c softmax(t)_c log_softmax(x)_c, averaged over the batch."""
    x, t = rng.normal(size=(N, C)), rng.normal(size=(N, C))
    expected = np.mean(-(sp.softmax(t, axis=1) * sp.log_softmax(x, axis=1)).sum(axis=1))
    res = lossctl.compute("ce", logits=x, target=t, target_kind="logits")
    assert res.value == pytest.approx(expected, rel=1e-13)


def test_ce_float_whole_numbers_are_indices(rng):
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    expected = F.cross_entropy(T(x), T(y)).item()
    assert lossctl.compute("ce", logits=x, target=y.astype(np.float64)).value == pytest.approx(expected, rel=1e-13)
    assert lossctl.compute("ce", logits=x, target=y.astype(np.float64), target_kind="index").value == \
        pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("loss", ["ce", "nll"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_, np.int32, np.int64, np.uint8])
def test_index_targets_of_a_dtype_torch_refuses_are_noted(rng, loss, dtype):
    """torch takes index targets as int64 or uint8 only; lossctl reads whole numbers of any dtype, the same
    number as target.long() gives torch, and says where torch itself would refuse."""
    x = rng.normal(size=(N, C))
    y = rng.integers(0, 2, size=N).astype(dtype)
    fn = F.cross_entropy if loss == "ce" else lambda a, b: F.nll_loss(F.log_softmax(a, 1), b)
    refused = True
    try:
        fn(T(x), T(y))
        refused = False
    except RuntimeError as exc:
        assert "expected target dtype to be Long or Byte" in str(exc)
    res = lossctl.compute(loss, logits=x, target=y)
    assert res.value == pytest.approx(fn(T(x), T(y).long()).item(), rel=1e-13)
    noted = [n for n in res.notes if "torch refuses" in n]
    want = f"--target holds {np.dtype(dtype)} class indices, read as the whole numbers they are; torch refuses " \
           f"class indices of dtype {np.dtype(dtype)} (it takes int64 or uint8: target.long())"
    assert noted == ([want] if refused else [])


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int32])
def test_a_mask_of_class_indices_is_noted_unless_torch_takes_its_dtype(dtype):
    """torch takes uint8 class indices for (N) targets only: an (N, H, W) uint8 mask (a PNG) is refused."""
    s = np.load(REALISTIC / "segmentation_conv.npz") if REALISTIC.exists() else None
    if s is None:
        pytest.skip("../shared/data/realistic is not beside the project")
    x, t = s["logits"], s["target"].astype(dtype)
    refused = _refused(lambda: F.cross_entropy(T(x), T(t), ignore_index=255))
    res = lossctl.compute("ce", logits=x, target=t, ignore_index=255)
    want = F.cross_entropy(T(x).double(), T(t).long(), ignore_index=255).item()
    assert res.value == pytest.approx(want, rel=1e-5)
    assert any("torch refuses" in n for n in res.notes) == refused == (dtype != np.int64)


def _refused(fn) -> bool:
    try:
        fn()
    except RuntimeError:
        return True
    return False


@pytest.mark.parametrize("loss", ["multi-margin", "multilabel-margin"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_, np.int32, np.int64, np.uint8])
def test_margin_index_targets_of_a_dtype_torch_refuses_are_noted(rng, loss, dtype):
    """MultiMarginLoss and MultiLabelMarginLoss take int64 targets only ("expected scalar type Long"), not even
    the uint8 that ce takes: the same note as ce's where torch refuses, the number target.long()'s."""
    x = rng.normal(size=(N, C))
    if loss == "multi-margin":
        y, fn = rng.integers(0, 2, size=N).astype(dtype), F.multi_margin_loss
    else:  # class 1 then the -1 that ends each row's targets; bool and uint8 cannot hold -1, so all of class 0/1
        y = np.ones((N, C)) if dtype in (np.bool_, np.uint8) else np.tile([1, 0, -1, 0], (N, 1))
        y, fn = y.astype(dtype), F.multilabel_margin_loss
    refused = _refused(lambda: fn(T(x), T(y)))
    assert refused == (dtype != np.int64)
    res = lossctl.compute(loss, input=x, target=y)
    assert res.value == pytest.approx(fn(T(x), T(y).long()).item(), rel=1e-13)
    want = f"--target holds {np.dtype(dtype)} class indices, read as the whole numbers they are; torch refuses " \
           f"class indices of dtype {np.dtype(dtype)} (it takes int64: target.long())"
    assert [n for n in res.notes if "torch refuses" in n] == ([want] if refused else [])


INT_INPUTS = {  # (loss, the role given as integers or bools): (arrays, torch.nn.functional of the same names)
    ("ce", "logits"): (lambda x, y, s: {"logits": np.round(3 * x), "target": np.arange(N) % C},
                       lambda a: F.cross_entropy(a["logits"], a["target"])),
    ("ce", "target"): (lambda x, y, s: {"logits": x, "target": np.eye(N, C)},
                       lambda a: F.cross_entropy(a["logits"], a["target"])),
    # beside probability targets torch promotes an integer weight (beside class indices it refuses one)
    ("ce", "weight"): (lambda x, y, s: {"logits": x, "target": sp.softmax(y, 1), "weight": np.arange(1.0, C + 1)},
                       lambda a: F.cross_entropy(a["logits"], a["target"], weight=a["weight"])),
    ("nll", "log_probs"): (lambda x, y, s: {"log_probs": -np.abs(np.round(3 * x)), "target": np.arange(N) % C},
                           lambda a: F.nll_loss(a["log_probs"], a["target"])),
    ("bce", "target"): (lambda x, y, s: {"logits": x, "target": y > 0},
                        lambda a: F.binary_cross_entropy_with_logits(a["logits"], a["target"])),
    ("bce", "logits"): (lambda x, y, s: {"logits": np.round(3 * x), "target": (y > 0) * 1.0},
                        lambda a: F.binary_cross_entropy_with_logits(a["logits"], a["target"])),
    ("kl", "target"): (lambda x, y, s: {"log_probs": sp.log_softmax(x, 1), "target": np.eye(N, C)},
                       lambda a: F.kl_div(a["log_probs"], a["target"])),
    ("huber", "input"): (lambda x, y, s: {"input": np.round(3 * x), "target": y},
                         lambda a: F.huber_loss(a["input"], a["target"])),
    ("soft-margin", "input"): (lambda x, y, s: {"input": np.round(3 * x), "target": s},
                               lambda a: F.soft_margin_loss(a["input"], a["target"])),
    ("multi-margin", "input"): (lambda x, y, s: {"input": np.round(3 * x), "target": np.arange(N) % C},
                                lambda a: F.multi_margin_loss(a["input"], a["target"])),
    # torch promotes these beside float inputs: no note
    ("mse", "input"): (lambda x, y, s: {"input": np.round(3 * x), "target": y},
                       lambda a: F.mse_loss(a["input"], a["target"])),
    ("cosine-embedding", "target"): (lambda x, y, s: {"x1": x, "x2": y, "target": s[:, 0]},
                                     lambda a: F.cosine_embedding_loss(a["x1"], a["x2"], a["target"])),
    ("soft-margin", "target"): (lambda x, y, s: {"input": x, "target": s},
                                lambda a: F.soft_margin_loss(a["input"], a["target"])),
}


def _int_input_cases():
    """(case, dtype, backend) where the case has the backend and the dtype makes sense: bool only for 0/1 or
    probability targets (no one's predictions are bool; +-1 targets hold no bool)."""
    for case in sorted(INT_INPUTS):
        loss, role = case
        for dtype in (np.int64, np.int32, np.bool_):
            if dtype == np.bool_ and (role != "target" or loss in ("cosine-embedding", "soft-margin")):
                continue
            for backend in get_loss(loss).backends:
                yield pytest.param(case, dtype, backend, id=f"{backend}-{np.dtype(dtype)}-{loss}-{role}")


@pytest.mark.parametrize(("case", "dtype", "backend"), list(_int_input_cases()))
def test_integer_inputs_read_as_floats_are_noted_where_torch_refuses_them(rng, case, dtype, backend):
    """An integer or bool array where the loss reads floats (logits, a probability or 0/1 target, predictions)
    was read as float64 with no word, where torch.nn.functional on torch.from_numpy of it refuses ("not
    implemented for 'Long'", "Found dtype Long but expected Float"). The number is torch's for x.double(); a note
    says so where torch refuses, and none where torch promotes it (mse's input, +-1 targets)."""
    loss, role = case
    x, y = rng.normal(size=(N, C)), rng.normal(size=(N, C))
    arrays, fn = INT_INPUTS[case]
    arrays = arrays(x, y, np.where(y > 0, 1.0, -1.0))
    arrays[role] = arrays[role].astype(dtype)
    tensors = {k: T(v) for k, v in arrays.items()}
    refused = _refused(lambda: fn(tensors))
    res = lossctl.compute(loss, backend=backend, **arrays)
    want = fn({k: v.double() if k == role else v for k, v in tensors.items()})
    assert res.dtype == "float64"
    assert_close(res.value, want)
    note = f"--{role.replace('_', '-')} holds {np.dtype(dtype)} values, read as float64 numbers; torch refuses " \
           f"{role} of dtype {np.dtype(dtype)} (it takes floating-point tensors: {role}.double())"
    assert [n for n in res.notes if "floating-point tensors" in n] == ([note] if refused else [])


OWN_DTYPE = {  # loss: (its arrays from float32 scores x and a float64 distribution q; torch.nn.functional on them)
    "ce": (lambda x, q: {"logits": x, "target": q}, lambda X, Q: F.cross_entropy(X, Q)),
    "perplexity": (lambda x, q: {"logits": x, "target": q}, lambda X, Q: torch.exp(F.cross_entropy(X, Q))),
    "kl": (lambda x, q: {"logits": x, "target": q},
           lambda X, Q: F.kl_div(F.log_softmax(X, 1), Q, reduction="batchmean")),
    "bce": (lambda x, q: {"logits": x, "target": q}, lambda X, Q: F.binary_cross_entropy_with_logits(X, Q)),
    "poisson-nll": (lambda x, q: {"input": x, "target": q * 3}, lambda X, Q: F.poisson_nll_loss(X, Q * 3)),
}


@pytest.mark.parametrize("loss, backend", [(loss, b) for loss in sorted(OWN_DTYPE) for b in get_loss(loss).backends])
def test_logits_keep_float32_beside_a_float64_target(cli, tmp_path, loss, backend):
    """torch takes log_softmax, log-sigmoid or exp of float32 logits in float32 and only then meets the float64
    target: its float64 result has float32's precision. 7ecc3b9 computed them in float64 and said float64, so
    --expect held torch's own number to float64's tolerance and refused it (digits' float32 logits and float64
    probabilities: ce 0.19615763207669465 against torch's 0.19615762889982158, exit 1)."""
    if not (REALISTIC / "digits_logreg.npz").exists():
        pytest.skip(f"{REALISTIC} not found")
    data = np.load(REALISTIC / "digits_logreg.npz")
    x, q = data["logits"], data["probs"]
    assert x.dtype == np.float32 and q.dtype == np.float64
    arrays, fn = OWN_DTYPE[loss]
    paths = []
    for name, arr in arrays(x, q).items():
        np.save(tmp_path / f"{name}.npy", arr)
        paths += [f"--{name.replace('_', '-')}", str(tmp_path / f"{name}.npy")]
    want = fn(T(x), T(q))
    reduction = ("--reduction", "batchmean") if loss == "kl" else ()
    for stream in ((), ("--stream",))[:2 if get_loss(loss).stream else 1]:
        run = cli(loss, *paths, *reduction, *stream, "--backend", backend, "--expect", repr(want.item()), "-f",
                  "json")
        out = json.loads(run.stdout)
        assert out["dtype"] == "float32"
        assert_close(out["value"], want, np.float32)


WIDE_LEAD = {  # float64 predictions x beside a float32 array torch transforms in its own dtype first: (arrays, F)
    "bce": ({}, lambda x, y: {"logits": x, "target": (y > 0).astype(np.float32)},
            lambda a: F.binary_cross_entropy_with_logits(a["logits"], a["target"])),
    "focal": ({}, lambda x, y: {"logits": x, "target": (y > 0).astype(np.float32)},
              lambda a: (lambda p, t: ((0.25 * t + 0.75 * (1 - t)) * (1 - (p * t + (1 - p) * (1 - t))) ** 2
                                       * F.binary_cross_entropy_with_logits(a["logits"], t, reduction="none")).mean()
                         )(torch.sigmoid(a["logits"]), a["target"])),
    "kl": ({}, lambda x, y: {"log_probs": sp.log_softmax(x, 1), "target": sp.softmax(y, 1).astype(np.float32)},
           lambda a: F.kl_div(a["log_probs"], a["target"], reduction="batchmean")),
    "kl-log-prob": ({"--target-kind": "log-prob"},
                    lambda x, y: {"log_probs": sp.log_softmax(x, 1), "target": sp.log_softmax(y, 1).astype(np.float32)},
                    lambda a: F.kl_div(a["log_probs"], a["target"], reduction="batchmean", log_target=True)),
    "cosine-similarity": ({"--reduction": "mean"}, lambda x, y: {"x1": x, "x2": y.astype(np.float32)},
                          lambda a: F.cosine_similarity(a["x1"], a["x2"]).mean()),
    "cosine-embedding": ({}, lambda x, y: {"x1": x, "x2": y.astype(np.float32), "target": np.sign(y[:, 0])},
                         lambda a: F.cosine_embedding_loss(a["x1"], a["x2"], a["target"])),
    "gaussian-nll": ({}, lambda x, y: {"input": x, "target": y, "var": (np.abs(y) + 0.5).astype(np.float32)},
                     lambda a: F.gaussian_nll_loss(a["input"], a["target"], a["var"])),
}


@pytest.mark.parametrize("case, backend", [(case, b) for case in sorted(WIDE_LEAD)
                                           for b in get_loss(case.split("-log")[0]).backends])
def test_a_float32_array_torch_transforms_first_keeps_float32_beside_float64_predictions(cli, tmp_path, rng, case,
                                                                                          backend):
    """Role.own_dtype (a99a773, b3c86dc, 9f9262c) was read from the first float input only: float64 logits or x1
    beside a float32 target or x2 that torch transforms in its own dtype first (BCEWithLogitsLoss computes in the
    target's dtype, KLDivLoss takes the target's xlogy or exp, the cosine x2's norm, GaussianNLLLoss log(var))
    computed in float64 and said so, where torch's number has float32's precision: bce 8.8e-9 off
    F.binary_cross_entropy_with_logits (which returns float32), cosine-similarity 6.4e-7, and --expect of
    torch's own number exited 1 under float64's tolerance. Such a float32 array now computes the loss in float32,
    whichever role holds it."""
    loss = case.split("-log")[0]
    options, arrays, fn = WIDE_LEAD[case]
    arrays = arrays(rng.normal(size=(64, 5)), rng.normal(size=(64, 5)))
    want = fn({k: T(v) for k, v in arrays.items()})
    paths = []
    for name, arr in arrays.items():
        np.save(tmp_path / f"{name}.npy", arr)
        paths += [f"--{name.replace('_', '-')}", str(tmp_path / f"{name}.npy")]
    options = [item for pair in options.items() for item in pair]
    if loss == "kl":
        options += ["--reduction", "batchmean"]
    for stream in ((), ("--stream",))[:2 if get_loss(loss).stream else 1]:
        run = cli(loss, *paths, *options, *stream, "--backend", backend, "--expect", repr(want.item()), "-f", "json")
        assert run.exit_code == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["dtype"] == "float32"
        assert_close(out["value"], want, np.float32)


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_integer_targets_are_noted_in_binary_files_only(cli, tmp_path, rng, stream):
    """bce's 0/1 targets as int64 in an .npy are the user's dtype, which torch refuses (noted, streamed or not);
    whole numbers in a CSV are lossctl's reading of text, which torch never sees (no note). Both are torch's
    number on the same targets as float32."""
    x, y = rng.normal(size=(300, 3)).astype(np.float32), rng.integers(0, 2, size=(300, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savetxt(tmp_path / "y.csv", y, fmt="%d", delimiter=",")
    want = F.binary_cross_entropy_with_logits(T(x), T(y).float())
    note = "--target holds int64 values, read as float32 numbers; torch refuses target of dtype int64 (it takes " \
           "floating-point tensors: target.float())"
    for target, notes in (("y.npy", [note]), ("y.csv", [])):
        out = json.loads(cli("bce", "--logits", tmp_path / "x.npy", "--target", tmp_path / target, stream, "-f",
                             "json").stdout)
        assert_close(out["value"], want, np.float32)
        assert [n for n in out["notes"] if "floating-point tensors" in n] == notes


@pytest.mark.parametrize("fmt", [".npy", ".safetensors", ".pt"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float16_inputs_compute_in_float32_with_a_note(cli, tmp_path, rng, fmt, backend):
    """A float16 file computes in float32 (torch's number for x.float()), where torch on the float16 tensor
    computes in float16; that was said nowhere (and a .safetensors or .pt float16 read as float32, so the result
    could not know it). A note says so, on both backends, in every binary format."""
    x, y = rng.normal(size=(N, C)).astype(np.float16), np.arange(N) % C
    path = tmp_path / f"x{fmt}"
    if fmt == ".npy":
        np.save(path, x)
    elif fmt == ".pt":
        torch.save(T(x), path)
    else:
        from safetensors.numpy import save_file

        save_file({"logits": x}, str(path))
    out = json.loads(cli("ce", "--logits", path, "--target", json.dumps(y.tolist()), "--backend", backend,
                         "-f", "json").stdout)
    assert out["dtype"] == "float32"
    assert_close(out["value"], F.cross_entropy(T(x).float(), T(y)), np.float32)
    assert "--logits holds float16 values, computed in float32; torch computes a float16 tensor's loss in " \
           "float16, rounding each step to it, or refuses it (logits.float() gives torch this number)" in out["notes"]


def _near_float32_max(loss: str, scale: float) -> tuple[dict, Callable]:
    """Arrays whose float32 losses are each below float32's largest and sum past it at scale 1 (and not at 1/4),
    with torch.nn.functional on them."""
    x = np.array([[3e38, 1.0], [3e38, -1.0], [1.0, 2.0]], np.float32) * np.float32(scale)
    if loss == "bce":  # the two 3e38 logits with label 0 cost 3e38 each
        y = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
        return {"logits": x, "target": y}, lambda r: F.binary_cross_entropy_with_logits(T(x), T(y), reduction=r)
    if loss == "ce":  # logits -3e38 at the targets: 3e38 each
        t = np.array([0, 0, 1])
        return {"logits": -x, "target": t}, lambda r: F.cross_entropy(T(-x), T(t), reduction=r)
    a, b = np.full(3, 1.3e19 * np.sqrt(scale), np.float32), np.zeros(3, np.float32)  # 1.69e38 each
    return {"input": a, "target": b}, lambda r: F.mse_loss(T(a), T(b), reduction=r)


@pytest.mark.parametrize("loss", ["bce", "mse", "ce"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_float32_sum_past_float32s_largest_is_inf_as_torchs(loss, reduction, backend):
    """float32 losses near float32's largest sum past it: torch's float32 sum, and so its mean, is inf, where
    lossctl's float64 sums printed 6e38 (no float32 number) or a mean of 1e38, as dtype float32. The value is
    torch's inf now, with a warning giving the float64 one; a sum below the limit is unchanged."""
    arrays, fn = _near_float32_max(loss, 1.0)
    want = fn(reduction)
    assert want.dtype == torch.float32 and torch.isinf(want)
    res = lossctl.compute(loss, backend=backend, reduction=reduction, **arrays)
    assert res.dtype == "float32" and res.value == math.inf
    assert [w for w in res.warnings if "past float32's largest" in w][0].startswith(f"the {reduction} is inf: ")
    arrays, fn = _near_float32_max(loss, 0.25)
    below = lossctl.compute(loss, backend=backend, reduction=reduction, **arrays)
    assert_close(below.value, fn(reduction), np.float32)
    assert not [w for w in below.warnings if "past float32's largest" in w]


@pytest.mark.parametrize("form", ["safetensors", "pt", "from-pt", "tensor"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_bfloat16_inputs_compute_in_float32_with_a_note(cli, tmp_path, rng, form, backend):
    """bfloat16 (a .safetensors or .pt tensor, a --from bundle's, a tensor given to the API) is read as float32,
    which NumPy can hold and bfloat16 it cannot: ce printed 3.26728 beside no word where F.cross_entropy on the
    bfloat16 tensor computes in bfloat16 (3.26562). The number stays torch's for x.float(); a note says so."""
    from safetensors.torch import save_file

    x, y = torch.from_numpy(rng.normal(size=(N, C))).to(torch.bfloat16), torch.arange(N) % C
    note = "--logits holds bfloat16 values, computed in float32; torch computes a bfloat16 tensor's loss in " \
           "bfloat16, rounding each step to it, or refuses it (logits.float() gives torch this number)"
    if form == "tensor":
        res = lossctl.compute("ce", logits=x, target=y, backend=backend)
        value, notes, dtype = res.value, res.notes, res.dtype
    else:
        path = tmp_path / ("x.safetensors" if form == "safetensors" else "x.pt")
        if form == "safetensors":
            save_file({"logits": x.contiguous(), "target": y}, str(path))
        else:
            torch.save({"logits": x, "target": y}, path)
        args = ["--from", path] if form == "from-pt" else ["--logits", f"{path}:logits", "--target", f"{path}:target"]
        out = json.loads(cli("ce", *args, "--backend", backend, "-f", "json").stdout)
        value, notes, dtype = out["value"], out["notes"], out["dtype"]
    assert dtype == "float32"
    assert_close(value, F.cross_entropy(x.float(), y), np.float32)
    assert note in notes
    mixed = lossctl.compute("mse", input=x, target=x.float() + 1, backend=backend)  # torch promotes: no note
    assert not [n for n in mixed.notes if "bfloat16" in n]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float16_beside_a_float32_input_gets_no_float16_note(rng, backend):
    """mse of a float16 input and a float32 target: torch promotes to float32 and computes what lossctl does, so
    the float16 note (b2241f1) would be wrong there; two float16 arrays get it."""
    x, y = rng.normal(size=(N, C)).astype(np.float16), rng.normal(size=(N, C))
    for target, noted in ((y.astype(np.float32), False), (y.astype(np.float16), True)):
        want = F.mse_loss(T(x), T(target))
        res = lossctl.compute("mse", backend=backend, input=x, target=target)
        assert res.dtype == "float32"
        assert_close(res.value, F.mse_loss(T(x).float(), T(target).float()), np.float32)
        assert want.dtype == (torch.float16 if noted else torch.float32)
        assert any("holds float16 values" in n for n in res.notes) == noted


HALF_OWN_DTYPE = {  # loss: (float16 predictions x beside a float64 array q of their shape; torch.nn.functional)
    "ce": (lambda x, q: {"logits": x, "target": q}, lambda X, Q: F.cross_entropy(X, Q)),
    "huber": (lambda x, q: {"input": x, "target": q}, lambda X, Q: F.huber_loss(X, Q)),
    "bce": (lambda x, q: {"logits": x, "target": q}, lambda X, Q: F.binary_cross_entropy_with_logits(X, Q)),
}


@pytest.mark.parametrize("loss", sorted(HALF_OWN_DTYPE))
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float16_logits_beside_a_float64_target_keep_the_float16_note(rng, loss, backend):
    """torch takes the log-softmax (log-sigmoid) of float16 logits in float16 before it meets a float64 target,
    and HuberLoss casts a float64 target to float16: its number is float16's (ce of the digits data's logits as
    float16 and its float64 probabilities: 0.1961496 where float32 gives 0.1961577), yet 732afcc dropped the
    float16 note wherever a wider float input stood beside."""
    x = rng.normal(size=(40, C)).astype(np.float16)
    q = sp.softmax(rng.normal(size=(40, C)), 1)
    arrays, fn = HALF_OWN_DTYPE[loss]
    res = lossctl.compute(loss, backend=backend, **arrays(x, q))
    assert res.dtype == "float32"
    assert_close(res.value, fn(T(x).float(), T(q).float()), np.float32)
    role = next(iter(arrays(x, q)))
    assert f"--{role} holds float16 values, computed in float32; torch computes a float16 tensor's loss in " \
           f"float16, rounding each step to it, or refuses it ({role}.float() gives torch this number)" in res.notes


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_big_endian_arrays_are_noted_by_their_dtype_name(rng, backend):
    """Arrays given to the API keep a big-endian file's byte order: a '>i8' weight was noted as 'holds >i8
    values', and '>f2' logits got no float16 note at all (np.dtype('>f2') != np.float16)."""
    x, y, w = rng.normal(size=(N, C)).astype(">f2"), np.arange(N) % C, np.arange(1, C + 1).astype(">i8")
    res = lossctl.compute("ce", backend=backend, logits=x, target=y, weight=w)
    assert_close(res.value, F.cross_entropy(T(x.astype(np.float32)), T(y), weight=T(w.astype(np.float32))),
                 np.float32)
    assert "--weight holds int64 values, read as float32 numbers; torch refuses weight of dtype int64 (it takes " \
           "floating-point tensors: weight.float())" in res.notes
    assert any(n.startswith("--logits holds float16 values, computed in float32") for n in res.notes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.int16])
def test_ctc_lengths_of_a_dtype_torch_refuses_are_noted(rng, dtype):
    """CTCLoss takes lengths of any integer dtype and refuses float ones ("must be integral"); its targets of any
    dtype (on the CPU), so they get no note."""
    lp = np.log(rng.dirichlet(np.ones(C), size=(6, 2)))
    il, tl, t = np.array([6, 5]).astype(dtype), np.array([2, 1]).astype(dtype), np.array([[1, 2], [3, 0]])
    refused = _refused(lambda: F.ctc_loss(T(lp), T(t), T(il), T(tl)))
    assert refused == (np.dtype(dtype).kind == "f")
    res = lossctl.compute("ctc", log_probs=lp, target=t.astype(np.float64), input_lengths=il, target_lengths=tl)
    assert res.value == pytest.approx(F.ctc_loss(T(lp), T(t), T(il).long(), T(tl).long()).item(), rel=1e-12)
    want = [f"--{r.replace('_', '-')} holds {np.dtype(dtype)} lengths, read as the whole numbers they are; torch "
            f"refuses lengths of dtype {np.dtype(dtype)} (it takes integers: {r}.long())"
            for r in ("input_lengths", "target_lengths")]
    assert [n for n in res.notes if "torch refuses" in n] == (want if refused else [])



@pytest.mark.parametrize("target, length", [([[1, 2, 3]], 2), ([[1, 2, 0]], [2]), ([[3, 1, 2]], 3)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ctc_takes_an_unbatched_target_padded_as_one_row_as_torch(cli, rng, target, length, reduction):
    """(T, C) log-probs with a (1, S) target: torch reads it padded, the first target-length labels (it was refused
    as 'must be (N, S) or concatenated'); the value, its shape and the gradient are torch's."""
    lp = torch.tensor(np.log(rng.dirichlet(np.ones(C), size=6)), requires_grad=True)
    want = nn.CTCLoss(reduction=reduction)(lp, torch.tensor(target), torch.tensor(6), torch.tensor(length))
    res = lossctl.compute("ctc", log_probs=lp.detach().numpy(), target=target, input_lengths=6,
                          target_lengths=length, reduction=reduction)
    assert_close(result_value(res), want)
    assert np.shape(result_value(res)) == tuple(want.shape)
    want.sum().backward()
    grad = gradient("ctc", log_probs=lp.detach().numpy(), target=target, input_lengths=6,
                                 target_lengths=length, reduction=reduction).gradients["log_probs"]
    assert_close(grad, lp.grad)
    too_short = cli("ctc", "--log-probs", str(lp.detach().tolist()), "--target", "[[1, 2]]", "--input-lengths", "6",
                    "--target-lengths", "3", code=2)
    assert too_short.stderr == "lossctl: error: --target (literal): padded targets (1, 2) need 1 row of at least 3 " \
                               "labels\n"

def test_ce_one_hot_equals_index(rng):
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    onehot = np.eye(C)[y]
    a = lossctl.compute("ce", logits=x, target=y, reduction="none").values
    b = lossctl.compute("ce", logits=x, target=onehot, reduction="none").values
    np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_allclose(a, -sp.log_softmax(x, axis=1)[np.arange(N), y], rtol=1e-13)
    # one-hot rows written as integers (a CSV of 0s and 1s) are a distribution, not class indices
    c = lossctl.compute("ce", logits=x, target=onehot.astype(np.int64), reduction="none").values
    np.testing.assert_allclose(c, a, rtol=1e-13)


def test_ce_warns_when_probability_rows_do_not_sum_to_one(rng):
    x = rng.normal(size=(N, C))
    t = probs(rng, (N, C), np.float64) * 1.5
    res = lossctl.compute("ce", logits=x, target=t)
    assert res.value == pytest.approx(F.cross_entropy(T(x), T(t)).item(), rel=1e-13)
    assert any("sum to 1" in w for w in res.warnings)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("loss", ["ce", "perplexity"])
def test_ce_probability_targets_take_only_a_negative_ignore_index_as_torch(cli, rng, loss, backend):
    """torch refuses ignore_index >= 0 with probability targets; lossctl once computed a number regardless."""
    x, t = rng.normal(size=(N, C)), probs(rng, (N, C), np.float64)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(T(x), T(t), ignore_index=0)
    ran = cli(loss, "--logits", str(x.tolist()), "--target", str(t.tolist()), "--ignore-index", "0",
              "--backend", backend, code=2)
    assert ran.stderr == ("lossctl: error: --ignore-index: applies only to class-index targets; torch refuses 0 with "
                          "probability targets (only a negative value, such as the default -100, is accepted)\n")
    negative = lossctl.compute(loss, logits=x, target=t, ignore_index=-1, backend=backend).value
    expected = F.cross_entropy(T(x), T(t), ignore_index=-1).item()
    assert negative == pytest.approx(math.exp(expected) if loss == "perplexity" else expected, rel=1e-12)


def test_one_distribution_that_does_not_sum_to_one_is_named_without_a_row(cli):
    """A 1-d target is one distribution: the warning once named its 'row []'."""
    x, t = [1.0, 2.0, 3.0], [0.2, 0.3, 0.6]
    ran = cli("ce", "--logits", str(x), "--target", str(t), "-f", "plain")
    assert float(ran.stdout) == pytest.approx(F.cross_entropy(T(np.array(x)), T(np.array(t))).item(), rel=1e-12)
    assert ran.stderr == ("lossctl: warning: --target: its one row (a 1-d array is one sample's classes) sums to 1.1, "
                          "not 1\n")


# --- negative log-likelihood ---------------------------------------------------------------------------------


def test_nll_equals_ce_of_logits_and_the_tutorials_formula(rng):
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    expected = -np.mean(sp.log_softmax(x, axis=1)[np.arange(N), y])
    assert lossctl.compute("nll", logits=x, target=y).value == pytest.approx(expected, rel=1e-13)
    assert lossctl.compute("nll", probs=sp.softmax(x, axis=1), target=y).value == pytest.approx(expected, rel=1e-12)
    assert lossctl.compute("ce", logits=x, target=y).value == pytest.approx(expected, rel=1e-13)


# --- KL divergence -------------------------------------------------------------------------------------------


def test_kl_default_reduction_is_torchs_mean(rng):
    x, t = rng.normal(size=(N, C)), probs(rng, (N, C), np.float64)
    res = lossctl.compute("kl", logits=x, target=t)
    assert res.reduction == "mean"
    assert res.value == pytest.approx(torch_loss(nn.KLDivLoss(), torch.log_softmax(T(x), -1), T(t)).item(), rel=1e-13)


def test_kl_formula_with_zero_target_probabilities(rng):
    """scipy's rel_entr keeps 0 log 0 = 0, as torch does; batchmean is the textbook KL per sample."""
    x = rng.normal(size=(N, C))
    t = probs(rng, (N, C), np.float64)
    t[0] = [0.0, 0.5, 0.5, 0.0]
    q = sp.softmax(x, axis=1)
    per_row = sp.rel_entr(t, q).sum(axis=1)
    res = lossctl.compute("kl", logits=x, target=t, reduction="batchmean")
    assert res.value == pytest.approx(per_row.mean(), rel=1e-12)
    np.testing.assert_allclose(per_row, scipy.stats.entropy(t, q, axis=1), rtol=1e-12)
    res = lossctl.compute("kl", logits=x, target=t, reduction="mean")
    assert res.value == pytest.approx(per_row.sum() / (N * C), rel=1e-12)


def test_kl_last_axis_on_3d_input(rng):
    x, t = rng.normal(size=(2, 3, C)), probs(rng, (2, 3, C), np.float64)
    res = lossctl.compute("kl", logits=x, target=t, reduction="batchmean")
    expected = F.kl_div(torch.log_softmax(T(x), -1), T(t), reduction="batchmean")
    assert_close(res.value, expected)


# --- entropy -------------------------------------------------------------------------------------------------


def test_entropy_formula_with_zeros(rng):
    p = probs(rng, (N, C), np.float64)
    p[2] = [1.0, 0.0, 0.0, 0.0]
    p[3] = [0.5, 0.5, 0.0, 0.0]
    res = lossctl.compute("entropy", probs=p, reduction="none")
    np.testing.assert_allclose(res.values, scipy.stats.entropy(p, axis=1), rtol=1e-13, atol=1e-15)
    assert res.values[2] == pytest.approx(0.0, abs=1e-15)
    assert res.values[3] == pytest.approx(math.log(2), rel=1e-15)


def test_entropy_dim_option(rng):
    p = probs(rng, (2, C, 3), np.float64, axis=1)
    res = lossctl.compute("entropy", probs=p, dim=1, reduction="none")
    np.testing.assert_allclose(res.values, scipy.stats.entropy(p, axis=1), rtol=1e-13)


def test_entropy_of_one_distribution():
    res = lossctl.compute("entropy", probs=[0.25, 0.25, 0.25, 0.25])
    assert res.value == pytest.approx(math.log(4), rel=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_js_and_entropy_refuse_a_single_number_for_a_distribution(cli, backend):
    """js once gave 0.0411 for --p 0.3 --q 0.7 (two numbers, no distribution), where entropy refuses the same."""
    for args in (("js", "--p", "0.3", "--q", "0.7"), ("entropy", "--probs", "0.3")):
        ran = cli(*args, "--backend", backend, code=2)
        assert ran.stderr == (f"lossctl: error: {args[1]} (literal): is a single number; a distribution needs at "
                              "least one axis\n")
    one = lossctl.compute("js", p=[0.5, 0.5], q=[0.9, 0.1], backend=backend).value
    m = np.array([0.7, 0.3])
    assert one == pytest.approx(0.5 * (scipy.stats.entropy([0.5, 0.5], m) + scipy.stats.entropy([0.9, 0.1], m)),
                                rel=1e-12)


# --- logarithm base ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base, scale", [("2", math.log(2)), ("10", math.log(10))])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["ce", "nll", "kl", "entropy"])
def test_base(rng, base, scale, reduction, loss):
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    p = probs(rng, (N, C), np.float64)
    if loss == "ce":
        kw, ref = {"logits": x, "target": y}, F.cross_entropy(T(x), T(y), reduction=reduction)
    elif loss == "nll":
        kw, ref = {"logits": x, "target": y}, F.nll_loss(torch.log_softmax(T(x), 1), T(y), reduction=reduction)
    elif loss == "kl":
        kw = {"logits": x, "target": p}
        ref = torch_loss(nn.KLDivLoss(reduction=reduction), torch.log_softmax(T(x), -1), T(p))
    else:
        h = torch.distributions.Categorical(probs=T(p)).entropy()
        kw, ref = {"probs": p}, {"mean": h.mean(), "sum": h.sum(), "none": h}[reduction]
    res = lossctl.compute(loss, **kw, base=base, reduction=reduction)
    assert_close(result_value(res), ref / scale)
    assert res.unit == {"2": "bits", "10": "bans"}[base]


def test_entropy_in_bits_formula():
    assert lossctl.compute("entropy", probs=[0.5, 0.25, 0.25], base="2").value == pytest.approx(1.5, rel=1e-15)


@pytest.mark.parametrize("loss, kw", [("bce", {"probs": [0.5], "target": [1.0]}),
                                      ("cosine", {"x1": [[1.0, 0.0]], "x2": [[0.0, 1.0]], "target": [1]})])
def test_base_refused_where_not_information(loss, kw):
    with pytest.raises(UsageError, match="--base"):
        lossctl.compute(loss, **kw, base="2")


# --- binary cross entropy ------------------------------------------------------------------------------------


def test_bce_logits_formula(rng):
    """-w * [pw * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))], averaged over every element."""
    x, y = rng.normal(size=(N, 3)) * 4, rng.integers(0, 2, size=(N, 3)).astype(np.float64)
    w, pw = rng.random((N, 3)) + 0.5, np.array([1.0, 2.0, 0.5])
    per = -w * (pw * y * sp.log_expit(x) + (1 - y) * sp.log_expit(-x))
    res = lossctl.compute("bce", logits=x, target=y, weight=w, pos_weight=pw)
    assert res.value == pytest.approx(per.mean(), rel=1e-12)
    res = lossctl.compute("bce", probs=sp.expit(x), target=y, weight=w, reduction="sum")
    assert res.value == pytest.approx((-w * (y * sp.log_expit(x) + (1 - y) * sp.log_expit(-x))).sum(), rel=1e-9)


def test_bce_pos_weight_of_another_shape_names_the_input_shape_truly(cli):
    """--pos-weight is one weight per class (the last axis); the error once called (2,) "the input's" shape."""
    ran = cli("bce", "--logits", "[[1.0, 2.0], [0.5, -1.0]]", "--target", "[[1, 0], [0, 1]]", "--pos-weight",
              "[[1, 2], [3, 4]]", code=2)
    assert ran.stderr == ("lossctl: error: --pos-weight (literal): shape (2, 2) does not broadcast to (2,): one weight "
                          "per class, along the last axis of --logits (2, 2)\n")


def test_bce_clamps_log_at_minus_100_like_torch():
    res = lossctl.compute("bce", probs=[0.0, 1.0], target=[1.0, 0.0], reduction="none")
    np.testing.assert_array_equal(res.values, [100.0, 100.0])


def test_binary_data_given_to_ce_is_one_row_that_does_not_sum_to_1():
    """1-d logits with 0/1 targets of their shape: torch reads one sample whose target distribution sums to 2."""
    x, y = [0.5, -1.0, 2.0], [1, 0, 1]
    res = lossctl.compute("ce", logits=x, target=y)
    assert res.value == pytest.approx(float(F.cross_entropy(torch.tensor(x), torch.tensor(y, dtype=torch.float32))),
                                      rel=1e-6)
    assert res.warnings == ["--target: its one row (a 1-d array is one sample's classes) sums to 2, not 1"]


CLAMP_NOTE = "torch clamps each log term at -100, and some are clamped here"


@pytest.mark.parametrize(("p", "y", "clamped"), [
    ([0.0, 0.5], [1.0, 0.0], True), ([0.5, 1.0], [1.0, 0.5], True), ([1e-50, 0.5], [0.3, 0.0], True),
    ([0.0, 1.0], [0.0, 1.0], False), ([1e-40, 0.999], [1.0, 0.0], False), ([0.2, 0.9], [1.0, 0.0], False)])
def test_bce_notes_the_clamp_only_where_it_changes_a_term(p, y, clamped):
    res = lossctl.compute("bce", probs=p, target=y, reduction="none")
    tp, ty = T(np.array(p)), T(np.array(y))
    unclamped = -(torch.xlogy(ty, tp) + torch.xlogy(1 - ty, 1 - tp))  # 0 log 0 = 0
    # torch's BCELoss differs from the formula written out exactly where a log term below -100 counts
    assert (not np.allclose(res.values, unclamped.numpy(), rtol=1e-12)) == clamped
    assert any(n.startswith(CLAMP_NOTE) for n in res.notes) == clamped


def test_bce_pos_weight_needs_logits():
    with pytest.raises(UsageError, match="--pos-weight"):
        lossctl.compute("bce", probs=[0.5], target=[1.0], pos_weight=[2.0])


# --- cosine embedding ----------------------------------------------------------------------------------------


def test_cosine_embedding_formula(rng):
    x1, x2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    y = np.array([1, -1, 1, -1, -1, 1])
    cos = (x1 * x2).sum(1) / np.linalg.norm(x1, axis=1) / np.linalg.norm(x2, axis=1)
    per = np.where(y == 1, 1 - cos, np.maximum(0.0, cos - 0.1))
    res = lossctl.compute("cosine", x1=x1, x2=x2, target=y, margin=0.1, reduction="none")
    np.testing.assert_allclose(res.values, per, rtol=1e-6, atol=1e-7)  # torch adds eps to the norms


def test_cosine_embedding_single_pair():
    res = lossctl.compute("cosine", x1=[1.0, 0.0], x2=[1.0, 1.0], target=1)
    assert res.value == pytest.approx(1 - 1 / math.sqrt(2), rel=1e-6)


# --- input validation through the API ------------------------------------------------------------------------


@pytest.mark.parametrize("loss, kw, option", [
    ("ce", {"logits": [[1.0, 2.0]], "target": [2]}, "--target"),
    ("ce", {"logits": [[1.0, 2.0]], "target": [[0.5, 0.5], [0.5, 0.5]]}, "--target"),
    ("ce", {"logits": [[1.0, 2.0]], "target": [0], "weight": [1.0]}, "--weight"),
    ("ce", {"logits": [[1.0, 2.0]], "target": [[-0.5, 1.5]]}, "--target"),
    ("ce", {"logits": [[1.0, 2.0]], "target": [0], "label_smoothing": 1.5}, "--label-smoothing"),
    ("ce", {"logits": [[1.0, 2.0]], "target": [-100]}, "--target"),
    ("ce", {"logits": [[1.0, float("nan")]], "target": [0]}, "--logits"),
    ("nll", {"logits": [[1.0, 2.0]], "log_probs": [[1.0, 2.0]], "target": [0]}, "--"),
    ("kl", {"logits": [[1.0, 2.0]], "target": [[0.5, 0.5]], "target_kind": "index"}, "--target-kind"),
    ("kl", {"logits": [[1.0, 2.0]], "target": [[0.5, 0.5]], "reduction": "batchsum"}, "--reduction"),
    ("ce", {"logits": [[1.0, 2.0]], "target": [0], "reduction": "batchmean"}, "--reduction"),
    ("bce", {"probs": [1.5], "target": [1.0]}, "--probs"),
    ("bce", {"logits": [1.5], "target": [2.0]}, "--target"),
    ("cosine", {"x1": [[1.0, 0.0]], "x2": [[0.0, 1.0]], "target": [0]}, "--target"),
    ("cosine", {"x1": [[1.0, 0.0]], "x2": [[0.0, 1.0, 2.0]], "target": [1]}, "--x2"),
    ("entropy", {"probs": [[0.5, -0.5]]}, "--probs"),
])
def test_bad_inputs_name_the_option(loss, kw, option):
    with pytest.raises(LossctlError) as info:
        lossctl.compute(loss, **kw)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(option), str(info.value)
    assert "np.float" not in str(info.value) and "np.int" not in str(info.value)


def test_out_of_range_class_names_value_and_position():
    with pytest.raises(LossctlError, match=r"class index 7 at index \[2\] is out of range \[0, 3\)"):
        lossctl.compute("ce", logits=np.zeros((3, 3)), target=[0, 1, 7])


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(LossctlError) as info:
        lossctl.compute("ce", logits=np.zeros((3, 4)), target=np.zeros(2, dtype=int))
    assert "(2,)" in str(info.value) and "(3, 4)" in str(info.value)


def test_dtype_option(rng):
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    assert lossctl.compute("ce", logits=x.tolist(), target=y.tolist()).dtype == "float64"
    assert lossctl.compute("ce", logits=x.astype(np.float32), target=y).dtype == "float32"
    res = lossctl.compute("ce", logits=x.astype(np.float32), target=y, dtype="float64")
    assert res.dtype == "float64"
    assert res.value == pytest.approx(F.cross_entropy(T(x.astype(np.float32)).double(), T(y)).item(), rel=1e-13)
    assert lossctl.compute("ce", logits=x, target=y, dtype="float32").dtype == "float32"


MIXED = {  # loss: (its arrays, float32 first and a float64 one of its shape; torch.nn.functional on them)
    "mse": (lambda x, y, t: {"input": x, "target": y}, lambda X, Y, t, r: F.mse_loss(X, Y, reduction=r)),
    "l1": (lambda x, y, t: {"input": x, "target": y}, lambda X, Y, t, r: F.l1_loss(X, Y, reduction=r)),
    "bce": (lambda x, y, t: {"logits": x, "target": (y > 0) * 1.0},
            lambda X, Y, t, r: F.binary_cross_entropy_with_logits(X, (Y > 0).double(), reduction=r)),
    "ce": (lambda x, y, t: {"logits": x, "target": sp.softmax(y, 1)},
           lambda X, Y, t, r: F.cross_entropy(X, Y.softmax(1), reduction=r)),
    "kl": (lambda x, y, t: {"log_probs": x, "target": sp.softmax(y, 1)},
           lambda X, Y, t, r: F.kl_div(X, Y.softmax(1), reduction=r)),
    "pairwise-distance": (lambda x, y, t: {"x1": x, "x2": y},
                          lambda X, Y, t, r: {"none": lambda v: v, "mean": torch.mean, "sum": torch.sum}[r](
                              F.pairwise_distance(X, Y))),
}


@pytest.mark.parametrize("loss", sorted(MIXED))
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_predictions_with_float64_targets_compute_in_float64_as_torch_promotes(
        cli, tmp_path, rng, loss, backend, reduction):
    """torch promotes float32 predictions met by float64 targets (np.save of a float64 array) to float64; lossctl
    computed them in float32 (the first file's dtype), 1e-8 off torch's float64 number. bce and ce take the
    log-sigmoid and log-softmax of the float32 logits in float32 before promoting, so their float64 number has
    float32's precision only: lossctl computes them in float32 and says so (float32's tolerance holds it to torch's
    number, where float64's refused it: test_logits_keep_float32_beside_a_float64_target)."""
    x, y = rng.normal(size=(N, C)).astype(np.float32), rng.normal(size=(N, C))
    arrays, fn = MIXED[loss]
    paths = []
    for name, arr in arrays(x, y, None).items():
        np.save(tmp_path / f"{name}.npy", arr)
        paths += [f"--{name.replace('_', '-')}", str(tmp_path / f"{name}.npy")]
    out = json.loads(cli(loss, *paths, "--backend", backend, "--reduction", reduction, "-f", "json").stdout)
    want = fn(T(x), T(y), None, reduction)
    assert want.dtype == torch.float64 and out["dtype"] == ("float32" if loss in ("bce", "ce") else "float64")
    got = out["values" if reduction == "none" else "value"]
    if loss in ("bce", "ce"):
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), want, rtol=1.3e-6, atol=1e-5)  # float32
    else:
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_a_streamed_float32_input_with_float64_targets_computes_as_one_read_whole(cli, tmp_path, rng, stream):
    """Streamed, each input's probe held no row's shape, so a float64 index target (a Parquet column read as
    float64) widened ce's float32 logits that the same file read whole keeps in float32; and mse's float64
    targets widen its float32 inputs streamed or not, as torch promotes them."""
    x, y = rng.normal(size=(300, 3)).astype(np.float32), rng.normal(size=(300, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = json.loads(cli("mse", "--input", tmp_path / "x.npy", "--target", tmp_path / "y.npy", stream, "-f",
                         "json").stdout)
    assert out["dtype"] == "float64"
    np.testing.assert_allclose(out["value"], F.mse_loss(T(x), T(y)).item(), rtol=1e-12)
    np.save(tmp_path / "t.npy", (np.arange(300) % 3).astype(np.float64))
    out = json.loads(cli("ce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "t.npy", stream, "-f",
                         "json").stdout)
    assert out["dtype"] == "float32"
    assert_close(out["value"], F.cross_entropy(T(x), T(np.arange(300) % 3)), np.float32)


def test_calibration_keeps_float32_scores_in_float32_beside_float64_labels(rng):
    """Calibration's labels are no operand of its scores: float32 probabilities beside float64 0/1 labels bin in
    float32, as torchmetrics' BinaryCalibrationError computes them."""
    tm = pytest.importorskip("torchmetrics.functional.classification")
    p, y = rng.random(200).astype(np.float32), (rng.random(200) > 0.5) * 1.0
    res = lossctl.api.calibrate(probs=p, target=y)
    assert res.dtype == "float32"
    assert_close(res.value, tm.binary_calibration_error(T(p), T(y).long(), n_bins=15), np.float32)


@pytest.mark.parametrize("loss, fn", [("hinge-embedding", F.hinge_embedding_loss), ("soft-margin", F.soft_margin_loss)])
def test_float64_plus_minus_one_labels_keep_a_float32_input_in_float32(rng, loss, fn):
    """hinge-embedding's and soft-margin's +-1 targets choose a branch and are no operand: torch computes in the
    float32 input's dtype beside a float64 target, where 7ecc3b9 widened them to float64 as an mse target."""
    x, y = rng.normal(size=(N, C)).astype(np.float32), np.where(rng.random((N, C)) > 0.5, 1.0, -1.0)
    want = fn(T(x), T(y), reduction="none")
    assert want.dtype == torch.float32
    res = lossctl.compute(loss, input=x, target=y, reduction="none")
    assert res.dtype == "float32"
    torch.testing.assert_close(torch.from_numpy(np.asarray(res.values)), want)


@pytest.mark.parametrize("loss", ["cosine-similarity", "cosine-embedding"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cosine_of_float32_x1_beside_a_float64_x2_stays_float32(cli, tmp_path, rng, loss, backend):
    """torch takes each vector's norm in its own dtype, so a float32 x1 bounds the cosine's precision beside a
    float64 x2 (1e-8 to 1e-7 off the float64 cosine): 7ecc3b9 widened them to float64 and said float64, so
    --expect of torch's own number failed, where lossctl computed in float32 before."""
    x1, x2 = rng.normal(size=(50, 8)).astype(np.float32), rng.normal(size=(50, 8))
    y = np.where(rng.random(50) > 0.5, 1.0, -1.0)
    want = F.cosine_similarity(T(x1), T(x2)).mean() if loss == "cosine-similarity" else \
        F.cosine_embedding_loss(T(x1), T(x2), T(y))
    for name, arr in (("x1", x1), ("x2", x2), ("y", y)):
        np.save(tmp_path / f"{name}.npy", arr)
    args = ["--reduction", "mean"] if loss == "cosine-similarity" else ["--target", tmp_path / "y.npy"]
    run = cli(loss, "--x1", tmp_path / "x1.npy", "--x2", tmp_path / "x2.npy", *args, "--backend", backend,
              "--expect", repr(want.item()), "-f", "json")
    out = json.loads(run.stdout)
    assert out["dtype"] == "float32"
    assert_close(out["value"], want, np.float32)


def test_margin_ranking_float32_scores_stay_float32_beside_a_float64_target(cli, tmp_path, rng):
    """margin-ranking's +-1 target only signs x1 - x2, which torch subtracts in float32: 7ecc3b9 widened float32
    scores beside a float64 target (NumPy's default) to float64, 4e-9 off torch's number, and said float64, so
    --expect of torch's own number failed; lossctl gave torch's number before. A float64 x2 still widens, as
    torch's x1 - x2 then promotes."""
    x1, x2 = rng.normal(size=300).astype(np.float32), rng.normal(size=300).astype(np.float32)
    y = np.where(rng.random(300) > 0.5, 1.0, -1.0)
    want = F.margin_ranking_loss(T(x1), T(x2), T(y))
    for name, arr in (("x1", x1), ("x2", x2), ("y", y), ("x2_64", x2.astype(np.float64))):
        np.save(tmp_path / f"{name}.npy", arr)
    run = cli("margin-ranking", "--x1", tmp_path / "x1.npy", "--x2", tmp_path / "x2.npy", "--target",
              tmp_path / "y.npy", "--expect", repr(want.item()), "-f", "json")
    out = json.loads(run.stdout)
    assert out["dtype"] == "float32"
    assert_close(out["value"], want, np.float32)
    wide = lossctl.compute("margin-ranking", x1=x1, x2=x2.astype(np.float64), target=y)
    assert wide.dtype == "float64"
    assert_close(wide.value, F.margin_ranking_loss(T(x1), T(x2.astype(np.float64)), T(y)))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_huber_keeps_float32_predictions_in_float32_beside_a_float64_target(cli, tmp_path, rng, backend):
    """HuberLoss computes in its input's dtype (the float64 target cast to float32), unlike MSELoss: 7ecc3b9 widened
    float32 predictions beside a float64 target to float64, 6e-8 off torch's float32 number and said float64, so
    --expect held torch's own number to float64's tolerance and refused it."""
    x, y = rng.normal(size=(300, 3)).astype(np.float32), rng.normal(size=(300, 3)) * 2
    want = F.huber_loss(T(x), T(y))
    assert want.dtype == torch.float32
    res = lossctl.compute("huber", input=x, target=y, backend=backend)
    assert res.dtype == "float32"
    assert_close(res.value, want, np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    for stream in ((), ("--stream",)):
        run = cli("huber", "--input", tmp_path / "x.npy", "--target", tmp_path / "y.npy", *stream, "--backend",
                  backend, "--expect", repr(want.item()), "-f", "json")
        assert run.exit_code == 0, run.stderr
        assert json.loads(run.stdout)["dtype"] == "float32"
    # a float64 input beside a float32 target: torch computes in float64, and so does lossctl
    assert F.huber_loss(T(x.astype(np.float64)), T(y.astype(np.float32))).dtype == torch.float64
    assert lossctl.compute("huber", input=x.astype(np.float64), target=y.astype(np.float32)).dtype == "float64"


def test_dtype_help_says_what_auto_does_with_float16_and_mixed_floats(cli):
    """--dtype's help said only that binary files keep their float dtype, which float16 and float32 beside a
    float64 array of its shape do not."""
    shown = " ".join(cli("ce", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "auto: binary files keep their float dtype (float16 computes in float32; float32 beside a float64 " \
           "array of its shape in float64, as torch promotes, but float32 logits stay float32, as torch takes " \
           "their log-softmax or log-sigmoid in float32), text computes in float64." in shown


def test_float64_class_indices_and_weights_keep_float32_logits_in_float32(rng):
    """A float64 array of whole-number class indices (another shape) or of class weights (optional) does not
    widen float32 logits: torch.long() of the indices and weight.float() give torch's float32 number."""
    x, y, w = rng.normal(size=(N, C)).astype(np.float32), rng.integers(0, C, size=N), rng.random(C) + 0.5
    res = lossctl.compute("ce", logits=x, target=y.astype(np.float64), weight=w)
    assert res.dtype == "float32"
    assert_close(res.value, F.cross_entropy(T(x), T(y), weight=T(w).float()), np.float32)


def test_torch_tensors_are_accepted(rng):
    x = torch.from_numpy(rng.normal(size=(N, C)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, C, size=N))
    res = lossctl.compute("ce", logits=x, target=y)
    assert res.dtype == "float32"
    assert_close(res.value, F.cross_entropy(x, y), np.float32)


# --- random shapes and values --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 5), seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1.0, 30.0]),
       eps=st.sampled_from([0.0, 0.3, 1.0]), reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans())
def test_ce_random_shapes(n, c, seed, scale, eps, reduction, weighted):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c)) * scale
    y = rng.integers(0, c, size=n)
    y[rng.random(n) < 0.3] = -100
    w = rng.random(c) + 0.1 if weighted else None
    wt = None if w is None else T(w)
    if reduction == "mean" and (y == -100).all():
        with pytest.raises(LossctlError, match="--target"):
            lossctl.compute("ce", logits=x, target=y, weight=w, label_smoothing=eps, reduction=reduction)
    else:
        res = lossctl.compute("ce", logits=x, target=y, weight=w, label_smoothing=eps, reduction=reduction)
        ref = F.cross_entropy(T(x), T(y), weight=wt, label_smoothing=eps, reduction=reduction)
        assert_close(result_value(res), ref)
    p = rng.dirichlet(np.ones(c), size=n)
    res = lossctl.compute("ce", logits=x, target=p, weight=w, label_smoothing=eps, reduction=reduction)
    assert_close(result_value(res), F.cross_entropy(T(x), T(p), weight=wt, label_smoothing=eps, reduction=reduction))


def test_non_finite_result_is_torchs_and_warned():
    import lossctl
    from lossctl.errors import StrictWarningError

    x, q = np.array([[-np.inf, 1.0]]), np.array([[0.5, 0.5]])
    want = float(torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(q)))
    r = lossctl.compute("ce", logits=x, target=q)
    assert r.value == want == float("inf")
    assert any("-inf" in w for w in r.warnings)
    with pytest.raises(StrictWarningError):
        lossctl.compute("ce", logits=x, target=q, strict=True)
