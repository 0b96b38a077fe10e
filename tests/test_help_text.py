"""What a user reads: each command's --help, `lossctl explain`, the completion of names and choices, and the
usage errors that point at a help page. Each text is held to what torch (or the command itself) does."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def help_text(cli, *args: str) -> str:
    """A command's --help with its line breaks undone (the wrapping depends on the terminal's width)."""
    return " ".join(cli(*args, "--help", env={"COLUMNS": "200"}).stdout.split())


def test_cosine_similarity_eps_bounds_each_norm_as_torch_does(cli):
    """--eps clamps each vector's norm, as torch's cosine_similarity does; the help and explain said it bounded
    the product of the norms, which gives 1e-10 instead of torch's 0.01 for two vectors of norm 1e-9."""
    x = [[1e-9, 0.0]]
    want = F.cosine_similarity(torch.tensor(x, dtype=torch.float64), torch.tensor(x, dtype=torch.float64), eps=1e-8)
    assert float(want) == pytest.approx(0.01, rel=1e-12)  # (1e-9)^2 / (max(1e-9, 1e-8))^2
    got = json.loads(cli("cosine-similarity", "--x1", json.dumps(x), "--x2", json.dumps(x), "-f", "json").stdout)
    assert got["values"] == pytest.approx([float(want)], rel=1e-12)
    assert "--eps <float> Lower bound on each vector's norm (each is clamped to at least eps)." in help_text(
        cli, "cosine-similarity")
    formula = json.loads(cli("explain", "cosine-similarity", "-f", "json").stdout)["formula"]
    assert formula == "cos_n = x1_n . x2_n / (max(||x1_n||, eps) * max(||x2_n||, eps))"


@pytest.mark.parametrize("args, line", [
    (["decompose", "--logits", "[[1.0, 2.0]]", "--header", "yes"],
     "lossctl: error: No such option: --header (see lossctl decompose --help)\n"),
    (["calibration", "--bins", "x"],
     "lossctl: error: Invalid value for '--bins': 'x' is not a valid int. (see lossctl calibration --help)\n"),
    (["explain", "--samples", "-1", "ce"],
     "lossctl: error: Invalid value for '--samples': -1 is not in the range x>=0. (see lossctl explain --help)\n"),
    (["no-such-command"], "lossctl: error: No such command 'no-such-command'. (see lossctl --help)\n"),
    (["kl", "--reduction", "avg"],
     "lossctl: error: --reduction: must be one of mean, sum, none, batchmean; got 'avg' (see lossctl kl --help)\n"),
])
def test_usage_error_points_at_the_help_of_the_command_that_refused_it(cli, args, line):
    """A usage error of decompose, check, calibration, list, explain or merge said `see lossctl --help`, whose
    page lists the commands but none of their options."""
    assert cli(*args, code=2).stderr == line


CHECK_INDEX = ["check", "--logits", "examples/logits.npy", "--target", "examples/targets.npy"]


def test_a_skipped_identity_shows_no_residual(cli, monkeypatch):
    """bce-nll is skipped on multi-class logits: nothing was compared, so it has no residual and no tolerance.
    The table, CSV and JSON showed a max residual of 0 (a perfect agreement) and the tolerance beside it."""
    monkeypatch.chdir(ROOT)
    rows = cli(*CHECK_INDEX, "-f", "csv").stdout.splitlines()
    skipped = [r for r in rows if r.startswith("bce-nll,")]
    assert skipped == ['bce-nll,True,0,0,,"needs binary data: (N) or (N, 2) logits or probabilities with (N) 0/1 '
                       'targets, or probabilities with a 0/1 label each"']
    checks = {c["check"]: c for c in json.loads(cli(*CHECK_INDEX, "-f", "json").stdout)["checks"]}
    assert checks["bce-nll"]["max_residual"] is None and checks["bce-nll"]["skipped"]
    # the checks that ran keep their residual: CE against NLL of log_softmax, by torch
    x, y = (torch.from_numpy(np.load(ROOT / "examples" / name)) for name in ("logits.npy", "targets.npy"))
    ce_nll = (F.cross_entropy(x, y, reduction="none") - F.nll_loss(F.log_softmax(x, 1), y, reduction="none")).abs()
    assert checks["ce-nll"]["max_residual"] == pytest.approx(float(ce_nll.max()), abs=1e-6)
    table = cli(*CHECK_INDEX, "-f", "table", env={"COLUMNS": "200"}).stdout
    bce_row = next(line for line in table.splitlines() if "bce-nll" in line)
    assert [cell.strip() for cell in bce_row.split("│")[4:6]] == ["-", "-"], bce_row


PLAIN_AUTO = "-f, --format <auto|table|json|csv|plain> auto: a table on a terminal, plain in a pipe. [default: auto]"


@pytest.mark.parametrize("command", [["mse"], ["decompose"], ["check"], ["list"], ["explain"], ["merge"],
                                     ["calibration"], ["grad", "ce"]])
def test_format_help_names_breakdowns_only_where_the_command_has_them(cli, command):
    """--format's help said '(a breakdown asked for: CSV; both breakdowns: JSON)' on every command, though only
    the loss commands with --by-class and --worst have a breakdown to ask for."""
    text = help_text(cli, *command)
    assert PLAIN_AUTO in text and "breakdown" not in text and "--by-class" not in text


def test_format_help_of_a_loss_with_breakdowns_says_what_auto_prints_in_a_pipe(cli, monkeypatch):
    text = help_text(cli, "ce")
    assert ("-f, --format <auto|table|json|csv|plain> auto: a table on a terminal, plain in a pipe (--by-class or "
            "--worst: CSV; both: JSON). [default: auto]") in text
    monkeypatch.chdir(ROOT)  # and that is what it does (the harness's stdout is a pipe)
    args = ("ce", "--logits", "examples/logits.npy", "--target", "examples/targets.npy")
    assert cli(*args, "--worst", "1").stdout.startswith("i0,target,predicted,p_target,loss\n")
    assert set(json.loads(cli(*args, "--worst", "1", "--by-class").stdout)) >= {"by_class", "worst"}


def complete(words: str) -> list[str]:
    """What bash completion offers for the last word of `words` (as the script of --show-completion asks)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "_LOSSCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    proc = subprocess.run([sys.executable, "-m", "lossctl"], env=env, capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    return proc.stdout.split()


@pytest.mark.parametrize("command", ["explain", "grad"])
def test_explain_and_grad_complete_the_loss_name(command):
    """`lossctl explain <TAB>` and `lossctl grad <TAB>` offered nothing: NAME had no completion."""
    from lossctl.specs import all_specs

    assert complete(f"lossctl {command} ") == [spec.name for spec in all_specs()]
    assert complete(f"lossctl {command} triplet") == ["triplet-margin", "triplet-margin-with-distance"]


def test_explain_says_its_float64_steps_are_not_the_float32_value(cli, monkeypatch):
    """explain's steps run in float64 for display, so on float32 logits their mean (1.424987151) differs from the
    value printed below it (1.42498713, torch's float32 CE) in the eighth digit, and nothing said which dtype the
    value was computed in."""
    monkeypatch.chdir(ROOT)
    x, y = (torch.from_numpy(np.load(ROOT / "examples" / name)) for name in ("logits.npy", "targets.npy"))
    args = ("explain", "ce", "--logits", "examples/logits.npy", "--target", "examples/targets.npy", "-f", "json")
    totals = json.loads(cli(*args).stdout)["totals"]
    assert float(totals["mean = sum / denominator"]) == pytest.approx(float(F.cross_entropy(x.double(), y)), rel=1e-9)
    torch.testing.assert_close(float(totals["value"].split()[0]), float(F.cross_entropy(x, y)), check_dtype=False)
    assert totals["dtype"] == "float32"
    assert totals["steps in float64"] == ("the value below is computed in float32, as `lossctl ce` computes it, so "
                                          "it agrees with these steps to float32 rounding only")
    totals64 = json.loads(cli(*args, "--dtype", "float64").stdout)["totals"]
    assert totals64["dtype"] == "float64" and "steps in float64" not in totals64
    assert float(totals64["value"].split()[0]) == pytest.approx(float(F.cross_entropy(x.double(), y)), rel=1e-12)


def test_decompose_help_says_what_it_takes_and_its_default_tolerances(cli, monkeypatch):
    """decompose's --logits help left out the unbatched (C) it takes, --label-smoothing and --ignore-index had no
    help at all, and --atol/--rtol (here and in check) said only '[default: by dtype]'."""
    text = help_text(cli, "decompose")
    assert "--logits SOURCE Logits (C), (N, C) or (N, C, d...)." in text
    assert ("--label-smoothing <float> Mix the target with the uniform distribution, in [0, 1], as ce does; H is "
            "then the mixture's. [default: 0.0]") in text
    assert "--ignore-index <int> Samples whose target is this class index are left out. [default: -100]" in text
    tolerance = "Tolerance: |left - right| <= atol + rtol |right| [default: 1e-5 float32, 1e-10 float64]."
    for command in ("decompose", "check"):
        assert f"--atol <float> {tolerance}" in help_text(cli, command)
        assert f"--rtol <float> {tolerance}" in help_text(cli, command)
    # (C) logits with a (C) distribution: one sample, whose CE is torch's for the unbatched input
    x, q = [1.0, 2.0, 0.5], [0.2, 0.5, 0.3]
    out = json.loads(cli("decompose", "--logits", json.dumps(x), "--target", json.dumps(q), "-f", "json").stdout)
    ce = F.cross_entropy(torch.tensor(x, dtype=torch.float64), torch.tensor(q, dtype=torch.float64))
    assert [r["ce"] for r in out["rows"]] == pytest.approx([float(ce)], rel=1e-12)
    assert (out["atol"], out["rtol"]) == (1e-10, 1e-10)  # text computes in float64
    monkeypatch.chdir(ROOT)
    f32 = json.loads(cli("decompose", "--logits", "examples/logits.npy", "--target", "examples/targets.npy",
                         "-f", "json").stdout)
    assert (f32["dtype"], f32["atol"], f32["rtol"]) == ("float32", 1e-5, 1e-5)
    # the smoothed target's entropy: q' = 0.7 onehot(0) + 0.3 / 3
    smoothed = json.loads(cli("decompose", "--logits", "[[0.1, 0.2, 0.3]]", "--target", "[0]", "--label-smoothing",
                              "0.3", "-f", "json").stdout)
    q_s = np.array([0.8, 0.1, 0.1])
    assert smoothed["rows"][0]["entropy"] == pytest.approx(float(-(q_s * np.log(q_s)).sum()), rel=1e-12)
    # an ignored target's sample is left out
    kept = json.loads(cli("decompose", "--logits", "[[1.0, 2.0], [0.5, 0.1]]", "--target", "[1, -100]",
                          "-f", "json").stdout)
    assert [r["label"] for r in kept["rows"]] == ["0"]


def test_reliability_diagram_legend_fits_an_80_column_terminal(cli, monkeypatch):
    """The diagram's header 'accuracy (#) against confidence (|)' ran to 82 characters and the table crops the
    line at the terminal's edge: on 80 columns (and in README.md) it read 'against confidence (', its '|' lost."""
    monkeypatch.chdir(ROOT)
    out = cli("calibration", "--probs", "examples/probs_binary.npy", "--target", "examples/targets_binary.csv",
              "--bins", "5", "-f", "table", env={"COLUMNS": "80"}).stdout.splitlines()
    header = next(line for line in out if line.startswith("bin "))
    assert header.rstrip().endswith("# = accuracy, | = confidence") and len(header.rstrip()) <= 80
    # the bin [0.2, 0.4): '#' up to round(30 x accuracy), '|' in the cell of its mean confidence
    p = np.load(ROOT / "examples/probs_binary.npy").astype(np.float64)
    y = np.loadtxt(ROOT / "examples/targets_binary.csv", delimiter=",", skiprows=1)
    inside = (p >= 0.2) & (p < 0.4)
    bar = next(line for line in out if line.startswith("[0.20, 0.40)")).split()[-1]
    cells = ["#" if i < round(y[inside].mean() * 30) else "." for i in range(30)]
    cells[int(p[inside].mean() * 30)] = "|"
    assert bar == "".join(cells)


def test_grad_help_does_not_offer_several_files(cli, monkeypatch):
    """grad's SOURCE epilog was the loss commands' ('several paths (repeat the option) or a quoted glob, paired
    in sorted order'), but a gradient is of one set of inputs and grad refuses a second file."""
    text = help_text(cli, "grad", "ce")
    assert "several paths" not in text and "glob" not in text
    assert text.endswith("'-' for standard input; or a JSON literal such as '[[2.0, 1.0]]'. One per option.")
    assert "several paths (repeat the option) or a quoted glob, paired in sorted order" in help_text(cli, "ce")
    monkeypatch.chdir(ROOT)
    res = cli("grad", "ce", "--logits", "examples/logits.npy", "--logits", "examples/logits.csv", "--target",
              "examples/targets.npy", code=2)
    assert res.stderr == ("lossctl: error: --logits: grad works one set of arrays through; got 2 sources (run it "
                          "once per set)\n")


@pytest.mark.parametrize("args, line", [
    (["decompose", "--logits", "[[1.0, 2.0]]"], "lossctl: error: --target: decompose needs --target\n"),
    (["decompose", "--target", "[1]"], "lossctl: error: --logits: decompose needs --logits\n"),
    (["check", "--logits", "[[1.0, 2.0]]"], "lossctl: error: --target: check needs --target\n"),
    (["ce", "--logits", "[[1.0, 2.0]]"], "lossctl: error: --target: ce needs --target\n"),
])
def test_a_missing_array_is_named_as_the_command_the_user_ran(cli, args, line):
    """decompose and check read their arrays as ce and nll do, and a missing one said 'ce needs --target' or
    'nll needs --target' to someone who had run decompose or check."""
    assert cli(*args, code=2).stderr == line


def test_explain_json_keeps_every_note(cli, monkeypatch):
    """explain -f json keyed the result lines by name, so of several 'note' lines only the last survived:
    perplexity's 'exp(mean cross entropy) = exp(sum / N)' and a weighted mean's note were dropped."""
    monkeypatch.chdir(ROOT)
    args = ("--logits", "examples/logits.npy", "--target", "examples/targets.npy", "--samples", "0", "-f", "json")
    out = json.loads(cli("explain", "perplexity", *args).stdout)
    x, y = (torch.from_numpy(np.load(ROOT / "examples" / name)) for name in ("logits.npy", "targets.npy"))
    total = float(F.cross_entropy(x, y, reduction="sum"))
    assert out["notes"][0] == f"perplexity = exp(mean cross entropy) = exp({total:.6g} / 8)"
    assert out["notes"][1].startswith("the loss is at or above chance") and "note" not in out["totals"]
    torch.testing.assert_close(float(out["totals"]["value"]), float(torch.exp(F.cross_entropy(x, y))),
                               check_dtype=False)
    weighted = json.loads(cli("explain", "ce", *args, "--weight", "examples/class_weights.json").stdout)
    assert weighted["notes"][0] == "weighted mean: torch divides by the sum of the targets' class weights, not by N"


@pytest.mark.parametrize("loss", ["ce", "perplexity"])
def test_ce_target_help_names_every_index_shape_taken(cli, loss):
    """--target said 'Class indices (N) or probabilities', though ce (as torch) takes one sample's () index beside
    (C) logits and (N, d1..dk) indices beside (N, C, d1..dk) logits."""
    assert ("--target SOURCE Class indices, shape (), (N) or (N, d1..dk), or probabilities of the logits' shape."
            in help_text(cli, loss))
    for x, y in (([1.0, 2.0, 0.5], 1), ([[[1.0, 2.0], [0.5, 0.1]]], [[0, 1]])):
        want = F.cross_entropy(torch.tensor(x, dtype=torch.float64), torch.tensor(y))
        want = torch.exp(want) if loss == "perplexity" else want
        got = json.loads(cli(loss, "--logits", json.dumps(x), "--target", json.dumps(y), "-f", "json").stdout)
        assert got["value"] == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("command, option", [("decompose", "--logits"), ("check", "--target")])
def test_decompose_and_check_refuse_a_second_source_rather_than_keep_the_last(cli, monkeypatch, command, option):
    """decompose and check took each array option once, so Click kept the last of two silently: `decompose
    --logits a.npy --logits '[[...]]'` checked the literal alone and passed. They now refuse, as grad and explain do,
    and their help names SOURCE's forms (it showed <str> and no epilog)."""
    monkeypatch.chdir(ROOT)
    first = {"--logits": "examples/logits.npy", "--target": "examples/targets.npy"}
    args = [command, *(a for f, v in first.items() for a in (f, v)), option, "[1]"]
    res = cli(*args, code=2)
    assert res.stderr == (f"lossctl: error: {option}: {command} works one set of arrays through; got 2 sources "
                          "(run it once per set)\n")
    text = help_text(cli, command)
    assert "--logits SOURCE" in text and text.endswith("or a JSON literal such as '[[2.0, 1.0]]'. One per option.")


def test_reduction_help_says_what_each_choice_divides_by(cli):
    """--reduction's help was only '[default: mean]': kl's batchmean, and what any mean divides by, went unsaid."""
    assert ("--reduction <mean|sum|none|batchmean> none: the unreduced values, as torch's reduction='none'; sum: "
            "their sum; mean divides the sum by: mean: every element (N * C); batchmean: the rows N. [default: mean]"
            ) in help_text(cli, "kl")
    assert "--reduction <mean> mean divides the sum by: as ce's mean" in help_text(cli, "perplexity")
    x = torch.tensor([[0.2, -1.0, 0.5], [1.5, 0.1, -0.3]], dtype=torch.float64)
    q = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]], dtype=torch.float64)
    log_p = F.log_softmax(x, -1)
    for reduction, want in (("batchmean", F.kl_div(log_p, q, reduction="sum") / 2),  # the formula written out
                            ("mean", F.kl_div(log_p, q, reduction="sum") / 6)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own advice about 'mean'
            assert float(F.kl_div(log_p, q, reduction=reduction)) == pytest.approx(float(want), rel=1e-12)
        got = json.loads(cli("kl", "--logits", json.dumps(x.tolist()), "--target", json.dumps(q.tolist()),
                             "--reduction", reduction, "-f", "json").stdout)
        assert got["value"] == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("words, offered", [
    ("lossctl grad ce --red", ["--reduction"]),
    ("lossctl grad kl --reduction ", ["mean", "sum", "none", "batchmean"]),
    ("lossctl grad ce --dtype ", ["float32", "float64"]),
    ("lossctl explain ce --target-kind ", ["auto", "index", "prob", "logits"]),
    ("lossctl explain ce --logits x.npy --ta", ["--target", "--target-kind"]),
    ("lossctl explain ce --sa", ["--samples"]),
])
def test_explain_and_grad_complete_the_loss_options_after_its_name(words, offered):
    """After `explain NAME` or `grad NAME` the loss's options are extra arguments: the shell offered none of them
    and none of their choices ('lossctl grad kl --reduction <TAB>' gave nothing, 'lossctl kl --reduction <TAB>'
    the four reductions)."""
    assert complete(words) == offered


def test_explain_does_not_complete_the_options_it_refuses(cli):
    """ddde221 completed explain's options from the loss's own command, so 'lossctl explain ce --<TAB>' offered
    --stream, --partials, --by-class, --worst, --expect, --rtol, --atol, --threads, --strict, --backend and the
    scheduler's, each of which explain then refuses (exit 2); --no-stream changes nothing there."""
    offered = complete("lossctl explain ce --")
    refused = ["--stream", "--no-stream", "--partials", "--by-class", "--worst", "--expect", "--rtol", "--atol",
               "--threads", "--strict", "--backend", "--scheduler", "--scheduler-timeout"]
    assert not set(refused) & set(offered)
    assert {"--logits", "--target", "--reduction", "--base", "--from", "--device", "--samples"} <= set(offered)
    ran = cli("explain", "ce", "--logits", "[[1, 2]]", "--target", "[0]", "--stream", code=2)
    assert ran.stderr == "lossctl: error: --stream: explain does not apply --stream; run `lossctl ce` for it\n"


def test_list_shows_alternative_arrays_as_one_choice(cli):
    """`lossctl list` showed nll's arrays as '--log-probs --logits --probs --target --weight?', as if each were
    needed; exactly one of the first three is given (two are refused), so they are one entry."""
    rows = {r["name"]: r["arrays"] for r in json.loads(cli("list", "-f", "json").stdout)["losses"]}
    assert rows["nll"] == ["--log-probs|--logits|--probs", "--target", "--weight?"]
    assert rows["bce"] == ["--probs|--logits", "--target", "--weight?", "--pos-weight?"]
    assert rows["ce"] == ["--logits", "--target", "--weight?"]
    x, y = [[2.0, 1.0, 0.1]], [0]
    want = F.nll_loss(F.log_softmax(torch.tensor(x, dtype=torch.float64), 1), torch.tensor(y))
    got = json.loads(cli("nll", "--logits", json.dumps(x), "--target", json.dumps(y), "-f", "json").stdout)
    assert got["value"] == pytest.approx(float(want), rel=1e-12)
    res = cli("nll", "--logits", json.dumps(x), "--probs", "[[0.5, 0.25, 0.25]]", "--target", json.dumps(y), code=2)
    assert res.stderr == "lossctl: error: --probs: give only one of --log-probs or --logits or --probs\n"
