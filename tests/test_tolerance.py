"""--atol/--rtol, one check for every command that takes them; --expect against non-finite values; and every
one of these refused before anything is read or printed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

import lossctl
from lossctl.errors import UsageError

LOGITS, TARGETS = str(ROOT / "examples/logits.npy"), str(ROOT / "examples/targets.npy")
CE = ["ce", "--logits", LOGITS, "--target", TARGETS, "-f", "plain"]
DECOMPOSE = ["decompose", "--logits", LOGITS, "--target", str(ROOT / "examples/target_probs.json")]
CHECK = ["check", "--logits", LOGITS, "--target", TARGETS]
BAD = {"nan": "nan", "inf": "inf", "-1": "-1.0", "-inf": "-inf"}


@pytest.mark.parametrize("command", [CE + ["--expect", "1.42"], CE, DECOMPOSE, CHECK], ids=lambda c: c[0] + str(len(c)))
@pytest.mark.parametrize("option", ["--atol", "--rtol"])
@pytest.mark.parametrize("value", list(BAD))
def test_a_tolerance_that_is_not_finite_and_non_negative_is_a_usage_error(cli, command, option, value):
    res = cli(*command, f"{option}={value}", code=2)
    assert res.stdout == ""
    assert res.stderr == f"lossctl: error: {option}: must be a finite number >= 0; got {BAD[value]}\n"


def test_the_library_refuses_the_same_tolerances():
    for kwargs in ({"atol": math.nan}, {"rtol": math.inf}, {"atol": -1.0}):
        with pytest.raises(UsageError, match="must be a finite number >= 0"):
            lossctl.decompose(logits=LOGITS, target=str(ROOT / "examples/target_probs.json"), **kwargs)
        with pytest.raises(UsageError, match="must be a finite number >= 0"):
            lossctl.api.expectation(lossctl.compute("ce", logits=[[1.0, 2.0]], target=[0]), 1.3, **kwargs)


def test_zero_tolerances_are_allowed(cli):
    want = F.cross_entropy(torch.from_numpy(np.load(LOGITS)), torch.from_numpy(np.load(TARGETS)))
    res = cli(*CE, "--expect", repr(float(want)), "--atol", "0", "--rtol", "1e-6")
    assert float(res.stdout) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("expect", ["inf", "-inf", "nan"])
def test_a_non_finite_expect_fails_a_finite_loss(cli, expect):
    want = float(F.cross_entropy(torch.from_numpy(np.load(LOGITS)), torch.from_numpy(np.load(TARGETS))))
    assert math.isfinite(want)
    res = cli(*CE, "--expect", expect, code=1)
    assert res.stderr.endswith(f", expected {expect} (a non-finite value matches only itself)\n")


def test_a_non_finite_expect_matches_only_the_same_value(cli, tmp_path):
    x = np.array([[-np.inf, 0.0], [0.0, 1.0]])  # a masked logit at the target: torch's loss is inf
    np.save(tmp_path / "x.npy", x)
    want = float(F.cross_entropy(torch.from_numpy(x), torch.tensor([0, 1])))
    assert want == math.inf
    args = ["ce", "--logits", str(tmp_path / "x.npy"), "--target", "[0, 1]", "-f", "plain"]
    assert cli(*args, "--expect", "inf").stdout == "inf\n"
    for other in ("-inf", "nan", "1e308"):
        res = cli(*args, "--expect", other, code=1)
        assert res.stderr.splitlines()[-1] == (f"lossctl: expect: the loss is inf, expected {float(other)!r} (a "
                                               "non-finite value matches only itself)")


def test_expect_nan_passes_only_for_nan(cli, tmp_path):
    x = np.array([[-np.inf, -np.inf], [0.0, 1.0]])  # every logit of a row masked: torch's loss is nan
    np.save(tmp_path / "x.npy", x)
    assert math.isnan(float(F.cross_entropy(torch.from_numpy(x), torch.tensor([0, 1]))))
    args = ["ce", "--logits", str(tmp_path / "x.npy"), "--target", "[0, 1]", "-f", "plain"]
    assert cli(*args, "--expect", "nan").stdout == "nan\n"
    for other in ("inf", "1"):
        res = cli(*args, "--expect", other, code=1)
        assert res.stderr.splitlines()[-1] == (f"lossctl: expect: the loss is nan, expected {float(other)!r} (a "
                                               "non-finite value matches only itself)")


@pytest.mark.parametrize("args, line", [
    (CE + ["--reduction", "none", "--expect", "1"],
     "--expect: needs a reduced loss (--reduction mean, sum or batchmean); ce computes reduction none here"),
    (["cosine-similarity", "--x1", "[[1.0, 2.0]]", "--x2", "[[1.0, 2.5]]", "--expect", "0.9"],
     "--expect: needs a reduced loss (--reduction mean, sum or batchmean); cosine-similarity computes reduction "
     "none here"),
    (CE + ["--expect", "1.42", "--partials"],
     "--expect: a partial is not the loss; give --expect to lossctl merge, which checks the total"),
    (CE + ["--expect", "1.42", "--rtol", "nan"], "--rtol: must be a finite number >= 0; got nan"),
    (CE + ["--rtol", "nan"], "--rtol: must be a finite number >= 0; got nan"),
    (CE + ["--atol", "1e-3"], "--atol: applies to --expect, which is not given: without it nothing is compared; add "
     "--expect VALUE"),
    (["merge", str(ROOT / "README.md"), "--rtol", "0.1"], "--rtol: applies to --expect, which is not given: without "
     "it nothing is compared; add --expect VALUE"),
])
def test_expect_options_are_refused_before_anything_is_printed(cli, args, line):
    """Each refused before anything is read (merge's README.md is no partial). A tolerance without --expect was
    once accepted and did nothing: a CI job that forgot --expect passed whatever the loss."""
    res = cli(*args, code=2)
    assert res.stdout == "" and res.stderr == f"lossctl: error: {line}\n"


def test_merge_pins_the_total_of_partials(cli, tmp_path):
    """--expect refused --partials with 'check the total that lossctl merge prints', but merge had no --expect: a
    sharded CI job could not pin its loss. merge takes --expect, --rtol and --atol as a loss command does."""
    part = tmp_path / "a.json"
    part.write_text(cli("ce", "--logits", LOGITS, "--target", TARGETS, "--partials").stdout)
    want = float(F.cross_entropy(torch.from_numpy(np.load(LOGITS)), torch.from_numpy(np.load(TARGETS))))
    merge = ["merge", str(part), str(part), "-f", "plain"]
    ok = cli(*merge, "--expect", repr(want))
    assert float(ok.stdout) == pytest.approx(want, rel=1e-6) and ok.stderr == ""
    off = cli(*merge, "--expect", repr(want * 1.01), code=1)
    assert float(off.stdout) == pytest.approx(want, rel=1e-6)
    assert off.stderr.startswith(f"lossctl: expect: the loss is {float(off.stdout)!r}, expected {want * 1.01!r}: "
                                 "off by")
    assert cli(*merge, "--expect", repr(want * 1.01), "--rtol", "0.02").exit_code == 0
    bad = cli(*merge, "--expect", "1", "--atol", "inf", code=2)
    assert bad.stdout == "" and bad.stderr == "lossctl: error: --atol: must be a finite number >= 0; got inf\n"
    cal = tmp_path / "c.json"
    cal.write_text(cli("calibration", "--logits", LOGITS, "--target", TARGETS, "--partials").stdout)
    res = cli("merge", str(cal), "--expect", "inf", "-f", "plain", code=1)
    assert res.stderr.endswith(f"lossctl: expect: the calibration error is {float(res.stdout)!r}, expected inf (a "
                               "non-finite value matches only itself)\n")
