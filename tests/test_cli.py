"""The command line: exit codes, one-line errors naming the option, every output format, colour and markup."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_subprocess

import lossctl

X = [[2.0, 1.0, 0.1], [0.5, 2.5, -1.0], [0.0, 0.0, 3.0]]
Y = [0, 1, 1]
LOGITS, TARGET = json.dumps(X), json.dumps(Y)
CE = F.cross_entropy(torch.tensor(X, dtype=torch.float64), torch.tensor(Y)).item()
CE_NONE = F.cross_entropy(torch.tensor(X, dtype=torch.float64), torch.tensor(Y), reduction="none").tolist()
ANSI = re.compile(r"\x1b\[")


def test_plain_is_the_default_in_a_pipe(cli):
    res = cli("ce", "--logits", LOGITS, "--target", TARGET)
    assert float(res.stdout) == pytest.approx(CE, rel=1e-15)
    assert res.stdout == repr(float(res.stdout)) + "\n"  # repr precision, one line
    assert res.stderr == ""


def test_reduction_none_plain_prints_one_value_per_line(cli):
    res = cli("ce", "--logits", LOGITS, "--target", TARGET, "--reduction", "none", "--format", "plain")
    np.testing.assert_allclose([float(v) for v in res.stdout.split()], CE_NONE, rtol=1e-15)
    assert len(res.stdout.splitlines()) == 3


def test_reduction_none_is_row_major(cli, rng):
    x = rng.normal(size=(2, 3, 2, 2))
    y = rng.integers(0, 3, size=(2, 2, 2))
    res = cli("ce", "--logits", json.dumps(x.tolist()), "--target", json.dumps(y.tolist()), "--reduction", "none",
              "-f", "plain")
    ref = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none").reshape(-1).numpy()
    np.testing.assert_allclose([float(v) for v in res.stdout.split()], ref, rtol=1e-14)


def test_json_reduced(cli):
    res = cli("ce", "--logits", LOGITS, "--target", TARGET, "--weight", "[1.0, 2.0, 0.5]", "--format", "json")
    out = json.loads(res.stdout)
    expected = F.cross_entropy(torch.tensor(X, dtype=torch.float64), torch.tensor(Y),
                               weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)).item()
    assert out["value"] == pytest.approx(expected, rel=1e-15)
    assert out["loss"] == "ce" and out["reduction"] == "mean" and out["dtype"] == "float64"
    assert out["shapes"] == {"logits": [3, 3], "target": [3], "weight": [3]}
    assert out["options"]["ignore_index"] == -100 and out["options"]["label_smoothing"] == 0.0


def test_json_none_gives_nested_values(cli, rng):
    x, y = rng.normal(size=(2, 3, 2)), rng.integers(0, 3, size=(2, 2))
    res = cli("ce", "--logits", json.dumps(x.tolist()), "--target", json.dumps(y.tolist()), "--reduction", "none",
              "-f", "json")
    out = json.loads(res.stdout)
    assert "value" not in out
    ref = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="none").numpy()
    np.testing.assert_allclose(np.array(out["values"]), ref, rtol=1e-14)
    assert np.array(out["values"]).shape == (2, 2)


def test_csv_reduced_and_none(cli):
    res = cli("ce", "--logits", LOGITS, "--target", TARGET, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 1
    assert rows[0]["loss"] == "ce" and rows[0]["reduction"] == "mean"
    assert float(rows[0]["value"]) == pytest.approx(CE, rel=1e-15)
    res = cli("ce", "--logits", LOGITS, "--target", TARGET, "--format", "csv", "--reduction", "none")
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert rows[0][-1] == "value" and len(rows) == 4
    np.testing.assert_allclose([float(r[-1]) for r in rows[1:]], CE_NONE, rtol=1e-15)


def test_table(cli):
    res = cli("ce", "--logits", LOGITS, "--target", "[0, 1, -100]", "--format", "table", env={"COLUMNS": "120"})
    expected = F.cross_entropy(torch.tensor(X, dtype=torch.float64), torch.tensor([0, 1, -100])).item()
    assert repr(expected) in res.stdout
    assert "mean over 2 of 3 targets; 1 ignored" in res.stdout
    assert "float64" in res.stdout and "logits (3, 3)" in res.stdout


@pytest.mark.parametrize("args, reduction, text", [
    (("ctc", "--log-probs", "[[-1.2, -0.5], [-0.3, -1.5]]", "--target", "[1]", "--input-lengths", "[2]",
      "--target-lengths", "1"), "mean", "mean over 1 sequence"),
    (("multi-margin", "--input", "[1.0, 2.0, 0.5]", "--target", "[1]"), "sum", "sum over 1 sample"),
    (("multi-margin", "--input", "[[1.0, 2.0, 0.5]]", "--target", "1"), "none", "none: 1 value, not reduced"),
    (("kl", "--logits", "[[1.0, 2.0]]", "--target", "[[0.5, 0.5]]"), "batchmean", "batchmean: sum / 1 row"),
    (("ctc", "--log-probs", "[[[-1.2, -0.5]], [[-0.3, -1.5]]]", "--target", "[[1]]", "--input-lengths", "[2]",
      "--target-lengths", "[1]"), "mean", "mean over 1 sequence"),
])
def test_one_sample_is_counted_in_the_singular(cli, args, reduction, text):
    """An unbatched CTC sequence or one multi-margin sample: the denominator said 'mean over 1 sequences'."""
    assert json.loads(cli(*args, "--reduction", reduction, "-f", "json").stdout)["denominator"] == text


def test_table_none_lists_values(cli):
    res = cli("ce", "--logits", LOGITS, "--target", TARGET, "-f", "table", "--reduction", "none",
              env={"COLUMNS": "120"})
    for v in CE_NONE:
        assert repr(v) in res.stdout


def test_base_in_every_format(cli):
    res = cli("entropy", "--probs", "[0.5, 0.25, 0.25]", "--base", "2", "-f", "json")
    out = json.loads(res.stdout)
    assert out["value"] == pytest.approx(1.5, rel=1e-15)
    assert out["unit"] == "bits"


def test_kl_mean_warning_goes_to_stderr(cli):
    args = ("kl", "--logits", LOGITS, "--target", "[[0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0]]")
    res = cli(*args, "-f", "plain")
    assert "batchmean" in res.stderr and res.stderr.startswith("lossctl: warning:")
    assert "batchmean" not in res.stdout
    logq = torch.log_softmax(torch.tensor(X, dtype=torch.float64), -1)
    t = torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(res.stdout) == pytest.approx(F.kl_div(logq, t, reduction="sum").item() / 9, rel=1e-14)
    res = cli(*args, "--reduction", "batchmean", "-f", "plain")
    assert res.stderr == ""
    assert float(res.stdout) == pytest.approx(F.kl_div(logq, t, reduction="batchmean").item(), rel=1e-14)


def test_version(cli):
    for flag in ("--version", "-V"):
        res = cli(flag)
        assert res.stdout.strip() == f"lossctl {lossctl.__version__}"


def test_list(cli):
    res = cli("list", "-f", "json")
    names = {r["name"] for r in json.loads(res.stdout)["losses"]}
    assert {"ce", "nll", "kl", "entropy", "bce", "cosine-embedding"} <= names
    res = cli("list", "k*", "-f", "plain")
    assert [ln.split("\t")[0] for ln in res.stdout.splitlines()] == sorted(
        n for n in names if n.startswith("k"))


def test_list_matches_aliases(cli):
    """An alias is a command (`lossctl ppl`), so `list` finds its loss by it too, once however many names match."""
    rows = json.loads(cli("list", "-f", "json").stdout)["losses"]
    aliases = {a: r["name"] for r in rows for a in r["aliases"]}
    assert aliases["ppl"] == "perplexity" and aliases["cross-entropy"] == "ce"
    for alias, name in aliases.items():
        assert [ln.split("\t")[0] for ln in cli("list", alias, "-f", "plain").stdout.splitlines()] == [name]
    found = [ln.split("\t")[0] for ln in cli("list", "c*", "-f", "plain").stdout.splitlines()]
    assert found == sorted({r["name"] for r in rows if any(n.startswith("c") for n in (r["name"], *r["aliases"]))})
    assert "ce" in found and found.count("ce") == 1
    assert cli("list", "cross*", "-f", "plain").stdout.split("\t")[0] == "ce"
    assert "alias" in cli("list", "--help", env={"COLUMNS": "200"}).stdout


def test_a_list_that_matches_nothing_prints_no_line(cli):
    """`lossctl list zzz -f plain | wc -l` counted one loss: plain printed an empty line."""
    note = ("lossctl: note: no loss name or alias matches 'zzz'; the pattern is a glob over whole names, e.g. "
            "'*zzz*'\n")
    plain = cli("list", "zzz", "-f", "plain")
    assert (plain.stdout, plain.stderr) == ("", note)
    assert cli("list", "zzz", "-f", "csv").stdout == "name,aliases,torch,arrays,options,summary\n"
    assert json.loads(cli("list", "zzz", "-f", "json").stdout) == {"losses": []}


def test_aliases_are_commands(cli):
    a = cli("cross-entropy", "--logits", LOGITS, "--target", TARGET).stdout
    assert float(a) == pytest.approx(CE, rel=1e-15)


# --- errors: exit 2, one line naming the option, never a traceback -----------------------------------------


@pytest.mark.parametrize("args, needles", [
    (["ce", "--logits", LOGITS, "--target", "[0, 1, 7]"], ["--target", "class index 7", "[2]", "[0, 3)"]),
    (["ce", "--logits", LOGITS, "--target", "[0, 1]"], ["--target", "(2,)", "(3, 3)"]),
    (["ce", "--logits", LOGITS], ["--target"]),
    (["ce", "--target", TARGET], ["--logits"]),
    (["ce", "--logits", LOGITS, "--target", TARGET, "--reduction", "batchmean"], ["--reduction", "batchmean"]),
    (["ce", "--logits", LOGITS, "--target", TARGET, "--weight", "[1.0]"], ["--weight", "(3,)"]),
    (["ce", "--logits", LOGITS, "--target", TARGET, "--target-kind", "prob"], ["--target"]),
    (["ce", "--logits", LOGITS, "--target", TARGET, "--base", "3"], ["--base"]),
    (["ce", "--logits", LOGITS, "--target", TARGET, "--dtype", "float16"], ["--dtype"]),
    (["ce", "--logits", LOGITS, "--target", TARGET, "--format", "yaml"], ["--format"]),
    (["ce", "--logits", "[[1.0, 2.0], [3.0]]", "--target", "[0, 1]"], ["--logits", "ragged"]),
    (["ce", "--logits", "[[1.0, NaN]]", "--target", "[0]"], ["--logits"]),
    (["ce", "--logits", "[[1.0, 2.0]]", "--target", "[0.5]"], ["--target"]),
    (["nll", "--logits", LOGITS, "--probs", LOGITS, "--target", TARGET], ["--probs"]),
    (["kl", "--logits", LOGITS, "--target", LOGITS, "--target-kind", "nope"], ["--target-kind"]),
    (["bce", "--probs", "[0.5, 1.5]", "--target", "[1, 0]"], ["--probs", "1.5", "[1]"]),
    (["bce", "--probs", "[0.5]", "--target", "[1.0]", "--pos-weight", "[2.0]"], ["--pos-weight"]),
    (["cosine", "--x1", "[[1.0, 0.0]]", "--x2", "[[0.0, 1.0]]", "--target", "[0]"], ["--target", "1 or -1"]),
    (["entropy", "--probs", "[0.5, 0.5]", "--base", "2", "--logits", "[1.0]"], ["--logits"]),
    (["decompose", "--logits", LOGITS, "--target", "[0, 1, 9]"], ["--target", "9"]),
    (["decompose", "--logits", LOGITS, "--target", "[[0.5, 0.7, -0.2], [0, 1, 0], [0, 0, 1]]"], ["--target"]),
    (["check", "--target", TARGET], ["--logits"]),
    (["nosuchloss"], ["nosuchloss"]),
    (["ce", "--nosuchoption", "1"], ["--nosuchoption"]),
])
def test_usage_and_input_errors(cli, args, needles):
    res = cli(*args, code=2)
    assert res.stdout == ""
    for needle in needles:
        assert needle in res.stderr, (needle, res.stderr)
    if not args[0].startswith("nosuch") and "--nosuchoption" not in args and "--format" not in args:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lossctl: error: "), res.stderr
    assert "np.float" not in res.stderr and "np.int" not in res.stderr


def test_all_targets_ignored_is_refused_not_nan(cli):
    res = cli("ce", "--logits", LOGITS, "--target", "[-100, -100, -100]", code=2)
    assert "--target" in res.stderr and "ignore" in res.stderr
    res = cli("ce", "--logits", LOGITS, "--target", "[-100, -100, -100]", "--reduction", "sum")
    assert float(res.stdout) == 0.0


def test_failed_check_exits_1(cli):
    # BCE clamps log(0) at -100 but the two-class NLL does not: the identity fails on a probability of 0.
    res = cli("check", "--probs", "[0.0, 0.3]", "--target", "[1, 0]", "-f", "json", code=1)
    out = json.loads(res.stdout)
    bce = next(c for c in out["checks"] if c["check"] == "bce-nll")
    assert not bce["ok"] and out["ok"] is False
    assert [r["ok"] for r in bce["rows"]] == [False, True]


# --- colour and markup ---------------------------------------------------------------------------------------


def test_no_color_is_honoured(cli):
    args = ("ce", "--logits", LOGITS, "--target", TARGET, "-f", "table")
    coloured = cli(*args, env={"FORCE_COLOR": "1", "NO_COLOR": None, "TTY_COMPATIBLE": "1"}).stdout
    assert re.search(r"\x1b\[[0-9;]*3[0-9]", coloured), "the control run should show colour"
    plain = cli(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1", "TTY_COMPATIBLE": "1"}).stdout
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]", plain), repr(plain[:200])


def test_piped_output_has_no_escape_codes(cli):
    for fmt in ("plain", "json", "csv"):
        res = cli("ce", "--logits", LOGITS, "--target", TARGET, "-f", fmt, env={"FORCE_COLOR": "1"})
        assert not ANSI.search(res.stdout), fmt


def test_markup_in_data_is_never_interpreted(cli, tmp_path):
    odd = tmp_path / "[bold red]x.csv"
    odd.write_text("1.0,2.0\n3.0,[link=http://x]y\n")
    res = cli("ce", "--logits", odd, "--target", "[0, 1]", code=2)
    assert "[bold red]x.csv" in res.stderr
    assert "'[link=http://x]y'" in res.stderr
    good = tmp_path / "[red]logits.json"
    good.write_text(json.dumps(X))
    res = cli("ce", "--logits", good, "--target", TARGET, "-f", "table", env={"COLUMNS": "200"})
    assert repr(CE) in res.stdout
    res = cli("ce", "--[red]x[/red]", "1", code=2)
    assert "[red]x[/red]" in res.stderr


def test_warning_text_with_brackets_is_shown_verbatim(cli):
    res = cli("ce", "--logits", LOGITS, "--target", "[[0.9, 0.9, 0.9], [0, 1, 0], [0, 0, 1]]", "-f", "table")
    assert "row [0]" in res.stderr


# --- a few real processes ------------------------------------------------------------------------------------


def test_subprocess_usage_error_is_one_line():
    res = run_subprocess("ce", "--logits", LOGITS)
    assert res.returncode == 2
    assert res.stdout == b""
    assert res.stderr == b"lossctl: error: --target: ce needs --target\n"


def test_subprocess_head_closes_the_pipe_quietly():
    import subprocess
    import sys

    # A real pipe: --format auto means plain, one value per line; `head` closing early is not an error.
    big = json.dumps(np.zeros((5000, 2)).tolist())
    cmd = f"{sys.executable} -m lossctl entropy --logits - --reduction none 2>&1 | head -n 2; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", cmd], input=big.encode(), capture_output=True, timeout=120, cwd=ROOT)
    lines = proc.stdout.decode().splitlines()
    assert [float(v) for v in lines[:2]] == [pytest.approx(np.log(2), rel=1e-15)] * 2
    assert lines[2] == "0" and proc.stderr == b"", proc


SHAPES = ["3.0", "[]", "[[]]", "[1.0, 2.0]", "[0.2, 0.9]", "[[1.0, 2.0], [0.5, 0.1]]", "[[[1.0, 2.0], [0.5, 0.1]]]"]
TARGETS = ["0", "1", "[]", "[0, 1]", "[[0.5, 0.5], [1.0, 0.0]]", "[[1, 0], [0, 1]]", "0.5", "[0, 1, 1]"]


@pytest.mark.parametrize("command", ["ce", "nll", "kl", "bce", "decompose", "check", "cosine", "entropy"])
def test_odd_shapes_never_crash(cli, command):
    """Scalars, empties and mismatched shapes: a result or a one-line error, never an exception."""
    for shape in SHAPES:
        for target in TARGETS:
            if command == "cosine":
                args = ["--x1", shape, "--x2", shape, "--target", target]
            elif command == "entropy":
                args = ["--probs", shape, "--dim", target] if target in ("0", "1") else ["--logits", shape]
            else:
                args = ["--probs" if command in ("bce", "check") and target == "0" else "--logits", shape,
                        "--target", target]
            res = cli(command, *args, code=None)
            assert res.exit_code in (0, 1, 2), (args, res.exit_code)
            if res.exit_code == 2:
                assert res.stderr.startswith("lossctl: error: --"), (args, res.stderr)


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


P = [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]]
LOGQ = torch.log_softmax(_t(X), -1)
OPTION_CASES = [
    (["ce", "--logits", LOGITS, "--target", "[0, 2, 2]", "--ignore-index", "2", "--reduction", "sum"],
     F.cross_entropy(_t(X), torch.tensor([0, 2, 2]), ignore_index=2, reduction="sum")),
    (["ce", "--logits", LOGITS, "--target", TARGET, "--label-smoothing", "0.25", "--weight", "[0.5, 1.0, 2.0]"],
     F.cross_entropy(_t(X), torch.tensor(Y), label_smoothing=0.25, weight=_t([0.5, 1.0, 2.0]))),
    (["ce", "--logits", LOGITS, "--target", json.dumps(X), "--target-kind", "logits", "--base", "2"],
     F.cross_entropy(_t(X), torch.softmax(_t(X), -1)) / np.log(2)),
    (["nll", "--probs", json.dumps(torch.softmax(_t(X), -1).tolist()), "--target", TARGET, "--base", "10"],
     F.nll_loss(torch.log(torch.softmax(_t(X), -1)), torch.tensor(Y)) / np.log(10)),
    (["kl", "--log-probs", json.dumps(LOGQ.tolist()), "--target", json.dumps(torch.log(_t(P)).tolist()),
      "--target-kind", "log-prob", "--reduction", "batchmean"],
     F.kl_div(LOGQ, torch.log(_t(P)), reduction="batchmean", log_target=True)),
    (["entropy", "--logits", LOGITS, "--reduction", "sum"],
     torch.distributions.Categorical(logits=_t(X)).entropy().sum()),
    (["entropy", "--probs", json.dumps(np.array(P).T.tolist()), "--dim", "0"],
     torch.distributions.Categorical(probs=_t(P)).entropy().mean()),
    (["bce", "--logits", LOGITS, "--target", json.dumps(P), "--pos-weight", "[1.0, 2.0, 3.0]", "--weight", "[2.0]"],
     F.binary_cross_entropy_with_logits(_t(X), _t(P), pos_weight=_t([1.0, 2.0, 3.0]), weight=_t([2.0]))),
    (["cosine-embedding", "--x1", LOGITS, "--x2", json.dumps(P), "--target", "[1, -1, -1]", "--margin", "0.5"],
     F.cosine_embedding_loss(_t(X), _t(P), _t([1, -1, -1]), margin=0.5)),
]


@pytest.mark.parametrize("args, expected", OPTION_CASES, ids=lambda a: a[0] if isinstance(a, list) else "")
def test_cli_options_match_torch(cli, args, expected):
    out = json.loads(cli(*args, "-f", "json").stdout)
    assert out["value"] == pytest.approx(expected.item(), rel=1e-13)


def test_help_shows_brackets_verbatim(cli):
    out = " ".join(cli("ce", "--help").stdout.split())
    assert "[default: -100]" in out and "in [0, 1]" in out
    assert "Cross entropy" in out and "--label-smoothing" in out


def test_help_names_every_format_read(cli):
    """The SOURCE epilog and --from name every format lossctl reads; once they stopped at .pt."""
    from lossctl.io import FORMATS

    out = "".join(cli("ce", "--help", env={"COLUMNS": "200"}).stdout.split())
    epilog = out[out.index("SOURCE:"):]
    assert [ext for ext in FORMATS if ext not in epilog and ext != ".pth"] == []
    from_help = out[out.index("--from"):out.index("-f,--format")]
    assert all(word in from_help for word in (".npz", "JSON", ".pt", ".safetensors", "Parquet", "JSONLines"))
    stream_help = out[out.index("--stream/--no-stream"):out.index("--threads")]
    assert all(word in stream_help for word in (".npy", "text", "Parquet", "JSONLines"))


def test_table_shows_the_warnings_too(cli):
    res = cli("kl", "--logits", "[[1.0, 2.0]]", "--target", "[[0.5, 0.5]]", "-f", "table", env={"COLUMNS": "200"})
    assert "warning" in res.stdout and "batchmean" in res.stdout
    assert res.stderr.startswith("lossctl: warning: kl")


def test_list_says_when_a_pattern_matches_nothing(cli):
    """The glob matches whole names: 'margin' finds none of the seven margin losses, and said nothing."""
    res = cli("list", "margin", "-f", "json")
    assert json.loads(res.stdout) == {"losses": []}
    assert res.stderr == ("lossctl: note: no loss name or alias matches 'margin'; the pattern is a glob over whole "
                          "names, e.g. '*margin*'\n")
    rows = json.loads(cli("list", "-f", "json").stdout)["losses"]
    found = [ln.split("\t")[0] for ln in cli("list", "*margin*", "-f", "plain").stdout.splitlines()]
    assert found == [r["name"] for r in rows if "margin" in r["name"]] and len(found) >= 7
