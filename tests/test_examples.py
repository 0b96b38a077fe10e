"""The transcripts in examples/README.md and README.md: every `$ lossctl` line runs and exits as shown, and
every number shown in examples/README.md is what torch computes (each command has a reference below, written
out with torch.nn as the tutorial writes it). Also: examples/make_examples.py rewrites the committed files
byte for byte.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TUTORIAL = EXAMPLES / "README.md"
README = ROOT / "README.md"

# lossctl sums float32 losses in float64, torch in float32: they agree to about 1e-7 relative.
F32 = {"rtol": 2e-5, "atol": 2e-6}
F64 = {"rtol": 1e-12, "atol": 1e-13}


# ---------------------------------------------------------------------------------------------------------
# Reading a transcript: ```console (or ```sh) blocks of `$ command` lines, each followed by its output.


@dataclass
class Shown:
    """One `$` line of a transcript and what the document shows after it."""

    doc: str
    lineno: int
    command: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)  # shown lines that start with "lossctl:"
    exit_code: int = 0  # from a following `$ echo $?`, else 0

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.lineno}"


FENCE = re.compile(r"^```(\w*)\s*$")


def parse_transcripts(path: Path) -> list[Shown]:
    doc = str(path.relative_to(ROOT))
    shown: list[Shown] = []
    lang = None
    current: Shown | None = None  # the command whose output the next lines are
    expect_code = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            lang = None if lang is not None else fence.group(1)
            current, expect_code = None, False
            continue
        if lang not in ("console", "sh"):
            continue
        if line.startswith("$ "):
            command = line[2:].strip()
            expect_code = command == "echo $?"
            if not expect_code:
                current = Shown(doc, n, command)
                shown.append(current)
        elif current is not None and expect_code:
            current.exit_code = int(line.strip())
            expect_code = False
        elif current is not None:
            (current.stderr if line.startswith("lossctl:") else current.stdout).append(line)
    return shown


# ---------------------------------------------------------------------------------------------------------
# Running a line: a plain `lossctl ...` in-process (torch is imported once); anything with a pipe or a
# redirection through bash, with `lossctl` meaning this interpreter's `python -m lossctl`.


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str


def shell_free(command: str) -> list[str] | None:
    """The arguments of a plain `lossctl ...` line; None when it needs a shell (a pipe, a redirection)."""
    lex = shlex.shlex(command, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    args = list(lex)
    if args[0] != "lossctl" or any(a and set(a) <= set("();<>|&") for a in args):
        return None
    return args


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    bindir = tmp_path_factory.mktemp("bin")
    for name, run in (("lossctl", "-m lossctl"), ("python", "")):  # this interpreter, whatever PATH holds
        script = bindir / name
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {run} "$@"\n')
        script.chmod(0o755)
    return bindir


def run_line(command: str, cli, shim: Path, monkeypatch) -> Ran:
    # The README's /tmp/ files live in this run's own directory: runs of the suite side by side share no file.
    scratch = shim / "tmp"
    scratch.mkdir(exist_ok=True)
    command = command.replace("/tmp/", f"{scratch}/")
    args = shell_free(command)
    if args is not None:
        monkeypatch.chdir(ROOT)
        res = cli(*args[1:], code=None)
        ran = Ran(res.exit_code, res.stdout, res.stderr)
    else:
        env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore"}
        env.pop("FORCE_COLOR", None)
        proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        ran = Ran(proc.returncode, proc.stdout, proc.stderr)
    return Ran(ran.exit_code, ran.stdout.replace(f"{scratch}/", "/tmp/"), ran.stderr.replace(f"{scratch}/", "/tmp/"))


# ---------------------------------------------------------------------------------------------------------
# Comparing output with a reference: plain (tab-separated) and csv output become rows of cells, numbers
# compared with a tolerance and words exactly; json output is compared on the keys the reference names.


def output_format(command: str) -> str:
    if "json.tool" in command:
        return "json"
    m = re.search(r"(?:-f|--format)[ =](\w+)", command)
    return m.group(1) if m else "plain"


def cell(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def parse_output(text: str, fmt: str):
    if fmt == "json":
        return json.loads(text)
    sep = "," if fmt == "csv" else "\t"
    return [[cell(c) for c in line.split(sep)] for line in text.splitlines() if line.strip()]


def assert_matches(expected, got, tol: dict, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{where}: expected an object, got {got!r}"
        for key, value in expected.items():
            assert key in got, f"{where}: no key {key!r} in {sorted(got)}"
            assert_matches(value, got[key], tol, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: expected {expected!r}, got {got!r}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_matches(e, g, tol, f"{where}[{i}]")
    elif isinstance(expected, bool) or isinstance(expected, str):
        assert str(expected) == str(got), f"{where}: expected {expected!r}, got {got!r}"
    else:
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{where}: {got!r} is not a number"
        assert math.isclose(got, float(expected), rel_tol=tol["rtol"], abs_tol=tol["atol"]), (
            f"{where}: {got!r} differs from torch's {float(expected)!r}")


# ---------------------------------------------------------------------------------------------------------
# The references: for each command in examples/README.md, what torch says. Inputs are read with numpy
# directly, not through lossctl.


def npy(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(EXAMPLES / name))


def from_json(name: str, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(json.loads((EXAMPLES / name).read_text()), dtype=dtype)


def from_text(name: str, delimiter: str, header: bool) -> torch.Tensor:
    return torch.from_numpy(np.loadtxt(EXAMPLES / name, delimiter=delimiter, skiprows=int(header)))


def rows(value) -> list[list]:
    """A reduced loss as --format plain prints it: one line, one number."""
    return [[float(value)]]


def per_line(t: torch.Tensor) -> list[list]:
    """A --reduction none result as --format plain prints it: one value per line."""
    return [[float(v)] for v in t.double().reshape(-1)]


def ce(**kw):
    return nn.CrossEntropyLoss(**kw)


def ce_grad_residual(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The largest difference between autograd's gradient of mean CE and (softmax(x) - onehot(y)) / N."""
    x = logits.clone().requires_grad_(True)
    nn.CrossEntropyLoss()(x, targets).backward()
    closed = (torch.softmax(logits, 1) - nn.functional.one_hot(targets, logits.shape[1])) / logits.shape[0]
    return float((x.grad - closed).abs().max())


def tutorial_references() -> dict[str, tuple]:
    logits, targets = npy("logits.npy"), npy("targets.npy")
    target_logits = npy("target_logits.npy")
    target_probs = from_json("target_probs.json")
    weight = from_json("class_weights.json")
    ignored = npy("targets_ignored.npy")
    p1, logit1 = npy("probs_binary.npy"), npy("logits_binary.npy")
    y = from_text("targets_binary.csv", ",", header=True).long()
    x1, x2, cos_y = npy("x1.npy"), npy("x2.npy"), from_json("cos_target.json")
    bundle = np.load(EXAMPLES / "bundle.npz")
    csv_logits = from_text("logits.csv", ",", header=True)
    tsv_logits = from_text("logits.tsv", "\t", header=False)
    csv_targets = from_text("targets.csv", ",", header=True).long()

    soft = torch.softmax(target_logits, dim=-1)
    # the tutorial's NLL input and KL input: torch.log(torch.softmax(logits, -1))
    log_p = torch.log(torch.softmax(logits, dim=-1))
    ce_index = ce()(logits, targets)
    ce_rows = ce(reduction="none")(logits, targets)
    nll_rows = nn.NLLLoss(reduction="none")(log_p, targets)
    kl_sum = nn.KLDivLoss(reduction="sum")(log_p, target_probs.float())

    def decompose_rows(q: torch.Tensor, index: torch.Tensor | None = None) -> list[list]:
        ce_n = ce(reduction="none")(logits, q if index is None else index)
        h = torch.distributions.Categorical(probs=q).entropy()
        kl = nn.KLDivLoss(reduction="none")(log_p, q).sum(-1)
        out = [["sample", "ce", "entropy", "kl", "entropy+kl", "residual", "ok"]]
        for i in range(len(ce_n)):
            out.append([i, ce_n[i], h[i], kl[i], h[i] + kl[i], abs(ce_n[i] - h[i] - kl[i]), True])
        return [[float(c) if torch.is_tensor(c) else c for c in r] for r in out]

    two_class = torch.stack([1 - p1, p1], dim=-1)
    bce_rows = nn.BCELoss(reduction="none")(p1, y.float())
    bce_nll = (bce_rows - nn.NLLLoss(reduction="none")(torch.log(two_class), y)).abs().max()
    onehot = torch.nn.functional.one_hot(targets, 4).float()
    onehot_res = (ce(reduction="none")(logits, onehot) - ce_rows).abs().max()
    lit_p = torch.tensor([0.7, 0.2], dtype=torch.float64)

    return {
        # 1. cross entropy
        "lossctl ce --logits examples/logits.npy --target examples/targets.npy -f plain": (rows(ce_index), F32),
        "lossctl ce --logits examples/logits.npy --target examples/target_probs.json -f plain":
            (rows(ce()(logits, target_probs.float())), F32),
        "lossctl ce --logits examples/logits.npy --target examples/target_logits.npy --target-kind logits -f plain":
            (rows(ce()(logits, soft)), F32),
        "lossctl ce --logits examples/logits.npy --target examples/targets.npy -f json | python -m json.tool":
            ({"loss": "ce", "reduction": "mean", "value": float(ce_index), "dtype": "float32",
              "shapes": {"logits": [8, 4], "target": [8]},
              "partial": {"total": float(ce(reduction="sum")(logits, targets)), "denominator": 8}}, F32),
        "lossctl ce --logits examples/logits.npy --target examples/targets.npy --reduction none -f plain":
            (per_line(ce_rows), F32),
        "lossctl ce --logits examples/logits.npy --target examples/targets_ignored.npy -f json "
        "| python -m json.tool":
            ({"value": float(ce()(logits, ignored)), "partial": {"denominator": 6, "ignored": 2}}, F32),
        "lossctl ce --logits examples/logits.npy --target examples/targets.npy --weight examples/class_weights.json"
        " -f json | python -m json.tool":
            ({"value": float(ce(weight=weight.float())(logits, targets)),
              "partial": {"denominator": float(weight[targets].sum())}}, F32),
        # 2. negative log-likelihood
        "lossctl nll --logits examples/logits.npy --target examples/targets.npy -f plain":
            (rows(nn.NLLLoss()(log_p, targets)), F32),
        "lossctl nll --log-probs examples/logits.npy --target examples/targets.npy -f plain":
            (rows(nn.NLLLoss()(logits, targets)), F32),
        "lossctl check --logits examples/logits.npy --target examples/targets.npy -f plain":
            ([["ce-nll", "ok", float((ce_rows - nll_rows).abs().max())],
              ["onehot-index", "ok", float(onehot_res)], ["bce-nll", "skipped"], ["decompose", "ok", 0.0],
              ["ce-grad", "ok", ce_grad_residual(logits, targets)]], F32),
        # 3. KL divergence
        "lossctl kl --logits examples/logits.npy --target examples/target_probs.json -f plain":
            (rows(kl_sum / logits.numel()), F32),
        "lossctl kl --logits examples/logits.npy --target examples/target_probs.json --reduction batchmean -f plain":
            (rows(nn.KLDivLoss(reduction="batchmean")(log_p, target_probs.float())), F32),
        "lossctl kl --logits examples/logits.npy --target examples/target_probs.json --reduction sum -f plain":
            (rows(kl_sum), F32),
        # 4. CE = H + KL
        "lossctl entropy --logits examples/target_logits.npy --reduction none -f plain":
            (per_line(torch.distributions.Categorical(probs=soft).entropy()), F32),
        "lossctl decompose --logits examples/logits.npy --target examples/target_logits.npy --target-kind logits"
        " -f csv": (decompose_rows(soft), F32),
        "lossctl decompose --logits examples/logits.npy --target examples/targets.npy -f csv":
            (decompose_rows(onehot, targets), F32),
        "lossctl decompose --logits examples/logits.npy --target examples/target_probs.json --atol 0 --rtol 0"
        " > /dev/null": (None, F32),
        # 5. binary cross entropy
        "lossctl bce --probs examples/probs_binary.npy --target examples/targets_binary.csv -f plain":
            (rows(nn.BCELoss()(p1, y.float())), F32),
        "lossctl bce --logits examples/logits_binary.npy --target examples/targets_binary.csv -f plain":
            (rows(nn.BCEWithLogitsLoss()(logit1, y.float())), F32),
        "lossctl bce --probs '[0.7, 0.2]' --target '[1, 0]' -f plain":
            (rows(nn.BCELoss()(lit_p, torch.tensor([1.0, 0.0], dtype=torch.float64))), F64),
        "lossctl nll --probs '[[0.3, 0.7], [0.8, 0.2]]' --target '[1, 0]' -f plain":
            (rows(nn.NLLLoss()(torch.log(torch.stack([1 - lit_p, lit_p], -1)), torch.tensor([1, 0]))), F64),
        "lossctl check --probs examples/probs_binary.npy --target examples/targets_binary.csv -f plain":
            ([["ce-nll", "skipped"], ["onehot-index", "skipped"], ["bce-nll", "ok", float(bce_nll)],
              ["decompose", "skipped"], ["ce-grad", "skipped"]], F32),
        # 6. cosine embedding
        "lossctl cosine-embedding --x1 examples/x1.npy --x2 examples/x2.npy --target examples/cos_target.json"
        " -f plain": (rows(nn.CosineEmbeddingLoss()(x1, x2, cos_y.float())), F32),
        "lossctl cosine-embedding --x1 examples/x1.npy --x2 examples/x2.npy --target examples/cos_target.json"
        " --reduction none -f plain": (per_line(nn.CosineEmbeddingLoss(reduction="none")(x1, x2, cos_y.float())), F32),
        "lossctl cosine-embedding --x1 examples/x1.npy --x2 examples/x2.npy --target '[1, 0, 1, 0]' -f plain":
            (None, F32),
        # every input form
        "lossctl ce --logits examples/logits.csv --target examples/targets.csv -f plain":
            (rows(ce()(csv_logits, csv_targets)), F64),
        "lossctl ce --logits examples/logits.tsv --target examples/targets.npy -f plain":
            (rows(ce()(tsv_logits, targets)), F64),
        "lossctl ce --logits examples/logits.csv --target examples/targets.csv --dtype float32 -f plain":
            (rows(ce()(csv_logits.float(), csv_targets)), F32),
        "lossctl ce --logits examples/bundle.npz:logits --target examples/bundle.npz:target -f plain":
            (rows(ce()(torch.from_numpy(bundle["logits"]), torch.from_numpy(bundle["target"]))), F32),
        "cat examples/logits.npy | lossctl ce --logits - --target examples/targets.npy -f plain":
            (rows(ce_index), F32),
        "lossctl ce --from examples/bundle.npz -f plain":
            (rows(ce(weight=torch.from_numpy(bundle["weight"]).float())(
                torch.from_numpy(bundle["logits"]), torch.from_numpy(bundle["target"]))), F32),
        "lossctl ce --from examples/bundle.npz --weight '[1, 1, 1, 1]' -f plain": (rows(ce_index), F32),
    }


@pytest.fixture(scope="module")
def references() -> dict[str, tuple]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KLDivLoss's own 'mean' advice
        return tutorial_references()


TUTORIAL_LINES = parse_transcripts(TUTORIAL)
README_LINES = parse_transcripts(README) if README.exists() else []


def stderr_heads(lines: list[str]) -> list[tuple[str, str]]:
    # The kind and the subject (warning, "kl"; error, "--target"): the rest of the wording may improve
    # without the transcript going stale.
    heads = [re.match(r"lossctl: (\w+): ([^\s:(]+)", line) for line in lines]
    return [(m.group(1), m.group(2)) for m in heads if m]


def check_transcript_line(shown: Shown, ran: Ran) -> None:
    assert ran.exit_code == shown.exit_code, (
        f"{shown.id}: `{shown.command}` exited {ran.exit_code}, the document shows {shown.exit_code}\n"
        f"stdout: {ran.stdout}\nstderr: {ran.stderr}")
    assert "Traceback" not in ran.stderr, ran.stderr
    got = stderr_heads([ln for ln in ran.stderr.splitlines() if ln.startswith("lossctl:")])
    for head in stderr_heads(shown.stderr):
        want = f"lossctl: {head[0]}: {head[1]}"
        assert head in got, f"{shown.id}: stderr should have a line starting {want!r}; got:\n{ran.stderr}"


def test_tutorial_has_a_section_per_step():
    text = TUTORIAL.read_text(encoding="utf-8")
    for step in range(1, 7):
        assert re.search(rf"^## {step}\. ", text, re.M), f"examples/README.md has no section '## {step}.'"
    assert len(TUTORIAL_LINES) >= 25


@pytest.mark.parametrize("shown", TUTORIAL_LINES, ids=[s.id for s in TUTORIAL_LINES])
def test_tutorial_command(shown: Shown, references, cli, shim, monkeypatch):
    assert shown.command in references, f"{shown.id}: add a torch reference for `{shown.command}`"
    expected, tol = references[shown.command]
    ran = run_line(shown.command, cli, shim, monkeypatch)
    check_transcript_line(shown, ran)
    fmt = output_format(shown.command)
    if expected is None:
        assert not shown.stdout, f"{shown.id}: shows output but has no reference to check it against"
        return
    assert_matches(expected, parse_output(ran.stdout, fmt), tol, f"{shown.id} (lossctl now)")
    assert shown.stdout, f"{shown.id}: show the output of `{shown.command}`"
    assert_matches(expected, parse_output("\n".join(shown.stdout), fmt), tol, f"{shown.id} (as shown)")


def test_every_reference_is_in_the_tutorial(references):
    commands = {s.command for s in TUTORIAL_LINES}
    assert not set(references) - commands, "references for commands no longer in examples/README.md"


@pytest.mark.skipif(not README_LINES, reason="README.md has no transcripts yet")
@pytest.mark.parametrize("shown", README_LINES, ids=[s.id for s in README_LINES])
def test_readme_command(shown: Shown, cli, shim, monkeypatch):
    """README.md's examples run and print what it shows (its numbers are the tutorial's, checked above)."""
    ran = run_line(shown.command, cli, shim, monkeypatch)
    check_transcript_line(shown, ran)
    if shown.stdout:
        fmt = output_format(shown.command)
        got = parse_output(ran.stdout, fmt)
        assert_matches(parse_output("\n".join(shown.stdout), fmt), got, F32, shown.id)


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)


@pytest.mark.parametrize("code", python_blocks(README) if README.exists() else [])
def test_readme_python_block(code: str, monkeypatch):
    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def quick_start_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"^```\w*\n(.*?)^```", section, flags=re.M | re.S)
    assert block, "no fenced block under ## Quick start"
    return [ln for ln in block.group(1).splitlines() if ln.strip()]


def test_readme_quick_start():
    assert README.read_text(encoding="utf-8").startswith("# lossctl\n")
    assert quick_start_commands() == [
        "pip install . && lossctl ce --logits examples/logits.npy --target examples/targets.npy",
        "pip install -e '.[test]' && python -m pytest",
    ]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    quiet = {re.sub(r"\s-q\b", "", ln).strip() for ln in ci.splitlines()}  # -q changes what pip prints only
    assert quick_start_commands()[1] in quiet


# ---------------------------------------------------------------------------------------------------------
# examples/make_examples.py


def load_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATA = (".npy", ".npz", ".json", ".csv", ".tsv", ".txt", ".jsonl", ".safetensors", ".parquet")


def test_make_examples_rewrites_every_file(tmp_path):
    written = load_generator().write_all(tmp_path)
    names = sorted(p.name for p in written)
    committed = sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in DATA)
    assert names == committed, "examples/ holds data files make_examples.py does not write, or lacks some"
    for name in names:
        fresh, kept = tmp_path / name, EXAMPLES / name
        if fresh.read_bytes() != kept.read_bytes():
            # Values computed with exp or log may differ in the last bit on another CPU's SIMD path (or another
            # numpy build): the same numbers to float64 rounding are the same file.
            a, b = read_numbers(fresh), read_numbers(kept)
            assert a.keys() == b.keys(), f"examples/{name} holds other arrays than make_examples.py writes; rerun it"
            for key in a:
                assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype, (name, key)
                np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=0, err_msg=f"examples/{name}: rerun it")
        assert kept.stat().st_size < 20_000, f"examples/{name} is {kept.stat().st_size} bytes; keep examples small"


def read_numbers(path: Path) -> dict[str, np.ndarray]:
    """Every array in an example file, by name, whatever its format."""
    if path.suffix == ".npy":
        return {"": np.load(path)}
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    if path.suffix == ".json":
        obj = json.loads(path.read_text())
        return {k: np.asarray(v) for k, v in obj.items()} if isinstance(obj, dict) else {"": np.asarray(obj)}
    if path.suffix in (".safetensors", ".parquet", ".jsonl", ".txt"):
        from lossctl.io import load_array

        keys = {".safetensors": ("logits", "target"), ".parquet": ("logits", "target"),
                ".jsonl": ("logits", "target"), ".txt": (None,)}[path.suffix]
        return {k or "": load_array(f"{path}:{k}" if k else str(path), option="--test").array for k in keys}
    if path.suffix == ".pt":
        import torch

        obj = torch.load(path, weights_only=True)
        return {k: v.numpy() for k, v in obj.items()} if isinstance(obj, dict) else {"": obj.numpy()}
    sep = "\t" if path.suffix == ".tsv" else ","
    lines = path.read_text().splitlines()
    skip = 0 if lines and all(c.strip().lstrip("-").replace(".", "").replace("e", "").isdigit()
                              for c in lines[0].split(sep)) else 1
    return {"": np.loadtxt(path, delimiter=sep, skiprows=skip, ndmin=1)}


def test_example_files_are_what_the_tutorial_describes():
    logits, targets = np.load(EXAMPLES / "logits.npy"), np.load(EXAMPLES / "targets.npy")
    assert logits.dtype == np.float32 and logits.shape == (8, 4)
    assert targets.dtype == np.int64 and targets.shape == (8,) and set(targets.tolist()) <= set(range(4))
    probs = np.array(json.loads((EXAMPLES / "target_probs.json").read_text()))
    z = np.exp(np.load(EXAMPLES / "target_logits.npy").astype(np.float64))
    np.testing.assert_allclose(probs, z / z.sum(-1, keepdims=True), rtol=1e-12)
    ignored = np.load(EXAMPLES / "targets_ignored.npy")
    assert (ignored == -100).sum() == 2 and np.array_equal(ignored[ignored != -100], targets[ignored != -100])
    np.testing.assert_array_equal(np.loadtxt(EXAMPLES / "logits.csv", delimiter=",", skiprows=1), logits)
    np.testing.assert_array_equal(np.loadtxt(EXAMPLES / "logits.tsv", delimiter="\t"), logits)
    p1 = np.load(EXAMPLES / "probs_binary.npy")
    assert ((p1 > 0) & (p1 < 1)).all()
    assert set(json.loads((EXAMPLES / "cos_target.json").read_text())) == {1, -1}
