"""lossctl.calibration against torchmetrics' calibration error and against the formulas written out in float64."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REALISTIC, ROOT, tol

from lossctl.calibration import (
    CalibrationPartial,
    calibration_inputs,
    calibration_partial,
    finish_calibration,
    probability_warnings,
    quantile_edges,
    reliability_lines,
)
from lossctl.errors import ShapeError, UsageError, ValueRangeError

NORMS = ("l1", "l2", "max")
BINS = (5, 10, 15)
F32 = tol(np.float32)  # torchmetrics' multiclass confidences are float32


def torchmetrics_ce(task: str, preds: np.ndarray, target: np.ndarray, n_bins: int, norm: str) -> float:
    """torchmetrics' functional calibration error on the same arrays (its own dtype rules apply)."""
    pytest.importorskip("torchmetrics")
    import torch
    from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

    p, t = torch.from_numpy(np.ascontiguousarray(preds)), torch.from_numpy(np.asarray(target, dtype=np.int64))
    if task == "binary":
        return float(binary_calibration_error(p, t, n_bins=n_bins, norm=norm))
    return float(multiclass_calibration_error(p, t, num_classes=preds.shape[1], n_bins=n_bins, norm=norm))


def ours(*, n_bins: int, norm: str, **inputs):
    confidence, correct, task = calibration_inputs(**inputs)
    return finish_calibration(calibration_partial(confidence, correct, bins=n_bins), norm=norm, task=task)


def by_hand(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> list[tuple[int, float, float]]:
    """(count, mean confidence, accuracy) per bin: [k/n, (k+1)/n), then the bin of confidences equal to 1."""
    c32 = confidence.astype(np.float32)
    rows = []
    for k in range(n_bins + 1):
        lo, hi = np.float32(k / n_bins), np.float32((k + 1) / n_bins)
        inside = (c32 == 1) if k == n_bins else (c32 >= lo) & (c32 < hi)
        n = int(inside.sum())
        rows.append((n, float(confidence[inside].mean()) if n else 0.0, float(correct[inside].mean()) if n else 0.0))
    return rows


def errors_by_hand(rows: list[tuple[int, float, float]]) -> dict[str, float]:
    total = sum(n for n, _, _ in rows)
    gaps = [(n / total, abs(a - c)) for n, c, a in rows if n]
    return {"l1": sum(w * g for w, g in gaps), "l2": math.sqrt(sum(w * g * g for w, g in gaps)),
            "max": max(g for _, g in gaps)}


@pytest.fixture
def multiclass_data(rng):
    logits = (rng.normal(size=(400, 6)) * 2.5).astype(np.float32)
    # Targets that agree with the argmax about 70% of the time, so the bins are neither all right nor all wrong.
    target = np.where(rng.random(400) < 0.7, logits.argmax(1), rng.integers(0, 6, 400))
    return logits, target


def softmax64(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64) - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", BINS)
@pytest.mark.parametrize("form", ["logits", "probs"])
def test_multiclass_matches_torchmetrics(multiclass_data, form, n_bins, norm):
    logits, target = multiclass_data
    scores = logits if form == "logits" else softmax64(logits)
    res = ours(n_bins=n_bins, norm=norm, target=target, **{form: scores})
    assert res.task == "multiclass" and res.count == 400
    np.testing.assert_allclose(res.value, torchmetrics_ce("multiclass", scores, target, n_bins, norm), **F32)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", BINS)
@pytest.mark.parametrize("form", ["logits", "probs"])
def test_binary_matches_torchmetrics(rng, form, n_bins, norm):
    logits = rng.normal(size=300) * 3.0
    target = (rng.random(300) < 1 / (1 + np.exp(-0.6 * logits))).astype(np.int64)
    scores = logits if form == "logits" else 1 / (1 + np.exp(-logits))
    res = ours(n_bins=n_bins, norm=norm, target=target, **{form: scores})
    assert res.task == "binary"
    # Float64 in, so torchmetrics' binary metric computes in float64 too.
    np.testing.assert_allclose(res.value, torchmetrics_ce("binary", scores, target, n_bins, norm), **tol(np.float64))


def test_binary_is_not_top_label():
    """torchmetrics' binary "accuracy" is the target and its confidence p: p=0.1, target 0 is |0 - 0.1|, not 0.1."""
    res = ours(n_bins=10, norm="l1", probs=np.array([0.1, 0.1]), target=np.array([0, 0]))
    np.testing.assert_allclose(res.ece, 0.1, rtol=1e-12)
    np.testing.assert_allclose(res.ece, torchmetrics_ce("binary", np.array([0.1, 0.1]), np.array([0, 0]), 10, "l1"),
                               rtol=1e-12)
    assert any("not the top-label" in n for n in res.notes)


EDGE_PROBS = {
    # Confidences of exactly 1.0, right and wrong: torchmetrics puts them in a slot past the last bin.
    "one": ([[1, 0, 0, 0], [0, 1, 0, 0], [0.9, 0.1, 0, 0], [0.55, 0.45, 0, 0], [1, 0, 0, 0]], [0, 0, 0, 1, 0]),
    # Maxima on the edges of 5 and 10 bins (exact in float32, where both libraries decide the bin).
    "edges": ([[0.4, 0.3, 0.3, 0], [0.6, 0.2, 0.2, 0], [0.8, 0.1, 0.1, 0], [0.5, 0.25, 0.25, 0],
               [0.7, 0.2, 0.1, 0], [0.3, 0.3, 0.2, 0.2], [0.9, 0.1, 0, 0], [0.4, 0.3, 0.3, 0]],
              [0, 0, 1, 0, 2, 1, 0, 0]),
    "single": ([[0.2, 0.7, 0.1, 0]], [1]),
    "all_correct": ([[0.2, 0.7, 0.1, 0], [0.25, 0.25, 0.5, 0], [0.05, 0.05, 0.05, 0.85]], [1, 2, 3]),
}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n_bins", (5, 10))
@pytest.mark.parametrize("case", sorted(EDGE_PROBS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_cases_match_torchmetrics(case, n_bins, norm, dtype):
    probs, target = (np.asarray(a) for a in EDGE_PROBS[case])
    probs = probs.astype(dtype)
    res = ours(n_bins=n_bins, norm=norm, probs=probs, target=target)
    np.testing.assert_allclose(res.value, torchmetrics_ce("multiclass", probs, target, n_bins, norm), **F32)
    # Binary, with the same confidences as p(class 1) and the outcomes as targets.
    p, y = probs.max(1), (probs.argmax(1) == target).astype(np.int64)
    res = ours(n_bins=n_bins, norm=norm, probs=p, target=y)
    np.testing.assert_allclose(res.value, torchmetrics_ce("binary", p, y, n_bins, norm), **F32)


def test_edges_and_one_go_where_torchmetrics_puts_them():
    conf = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.7], dtype=np.float32)
    part = calibration_partial(conf, np.ones(8, bool), bins=5)
    # [0, .2) [.2, .4) [.4, .6) [.6, .8) [.8, 1) and the slot of exactly 1.0; float32 0.7 sits on 0.7, in [.6, .8).
    np.testing.assert_array_equal(part.count, [1, 1, 1, 2, 1, 2])
    res = finish_calibration(part, task="binary")
    assert res.bins[-1]["lower"] == res.bins[-1]["upper"] == 1.0 and res.bins[-1]["count"] == 2
    assert any("confidence 1.0" in n for n in res.notes)


def test_empty_bins_are_none_and_add_nothing():
    conf, correct = np.array([0.05, 0.95, 0.97]), np.array([False, True, True])
    res = finish_calibration(calibration_partial(conf, correct, bins=10), norm="max", task="multiclass")
    assert len(res.bins) == 10  # no [1, 1] bin when no confidence is exactly 1
    empty = [b for b in res.bins if b["count"] == 0]
    assert len(empty) == 8 and all(b["confidence"] is b["accuracy"] is b["gap"] is None for b in empty)
    np.testing.assert_allclose(res.mce, 0.05, rtol=1e-12)  # max over filled bins only
    np.testing.assert_allclose(res.ece, (0.05 + abs(1 - 0.96) * 2) / 3, rtol=1e-12)


@pytest.mark.parametrize("n_bins", BINS)
def test_bins_and_errors_equal_the_formula_by_hand(multiclass_data, n_bins):
    logits, target = multiclass_data
    confidence, correct, _ = calibration_inputs(logits=logits, target=target)
    np.testing.assert_allclose(confidence, softmax64(logits).max(1), rtol=1e-12)
    rows = by_hand(confidence, correct, n_bins)
    partial = calibration_partial(confidence, correct, bins=n_bins)
    for norm, expected in errors_by_hand(rows).items():
        np.testing.assert_allclose(finish_calibration(partial, norm=norm, task="multiclass").value, expected,
                                   rtol=1e-12, atol=1e-15)
    res = finish_calibration(partial, task="multiclass")
    for b, (n, c, a) in zip(res.bins, rows, strict=False):
        assert b["count"] == n
        if n:
            np.testing.assert_allclose([b["confidence"], b["accuracy"], b["gap"]], [c, a, a - c], rtol=1e-12,
                                       atol=1e-15)
    assert sum(b["count"] for b in res.bins) == 400


def test_chunks_add_up_to_one_pass(multiclass_data):
    logits, target = multiclass_data
    whole = calibration_partial(*calibration_inputs(logits=logits, target=target)[:2], bins=15)
    parts = [calibration_partial(*calibration_inputs(logits=logits[s], target=target[s])[:2], bins=15)
             for s in (slice(0, 97), slice(97, 250), slice(250, None))]
    merged = parts[0] + parts[1] + parts[2]
    np.testing.assert_array_equal(merged.count, whole.count)
    np.testing.assert_allclose(merged.conf_sum, whole.conf_sum, rtol=1e-12)
    np.testing.assert_allclose(merged.acc_sum, whole.acc_sum, rtol=1e-12)
    for norm in NORMS:
        np.testing.assert_allclose(finish_calibration(merged, norm=norm, task="multiclass").value,
                                   finish_calibration(whole, norm=norm, task="multiclass").value, rtol=1e-12)
    # Partials travel as JSON between processes and machines.
    back = CalibrationPartial.from_dict(json.loads(json.dumps(merged.to_dict())))
    np.testing.assert_array_equal(back.count, merged.count)
    np.testing.assert_allclose(back.conf_sum, merged.conf_sum, rtol=1e-15)


def test_partials_over_other_bins_do_not_add():
    a = calibration_partial([0.5], [True], bins=10)
    with pytest.raises(UsageError, match="different bins") as err:
        a + calibration_partial([0.5], [True], bins=15)
    assert err.value.option == "--bins"
    with pytest.raises(UsageError):
        a + calibration_partial([0.5, 0.7], [True, False], edges=quantile_edges([0.5, 0.7], 10), binning="quantile")


@pytest.mark.parametrize("n, n_bins", [(400, 15), (401, 7), (30, 10)])
def test_quantile_bins_hold_equal_counts(rng, n, n_bins):
    confidence = rng.uniform(0.2, 0.999, n)
    correct = rng.random(n) < confidence
    edges = quantile_edges(confidence, n_bins)
    assert edges[0] == 0.0 and edges[-1] == 1.0 and len(edges) == n_bins + 1
    res = finish_calibration(calibration_partial(confidence, correct, edges=edges, binning="quantile"),
                             task="binary")
    counts = [b["count"] for b in res.bins]
    assert len(counts) == n_bins and sum(counts) == n
    assert all(abs(k - n / n_bins) <= 1 for k in counts)
    assert res.binning == "quantile" and any("quantile" in note for note in res.notes)
    # ECE in float64, written out: the bins are runs of the sorted confidences.
    order = np.argsort(confidence, kind="stable")
    c, y = confidence[order], correct[order].astype(np.float64)
    bounds = np.cumsum([0, *counts])
    ece = sum((hi - lo) / n * abs(y[lo:hi].mean() - c[lo:hi].mean()) for lo, hi in zip(bounds, bounds[1:],
                                                                                         strict=False) if hi > lo)
    np.testing.assert_allclose(res.ece, ece, rtol=1e-12)


@pytest.mark.parametrize("name, task", [("digits_logreg", "multiclass"), ("breast_cancer_logreg", "binary")])
@pytest.mark.parametrize("form", ["logits", "probs"])
@pytest.mark.parametrize("norm", NORMS)
def test_realistic_data_matches_torchmetrics(name, task, form, norm):
    data = np.load(realistic(name))
    target = data["target"]
    for n_bins in BINS:
        res = ours(n_bins=n_bins, norm=norm, target=target, **{form: data[form]})
        assert res.task == task and res.count == len(target)
        expected = torchmetrics_ce(task, data[form], target, n_bins, norm)
        np.testing.assert_allclose(res.value, expected, **F32)


def realistic(name: str) -> Path:
    """The shared realistic data sets (conftest.REALISTIC)."""
    path = REALISTIC / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def test_inputs_are_validated():
    with pytest.raises(ValueRangeError, match=r"class index 3 at index \[1\] is out of range \[0, 3\)") as err:
        calibration_inputs(probs=np.full((2, 3), 1 / 3), target=np.array([0, 3]))
    assert err.value.option == "--target"
    with pytest.raises(ValueRangeError, match=r"class index 2 at index \[0\]") as err:
        calibration_inputs(logits=np.array([0.3, -1.0]), target=np.array([2, 0]))
    assert err.value.option == "--target"
    with pytest.raises(ValueRangeError, match=r"\[0, 1\]; found 1.5 at index \[1\]") as err:
        calibration_inputs(probs=np.array([0.5, 1.5]), target=np.array([0, 1]))
    assert err.value.option == "--probs"
    with pytest.raises(ValueRangeError, match="nan") as err:
        calibration_inputs(probs=np.array([[0.5, np.nan]]), target=np.array([0]))
    assert err.value.option == "--probs"
    with pytest.raises(ValueRangeError, match="finite") as err:
        calibration_inputs(logits=np.array([[0.5, np.inf]]), target=np.array([0]))
    assert err.value.option == "--logits"
    with pytest.raises(ShapeError, match=r"expected \(2,\)") as err:
        calibration_inputs(logits=np.zeros((2, 3)), target=np.zeros(3, int), task="multiclass")
    with pytest.raises(ShapeError):
        calibration_inputs(logits=np.zeros((2, 3)), target=np.zeros((2, 3, 4), int))
    with pytest.raises(ShapeError, match="binary"):
        calibration_inputs(probs=np.full(3, 0.5), target=np.zeros(2, int))
    with pytest.raises(ValueRangeError, match="integers"):
        calibration_inputs(probs=np.full(2, 0.5), target=np.array([0.0, 0.5]))
    with pytest.raises(UsageError, match="not both"):
        calibration_inputs(logits=np.zeros(2), probs=np.zeros(2), target=np.zeros(2, int))
    with pytest.raises(UsageError) as err:
        calibration_inputs(probs=np.zeros(2), target=np.zeros(2, int), task="multilabel")
    assert err.value.option == "--task"
    with pytest.raises(UsageError) as err:
        calibration_partial([0.5], [True], bins=0)
    assert err.value.option == "--bins"
    with pytest.raises(UsageError) as err:
        finish_calibration(calibration_partial([0.5], [True]), norm="l3", task="binary")
    assert err.value.option == "--norm"
    for message in (str(e) for e in (err.value,)):
        assert "\n" not in message


def test_ties_go_to_the_first_maximum():
    confidence, correct, task = calibration_inputs(probs=np.array([[0.4, 0.4, 0.2], [0.3, 0.35, 0.35]]),
                                                   target=np.array([1, 2]))
    assert task == "multiclass" and not correct.any()  # torch.argmax picks classes 0 and 1
    np.testing.assert_allclose(confidence, [0.4, 0.35], rtol=1e-15)


@pytest.mark.parametrize("dtype, off, warned", [(np.float32, 5e-3, False), (np.float32, 5e-2, True),
                                                (np.float64, 5e-3, False), (np.float64, 5e-2, True)])
def test_rows_that_do_not_sum_to_one_warn(dtype, off, warned):
    """A model's probabilities may come from half precision: rows within 1e-2 of 1 pass, in any dtype."""
    probs = np.array([[0.5, 0.5], [0.3, 0.7 - off], [0.9, 0.1]], dtype=dtype)
    warnings = probability_warnings(probs)
    assert bool(warnings) == warned
    if warned:
        assert len(warnings) == 1 and "row [1]" in warnings[0] and f"{1 - off:.6g}" in warnings[0]
    assert probability_warnings(np.array([0.2, 0.9])) == []  # binary: one probability per sample


def test_no_samples_is_nan_with_a_warning():
    empty = calibration_partial(np.zeros(0), np.zeros(0, bool), bins=5)
    res = finish_calibration(empty, task="binary")
    assert math.isnan(res.value) and res.warnings
    assert res.to_dict()["ece"] is None
    json.dumps(res.to_dict(), allow_nan=False)


def test_result_to_dict_is_json(multiclass_data):
    logits, target = multiclass_data
    res = ours(n_bins=10, norm="l2", logits=logits, target=target)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["value"] == d["rmsce"] and d["norm"] == "l2" and d["n_bins"] == 10 and len(d["bins"]) == 10
    assert set(d["bins"][0]) == {"lower", "upper", "count", "confidence", "accuracy", "gap"}


def test_reliability_lines_draw_accuracy_against_the_diagonal():
    conf = np.array([0.05, 0.55, 0.55, 1.0])
    res = finish_calibration(calibration_partial(conf, np.array([False, True, True, True]), bins=4),
                             task="multiclass")
    lines = reliability_lines(res, width=20)
    assert len(lines) == 1 + 5  # header, 4 bins, the bin of confidence 1.0
    assert lines[2].endswith("-")  # empty [0.25, 0.5)
    bar = lines[3].split()[-1]  # [0.5, 0.75): accuracy 1, confidence 0.55
    assert len(bar) == 20 and bar.index("|") == 11 and set(bar) == {"#", "|"}
    bar = lines[1].split()[-1]  # [0, 0.25): accuracy 0, confidence 0.05
    assert bar == ".|" + "." * 18  # cell 1 of 20 holds [0.05, 0.10)
    assert lines[5].startswith("[1.00]")


def test_calibration_does_not_import_torch_or_matplotlib():
    import subprocess

    code = ("import sys, lossctl.calibration, lossctl.plot; "
            "print(sorted(m for m in ('torch', 'torchmetrics', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_writes_png_and_svg(tmp_path, multiclass_data, suffix, magic):
    pytest.importorskip("matplotlib")
    from lossctl.plot import plot_reliability

    logits, target = multiclass_data
    logits[0] = [30, 0, 0, 0, 0, 0]  # a bin of confidence 1.0 too
    res = ours(n_bins=10, norm="l1", logits=logits, target=target)
    path = plot_reliability(res, tmp_path / f"reliability{suffix}")
    assert path.stat().st_size > 1000 and path.read_bytes().startswith(magic)


def test_plot_refuses_other_formats(tmp_path):
    from lossctl.plot import plot_reliability

    with pytest.raises(UsageError, match="png or .svg") as err:
        plot_reliability(ours(n_bins=5, norm="l1", probs=np.array([0.5]), target=np.array([1])), tmp_path / "a.jpg")
    assert err.value.option == "--plot"


def test_plot_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    from lossctl.plot import plot_reliability

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    res = ours(n_bins=5, norm="l1", probs=np.array([0.5]), target=np.array([1]))
    with pytest.raises(UsageError) as err:
        plot_reliability(res, tmp_path / "a.png")
    assert err.value.option == "--plot"
    assert str(err.value) == "--plot: needs matplotlib: pip install 'lossctl[plot]'"
    assert not (tmp_path / "a.png").exists()
