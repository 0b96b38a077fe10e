"""Many files per run (globs, repeated options), --partials and merge through the CLI; --device."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_cli

import lossctl
from lossctl import stream

RNG = np.random.default_rng(11)


def invoke(*args):
    return run_cli(*[str(a) for a in args], code=None)


@pytest.fixture
def shards(tmp_path):
    xs, ts = [], []
    for i in range(4):
        x, t = RNG.standard_normal((5 + i, 6)).astype(np.float32), RNG.integers(0, 6, 5 + i)
        t[0] = -100
        np.save(tmp_path / f"l{i}.npy", x)
        np.save(tmp_path / f"t{i}.npy", t)
        xs.append(x)
        ts.append(t)
    return tmp_path, np.concatenate(xs), np.concatenate(ts), xs, ts


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_glob_gives_one_row_per_file_and_the_exact_total(shards, reduction):
    d, x, t, xs, ts = shards
    res = invoke("ce", "--logits", d / "l*.npy", "--target", d / "t*.npy", "--reduction", reduction, "-f", "plain")
    assert res.exit_code == 0, res.output
    values = [float(v) for v in res.stdout.split()]
    want = [float(F.cross_entropy(torch.from_numpy(a), torch.from_numpy(b), reduction=reduction))
            for a, b in zip(xs, ts, strict=True)]
    want.append(float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction=reduction)))
    np.testing.assert_allclose(values, want, rtol=2e-6)


def test_repeated_options_and_json_total(shards):
    d, x, t, _, _ = shards
    res = invoke("ce", "--logits", d / "l0.npy", "--logits", d / "l1.npy", "--target", d / "t0.npy",
                 "--target", d / "t1.npy", "-f", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [f["file"] for f in doc["files"]] == [str(d / "l0.npy"), str(d / "l1.npy")]
    n0, n1 = 5, 6
    want = F.cross_entropy(torch.from_numpy(x[:n0 + n1]), torch.from_numpy(t[:n0 + n1]))
    assert doc["total"]["value"] == pytest.approx(float(want), rel=2e-6)


def test_counts_must_match_and_a_bad_file_is_named(shards):
    d, *_ = shards
    res = invoke("ce", "--logits", d / "l*.npy", "--target", d / "t[01].npy")
    assert res.exit_code == 2
    assert "--logits has 4, --target has 2" in res.stderr
    (d / "l2.npy").write_bytes(b"\x93NUMPY garbage")
    res = invoke("ce", "--logits", d / "l*.npy", "--target", d / "t*.npy", "-f", "plain")
    assert res.exit_code == 2
    assert str(d / "l2.npy") in res.stderr and res.stdout == ""
    assert "Traceback" not in res.output


def test_no_match_is_an_error(tmp_path):
    res = invoke("ce", "--logits", tmp_path / "nothing*.npy", "--target", "[0]")
    assert res.exit_code == 2 and "matches no file" in res.stderr


def test_partials_then_merge_equals_single_pass(shards, tmp_path):
    d, x, t, _, _ = shards
    parts = []
    for pattern in ("[01]", "[23]"):
        res = invoke("ce", "--logits", d / f"l{pattern}.npy", "--target", d / f"t{pattern}.npy", "--partials")
        assert res.exit_code == 0, res.output
        path = tmp_path / f"p{len(parts)}.json"
        path.write_text(res.stdout)
        parts.append(path)
    res = invoke("merge", *parts, "-f", "plain")
    assert res.exit_code == 0, res.output
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))
    assert float(res.stdout) == pytest.approx(float(want), rel=2e-6)



def test_focal_files_of_its_two_forms_give_no_total(tmp_path):
    """(N) whole-number targets are focal's multi-class form, (N, C) 0/1 labels its sigmoid form: two losses, whose
    sums were added into one 'mean over 8 targets' (a mean over 2 targets and one over 6 elements)."""
    x = np.array([[1.0, 2.0, 0.5], [0.3, 0.2, 0.1]])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "index.npy", np.array([0.0, 2.0]))
    np.save(tmp_path / "labels.npy", np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    files = {k: str(tmp_path / f"{k}.npy") for k in ("x", "index", "labels")}
    res = run_cli("focal", "--logits", files["x"], "--logits", files["x"], "--target", files["index"], "--target",
                  files["labels"], code=2)
    assert res.stdout == "" and res.stderr == (
        f"lossctl: error: --target: {files['labels']} gives the sigmoid (0/1 labels) form and {files['index']} the "
        "multi-class (softmax, index targets) form: their sums do not add up to one loss\n")  # the files that differ
    parts = []
    for target in ("index", "labels"):
        parts.append(tmp_path / f"{target}.json")
        parts[-1].write_text(run_cli("focal", "--logits", files["x"], "--target", files[target], "--partials").stdout)
    assert run_cli("merge", *map(str, parts), code=2).stderr == (
        "lossctl: error: merge: cannot merge partials of two forms of the loss, multi-class (softmax, index targets) "
        "and sigmoid (0/1 labels): their sums do not add up to one loss\n")
    # one form in both files still adds up: the multi-class focal loss of the concatenated batch, written out
    both = run_cli("focal", "--logits", files["x"], "--logits", files["x"], "--target", files["index"], "--target",
                   files["index"], "-f", "plain").stdout.splitlines()
    logp = torch.log_softmax(torch.tensor(np.concatenate([x, x])), 1)[torch.arange(4), torch.tensor([0, 2, 0, 2])]
    assert float(both[-1]) == pytest.approx(float((-0.25 * (1 - logp.exp()) ** 2 * logp).mean()), rel=1e-12)
    # a partial of a lossctl before forms (constants without 'form') still merges with one that names its form
    new = json.loads(run_cli("focal", "--logits", files["x"], "--target", files["index"], "--partials").stdout)
    old = {**new, "constants": {k: v for k, v in new["constants"].items() if k != "form"}}
    assert "form" in new["constants"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    merged = run_cli("merge", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "-f", "plain").stdout
    assert float(merged) == pytest.approx(float((-0.25 * (1 - logp.exp()) ** 2 * logp).mean()), rel=1e-12)

def test_merge_rejects_other_json(tmp_path):
    (tmp_path / "x.json").write_text('{"value": 1}')
    res = invoke("merge", tmp_path / "x.json")
    assert res.exit_code == 2 and "not a lossctl partial" in res.stderr


@pytest.mark.parametrize("kind", ['["lossctl-partial"]', '{"a": 1}', "1", "null"])
def test_merge_refuses_a_kind_that_is_no_string(tmp_path, kind):
    """A 'kind' of a list or an object was looked up among the kinds' names: an unhashable-type traceback."""
    path = tmp_path / "x.json"
    path.write_text(f'{{"kind": {kind}, "version": 1}}')
    res = run_cli("merge", str(path), code=2)
    assert res.stderr == f"lossctl: error: merge ({path}): not a lossctl partial (made by --partials)\n"


def test_partials_refuse_reduction_none(shards):
    d, *_ = shards
    res = invoke("ce", "--logits", d / "l0.npy", "--target", d / "t0.npy", "--reduction", "none", "--partials")
    assert res.exit_code == 2 and "--partials" in res.stderr


def test_progress_callback_reports_every_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 64)
    x, t = RNG.standard_normal((40, 4)).astype(np.float32), RNG.integers(0, 4, 40)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    seen = []
    from lossctl.pipeline import settings
    from lossctl.route import evaluate
    from lossctl.specs import get_loss

    spec = get_loss("ce")
    r = evaluate(spec, {"logits": str(tmp_path / "x.npy"), "target": str(tmp_path / "t.npy")},
                 settings(spec, {}), stream=True, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) == 10 and seen[-1][0] == seen[-1][1]
    assert r.value == pytest.approx(float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))), rel=2e-6)


def test_device_cuda_without_one_is_a_usage_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    res = invoke("ce", "--logits", "[[1.0, 2.0]]", "--target", "[0]", "--device", "cuda")
    assert res.exit_code == 2 and "--device" in res.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["ce", "kl", "bce"])
def test_cuda_equals_cpu(name):
    x = RNG.standard_normal((16, 5)).astype(np.float32)
    if name == "ce":
        kw = {"logits": x, "target": RNG.integers(0, 5, 16)}
    elif name == "kl":
        kw = {"logits": x, "target": np.full((16, 5), 0.2, np.float32), "reduction": "batchmean"}
    else:
        kw = {"logits": x, "target": RNG.integers(0, 2, (16, 5)).astype(np.float32)}
    cpu = lossctl.compute(name, **kw).value
    assert lossctl.compute(name, device="cuda", **kw).value == pytest.approx(cpu, rel=1e-5)


def test_a_shard_with_every_target_ignored_still_adds_up(shards, tmp_path):
    d, x, t, xs, ts = shards
    ignored = np.full_like(ts[1], -100)
    np.save(d / "t1.npy", ignored)
    all_t = np.concatenate([ts[0], ignored, ts[2], ts[3]])
    want = float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(all_t)))
    res = invoke("ce", "--logits", d / "l*.npy", "--target", d / "t*.npy", "-f", "plain")
    assert res.exit_code == 0, res.output
    values = res.stdout.split()
    assert values[1] == "nan" and float(values[-1]) == pytest.approx(want, rel=2e-6)
    res = invoke("ce", "--logits", d / "l1.npy", "--target", d / "t1.npy", "--partials")
    assert res.exit_code == 0 and json.loads(res.stdout)["partial"]["denominator"] == 0
    res = invoke("ce", "--logits", d / "l1.npy", "--target", d / "t1.npy")
    assert res.exit_code == 2 and "ignore-index" in res.stderr


def test_bad_format_is_refused_before_any_work(shards):
    d, *_ = shards
    res = invoke("ce", "--logits", d / "l0.npy", "--target", d / "t0.npy", "-f", "bogus")
    assert res.exit_code == 2 and res.stderr.startswith("lossctl: error: --format")


def test_many_files_reduction_none_csv_has_every_value(shards):
    d, x, t, _, _ = shards
    res = invoke("ce", "--logits", d / "l*.npy", "--target", d / "t*.npy", "--reduction", "none", "-f", "csv")
    lines = res.stdout.splitlines()
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none").numpy()
    assert lines[0] == "i0,value" and len(lines) == len(want) + 1
    np.testing.assert_allclose([float(ln.split(",")[1]) for ln in lines[1:]], want, rtol=2e-6)


def test_paired_weight_files_that_differ_are_refused(shards, tmp_path):
    d, *_ = shards
    np.save(tmp_path / "w0.npy", np.ones(6))
    np.save(tmp_path / "w1.npy", np.full(6, 2.0))
    res = invoke("ce", "--logits", d / "l0.npy", "--logits", d / "l1.npy", "--target", d / "t0.npy",
                 "--target", d / "t1.npy", "--weight", tmp_path / "w0.npy", "--weight", tmp_path / "w1.npy")
    assert res.exit_code == 2 and "--weight" in res.stderr


def _partial_file(tmp_path, name, edit):
    """A partial made by --partials, then edited by hand."""
    doc = json.loads(invoke("ce", "--logits", ROOT / "examples/logits.npy", "--target", ROOT / "examples/targets.npy",
                            "--partials").stdout)
    edit(doc)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


MALFORMED = {  # an edit to a good partial, and what merge says of it
    "total a string": (lambda d: d["partial"].update(total="abc"), "'partial.total' is a string ('abc'), not a number"),
    "no partial": (lambda d: d.pop("partial"), "no 'partial'"),
    "partial a list": (lambda d: d.update(partial=[1, 2]), "'partial' is a list, not an object"),
    "options a string": (lambda d: d.update(options="x"), "'options' is a string ('x'), not an object"),
    "count a bool": (lambda d: d["partial"].update(count=True), "'partial.count' is true, not an integer"),
    "option of a wrong type": (lambda d: d["options"].update(ignore_index="a"),
                               "'options.ignore_index' is a string ('a'), not an integer"),
    "unknown option": (lambda d: d["options"].update(foo=1), "--foo: ce has no option --foo"),
    "unknown reduction": (lambda d: d.update(reduction="max"),
                          "--reduction: must be one of mean, sum, none for ce; got 'max'"),
    "negative count": (lambda d: d["partial"].update(total=1.5, count=-1), "'partial' has impossible counts: "
                       "{'total': 1.5, 'denominator': 8.0, 'count': -1, 'ignored': 0, 'rows': 8}"),
    "other version": (lambda d: d.update(version=2), "version 2; this lossctl reads version 1"),
    "pending not findings": (lambda d: d.update(pending=[{"key": "k", "text": 1, "extent": None}]),
                             "'pending[0].text' is an integer (1), not a string"),
    "pending extent short": (lambda d: d.update(pending=[{"key": "k", "text": "t", "extent": [1, 0.5]}]),
                             "'pending[0].extent' is 5 numbers (values, least, largest, values needed, spread needed)"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_merge_names_the_file_and_what_is_wrong_with_a_malformed_partial(cli, tmp_path, case):
    edit, problem = MALFORMED[case]
    path = _partial_file(tmp_path, "p", edit)
    assert cli("merge", path, code=2).stderr == f"lossctl: error: merge ({path}): not a lossctl partial: {problem}\n"


def test_merge_refuses_json_nested_too_deeply(cli, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert cli("merge", path, code=2).stderr == (f"lossctl: error: merge ({path}): not a lossctl partial: its JSON is "
                                                 "nested too deeply\n")


def test_merge_refuses_a_malformed_calibration_partial(cli, tmp_path):
    res = cli("calibration", "--probs", ROOT / "examples/probs_binary.npy", "--target",
              ROOT / "examples/targets_binary.csv", "--bins", "5", "--partials")
    doc = json.loads(res.stdout)
    for edit, problem in ((lambda d: d.pop("task"), "no 'task'"),
                          (lambda d: d.update(bins="x"), "'bins' is a string ('x'), not an integer"),
                          (lambda d: d.update(warnings=5), "'warnings' is an integer (5), not a list"),
                          (lambda d: d.update(bins=4), "'partial' needs 5 entries in each list ('bins' + 1)"),
                          (lambda d: d["partial"]["count"].__setitem__(0, "a"),
                           "'partial.count' holds something other than numbers"),
                          (lambda d: d["partial"]["conf_sum"].__setitem__(0, [1]),
                           "'partial.conf_sum' holds something other than numbers"),
                          (lambda d: d["partial"].update(edges=d["partial"]["edges"][::-1]),
                           "'partial.edges' must ascend from 0 to 1")):
        bad = json.loads(json.dumps(doc))
        edit(bad)
        path = tmp_path / "c.json"
        path.write_text(json.dumps(bad))
        want = f"lossctl: error: merge ({path}): not a lossctl partial: {problem}\n"
        assert cli("merge", path, code=2).stderr == want


def test_merged_mean_without_denominator_names_the_files_not_an_option(cli, tmp_path):
    """torch's mean over partials whose targets are all ignored, or whose class weights sum to 0, is nan; merge
    says so of the files it was given (no --target or --weight was)."""
    x = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]])
    cases = {"ignored": (["--target", "[-100, -100]"], "all 4 targets equal --ignore-index"),
             "weights": (["--target", "[0, 1]", "--weight", "[0, 0, 1]"], "the targets' class weights sum to 0")}
    for name, (args, reason) in cases.items():
        shard = cli("ce", "--logits", json.dumps(x.tolist()), *args, "--partials")
        path = tmp_path / f"{name}.json"
        path.write_text(shard.stdout)
        t, w = np.array(json.loads(args[1])), json.loads(args[3]) if len(args) > 2 else None
        whole = F.cross_entropy(torch.from_numpy(np.concatenate([x, x])), torch.from_numpy(np.concatenate([t, t])),
                                weight=None if w is None else torch.tensor(w, dtype=torch.float64))
        assert torch.isnan(whole)
        assert cli("merge", path, path, code=2).stderr == (
            f"lossctl: error: merge ({path}, {path}): the merged mean has no denominator: {reason} (torch returns "
            "nan here); merge partials made with --reduction sum instead\n")


def test_merge_of_hand_made_sums_with_denominator_0(cli, tmp_path):
    path = _partial_file(tmp_path, "p", lambda d: d["partial"].update(total=2.0, denominator=0))
    assert cli("merge", path, code=2).stderr == (
        f"lossctl: error: merge ({path}): the merged mean has no denominator: their denominators sum to 0 (torch "
        "returns ±inf here); merge partials made with --reduction sum instead\n")


def test_files_that_cannot_add_up_name_what_differs():
    """Other weights per file, or the same weights over index and probability targets (a weighted mean beside a
    mean over N): the second was reported as 'computed with another weight'."""
    ex = ROOT / "examples"
    both = ("--logits", ex / "logits.npy", "--logits", ex / "logits.csv")
    res = invoke("ce", *both, "--target", ex / "targets.npy", "--target", ex / "target_probs.json", "--weight",
                 ex / "class_weights.json", "-f", "plain")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (f"lossctl: error: --target: {ex / 'logits.csv'} and {ex / 'logits.npy'} give one weighted "
                          "mean (class-index targets with --weight: divided by the sum of the targets' weights) and "
                          "one mean over N (probability targets): their sums do not add up to one loss\n")
    res = invoke("ce", *both, "--target", ex / "targets.npy", "--target", ex / "targets.csv", "--weight",
                 ex / "class_weights.json", "--weight", "[1, 1, 1, 1]", "-f", "plain")
    assert res.exit_code == 2
    assert res.stderr == (f"lossctl: error: --weight: {ex / 'logits.csv'} was computed with another weight than "
                          f"{ex / 'logits.npy'}: their sums do not add up to one loss\n")


def test_the_files_loss_notes_reach_the_total_and_merge(cli, tmp_path):
    """What each file's computation notes (ctc --zero-infinity's count, its mean; an int32 target) once showed only
    in JSON's per-file rows: the total of several files and a merge of their partials dropped them, so the table
    said nothing of them. A note every file gives is said once, as each file's; another names its file."""
    torch.manual_seed(0)
    lp = torch.randn(6, 2, 5).log_softmax(-1)
    t, il, tl = torch.tensor([[1, 2, 3, 4, 1, 2, 3], [1, 2, 1, 1, 1, 1, 1]]), torch.tensor([6, 6]), torch.tensor([7, 2])
    zeroed = int(F.ctc_loss(lp, t, il, tl, reduction="none").isinf().sum())
    assert zeroed == 1
    for i in range(2):
        for name, a in (("lp", lp), ("t", t), ("il", il), ("tl", tl)):
            np.save(tmp_path / f"{name}{i}.npy", a.numpy())
    args = ["ctc", "--zero-infinity"]
    for opt, name in (("--log-probs", "lp"), ("--target", "t"), ("--input-lengths", "il"), ("--target-lengths", "tl")):
        args += [opt, str(tmp_path / f"{name}?.npy")]
    want = (f"each file: --zero-infinity set the infinite loss of {zeroed} of 2 sequences to 0 (no alignment of "
            "non-zero probability); it still counts in the mean's denominator, as torch counts them")
    total = json.loads(cli(*args, "-f", "json").stdout)["total"]
    assert want in total["notes"]
    mean = "each file: mean: each loss is divided by its target length, then averaged over the sequences"
    assert mean in total["notes"]
    parts = []
    for i in range(2):
        one = [a.replace("?", str(i)) for a in args]
        parts.append(tmp_path / f"part{i}.json")
        parts[-1].write_text(cli(*one, "--partials").stdout)
    assert want in json.loads(cli("merge", *parts, "-f", "json").stdout)["notes"]
    x = RNG.standard_normal((4, 3))
    np.save(tmp_path / "x0.npy", x)
    np.save(tmp_path / "x1.npy", x)
    np.save(tmp_path / "t32.npy", np.array([0, 1, 2, 0], np.int32))
    np.save(tmp_path / "t64.npy", np.array([0, 1, 2, 0], np.int64))
    mixed = json.loads(cli("ce", "--logits", tmp_path / "x0.npy", "--logits", tmp_path / "x1.npy", "--target",
                           tmp_path / "t32.npy", "--target", tmp_path / "t64.npy", "-f", "json").stdout)["total"]
    assert [n for n in mixed["notes"] if "int32" in n] == [
        f"{tmp_path / 'x0.npy'}: --target holds int32 class indices, read as the whole numbers they are; torch "
        "refuses class indices of dtype int32 (it takes int64 or uint8: target.long())"]


def test_a_merge_says_it_has_no_baselines_where_one_run_of_the_files_has_them(cli, tmp_path):
    """A partial carries the loss's sums only: merge printed no baselines and no word of them."""
    d = ROOT / "examples"
    parts = []
    for name, ext in (("a", "npy"), ("b", "csv")):
        parts.append(tmp_path / f"{name}.json")
        parts[-1].write_text(cli("ce", "--logits", d / f"logits.{ext}", "--target", d / f"targets.{ext}",
                                 "--partials").stdout)
    merged = json.loads(cli("merge", *parts, "-f", "json").stdout)
    note = ("baselines: a partial carries the loss's sums only, so a merge has none; give the files to one run "
            "(several files or a glob) for them")
    assert "baselines" not in merged and note in merged["notes"]
    together = json.loads(cli("ce", "--logits", d / "logits.npy", "--logits", d / "logits.csv", "--target",
                              d / "targets.npy", "--target", d / "targets.csv", "-f", "json").stdout)["total"]
    t = torch.from_numpy(np.load(d / "targets.npy"))
    prior = torch.bincount(t, minlength=4).double() / len(t)  # the same targets twice: the same frequencies
    want = -(prior * prior.log()).nansum().item()
    assert together["baselines"]["prior"]["value"] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("form", ["jsonl", "npz"])
def test_from_stdin_with_several_files_reads_it_once_for_every_set(cli, tmp_path, form):
    """--from - beside a repeated option: standard input was read again for the second set ('empty input')."""
    x0, x1, t = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4)), np.array([0, 3, 1])
    np.save(tmp_path / "x0.npy", x0)
    np.save(tmp_path / "x1.npy", x1)
    if form == "jsonl":
        data = "".join(json.dumps({"id": f"s{i}", "target": int(v)}) + "\n" for i, v in enumerate(t)).encode()
    else:
        buf = io.BytesIO()
        np.savez(buf, target=t)
        data = buf.getvalue()
    args = ["--from", "-", "--logits", tmp_path / "x0.npy", "--logits", tmp_path / "x1.npy", "-f", "plain"]
    ran = cli("ce", *args, input=data)
    want = [F.cross_entropy(torch.from_numpy(a), torch.from_numpy(t)).item() for a in (x0, x1)]
    got = [float(v) for v in ran.stdout.split()]
    assert got[:2] == pytest.approx(want, rel=1e-12)
    ce_total = F.cross_entropy(torch.from_numpy(np.concatenate([x0, x1])), torch.from_numpy(np.tile(t, 2))).item()
    assert got[2] == pytest.approx(ce_total, rel=1e-12)
    cal = cli("calibration", *args, input=data)
    assert len(cal.stdout.split()) == 3
    assert cli("ce", *args[:2], "--target", "-", "--logits", tmp_path / "x0.npy", "--logits", tmp_path / "x1.npy",
               input=data, code=2).stderr == ("lossctl: error: --from: only one option may read standard input; "
                                              "--target, --from all ask for '-'\n")


def test_each_set_is_named_by_the_file_that_differs(cli, tmp_path):
    """A shared --logits (or a shared --from - read once) names no set: the --target files do."""
    x = RNG.standard_normal((6, 3))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "xb.npz", logits=x)
    ys = [RNG.integers(0, 3, 6) for _ in range(2)]
    for i, y in enumerate(ys):
        np.save(tmp_path / f"y{i}.npy", y)
    targets = ["--target", str(tmp_path / "y0.npy"), "--target", str(tmp_path / "y1.npy")]
    want = F.cross_entropy(torch.from_numpy(np.concatenate([x, x])), torch.from_numpy(np.concatenate(ys))).item()
    for args, stdin in ((["--logits", str(tmp_path / "x.npy")], None), (["--from", "-"], (tmp_path / "xb.npz"))):
        doc = json.loads(cli("ce", *args, *targets, "-f", "json",
                             input=stdin.read_bytes() if stdin else None).stdout)
        assert [f["file"] for f in doc["files"]] == [str(tmp_path / "y0.npy"), str(tmp_path / "y1.npy")]
        assert doc["total"]["value"] == pytest.approx(want, rel=1e-12)


def test_merging_partials_of_several_files_says_each_files_note_once(cli, tmp_path):
    """A partial of several files holds 'each file: ...' notes; a merge of two such took them for the partial's
    own and said 'each file: each file: ...'."""
    x = RNG.standard_normal((6, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", np.array([1.0, 2.0, 3.0]))
    for i in range(2):
        np.save(tmp_path / f"y{i}.npy", RNG.integers(0, 3, 6))
    ran = cli("ce", "--logits", str(tmp_path / "x.npy"), "--logits", str(tmp_path / "x.npy"), "--target",
              str(tmp_path / "y0.npy"), "--target", str(tmp_path / "y1.npy"), "--weight", str(tmp_path / "w.npy"),
              "--partials")
    (tmp_path / "m.json").write_text(ran.stdout)
    notes = json.loads(cli("merge", str(tmp_path / "m.json"), str(tmp_path / "m.json"), "-f", "json").stdout)["notes"]
    weighted = [n for n in notes if "weighted mean" in n]
    assert len(weighted) == 1 and weighted[0].startswith("each file: weighted mean")
