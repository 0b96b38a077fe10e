"""The tutorial's identities: CE = H + KL per sample (decompose) and `lossctl check`, against numpy/scipy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats
import torch
import torch.nn.functional as F

import lossctl
from lossctl.errors import LossctlError

EX = Path(__file__).resolve().parents[1] / "examples"

N, C = 6, 4


def rows(result, key: str) -> np.ndarray:
    return np.array([getattr(r, key) if hasattr(r, key) else r.extra[key] for r in result.rows])


def references(x: np.ndarray, q: np.ndarray):
    """Independent float64 CE, H and KL per sample, with scipy's 0 log 0 = 0."""
    logp = sp.log_softmax(x, axis=1)
    ce = -(q * logp).sum(axis=1)
    h = scipy.stats.entropy(q, axis=1)
    kl = sp.rel_entr(q, np.exp(logp)).sum(axis=1)
    return ce, h, kl


@pytest.mark.parametrize("kind", ["prob", "logits", "auto"])
def test_decompose_distribution_target(rng, kind):
    x = rng.normal(size=(N, C))
    t = rng.normal(size=(N, C)) if kind == "logits" else rng.dirichlet(np.ones(C), size=N)
    t[0] = [0.0, 0.3, 0.7, 0.0] if kind != "logits" else t[0]
    q = sp.softmax(t, axis=1) if kind == "logits" else t
    res = lossctl.decompose(logits=x, target=t, target_kind=kind)
    ce, h, kl = references(x, q)
    np.testing.assert_allclose(rows(res, "left"), ce, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "entropy"), h, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "kl"), kl, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(rows(res, "right"), h + kl, rtol=1e-12)
    assert res.ok and res.passed == N and res.dtype == "float64"
    assert (res.atol, res.rtol) == (1e-10, 1e-10)


def test_decompose_float32_tolerance_follows_dtype(rng):
    x = rng.normal(size=(N, C)).astype(np.float32)
    t = rng.dirichlet(np.ones(C), size=N).astype(np.float32)
    res = lossctl.decompose(logits=x, target=t)
    assert res.dtype == "float32" and res.ok
    assert res.atol > 1e-8  # a float64 tolerance would fail float32 rounding
    ce, h, kl = references(x.astype(np.float64), t.astype(np.float64))
    np.testing.assert_allclose(rows(res, "left"), ce, rtol=1e-5)


def test_decompose_index_target_has_zero_entropy(rng):
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    y[2] = -100
    res = lossctl.decompose(logits=x, target=y)
    keep = y != -100
    assert [r.label for r in res.rows] == [str(i) for i in np.flatnonzero(keep)]
    np.testing.assert_array_equal(rows(res, "entropy"), 0.0)
    expected = -sp.log_softmax(x, axis=1)[keep, y[keep]]
    np.testing.assert_allclose(rows(res, "left"), expected, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "kl"), expected, rtol=1e-12)
    assert res.ok
    assert any("H = 0" in n for n in res.notes) and any("ignore" in n for n in res.notes)


def test_decompose_label_smoothing_checks_the_smoothed_target(rng):
    eps = 0.2
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    res = lossctl.decompose(logits=x, target=y, label_smoothing=eps)
    q = np.eye(C)[y] * (1 - eps) + eps / C
    ce, h, kl = references(x, q)
    torch_ce = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), label_smoothing=eps, reduction="none")
    np.testing.assert_allclose(rows(res, "left"), torch_ce.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ce, torch_ce.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rows(res, "entropy"), h, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "kl"), kl, rtol=1e-10)
    assert res.ok and any("label smoothing" in n for n in res.notes)
    assert np.all(h > 0) and not any("H = 0" in n for n in res.notes)  # the smoothed target is not one-hot


def test_decompose_weights_check_the_weighted_form(rng):
    x = rng.normal(size=(N, C))
    t = rng.dirichlet(np.ones(C), size=N)
    w = rng.random(C) + 0.5
    res = lossctl.decompose(logits=x, target=t, weight=w)
    logp = sp.log_softmax(x, axis=1)
    ce_w = -(w * t * logp).sum(axis=1)
    h_w = (w * sp.entr(t)).sum(axis=1)
    kl_w = (w * sp.rel_entr(t, np.exp(logp))).sum(axis=1)
    np.testing.assert_allclose(rows(res, "left"), ce_w, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "entropy"), h_w, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "kl"), kl_w, rtol=1e-10)
    assert res.ok and any("class weights" in n for n in res.notes)


def test_decompose_spatial_rows(rng):
    x = rng.normal(size=(2, C, 3))
    t = rng.dirichlet(np.ones(C), size=(2, 3)).transpose(0, 2, 1)
    res = lossctl.decompose(logits=x, target=t)
    assert len(res.rows) == 6 and res.rows[1].label == "[0, 1]"
    xr, tr = x.transpose(0, 2, 1).reshape(-1, C), t.transpose(0, 2, 1).reshape(-1, C)
    ce, h, kl = references(xr, tr)
    np.testing.assert_allclose(rows(res, "left"), ce, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "entropy"), h, rtol=1e-12)


def test_decompose_cli_json_and_exit_codes(cli, rng):
    x = rng.normal(size=(N, C))
    t = rng.dirichlet(np.ones(C), size=N)
    args = ("decompose", "--logits", json.dumps(x.tolist()), "--target", json.dumps(t.tolist()))
    out = json.loads(cli(*args, "-f", "json").stdout)
    ce, h, kl = references(x, t)
    assert out["ok"] is True and len(out["rows"]) == N
    np.testing.assert_allclose([r["ce"] for r in out["rows"]], ce, rtol=1e-12)
    np.testing.assert_allclose([r["entropy"] for r in out["rows"]], h, rtol=1e-12)
    np.testing.assert_allclose([r["kl"] for r in out["rows"]], kl, rtol=1e-10)
    assert all(r["ok"] and r["residual"] <= 1e-10 for r in out["rows"])
    table = cli(*args, "-f", "table", env={"COLUMNS": "160"}).stdout
    assert f"{N} of {N} pass" in table and "tolerance" in table
    csv_out = cli(*args, "-f", "csv").stdout.splitlines()
    assert csv_out[0].split(",") == ["sample", "ce", "entropy", "kl", "entropy+kl", "residual", "ok"]
    assert len(csv_out) == N + 1


def test_decompose_exit_1_when_a_row_fails(cli, rng, tmp_path):
    """float32 logits of size ~1e3: CE and H + KL are rounded apart, so a zero tolerance must fail."""
    x = (rng.normal(size=(N, C)) * 1000).astype(np.float32)
    t = rng.dirichlet(np.ones(C), size=N).astype(np.float32)
    res = lossctl.decompose(logits=x, target=t, atol=0.0, rtol=0.0)
    residuals = rows(res, "residual")
    assert (residuals > 0).any()
    assert not res.ok and res.passed == int((residuals == 0).sum())
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    files = ("--logits", tmp_path / "x.npy", "--target", tmp_path / "t.npy")
    out = cli("decompose", *files, "--atol", "0", "--rtol", "0", "-f", "plain", code=1).stdout
    assert "FAIL" in out
    cli("decompose", *files, "-f", "plain", code=0)  # the float32 default tolerance passes the same data


def test_decompose_refuses_bad_targets():
    with pytest.raises(LossctlError, match="--target"):
        lossctl.decompose(logits=[[1.0, 2.0]], target=[[1.2, -0.2]])
    with pytest.raises(LossctlError, match="--target"):
        lossctl.decompose(logits=[[1.0, 2.0], [0.0, 1.0]], target=[0, 1, 1])


@pytest.mark.parametrize("eps", ["5", "-0.1", "1.5"])
def test_decompose_refuses_label_smoothing_outside_the_unit_interval(cli, eps):
    """decompose refuses what ce refuses (torch raises a RuntimeError above 1): one line, exit 2."""
    if float(eps) > 1:
        with pytest.raises(RuntimeError, match="label_smoothing"):
            F.cross_entropy(torch.zeros(1, 2), torch.tensor([[0.5, 0.5]]), label_smoothing=float(eps))
    for cmd in ("decompose", "ce"):
        res = cli(cmd, "--logits", "[[1.0, 2.0]]", "--target", "[[0.5, 0.5]]", "--label-smoothing", eps, code=2)
        assert res.stderr == f"lossctl: error: --label-smoothing: must be in [0, 1]; got {float(eps)}\n"
    with pytest.raises(LossctlError, match="--label-smoothing"):
        lossctl.decompose(logits=[[1.0, 2.0]], target=[1], label_smoothing=float(eps))


def test_decompose_refuses_a_nonnegative_ignore_index_with_probability_targets_as_ce_does(cli):
    """torch's CE refuses ignore_index >= 0 with probability targets; decompose once dropped it silently."""
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(torch.zeros(1, 3), torch.tensor([[0.2, 0.3, 0.5]]), ignore_index=0)
    res = cli("decompose", "--logits", "[[1.0, 2.0, 3.0]]", "--target", "[[0.2, 0.3, 0.5]]", "--ignore-index", "0",
              code=2)
    assert res.stderr == ("lossctl: error: --ignore-index: applies only to class-index targets; torch refuses 0 with "
                          "probability targets (only a negative value, such as the default -100, is accepted)\n")


# --- lossctl check -------------------------------------------------------------------------------------------


def by_name(results):
    return {c.name: c for c in results}


def test_check_multiclass_identities(rng):
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    res = by_name(lossctl.check(logits=x, target=y))
    expected = -sp.log_softmax(x, axis=1)[np.arange(N), y]
    for name in ("ce-nll", "onehot-index"):
        assert res[name].ok and len(res[name].rows) == N
        np.testing.assert_allclose(rows(res[name], "left"), expected, rtol=1e-12)
        np.testing.assert_allclose(rows(res[name], "right"), expected, rtol=1e-12)
    assert res["decompose"].ok and len(res["decompose"].rows) == N
    assert res["bce-nll"].skipped and res["bce-nll"].ok


@pytest.mark.parametrize("form", ["logits-1d", "logits-2class", "probs"])
def test_check_binary_identity(rng, form):
    y = np.array([0, 1, 1, 0, 1])
    z = rng.normal(size=5)
    p = sp.expit(z)
    if form == "logits-1d":
        results = lossctl.check(logits=z, target=y)
    elif form == "probs":
        results = lossctl.check(probs=p, target=y)
    else:
        results = lossctl.check(logits=np.stack([np.zeros(5), z], axis=1), target=y)  # softmax(0, z)_1 = sigmoid(z)
    res = by_name(results)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert res["bce-nll"].ok and not res["bce-nll"].skipped
    np.testing.assert_allclose(rows(res["bce-nll"], "left"), bce, rtol=1e-12)
    np.testing.assert_allclose(rows(res["bce-nll"], "right"), bce, rtol=1e-12)
    assert all(c.ok for c in results)


def test_check_fails_where_bce_clamps(cli):
    results = by_name(lossctl.check(probs=[0.0, 0.4], target=[1, 0]))
    assert not results["bce-nll"].ok
    assert results["bce-nll"].rows[0].left == 100.0 and results["bce-nll"].rows[0].right == np.inf
    out = cli("check", "--probs", "[0.0, 0.4]", "--target", "[1, 0]", "-f", "plain", code=1).stdout
    assert "bce-nll\tFAIL" in out


def test_check_cli_formats(cli, rng):
    x = rng.normal(size=(N, 2))
    y = rng.integers(0, 2, size=N)
    args = ("check", "--logits", json.dumps(x.tolist()), "--target", json.dumps(y.tolist()))
    out = json.loads(cli(*args, "-f", "json").stdout)
    assert out["ok"] is True
    assert {c["check"] for c in out["checks"]} == {"ce-nll", "onehot-index", "bce-nll", "decompose", "ce-grad"}
    assert all(c["skipped"] is None for c in out["checks"])
    plain = cli(*args, "-f", "plain").stdout.splitlines()
    assert [ln.split("\t")[:2] for ln in plain] == [[n, "ok"] for n in ("ce-nll", "onehot-index", "bce-nll",
                                                                          "decompose", "ce-grad")]
    table = cli(*args, "-f", "table", env={"COLUMNS": "200"}).stdout
    assert f"{N}/{N} pass" in table


def test_check_probs_out_of_range_is_an_input_error(cli):
    res = cli("check", "--probs", "[0.5, 1.5]", "--target", "[1, 0]", code=2)
    assert "--probs" in res.stderr and "1.5" in res.stderr


def test_check_errors_name_probs_and_bundle_weight_is_noted(cli, tmp_path):
    res = cli("check", "--probs", str(tmp_path / "missing.npy"), "--target", "[1, 0]", code=2)
    assert res.stderr.startswith("lossctl: error: --probs")
    p, y = np.array([0.3, 0.8, 0.6]), np.array([1, 0, 1])
    np.savez(tmp_path / "b.npz", probs=p, target=y, weight=np.array([1.0, 2.0]))
    out = json.loads(cli("check", "--from", str(tmp_path / "b.npz"), "-f", "json").stdout)
    bce = next(c for c in out["checks"] if c["check"] == "bce-nll")
    want = F.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y).double(), reduction="none")
    np.testing.assert_allclose([r["bce"] for r in bce["rows"]], want.numpy(), rtol=1e-12)
    assert any("weight given is not used" in n and "`lossctl decompose --weight`" in n for n in bce["notes"])


def test_binary_identity_takes_whole_number_float_labels(cli):
    for target in ("[1.0, 0.0]", "[1, 0]"):
        res = cli("check", "--probs", "[0.7, 0.2]", "--target", target, "-f", "json")
        checks = {c["check"]: c for c in json.loads(res.stdout)["checks"]}
        assert checks["bce-nll"]["skipped"] is None and checks["bce-nll"]["ok"]


@pytest.mark.parametrize(("weight", "torch_gives"), [("[0, 0, 0, 0]", "nan"), ("[3, -1, 0, 0]", "±inf")])
def test_check_refuses_class_weights_summing_to_zero_as_ce_does(cli, weight, torch_gives):
    """The gradient identity divides by sum_n w_{y_n}: where that is 0 torch's mean is nan or an infinity."""
    root = Path(__file__).resolve().parents[1] / "examples"
    x, y = np.load(root / "logits.npy"), np.load(root / "targets.npy")
    w = np.array(json.loads(weight), dtype=x.dtype)
    assert w[y].sum() == 0
    got = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y).long(), weight=torch.from_numpy(w))
    assert np.isnan(float(got)) if torch_gives == "nan" else np.isinf(float(got))
    args = ("--logits", root / "logits.npy", "--target", root / "targets.npy", "--weight", weight)
    want = (f"lossctl: error: --weight: the targets' class weights sum to 0: the weighted mean has no denominator "
            f"(torch returns {torch_gives} here)\n")
    assert cli("check", *args, code=2).stderr == want
    assert cli("ce", *args, code=2).stderr == want


def masked_logits(rng, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Logits with one -inf (a mask, as README allows) off the target class, or on it."""
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    x[1, (y[1] + 1) % C if where == "off-target" else y[1]] = -np.inf
    return x, y


def test_check_masked_logit_off_the_target(rng):
    """-inf where the target is 0: CE = NLL and CE = H + KL hold (scipy's 0 log 0 = 0); torch's one-hot CE is
    0 * -inf = nan on that row, so that identity fails in torch, with a nan residual and a note saying why."""
    x, y = masked_logits(rng, "off-target")
    res = by_name(lossctl.check(logits=x, target=y))
    expected = -sp.log_softmax(x, axis=1)[np.arange(N), y]
    assert np.isfinite(expected).all()
    for name in ("ce-nll", "decompose", "ce-grad"):
        assert res[name].ok and res[name].max_residual <= 1e-10, name
    np.testing.assert_allclose(rows(res["decompose"], "left"), expected, rtol=1e-12)
    with np.errstate(invalid="ignore"):  # the reference's CE column is 0 * -inf there too; its KL is not
        kl = references(x, np.eye(C)[y])[2]
    np.testing.assert_allclose(rows(res["decompose"], "kl"), kl, rtol=1e-12)
    assert any("kl_div gives nan" in n for n in res["decompose"].notes)
    torch_onehot = F.cross_entropy(torch.from_numpy(x), F.one_hot(torch.from_numpy(y), C).double(),
                                   reduction="none").numpy()
    assert np.isnan(torch_onehot[1]) and np.isfinite(np.delete(torch_onehot, 1)).all()
    onehot = res["onehot-index"]
    assert [r.ok for r in onehot.rows] == [i != 1 for i in range(N)]
    assert np.isnan(onehot.rows[1].left) and np.isnan(onehot.rows[1].residual) and np.isnan(onehot.max_residual)
    assert any("0 * -inf = nan" in n and "(1)" in n for n in onehot.notes)


def test_check_masked_logit_on_the_target_agrees_at_infinity(rng):
    """-inf at the target class: every CE form is +inf in torch, and equal infinities agree (residual 0)."""
    x, y = masked_logits(rng, "on-target")
    assert np.isposinf(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none")[1].item())
    res = by_name(lossctl.check(logits=x, target=y))
    for name in ("ce-nll", "onehot-index", "decompose"):
        assert res[name].ok and res[name].rows[1].left == np.inf and res[name].rows[1].residual == 0.0, name


def test_check_cli_masked_logits(cli, rng, tmp_path):
    x, y = masked_logits(rng, "off-target")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = cli("check", "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", "-f", "plain", code=1).stdout
    verdicts = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}
    assert verdicts["onehot-index"] == ["FAIL", "nan"]
    assert verdicts["decompose"][0] == verdicts["ce-nll"][0] == "ok"
    table = cli("check", "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", "-f", "table", code=1,
                env={"COLUMNS": "400"}).stdout
    assert "note (onehot-index): torch's CE with probability targets is nan on 1 of 6 rows (1)" in table
    cli("decompose", "--logits", tmp_path / "x.npy", "--target", tmp_path / "y.npy", code=0)


def test_decompose_probability_target_nan_only_where_torch_gives_nan():
    x = np.array([[0.0, -np.inf, 1.0], [0.0, 1.0, 2.0], [-np.inf, 0.0, 1.0]])
    q = np.array([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5], [0.5, 0.2, 0.3]])
    torch_ce = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(q), reduction="none").numpy()
    assert np.isnan(torch_ce[0]) and np.isposinf(torch_ce[2])
    res = lossctl.decompose(logits=x, target=q)
    with np.errstate(invalid="ignore"):
        _, h, kl = references(x, q)
    np.testing.assert_allclose(rows(res, "entropy"), h, rtol=1e-12)
    np.testing.assert_allclose(rows(res, "kl"), kl, rtol=1e-12)
    assert [r.ok for r in res.rows] == [False, True, True]
    assert np.isnan(res.rows[0].residual) and res.rows[2].residual == 0.0
    assert any("nan on 1 of 3 rows (0)" in n for n in res.notes)


@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_decompose_refuses_every_target_ignored(cli, ignore_index):
    """Nothing left to check is an input error, as ce's mean of nothing is (torch's mean there is nan)."""
    x, y = np.zeros((3, 4)), [ignore_index] * 3
    torch_mean = F.cross_entropy(torch.from_numpy(x), torch.tensor(y), ignore_index=ignore_index)
    assert np.isnan(torch_mean.item())
    args = ("--logits", json.dumps(x.tolist()), "--target", json.dumps(y), "--ignore-index", str(ignore_index))
    res = cli("decompose", *args, code=2)
    assert res.stdout == "" and res.stderr == ("lossctl: error: --target: all 3 targets equal --ignore-index: no "
                                               "sample is left to check; check the targets or --ignore-index\n")
    assert cli("ce", *args, code=2).stderr.startswith("lossctl: error: --target: all 3 targets equal --ignore-index")
    with pytest.raises(LossctlError, match="no sample is left"):
        lossctl.decompose(logits=x, target=y, ignore_index=ignore_index)
    kept = lossctl.decompose(logits=x, target=[ignore_index, 1, ignore_index], ignore_index=ignore_index)
    assert [r.label for r in kept.rows] == ["1"] and kept.ok and kept.rows[0].left == pytest.approx(np.log(4))


def test_check_takes_integer_one_hot_rows_as_probabilities_as_ce_does(cli, rng):
    """Integers of the logits' shape are one-hot distributions to `lossctl ce`; check reads them the same way."""
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    onehot = np.eye(C, dtype=np.int64)[y]
    res = by_name(lossctl.check(logits=x, target=onehot))
    assert res["ce-nll"].skipped and res["onehot-index"].skipped
    expected = -sp.log_softmax(x, axis=1)[np.arange(N), y]
    assert res["decompose"].ok and res["ce-grad"].ok
    np.testing.assert_allclose(rows(res["decompose"], "left"), expected, rtol=1e-12)
    out = cli("check", "--logits", json.dumps(x.tolist()), "--target", json.dumps(onehot.tolist()), "-f", "plain")
    assert [ln.split("\t")[:2] for ln in out.stdout.splitlines()][3:] == [["decompose", "ok"], ["ce-grad", "ok"]]


def test_check_takes_unbatched_logits_with_one_class_index_as_ce_does(cli, rng):
    """(C) logits with a () target are one sample to torch and to `lossctl ce`, not binary logits."""
    x = rng.normal(size=C)
    res = by_name(lossctl.check(logits=x, target=np.array(2)))
    expected = -sp.log_softmax(x)[2]
    for name in ("ce-nll", "onehot-index", "decompose"):
        assert res[name].ok and len(res[name].rows) == 1, name
        assert res[name].rows[0].left == pytest.approx(expected, rel=1e-12)
    assert res["ce-grad"].ok and res["bce-nll"].skipped
    out = cli("check", "--logits", json.dumps(x.tolist()), "--target", "2", "-f", "plain").stdout
    assert [ln.split("\t")[1] for ln in out.splitlines()] == ["ok", "ok", "skipped", "ok", "ok"]



def test_check_takes_unbatched_logits_with_a_target_distribution_as_ce_and_decompose_do(cli, rng):
    """(C) logits with a (C) distribution are one sample to torch, `lossctl ce` and `lossctl decompose`; check said
    no identity applies. (C) 0/1 labels stay binary logits with their labels."""
    x = rng.normal(size=C)
    q = rng.dirichlet(np.ones(C))
    res = by_name(lossctl.check(logits=x, target=q))
    assert res["ce-nll"].skipped and res["onehot-index"].skipped and res["bce-nll"].skipped
    logits = torch.tensor(x, requires_grad=True)
    ce = F.cross_entropy(logits, torch.tensor(q))
    ce.backward()
    entropy = scipy.stats.entropy(q)
    assert res["decompose"].ok and res["decompose"].rows[0].left == pytest.approx(float(ce.detach()), rel=1e-12)
    assert res["decompose"].rows[0].extra["entropy"] == pytest.approx(entropy, rel=1e-12)
    assert res["ce-grad"].ok and len(res["ce-grad"].rows) == 1
    worst = int(res["ce-grad"].rows[0].extra["class"])
    assert res["ce-grad"].rows[0].left == pytest.approx(float(logits.grad[worst]), rel=1e-12)
    out = cli("check", "--logits", json.dumps(x.tolist()), "--target", json.dumps(q.tolist()), "-f", "plain").stdout
    assert [ln.split("\t")[1] for ln in out.splitlines()] == ["skipped", "skipped", "skipped", "ok", "ok"]
    labels = by_name(lossctl.check(logits=x, target=np.eye(C)[1]))
    assert labels["bce-nll"].ok and labels["decompose"].skipped

def test_check_binary_identity_on_two_class_probability_rows_and_multilabel_probs(cli, rng):
    """The tutorial's rows [1 - p, p] given as (N, 2) probabilities with (N) labels; and one 0/1 label per
    probability (multi-label), as integers or whole-number floats alike."""
    p1 = rng.uniform(0.05, 0.95, size=N)
    y = rng.integers(0, 2, size=N)
    res = by_name(lossctl.check(probs=np.stack([1 - p1, p1], axis=1), target=y))
    bce = -(y * np.log(p1) + (1 - y) * np.log(1 - p1))
    assert res["bce-nll"].ok and not res["bce-nll"].skipped
    np.testing.assert_allclose(rows(res["bce-nll"], "left"), bce, rtol=1e-12)
    np.testing.assert_allclose(rows(res["bce-nll"], "right"), bce, rtol=1e-12)
    p, labels = rng.uniform(0.05, 0.95, size=(N, 3)), rng.integers(0, 2, size=(N, 3))
    want = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).reshape(-1)
    for target in (labels, labels.astype(float)):
        res = by_name(lossctl.check(probs=p, target=target))
        assert res["bce-nll"].ok and len(res["bce-nll"].rows) == N * 3
        np.testing.assert_allclose(rows(res["bce-nll"], "left"), want, rtol=1e-12)
    out = cli("check", "--probs", "[[0.3, 0.7], [0.8, 0.2]]", "--target", "[1, 0]", "-f", "plain").stdout
    assert out.splitlines()[2].split("\t")[:2] == ["bce-nll", "ok"]
    # rows that are not [1 - p, p]: both sides read column 1 only, and the note says so
    (note,) = by_name(lossctl.check(probs=[[0.3, 0.7], [0.5, 0.2]], target=[1, 0]))["bce-nll"].notes
    assert note.endswith("--probs: rows do not sum to 1 (first: row [1] sums to 0.7); both sides read column 1 "
                         "only, as 1 - p and p")


@pytest.mark.parametrize("role, scores", [("probs", [0.3, 0.7]), ("logits", [0.3, 2.0])])
def test_check_binary_identity_on_one_two_class_sample_with_its_label(cli, role, scores):
    """(2) scores with one label are one two-class sample, as nll --probs and ce read them: --probs said 'shape ()
    does not match --probs (2,)', and (2) logits skipped bce-nll."""
    p = torch.tensor(scores, dtype=torch.float64)
    p1 = p[1] if role == "probs" else torch.softmax(p, 0)[1]
    expected = float(F.binary_cross_entropy(p1, torch.tensor(1.0, dtype=torch.float64)))
    (row,) = by_name(lossctl.check(**{role: scores}, target=1))["bce-nll"].rows
    assert row.ok and row.left == pytest.approx(expected, rel=1e-12) and row.right == pytest.approx(expected, rel=1e-12)
    out = cli("check", f"--{role}", json.dumps(scores), "--target", "1", "-f", "plain").stdout
    assert out.splitlines()[2].split("\t")[:2] == ["bce-nll", "ok"]


TWICE = ("lossctl: warning: --logits look like probabilities (every value in [0, 1] and every row sums to 1 within "
         "1e-06): softmax would be applied twice; ")


def test_decompose_and_check_warn_of_probabilities_as_logits_as_ce_does(cli, rng):
    """The identities hold on any logits, so the numbers stay; the warning is ce's."""
    p = rng.dirichlet(np.ones(C), size=N)
    t = rng.integers(0, C, N)
    lit = json.dumps(p.tolist()), json.dumps(t.tolist())
    ran = cli("decompose", "--logits", lit[0], "--target", lit[1], "-f", "json")
    assert ran.stderr == TWICE + "pass the raw logits\n"
    doc = json.loads(ran.stdout)
    want = F.cross_entropy(torch.from_numpy(p), torch.from_numpy(t), reduction="none").numpy()
    np.testing.assert_allclose([r["ce"] for r in doc["rows"]], want, rtol=1e-12)
    assert doc["ok"] and doc["warnings"] == [ran.stderr[len("lossctl: warning: "):-1]]
    ran = cli("check", "--logits", lit[0], "--target", lit[1], "-f", "plain")
    assert ran.stderr == TWICE + "pass the raw logits\n"  # once, though decompose runs inside check
    # two classes: check takes them as binary probabilities too
    two = rng.dirichlet(np.ones(2), size=N)
    ran = cli("check", "--logits", json.dumps(two.tolist()), "--target", json.dumps((t % 2).tolist()), "-f", "json")
    assert ran.stderr == TWICE + "pass them as --probs, or pass the raw logits\n"
    assert json.loads(ran.stdout)["ok"]
    # sigmoid outputs as binary logits
    ran = cli("check", "--logits", json.dumps(np.linspace(0.02, 0.98, 20).tolist()), "--target",
              json.dumps([0, 1] * 10), "-f", "plain")
    assert ran.stderr.startswith("lossctl: warning: --logits look like sigmoid outputs (every value in [0, 1]")
    # real logits: silent
    x = rng.normal(size=(N, C))
    assert cli("decompose", "--logits", json.dumps(x.tolist()), "--target", lit[1]).stderr == ""
    assert cli("check", "--logits", json.dumps(x.tolist()), "--target", lit[1]).stderr == ""


def test_a_failed_check_says_why_on_stderr(cli):
    """check and decompose exited 1 with nothing on stderr: with -f plain (or stdout kept by a pipeline) a CI log
    showed no reason. Now one line names each failed identity, its failing rows and the largest residual, which
    is the float32 rounding of CE against H + KL computed here from the formula in float64."""
    x = torch.from_numpy(np.load(EX / "logits.npy"))
    q = torch.tensor(json.loads((EX / "target_probs.json").read_text()), dtype=torch.float32)
    ce = F.cross_entropy(x, q, reduction="none").double()
    qd, logp = q.double(), torch.log_softmax(x, 1).double()
    h_kl = -(qd * torch.log(qd)).nansum(1) + (qd * (torch.log(qd) - logp)).nansum(1)
    ran = cli("decompose", "--logits", EX / "logits.npy", "--target", EX / "target_probs.json", "--atol", "0",
              "--rtol", "0", "-f", "plain", code=1)
    line = ran.stderr.splitlines()
    assert len(line) == 1 and line[0].startswith("lossctl: failed: decompose: ")
    failing = re.search(r"decompose: (\d+) of 8 rows differ by more than atol 0 \+ rtol 0 x \|entropy\+kl\| "
                        r"\(largest residual ([0-9.e+-]+)\)$", line[0])
    assert failing is not None
    assert 0 < int(failing.group(1)) <= 8
    assert 0 < float(failing.group(2)) < 1e-6 and float((ce - h_kl).abs().max()) < 1e-6
    assert len(ran.stdout.splitlines()) == 8
    ok = cli("check", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "-f", "plain")
    assert ok.stderr == ""
    ran = cli("check", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "--atol", "0", "--rtol", "0",
              "-f", "json", code=1)
    assert ran.stderr.startswith("lossctl: failed: ") and ran.stderr.count("\n") == 1
    failed = [c["check"] for c in json.loads(ran.stdout)["checks"] if not c["ok"]]
    assert failed and all(f"{name}: " in ran.stderr for name in failed)
