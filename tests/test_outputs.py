"""What lossctl prints for pipelines: strict JSON everywhere (--partials too), --strict over every warning, the
total's dtype and backend, and exit 0 when the reader of a pipe is gone."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_subprocess

EX = ROOT / "examples"
IGNORED = json.dumps([-100] * 8)


def strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_partials_of_an_infinite_loss_are_strict_json_and_merge_to_torchs_value(cli, tmp_path):
    x = np.load(EX / "logits.npy")
    x[0, 0] = -np.inf
    np.save(tmp_path / "x.npy", x)
    p = np.full((8, 4), 0.25, np.float32)
    np.save(tmp_path / "p.npy", p)
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(p)).item()
    assert want == math.inf
    doc = cli("ce", "--logits", tmp_path / "x.npy", "--target", tmp_path / "p.npy", "--partials").stdout
    assert strict_json(doc)["partial"]["total"] == "inf"
    (tmp_path / "a.json").write_text(doc)
    assert cli("merge", tmp_path / "a.json", tmp_path / "a.json", "-f", "plain").stdout == "inf\n"


def test_strict_applies_to_a_file_whose_mean_is_empty(cli):
    args = ["ce", "--logits", EX / "logits.npy", "--logits", EX / "logits.npy", "--target", EX / "targets.npy",
            "--target", IGNORED]
    ran = cli(*args, "--strict", "-f", "json", code=2)
    assert ran.stdout == "" and "all 8 targets equal --ignore-index" in ran.stderr
    total = strict_json(cli(*args, "-f", "json").stdout)["total"]
    assert any("all 8 targets equal --ignore-index" in w for w in total["warnings"])


def test_a_total_over_files_of_two_dtypes_says_both(cli):
    out = cli("ce", "--logits", EX / "logits.npy", "--logits", EX / "logits.csv", "--target", EX / "targets.npy",
              "--target", EX / "targets.csv", "-f", "csv").stdout.splitlines()
    assert out[0] == "file,loss,reduction,value,total,denominator,dtype,backend"
    assert out[-1].split(",")[-2:] == ["float32+float64", "numpy"]


@pytest.mark.parametrize("fmt", ["table", "plain", "json"])
def test_a_reader_gone_before_any_output_is_exit_0(fmt):
    """Click and Rich answer a write to a closed pipe with exit 1, which here means a failed check: lossctl exits
    0. The reader is `true`, gone long before lossctl's 0.1 s start-up ends."""
    cmd = (f"{sys.executable} -m lossctl ce --logits examples/logits.npy --target examples/targets.npy --reduction "
           f"none -f {fmt} | true; exit ${{PIPESTATUS[0]}}")
    assert subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, timeout=120).returncode == 0


def test_a_multi_file_table_shows_the_total_as_a_single_run_does(cli):
    two = ["ce", "--logits", EX / "logits.npy", "--logits", EX / "logits.npy", "--target", EX / "targets.npy",
           "--target", EX / "targets_ignored.npy"]
    table = cli(*two, "--by-class", "--worst", "2", "-f", "table").stdout
    for part in ("signature", "baseline uniform", "by class", "the 2 highest losses"):
        assert part in table, part
    x, t1, t2 = (np.load(EX / n) for n in ("logits.npy", "targets.npy", "targets_ignored.npy"))
    values = F.cross_entropy(torch.from_numpy(np.concatenate([x, x])), torch.from_numpy(np.concatenate([t1, t2])),
                             reduction="none")
    none = cli(*two, "--reduction", "none", "-f", "table").stdout
    assert "every value of 2 files, in file order" in none and "partial sums" not in none
    import re

    shown = re.search(r"\[15\]\s*│\s*([0-9.e+-]+)", none)  # the values themselves, not '-'
    assert shown and float(shown.group(1)) == pytest.approx(values[15].item(), rel=1e-6)


def test_merge_repeats_what_the_partials_warned(cli, tmp_path):
    part = cli("kl", "--logits", EX / "logits.npy", "--target", EX / "target_probs.json", "--partials")
    assert "batchmean" in part.stderr and strict_json(part.stdout)["warnings"]
    (tmp_path / "k.json").write_text(part.stdout)
    merged = cli("merge", tmp_path / "k.json", tmp_path / "k.json", "-f", "plain")
    assert "batchmean" in merged.stderr
    x = torch.from_numpy(np.load(EX / "logits.npy")).double()
    p = torch.tensor(json.loads((EX / "target_probs.json").read_text()), dtype=torch.float64)
    with pytest.warns(UserWarning, match="batchmean"):  # torch's own warning, which lossctl repeats
        want = F.kl_div(torch.log_softmax(x, 1), p, reduction="mean").item()
    assert float(merged.stdout) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("extra", [["--by-class"], ["--worst", "2"]])
def test_partials_refuse_reports_they_would_drop(cli, extra):
    """A partial holds the loss's sums; --by-class and --worst were left out of it without a word."""
    ran = cli("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "--partials", *extra, code=2)
    assert ran.stdout == ""
    assert ran.stderr == ("lossctl: error: --partials: a partial carries the loss's sums only, not --by-class or "
                          "--worst: run those on the whole data (several files or a glob give the exact total)\n")


@pytest.mark.parametrize("extra", [["--strict"], ["--expect", "5"], ["--partials"], ["--worst", "2"]])
def test_explain_refuses_settings_it_would_ignore(cli, extra):
    ran = cli("explain", "ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", *extra, code=2)
    assert ran.stderr == f"lossctl: error: {extra[0]}: explain does not apply {extra[0]}; run `lossctl ce` for it\n"


def test_decompose_says_when_target_rows_do_not_sum_to_1(cli):
    """CE = H + KL holds for any target, but H and KL are an entropy and a divergence only of distributions."""
    out = strict_json(cli("decompose", "--logits", "[[1.0, 2.0], [0.5, 0.1]]", "--target", "[[0.5, 0.6], [0.3, 0.3]]",
                          "-f", "json").stdout)
    assert out["ok"] and any("rows do not sum to 1 (first: row [0] sums to 1.1)" in n for n in out["notes"])
    x = torch.tensor([[1.0, 2.0], [0.5, 0.1]], dtype=torch.float64)
    p = torch.tensor([[0.5, 0.6], [0.3, 0.3]], dtype=torch.float64)
    ce = F.cross_entropy(x, p, reduction="none")
    assert [r["ce"] for r in out["rows"]] == pytest.approx(ce.tolist(), rel=1e-12)


def test_calibration_says_its_dtype(cli, tmp_path):
    """And its backend, as every result does (README): NumPy bins it, whatever the inputs; it said none."""
    single = strict_json(cli("calibration", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "-f",
                             "json").stdout)
    assert single["dtype"] == "float32" and single["backend"] == "numpy"
    two = ["--logits", EX / "logits.npy", "--logits", EX / "logits.csv", "--target", EX / "targets.npy", "--target",
           EX / "targets.csv"]
    rows = cli("calibration", *two, "-f", "csv").stdout.splitlines()
    assert rows[0].endswith(",dtype,backend") and rows[-1].endswith(",float32+float64,numpy")
    for i, (x, t) in enumerate((("logits.npy", "targets.npy"), ("logits.csv", "targets.csv"))):
        (tmp_path / f"{i}.json").write_text(cli("calibration", "--logits", EX / x, "--target", EX / t,
                                                "--partials").stdout)
    merged = strict_json(cli("merge", tmp_path / "0.json", tmp_path / "1.json", "-f", "json").stdout)
    assert merged["dtype"] == "float32+float64" and merged["backend"] == "numpy"
    assert "│ backend     │ numpy" in cli("calibration", "--logits", EX / "logits.npy", "--target",
                                          EX / "targets.npy", "-f", "table").stdout


def test_partials_with_an_infinite_option_merge(cli, tmp_path):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    doc = cli("pairwise-distance", "--x1", tmp_path / "a.npy", "--x2", tmp_path / "b.npy", "--p", "inf",
              "--reduction", "mean", "--partials").stdout
    assert strict_json(doc)["options"]["p"] == "inf"
    (tmp_path / "p.json").write_text(doc)
    merged = float(cli("merge", tmp_path / "p.json", "-f", "plain").stdout)
    want = F.pairwise_distance(torch.from_numpy(a), torch.from_numpy(b), p=math.inf).mean().item()
    assert merged == pytest.approx(want, rel=1e-12)


def test_by_class_and_worst_as_csv_are_their_rows(cli, tmp_path):
    """-f csv prints the breakdown asked for as its table; the numbers are torch's per-sample losses grouped."""
    x, t = np.load(EX / "logits.npy"), np.load(EX / "targets.npy")
    per_sample = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none").double().numpy()
    p_target = torch.softmax(torch.from_numpy(x).double(), 1).numpy()[np.arange(len(t)), t]
    base = ("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "-f", "csv")
    lines = cli(*base, "--by-class").stdout.splitlines()
    assert lines[0] == "class,count,loss,share,accuracy,p_target"
    classes = sorted(set(t.tolist()))
    for line, c in zip(lines[1:], classes, strict=True):
        cells = line.split(",")
        mask = t == c
        assert [int(cells[0]), int(cells[1])] == [c, int(mask.sum())]
        np.testing.assert_allclose([float(v) for v in cells[2:4]], [per_sample[mask].mean(),
                                                                    per_sample[mask].sum() / per_sample.sum()],
                                   rtol=1e-6)
        assert float(cells[4]) == pytest.approx(float(np.mean(x[mask].argmax(1) == c)))
        assert float(cells[5]) == pytest.approx(float(p_target[mask].mean()), rel=1e-6)
    lines = cli(*base, "--worst", "3").stdout.splitlines()
    assert lines[0] == "i0,target,predicted,p_target,loss"
    order = np.argsort(-per_sample)[:3]
    assert [int(line.split(",")[0]) for line in lines[1:]] == order.tolist()
    np.testing.assert_allclose([float(line.split(",")[-1]) for line in lines[1:]], per_sample[order], rtol=1e-6)
    # several files: the rows of all of them together, indexed as one batch (equal losses: lower index first)
    two = cli("ce", "--logits", EX / "logits.npy", "--logits", EX / "logits.npy", "--target", EX / "targets.npy",
              "--target", EX / "targets.npy", "--worst", "2", "-f", "csv").stdout.splitlines()
    assert [int(line.split(",")[0]) for line in two[1:]] == [order[0], order[0] + len(t)]


@pytest.mark.parametrize("extra, option", [(["--by-class"], "--by-class"), (["--worst", "2"], "--worst")])
def test_a_breakdown_plain_output_cannot_show_is_a_usage_error(cli, extra, option):
    """It was dropped without a word."""
    ran = cli("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", *extra, "-f", "plain", code=2)
    assert ran.stdout == ""
    assert ran.stderr == (f"lossctl: error: {option}: -f plain prints the loss only; use -f csv for the breakdown's "
                          "rows or -f json for everything (without -f, a pipe gets them so)\n")


def test_a_pipe_without_format_gets_the_breakdown_asked_for(cli):
    """The harness's stdout is a pipe: no -f gives the breakdown as CSV (both: JSON), as -f csv / -f json do; a
    script's `lossctl ce ... --by-class > out` once exited 2."""
    args = ("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy")
    for extra, fmt in ((["--by-class"], "csv"), (["--worst", "2"], "csv"), (["--by-class", "--worst", "2"], "json")):
        assert cli(*args, *extra).stdout == cli(*args, *extra, "-f", fmt).stdout, extra


def test_both_breakdowns_in_one_csv_are_a_usage_error(cli):
    ran = cli("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "--by-class", "--worst", "2",
              "-f", "csv", code=2)
    assert ran.stderr == ("lossctl: error: --by-class: -f csv prints one table: ask for --by-class or --worst, or use "
                          "-f json for both\n")


def test_a_file_name_with_a_line_break_is_named_on_one_line(cli, tmp_path):
    """A line break in a quoted file name split the error (and a warning) in two lines on stderr."""
    bad = tmp_path / "bad\nname.npy"
    bad.write_bytes(b"not an array")
    ran = cli("ce", "--logits", bad, "--target", "[0]", code=2)
    shown = str(bad).replace("\n", "\\n")
    assert ran.stdout == ""
    assert ran.stderr == f"lossctl: error: --logits ({shown}): not an .npy file (bad magic bytes)\n"
    ignored = tmp_path / "all\rignored.json"
    ignored.write_text(IGNORED)
    ran = cli("ce", "--logits", EX / "logits.npy", "--logits", EX / "logits.npy", "--target", EX / "targets.npy",
              "--target", ignored, "-f", "plain")
    assert ran.stderr.count("\n") == 1 and str(ignored).replace("\r", "\\r") + ": all 8 targets" in ran.stderr
    x, t = torch.from_numpy(np.load(EX / "logits.npy")), torch.from_numpy(np.load(EX / "targets.npy"))
    want = F.cross_entropy(x.double(), t).item()
    lines = ran.stdout.splitlines()
    assert math.isnan(float(lines[1])) and float(lines[2]) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "table", "json"])
def test_a_file_name_that_is_not_utf8_is_escaped_on_a_strict_utf8_stdout(tmp_path, fmt):
    """Python keeps such a name's bytes as surrogates, which a strict UTF-8 stdout (PYTHONIOENCODING=utf-8, a
    UTF-8 locale other than C) cannot encode: the CSV and the table ended in a UnicodeEncodeError traceback, with
    nothing printed. Now the name is written with backslash escapes, as Python writes it to stderr."""
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/x\xff.npy")
    with open(os.fsencode(name), "wb") as f:
        np.save(f, np.load(EX / "logits.npy"))
    ran = run_subprocess("ce", "--logits", name, "--logits", EX / "logits.npy", "--target", EX / "targets.npy",
                         "--target", EX / "targets.npy", "-f", fmt, env={"PYTHONIOENCODING": "utf-8", "COLUMNS": "300"})
    assert ran.returncode == 0 and ran.stderr == b"", ran.stderr.decode(errors="replace")
    out = ran.stdout.decode("utf-8")  # valid UTF-8
    escaped = name.encode("utf-8", "backslashreplace").decode("utf-8")
    x, t = torch.from_numpy(np.load(EX / "logits.npy")), torch.from_numpy(np.load(EX / "targets.npy"))
    want = F.cross_entropy(x, t).item()
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[0] == ["file", "loss", "reduction", "value", "total", "denominator", "dtype", "backend"]
        assert [r[0] for r in rows[1:]] == [escaped, str(EX / "logits.npy"), "total"]
        frame = pd.read_csv(io.StringIO(out))
        np.testing.assert_allclose(frame["value"], [want] * 3, rtol=1e-6)
    elif fmt == "json":
        assert strict_json(out)["files"][0]["file"] == name  # ensure_ascii: the surrogates as \udcff escapes
    else:
        assert f"│ {escaped} " in out  # a row of the files' table


def test_a_merge_of_one_partial_says_so_in_the_singular(cli, tmp_path):
    """'merged from 1 partials' (loss and calibration alike), where the denominators say '1 row' since 6907c56."""
    for name, args in (("ce", ["ce", "--target", EX / "targets.npy"]),
                       ("cal", ["calibration", "--target", EX / "targets.npy"])):
        (tmp_path / f"{name}.json").write_text(cli(*args, "--logits", EX / "logits.npy", "--partials").stdout)
    loss = strict_json(cli("merge", tmp_path / "ce.json", "-f", "json").stdout)
    assert loss["notes"][0] == "merged from 1 partial: sums added, then divided"
    want = F.cross_entropy(torch.from_numpy(np.load(EX / "logits.npy")), torch.from_numpy(np.load(EX / "targets.npy")))
    assert loss["value"] == pytest.approx(want.item(), rel=1e-6)
    cal = strict_json(cli("merge", tmp_path / "cal.json", "-f", "json").stdout)
    assert "merged from 1 partial: per-bin sums added, then divided" in cal["notes"]
    two = strict_json(cli("merge", tmp_path / "ce.json", tmp_path / "ce.json", "-f", "json").stdout)
    assert two["notes"][0] == "merged from 2 partials: sums added, then divided"


@pytest.mark.parametrize("fmt", ["csv", "plain", "table"])
@pytest.mark.parametrize("command", ["ce", "calibration"])
def test_partials_refuse_a_format_they_would_ignore(cli, fmt, command):
    """--partials printed its JSON whatever -f asked for: `-f csv --partials > part.csv` held JSON."""
    args = [command, "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "--partials"]
    ran = cli(*args, "-f", fmt, code=2)
    assert ran.stdout == ""
    assert ran.stderr == (f"lossctl: error: --partials: prints the partial sums as JSON, for lossctl merge; -f {fmt} "
                          "does not apply (leave -f out, or use -f json)\n")
    assert strict_json(cli(*args, "-f", "json").stdout) == strict_json(cli(*args).stdout)


def test_worst_over_files_of_different_shapes_is_a_rectangular_csv(cli, tmp_path):
    """Files of (N, C) and (N, C, d) logits give worst rows of one and of two index axes: the CSV's rows of one axis
    had a cell too few under the i0,i1 header, and pandas read their target as i1, their loss as nothing."""
    rng = np.random.default_rng(1)
    x2 = (rng.normal(size=(2, 4, 3)) * 3).astype(np.float32)
    t2 = rng.integers(0, 4, size=(2, 3))
    np.save(tmp_path / "x2.npy", x2)
    np.save(tmp_path / "t2.npy", t2)
    x1, t1 = np.load(EX / "logits.npy"), np.load(EX / "targets.npy")
    out = cli("ce", "--logits", EX / "logits.npy", "--logits", tmp_path / "x2.npy", "--target", EX / "targets.npy",
              "--target", tmp_path / "t2.npy", "--worst", "14", "-f", "csv").stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["i0", "i1", "target", "predicted", "p_target", "loss"]
    assert all(len(r) == 6 for r in rows)
    frame = pd.read_csv(io.StringIO(out))
    losses = np.concatenate([F.cross_entropy(torch.from_numpy(x1), torch.from_numpy(t1), reduction="none").numpy(),
                             F.cross_entropy(torch.from_numpy(x2), torch.from_numpy(t2), reduction="none")
                             .numpy().ravel()])
    np.testing.assert_allclose(frame["loss"], np.sort(losses)[::-1], rtol=1.3e-6)
    first = frame["i0"] < len(t1)  # rows of the first file: one axis, its i1 empty
    assert frame.loc[first, "i1"].isna().all() and frame.loc[~first, "i1"].notna().all()
    np.testing.assert_array_equal(frame.loc[first, "target"], t1[frame.loc[first, "i0"]])
    second = frame.loc[~first]
    np.testing.assert_array_equal(second["target"], t2[second["i0"] - len(t1), second["i1"].astype(int)])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("fmt", ["plain", "table", "json"])
def test_stdout_on_a_full_disk_is_one_error_line_and_exit_2(fmt):
    """A failed write to stdout (ENOSPC) was a 38-line OSError traceback and exit 1, which means a failed check or
    --expect; now one line naming stdout and exit 2, as a -o or --plot that cannot be written."""
    with open("/dev/full", "w") as full:
        ran = subprocess.run([sys.executable, "-m", "lossctl", "ce", "--logits", str(EX / "logits.npy"), "--target",
                              str(EX / "targets.npy"), "-f", fmt], stdout=full, stderr=subprocess.PIPE, cwd=ROOT,
                             timeout=120)
    assert ran.returncode == 2
    assert ran.stderr == b"lossctl: error: stdout: cannot write the output: No space left on device\n"


@pytest.mark.parametrize("args, code, line", [
    (["ce", "--logits", str(EX / "logits.npy"), "--target", str(EX / "targets.npy"), "-f", "plain"], 2,
     b"lossctl: error: stdout: cannot write the output: stdout is closed\n"),
    (["ce", "--logits", str(EX / "logits.npy"), "--target", str(EX / "targets.npy")], 2,
     b"lossctl: error: stdout: cannot write the output: stdout is closed\n"),
    (["list"], 2, b"lossctl: error: stdout: cannot write the output: stdout is closed\n"),
    (["--help"], 2, b"lossctl: error: stdout: cannot write the output: stdout is closed\n"),
    (["--version"], 2, b"lossctl: error: stdout: cannot write the output: stdout is closed\n"),
])
def test_a_closed_stdout_is_one_error_line_and_exit_2(args, code, line):
    """Started with stdout closed (`lossctl list >&-`), Python's sys.stdout is None: every command was an
    AttributeError traceback ('NoneType' object has no attribute 'isatty') and exit 1, which means a failed check;
    now the line of any stdout that cannot be written, and exit 2."""
    ran = subprocess.run([sys.executable, "-m", "lossctl", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         cwd=ROOT, timeout=120, preexec_fn=lambda: os.close(1))
    assert (ran.returncode, ran.stderr) == (code, line)


def test_a_closed_stdout_leaves_a_run_that_prints_nothing_alone(tmp_path):
    """grad -o writes a file and only a line on stderr: stdout closed is no error for it."""
    out = tmp_path / "g.npy"
    ran = subprocess.run([sys.executable, "-m", "lossctl", "grad", "ce", "--logits", "[[2.0, 1.0, 0.1]]", "--target",
                          "[0]", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                         timeout=120, preexec_fn=lambda: os.close(1))
    assert ran.returncode == 0, ran.stderr
    p = np.exp([2.0, 1.0, 0.1]) / np.exp([2.0, 1.0, 0.1]).sum()
    np.testing.assert_allclose(np.load(out), [p - [1.0, 0.0, 0.0]], rtol=1e-12)


KL_WARNED = ["kl", "--log-probs", "[[-1.0, -0.5]]", "--target", "[[0.5, 0.5]]", "-f", "plain"]  # mean: a warning


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("stderr", ["full", "closed"])
@pytest.mark.parametrize("args, code", [(KL_WARNED, 0), (["mse", "--input", "no-such.npy", "--target", "[1]"], 2),
                                        (["mse", "--input", "[1.0]", "--target", "[1.0]", "--expect", "5"], 1)])
def test_a_stderr_that_cannot_be_written_leaves_the_exit_code_to_the_run(stderr, args, code):
    """A warning or an error line that stderr could not take (2>/dev/full, 2>&-) was a traceback nobody saw and
    exit 1, which means a failed check: a warned kl exited 1 and a missing file 1 instead of 2 (with stderr
    closed the progress bar's sys.stderr.isatty() failed first, before anything was printed). The lines have
    nowhere to go; the exit code is the run's: 0 with the number on stdout, 2 for bad input, 1 for --expect."""
    with open("/dev/full", "w") as full:
        kw = {"stderr": full} if stderr == "full" else {"stderr": subprocess.DEVNULL, "preexec_fn": lambda: os.close(2)}
        ran = subprocess.run([sys.executable, "-m", "lossctl", *args], stdout=subprocess.PIPE, cwd=ROOT,
                             timeout=120, **kw)
    assert ran.returncode == code
    if args is KL_WARNED:  # KLDivLoss's mean: p (log p - x) over the 2 elements
        assert float(ran.stdout) == pytest.approx((0.5 * (math.log(0.5) + 1) + 0.5 * (math.log(0.5) + 0.5)) / 2,
                                                  rel=1e-12)


def _run_with_the_reader_gone(*args: str) -> subprocess.CompletedProcess:
    """lossctl writing into a pipe whose reader has already closed it (| true, | head that left)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "lossctl", *map(str, args)], stdout=write,
                              stderr=subprocess.PIPE, cwd=ROOT, timeout=120)
    finally:
        os.close(write)


@pytest.mark.parametrize("fmt", ["plain", "table"])
def test_a_reader_gone_early_keeps_a_failed_check_or_expect_at_exit_1(fmt):
    """A reader gone early made every run exit 0: `lossctl decompose ... | head` under pipefail, or `lossctl ce
    --expect X | true`, passed a CI job whose check or --expect had failed (README: exit 1)."""
    want = F.cross_entropy(torch.from_numpy(np.load(EX / "logits.npy")), torch.from_numpy(np.load(EX / "targets.npy")))
    ce = ["ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "-f", fmt]
    off = _run_with_the_reader_gone(*ce, "--expect", "1.0")
    assert off.returncode == 1
    assert off.stderr.decode().startswith("lossctl: expect: the loss is 1.42498")  # torch: 1.4249871
    assert off.stderr.decode().endswith(", expected 1.0: off by 0.424987 (relative 0.425; tolerance atol 1e-06 + "
                                        "rtol 1e-05 x |expected|)\n")
    assert _run_with_the_reader_gone(*ce, "--expect", repr(want.item())).returncode == 0
    strict = ["--atol", "0", "--rtol", "0"]  # float32 rounding fails these, as the README's example shows
    decompose = ["decompose", "--logits", EX / "logits.npy", "--target", EX / "target_probs.json", "-f", fmt]
    assert _run_with_the_reader_gone(*decompose, *strict).returncode == 1
    assert _run_with_the_reader_gone(*decompose).returncode == 0
    check = ["check", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "-f", fmt]
    assert _run_with_the_reader_gone(*check, *strict).returncode == 1
    assert _run_with_the_reader_gone(*check).returncode == 0


def test_by_class_over_files_of_different_classes_names_the_option_and_the_files(cli):
    """The error was 'lossctl: error: by-class sums of 4 and 3 classes do not add up': no option, no file."""
    args = ["ce", "--logits", EX / "logits.npy", "--logits", "[[1.0, 2.0, 0.5]]", "--target", EX / "targets.npy",
            "--target", "[2]"]
    ran = cli(*args, "--by-class", "-f", "csv", code=2)
    assert ran.stdout == ""
    assert ran.stderr == (f"lossctl: error: --by-class: [[1.0, 2.0, 0.5]] has 3 classes (or label columns) and "
                          f"{EX / 'logits.npy'} 4: their per-class rows do not add up; ask --by-class of each file "
                          "alone\n")
    x, t = torch.from_numpy(np.load(EX / "logits.npy")), torch.from_numpy(np.load(EX / "targets.npy"))
    total = (F.cross_entropy(x.double(), t, reduction="sum")
             + F.cross_entropy(torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64), torch.tensor([2]))) / 9
    assert float(cli(*args, "-f", "plain").stdout.splitlines()[-1]) == pytest.approx(total.item(), rel=1e-6)


def test_batchmean_csv_gives_the_rows_the_value_divides(cli):
    """KL batchmean's CSV said denominator 32.0 (the elements) beside a value of total / 8 (the rows): a pipeline
    adding the files' totals and denominators got the elementwise mean, not the batchmean. README: the partial
    sums' denominators are rows for batchmean."""
    x = torch.from_numpy(np.load(EX / "logits.npy"))
    p = torch.tensor(json.loads((EX / "target_probs.json").read_text()), dtype=torch.float32)
    want = F.kl_div(torch.log_softmax(x, 1), p, reduction="batchmean").item()
    one = ["--logits", EX / "logits.npy", "--target", EX / "target_probs.json"]
    for args in (one, one + one):
        frame = pd.read_csv(io.StringIO(cli("kl", *args, "--reduction", "batchmean", "-f", "csv").stdout))
        np.testing.assert_allclose(frame["value"], want, rtol=1.3e-6)
        np.testing.assert_allclose(frame["value"], frame["total"] / frame["denominator"], rtol=1e-12)
        assert frame["denominator"].tolist() == ([8.0] if args is one else [8.0, 8.0, 16.0])


def test_merge_reads_partials_from_standard_input(cli, tmp_path):
    """`lossctl merge -` said 'merge (-): cannot read ([Errno 2] No such file or directory: '-')': runs could not
    pipe their partials into it, as every array option reads '-'."""
    a = cli("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "--partials").stdout
    b = cli("ce", "--logits", EX / "logits.csv", "--target", EX / "targets.csv", "--partials").stdout
    (tmp_path / "b.json").write_text(b)
    x, t = torch.from_numpy(np.load(EX / "logits.npy")), torch.from_numpy(np.load(EX / "targets.npy"))
    want = F.cross_entropy(x.double(), t).item()  # the two shards hold the same data
    assert float(cli("merge", "-", "-f", "plain", input=a + b).stdout) == pytest.approx(want, rel=1e-6)
    assert float(cli("merge", "-", tmp_path / "b.json", "-f", "plain", input=a).stdout) == pytest.approx(want, rel=1e-6)
    twice = cli("merge", "-", "-", input=a, code=2)
    assert twice.stdout == "" and twice.stderr == ("lossctl: error: merge: standard input ('-') is read once: give it "
                                                   "once (its partials, one per line)\n")
    empty = cli("merge", "-", input="", code=2)
    assert empty.stderr == ("lossctl: error: merge (<stdin>): holds no partial (an empty file or list: did the run "
                            "that wrote it fail?)\n")


def test_check_and_decompose_name_their_backend(cli):
    """Every result names what computed it (README); check's and decompose's identities (torch's functions and
    autograd) said nothing of it."""
    version = f"torch {torch.__version__.split('+')[0]}"
    report = strict_json(cli("check", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "-f",
                             "json").stdout)
    assert report["backend"] == version and {c["backend"] for c in report["checks"]} == {version}
    args = ("decompose", "--logits", EX / "logits.npy", "--target", EX / "target_probs.json")
    assert strict_json(cli(*args, "-f", "json").stdout)["backend"] == version
    assert f"(float32, {version})" in cli(*args, "-f", "table", env={"COLUMNS": "200"}).stdout


def test_reduction_none_is_written_a_block_of_lines_at_a_time(cli, monkeypatch):
    """Millions of values were formatted into one string beside a list of their lines (402 MB of RSS to print 3.2M
    values, 2.8 GB for 25.6M): plain and CSV now write them a block at a time, each line as before."""
    from lossctl import render

    monkeypatch.setattr(render, "BLOCK", 3)  # 8 x 2 values: blocks of 3 split the rows and leave a short last one
    x, y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    want = F.mse_loss(x, y, reduction="none").numpy()
    args = ("mse", "--input", json.dumps(x.tolist()), "--target", json.dumps(y.tolist()), "--reduction", "none")
    plain = cli(*args, "-f", "plain").stdout.splitlines()
    np.testing.assert_allclose([float(v) for v in plain], want.reshape(-1), rtol=1e-12)
    rows = cli(*args, "-f", "csv").stdout.splitlines()
    assert rows[0] == "i0,i1,value" and len(rows) == 17
    assert [tuple(map(int, r.split(",")[:2])) for r in rows[1:]] == list(np.ndindex(8, 2))
    np.testing.assert_allclose([float(r.split(",")[2]) for r in rows[1:]], want.reshape(-1), rtol=1e-12)
    scalar = cli("mse", "--input", "2.0", "--target", "0.5", "--reduction", "none", "-f", "csv").stdout
    assert scalar == "value\n2.25\n"
    import lossctl

    result = lossctl.compute("mse", input=x.numpy(), target=y.numpy(), reduction="none")
    assert [len(b.splitlines()) for b in render.render(result, "plain")] == [3, 3, 3, 3, 3, 1]
    assert [len(b.splitlines()) for b in render.render(result, "csv")] == [1, 3, 3, 3, 3, 3, 1]  # the header first


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["ce", "--help"], ["grad", "ce", "--help"], ["--version"]])
def test_help_and_version_on_a_full_disk_are_one_error_line_and_exit_2(args):
    """What Click prints itself (--help, --version) escaped c4006f2's guard: on a full disk it was a 30-line OSError
    traceback and exit 1 (a failed check); now the same line as any output's, and exit 2."""
    with open("/dev/full", "w") as full:
        ran = subprocess.run([sys.executable, "-m", "lossctl", *args], stdout=full, stderr=subprocess.PIPE, cwd=ROOT,
                             timeout=120)
    assert ran.returncode == 2
    assert ran.stderr == b"lossctl: error: stdout: cannot write the output: No space left on device\n"
