"""`lossctl calibration` on realistic data against torchmetrics' calibration metrics: in memory, streamed, from
several files, and from --partials merged; every output format, the plot, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REALISTIC, save, tol

from lossctl import stream

pytest.importorskip("torchmetrics")

DATA = REALISTIC
F32 = tol(np.float32)  # torchmetrics bins float32 confidences and sums in float32
NORMS = ("l1", "l2", "max")
KEYS = {"l1": "ece", "l2": "rmsce", "max": "mce"}


def _data(name: str) -> dict[str, np.ndarray]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture
def digits(tmp_path) -> dict[str, Path]:
    d = _data("digits_logreg.npz")
    return {k: save(d[k], tmp_path / f"digits_{k}.npy") for k in ("logits", "probs", "target")}


@pytest.fixture
def cancer(tmp_path) -> dict[str, Path]:
    d = _data("breast_cancer_logreg.npz")
    return {k: save(d[k], tmp_path / f"cancer_{k}.npy") for k in ("logits", "probs", "target")}


def torchmetrics_error(scores: np.ndarray, target: np.ndarray, norm: str, bins: int = 15,
                       ignore_index: int | None = None) -> float:
    """The torchmetrics module on the same arrays: multiclass for (N, C, d...) scores with (N, d...) targets,
    binary for scores and targets of one shape."""
    import torch
    from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

    preds, t = torch.from_numpy(np.ascontiguousarray(scores)), torch.from_numpy(target.astype(np.int64))
    if scores.ndim == target.ndim + 1:
        metric = MulticlassCalibrationError(num_classes=scores.shape[1], n_bins=bins, norm=norm,
                                            ignore_index=ignore_index)
    else:
        metric = BinaryCalibrationError(n_bins=bins, norm=norm, ignore_index=ignore_index)
    return float(metric(preds, t))


def run_json(cli, *args: str) -> dict:
    return json.loads(cli("calibration", *map(str, args), "-f", "json").stdout)


def assert_matches(doc: dict, scores: np.ndarray, target: np.ndarray, bins: int = 15,
                   ignore_index: int | None = None) -> None:
    for norm in NORMS:
        np.testing.assert_allclose(doc[KEYS[norm]], torchmetrics_error(scores, target, norm, bins, ignore_index),
                                   **F32, err_msg=norm)


@pytest.mark.parametrize("bins", [15, 10])
@pytest.mark.parametrize("role", ["logits", "probs"])
def test_multiclass_equals_torchmetrics(cli, digits, role, bins):
    doc = run_json(cli, f"--{role}", digits[role], "--target", digits["target"], "--bins", bins)
    assert doc["task"] == "multiclass" and doc["count"] == 540 and doc["n_bins"] == bins
    assert_matches(doc, np.load(digits[role]), np.load(digits["target"]), bins)
    assert doc["value"] == doc["ece"]
    assert {"lower", "upper", "count", "confidence", "accuracy", "gap"} == set(doc["bins"][0])
    assert sum(b["count"] for b in doc["bins"]) == 540


@pytest.mark.parametrize("role", ["probs", "logits"])
def test_binary_equals_torchmetrics(cli, cancer, role):
    # torchmetrics applies the sigmoid itself to scores outside [0, 1], so the logits go in as they are.
    doc = run_json(cli, f"--{role}", cancer[role], "--target", cancer["target"])
    assert doc["task"] == "binary" and doc["count"] == 171
    assert_matches(doc, np.load(cancer[role]), np.load(cancer["target"]))


@pytest.mark.parametrize("norm", NORMS)
def test_norm_chooses_the_value(cli, cancer, norm):
    doc = run_json(cli, "--probs", cancer["probs"], "--target", cancer["target"], "--norm", norm)
    p, t = np.load(cancer["probs"]), np.load(cancer["target"])
    np.testing.assert_allclose(doc["value"], torchmetrics_error(p, t, norm), **F32)
    plain = cli("calibration", "--probs", cancer["probs"], "--target", cancer["target"], "--norm", norm).stdout
    np.testing.assert_allclose(float(plain), torchmetrics_error(p, t, norm), **F32)


@pytest.mark.parametrize("threads", ["1", "3"])
def test_streamed_equals_in_memory_and_torchmetrics(cli, digits, monkeypatch, threads):
    whole = run_json(cli, "--logits", digits["logits"], "--target", digits["target"], "--no-stream")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 400)  # 10 float32 logits a row: 10 rows a chunk, 54 chunks
    streamed = run_json(cli, "--logits", digits["logits"], "--target", digits["target"], "--stream",
                        "--threads", threads)
    assert any("streamed in 54 chunks of up to 10 rows" in n for n in streamed["notes"]), streamed["notes"]
    for key in ("ece", "rmsce", "mce"):
        np.testing.assert_allclose(streamed[key], whole[key], rtol=1e-12, atol=1e-15)
    assert [b["count"] for b in streamed["bins"]] == [b["count"] for b in whole["bins"]]
    assert_matches(streamed, np.load(digits["logits"]), np.load(digits["target"]))


def test_one_streamed_chunk_is_said_in_the_singular(cli, digits):
    doc = run_json(cli, "--logits", digits["logits"], "--target", digits["target"], "--stream", "--threads", "1")
    assert any(n.startswith("streamed in 1 chunk of up to ") and " rows on 1 thread; per-bin sums " in n
               for n in doc["notes"]), doc["notes"]


def test_streamed_csv_binary(cli, cancer, tmp_path, monkeypatch):
    pytest.importorskip("pandas")  # the chunked CSV reader
    p, t = np.load(cancer["probs"]), np.load(cancer["target"])
    monkeypatch.setattr(stream, "CHUNK_BYTES", 8 * 16)
    doc = run_json(cli, "--probs", save(p, tmp_path / "p.csv"), "--target", save(t.astype(np.int64),
                                                                                     tmp_path / "t.csv"), "--stream")
    assert any(n.startswith("streamed in") for n in doc["notes"])
    assert_matches(doc, p, t)


def test_streamed_error_names_the_row_of_the_whole_file(cli, digits, tmp_path, monkeypatch):
    t = np.load(digits["target"]).copy()
    t[123] = 10
    monkeypatch.setattr(stream, "CHUNK_BYTES", 400)
    ran = cli("calibration", "--logits", digits["logits"], "--target", save(t, tmp_path / "bad.npy"), "--stream",
              code=2)
    assert "class index 10 at index [123] is out of range [0, 10)" in ran.stderr
    assert ran.stderr.count("\n") == 1


@pytest.mark.parametrize("task, said", [
    ("auto", "--target ({t}): shape (540, 10) with scores (540, 10) is neither binary"),
    ("multiclass", "--target ({t}): shape (540, 10) does not match --probs (540, 10)"),
])
def test_a_streamed_file_of_no_task_is_named_by_its_whole_shape(cli, digits, tmp_path, monkeypatch, task, said):
    """(N, C) scores beside (N, C) labels give no task but binary: the error names the files' shapes, not a
    chunk's (it said (5, 10), the rows of one chunk)."""
    p = np.load(digits["probs"])[:540]
    y = (np.arange(540 * 10).reshape(540, 10) % 3 == 0).astype(np.float32)
    t = save(y, tmp_path / "y.npy")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 400)
    ran = cli("calibration", "--probs", save(p, tmp_path / "p.npy"), "--target", t, "--task", task, "--stream",
              code=2)
    assert said.format(t=t) in ran.stderr
    assert ran.stderr.count("\n") == 1
    doc = run_json(cli, "--probs", tmp_path / "p.npy", "--target", t, "--task", "binary", "--stream")
    assert any(n.startswith("streamed in") for n in doc["notes"])  # the binary task streams them
    assert_matches(doc, p, y)


def test_a_from_bundle_of_rows_streams(cli, digits, tmp_path, monkeypatch):
    """--from FILE.parquet was read whole, every column: 4.6 GB of RSS for a 430 MB file that streams at 360 MB
    given as --logits FILE:logits --target FILE:target. Its columns now stream as those do."""
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    x, t = np.load(digits["logits"]), np.load(digits["target"])
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1]),
                             "target": pa.array(t)}), path, row_group_size=50)
    monkeypatch.setattr(stream, "CHUNK_BYTES", 400)
    doc = run_json(cli, "--from", path, "--stream")
    assert any(n.startswith("streamed in") for n in doc["notes"]), doc["notes"]
    assert_matches(doc, x, t)


def test_partials_of_two_halves_merge_to_the_whole(cli, digits, tmp_path):
    x, t = np.load(digits["logits"]), np.load(digits["target"])
    docs = []
    for i, rows in enumerate((slice(0, 200), slice(200, None))):
        ran = cli("calibration", "--logits", save(x[rows], tmp_path / f"x{i}.npy"), "--target",
                  save(t[rows], tmp_path / f"t{i}.npy"), "--partials")
        doc = json.loads(ran.stdout)
        assert doc["kind"] == "lossctl-calibration-partial"
        docs.append(tmp_path / f"part{i}.json")
        docs[-1].write_text(ran.stdout)
    merged = json.loads(cli("merge", *docs, "-f", "json").stdout)
    assert merged["count"] == 540
    assert_matches(merged, x, t)
    whole = run_json(cli, "--logits", digits["logits"], "--target", digits["target"])
    np.testing.assert_allclose(merged["ece"], whole["ece"], rtol=1e-12)


def test_merge_refuses_calibration_with_loss_partials(cli, cancer, tmp_path):
    cal = cli("calibration", "--probs", cancer["probs"], "--target", cancer["target"], "--partials").stdout
    loss = cli("bce", "--probs", cancer["probs"], "--target", cancer["target"], "--partials").stdout
    (tmp_path / "c.json").write_text(cal)
    (tmp_path / "l.json").write_text(loss)
    ran = cli("merge", tmp_path / "c.json", tmp_path / "l.json", code=2)
    assert "cannot merge calibration partials with loss partials" in ran.stderr


def test_several_files_give_one_row_each_and_the_exact_total(cli, digits, tmp_path):
    x, t = np.load(digits["logits"]), np.load(digits["target"])
    for i, rows in enumerate((slice(0, 100), slice(100, 350), slice(350, None))):
        save(x[rows], tmp_path / f"part{i}_x.npy")
        save(t[rows], tmp_path / f"part{i}_t.npy")
    doc = run_json(cli, "--logits", str(tmp_path / "part*_x.npy"), "--target", str(tmp_path / "part*_t.npy"))
    assert [Path(f["file"]).name for f in doc["files"]] == ["part0_x.npy", "part1_x.npy", "part2_x.npy"]
    for f, rows in zip(doc["files"], (slice(0, 100), slice(100, 350), slice(350, None)), strict=True):
        np.testing.assert_allclose(f["ece"], torchmetrics_error(x[rows], t[rows], "l1"), **F32)
    assert doc["total"]["count"] == 540
    assert_matches(doc["total"], x, t)
    plain = cli("calibration", "--logits", str(tmp_path / "part*_x.npy"), "--target",
                str(tmp_path / "part*_t.npy")).stdout.split()
    assert len(plain) == 4
    np.testing.assert_allclose(float(plain[-1]), torchmetrics_error(x, t, "l1"), **F32)


@pytest.mark.parametrize("extra", [(), ("--partials",)])
def test_several_files_of_two_tasks_give_no_total(cli, tmp_path, extra):
    """Binary scores beside multiclass ones: their bins were added into one error (0.26 here), where merge refuses
    partials of two tasks."""
    save(np.array([0.2, 0.9, 0.6]), tmp_path / "binary.npy")
    save(np.array([[0.2, 0.8], [0.6, 0.4]]), tmp_path / "multi.npy")
    res = cli("calibration", "--probs", str(tmp_path / "binary.npy"), "--probs", str(tmp_path / "multi.npy"),
              "--target", "[0, 1, 1]", "--target", "[1, 0]", *extra, code=2)
    assert res.stdout == "" and res.stderr == (
        f"lossctl: error: --probs: {tmp_path / 'multi.npy'} is multiclass and {tmp_path / 'binary.npy'} binary: "
        "their bins do not add up to one calibration error\n")


def test_formats(cli, cancer):
    args = ("calibration", "--probs", cancer["probs"], "--target", cancer["target"])
    p, t = np.load(cancer["probs"]), np.load(cancer["target"])
    csv = cli(*args, "-f", "csv").stdout.splitlines()
    assert csv[0] == "lower,upper,count,confidence,accuracy,gap"
    rows = [line.split(",") for line in csv[1:]]
    assert len(rows) == 15 and sum(int(r[2]) for r in rows) == 171
    # the first bin by hand: samples with confidence in [0, 1/15), in float32 as torchmetrics decides
    first = p.astype(np.float32) < np.float32(1 / 15)
    assert int(rows[0][2]) == first.sum()
    np.testing.assert_allclose(float(rows[0][3]), p[first].mean(), rtol=1e-12)
    np.testing.assert_allclose(float(rows[0][4]), t[first].mean(), rtol=1e-12)
    table = cli(*args, "-f", "table").stdout
    for text in ("ECE (l1)", "RMSCE (l2)", "MCE (max)", "confidence", "accuracy", "[0.93, 1.00)"):
        assert text in table
    assert any(line.startswith("[0.00, 0.07)") and line.rstrip().endswith(".") for line in table.splitlines())


def test_plot_writes_a_png(cli, cancer, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "reliability.png"
    cli("calibration", "--probs", cancer["probs"], "--target", cancer["target"], "--plot", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probability_rows_warn_and_strict_refuses(cli, tmp_path):
    probs = save(np.array([[0.7, 0.2, 0.2], [0.1, 0.8, 0.1]]), tmp_path / "p.npy")
    target = save(np.array([0, 2]), tmp_path / "t.npy")
    ran = cli("calibration", "--probs", probs, "--target", target, "-f", "json")
    assert "rows do not sum to 1 (first: row [0] sums to 1.1)" in ran.stderr
    assert json.loads(ran.stdout)["warnings"] and json.loads(ran.stdout)["ece"] == pytest.approx((0.3 + 0.8) / 2)
    strict = cli("calibration", "--probs", probs, "--target", target, "--strict", code=2)
    assert strict.stderr.startswith("lossctl: error: --strict: --probs: rows do not sum to 1")
    assert strict.stdout == ""


BAD = [
    ("--target", "[0, 3]", "[[0.5, 0.5], [0.2, 0.8]]", "class index 3 at index [1] is out of range [0, 2)"),
    ("--target", "[0, 1, 1]", "[[0.5, 0.5], [0.2, 0.8]]", "does not match --probs (2, 2)"),
    ("--probs", "[0, 1]", "[0.5, 1.5]", "must be probabilities in [0, 1]; found 1.5 at index [1]"),
    ("--probs", "[0, 1]", "[0.5, NaN]", "nan at index [1]"),
    ("--target", "[0, NaN]", "[0.5, 0.7]", "nan at index [1]"),
]


@pytest.mark.parametrize(("option", "target", "probs", "text"), BAD, ids=[b[3][:24] for b in BAD])
def test_refusals_are_one_line_naming_the_option(cli, option, target, probs, text):
    ran = cli("calibration", "--probs", probs, "--target", target, code=2)
    assert ran.stderr.startswith(f"lossctl: error: {option}") and text in ran.stderr
    assert ran.stderr.count("\n") == 1 and ran.stdout == ""


@pytest.mark.parametrize(("extra", "option"), [(("--stream",), "--stream"), (("--partials",), "--partials")])
def test_quantile_bins_are_never_streamed_or_merged(cli, cancer, extra, option):
    ran = cli("calibration", "--probs", cancer["probs"], "--target", cancer["target"], "--binning", "quantile",
              *extra, code=2)
    assert ran.stderr.startswith(f"lossctl: error: {option}: quantile bins need every confidence")


def test_quantile_bins_hold_equal_counts(cli, cancer):
    doc = run_json(cli, "--probs", cancer["probs"], "--target", cancer["target"], "--binning", "quantile",
                   "--bins", "9")
    counts = [b["count"] for b in doc["bins"]]
    assert sum(counts) == 171 and max(counts) - min(counts) <= 1
    p, t = np.load(cancer["probs"]), np.load(cancer["target"])
    # ECE written out over the same bins: sum_b |sum(t) - sum(p)| / N
    edges = [b["lower"] for b in doc["bins"]] + [1.0]
    index = np.searchsorted(np.float32(edges), p.astype(np.float32), side="right") - 1
    ece = sum(abs(t[index == b].sum() - p[index == b].sum()) for b in range(9)) / 171
    np.testing.assert_allclose(doc["ece"], ece, rtol=1e-12)


def test_usage_errors(cli, cancer):
    base = ("calibration", "--probs", cancer["probs"], "--target", cancer["target"])
    assert "--bins: must be a whole number from 1 to 100000; got 0" in cli(*base, "--bins", "0", code=2).stderr
    assert "got 100001" in cli(*base, "--bins", "100001", code=2).stderr
    assert "--norm" in cli(*base, "--norm", "l3", code=2).stderr
    assert "--plot" in cli(*base, "--plot", "x.png", "--partials", code=2).stderr
    assert "--plot: writes .png or .svg files" in cli(*base, "--plot", "x.jpg", code=2).stderr
    assert "needs --logits or --probs" in cli("calibration", "--target", cancer["target"], code=2).stderr
    # 1-d scores named multiclass: the scores are at fault, not the targets that match them
    assert cli(*base, "--task", "multiclass", code=2).stderr == (
        f"lossctl: error: --probs ({cancer['probs']}): shape (171,) is not (N, C): multiclass calibration needs a "
        "score per class; 1-d scores of p(class 1) are binary (--task binary, or auto)\n")


SOFTMAX_TWICE = ("lossctl: warning: --logits look like probabilities (every value in [0, 1] and every row sums to 1 "
                 "within 1e-06): softmax would be applied twice")
SIGMOID_TWICE = "lossctl: warning: --logits look like sigmoid outputs (every value in [0, 1]"


@pytest.mark.parametrize("data", ["digits", "cancer"])
def test_probabilities_passed_as_logits_warn(cli, data, request, monkeypatch):
    files = request.getfixturevalue(data)
    expected = SOFTMAX_TWICE if data == "digits" else SIGMOID_TWICE
    ran = cli("calibration", "--logits", files["probs"], "--target", files["target"])
    assert ran.stderr.startswith(expected) and ran.stderr.count("\n") == 1
    # the ECE of the probabilities taken for logits: softmax (sigmoid) applied to them, as torchmetrics would to logits
    p = np.load(files["probs"])
    twice = np.exp(p) / np.exp(p).sum(axis=1, keepdims=True) if p.ndim == 2 else 1 / (1 + np.exp(-p))
    np.testing.assert_allclose(float(ran.stdout), torchmetrics_error(twice, np.load(files["target"]), "l1"), **F32)
    assert cli("calibration", "--logits", files["logits"], "--target", files["target"]).stderr == ""
    monkeypatch.setattr(stream, "CHUNK_BYTES", 8 * 50)  # chunks of 50 rows: the cancer's last one holds 21
    streamed = cli("calibration", "--logits", files["probs"], "--target", files["target"], "--stream")
    assert streamed.stderr.startswith(expected) and streamed.stderr.count("\n") == 1
    assert cli("calibration", "--logits", files["logits"], "--target", files["target"], "--stream").stderr == ""


def test_too_few_scores_in_0_1_prove_nothing(cli, tmp_path, monkeypatch):
    # 3 logits in [0, 1]: a real model's, as likely as not (see sanity_lint.SIGMOID_MIN_COUNT)
    assert cli("calibration", "--logits", "[0.2, 0.7, 0.9]", "--target", "[0, 1, 1]").stderr == ""
    probs = np.full(40, 0.6)
    probs[:3] = -0.5  # the first chunk of 20 rows has real logits: the rule about every score fails there
    monkeypatch.setattr(stream, "CHUNK_BYTES", 8 * 20)  # the second chunk alone would conclude it
    ran = cli("calibration", "--logits", save(probs, tmp_path / "x.npy"), "--target",
              save(np.ones(40), tmp_path / "y.npy"), "--stream")
    assert ran.stderr == ""


def test_binary_float64_confidences_are_binned_in_float64_as_torchmetrics_does(cli, tmp_path):
    """BinaryCalibrationError compares float64 scores in float64: a confident model's p = 1 - 1e-9 stays in the last
    bin there, where float32 would make it 1.0, a bin of its own."""
    d = _data("breast_cancer_logreg.npz")
    p = 1 / (1 + np.exp(-1.5 * d["logits"].astype(np.float64)))
    assert np.sum((p < 1) & (p.astype(np.float32) == 1)) == 4
    probs, target = save(p, tmp_path / "p.npy"), save(d["target"], tmp_path / "t.npy")
    doc = run_json(cli, "--probs", probs, "--target", target)
    for norm in NORMS:
        np.testing.assert_allclose(doc[KEYS[norm]], torchmetrics_error(p, d["target"], norm), rtol=1e-12, atol=0)
    assert len(doc["bins"]) == 15 and not any("confidence 1.0" in n for n in doc["notes"])


def test_classes_last_with_padding_equals_torchmetrics_and_the_axis_moved_by_hand(cli, tmp_path, monkeypatch):
    """gpt2_init's (N, L, C) logits with -100 padding: once refused (index -100 out of range, no --class-axis)."""
    d = _data("gpt2_init.npz")
    x, t = save(d["logits_nlc"], tmp_path / "x.npy"), save(d["labels_nl"], tmp_path / "t.npy")
    moved = save(np.ascontiguousarray(np.moveaxis(d["logits_nlc"], -1, 1)), tmp_path / "moved.npy")
    first = np.argwhere(d["labels_nl"] == -100)[0].tolist()
    refused = cli("calibration", "--logits", x, "--target", t, "--class-axis", "-1", code=2)
    assert refused.stderr == (f"lossctl: error: --target ({t}): class index -100 at index {first} is out of range "
                              "[0, 100); if -100 marks targets to leave out (padding), pass --ignore-index -100, as "
                              "torchmetrics' ignore_index\n")
    last = run_json(cli, "--logits", x, "--target", t, "--ignore-index", "-100", "--class-axis", "-1")
    by_hand = run_json(cli, "--logits", moved, "--target", t, "--ignore-index", "-100")
    kept = int((d["labels_nl"] != -100).sum())
    assert last["count"] == by_hand["count"] == kept < d["labels_nl"].size
    assert [b["count"] for b in last["bins"]] == [b["count"] for b in by_hand["bins"]]
    np.testing.assert_allclose(last["ece"], by_hand["ece"], rtol=1e-12)
    assert_matches(last, np.moveaxis(d["logits_nlc"], -1, 1), d["labels_nl"], ignore_index=-100)
    monkeypatch.setattr(stream, "CHUNK_BYTES", 32 * 100 * 4)  # one sequence a chunk: 4 chunks
    streamed = run_json(cli, "--logits", x, "--target", t, "--ignore-index", "-100", "--class-axis", "-1",
                        "--stream", "--threads", "2")
    assert any("streamed in 4 chunks" in n for n in streamed["notes"]), streamed["notes"]
    assert streamed["count"] == kept
    np.testing.assert_allclose(streamed["ece"], last["ece"], rtol=1e-12)


def test_partials_with_padding_merge_as_torchmetrics_and_only_with_the_same_ignore_index(cli, tmp_path):
    """gpt2_init's classes-last logits with -100 padding, in two shards: merged, torchmetrics' ignore_index value;
    a shard made with another --ignore-index (or none) left out other targets, so merge refuses it (it added it)."""
    d = _data("gpt2_init.npz")
    x, t = d["logits_nlc"], d["labels_nl"]
    half = len(x) // 2
    docs = []
    for i, rows in enumerate((slice(0, half), slice(half, None))):
        ran = cli("calibration", "--logits", save(np.ascontiguousarray(x[rows]), tmp_path / f"x{i}.npy"), "--target",
                  save(t[rows], tmp_path / f"t{i}.npy"), "--class-axis", "-1", "--ignore-index", "-100", "--partials")
        docs.append(tmp_path / f"part{i}.json")
        docs[-1].write_text(ran.stdout)
    merged = json.loads(cli("merge", *docs, "-f", "json").stdout)
    assert_matches(merged, np.moveaxis(x, -1, 1), t, ignore_index=-100)
    other = np.where(t[:half] == -100, 0, t[:half])
    ran = cli("calibration", "--logits", tmp_path / "x0.npy", "--target", save(other, tmp_path / "o.npy"),
              "--class-axis", "-1", "--partials")
    (tmp_path / "none.json").write_text(ran.stdout)
    refused = cli("merge", tmp_path / "none.json", docs[1], code=2)
    assert refused.stderr == ("lossctl: error: merge: cannot merge calibration partials whose ignore_index differ: "
                              "none and -100\n")


def test_segmentation_void_and_binary_padding_are_left_out_as_torchmetrics_does(cli, cancer, tmp_path):
    d = _data("segmentation_conv.npz")
    x, t = save(d["logits"], tmp_path / "x.npy"), save(d["target"], tmp_path / "t.npy")
    doc = run_json(cli, "--logits", x, "--target", t, "--ignore-index", "255")
    assert doc["count"] == int((d["target"] != 255).sum())
    assert_matches(doc, d["logits"], d["target"], ignore_index=255)
    y = np.load(cancer["target"]).astype(np.int64)
    y[::7] = -1
    p = np.load(cancer["probs"])
    binary = run_json(cli, "--probs", cancer["probs"], "--target", save(y, tmp_path / "y.npy"), "--ignore-index", "-1")
    assert binary["task"] == "binary" and binary["count"] == int((y != -1).sum())
    assert_matches(binary, p, y, ignore_index=-1)


def test_a_file_whose_every_target_is_ignored_is_named_among_several(cli, tmp_path):
    """Its row is nan, as torchmetrics gives; the warning once read as if the whole run had no samples."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(2)
    x0, x1, t1 = rng.standard_normal((4, 3)), rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    files = [save(x0, tmp_path / "x0.npy"), save(x1, tmp_path / "x1.npy"), save(np.full(4, -100), tmp_path / "t0.npy"),
             save(t1, tmp_path / "t1.npy")]
    ran = cli("calibration", "--logits", files[0], "--logits", files[1], "--target", files[2], "--target", files[3],
              "--ignore-index", "-100", "-f", "plain")
    want = multiclass_calibration_error(torch.from_numpy(x1).softmax(1), torch.from_numpy(t1), 3, n_bins=15).item()
    rows = ran.stdout.split()
    assert rows[0] == "nan" and float(rows[2]) == pytest.approx(want, rel=1e-6)
    assert ran.stderr == (f"lossctl: warning: {files[0]}: no samples: the calibration error is undefined (every target "
                          "ignored, or none given); the total counts nothing of it\n")
