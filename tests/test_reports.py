"""Is this loss sensible? The reports through `lossctl` itself, each against an independent computation: torch on
the same data, a float64 formula, cleanlab's ranking; lints fire on their bad inputs and stay silent on the
shipped examples and on real model outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import REALISTIC, ROOT

import lossctl
from lossctl import stream

pytestmark = pytest.mark.skipif(not REALISTIC.exists(), reason="../shared/data/realistic is not beside the project")


def realistic(name: str) -> dict[str, np.ndarray]:
    with np.load(REALISTIC / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def T(a):
    return torch.from_numpy(np.asarray(a))


# --- baselines -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1}, {"weight": True}, {"weight": True,
                                                                                   "label_smoothing": 0.2}])
def test_ce_baselines_are_torchs_loss_of_zero_logits_and_of_the_best_constant(options):
    d = realistic("digits_logreg")
    x, t = d["logits"].astype(np.float64), d["target"]
    w = np.linspace(0.5, 2.0, 10) if options.get("weight") else None
    eps = options.get("label_smoothing", 0.0)
    r = lossctl.compute("ce", logits=x, target=t, weight=w, label_smoothing=eps)
    kw = {"weight": T(w) if w is not None else None, "label_smoothing": eps}
    uniform = float(F.cross_entropy(torch.zeros(x.shape, dtype=torch.float64), T(t), **kw))
    assert r.baselines["uniform"]["value"] == pytest.approx(uniform, rel=1e-12)
    prior = r.baselines["prior"]["value"]
    counts = np.bincount(t, minlength=10).astype(np.float64)
    if w is None and not eps:
        p = counts / counts.sum()
        assert prior == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)  # the entropy of the class frequencies
    # the prior is torch's loss of some constant prediction, and no nearby constant does better
    rng = np.random.default_rng(0)
    best = None
    for _ in range(20):
        q = rng.dirichlet(np.ones(10))
        const = np.log(q)[None, :].repeat(len(t), 0)
        best = min(best or math.inf, float(F.cross_entropy(T(const), T(t), **kw)))
    assert prior <= best + 1e-12
    assert r.baselines["uniform"]["ratio"] == pytest.approx(r.value / uniform, rel=1e-12)
    if eps:
        assert 0 < r.baselines["floor"]["value"] < prior


def test_gpt2_at_initialisation_sits_at_chance_and_says_so(cli, tmp_path):
    d = realistic("gpt2_init")
    np.save(tmp_path / "x.npy", d["logits"])
    np.save(tmp_path / "t.npy", d["target"])
    data = json.loads(cli("ce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "t.npy", "-f", "json").stdout)
    assert data["baselines"]["uniform"]["value"] == pytest.approx(math.log(100), rel=1e-12)  # Karpathy's check
    assert 0.95 < data["baselines"]["uniform"]["ratio"] < 1.05
    assert data["warnings"] == []


def test_perplexity_at_initialisation_notes_chance_as_cross_entropy_does():
    # ln 100 = 4.605 against a CE of 4.591: within 1% of chance in nats; in perplexity (98.6 against 100) 1.4% below
    d = realistic("gpt2_init")
    ce = float(F.cross_entropy(T(d["logits"]).double(), T(d["target"])))
    assert 0.99 * math.log(100) < ce < math.log(100) and math.exp(ce) < 0.99 * 100
    chance = "the loss is at or above chance: a uniform prediction scores"
    assert any(n.startswith(chance) for n in lossctl.compute("ce", logits=d["logits"], target=d["target"]).notes)
    ppl = lossctl.compute("perplexity", logits=d["logits"], target=d["target"])
    note = next(n for n in ppl.notes if n.startswith(chance))
    assert note.startswith(f"{chance} 100 (the loss is {math.exp(ce):.6g})")
    trained = realistic("digits_logreg")
    ppl = lossctl.compute("perplexity", logits=trained["logits"], target=trained["target"])
    assert not any(n.startswith(chance) for n in ppl.notes)


def test_float32_perplexity_of_a_huge_vocabulary_keeps_its_baselines_and_overflows_as_torch_exp():
    """C = 100000 (ln C = 11.5): the baselines stay finite while a CE past 88.72 makes the float32 perplexity inf,
    as torch.exp of the float32 CE does; the ratios to the baselines are inf, the breakdowns each target's CE."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 100_000)).astype(np.float32)
    t = np.array([1, 2, 3, 1])
    x[np.arange(4), t] = -90.0
    ce = F.cross_entropy(T(x), T(t))
    assert torch.exp(ce).isinf() and ce < 200
    r = lossctl.compute("perplexity", logits=x, target=t, by_class=True)
    assert r.dtype == "float32" and math.isinf(r.value)
    uniform = torch.exp(F.cross_entropy(torch.zeros(4, 100_000), T(t)))
    p = np.array([0.5, 0.25, 0.25])
    assert r.baselines["uniform"]["value"] == pytest.approx(float(uniform), rel=1e-6)
    assert r.baselines["prior"]["value"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert all(b["ratio"] == math.inf for b in r.baselines.values())
    per_target = F.cross_entropy(T(x), T(t), reduction="none").numpy()
    for row in r.by_class:
        assert row["loss"] == pytest.approx(per_target[t == row["class"]].mean(), rel=1e-6)


def test_a_perplexity_baseline_past_float32s_exp_is_inf_as_the_value():
    """No C makes a baseline (at most ln C nats) overflow, but the rule is the value's: exp past 88.72 in float32."""
    from lossctl.losses.extra import perplexity
    from lossctl.reduce import Partial
    from lossctl.reports import finish_reports

    def shown(v):
        return perplexity(v, Partial(total=4 * v, denominator=4.0, count=4), "float32")[0]

    reps = finish_reports(shown(100.0), None, {"uniform": 95.0, "prior": 50.0}, None, shown, 100.0)
    assert reps.baselines["uniform"]["value"] == float(torch.exp(torch.tensor(95.0))) == math.inf
    assert reps.baselines["prior"]["value"] == pytest.approx(float(torch.exp(torch.tensor(50.0))), rel=1e-6)
    assert math.isnan(reps.baselines["uniform"]["ratio"]) and reps.baselines["prior"]["ratio"] == math.inf


def test_perplexity_baselines_are_exp_of_ce_baselines_and_bce_of_zero_logits():
    d = realistic("gpt2_init")
    ce = lossctl.compute("ce", logits=d["logits"], target=d["target"])
    ppl = lossctl.compute("perplexity", logits=d["logits"], target=d["target"])
    for k, b in ce.baselines.items():
        assert ppl.baselines[k]["value"] == pytest.approx(math.exp(b["value"]), rel=1e-9)
    b = realistic("breast_cancer_logreg")
    r = lossctl.compute("bce", logits=b["logits"], target=b["target"], pos_weight=np.array([2.0], np.float32))
    zero = F.binary_cross_entropy_with_logits(torch.zeros(len(b["target"])), T(b["target"]),
                                              pos_weight=torch.tensor([2.0]))
    assert r.baselines["uniform"]["value"] == pytest.approx(float(zero), rel=1e-6)
    rate = b["target"].mean()
    prior_logit = torch.full((len(b["target"]),), float(np.log(2 * rate / (1 - rate))), dtype=torch.float64)
    want = F.binary_cross_entropy_with_logits(prior_logit, T(b["target"]).double(), pos_weight=torch.tensor([2.0]))
    assert r.baselines["prior"]["value"] == pytest.approx(float(want), rel=1e-9)


def test_streamed_baselines_equal_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 4000)
    d = realistic("digits_logreg")
    np.save(tmp_path / "x.npy", d["logits"])
    np.save(tmp_path / "t.npy", d["target"])
    kw = {"logits": str(tmp_path / "x.npy"), "target": str(tmp_path / "t.npy"), "label_smoothing": 0.1}
    whole, parts = lossctl.compute("ce", stream=False, **kw), lossctl.compute("ce", stream=True, **kw)
    assert any(n.startswith("streamed in") for n in parts.notes)
    for k in ("uniform", "prior", "floor"):
        assert parts.baselines[k]["value"] == pytest.approx(whole.baselines[k]["value"], rel=1e-12)


def _bce_references(x, y, weight=None, pos_weight=None) -> dict[str, float]:
    """BCE's baselines as torch's loss of the predictions they name: zero logits; each column's best constant
    logit log(A_j / B_j) (A_j = sum w pw y, B_j = sum w (1 - y)); each element's own best logit log(pw y / (1 - y))."""
    y64, shape = T(y).double(), y.shape
    w = torch.ones(shape, dtype=torch.float64) if weight is None else T(weight).double().expand(shape)
    pw = torch.ones(shape, dtype=torch.float64) if pos_weight is None else T(pos_weight).double().expand(shape)
    columns = shape[-1] if len(shape) > 1 else 1  # a 1-D target is one column
    a, b = (w * pw * y64).reshape(-1, columns).sum(0), (w * (1 - y64)).reshape(-1, columns).sum(0)

    def bce(z):
        return float(F.binary_cross_entropy_with_logits(z.expand(shape), y64, weight=w, pos_weight=pw))
    out = {"uniform": bce(torch.zeros(shape, dtype=torch.float64)), "prior": bce(torch.log(a / b))}
    if ((y > 0) & (y < 1)).any():
        out["floor"] = bce(torch.log(pw * y64 / (1 - y64)))
    return out


def test_bce_baselines_of_a_stream_and_of_many_files_are_torchs(tmp_path, monkeypatch, cli):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 160)  # 40 rows a chunk: 5 chunks of the 171
    b = realistic("breast_cancer_logreg")
    x, y = b["logits"].astype(np.float32), b["target"].astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    want = _bce_references(x, y, pos_weight=np.array([2.0]))
    r = lossctl.compute("bce", logits=str(tmp_path / "x.npy"), target=str(tmp_path / "y.npy"), pos_weight=[2.0],
                        stream=True)
    assert any(n.startswith("streamed in 5 chunks") for n in r.notes)
    assert set(r.baselines) == set(want) == {"uniform", "prior"}
    for k, v in want.items():
        assert r.baselines[k]["value"] == pytest.approx(v, rel=1e-9)
    for i, rows in enumerate((slice(0, 80), slice(80, None))):  # the same data as two files
        np.save(tmp_path / f"x{i}.npy", x[rows])
        np.save(tmp_path / f"y{i}.npy", y[rows])
    total = json.loads(cli("bce", "--logits", str(tmp_path / "x?.npy"), "--target", str(tmp_path / "y?.npy"),
                           "--pos-weight", "[2.0]", "-f", "json").stdout)["total"]
    for k, v in want.items():
        assert total["baselines"][k]["value"] == pytest.approx(v, rel=1e-9)


def test_bce_baselines_of_soft_labels_with_weights_streamed_are_torchs(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 240)  # 20 rows of 3 float32 columns a chunk
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((300, 3)).astype(np.float32), rng.uniform(0.05, 0.95, (300, 3)).astype(np.float32)
    w, pw = np.array([1.0, 0.5, 2.0], np.float32), np.array([3.0, 1.0, 0.25], np.float32)
    for name, arr in (("x", x), ("y", y), ("w", w)):
        np.save(tmp_path / f"{name}.npy", arr)
    r = lossctl.compute("bce", logits=str(tmp_path / "x.npy"), target=str(tmp_path / "y.npy"),
                        weight=str(tmp_path / "w.npy"), pos_weight=pw, stream=True)
    assert any(n.startswith("streamed in 15 chunks") for n in r.notes)
    want = _bce_references(x, y, weight=w, pos_weight=pw)
    assert set(r.baselines) == set(want) == {"uniform", "prior", "floor"}
    for k, v in want.items():
        assert r.baselines[k]["value"] == pytest.approx(v, rel=1e-9)


def test_ce_baselines_of_probability_targets_streamed_are_torchs(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 2000)  # 50 rows of 10 float32 logits a chunk
    d = realistic("digits_logreg")
    x = d["logits"].astype(np.float32)
    q = torch.softmax(T(x[::-1].copy()).double() / 3, 1).numpy().astype(np.float32)  # soft targets
    w, eps = np.linspace(0.5, 2.0, 10).astype(np.float32), 0.1
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "q.npy", q)
    r = lossctl.compute("ce", logits=str(tmp_path / "x.npy"), target=str(tmp_path / "q.npy"), weight=w,
                        label_smoothing=eps, stream=True)
    assert any(n.startswith("streamed in") for n in r.notes)
    q64, w64 = T(q).double(), T(w).double()
    b = w64 * ((1 - eps) * q64 + eps / 10)  # the coefficient of -log p_c in each row of torch's loss

    def ce(logits):
        return float(F.cross_entropy(logits.expand(q64.shape), q64, weight=w64, label_smoothing=eps))
    want = {"uniform": ce(torch.zeros(10, dtype=torch.float64)), "prior": ce(torch.log(b.sum(0) / b.sum())),
            "floor": ce(torch.log(b / b.sum(1, keepdim=True)))}
    for k, v in want.items():
        assert r.baselines[k]["value"] == pytest.approx(v, rel=1e-9)


def test_focal_over_many_files_has_baselines_for_0_1_labels_only(tmp_path, cli):
    b = realistic("breast_cancer_logreg")
    x, y = b["logits"].astype(np.float32), b["target"].astype(np.float32)
    whole = lossctl.compute("focal", logits=x, target=y)
    for i, rows in enumerate((slice(0, 80), slice(80, None))):
        np.save(tmp_path / f"x{i}.npy", x[rows])
        np.save(tmp_path / f"y{i}.npy", y[rows])
        np.save(tmp_path / f"s{i}.npy", np.clip(y[rows], 0.1, 0.9))  # soft labels
    total = json.loads(cli("focal", "--logits", str(tmp_path / "x?.npy"), "--target", str(tmp_path / "y?.npy"),
                           "-f", "json").stdout)["total"]
    assert set(total["baselines"]) == set(whole.baselines) == {"uniform", "prior"}
    for k, v in whole.baselines.items():  # the whole's are held to torchvision's formula in test_sanity.py
        assert total["baselines"][k]["value"] == pytest.approx(v["value"], rel=1e-9)
    soft = json.loads(cli("focal", "--logits", str(tmp_path / "x?.npy"), "--target", str(tmp_path / "s?.npy"),
                          "-f", "json").stdout)["total"]
    assert "baselines" not in soft


def test_files_of_different_widths_add_up_without_a_baseline(tmp_path, cli):
    """Each file's loss stands whatever its number of classes or label columns; only the baselines of the whole
    are undetermined, which the total says (rather than failing, or a traceback as merging class counts did)."""
    rng = np.random.default_rng(8)
    x3, x4 = rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    y3, y4 = (rng.random((6, 3)) > 0.5).astype(np.float32), (rng.random((5, 4)) > 0.5).astype(np.float32)
    t3, t4 = rng.integers(0, 3, 6), rng.integers(0, 4, 5)
    for name, arr in (("xa", x3), ("xb", x4), ("ya", y3), ("yb", y4), ("ta", t3), ("tb", t4)):
        np.save(tmp_path / f"{name}.npy", arr)
    files = {"bce": ("x?.npy", "y?.npy"), "ce": ("x?.npy", "t?.npy")}
    refs = {"bce": (F.binary_cross_entropy_with_logits, (y3, y4)), "ce": (F.cross_entropy, (t3, t4))}
    for loss, (xs, ts) in files.items():
        fn, (ta, tb) = refs[loss]
        parts = [fn(T(x), T(t), reduction="sum").item() for x, t in ((x3, ta), (x4, tb))]
        for reduction, want in (("sum", sum(parts)), ("mean", sum(parts) / (ta.size + tb.size))):
            total = json.loads(cli(loss, "--logits", str(tmp_path / xs), "--target", str(tmp_path / ts),
                                   "--reduction", reduction, "-f", "json").stdout)["total"]
            assert total["value"] == pytest.approx(want, rel=1e-6)
            assert "baselines" not in total
            assert any(n.startswith("baselines: the files' targets") for n in total["notes"]) == (reduction == "mean")


# --- lints -----------------------------------------------------------------------------------------------------

def test_probabilities_passed_as_logits_are_named(cli):
    res = cli("ce", "--logits", "[[0.7,0.2,0.1],[0.1,0.8,0.1]]", "--target", "[0,1]", "-f", "plain")
    want = F.cross_entropy(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], dtype=torch.float64), torch.tensor([0, 1]))
    assert float(res.stdout) == pytest.approx(float(want), rel=1e-12)  # the number never changes
    assert "--logits look like probabilities" in res.stderr and "softmax would be applied twice" in res.stderr
    res = cli("ce", "--logits", "[[0.7,0.2,0.1],[0.1,0.8,0.1]]", "--target", "[0,1]", "--strict", code=2)
    assert "--strict" in res.stderr


def test_softmax_outputs_passed_to_multiclass_focal_are_named(cli, tmp_path):
    d = realistic("segmentation_conv")
    x = torch.from_numpy(d["logits"])
    np.save(tmp_path / "p.npy", torch.softmax(x, 1).numpy())
    np.save(tmp_path / "t.npy", d["target"])
    res = cli("focal", "--logits", tmp_path / "p.npy", "--target", tmp_path / "t.npy", "--ignore-index", "255")
    assert res.stderr.startswith("lossctl: warning: --logits look like probabilities (every value in [0, 1] and "
                                 "every row sums to 1 within 0.001): softmax would be applied twice")
    assert res.stderr.count("\n") == 1
    # 0/1 labels of the logits' shape: the sigmoid form, where rows of two probabilities mean nothing
    res = cli("focal", "--logits", "[[0.3, 0.7], [0.4, 0.6]]", "--target", "[[0, 1], [1, 0]]")
    assert res.stderr == ""


def test_probabilities_passed_as_logits_to_kl_and_entropy_are_named(cli, tmp_path):
    """Their softmax runs along the last axis (entropy's --dim): a student's probabilities as --logits."""
    d = realistic("digits_logreg")
    teacher = torch.softmax(T(d["logits"]).double() / 2, 1)
    np.save(tmp_path / "teacher.npy", teacher.numpy())
    np.save(tmp_path / "p.npy", d["probs"])
    np.save(tmp_path / "x.npy", d["logits"])
    twice = "lossctl: warning: --logits look like probabilities (every value in [0, 1] and every row sums to 1 within"
    for role, path in (("logits", "p.npy"), ("logits", "x.npy"), ("probs", "p.npy")):
        res = cli("kl", f"--{role}", tmp_path / path, "--target", tmp_path / "teacher.npy", "--reduction", "batchmean",
                  "-f", "plain")
        log_q = torch.log_softmax(T(np.load(tmp_path / path)).double(), 1) if role == "logits" else \
            torch.log(T(np.load(tmp_path / path)))
        want = F.kl_div(log_q, teacher, reduction="batchmean")
        assert float(res.stdout) == pytest.approx(float(want), rel=1e-6)  # the number never changes
        assert res.stderr.startswith(twice) == ((role, path) == ("logits", "p.npy")), res.stderr
        res = cli("entropy", f"--{role}", tmp_path / path, "-f", "plain")
        assert res.stderr.startswith(twice) == ((role, path) == ("logits", "p.npy")), res.stderr
    # classes last, as --dim says: a segmentation layer's softmax over its channels (axis 1)
    s = realistic("segmentation_conv")
    np.save(tmp_path / "seg.npy", torch.softmax(T(s["logits"]), 1).numpy())
    assert cli("entropy", "--logits", tmp_path / "seg.npy", "--dim", "1").stderr.startswith(twice)
    assert cli("entropy", "--logits", tmp_path / "seg.npy").stderr == ""  # along the image's last axis: logits


def test_probabilities_passed_to_js_as_logits_are_named(cli, tmp_path):
    d = realistic("digits_logreg")
    p, q = d["probs"][:50], d["probs"][50:100]
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    base = ("js", "--p", tmp_path / "p.npy", "--q", tmp_path / "q.npy", "-f", "plain")

    def js(a, b):  # the formula written out: 0.5 KL(a || m) + 0.5 KL(b || m), m = (a + b) / 2
        m = (a + b) / 2
        return float(np.mean(0.5 * np.sum(a * np.log(a / m), 1) + 0.5 * np.sum(b * np.log(b / m), 1)))

    twice = ("lossctl: warning: --{0} looks like probabilities (every value in [0, 1] and every row sums to 1 within "
             "1e-06): softmax would be applied twice; drop --{0}-kind logits (prob is the default), or pass the raw "
             "logits\n")
    softmax_p = torch.softmax(T(p), 1).numpy()
    res = cli(*base, "--p-kind", "logits")
    assert float(res.stdout) == pytest.approx(js(softmax_p, q), rel=1e-9)  # the number never changes
    assert res.stderr == twice.format("p")
    res = cli(*base, "--p-kind", "logits", "--q-kind", "logits")
    assert res.stderr == twice.format("p") + twice.format("q")
    assert cli(*base, "--q-kind", "logits", "--strict", code=2).stderr.startswith("lossctl: error: --strict: --q looks")
    assert cli(*base).stderr == ""
    np.save(tmp_path / "x.npy", d["logits"][:50])  # real logits as logits: silent
    assert cli("js", "--p", tmp_path / "x.npy", "--q", tmp_path / "q.npy", "--p-kind", "logits").stderr == ""


def test_the_fix_for_probabilities_as_logits_fits_the_command(cli, tmp_path):
    """The advice names the command's own --probs where it has one, else where the same loss takes them."""
    probs, target = "[[0.7,0.2,0.1],[0.1,0.8,0.1]]", "[0,1]"
    head = ("lossctl: warning: --logits look like probabilities (every value in [0, 1] and every row sums to 1 within "
            "1e-06): softmax would be applied twice; ")
    for command in ("ce", "perplexity"):
        assert cli(command, "--logits", probs, "--target", target).stderr == (
            head + "pass the raw logits, or pass the probabilities to `lossctl nll --probs`, whose loss is their "
                   "cross entropy\n")
    # which is so: nll of the probabilities' log is their cross entropy
    want = F.cross_entropy(torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], dtype=torch.float64)),
                           torch.tensor([0, 1]))
    assert float(cli("nll", "--probs", probs, "--target", target, "-f", "plain").stdout) == pytest.approx(
        float(want), rel=1e-12)
    own = head + "pass them as --probs, or pass the raw logits\n"
    assert cli("nll", "--logits", probs, "--target", target).stderr == own
    assert cli("entropy", "--logits", probs).stderr == own
    assert cli("calibration", "--logits", probs, "--target", target).stderr == own
    assert cli("kl", "--logits", probs, "--target", probs, "--reduction", "batchmean").stderr == own
    assert cli("focal", "--logits", probs, "--target", target).stderr == head + "pass the raw logits\n"


def test_the_fix_for_sigmoid_outputs_fits_the_command(cli, tmp_path):
    b = realistic("breast_cancer_logreg")
    p, y = b["probs"].reshape(-1, 1), b["target"].reshape(-1, 1).astype(np.float64)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    res = cli("multilabel-soft-margin", "--input", tmp_path / "p.npy", "--target", tmp_path / "y.npy", "-f", "plain")
    assert res.stderr == ("lossctl: warning: --input looks like sigmoid outputs (every value in [0, 1]; real logits "
                          "are negative wherever the model leans to 0): sigmoid would be applied twice; pass the raw "
                          "logits (`lossctl bce --probs` takes probabilities; its mean equals this loss's mean)\n")
    # which is so: MultiLabelSoftMarginLoss's mean is the mean BCE of the sigmoid
    x = torch.randn(6, 3, dtype=torch.float64)
    labels = (torch.rand(6, 3) > 0.5).double()
    assert float(F.multilabel_soft_margin_loss(x, labels)) == pytest.approx(
        float(F.binary_cross_entropy(torch.sigmoid(x), labels)), rel=1e-12)
    tail = "sigmoid would be applied twice; "
    assert cli("bce", "--logits", tmp_path / "p.npy", "--target", tmp_path / "y.npy").stderr.endswith(
        tail + "pass them as --probs, or pass the raw logits\n")
    assert cli("focal", "--logits", tmp_path / "p.npy", "--target", tmp_path / "y.npy").stderr.endswith(
        tail + "pass the raw logits\n")


def test_probabilities_passed_to_kl_as_log_probs_are_named_along_its_last_axis(cli, tmp_path):
    """KLDivLoss's distributions lie along the last axis: a language model's (N, L, C) probabilities are
    probabilities there, not raw logits (the advice to pass them as --logits would apply softmax to them)."""
    g = realistic("gpt2_init")
    p = torch.softmax(T(g["logits_nlc"]).double(), -1)
    np.save(tmp_path / "p.npy", p.numpy())
    res = cli("kl", "--log-probs", tmp_path / "p.npy", "--target", tmp_path / "p.npy", "--reduction", "batchmean",
              "-f", "plain")
    assert float(res.stdout) == pytest.approx(float(F.kl_div(p, p, reduction="batchmean")), rel=1e-9)
    lines = res.stderr.splitlines()
    assert lines[0].startswith("lossctl: warning: --log-probs look like probabilities (every value in [0, 1] and "
                               "every row sums to 1 within 1e-06), but log-probabilities are <= 0: pass them as")
    assert not any("raw logits" in line for line in lines)


def test_per_class_sigmoid_outputs_as_probs_to_nll_and_kl_warn(cli, tmp_path):
    """A multi-class model with a sigmoid per class instead of a softmax: rows that do not sum to 1, taken as given."""
    d = realistic("digits_logreg")
    p = torch.sigmoid(T(d["logits"]).double())
    np.save(tmp_path / "p.npy", p.numpy())
    np.save(tmp_path / "t.npy", d["target"])
    first = float(p[0].sum())
    line = (f"lossctl: warning: --probs: rows do not sum to 1 (first: row [0] sums to {first:.6g}); the log of each "
            "is taken as given, not renormalised\n")
    res = cli("nll", "--probs", tmp_path / "p.npy", "--target", tmp_path / "t.npy", "-f", "plain")
    assert float(res.stdout) == pytest.approx(float(F.nll_loss(torch.log(p), T(d["target"]))), rel=1e-12)
    assert res.stderr == line
    teacher = torch.softmax(T(d["logits"]).double() / 2, 1)
    np.save(tmp_path / "teacher.npy", teacher.numpy())
    res = cli("kl", "--probs", tmp_path / "p.npy", "--target", tmp_path / "teacher.npy", "--reduction", "batchmean",
              "-f", "plain")
    assert float(res.stdout) == pytest.approx(float(F.kl_div(torch.log(p), teacher, reduction="batchmean")),
                                              rel=1e-12)
    assert res.stderr.startswith(line)
    np.save(tmp_path / "softmax.npy", torch.softmax(T(d["logits"]).double(), 1).numpy())
    assert cli("nll", "--probs", tmp_path / "softmax.npy", "--target", tmp_path / "t.npy").stderr == ""


def test_probabilities_passed_as_log_probs_and_negative_kl(cli):
    res = cli("kl", "--log-probs", "[[0.7,0.2,0.1]]", "--target", "[[0.6,0.3,0.1]]", "--reduction", "batchmean",
              "-f", "json")
    data = json.loads(res.stdout)
    assert data["value"] == pytest.approx(-1.3879457, rel=1e-6)
    assert any(w.startswith("--log-probs look like probabilities") for w in data["warnings"])
    assert any(w.startswith("KL is negative") for w in data["warnings"])


def test_sigmoid_applied_twice_is_named(cli, tmp_path):
    b = realistic("breast_cancer_logreg")
    np.save(tmp_path / "p.npy", b["probs"])
    np.save(tmp_path / "y.npy", b["target"])
    res = cli("bce", "--logits", tmp_path / "p.npy", "--target", tmp_path / "y.npy", "-f", "plain")
    assert "--logits look like sigmoid outputs" in res.stderr
    res = cli("bce", "--probs", tmp_path / "p.npy", "--target", tmp_path / "y.npy", "-f", "plain")
    assert res.stderr == ""


def test_logits_of_a_model_at_initialisation_near_its_bias_are_not_sigmoid_outputs(cli, tmp_path):
    """Karpathy's 'init well': the final bias set to the log-odds of the positive rate, 0.53 for the breast-cancer
    labels; with small initial weights every logit is within a few hundredths of it, all in [0, 1]."""
    y = realistic("breast_cancer_logreg")["target"]
    rate = float(y.mean())
    layer = torch.nn.Linear(30, 1)
    torch.manual_seed(0)
    torch.nn.init.normal_(layer.weight, std=0.01)
    torch.nn.init.constant_(layer.bias, math.log(rate / (1 - rate)))
    with torch.no_grad():
        logits = layer(torch.randn(len(y), 30)).squeeze(1)
    assert 0 < float(logits.min()) and float(logits.max()) < 1
    np.save(tmp_path / "x.npy", logits.numpy())
    np.save(tmp_path / "y.npy", y)
    for loss in ("bce", "focal", "calibration"):
        res = cli(loss, "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", "-f", "plain")
        assert res.stderr == "", loss
    res = cli("bce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", "-f", "json")
    want = F.binary_cross_entropy_with_logits(logits.double(), T(y).double())
    assert json.loads(res.stdout)["value"] == pytest.approx(float(want), rel=1e-6)
    # ... and the loss sits at the best constant's, the entropy of the positive rate: the note says so
    prior = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert any(n.startswith(f"{NO_BETTER} {prior:.6g}") for n in json.loads(res.stdout)["notes"])


NO_BETTER = "the loss is no better than the best constant prediction, which scores"


def test_a_loss_at_the_best_constant_below_uniform_says_so(cli, tmp_path):
    """Imbalanced classes put the best constant prediction (their frequencies) below uniform: a model that predicts
    only the frequencies sits there, not at chance."""
    s = realistic("segmentation_conv")
    t = s["target"]
    freq = np.bincount(t[t != 255], minlength=4) / np.sum(t != 255)
    entropy = float(-(freq[freq > 0] * np.log(freq[freq > 0])).sum())
    assert entropy < 0.99 * math.log(4)
    logits = np.broadcast_to(np.log(np.maximum(freq, 1e-30)).reshape(1, 4, 1, 1), s["logits"].shape).copy()
    np.save(tmp_path / "x.npy", logits.astype(np.float32))
    np.save(tmp_path / "t.npy", t)
    data = json.loads(cli("ce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "t.npy", "--ignore-index",
                          "255", "-f", "json").stdout)
    want = F.cross_entropy(T(logits).double(), T(t), ignore_index=255)
    assert data["value"] == pytest.approx(float(want), rel=1e-6) and float(want) == pytest.approx(entropy, rel=1e-6)
    assert [n for n in data["notes"] if n.startswith(NO_BETTER)] == [
        f"{NO_BETTER} {entropy:.6g} (the loss is {data['value']:.6g}): the predictions say nothing of the targets "
        "beyond their class frequencies"]
    # a trained model is far below it
    d = realistic("digits_logreg")
    assert not any(n.startswith(NO_BETTER) for n in lossctl.compute("ce", logits=d["logits"], target=d["target"]).notes)


REAL_RUNS = [("digits_logreg", "ce", ["--logits", "logits", "--target", "target"]),
             ("digits_logreg", "nll", ["--log-probs", "log_probs", "--target", "target"]),
             ("digits_logreg", "nll", ["--probs", "probs", "--target", "target"]),
             ("digits_logreg", "perplexity", ["--logits", "logits", "--target", "target"]),
             ("breast_cancer_logreg", "bce", ["--logits", "logits", "--target", "target"]),
             ("breast_cancer_logreg", "bce", ["--probs", "probs", "--target", "target"]),
             ("breast_cancer_logreg", "focal", ["--logits", "logits", "--target", "target"]),
             ("gpt2_init", "ce", ["--logits", "logits", "--target", "target"]),
             ("gpt2_init", "ce", ["--logits", "logits_nlc", "--target", "labels_nl", "--class-axis", "-1"]),
             ("segmentation_conv", "ce", ["--logits", "logits", "--target", "target", "--ignore-index", "255"]),
             ("segmentation_conv", "focal", ["--logits", "logits", "--target", "target", "--ignore-index", "255"]),
             ("digits_logreg", "entropy", ["--logits", "logits"]),
             ("gpt2_init", "entropy", ["--logits", "logits_nlc"])]


@pytest.mark.parametrize(("name", "loss", "args"), REAL_RUNS, ids=[f"{n}-{lo}-{a[0]}" for n, lo, a in REAL_RUNS])
def test_no_warning_on_real_model_outputs(cli, name, loss, args):
    path = REALISTIC / f"{name}.npz"
    argv = [f"{path}:{a}" if i % 2 and not a.lstrip("-").isdigit() else a for i, a in enumerate(args)]
    res = cli(loss, *argv, "-f", "json")
    assert res.stderr == "" and json.loads(res.stdout)["warnings"] == []


EXAMPLE_RUNS = [["ce", "--logits", "examples/logits.npy", "--target", "examples/targets.npy"],
                ["ce", "--logits", "examples/logits.csv", "--target", "examples/targets.npy"],
                ["ce", "--logits", "examples/logits.npy", "--target", "examples/target_probs.json"],
                ["nll", "--logits", "examples/logits.npy", "--target", "examples/targets.npy"],
                ["kl", "--logits", "examples/logits.npy", "--target", "examples/target_probs.json", "--reduction",
                 "batchmean"],
                ["bce", "--logits", "examples/logits_binary.npy", "--target", "examples/targets_binary.csv"],
                ["bce", "--probs", "examples/probs_binary.npy", "--target", "examples/targets_binary.csv"],
                ["ce", "--from", "examples/bundle.npz"]]


@pytest.mark.parametrize("args", EXAMPLE_RUNS, ids=lambda a: "-".join(a[:3]))
def test_no_warning_on_the_shipped_examples(cli, monkeypatch, args):
    monkeypatch.chdir(ROOT)
    assert cli(*args, "-f", "json").stderr == ""


# --- classes last ------------------------------------------------------------------------------------------

def test_classes_last_logits_are_refused_by_torch_and_taken_with_class_axis(cli):
    path = REALISTIC / "gpt2_init.npz"
    res = cli("ce", "--logits", f"{path}:logits_nlc", "--target", f"{path}:labels_nl", code=2)
    assert "torch refuses" in res.stderr and "--class-axis -1" in res.stderr and len(res.stderr.splitlines()) == 1
    d = realistic("gpt2_init")
    out = cli("ce", "--logits", f"{path}:logits_nlc", "--target", f"{path}:labels_nl", "--class-axis", "-1",
              "-f", "plain").stdout
    want = F.cross_entropy(T(d["logits_nlc"]).permute(0, 2, 1), T(d["labels_nl"]))
    assert float(out) == pytest.approx(float(want), rel=2e-6)


# --- breakdowns --------------------------------------------------------------------------------------------

def test_perplexitys_breakdowns_say_their_loss_is_cross_entropy_in_nats(cli):
    """Perplexity's value is exp of the mean CE, but its breakdowns hold each target's CE: labelled so."""
    path = REALISTIC / "digits_logreg.npz"
    base = ("perplexity", "--logits", f"{path}:logits", "--target", f"{path}:target")
    data = json.loads(cli(*base, "--by-class", "--worst", "3", "-f", "json").stdout)
    d = realistic("digits_logreg")
    x, t = T(d["logits"]).double(), T(d["target"])
    ce = F.cross_entropy(x, t, reduction="none").numpy()
    assert data["value"] == pytest.approx(math.exp(ce.mean()), rel=2e-6)
    assert data["breakdown_loss"] == "cross entropy (nats)"
    for row in data["by_class"]:
        assert row["loss"] == pytest.approx(ce[d["target"] == row["class"]].mean(), rel=2e-6)
    np.testing.assert_allclose([r["loss"] for r in data["worst"]], np.sort(ce)[::-1][:3], rtol=2e-6)
    assert cli(*base, "--by-class", "-f", "csv").stdout.splitlines()[0] == (
        "class,count,cross entropy (nats),share,accuracy,p_target")
    assert cli(*base, "--worst", "3", "-f", "csv").stdout.splitlines()[0] == (
        "i0,target,predicted,p_target,cross entropy (nats)")
    assert "cross entropy (nats)" in cli(*base, "--by-class", "-f", "table", env={"COLUMNS": "200"}).stdout
    assert "breakdown_loss" not in json.loads(cli("ce", *base[1:], "--by-class", "-f", "json").stdout)


@pytest.mark.parametrize(("base", "unit"), [("2", "bits"), ("10", "bans")])
def test_ce_breakdowns_in_another_base_say_their_unit(cli, tmp_path, monkeypatch, base, unit):
    """With --base 2 the breakdowns' loss is torch's per-sample CE / ln 2, and its column says bits."""
    path = REALISTIC / "digits_logreg.npz"
    args = ("ce", "--logits", f"{path}:logits", "--target", f"{path}:target", "--base", base)
    data = json.loads(cli(*args, "--by-class", "--worst", "3", "-f", "json").stdout)
    d = realistic("digits_logreg")
    ce = F.cross_entropy(T(d["logits"]).double(), T(d["target"]), reduction="none").numpy() / math.log(int(base))
    assert data["breakdown_loss"] == f"loss ({unit})"
    for row in data["by_class"]:
        assert row["loss"] == pytest.approx(ce[d["target"] == row["class"]].mean(), rel=2e-6)
    np.testing.assert_allclose([r["loss"] for r in data["worst"]], np.sort(ce)[::-1][:3], rtol=2e-6)
    assert cli(*args, "--by-class", "-f", "csv").stdout.splitlines()[0] == (
        f"class,count,loss ({unit}),share,accuracy,p_target")
    assert cli(*args, "--worst", "3", "-f", "csv").stdout.splitlines()[0] == (
        f"i0,target,predicted,p_target,loss ({unit})")
    assert f"loss ({unit})" in cli(*args, "--worst", "3", "-f", "table", env={"COLUMNS": "200"}).stdout
    np.save(tmp_path / "x.npy", d["logits"]), np.save(tmp_path / "t.npy", d["target"])
    monkeypatch.setattr(stream, "CHUNK_BYTES", 4000)
    r = lossctl.compute("ce", logits=str(tmp_path / "x.npy"), target=str(tmp_path / "t.npy"), base=base,
                        worst=3, stream=True)
    assert any(n.startswith("streamed in") for n in r.notes) and r.breakdown_loss == f"loss ({unit})"
    np.testing.assert_allclose([w["loss"] for w in r.worst], np.sort(ce)[::-1][:3], rtol=2e-6)
    nats = json.loads(cli(*args[:-2], "--base", "e", "--by-class", "-f", "json").stdout)
    assert "breakdown_loss" not in nats


def test_by_class_is_a_groupby_of_torchs_per_sample_losses(cli):
    path = REALISTIC / "digits_logreg.npz"
    data = json.loads(cli("ce", "--logits", f"{path}:logits", "--target", f"{path}:target", "--by-class",
                          "-f", "json").stdout)
    d = realistic("digits_logreg")
    x, t = T(d["logits"]).double(), T(d["target"])
    frame = pd.DataFrame({"class": d["target"], "loss": F.cross_entropy(x, t, reduction="none").numpy(),
                          "correct": (x.argmax(1) == t).numpy(), "p": x.softmax(1)[torch.arange(len(t)), t].numpy()})
    g = frame.groupby("class").agg(count=("loss", "size"), loss=("loss", "mean"), total=("loss", "sum"),
                                   accuracy=("correct", "mean"), p_target=("p", "mean"))
    rows = {r["class"]: r for r in data["by_class"]}
    assert list(rows) == list(g.index) and set(rows[0]) == {"class", "count", "loss", "share", "accuracy",
                                                           "p_target"}
    for c, row in g.iterrows():
        got = rows[c]
        assert got["count"] == row["count"] and got["accuracy"] == pytest.approx(row["accuracy"], rel=1e-12)
        assert got["loss"] == pytest.approx(row["loss"], rel=2e-6)
        assert got["share"] == pytest.approx(row["total"] / frame["loss"].sum(), rel=2e-6)
        assert got["p_target"] == pytest.approx(row["p_target"], rel=2e-6)


def test_worst_follows_cleanlabs_self_confidence_ranking(cli, tmp_path, monkeypatch):
    rank = pytest.importorskip("cleanlab.rank")
    d = realistic("digits_logreg")
    probs = torch.softmax(T(d["logits"]).double(), 1).numpy()
    order = np.argsort(rank.get_label_quality_scores(d["target"], probs, method="self_confidence"), kind="stable")
    np.save(tmp_path / "x.npy", d["logits"])
    np.save(tmp_path / "t.npy", d["target"])
    monkeypatch.setattr(stream, "CHUNK_BYTES", 4000)  # streamed: a bounded heap per chunk, merged
    for flag in ("--stream", "--no-stream"):
        data = json.loads(cli("ce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "t.npy", "--worst", "10",
                              flag, "-f", "json").stdout)
        assert [w["index"][0] for w in data["worst"]] == order[:10].tolist()
        top = data["worst"][0]
        assert top["target"] == int(d["target"][order[0]]) and top["predicted"] == int(probs[order[0]].argmax())
        assert top["p_target"] == pytest.approx(probs[order[0], d["target"][order[0]]], rel=2e-6)


def test_reduction_none_summary_and_histogram(cli):
    x = np.random.default_rng(1).normal(size=(200, 4))
    t = np.random.default_rng(2).integers(0, 4, 200)
    losses = F.cross_entropy(T(x), T(t), reduction="none").numpy()
    r = lossctl.compute("ce", logits=x, target=t, reduction="none")
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert r.summary[key] == pytest.approx(np.percentile(losses, q), rel=1e-12)
    assert r.summary["count"] == 200 and r.summary["max"] == pytest.approx(losses.max(), rel=1e-12)
    table = cli("ce", "--logits", json.dumps(x.tolist()), "--target", json.dumps(t.tolist()), "--reduction", "none",
                "-f", "table", env={"COLUMNS": "140"}).stdout
    assert "per-sample losses: count 200" in table and "#" in table


# --- expect and signature ----------------------------------------------------------------------------------

def test_expect_pins_the_loss_for_ci(cli):
    want = float(F.cross_entropy(torch.tensor([[2.0, 1.0, 0.1]], dtype=torch.float64), torch.tensor([0])))
    args = ["ce", "--logits", "[[2.0, 1.0, 0.1]]", "--target", "[0]", "-f", "plain"]
    assert cli(*args, "--expect", repr(want * (1 + 1e-12))).stderr == ""
    res = cli(*args, "--expect", "0.42", code=1)
    (line,) = res.stderr.splitlines()
    assert repr(want) in line and "0.42" in line and f"{abs(want - 0.42):.6g}" in line
    assert cli(*args, "--expect", "0.42", "--atol", "0.01").exit_code == 0


def test_signature_names_everything_that_determines_the_number():
    a = lossctl.compute("ce", logits=[[2.0, 1.0, 0.1]], target=[0])
    b = lossctl.compute("ce", logits=[[2.0, 1.0, 0.1]], target=[0], label_smoothing=0.1)
    c = lossctl.compute("ce", logits=[[2.0, 1.0, 0.1]], target=[0], backend="torch")
    assert a.signature.startswith("loss:ce|red:mean|") and "ls:0.0" in a.signature and "ls:0.1" in b.signature
    assert "backend:numpy" in a.signature and "backend:torch-" in c.signature
    assert f"lossctl:{lossctl.__version__}" in a.signature and "|torch:" in a.signature
    assert a.signature != b.signature and json.loads(json.dumps(a.to_dict()))["signature"] == a.signature


def test_reports_are_offered_only_where_they_apply(cli):
    assert "--by-class" in cli("ce", "--help").stdout and "--by-class" not in cli("mse", "--help").stdout
    assert "--class-axis" in cli("nll", "--help").stdout and "--class-axis" not in cli("kl", "--help").stdout
    assert Path(ROOT / "README.md").read_text().count("## Sanity checks") == 1


def test_reports_over_many_files_are_those_of_the_files_together(cli, tmp_path):
    d = realistic("digits_logreg")
    x, t = d["logits"].astype(np.float64), d["target"]
    for i, rows in enumerate((slice(0, 200), slice(200, 540))):
        np.save(tmp_path / f"x{i}.npy", x[rows])
        np.save(tmp_path / f"t{i}.npy", t[rows])
    data = json.loads(cli("ce", "--logits", str(tmp_path / "x*.npy"), "--target", str(tmp_path / "t*.npy"),
                          "--by-class", "--worst", "5", "--label-smoothing", "0.1", "-f", "json").stdout)["total"]
    whole = lossctl.compute("ce", logits=x, target=t, by_class=True, worst=5, label_smoothing=0.1)
    for k, b in whole.baselines.items():
        assert data["baselines"][k]["value"] == pytest.approx(b["value"], rel=1e-12)
    losses = F.cross_entropy(T(x), T(t), reduction="none", label_smoothing=0.1).numpy()
    assert [w["index"][0] for w in data["worst"]] == np.argsort(-losses, kind="stable")[:5].tolist()
    assert sum(r["share"] for r in data["by_class"]) == pytest.approx(1.0, rel=1e-12)
    assert [r["count"] for r in data["by_class"]] == np.bincount(t, minlength=10).tolist()


def test_summary_leaves_out_ignored_targets(cli):
    path = REALISTIC / "gpt2_init.npz"
    data = json.loads(cli("ce", "--logits", f"{path}:logits_nlc", "--target", f"{path}:labels_nl", "--class-axis",
                          "-1", "--reduction", "none", "-f", "json").stdout)
    d = realistic("gpt2_init")
    labels = T(d["labels_nl"])
    losses = F.cross_entropy(T(d["logits_nlc"]).permute(0, 2, 1), labels, reduction="none")[labels != -100].numpy()
    assert data["summary"]["count"] == losses.size == 108
    assert data["summary"]["mean"] == pytest.approx(float(F.cross_entropy(T(d["logits_nlc"]).permute(0, 2, 1),
                                                                          labels)), rel=2e-6)
    assert data["summary"]["min"] == pytest.approx(float(losses.min()), rel=2e-6)


def test_summary_over_many_files_leaves_out_ignored_targets(cli, tmp_path):
    """GPT-2's padded batch split in two files: the total's summary counts the targets not ignored, as one file's
    does, and its statistics are those of torch's per-target losses."""
    d = realistic("gpt2_init")
    logits, labels = d["logits_nlc"], d["labels_nl"]
    half = len(logits) // 2
    for i, part in enumerate((slice(0, half), slice(half, None))):
        np.save(tmp_path / f"x{i}.npy", logits[part])
        np.save(tmp_path / f"t{i}.npy", labels[part])
    data = json.loads(cli("ce", "--logits", str(tmp_path / "x*.npy"), "--target", str(tmp_path / "t*.npy"),
                          "--class-axis", "-1", "--reduction", "none", "-f", "json").stdout)
    t = T(labels)
    losses = F.cross_entropy(T(logits).permute(0, 2, 1), t, reduction="none")[t != -100].numpy()
    summary = data["total"]["summary"]
    assert summary["count"] == losses.size == 108
    assert summary["mean"] == pytest.approx(float(losses.astype(np.float64).mean()), rel=2e-6)
    assert summary["min"] == pytest.approx(float(losses.min()), rel=2e-6)
    assert len(data["total"]["values"]) == labels.size  # every value is still printed, ignored ones as 0


def test_expect_refuses_negative_tolerances(cli):
    args = ["ce", "--logits", "[[1.0, 2.0]]", "--target", "[0]", "--expect", "1.3"]
    for option in ("--atol", "--rtol"):
        res = cli(*args, option, "-1", code=2)
        assert option in res.stderr and len(res.stderr.splitlines()) == 1
    with pytest.raises(lossctl.errors.UsageError, match="--atol"):
        lossctl.api.expectation(lossctl.compute("ce", logits=[[1.0, 2.0]], target=[0]), 1.3, atol=-1.0)


def test_one_class_baselines_of_zero_have_no_ratio(cli):
    """With one class every loss is 0, as is each baseline (torch's loss of zero logits): 0 / 0 is no ratio. It
    was reported as inf ("the loss is infx this"), the loss infinitely worse than a prediction it equals."""
    args = ("ce", "--logits", "[[1.0], [2.0]]", "--target", "[0, 0]")
    uniform = F.cross_entropy(torch.zeros(2, 1), torch.tensor([0, 0])).item()
    doc = json.loads(cli(*args, "-f", "json").stdout)
    assert doc["baselines"]["uniform"] == {"value": uniform, "ratio": "nan"}
    assert doc["baselines"]["prior"]["ratio"] == "nan"
    table = cli(*args, "-f", "table").stdout
    assert "a baseline of 0: no ratio" in table and "infx" not in table and "nanx" not in table


def test_an_infinite_loss_keeps_its_ratio_to_a_baseline_above_0(cli):
    """Only a baseline of 0 has no ratio: an inf loss against uniform's ln 2 is inf times it."""
    table = cli("ce", "--logits", "[[1.0, -Infinity], [2.0, 0.5]]", "--target", "[1, 0]", "-f", "table").stdout
    assert f"{math.log(2):.8g}  (the loss is infx this)" in table and "no ratio" not in table


def test_one_class_targets_get_no_best_constant_note(cli, tmp_path):
    """Every target one class: the best constant is perfect (prior 0), so any loss is 'no better' and the note
    would say nothing. Here the positives of the trained binary model: BCE far below uniform's ln 2."""
    b = realistic("breast_cancer_logreg")
    pos = b["target"] == 1
    np.save(tmp_path / "x.npy", b["logits"][pos])
    np.save(tmp_path / "y.npy", b["target"][pos].astype(np.float32))
    doc = json.loads(cli("bce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", "-f", "json").stdout)
    want = F.binary_cross_entropy_with_logits(T(b["logits"][pos]).double(), T(b["target"][pos]).double())
    assert doc["value"] == pytest.approx(float(want), rel=1e-6) and doc["value"] < 0.5 * math.log(2)
    assert doc["baselines"]["prior"]["value"] == 0 and not [n for n in doc["notes"] if n.startswith(NO_BETTER)]
    doc = json.loads(cli("ce", "--logits", "[[5.0, 0, 0], [4.0, 1, 0]]", "--target", "[0, 0]", "-f", "json").stdout)
    assert not [n for n in doc["notes"] if n.startswith(NO_BETTER)]


def test_bool_logits_are_read_as_0_and_1(cli, tmp_path):
    """A bool array passed as --logits: the sigmoid rule's spread used np.ptp, which refuses bools (a traceback)."""
    x, y = np.array([True, False] * 10), np.array([1.0, 0.0] * 10)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    for loss in ("bce", "focal"):
        res = cli(loss, "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", "-f", "plain")
        assert "sigmoid outputs" in res.stderr, loss
    want = F.binary_cross_entropy_with_logits(T(x).double(), T(y).double())
    res = cli("bce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", "-f", "plain")
    assert float(res.stdout) == pytest.approx(float(want), rel=1e-12)


def test_half_precision_model_probs_do_not_warn_but_sigmoid_rows_do(cli, tmp_path):
    """nll's --probs from a bf16 softmax over 1000 classes sum within about 1.5e-3 of 1: no warning. Per-class
    sigmoid outputs (rows summing far from 1) still warn."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 1000, generator=g) * 3
    probs = torch.softmax(logits.to(torch.bfloat16), dim=1).float().numpy()
    assert np.abs(probs.sum(1) - 1).max() > 1e-3  # past float32's row tolerance
    target = np.arange(64) % 1000
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "t.npy", target)
    for args in (("calibration", "--probs", tmp_path / "p.npy", "--target", tmp_path / "t.npy"),
                 ("entropy", "--probs", tmp_path / "p.npy"),
                 ("js", "--p", tmp_path / "p.npy", "--q", tmp_path / "p.npy")):
        assert cli(*args, "-f", "plain").stderr == "", args[0]
    res = cli("nll", "--probs", tmp_path / "p.npy", "--target", tmp_path / "t.npy", "-f", "plain")
    assert res.stderr == ""
    want = F.nll_loss(torch.log(T(probs).double()), T(target))
    assert float(res.stdout) == pytest.approx(float(want), rel=1e-6)
    np.save(tmp_path / "s.npy", torch.sigmoid(logits).numpy())
    res = cli("nll", "--probs", tmp_path / "s.npy", "--target", tmp_path / "t.npy", "-f", "plain")
    assert "rows do not sum to 1" in res.stderr


def test_sigmoid_outputs_sorted_by_score_warn_streamed_as_whole(tmp_path, monkeypatch):
    """Sorted probabilities spread over [0, 1] as a whole but less than half of it in each chunk: the rule adds the
    chunks' counts and ranges up (it dropped the warning when streamed). A narrow file stays silent either way."""
    monkeypatch.setattr(stream, "CHUNK_BYTES", 4096)
    rng = np.random.default_rng(3)
    p = np.sort(rng.uniform(0.01, 0.99, 20_000)).astype(np.float32)
    y = (rng.random(p.size) < p).astype(np.float32)
    for name, scores in (("wide", p), ("narrow", 0.4 + 0.1 * p)):
        np.save(tmp_path / f"{name}.npy", scores)
        np.save(tmp_path / "y.npy", y)
        files = {"logits": str(tmp_path / f"{name}.npy"), "target": str(tmp_path / "y.npy")}
        for stream_it in (False, True):
            loss = lossctl.compute("bce", **files, stream=stream_it)
            cal = lossctl.api.calibrate(**files, stream=stream_it)
            assert stream_it == any(n.startswith("streamed in") and "chunks" in n for n in loss.notes)
            want = F.binary_cross_entropy_with_logits(T(scores).double(), T(y).double())
            assert loss.value == pytest.approx(float(want), rel=1e-6)
            for result in (loss, cal):
                assert any("sigmoid outputs" in w for w in result.warnings) == (name == "wide"), (name, stream_it)


def sigmoid_shards(tmp_path, n=4, size=10):
    """Sigmoid outputs spread over [0, 1], split into files too small (fewer than 16 values) to conclude alone."""
    rng = np.random.default_rng(5)
    p = rng.uniform(0.02, 0.98, n * size)
    y = (rng.random(p.size) < p).astype(np.int64)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    for i in range(n):
        np.save(tmp_path / f"p{i}.npy", p[i * size:(i + 1) * size])
        np.save(tmp_path / f"y{i}.npy", y[i * size:(i + 1) * size])
    return p, y


def test_sigmoid_outputs_split_over_small_files_warn_as_one_file_does(cli, tmp_path):
    """Each file of 10 values is too few to conclude, all 40 are enough: several files, and their partials merged,
    warn as the same values in one file do (they said nothing: each file's weak finding was dropped)."""
    p, y = sigmoid_shards(tmp_path)
    warning = "lossctl: warning: --logits look like sigmoid outputs"
    whole = cli("bce", "--logits", tmp_path / "p.npy", "--target", tmp_path / "y.npy", "-f", "plain")
    assert whole.stderr.startswith(warning)
    alone = cli("bce", "--logits", tmp_path / "p0.npy", "--target", tmp_path / "y0.npy", "-f", "plain")
    assert alone.stderr == ""
    files = ["--logits", str(tmp_path / "p?.npy"), "--target", str(tmp_path / "y?.npy")]
    many = cli("bce", *files, "-f", "plain")
    want = F.binary_cross_entropy_with_logits(T(p), T(y).double()).item()
    assert float(many.stdout.split()[-1]) == pytest.approx(want, rel=1e-12) and many.stderr == whole.stderr
    assert cli("bce", *files, "--strict", code=2).stderr.startswith("lossctl: error: --strict: --logits look like")
    parts = quiet_partials(cli, tmp_path, "bce")
    merged = cli("merge", *parts, "-f", "plain")
    assert float(merged.stdout) == pytest.approx(want, rel=1e-12) and merged.stderr == whole.stderr
    assert cli("merge", *parts[:1], "-f", "plain").stderr == ""  # 10 values alone still conclude nothing


def quiet_partials(cli, tmp_path, loss: str) -> list:
    """--partials of each of sigmoid_shards' four files, each too small to warn alone (checked)."""
    parts = []
    for i in range(4):
        ran = cli(loss, "--logits", tmp_path / f"p{i}.npy", "--target", tmp_path / f"y{i}.npy", "--partials")
        assert ran.stderr == ""
        parts.append(tmp_path / f"part{i}.json")
        parts[-1].write_text(ran.stdout)
    return parts


def test_sigmoid_outputs_split_over_small_files_warn_in_calibration_as_one_file_does(cli, tmp_path):
    """calibration's binary scores likewise: several files and merged calibration partials join what each file
    is too small to conclude (they dropped it)."""
    p, y = sigmoid_shards(tmp_path)
    whole = cli("calibration", "--logits", tmp_path / "p.npy", "--target", tmp_path / "y.npy", "-f", "plain")
    assert whole.stderr.startswith("lossctl: warning: --logits look like sigmoid outputs")
    from torchmetrics.functional.classification import binary_calibration_error

    want = binary_calibration_error(torch.sigmoid(T(p)), T(y), n_bins=15).item()
    many = cli("calibration", "--logits", tmp_path / "p?.npy", "--target", tmp_path / "y?.npy", "-f", "plain")
    assert float(many.stdout.split()[-1]) == pytest.approx(want, rel=1e-5) and many.stderr == whole.stderr
    parts = quiet_partials(cli, tmp_path, "calibration")
    merged = cli("merge", *parts, "-f", "plain")
    assert float(merged.stdout) == pytest.approx(want, rel=1e-5) and merged.stderr == whole.stderr
    assert cli("merge", *parts[:1], "-f", "plain").stderr == ""
