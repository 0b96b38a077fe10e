"""Option values and edge results a reviewer found mishandled: each is one clear line (exit 2) or torch's number."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

import lossctl
from lossctl.errors import UsageError

X2 = "[[1.0, 2.0], [3.0, 1.0]]"


@pytest.mark.parametrize("args, line", [
    (["smooth-l1", "--input", "[1.0, 2.0]", "--target", "[1.5, 2.0]", "--beta", "nan"],
     "--beta: must be a number; got nan"),
    (["cosine-similarity", "--x1", "[[1.0, 2.0]]", "--x2", "[[2.0, 1.0]]", "--eps", "nan"],
     "--eps: must be a number; got nan"),
    (["focal", "--logits", X2, "--target", "[0, 1]", "--alpha", "nan"], "--alpha: must be a number; got nan"),
    (["focal", "--logits", X2, "--target", "[0, 1]", "--gamma", "nan"], "--gamma: must be a number; got nan"),
    (["ce", "--logits", X2, "--target", "[0, 1]", "--ignore-index", str(2**64)],
     f"--ignore-index: must fit in a 64-bit integer; got {2**64}"),
])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_nan_and_out_of_range_options_are_refused_on_both_backends(cli, args, line, backend):
    assert cli(*args, "--backend", backend, code=2).stderr == f"lossctl: error: {line}\n"


def test_an_infinite_option_where_torch_takes_one_still_computes(cli):
    got = cli("pairwise-distance", "--x1", "[[1.0, 2.0]]", "--x2", "[[1.5, 2.0]]", "--p", "inf", "-f", "plain")
    want = F.pairwise_distance(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.5, 2.0]]), p=math.inf).item()
    assert float(got.stdout) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("threads", ["0", "257", "100000"])
def test_threads_are_bounded(cli, threads):
    for cmd in (["ce", "--logits", "examples/logits.npy", "--target", "examples/targets.npy"],
                ["calibration", "--logits", "examples/logits.npy", "--target", "examples/targets.npy"]):
        ran = cli(*cmd, "--stream", "--threads", threads, code=2)
        assert ran.stderr == f"lossctl: error: --threads: must be from 1 to 256; got {threads}\n"
    with pytest.raises(UsageError):
        lossctl.compute("ce", logits=X2, target="[0, 1]", threads=int(threads))


def test_bins_are_bounded(cli):
    ran = cli("calibration", "--logits", "examples/logits.npy", "--target", "examples/targets.npy", "--bins",
              "99999999999999999999", code=2)
    assert ran.stderr.startswith("lossctl: error: --bins: must be a whole number from 1 to 100000; got ")


def test_perplexity_of_a_nan_cross_entropy_is_nan_as_torch_gives(cli):
    x, t = torch.tensor([-math.inf, 1.0]), torch.tensor([0.0, 1.0])
    assert math.isnan(torch.exp(F.cross_entropy(x, t)).item())
    ran = cli("perplexity", "--logits", "[-Infinity, 1.0]", "--target", "[0, 1]", "-f", "plain")
    assert ran.stdout == "nan\n" and "the result is nan" in ran.stderr


@pytest.mark.parametrize("how", [["--backend", "numpy"], ["--backend", "torch"], ["--stream"]])
def test_float32_perplexity_past_ce_88_7_is_inf_as_torch_exp_gives(cli, tmp_path, how):
    """torch takes the exp of its float32 CE in float32: inf past ln(float32 max) = 88.72. lossctl once printed
    1.58e48 labelled float32, from an exp taken in float64."""
    import numpy as np

    x = np.tile(np.array([[-89.3238, 21.6562]], np.float32), (4, 1))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", np.zeros(4, np.int64))
    ce = F.cross_entropy(torch.from_numpy(x), torch.zeros(4, dtype=torch.long))
    assert 88.8 < ce.item() and math.isinf(torch.exp(ce).item())
    ran = cli("perplexity", "--logits", str(tmp_path / "x.npy"), "--target", str(tmp_path / "t.npy"), *how,
              "-f", "plain")
    assert ran.stdout == "inf\n"
    assert ran.stderr.startswith(f"lossctl: warning: perplexity is inf: exp({ce.item():.6g}) overflows float32 "
                                 "(at most exp(88.72) = 3.4e38), as torch.exp of the float32 cross entropy does; "
                                 "--dtype float64 gives ")
    wide = cli("perplexity", "--logits", str(tmp_path / "x.npy"), "--target", str(tmp_path / "t.npy"), *how,
               "--dtype", "float64", "-f", "plain")
    want = torch.exp(F.cross_entropy(torch.from_numpy(x).double(), torch.zeros(4, dtype=torch.long))).item()
    assert float(wide.stdout) == pytest.approx(want, rel=1e-9) and wide.stderr == ""
    assert cli("perplexity", "--logits", str(tmp_path / "x.npy"), "--target", str(tmp_path / "t.npy"), *how,
               "--strict", code=2).stderr.startswith("lossctl: error: --strict: perplexity is inf")


def test_a_float32_ce_that_rounds_past_709_78_gives_inf_not_a_traceback():
    """A CE just below ln(float64 max) in float64 that rounds above it in float32: the float32 check's own exp
    raised OverflowError."""
    import numpy as np

    x = np.array([[0, 709.78265], [0, 709.7827], [0, 709.7827]], np.float32)
    t = np.zeros(3, np.int64)
    want = torch.exp(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))).item()
    got = lossctl.compute("perplexity", logits=x, target=t)
    assert math.isinf(want) and math.isinf(got.value) and got.warnings[0].startswith("perplexity is inf")


def test_a_float32_perplexity_shard_past_88_7_warns_only_where_its_total_overflows(cli, tmp_path):
    """A --partials shard prints no perplexity: its own overflow is no warning (it once was, repeated by merge
    beside the finite total); the merged total warns where torch.exp of the whole float32 CE overflows."""
    import numpy as np

    hot = np.tile(np.array([[100.0, 0.0]], np.float32), (2, 1))  # CE 100 against target 1
    sure = np.tile(np.array([[100.0, 0.0]], np.float32), (6, 1))  # CE 0 against target 0
    parts = []
    for name, x, t in (("a", hot, np.ones(2, np.int64)), ("b", sure, np.zeros(6, np.int64))):
        np.save(tmp_path / f"x{name}.npy", x)
        np.save(tmp_path / f"t{name}.npy", t)
        ran = cli("perplexity", "--logits", str(tmp_path / f"x{name}.npy"), "--target", str(tmp_path / f"t{name}.npy"),
                  "--partials")
        assert ran.stderr == "" and json.loads(ran.stdout)["warnings"] == []
        parts.append(tmp_path / f"{name}.json")
        parts[-1].write_text(ran.stdout)
    x, t = torch.from_numpy(np.concatenate([hot, sure])), torch.tensor([1, 1] + [0] * 6)
    want = torch.exp(F.cross_entropy(x, t)).item()
    merged = cli("merge", *map(str, parts), "-f", "plain")
    assert math.isfinite(want) and float(merged.stdout) == pytest.approx(want, rel=1e-5) and merged.stderr == ""
    both = cli("merge", str(parts[0]), str(parts[0]), "-f", "plain")
    assert both.stdout == "inf\n" and both.stderr.startswith("lossctl: warning: perplexity is inf: exp(100) overflows")


@pytest.mark.parametrize("dtype, low", [(torch.float32, -88.0), (torch.float64, -709.5)])
def test_perplexity_just_below_the_overflow_stays_finite_as_torch_gives(dtype, low):
    """float64's exp overflows past 709.78; lossctl once gave inf from 709 on."""
    x, t = torch.tensor([[low, 0.0]], dtype=dtype), torch.tensor([0])
    want = torch.exp(F.cross_entropy(x, t)).item()
    assert math.isfinite(want)
    got = lossctl.compute("perplexity", logits=x.numpy(), target=t.numpy())
    assert got.dtype == str(dtype).replace("torch.", "") and got.warnings == []
    assert got.value == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("value", ["1e39", "-1e39"])
def test_a_value_the_compute_dtype_cannot_hold_is_refused_not_made_inf(cli, value):
    ran = cli("ce", "--logits", f"[[{value}, 0.0]]", "--target", "[1]", "--dtype", "float32", code=2)
    assert ran.stderr == (f"lossctl: error: --logits: {float(value):g} at index [0, 0] (literal) does not fit "
                          "float32 (its largest is 3.403e+38); use --dtype float64\n")
    got = cli("ce", "--logits", f"[[{value}, 0.0]]", "--target", "[1]", "--dtype", "float64", "-f", "plain")
    want = F.cross_entropy(torch.tensor([[float(value), 0.0]], dtype=torch.float64), torch.tensor([1])).item()
    assert float(got.stdout) == pytest.approx(want, rel=1e-12)


def test_a_streamed_chunk_that_float32_cannot_hold_names_its_row(tmp_path, monkeypatch):
    import numpy as np

    from lossctl import stream

    x = np.random.default_rng(0).standard_normal((300, 4))
    x[250, 3] = 5e38
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", np.zeros(300, np.int64))
    monkeypatch.setattr(stream, "CHUNK_BYTES", 1000)
    with pytest.raises(lossctl.errors.ValueRangeError) as err:
        lossctl.compute("ce", logits=str(tmp_path / "x.npy"), target=str(tmp_path / "t.npy"), dtype="float32",
                        stream=True)
    assert str(err.value).startswith("--logits: 5e+38 at index [250, 3] (")


def test_numpy_and_torch_python_warnings_stay_off_stderr():
    """The command's stderr is lossctl's own lines: NumPy's RuntimeWarning (here an overflow inside the softmax of
    1e308 logits, whose result is still exact) shows only when -W asks for it."""
    from conftest import run_subprocess

    args = ("calibration", "--logits", "[[1e308, -1e308]]", "--target", "[0]", "-f", "plain")
    quiet = run_subprocess(*args, env={"PYTHONWARNINGS": ""})
    assert quiet.returncode == 0 and quiet.stdout == b"0.0\n" and quiet.stderr == b""
    import subprocess
    import sys

    from conftest import ROOT

    loud = subprocess.run([sys.executable, "-W", "default", "-m", "lossctl", *args], capture_output=True, cwd=ROOT,
                          timeout=120)
    assert b"RuntimeWarning" in loud.stderr and loud.stdout == b"0.0\n"


def test_standard_input_is_read_once(cli):
    """A '-' shared by several files is read once for all of them; two '-' are refused, as for two options."""
    import numpy as np
    from conftest import ROOT

    x, t = np.load(ROOT / "examples/logits.npy"), np.load(ROOT / "examples/targets.npy")
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item()
    got = cli("ce", "--logits", "examples/logits.npy", "--logits", "examples/logits.npy", "--target", "-", "-f",
              "plain", input=(ROOT / "examples/targets.npy").read_bytes())
    assert [float(v) for v in got.stdout.split()] == pytest.approx([want] * 3, rel=1e-6)
    ran = cli("ce", "--logits", "-", "--logits", "-", "--target", "examples/targets.npy", code=2,
              input=(ROOT / "examples/logits.npy").read_bytes())
    assert ran.stderr == "lossctl: error: --logits: only one option may read standard input; --logits, --logits all " \
                         "ask for '-'\n"


def test_standard_input_read_once_is_labelled_stdin_and_not_sent_to_workers(cli):
    x = "[[1, 2, 3, 4], [0, 0, 0, 0]]"
    got = json.loads(cli("ce", "--logits", "-", "--target", "[0, 1]", "--target", "[3, 2]", "-f", "json",
                         input=x).stdout)
    assert [f["file"] for f in got["files"]] == ["[0, 1]", "[3, 2]"]  # named by what differs, not the shared '-'
    xt = torch.tensor(json.loads(x), dtype=torch.float64)
    for f, t in zip(got["files"], ([0, 1], [3, 2]), strict=True):
        assert f["value"] == pytest.approx(F.cross_entropy(xt, torch.tensor(t)).item(), rel=1e-12)
    ran = cli("ce", "--logits", "-", "--target", "[0, 1]", "--target", "[3, 2]", "--scheduler", "local", input=x,
              code=2)
    assert "standard input ('-') cannot be sent to the workers" in ran.stderr


def test_an_overflow_beside_a_masked_logit_is_still_refused(tmp_path):
    import numpy as np

    np.save(tmp_path / "x.npy", np.array([[-np.inf, -1e39, 0.0], [1.0, 2.0, 3.0]]))
    with pytest.raises(lossctl.errors.ValueRangeError) as err:
        lossctl.compute("ce", logits=str(tmp_path / "x.npy"), target="[1, 2]", dtype="float32")
    assert "-1e+39 at index [0, 1]" in str(err.value) and "does not fit float32" in str(err.value)


@pytest.mark.parametrize("args, torch_value", [
    (["gaussian-nll", "--input", "[1.0, 2.0]", "--target", "[1.5, 3.0]", "--var", "[0.0, 1.0]", "--eps", "0"],
     lambda: F.gaussian_nll_loss(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 3.0]), torch.tensor([0.0, 1.0]), eps=0)),
    (["triplet-margin", "--anchor", "[[1.0, 2.0]]", "--positive", "[[1.0, 0.0]]", "--negative", "[[0.0, 0.0]]",
      "--margin", "inf"],
     lambda: F.triplet_margin_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0]]),
                                   torch.zeros(1, 2), margin=math.inf)),
])
def test_a_non_finite_result_without_a_masked_input_names_no_masked_logit(cli, args, torch_value):
    """Only roles that allow -inf can hold a mask; elsewhere the inputs were checked finite."""
    ran = cli(*args, "-f", "plain")
    want = torch_value().item()
    assert float(ran.stdout) == want or (math.isnan(want) and math.isnan(float(ran.stdout)))
    assert ran.stderr == (f"lossctl: warning: the result is {want} as torch computes it: an option is infinite, or a "
                          "loss overflows or is undefined (log 0, 0/0, 0 x inf, inf - inf)\n")


@pytest.mark.parametrize("name", ["triplet-margin", "triplet-margin-with-distance"])
@pytest.mark.parametrize(("negative", "line"), [
    ([0.0, 0.0, 0.0], "--negative (literal): is 1-d (shape (3,)) where --anchor is 2-d (2, 3); torch takes the "
                      "three with one number of axes"),
    ([[0.0, 0.0, 0.0]] * 3, "--negative (literal): shape (3, 3) does not broadcast with --anchor (2, 3) and "
                            "--positive (2, 3)"),
])
def test_triplets_that_torch_cannot_broadcast_are_refused_naming_the_option(cli, name, negative, line):
    a, p = [[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], [[1.0, 2.0, 2.0], [0.0, 1.0, 1.0]]
    with pytest.raises(RuntimeError):
        F.triplet_margin_loss(torch.tensor(a), torch.tensor(p), torch.tensor(negative))
    with pytest.raises(RuntimeError):
        F.triplet_margin_with_distance_loss(torch.tensor(a), torch.tensor(p), torch.tensor(negative))
    ran = cli(name, "--anchor", json.dumps(a), "--positive", json.dumps(p), "--negative", json.dumps(negative),
              code=2)
    assert ran.stderr == f"lossctl: error: {line}\n"


def test_a_single_number_has_no_index_in_errors(cli):
    """A 0-d value has no position: the error names the value alone (it said 'at index []')."""
    res = cli("ce", "--logits", "[1.0, 2.0]", "--target", "0.5", code=2)
    assert res.stderr == "lossctl: error: --target (literal): class indices must be integers; found 0.5\n"
    res = cli("ce", "--logits", "[[1.0, 2.0]]", "--target", "[0.5]", code=2)
    assert res.stderr == "lossctl: error: --target (literal): class indices must be integers; found 0.5 at index [0]\n"



@pytest.mark.parametrize("args, line", [
    (("--var", "NaN"), "--var: nan (literal); inputs must be finite"),
    (("--var", "1e39", "--dtype", "float32"),
     "--var: 1e+39 (literal) does not fit float32 (its largest is 3.403e+38); use --dtype float64"),
    (("--var", "1e999"), "--var (literal): value is infinite (overflows float64)"),
])
def test_a_single_number_has_no_index_in_input_checks(cli, args, line):
    """gaussian-nll's one --var number: the finite, fits-the-dtype and JSON overflow checks said 'at index []'."""
    res = cli("gaussian-nll", "--input", "[[1.0, 2.0]]", "--target", "[[1.0, 2.0]]", *args, code=2)
    assert res.stderr == f"lossctl: error: {line}\n"
    res = cli("multi-margin", "--input", "[[1.0, 2.0]]", "--target", "99999999999999999999", code=2)
    assert res.stderr == "lossctl: error: --target (literal): the integer does not fit in int64\n"
    res = cli("gaussian-nll", "--input", "[[1.0, 2.0]]", "--target", "[[1.0, NaN]]", "--var", "1", code=2)
    assert res.stderr == "lossctl: error: --target: nan at index [0, 1] (literal); inputs must be finite\n"

@pytest.mark.parametrize("loss", ["ce", "nll", "perplexity", "multi-margin", "calibration"])
@pytest.mark.parametrize("target", ["2.5", "-3.5", "0.5"])
def test_a_fractional_class_index_is_named_so_whatever_its_value(cli, loss, target):
    """The integer check comes before the range check: 2.5 was 'out of range [0, 2)', 0.5 'must be integers'."""
    scores = {"ce": "--logits", "perplexity": "--logits", "calibration": "--logits", "nll": "--log-probs",
              "multi-margin": "--input"}[loss]
    res = cli(loss, scores, "[[-1.0, -2.0], [-2.0, -1.0]]", "--target", f"[1, {target}]", code=2)
    assert res.stderr == ("lossctl: error: --target (literal): class indices must be integers; found "
                          f"{float(target)} at index [1]\n")
    out = cli(loss, scores, "[[-1.0, -2.0], [-2.0, -1.0]]", "--target", "[1, 1e30]", code=2).stderr
    assert "class index 1e+30 at index [1] is out of range [0, 2)" in out  # whole, but no class


@pytest.mark.parametrize("x, t", [([1.0, 2.0, 3.0], [0]), ([[1.0, 2.0, 3.0]], 0), ([1.0, 2.0, 3.0], 0),
                                  ([[1.0, 2.0, 3.0]], [0])])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multi_margin_takes_one_samples_target_in_either_shape_as_torch(cli, x, t, reduction):
    """torch takes a (1) target with (C) input and a () target with (1, C); lossctl once refused both."""
    want = torch.nn.MultiMarginLoss(reduction=reduction)(torch.tensor(x, dtype=torch.float64), torch.tensor(t))
    ran = cli("multi-margin", "--input", json.dumps(x), "--target", json.dumps(t), "--reduction", reduction,
              "-f", "json")
    doc = json.loads(ran.stdout)
    got = doc["values"] if reduction == "none" else doc["value"]
    assert list(torch.tensor(got).shape) == list(want.shape)
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), want, rtol=1e-12, atol=0)


def test_multi_margin_refuses_what_torch_refuses(cli):
    with pytest.raises(RuntimeError, match="target tensor should be 1-D"):
        torch.nn.MultiMarginLoss()(torch.ones(2, 3), torch.tensor(0))
    assert cli("multi-margin", "--input", "[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]", "--target", "0", code=2).stderr == (
        "lossctl: error: --target (literal): shape () does not match --input (2, 3); expected (2,)\n")


def test_a_merge_recomputes_perplexity_overflow_on_its_total(cli, tmp_path):
    """A float32 shard whose own perplexity overflows (CE 90) merged with one at CE 80: the merged CE (85) is
    finite in float32's exp, as torch gives on the whole batch; the shard's warning is about its own value only."""
    import numpy as np

    docs = []
    for ce in (90.0, 80.0):
        np.save(tmp_path / f"x{ce:.0f}.npy", np.array([[0.0, ce]] * 4, np.float32))
        np.save(tmp_path / f"t{ce:.0f}.npy", np.zeros(4, np.int64))
        ran = cli("perplexity", "--logits", str(tmp_path / f"x{ce:.0f}.npy"), "--target",
                  str(tmp_path / f"t{ce:.0f}.npy"), "--partials")
        (tmp_path / f"p{ce:.0f}.json").write_text(ran.stdout)
        docs.append(str(tmp_path / f"p{ce:.0f}.json"))
    x = torch.tensor([[0.0, 90.0]] * 4 + [[0.0, 80.0]] * 4)
    want = torch.exp(F.cross_entropy(x, torch.zeros(8, dtype=torch.long))).item()
    merged = json.loads(cli("merge", *docs, "-f", "json").stdout)
    assert math.isfinite(want) and merged["value"] == pytest.approx(want, rel=1e-5) and merged["warnings"] == []
    alone = json.loads(cli("merge", docs[0], "-f", "json").stdout)
    assert alone["value"] == "inf" and alone["warnings"][0].startswith("perplexity is inf: exp(90) overflows float32")
