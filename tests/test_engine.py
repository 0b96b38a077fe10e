"""The engine's promises: layers without import cycles, one run whether streamed or not, whatever the thread count,
NumPy kernels that never need torch, and the defects the redesign fixed."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_cli

import lossctl
from lossctl import stream
from lossctl.errors import LossctlError
from lossctl.specs import all_specs, get_loss

PACKAGE = ROOT / "lossctl"
RNG = np.random.default_rng(11)
N, C = 41, 5


# --- structure -------------------------------------------------------------------------------------------------

def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every lossctl module `name` imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            prefix = ".".join(base + ([node.module] if node.module else []))
            found |= {prefix} | {f"{prefix}.{a.name}" for a in node.names}
    # a package's own __init__ is how it is built, not a dependency of its submodules
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def test_no_import_cycle_lazy_imports_included():
    mods = _modules()
    edges = {m: _imports(m, p, set(mods)) for m, p in mods.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert not cycles, cycles


def test_no_function_over_60_lines():
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name}" for p in PACKAGE.rglob("*.py")
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 60]
    assert not long, long


def test_no_loss_name_is_compared_outside_the_specs_and_the_identity_checks():
    # the specs, the identity checks, and the modules of particular losses or reports, whose kinds share names
    allowed = {"specs", "checks.py", "explain_steps.py", "kernels", "losses", "sanity.py", "sanity_baselines.py",
               "sanity_focal.py", "calibration.py", "reports.py"}
    names = {s.name for s in all_specs()}
    hits = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in allowed or rel.name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value in names
                                                     for c in [node.left, *node.comparators]):
                hits.append(f"{rel}:{node.lineno}")
    assert not hits, hits


def test_stream_is_offered_only_where_the_loss_streams():
    for spec in all_specs():
        res = run_cli(spec.name, "--help")
        assert ("--stream" in res.stdout) == (spec.stream is not None), spec.name


def test_dead_metadata_is_gone():
    from lossctl import errors, registry

    assert "integer" not in registry.Role.__dataclass_fields__
    assert "extra" not in registry.LossSpec.__dataclass_fields__
    assert not hasattr(errors, "EXIT_OK")


# --- streamed = in memory, for every streamable loss and option ------------------------------------------------

def _save(tmp_path, name, arr) -> str:
    path = tmp_path / f"{name}.npy"
    np.save(path, arr)
    return str(path)


def _streamable_cases():
    x = RNG.standard_normal((N, C)).astype(np.float32)
    t = RNG.integers(0, C, N)
    t_ign = t.copy()
    t_ign[::4] = -100
    w = RNG.uniform(0.2, 2.0, C).astype(np.float32)
    q = torch.softmax(torch.from_numpy(RNG.standard_normal((N, C)).astype(np.float32)), 1).numpy()
    y = RNG.integers(0, 2, (N, C)).astype(np.float32)
    q_bad = q * 1.01  # rows that do not sum to 1: the same warning whether streamed or not
    cases = []
    for opts in ({}, {"label_smoothing": 0.1}, {"ignore_index": -100}):
        for weighted in (False, True):
            arrays = {"logits": x, "target": t_ign if opts.get("ignore_index") else t}
            cases.append(("ce", arrays, {**opts, **({"weight": w} if weighted else {})}))
    cases += [("ce", {"logits": x, "target": q}, {"label_smoothing": 0.2}), ("ce", {"logits": x, "target": q_bad}, {}),
              ("perplexity", {"logits": x, "target": t_ign}, {"weight": w}),
              ("nll", {"logits": x, "target": t_ign}, {"weight": w}),
              ("nll", {"probs": torch.softmax(torch.from_numpy(x), 1).numpy(), "target": t}, {}),
              ("kl", {"logits": x, "target": q}, {}), ("kl", {"logits": x, "target": q_bad}, {}),
              ("kl", {"logits": x, "target": np.log(q)}, {"target_kind": "log-prob"}),
              ("entropy", {"logits": x}, {}), ("entropy", {"probs": q_bad}, {}),
              ("bce", {"logits": x, "target": y}, {"pos_weight": w}),
              ("bce", {"probs": torch.sigmoid(torch.from_numpy(x)).numpy(), "target": y}, {})]
    return cases


CASES = _streamable_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_streamable_loss_gives_the_same_result_streamed_and_in_memory(tmp_path, monkeypatch, case, backend):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 100)  # 5 rows of (N, 5) float32 per chunk: 9 chunks
    name, arrays, options = case
    files = {role: _save(tmp_path, role, arr) for role, arr in arrays.items()}
    spec = get_loss(name)
    for reduction in [r for r in spec.reductions if r != "none"]:
        whole = lossctl.compute(name, reduction=reduction, backend=backend, stream=False, **files, **options)
        parts = lossctl.compute(name, reduction=reduction, backend=backend, stream=True, **files, **options)
        np.testing.assert_allclose(parts.value, whole.value, rtol=1e-6)
        assert parts.warnings == whole.warnings
        assert own_notes(parts) == own_notes(whole)
        assert parts.denominator == whole.denominator and parts.backend == whole.backend
        assert set(parts.baselines) == set(whole.baselines)  # a streamed run's come from sums of its targets
        for k, b in whole.baselines.items():
            np.testing.assert_allclose(parts.baselines[k]["value"], b["value"], rtol=1e-9)


def own_notes(result) -> list[str]:
    """The loss's notes; a streamed run adds how it streamed (and the baselines' notes, compared apart)."""
    reports = ("streamed in", "baselines:", "the loss is at or above chance")
    return [n for n in result.notes if not n.startswith(reports)]


def test_label_smoothing_streamed_equals_in_memory_and_torch(tmp_path, monkeypatch):
    """The redesign's defect: 1.4511312961 streamed against 1.4511312768 in memory, and no smoothing note."""
    monkeypatch.setattr(stream, "CHUNK_BYTES", 48)
    x, t = np.load(ROOT / "examples" / "logits.npy"), np.load(ROOT / "examples" / "targets.npy")
    files = {"logits": str(ROOT / "examples" / "logits.npy"), "target": str(ROOT / "examples" / "targets.npy")}
    want = float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), label_smoothing=0.1))
    for flag in (True, False):
        r = lossctl.compute("ce", label_smoothing=0.1, stream=flag, **files)
        np.testing.assert_allclose(r.value, want, rtol=2e-6)
        assert any(n.startswith("label smoothing 0.1") for n in r.notes)


@pytest.mark.parametrize("name", ["ce", "bce", "kl"])
def test_streamed_total_has_the_same_bits_whatever_the_thread_count(tmp_path, monkeypatch, name):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 64)
    x = RNG.standard_normal((200, C)).astype(np.float32)
    target = {"ce": RNG.integers(0, C, 200), "bce": RNG.integers(0, 2, (200, C)).astype(np.float32),
              "kl": torch.softmax(torch.from_numpy(x[::-1].copy()), 1).numpy()}[name]
    files = {"logits": _save(tmp_path, "x", x), "target": _save(tmp_path, "t", target)}
    values = {threads: lossctl.compute(name, stream=True, threads=threads, reduction="sum", **files).value
              for threads in (1, 2, 3, 8)}
    assert len(set(values.values())) == 1, values  # not a float comparison to a reference: the same run, re-run


# --- NumPy kernels never need torch ------------------------------------------------------------------------

KERNEL_RUNS = {
    "ce": ["--logits", "[[2.0, 1.0, 0.1]]", "--target", "[0]"], "nll": ["--logits", "[[2.0, 1.0]]", "--target", "[1]"],
    "perplexity": ["--logits", "[[2.0, 1.0]]", "--target", "[1]"],
    "kl": ["--logits", "[[2.0, 1.0]]", "--target", "[[0.5, 0.5]]", "--reduction", "batchmean"],
    "entropy": ["--probs", "[[0.2, 0.8]]"], "js": ["--p", "[[0.2, 0.8]]", "--q", "[[0.5, 0.5]]"],
    "bce": ["--logits", "[0.3, -1.0]", "--target", "[1, 0]", "--pos-weight", "[2.0]"],
    "focal": ["--logits", "[0.3, -1.0]", "--target", "[1.0, 0.0]"],
    "cosine-embedding": ["--x1", "[[1.0, 2.0]]", "--x2", "[[2.0, 1.0]]", "--target", "[1]"],
    "cosine-similarity": ["--x1", "[[1.0, 2.0]]", "--x2", "[[2.0, 1.0]]"],
    "pairwise-distance": ["--x1", "[[1.0, 2.0]]", "--x2", "[[2.0, 1.0]]"],
    "mse": ["--input", "[1.0, 2.0]", "--target", "[0.0, 0.0]"], "l1": ["--input", "[1.0]", "--target", "[0.5]"],
    "huber": ["--input", "[1.0, 3.0]", "--target", "[0.0, 0.0]"],
    "smooth-l1": ["--input", "[1.0, 3.0]", "--target", "[0.0, 0.0]"],
}


def test_the_kernel_losses_are_the_ones_the_issue_names():
    assert {s.name for s in all_specs() if "numpy" in s.backends} == set(KERNEL_RUNS)


def test_kernel_losses_run_with_torch_unimportable():
    probe = ("import contextlib, io, json, sys\nsys.modules['torch'] = None  # `import torch` now raises\n"
             "from lossctl.cli import main\nout = {}\n"
             "for name, args in json.loads(sys.argv[1]).items():\n"
             "    sys.argv = ['lossctl', name, *args, '-f', 'json']\n    buf = io.StringIO()\n"
             "    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):\n"
             "        try:\n            main()\n        except SystemExit as exc:\n            code = exc.code\n"
             "    out[name] = [code, json.loads(buf.getvalue())]\nprint(json.dumps(out))")
    proc = subprocess.run([sys.executable, "-c", probe, json.dumps(KERNEL_RUNS)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name, (code, data) in json.loads(proc.stdout).items():
        assert code == 0 and data["backend"] == "numpy", (name, data)
        got = data.get("value", data.get("values"))
        ref = lossctl.compute(name, backend="torch", **_cli_kwargs(KERNEL_RUNS[name]))  # torch computes it here
        np.testing.assert_allclose(got, ref.value if ref.value is not None else ref.values, rtol=1e-12)


def test_a_small_run_imports_only_what_it_uses(tmp_path):
    """Start-up is a target (issue 9): a loss over small .npy files must not import the streaming engine, JSON,
    or the other commands' result classes; a big file and the other commands still find them."""
    np.save(tmp_path / "x.npy", RNG.standard_normal((4, 3)).astype(np.float32))
    np.save(tmp_path / "t.npy", np.array([0, 2, 1, 1]))
    probe = ("import contextlib, io, sys\nfrom lossctl.cli import main\n"
             "sys.argv = ['lossctl', 'ce', '--logits', sys.argv[1], '--target', sys.argv[2], '-f', 'plain']\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        main()\n"
             "    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('lossctl.stream', 'lossctl.command_results', 'lossctl.calibration_result',"
             " 'json', 'torch', 'rich') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "x.npy"), str(tmp_path / "t.npy")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_big_files_stream_by_size_small_ones_do_not(tmp_path, monkeypatch):
    from lossctl import route

    x = RNG.standard_normal((300, 5)).astype(np.float32)
    t = RNG.integers(0, 5, 300)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    size = (tmp_path / "x.npy").stat().st_size + (tmp_path / "t.npy").stat().st_size
    ref = float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)))
    runs = {}
    for limit in (size + 1, size):  # just above the files' size: in memory; at it: streamed
        monkeypatch.setattr(route, "STREAM_MIN_BYTES", limit)
        runs[limit] = lossctl.compute("ce", logits=str(tmp_path / "x.npy"), target=str(tmp_path / "t.npy"))
    assert not any("streamed" in n for n in runs[size + 1].notes)
    assert any("streamed" in n for n in runs[size].notes)
    for r in runs.values():
        assert r.value == pytest.approx(ref, rel=1e-6)


def test_the_entry_points_run_the_cli_and_leave_library_users_gc_alone():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "lossctl"]
    assert ep.value == "lossctl.__main__:run"
    proc = subprocess.run([sys.executable, "-m", "lossctl", "ce", "--logits", "[[2.0, 0.5]]", "--target", "[1]",
                           "-f", "plain"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == pytest.approx(float(F.cross_entropy(torch.tensor([[2.0, 0.5]]), torch.tensor([1]))))
    probe = "import gc; t = gc.get_threshold(); import lossctl; lossctl.compute('mse', input=[1.0], target=[2.0]); " \
            "print(gc.get_threshold() == t)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          timeout=60).stdout.strip() == "True"
    probe = "import os, sys; sys.argv = ['lossctl', '--version']; from lossctl.__main__ import run\n" \
            "try:\n    run()\nexcept SystemExit:\n    pass\nprint(os.environ['OPENBLAS_NUM_THREADS'])"
    for given, seen in ((None, "1"), ("3", "3")):  # one BLAS thread unless the user says otherwise
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        env.update({"OPENBLAS_NUM_THREADS": given} if given else {})
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env,
                             timeout=60).stdout.split()
        assert out[-1] == seen, out


def test_a_subclass_renders_as_its_base():
    from lossctl.render import render
    from lossctl.result import Result

    r = lossctl.compute("mse", input=[1.0, 2.0], target=[0.0, 0.0])
    mine = type("Mine", (Result,), {})(**{f: getattr(r, f) for f in r.__dataclass_fields__})
    assert render(mine, "plain") == render(r, "plain") == repr((1.0 + 4.0) / 2)
    with pytest.raises(TypeError, match="no plain form for object"):
        render(object(), "plain")


def _cli_kwargs(args: list[str]) -> dict:
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    return {k[2:].replace("-", "_"): (v if k != "--reduction" else v) for k, v in pairs.items()}


def test_torch_is_the_backend_for_pt_inputs_and_devices(tmp_path):
    x = torch.tensor([[2.0, 1.0, 0.1]])
    torch.save(x, tmp_path / "x.pt")
    r = lossctl.compute("ce", logits=f"{tmp_path}/x.pt", target="[0]")
    assert r.backend.startswith("torch ")
    torch.save({"logits": x, "target": torch.tensor([0])}, tmp_path / "bundle.pt")
    assert lossctl.compute("ce", bundle=f"{tmp_path}/bundle.pt").backend.startswith("torch ")  # was numpy
    assert lossctl.compute("ce", logits="[[2.0, 1.0, 0.1]]", target="[0]").backend == "numpy"
    with pytest.raises(LossctlError, match="--backend"):
        lossctl.compute("ctc", backend="numpy", log_probs=[[0.0]], target=[0], input_lengths=1, target_lengths=1)


# --- the defects the redesign fixed -----------------------------------------------------------------------

def test_check_that_checks_nothing_is_a_usage_error(cli):
    # ([0.1, 0.2] with [0.5, 0.5] is one sample with a target distribution, which decompose and ce-grad check)
    res = cli("check", "--logits", "[0.1, 0.2, 0.3]", "--target", "[0.5, 0.5]", code=2)
    assert res.stdout == "" and len(res.stderr.splitlines()) == 1
    assert "no identity applies" in res.stderr and "ce-nll needs" in res.stderr and "bce-nll needs" in res.stderr


def test_kl_zero_times_log_zero_is_explained(cli):
    res = cli("kl", "--probs", "[[0.5, 0.5, 0.0]]", "--target", "[[0.5, 0.5, 0.0]]", "--reduction", "batchmean",
              "-f", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = F.kl_div(torch.log(torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)),
                        torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64), reduction="batchmean")
    assert torch.isnan(want) and json.loads(res.stdout)["value"] == "nan"  # torch's number, unchanged
    assert "both 0" in res.stderr and "0 * -inf" in res.stderr and "non-zero probability" not in res.stderr


@pytest.mark.parametrize(("model", "target", "kind", "backend"), [
    ("--log-probs", "[[0.0, 1.0]]", "prob", "numpy"), ("--log-probs", "[[0.0, 1.0]]", "prob", "torch"),
    ("--logits", "[[0.0, 1.0]]", "prob", "numpy"), ("--log-probs", "[[-Infinity, 0.0]]", "log-prob", "numpy"),
    ("--logits", "[[-Infinity, 0.0]]", "logits", "torch")])
def test_kl_zero_times_log_zero_is_explained_for_every_input_form(cli, model, target, kind, backend):
    """A -inf log-probability or logit where the target is 0 (or -inf as a log-probability or logit) is the same
    0 * -inf = nan in torch as --probs 0 beside --target 0, but it got the generic 'an input of -inf meets a target
    with non-zero probability', which is the opposite of what happened."""
    x = torch.tensor([[-math.inf, 0.0]], dtype=torch.float64)
    t = torch.tensor(json.loads(target.replace("-Infinity", "-1e999")), dtype=torch.float64)
    logq = x if model == "--log-probs" else x.log_softmax(-1)
    p = {"prob": t, "log-prob": t, "logits": t.softmax(-1)}[kind]
    want = F.kl_div(logq, p, reduction="batchmean", log_target=kind == "log-prob")
    res = cli("kl", model, "[[-Infinity, 0.0]]", "--target", target, "--target-kind", kind, "--reduction",
              "batchmean", "--backend", backend, "-f", "json")
    assert torch.isnan(want) and json.loads(res.stdout)["value"] == "nan"  # torch's number, unchanged
    assert res.stderr.startswith(f"lossctl: warning: {model} and --target both give probability 0 (first at index "
                                 "[0, 0]: -inf and ")
    assert "0 * -inf = nan" in res.stderr and "non-zero probability" not in res.stderr
    assert len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("model", ["--log-probs", "--probs"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_kl_log_prob_target_of_minus_inf_is_explained_whatever_the_model_gives(cli, model, backend):
    """With log_target torch computes exp(t) * (t - log q): a target log-probability of -inf is 0 * -inf = nan even
    where the model's probability is not 0. 41ed8f7 explained it only where the model gave 0 as well, and here
    said the generic 'an input of -inf meets a target with non-zero probability', though no input was -inf."""
    x = [[-1.0, -0.5]] if model == "--log-probs" else [[0.5, 0.5]]
    logq = torch.tensor(x, dtype=torch.float64)
    logq = logq if model == "--log-probs" else logq.log()
    t = torch.tensor([[-math.inf, 0.0]], dtype=torch.float64)
    want = F.kl_div(logq, t, reduction="sum", log_target=True)
    res = cli("kl", model, json.dumps(x), "--target", "[[-Infinity, 0.0]]", "--target-kind", "log-prob",
              "--reduction", "sum", "--backend", backend, "-f", "json")
    assert torch.isnan(want) and json.loads(res.stdout)["value"] == "nan"  # torch's number, unchanged
    assert res.stderr == "lossctl: warning: --target gives probability 0 (log-probability -inf, first at index " \
                         "[0, 0]): with --target-kind log-prob torch computes exp(t) * (t - log q) = 0 * -inf = nan " \
                         f"there, whatever {model} gives; the textbook (and scipy) take 0 log 0 = 0\n"


def test_explain_gives_json_and_parses_choices_as_the_loss_does(cli):
    data = json.loads(cli("explain", "ce", "-f", "json").stdout)
    assert data["name"] == "ce" and data["reductions"] == ["mean", "sum", "none"]
    res = cli("explain", "ce", "--logits", "[[1.0, 2.0]]", "--target", "[0]", "--reduction", "avg", code=2)
    assert "--reduction: must be one of mean, sum, none; got 'avg'" in res.stderr


def test_choices_show_in_help(cli):
    out = cli("ce", "--help").stdout
    for shown in ("<mean|sum|none>", "<auto|table|json|csv|plain>", "<auto|float32|float64>", "<e|2|10>",
                  "<auto|index|prob|logits>", "<cpu|cuda|mps|auto>", "<auto|numpy|torch>"):
        assert shown in out, shown
    assert "--install-completion" in cli("--help").stdout


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_json_lines_stream_by_batch_as_npy_does(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 2000)
    x, t = RNG.standard_normal((301, 7)).astype(np.float32), RNG.integers(0, 7, 301)
    path = tmp_path / f"s.{fmt}"
    if fmt == "parquet":
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 7),
                                 "target": pa.array(t)}), path)
    else:
        path.write_text("".join(json.dumps({"logits": r.tolist(), "target": int(y)}) + "\n"
                                for r, y in zip(x.astype(np.float64), t, strict=True)))
    kw = {"logits": f"{path}:logits", "target": f"{path}:target"}
    parts, whole = lossctl.compute("ce", stream=True, **kw), lossctl.compute("ce", stream=False, **kw)
    assert any(n.startswith("streamed in") for n in parts.notes) and parts.dtype == whole.dtype
    np.testing.assert_allclose(parts.value, whole.value, rtol=1e-12)
    x64 = torch.from_numpy(x).double() if fmt == "jsonl" else torch.from_numpy(x)
    np.testing.assert_allclose(parts.value, float(F.cross_entropy(x64, torch.from_numpy(t))), rtol=2e-6)


@pytest.mark.parametrize("fmt", ["parquet", "feather", "jsonl"])
def test_a_from_bundle_of_rows_streams_as_its_keys_do(tmp_path, monkeypatch, fmt):
    """--from FILE.parquet (Arrow, JSON Lines) read every column whole: 1.7 GB of RSS for a 430 MB Parquet file that
    streams at 220 MB given as --logits FILE:logits --target FILE:target. Its keys now stream as those do."""
    monkeypatch.setattr(stream, "CHUNK_BYTES", 2000)
    x, t = RNG.standard_normal((301, 7)).astype(np.float32), RNG.integers(0, 7, 301)
    w = RNG.uniform(0.5, 2, 7)
    path = tmp_path / f"s.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": f"r{i}", "logits": r.tolist(), "target": int(y)}) + "\n"
                                for i, (r, y) in enumerate(zip(x.astype(np.float64), t, strict=True))))
    else:
        pa = pytest.importorskip("pyarrow")
        table = pa.table({"id": [f"r{i}" for i in range(301)],
                          "logits": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 7),
                          "target": pa.array(t)})
        if fmt == "parquet":
            pytest.importorskip("pyarrow.parquet").write_table(table, path)
        else:
            pytest.importorskip("pyarrow.feather").write_feather(table, path)
    x64 = torch.from_numpy(x).double() if fmt == "jsonl" else torch.from_numpy(x)
    for kw in ({}, {"weight": w.tolist()}):
        got = lossctl.compute("ce", bundle=str(path), **kw)  # 8.4 kB: under the size that streams by itself
        assert not any(n.startswith("streamed in") for n in got.notes)
        got = lossctl.compute("ce", bundle=str(path), stream=True, **kw)
        assert any(n.startswith("streamed in") for n in got.notes), got.notes
        want = F.cross_entropy(x64, torch.from_numpy(t), weight=torch.tensor(w, dtype=x64.dtype) if kw else None)
        np.testing.assert_allclose(got.value, float(want), rtol=2e-6)
    # an option wins for its role, as in a whole read; a bundle holding two of a group is read whole, and refused
    got = lossctl.compute("ce", bundle=str(path), stream=True, target=np.zeros(301, np.int64))
    np.testing.assert_allclose(got.value, float(F.cross_entropy(x64, torch.zeros(301, dtype=torch.long))), rtol=2e-6)
    with pytest.raises(LossctlError, match="--probs"):
        lossctl.compute("nll", bundle=str(path), stream=True, probs=f"{path}:logits")


def test_shell_completion_offers_commands_options_and_choices():
    def complete(words: str, cword: int) -> list[str]:
        env = {**os.environ, "_LOSSCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        proc = subprocess.run([sys.executable, "-m", "lossctl"], env=env, capture_output=True, text=True, cwd=ROOT,
                              timeout=60)
        return proc.stdout.split()

    assert {"ce", "check", "calibration"} <= set(complete("lossctl c", 1))
    assert "--reduction" in complete("lossctl ce --red", 2)
    assert complete("lossctl ce --reduction ", 3) == ["mean", "sum", "none"]
