"""lossctl.sanity against independent references: torch's losses, float64 formulas written out, pandas group-bys,
cleanlab's label-quality ranking and numpy's percentiles."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REALISTIC

from lossctl.errors import ShapeError, UsageError, ValueRangeError
from lossctl.sanity import (
    ByClassPartial,
    WorstK,
    at_or_above_uniform,
    baselines,
    best_constant,
    by_class_rows,
    classes_last_hint,
    histogram_lines,
    lint_log_probs_are_probs,
    lint_logits_are_probs,
    lint_negative_kl,
    lint_sigmoid_applied,
    loss_summary,
    move_class_axis,
    ratios,
    signature,
)

ROOT = Path(__file__).resolve().parents[1]
TOL = {"rtol": 1e-10, "atol": 1e-12}


def realistic(name: str) -> dict[str, np.ndarray]:
    path = REALISTIC / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with np.load(path) as data:
        return dict(data)


def close(actual, expected, **tol):
    np.testing.assert_allclose(float(actual), float(expected), **(tol or TOL))


def t64(arr) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))


def constant_logits(p: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """log p broadcast to logits of `shape`, with the classes on axis 1 (axis 0 for 1-D)."""
    view = [1] * len(shape)
    view[1 if len(shape) > 1 else 0] = len(p)
    with np.errstate(divide="ignore"):
        return t64(np.log(p)).reshape(view).expand(*shape)


def toward_random_points(p: np.ndarray, rng: np.random.Generator, n: int = 30, step: float = 1e-3):
    """Constant distributions next to p, in random directions inside the simplex."""
    for _ in range(n):
        yield (1 - step) * p + step * rng.dirichlet(np.ones(len(p)))


# ---------------------------------------------------------------- baselines: CE / NLL, index targets

CE_CASES = {
    # name: (file, logits key, target key, ignore_index)
    "digits": ("digits_logreg", "logits", "target", -100),
    "gpt2": ("gpt2_init", "logits", "target", -100),
    "segmentation": ("segmentation_conv", "logits", "target", 255),
}


@pytest.mark.parametrize("case", sorted(CE_CASES))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_ce_uniform_and_prior_equal_torch(case, weighted, eps):
    name, logits_key, target_key, ii = CE_CASES[case]
    data = realistic(name)
    shape, target = data[logits_key].shape, data[target_key]
    n_classes = shape[1]
    rng = np.random.default_rng(7)
    weight = rng.uniform(0.2, 3.0, n_classes) if weighted else None
    opts = dict(weight=None if weight is None else t64(weight), ignore_index=ii, label_smoothing=eps)
    t = torch.from_numpy(target.astype(np.int64))
    b = baselines("ce", target=target, n_classes=n_classes, weight=weight, ignore_index=ii, label_smoothing=eps)
    close(b["uniform"], F.cross_entropy(torch.zeros(shape, dtype=torch.float64), t, **opts))
    p = best_constant("ce", target=target, n_classes=n_classes, weight=weight, ignore_index=ii, label_smoothing=eps)
    prior = float(F.cross_entropy(constant_logits(p, shape), t, **opts))
    close(b["prior"], prior)
    for q in toward_random_points(p, rng):
        assert float(F.cross_entropy(constant_logits(q, shape), t, **opts)) >= prior - 1e-12
    assert ("floor" in b) == (eps > 0)


def test_plain_ce_baselines_are_ln_c_and_the_entropy_of_the_class_frequencies():
    from scipy.stats import entropy

    target = realistic("digits_logreg")["target"]
    b = baselines("ce", target=target, n_classes=10)
    close(b["uniform"], math.log(10))
    close(b["prior"], entropy(np.bincount(target, minlength=10) / target.size))
    bits = baselines("ce", target=target, n_classes=10, scale=math.log(2))
    close(bits["prior"], entropy(np.bincount(target, minlength=10), base=2))


@pytest.mark.parametrize("weighted", [False, True])
def test_ce_floor_is_reached_by_the_smoothed_target_and_is_a_minimum(weighted):
    data = realistic("gpt2_init")
    target, n_classes, eps, ii = data["target"], 100, 0.1, -100
    rng = np.random.default_rng(3)
    weight = rng.uniform(0.2, 3.0, n_classes) if weighted else None
    opts = dict(weight=None if weight is None else t64(weight), ignore_index=ii, label_smoothing=eps)
    t = torch.from_numpy(target)
    b = baselines("ce", target=target, n_classes=n_classes, weight=weight, ignore_index=ii, label_smoothing=eps)
    safe = np.where(target == ii, 0, target)
    smoothed = (1 - eps) * np.eye(n_classes)[safe] + eps / n_classes  # q = (1 - eps) onehot + eps / C
    w = np.ones(n_classes) if weight is None else weight
    tilted = smoothed * w / (smoothed * w).sum(axis=1, keepdims=True)  # the weighted optimum, derived in the module
    floor = float(F.cross_entropy(t64(np.log(tilted)), t, **opts))
    close(b["floor"], floor)
    if not weighted:  # without weights the per-sample optimum is the smoothed target itself
        close(b["floor"], F.cross_entropy(t64(np.log(smoothed)), t, **opts))
    for _ in range(20):
        moved = tilted * np.exp(rng.normal(0, 0.05, tilted.shape))
        moved /= moved.sum(axis=1, keepdims=True)
        assert float(F.cross_entropy(t64(np.log(moved)), t, **opts)) >= floor - 1e-12
    assert b["floor"] < b["prior"] < b["uniform"]


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_ce_probability_targets_equal_torch(eps):
    probs = realistic("digits_logreg")["probs"]
    rng = np.random.default_rng(5)
    weight = rng.uniform(0.5, 2.0, 10)
    opts = dict(weight=t64(weight), label_smoothing=eps)
    kw = dict(target=probs, n_classes=10, weight=weight, label_smoothing=eps, target_kind="prob")
    b = baselines("ce", **kw)
    close(b["uniform"], F.cross_entropy(torch.zeros(probs.shape, dtype=torch.float64), t64(probs), **opts))
    p = best_constant("ce", **kw)
    close(b["prior"], F.cross_entropy(constant_logits(p, probs.shape), t64(probs), **opts))
    q = ((1 - eps) * probs + eps / 10) * weight
    close(b["floor"], F.cross_entropy(t64(np.log(q / q.sum(axis=1, keepdims=True))), t64(probs), **opts))


# ---------------------------------------------------------------- baselines: BCE and focal

def bce_cases():
    rng = np.random.default_rng(11)
    multi = (rng.random((200, 3)) < [0.1, 0.5, 0.9]).astype(np.float64)
    soft = rng.uniform(0, 1, (60, 4))
    return {
        "breast_cancer": (realistic("breast_cancer_logreg")["target"].astype(np.float64), None, None),
        "multilabel": (multi, None, None),
        "pos_weight": (multi, np.array([3.0, 1.0, 0.25]), None),
        "weighted": (multi, np.array([3.0, 1.0, 0.25]), rng.uniform(0.1, 2.0, multi.shape)),
        "soft": (soft, np.array([2.0, 1.0, 0.5, 1.0]), rng.uniform(0.1, 2.0, soft.shape)),
    }


@pytest.mark.parametrize("case", ["breast_cancer", "multilabel", "pos_weight", "weighted", "soft"])
def test_bce_baselines_equal_torch(case):
    y, pos_weight, weight = bce_cases()[case]
    opts = dict(pos_weight=None if pos_weight is None else t64(pos_weight),
                weight=None if weight is None else t64(weight))
    kw = dict(target=y, pos_weight=pos_weight, bce_weight=weight)
    b = baselines("bce", **kw)
    close(b["uniform"], F.binary_cross_entropy_with_logits(torch.zeros(y.shape, dtype=torch.float64), t64(y), **opts))
    p = best_constant("bce", **kw)
    logit = torch.logit(t64(p)).expand(*y.shape)
    prior = float(F.binary_cross_entropy_with_logits(logit, t64(y), **opts))
    close(b["prior"], prior)
    if y.ndim == 1:
        close(p[0], y.mean())  # one column: the positive rate
    for shift in (-1e-3, 1e-3):
        assert float(F.binary_cross_entropy_with_logits(logit + shift, t64(y), **opts)) >= prior - 1e-12
    if case == "soft":  # per element, the optimum is pw y / (pw y + 1 - y): the weight cancels
        best = pos_weight * y / (pos_weight * y + 1 - y)
        close(b["floor"], F.binary_cross_entropy_with_logits(torch.logit(t64(best)), t64(y), **opts))
    else:
        assert "floor" not in b


@pytest.mark.parametrize("given", ["logits", "probs"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_bce_of_one_element_with_a_weight_equals_torch(given, backend):
    """A 0-d target with a weight: its baselines' sums once crashed (1 - y of a 0-d array is no array)."""
    import lossctl

    x, y, w = np.array(0.8), np.array(False), np.array(0.5)
    result = lossctl.compute("bce", **{given: x}, target=y, weight=w, backend=backend)
    fn = F.binary_cross_entropy_with_logits if given == "logits" else F.binary_cross_entropy
    close(result.value, fn(t64(x), t64(y.astype(np.float64)), weight=t64(w)))
    assert result.baselines["uniform"]["value"] > 0


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_of_one_class_raises_no_numpy_warning(gamma):
    """One class: the uniform prediction is p = 1, whose log(1 - p) is -inf; its RuntimeWarning once escaped the
    API (an exception under -W error)."""
    import warnings

    import lossctl

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = lossctl.compute("focal", logits=np.array([[1.0], [2.0]]), target=np.array([0, 0]), gamma=gamma)
    assert result.value == 0.0 and result.baselines["uniform"]["value"] == 0.0  # (1 - 1)^gamma log 1 = 0


@pytest.mark.parametrize("kw", [{"alpha": 0.0}, {"alpha": 0.0, "gamma": 0.0}, {"weight": np.zeros(2)}])
def test_focal_that_weighs_every_target_0_raises_no_numpy_warning(kw):
    """alpha 0 (or zero class weights): every prediction costs 0, and the best constant one was 0 / 0 with a
    RuntimeWarning."""
    import warnings

    import lossctl

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = lossctl.compute("focal", logits=np.array([[1.0, 2.0], [0.0, 1.0]]), target=np.array([0, 1]), **kw)
    assert result.value == 0.0
    assert result.baselines["uniform"]["value"] == 0.0 and result.baselines["prior"]["value"] == 0.0


def focal_index_torch(logp: torch.Tensor, t: torch.Tensor, weight, alpha: float, gamma: float, ii: int) -> float:
    """The multi-class focal loss written out: mean over kept targets of -alpha w_y (1 - p_y)^gamma log p_y."""
    keep = t != ii
    tk = torch.where(keep, t, 0)
    picked = logp.gather(1, tk[:, None])[:, 0]
    w = torch.ones(logp.shape[1], dtype=torch.float64) if weight is None else t64(weight)
    values = -(alpha if alpha >= 0 else 1.0) * w[tk] * (1 - picked.exp()) ** gamma * picked
    return float(values[keep].sum() / keep.sum())


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [0.25, -1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_focal_index_baselines_equal_the_formula_and_prior_is_a_minimum(gamma, alpha, weighted):
    data = realistic("gpt2_init")
    target, n_classes = data["target"][:60], 100
    rng = np.random.default_rng(13)
    weight = rng.uniform(0.2, 3.0, n_classes) if weighted else None
    kw = dict(target=target, n_classes=n_classes, weight=weight, alpha=alpha, gamma=gamma)
    b = baselines("focal_index", **kw)
    t = torch.from_numpy(target)
    uniform_logp = torch.full((len(target), n_classes), -math.log(n_classes), dtype=torch.float64)
    close(b["uniform"], focal_index_torch(uniform_logp, t, weight, alpha, gamma, -100))
    p = best_constant("focal_index", **kw)
    prior = focal_index_torch(constant_logits(p, (len(target), n_classes)), t, weight, alpha, gamma, -100)
    close(b["prior"], prior, rtol=1e-9, atol=1e-12)
    for q in toward_random_points(p, rng):
        assert focal_index_torch(constant_logits(q, (len(target), n_classes)), t, weight, alpha, gamma,
                                 -100) >= prior - 1e-10


def focal_sigmoid_torch(x: torch.Tensor, y: torch.Tensor, alpha: float, gamma: float) -> float:
    """torchvision.ops.sigmoid_focal_loss, written out, reduction mean."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return float(loss.mean())


@pytest.mark.parametrize("case", ["breast_cancer", "multilabel", "soft"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 0.0), (0.5, 1.0)])
def test_focal_sigmoid_baselines_equal_the_formula(case, alpha, gamma):
    y = bce_cases()[case][0]
    b = baselines("focal_sigmoid", target=y, alpha=alpha, gamma=gamma)
    close(b["uniform"], focal_sigmoid_torch(torch.zeros(y.shape, dtype=torch.float64), t64(y), alpha, gamma))
    logit = torch.logit(t64(best_constant("focal_sigmoid", target=y, alpha=alpha, gamma=gamma))).expand(*y.shape)
    prior = focal_sigmoid_torch(logit, t64(y), alpha, gamma)
    close(b["prior"], prior, rtol=1e-9, atol=1e-12)
    for shift in (-1e-3, 1e-3):
        assert focal_sigmoid_torch(logit + shift, t64(y), alpha, gamma) >= prior - 1e-12
    if alpha < 0 and gamma == 0:  # plain BCE
        close(b["prior"], baselines("bce", target=y)["prior"], rtol=1e-9)


def test_ratios_and_the_chance_note_on_an_untrained_and_a_trained_model():
    gpt2, digits = realistic("gpt2_init"), realistic("digits_logreg")
    loss = float(F.cross_entropy(torch.from_numpy(gpt2["logits"]).double(), torch.from_numpy(gpt2["target"])))
    b = baselines("ce", target=gpt2["target"], n_classes=100)
    assert ratios(loss, b) == {"uniform": loss / b["uniform"], "prior": loss / b["prior"]}
    note = at_or_above_uniform(loss, b)
    assert note and note.startswith("the loss is at or above chance: a uniform prediction scores 4.60517")
    loss = float(F.cross_entropy(torch.from_numpy(digits["logits"]).double(), torch.from_numpy(digits["target"])))
    assert at_or_above_uniform(loss, baselines("ce", target=digits["target"], n_classes=10)) is None
    assert ratios(1.0, {"prior": 0.0}) == {"prior": math.inf}


def test_baselines_refuse_what_they_cannot_answer():
    with pytest.raises(ValueRangeError) as err:
        baselines("ce", target=np.full(4, -100), n_classes=3)
    assert err.value.option == "--target"
    with pytest.raises(ValueRangeError):
        baselines("ce", target=np.array([0, 3]), n_classes=3)
    with pytest.raises(ShapeError) as err:
        baselines("ce", target=np.array([0, 1]), n_classes=3, weight=np.ones(2))
    assert err.value.option == "--weight"
    with pytest.raises(UsageError) as err:
        baselines("ce", target=np.array([0, 1]), n_classes=3, label_smoothing=1.5)
    assert err.value.option == "--label-smoothing"
    with pytest.raises(UsageError):
        baselines("mse", target=np.array([0.0]))
    with pytest.raises(ValueRangeError) as err:
        baselines("bce", target=np.array([0.0, 2.0]))
    assert err.value.option == "--target"
    with pytest.raises(ShapeError) as err:
        baselines("bce", target=np.zeros((4, 3)), pos_weight=np.ones(2))
    assert err.value.option == "--pos-weight"


# ---------------------------------------------------------------- lints

def test_lints_fire_on_the_issue_examples():
    probs_as_logits = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    (msg,) = lint_logits_are_probs(probs_as_logits)
    assert msg.startswith("--logits look like probabilities") and "every row sums to 1" in msg and "--probs" in msg
    digits = realistic("digits_logreg")
    assert "within 0.001" in lint_logits_are_probs(digits["probs"].astype(np.float32))[0]
    # kl: probabilities passed as log-probs give a negative KL; torch's batchmean is -1.388
    log_probs, target = torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.6, 0.3, 0.1]])
    kl = float(F.kl_div(log_probs, target, reduction="batchmean"))
    assert kl == pytest.approx(-1.388, abs=1e-3)
    assert lint_negative_kl(kl)[0].startswith("KL is negative (-1.38")
    assert lint_log_probs_are_probs(log_probs.numpy())[0].startswith("--log-probs look like probabilities")
    assert "raw logits" in lint_log_probs_are_probs(digits["logits"])[0]
    cancer = realistic("breast_cancer_logreg")
    (msg,) = lint_sigmoid_applied(cancer["probs"])
    assert msg.startswith("--logits look like sigmoid outputs (every value in [0, 1]")
    assert lint_sigmoid_applied(cancer["probs"][:15]) == []  # below SIGMOID_MIN_COUNT: too few to tell
    assert lint_sigmoid_applied(np.linspace(0.3, 0.75, 50)) == []  # below SIGMOID_MIN_SPREAD: logits near a bias


@pytest.mark.parametrize("given", ["logits", "probs", "log_probs"])
def test_ctc_warns_of_inputs_that_are_not_log_probabilities(cli, tmp_path, given):
    """torch's CTC takes raw logits or probabilities without a word and returns a negative 'loss'."""
    scores = torch.from_numpy(np.random.default_rng(5).normal(size=(6, 2, 4)))
    lp = {"logits": scores, "probs": scores.softmax(-1), "log_probs": scores.log_softmax(-1)}[given]
    np.save(tmp_path / "lp.npy", lp.numpy())
    target, in_len, tg_len = torch.tensor([[1, 2, 3], [2, 2, 0]]), torch.tensor([6, 5]), torch.tensor([3, 2])
    ran = cli("ctc", "--log-probs", tmp_path / "lp.npy", "--target", "[[1, 2, 3], [2, 2, 0]]", "--input-lengths",
              "[6, 5]", "--target-lengths", "[3, 2]", "-f", "plain")
    assert float(ran.stdout) == pytest.approx(F.ctc_loss(lp, target, in_len, tg_len).item(), rel=1e-12)
    expected = {"logits": "lossctl: warning: --log-probs has values above 0, but log-probabilities are <= 0: these "
                          "look like raw logits; pass log_softmax(logits) over the classes\n",
                "probs": "lossctl: warning: --log-probs look like probabilities (every value in [0, 1] and every row "
                         "sums to 1 within 1e-06), but log-probabilities are <= 0: pass log(probs)\n",
                "log_probs": ""}[given]
    assert ran.stderr == expected


@pytest.mark.parametrize(("log_probs", "target"), [("[[-Infinity, -Infinity], [-Infinity, -Infinity]]", [1]),
                                                    ("[[-0.1, -2.4], [-0.5, -0.9]]", [1, 1])])
def test_ctc_infinite_loss_names_both_causes(cli, log_probs, target):
    """No alignment of non-zero probability: every path holds a log-probability of -inf (2 steps are enough for
    one label), or the input is too short (1, 1 needs a blank between: 3 steps); the warning blamed the length."""
    ran = cli("ctc", "--log-probs", log_probs, "--target", json.dumps(target), "--input-lengths", "2",
              "--target-lengths", str(len(target)), "-f", "plain")
    lp = torch.tensor(json.loads(log_probs.replace("-Infinity", "-1e999")), dtype=torch.float64)
    want = F.ctc_loss(lp, torch.tensor(target), torch.tensor(2), torch.tensor(len(target))).item()
    assert math.isinf(want) and float(ran.stdout) == want
    assert ran.stderr == ("lossctl: warning: some sequences have no alignment of non-zero probability (an input too "
                          "short for its target, or log-probabilities of -inf on every path): their loss is inf; "
                          "--zero-infinity sets it to 0\n")


def example_logits() -> dict[str, np.ndarray]:
    ex = ROOT / "examples"
    arrays = {p.name: np.load(p) for p in ex.glob("*logits*.npy")}
    arrays |= {p.name: np.loadtxt(p, delimiter=",", skiprows=1) for p in ex.glob("*logits*.csv")}
    arrays |= {p.name: np.loadtxt(p) for p in ex.glob("*logits*.tsv")}
    arrays |= {p.name: np.asarray(json.loads(p.read_text())) for p in ex.glob("*logits*.json")}
    with np.load(ex / "bundle.npz") as bundle:
        arrays["bundle.npz:logits"] = bundle["logits"]
    assert len(arrays) >= 5
    return arrays


def realistic_arrays() -> dict[str, np.ndarray]:
    digits, cancer = realistic("digits_logreg"), realistic("breast_cancer_logreg")
    gpt2, seg = realistic("gpt2_init"), realistic("segmentation_conv")
    return {"digits logits": digits["logits"], "breast_cancer logits": cancer["logits"],
            "gpt2 logits": gpt2["logits"], "gpt2 logits_nlc": move_class_axis(gpt2["logits_nlc"], -1),
            "segmentation logits": seg["logits"]}


def test_lints_stay_silent_on_real_model_outputs_and_the_shipped_examples():
    arrays = realistic_arrays() | example_logits()
    for name, arr in arrays.items():
        assert lint_logits_are_probs(arr) == [], name
        assert lint_sigmoid_applied(arr) == [], name
    assert lint_log_probs_are_probs(realistic("digits_logreg")["log_probs"]) == []
    for name in ("digits_logreg", "gpt2_init"):
        logits = torch.from_numpy(realistic(name)["logits"]).double()
        assert lint_log_probs_are_probs(torch.log_softmax(logits, 1).numpy()) == [], name
    p = torch.softmax(torch.from_numpy(realistic("digits_logreg")["logits"]).double(), 1)
    q = torch.softmax(torch.from_numpy(realistic("digits_logreg")["logits"][::-1].copy()).double(), 1)
    for same in (False, True):
        kl = float(F.kl_div(torch.log(p), p if same else q, reduction="batchmean"))
        assert lint_negative_kl(kl) == []


def test_classes_last_hint_and_moving_the_class_axis():
    gpt2 = realistic("gpt2_init")
    logits, labels = gpt2["logits_nlc"], gpt2["labels_nl"]
    with pytest.raises((RuntimeError, ValueError)):  # torch refuses the Hugging Face layout
        F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))
    hint = classes_last_hint(logits.shape, labels.shape)
    assert "--class-axis -1" in hint and "refuses" in hint
    moved = move_class_axis(logits, -1)
    assert moved.shape == (4, 100, 32) and np.shares_memory(moved, logits)
    # moved, torch takes it, and it is the flattened (N*L, C) loss Hugging Face computes
    expected = F.cross_entropy(torch.from_numpy(logits).reshape(-1, 100), torch.from_numpy(labels).reshape(-1))
    got = F.cross_entropy(torch.from_numpy(np.ascontiguousarray(moved)), torch.from_numpy(labels))
    close(got, expected, rtol=1e-6)
    assert "accepts" in classes_last_hint((4, 10, 10), (4, 10))
    seg = realistic("segmentation_conv")
    assert classes_last_hint(seg["logits"].shape, seg["target"].shape) is None
    assert classes_last_hint((540, 10), (540,)) is None
    with pytest.raises(UsageError) as err:
        move_class_axis(logits, 3)
    assert err.value.option == "--class-axis"


# ---------------------------------------------------------------- by class and worst K

def digits_per_sample():
    data = realistic("digits_logreg")
    logits, target = torch.from_numpy(data["logits"]).double(), torch.from_numpy(data["target"])
    losses = F.cross_entropy(logits, target, reduction="none").numpy()
    p = torch.softmax(logits, 1).numpy()
    return losses, data["target"], p.argmax(1), p[np.arange(len(p)), data["target"]], p


def test_by_class_rows_equal_a_pandas_groupby_and_chunks_add_up():
    import pandas as pd

    losses, target, predicted, p_target, _ = digits_per_sample()
    frame = pd.DataFrame({"y": target, "loss": losses, "ok": predicted == target, "p": p_target})
    grouped = frame.groupby("y").agg(count=("loss", "size"), loss=("loss", "mean"), total=("loss", "sum"),
                                     accuracy=("ok", "mean"), p_target=("p", "mean"))
    parts = [ByClassPartial.of_index(losses[i:i + 97], target[i:i + 97], predicted[i:i + 97], p_target[i:i + 97],
                                     n_classes=10) for i in range(0, len(target), 97)]
    merged = sum(parts[1:], parts[0])
    merged = ByClassPartial.from_dict(json.loads(json.dumps(merged.to_dict())))
    rows = by_class_rows(merged, float(losses.sum()))
    assert [r["class"] for r in rows] == grouped.index.tolist()
    for row, (_, ref) in zip(rows, grouped.iterrows(), strict=True):
        assert row["count"] == ref["count"]
        for key in ("loss", "accuracy", "p_target"):
            close(row[key], ref[key])
        close(row["share"], ref["total"] / losses.sum())
    close(sum(r["share"] for r in rows), 1.0)


def test_by_class_leaves_out_ignored_targets():
    seg = realistic("segmentation_conv")
    logits, target = torch.from_numpy(seg["logits"]).double(), torch.from_numpy(seg["target"])
    losses = F.cross_entropy(logits, target, ignore_index=255, reduction="none").numpy()
    p = torch.softmax(logits, 1).numpy()
    safe = np.where(seg["target"] == 255, 0, seg["target"])
    p_target = np.take_along_axis(p, safe[:, None], 1)[:, 0]
    partial = ByClassPartial.of_index(losses, seg["target"], p.argmax(1), p_target, n_classes=4, ignore_index=255)
    kept = seg["target"] != 255
    assert partial.count.tolist() == np.bincount(seg["target"][kept], minlength=4).tolist()
    rows = by_class_rows(partial)
    assert [r["class"] for r in rows] == np.unique(seg["target"][kept]).tolist()
    for row in rows:
        mask = kept & (seg["target"] == row["class"])
        close(row["loss"], losses[mask].mean())
        close(row["p_target"], p_target[mask].mean())
        close(row["share"], losses[mask].sum() / losses[kept].sum())


def test_by_label_column_for_bce_equals_a_groupby():
    import pandas as pd

    rng = np.random.default_rng(17)
    x = rng.normal(0, 2, (120, 3))
    y = (rng.random((120, 3)) < [0.2, 0.5, 0.7]).astype(np.float64)
    losses = F.binary_cross_entropy_with_logits(t64(x), t64(y), reduction="none").numpy()
    p = 1 / (1 + np.exp(-x))
    part = ByClassPartial.of_labels(losses[:50], y[:50], p[:50]) + ByClassPartial.of_labels(losses[50:], y[50:],
                                                                                            p[50:])
    frame = pd.DataFrame({"col": np.tile(np.arange(3), 120), "loss": losses.ravel(), "y": y.ravel(),
                          "ok": ((p > 0.5) == (y > 0.5)).ravel(), "pt": np.where(y == 1, p, 1 - p).ravel()})
    ref = frame.groupby("col").agg(count=("loss", "size"), loss=("loss", "mean"), total=("loss", "sum"),
                                   accuracy=("ok", "mean"), pt=("pt", "mean"))
    for row, (_, r) in zip(by_class_rows(part), ref.iterrows(), strict=True):
        assert row["count"] == r["count"]
        close(row["loss"], r["loss"])
        close(row["share"], r["total"] / losses.sum())
        close(row["accuracy"], r["accuracy"])
        close(row["p_target"], r["pt"])


def test_worst_k_order_equals_cleanlab_self_confidence():
    losses, target, predicted, p_target, probs = digits_per_sample()
    worst = WorstK(20)
    worst.push(losses, 0, target.shape, target, predicted, p_target)
    try:
        from cleanlab.rank import get_label_quality_scores
    except ImportError:  # the formula cleanlab documents: the self-confidence score is p of the given label
        scores = p_target
    else:
        scores = get_label_quality_scores(target, probs, method="self_confidence")
    expected = np.argsort(scores, kind="stable")[:20]
    assert [r["index"][0] for r in worst.rows()] == expected.tolist()
    first = worst.rows()[0]
    assert first["target"] == target[expected[0]] and first["predicted"] == predicted[expected[0]]
    close(first["p_target"], p_target[expected[0]])


def test_worst_k_streams_and_merges_like_one_pass_with_ties():
    seg = realistic("segmentation_conv")
    target = seg["target"]
    rng = np.random.default_rng(19)
    losses = np.round(rng.exponential(1.0, target.shape), 1)  # many ties, broken by the lower index
    predicted, p_target = rng.integers(0, 4, target.shape), rng.random(target.shape)
    one = WorstK(25, ignore_index=255)
    one.push(losses, 0, target.shape, target, predicted, p_target)
    shards = []
    for start in range(0, 16, 3):  # chunks of 3 rows, each its own shard
        w = WorstK(25, ignore_index=255)
        rows = slice(start, start + 3)
        w.push(losses[rows], start * 64, target[rows].shape, target[rows], predicted[rows], p_target[rows])
        shards.append(WorstK.from_dict(json.loads(json.dumps(w.to_dict()))))
    merged = shards[0]
    for w in shards[1:]:
        merged = merged + w
    assert merged.rows() == one.rows()
    # the reference: sort the kept targets by loss (descending), then flat index (ascending)
    flat = np.flatnonzero(target.ravel() != 255)
    order = flat[np.lexsort((flat, -losses.ravel()[flat]))][:25]
    assert [r["index"] for r in one.rows()] == [list(np.unravel_index(i, target.shape)) for i in order]
    assert all(r["target"] != 255 for r in one.rows())


# ---------------------------------------------------------------- summaries and signature

def test_loss_summary_equals_numpy_and_leaves_out_nan():
    rng = np.random.default_rng(23)
    values = rng.gamma(2.0, 1.0, 1001)
    with_nan = np.concatenate([values, [np.nan, np.nan]])
    s = loss_summary(with_nan)
    assert s["count"] == 1001 and s["nan"] == 2
    close(s["mean"], np.mean(values))
    close(s["min"], values.min())
    close(s["max"], values.max())
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        close(s[key], np.percentile(values, q))
    assert loss_summary([1.0, 2.0, np.inf])["p90"] == math.inf
    empty = loss_summary([np.nan])
    assert empty["count"] == 0 and math.isnan(empty["mean"])


def test_histogram_lines_count_what_numpy_counts():
    rng = np.random.default_rng(29)
    values = np.concatenate([rng.exponential(1.0, 500), [np.nan, np.inf]])
    lines = histogram_lines(values, bins=8, width=30)
    counts, _ = np.histogram(values[np.isfinite(values)], bins=8)
    assert [int(line.rsplit(" ", 1)[1]) for line in lines[:8]] == counts.tolist()
    assert max(line.count("#") for line in lines) == 30
    assert lines[-1] == "(2 non-finite values not shown)"
    assert histogram_lines([]) == []


def test_signature_writes_every_field_in_a_fixed_order():
    fields = {"torch": "2.13.0", "lossctl": "0.1.0", "base": "e", "backend": "numpy", "dtype": "float32",
              "w": True, "ii": -100, "ls": 0.1, "red": "mean", "loss": "ce", "pw": None, "zeta": "a|b"}
    sig = signature(fields)
    assert sig == ("loss:ce|red:mean|ls:0.1|ii:-100|w:yes|zeta:a/b|dtype:float32|backend:numpy|base:e|"
                   "lossctl:0.1.0|torch:2.13.0")
    assert dict(part.split(":", 1) for part in sig.split("|"))["ls"] == "0.1"
    with pytest.raises(UsageError):
        signature({"Bad Key": 1})


def test_sanity_modules_do_not_import_torch():
    code = "import sys, lossctl.sanity; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_histogram_of_values_too_close_for_bins_is_one_bin():
    values = np.array([1.0, np.nextafter(1.0, 2.0), 1.0])
    with pytest.raises(ValueError):
        np.histogram(values, bins=10)  # numpy's own refusal, which the histogram must not pass on
    (line,) = histogram_lines(values, bins=10)
    assert line.endswith(" 3")


# --- a mean with no denominator: one clear refusal whatever the output format; baselines never raise there ---

NO_DENOMINATOR = {  # torch's value for each, and the line lossctl gives instead
    "all ignored": ({"target": [-100, -100]}, "nan",
                    "--target: all 2 targets equal --ignore-index: the mean has no denominator (torch returns nan "
                    "here); use --reduction sum or check the targets"),
    "zero weights": ({"target": [1, -100], "weight": [1.0, 0.0, 2.0, 0.5]}, "nan",
                     "--weight: the targets' class weights sum to 0: the weighted mean has no denominator (torch "
                     "returns nan here)"),
    "weights cancel": ({"target": [0, 1], "weight": [1.0, -1.0, 0.0, 0.0]}, "inf",
                       "--weight: the targets' class weights sum to 0: the weighted mean has no denominator (torch "
                       "returns ±inf here)"),
}


@pytest.mark.parametrize("case", list(NO_DENOMINATOR))
def test_a_mean_without_denominator_is_one_refusal_in_every_format(cli, case):
    import lossctl

    given, torch_gives, line = NO_DENOMINATOR[case]
    x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 5.0]])
    kw = {"weight": t64(np.array(given["weight"]))} if "weight" in given else {}
    want = F.cross_entropy(t64(x), torch.tensor(given["target"]), **kw).item()
    assert math.isnan(want) if torch_gives == "nan" else math.isinf(want)
    args = ["--logits", json.dumps(x.tolist())] + [a for k, v in given.items() for a in (f"--{k}", json.dumps(v))]
    for fmt in ("table", "json", "plain", "csv"):
        assert cli("ce", *args, "-f", fmt, code=2).stderr == f"lossctl: error: {line}\n"
    with pytest.raises(ValueRangeError) as err:  # the library says the same, not a ZeroDivisionError
        lossctl.compute("ce", logits=x, **{k: np.array(v) for k, v in given.items()})
    assert str(err.value) == line


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_a_sum_over_targets_all_ignored_is_a_zero_that_says_why(cli, reduction):
    """The mean's refusal suggests --reduction sum; there torch's 0 must not pass for a perfect loss."""
    x, t = [[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]], [-100, -100]
    want = F.cross_entropy(t64(np.array(x)), torch.tensor(t), reduction=reduction)
    ran = cli("ce", "--logits", json.dumps(x), "--target", json.dumps(t), "--reduction", reduction, "-f", "plain")
    np.testing.assert_array_equal([float(v) for v in ran.stdout.split()], want.reshape(-1).numpy())
    what = "the sum is 0" if reduction == "sum" else "every value is 0"
    assert ran.stderr == (f"lossctl: warning: --target: all 2 targets equal --ignore-index: {what} because nothing "
                          "is counted, as torch gives it, not because the predictions are right\n")
    assert cli("ce", "--logits", json.dumps(x), "--target", "[-100, 1]", "--reduction", reduction).stderr == ""


def test_one_file_of_many_with_every_target_ignored_adds_nothing(cli, tmp_path):
    """Its own mean is torch's nan; the total is the mean over the other files' targets, with their baselines."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 3))
    t = np.array([0, 1, 2, 1, -100, -100, -100, -100])
    for i in range(2):
        np.save(tmp_path / f"x_{i}.npy", x[4 * i:4 * i + 4])
        np.save(tmp_path / f"t_{i}.npy", t[4 * i:4 * i + 4])
    out = json.loads(cli("ce", "--logits", f"{tmp_path}/x_*.npy", "--target", f"{tmp_path}/t_*.npy", "-f",
                         "json").stdout)
    assert math.isnan(F.cross_entropy(t64(x[4:]), torch.from_numpy(t[4:])).item())
    assert out["files"][1]["value"] == "nan"  # JSON has no NaN: lossctl writes it as a string
    total = out["total"]
    assert total["value"] == pytest.approx(F.cross_entropy(t64(x), torch.from_numpy(t)).item(), rel=1e-12)
    counts = np.bincount(t[t >= 0], minlength=3)
    assert total["baselines"]["uniform"]["value"] == pytest.approx(math.log(3), rel=1e-12)
    assert total["baselines"]["prior"]["value"] == pytest.approx(-(counts / 4 * np.log(counts / 4)).sum(),
                                                                 rel=1e-12)
    ran = cli("ce", "--logits", f"{tmp_path}/x_*.npy", "--target", f"{tmp_path}/t_*.npy", "-f", "plain")
    assert ran.stdout.splitlines()[1] == "nan"
    assert ran.stderr == (f"lossctl: warning: {tmp_path}/x_1.npy: all 4 targets equal --ignore-index, so its mean "
                          "has no denominator: it shows torch's nan, and the total counts nothing of it\n")


def test_ctc_zero_infinity_says_how_many_losses_it_zeroed_and_that_the_mean_counts_them(cli):
    """torch's zero_infinity sets an impossible sequence's loss to 0 and still divides the mean by every sequence."""
    lp = torch.from_numpy(np.random.default_rng(3).normal(size=(4, 3, 5))).log_softmax(-1)
    target, tg_len = torch.tensor([[1, 2, 3], [1, 1, 1], [2, 3, 4]]), torch.tensor([2, 3, 3])
    in_len = torch.tensor([4, 4, 2])  # 1, 1, 1 needs 5 steps and 2, 3, 4 needs 3: two sequences are impossible
    zeroed = int(F.ctc_loss(lp, target, in_len, tg_len, reduction="none").isinf().sum())
    assert zeroed == 2
    args = ["ctc", "--log-probs", json.dumps(lp.tolist()), "--target", json.dumps(target.tolist()), "--input-lengths",
            json.dumps(in_len.tolist()), "--target-lengths", json.dumps(tg_len.tolist()), "--zero-infinity"]
    doc = json.loads(cli(*args, "-f", "json").stdout)
    assert doc["value"] == pytest.approx(F.ctc_loss(lp, target, in_len, tg_len, zero_infinity=True).item(), rel=1e-12)
    note = ("--zero-infinity set the infinite loss of 2 of 3 sequences to 0 (no alignment of non-zero probability)")
    assert note + "; they still count in the mean's denominator, as torch counts them" in doc["notes"]
    assert doc["warnings"] == []
    assert note in json.loads(cli(*args, "--reduction", "sum", "-f", "json").stdout)["notes"]
    per_sample = json.loads(cli(*args, "--reduction", "none", "-f", "json").stdout)
    assert note in per_sample["notes"] and per_sample["values"] == pytest.approx(
        F.ctc_loss(lp, target, in_len, tg_len, reduction="none", zero_infinity=True).tolist(), rel=1e-12)
    # two files (the second its first two sequences): each file's note counts its own sequences
    two = [*args, *(x for flag, part in (("--log-probs", lp[:, :2]), ("--target", target[:2]),
                                         ("--input-lengths", in_len[:2]), ("--target-lengths", tg_len[:2]))
                     for x in (flag, json.dumps(part.tolist())))]
    files = json.loads(cli(*two, "--reduction", "sum", "-f", "json").stdout)["files"]
    assert [[n for n in f["notes"] if n.startswith("--zero-infinity")] for f in files] == [
        [note], ["--zero-infinity set the infinite loss of 1 of 2 sequences to 0 (no alignment of non-zero "
                 "probability)"]]
    feasible = json.loads(cli(*args[:6], "[4, 4, 4]", "--target-lengths", "[2, 1, 3]", "--zero-infinity", "-f",
                              "json").stdout)  # every sequence has an alignment: nothing is zeroed
    assert not any("--zero-infinity" in n for n in feasible["notes"])
    assert cli("grad", *args, "-f", "json").exit_code == 0  # autograd through the loss, as torch zeroes its gradient
