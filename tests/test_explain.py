"""`lossctl explain`: the spec as data, the traps people hit, and the worked computation checked against torch."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import ROOT
from test_registry import CASES, tensors

from lossctl.cli import parse_loss_args, split_params
from lossctl.errors import UsageError
from lossctl.explain import explain, explain_data
from lossctl.render import render
from lossctl.specs import all_specs, get_loss


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_every_loss_explains_itself(spec):
    e = explain(spec.name)
    assert e.formula and e.denominator and e.torch_name
    assert [o["flag"] for o in e.options] == [o.flag for o in spec.options]
    assert [o["default"] for o in e.options] == [o.default for o in spec.options]
    text = render(e, "plain")
    assert "formula" in text and "mean divides by" in text
    for o in spec.options:
        assert f"{o.flag} [default: {o.default}]" in text


@pytest.mark.parametrize(("loss", "words"), [
    ("kl", ["argument order", "batchmean"]),
    ("ce", ["sum of the targets' weights", "--ignore-index"]),
    ("bce", ["-100"]),
    ("cosine-embedding", ["1 and -1"]),
    ("focal", ["torchvision", "none"]),
    ("ctc", ["target length"]),
])
def test_traps(loss, words):
    traps = " ".join(explain(loss).traps)
    for w in words:
        assert w in traps


def test_explain_without_arrays_does_not_import_torch():
    code = "import sys; from lossctl.explain import explain; from lossctl.render import render; " \
           "render(explain('ce'), 'plain'); print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_ce_steps_match_torch():
    rng = np.random.default_rng(3)
    x, t, w = rng.normal(size=(5, 4)), np.array([0, 3, -100, 1, 2]), np.array([0.5, 1.0, 2.0, 1.5])
    e = explain_data("ce", {"logits": x, "target": t, "weight": w}, samples=3)
    logp = torch.log_softmax(torch.from_numpy(x), 1)
    assert [s.label for s in e.steps] == ["sample [0]", "sample [1]", "sample [2]"]
    s0 = dict(e.steps[0].lines)
    assert float(s0["log p[0]"]) == pytest.approx(float(logp[0, 0]), rel=1e-9)
    assert float(s0["weight[0]"]) == 0.5
    assert float(s0["loss"].split("=")[-1]) == pytest.approx(float(-0.5 * logp[0, 0]), rel=1e-9)
    assert "ignored" in dict(e.steps[2].lines)
    totals = dict(e.totals)
    expected = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(w))(torch.from_numpy(x), torch.from_numpy(t))
    assert float(totals["mean = sum / denominator"]) == pytest.approx(float(expected), rel=1e-9)
    assert float(totals["value"].split()[0]) == pytest.approx(float(expected), rel=1e-12)
    assert totals["denominator for mean"].startswith("5 = sum of the targets' class weights")


def test_ce_prob_target_and_smoothing_steps():
    x, q = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]), np.array([[0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    e = explain_data("ce", {"logits": x, "target": q}, {"label_smoothing": 0.1}, reduction="sum")
    expected = torch.nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1)(torch.from_numpy(x),
                                                                               torch.from_numpy(q))
    total = dict(e.totals)["sum of the losses (float64, NumPy kernel)"]
    assert float(total) == pytest.approx(float(expected), rel=1e-9)
    assert "target distribution (smoothed)" in dict(e.steps[0].lines)


def test_perplexity_steps():
    x, t = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [0.0, 0.0, 0.0]]), np.array([0, 2, -100])
    e = explain_data("perplexity", {"logits": x, "target": t})
    expected = torch.exp(torch.nn.CrossEntropyLoss()(torch.from_numpy(x), torch.from_numpy(t)))
    totals = dict(e.totals)
    assert float(totals["value"]) == pytest.approx(float(expected), rel=1e-12)
    assert float(totals["mean = sum / denominator"]) == pytest.approx(float(torch.log(expected)), rel=1e-9)
    assert any(k == "note" and v.startswith("perplexity = exp(mean cross entropy)") for k, v in e.totals)



@pytest.mark.parametrize("name", ["ce", "perplexity"])
def test_explain_honours_class_axis(cli, name):
    """Classes-last logits (N, L, C) with --class-axis -1, as `lossctl ce` and `grad ce` take them."""
    x, t = np.load(ROOT / "examples" / "logits_nlc.npy"), np.load(ROOT / "examples" / "labels_nl.npy")
    xt, tt = torch.from_numpy(x).double().movedim(-1, 1), torch.from_numpy(t).long()
    per = torch.nn.functional.cross_entropy(xt, tt, reduction="none")
    mean = torch.nn.functional.cross_entropy(xt, tt)
    want = mean if name == "ce" else torch.exp(mean)
    e = explain_data(name, {"logits": x, "target": t}, class_axis=-1, samples=2)
    assert [s.label for s in e.steps] == ["sample [0, 0]", "sample [0, 1]"]
    for step, (i, j) in zip(e.steps, [(0, 0), (0, 1)], strict=True):
        lines = dict(step.lines)
        assert int(lines["target class"]) == t[i, j]
        assert float(lines["loss"].split("=")[-1]) == pytest.approx(float(per[i, j]), rel=1e-6)
    assert float(dict(e.totals)["value"].split()[0]) == pytest.approx(float(want), rel=1e-6)
    args = ("explain", name, "--logits", ROOT / "examples" / "logits_nlc.npy", "--target",
            ROOT / "examples" / "labels_nl.npy")
    data = json.loads(cli(*args, "--class-axis", "-1", "-f", "json").stdout)
    assert float(data["totals"]["value"].split()[0]) == pytest.approx(float(want), rel=1e-6)
    assert "pass --class-axis -1" in cli(*args, code=2).stderr  # torch's layout without it: refused, with the hint

@pytest.mark.parametrize("name", sorted(CASES))
def test_every_loss_explains_a_computation(name):
    case = CASES[name]()[0]
    e = explain_data(name, case.arrays, case.options, samples=2)
    spec = get_loss(name)
    totals = dict(e.totals)
    assert totals["reduction"] == spec.default_reduction
    if "value" in totals and case.torch_fn is not None:
        # the explained value is torch's, not lossctl's word for it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's KL 'mean' advice; lossctl repeats it
            want = float(case.torch_fn(tensors(case.arrays, np.float64), spec.default_reduction))
        assert float(totals["value"].split()[0]) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert e.steps or "none" not in spec.reductions


def test_explain_parses_options_as_the_loss_command_does():
    spec = get_loss("triplet-margin")
    sources, options, common = split_params(spec, parse_loss_args(spec, [
        "--anchor", "a.npy", "--swap", "--margin=2", "--p", "1", "--reduction", "sum"]))
    assert {k: list(v or ()) for k, v in sources.items()} == {"anchor": ["a.npy"], "positive": [], "negative": []}
    assert options == {"swap": True, "margin": 2.0, "p": 1.0, "eps": None}
    assert common["reduction"] == "sum" and common["format"] == "auto"
    assert split_params(get_loss("poisson-nll"), parse_loss_args(get_loss("poisson-nll"), ["--no-log-input"])
                        )[1]["log_input"] is False
    assert parse_loss_args(get_loss("ce"), ["--ignore-index", "-1"])["ignore_index"] == -1
    with pytest.raises(UsageError, match="No such option: --bogus"):
        parse_loss_args(spec, ["--bogus", "1"])
    with pytest.raises(UsageError, match="'wide' is not a valid float"):
        parse_loss_args(spec, ["--margin", "wide"])
    with pytest.raises(UsageError, match="requires an argument"):
        parse_loss_args(spec, ["--anchor"])
    with pytest.raises(UsageError, match="--reduction: must be one of mean, sum, none; got 'avg'"):
        parse_loss_args(spec, ["--reduction", "avg"])


def test_cli_explain(cli):
    out = cli("explain", "kl").stdout
    assert "batchmean" in out and "traps" in out
    out = cli("explain", "ce", "--logits", "[[2.0, 1.0, 0.1]]", "--target", "[0]").stdout
    assert "step by step" in out and "log p[0] = -0.4170300163" in out
    data = json.loads(cli("explain", "mse", "--input", "[1, 2]", "--target", "[0, 0]", "-f", "json").stdout)
    assert data["totals"]["value"] == "2.5" and len(data["steps"]) == 2
    res = cli("explain", "nope", code=2)
    assert "unknown loss 'nope'" in res.stderr
    res = cli("explain", "ce", "--margin", "1", code=2)
    assert "No such option: --margin" in res.stderr


def test_explain_takes_an_option_value_that_looks_like_short_options(cli):
    """-inf and -Infinity after a loss's option were read by explain's own parse as -i -n -f, -f (--format) taking
    the next word: 'lossctl: error: --format: must be one of ...; got '-f''. They are the option's value, as
    `lossctl LOSS` reads them."""
    x1, x2, y = [1.0, 3.0], [2.0, 0.5], [1, -1]
    ran = cli("explain", "margin-ranking", "--x1", json.dumps(x1), "--x2", json.dumps(x2), "--target", json.dumps(y),
              "--margin", "-inf", "-f", "json")
    expected = torch.nn.MarginRankingLoss(margin=float("-inf"))(torch.tensor(x1), torch.tensor(x2),
                                                                 torch.tensor(y, dtype=torch.float32))
    assert float(json.loads(ran.stdout)["totals"]["value"]) == expected.item() and ran.stderr == ""
    ran = cli("explain", "mse", "--input", "[1.0]", "--target", "-Infinity", "-f", "json", code=2)
    assert ran.stderr == "lossctl: error: --target: -inf (literal); inputs must be finite\n"


@pytest.mark.parametrize("logits", [["examples/logits.npy", "examples/logits.csv"], ["examples/logits.*"]])
def test_explain_refuses_several_files_rather_than_explain_the_first(cli, logits):
    """`lossctl ce` gives each file and the total; explain works one set through and used to drop the others."""
    args = [a for path in logits for a in ("--logits", ROOT / path if "*" not in path else str(ROOT / path))]
    ran = cli("explain", "ce", *args, "--target", ROOT / "examples/targets.npy", code=2)
    assert ran.stdout == ""
    assert ran.stderr.startswith("lossctl: error: --logits: explain works one set of arrays through, and this "
                                 "names ")
    assert ran.stderr.endswith("files; give one, or run `lossctl ce` for the loss over all of them\n")
