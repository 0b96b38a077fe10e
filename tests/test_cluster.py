"""--scheduler: file sets computed as tasks on a real Dask cluster (a scheduler and two workers started here as
subprocesses on 127.0.0.1) give the same bits as the same files computed locally, whatever happens to a worker."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

import lossctl.errors as errors
from lossctl.api import compute_files
from lossctl.specs import all_specs

distributed = pytest.importorskip("distributed")

STREAMED = [s.name for s in all_specs() if s.stream is not None]
N, C, SHARDS = 50, 6, 3


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A `dask scheduler` and two `dask worker`s (each a nanny and one single-threaded worker process)."""
    folder = tmp_path_factory.mktemp("dask")
    sfile = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    common = {"cwd": folder, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(sfile)], **common)]
    try:
        deadline = time.monotonic() + 30
        while not sfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                    str(sfile), "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                    "--host", "127.0.0.1"], **common) for _ in range(2)]
        with distributed.Client(scheduler_file=str(sfile), timeout=30) as client:
            client.wait_for_workers(2, timeout=30)
            yield client.scheduler.address, client
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs[::-1]:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def shards(name: str, folder: Path, n: int = SHARDS, seed: int = 0) -> dict[str, list[str]]:
    """n shard files per array of loss `name`, as CLI options -> paths."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}

    def add(flag: str, i: int, arr: np.ndarray) -> None:
        path = folder / f"{name}_{flag[2:]}_{i:02d}.npy"
        np.save(path, arr)
        out.setdefault(flag, []).append(str(path))

    for i in range(n):
        x = rng.standard_normal((N, C)).astype(np.float32)
        labels = rng.integers(0, C, N)
        if name in ("ce", "perplexity"):
            add("--logits", i, x), add("--target", i, labels)
        elif name == "nll":
            add("--log-probs", i, torch.log_softmax(torch.from_numpy(x), 1).numpy()), add("--target", i, labels)
        elif name == "kl":
            add("--logits", i, x)
            add("--target", i, torch.softmax(torch.from_numpy(rng.standard_normal((N, C))), 1).numpy())
        elif name == "bce":
            add("--logits", i, x), add("--target", i, rng.integers(0, 2, (N, C)).astype(np.float32))
        elif name == "entropy":
            add("--logits", i, x)
        elif name in ("mse", "l1", "huber", "smooth-l1"):
            add("--input", i, x), add("--target", i, rng.standard_normal((N, C)).astype(np.float32))
        elif name == "js":
            add("--p", i, torch.softmax(torch.from_numpy(x), 1).numpy())
            add("--q", i, torch.softmax(torch.from_numpy(rng.standard_normal((N, C))), 1).numpy())
        elif name == "focal":
            add("--logits", i, x), add("--target", i, rng.integers(0, 2, (N, C)).astype(np.float32))
        elif name in ("cosine-embedding", "cosine-similarity", "pairwise-distance"):
            add("--x1", i, x), add("--x2", i, rng.standard_normal((N, C)).astype(np.float32))
            if name == "cosine-embedding":
                add("--target", i, np.where(rng.random(N) < 0.5, 1, -1))
        else:
            raise AssertionError(f"no shard case for streamed loss {name}")
    return out


def args_of(files: dict[str, list[str]]) -> list[str]:
    return [a for flag, paths in files.items() for p in paths for a in (flag, p)]


def as_json(cli, *args: str) -> dict:
    return json.loads(cli(*args, "-f", "json").stdout)


@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "streamed"])
@pytest.mark.parametrize("name", STREAMED)
def test_every_streamed_loss_on_the_cluster_has_the_local_bits(scheduler, cli, tmp_path, name, stream):
    address, _ = scheduler
    files = shards(name, tmp_path)
    args = [name, *args_of(files), *(["--stream"] if stream else [])]
    local = as_json(cli, *args)
    assert as_json(cli, *args, "--scheduler", address) == local  # every file's partial and the total, bit for bit
    # The reference: the total is the float64 sum of the files' partial sums, in file order, then divided.
    total = 0.0
    for f in local["files"]:
        total += f["partial"]["total"]
    assert local["total"]["partial"]["total"] == total
    if name == "ce":
        x = np.concatenate([np.load(p) for p in files["--logits"]])
        t = np.concatenate([np.load(p) for p in files["--target"]])
        want = F.cross_entropy(torch.from_numpy(x).double(), torch.from_numpy(t)).item()
        assert local["total"]["value"] == pytest.approx(want, rel=1e-6)


def test_plain_and_partials_output_as_a_local_run(scheduler, cli, tmp_path):
    address, _ = scheduler
    args = ["ce", *args_of(shards("ce", tmp_path))]
    for extra in (["-f", "plain"], ["-f", "csv"], ["--partials"], ["--reduction", "none", "-f", "plain"]):
        local = cli(*args, *extra)
        remote = cli(*args, *extra, "--scheduler", address)
        assert (remote.stdout, remote.stderr) == (local.stdout, local.stderr)


def test_a_rule_each_shard_is_too_small_to_conclude_warns_as_a_local_run(scheduler, cli, tmp_path):
    """Sigmoid outputs, 10 per shard: each worker's Result carries its weak finding back, and the total joins
    them as a local run does (40 values over [0, 1] conclude)."""
    address, _ = scheduler
    p = np.random.default_rng(5).uniform(0.02, 0.98, 40)
    for i in range(4):
        np.save(tmp_path / f"p{i}.npy", p[i * 10:(i + 1) * 10])
        np.save(tmp_path / f"y{i}.npy", (p[i * 10:(i + 1) * 10] > 0.5).astype(np.int64))
    args = ["bce", "--logits", str(tmp_path / "p?.npy"), "--target", str(tmp_path / "y?.npy"), "-f", "plain"]
    local, remote = cli(*args), cli(*args, "--scheduler", address)
    assert local.stderr.startswith("lossctl: warning: --logits look like sigmoid outputs")
    assert (remote.stdout, remote.stderr) == (local.stdout, local.stderr)


def test_local_cluster_of_two_processes(cli, tmp_path):
    files = shards("ce", tmp_path, n=4, seed=1)
    args = ["ce", *args_of(files)]
    local = as_json(cli, *args)
    assert as_json(cli, *args, "--scheduler", "local:2") == local
    x = np.concatenate([np.load(p) for p in files["--logits"]])
    t = np.concatenate([np.load(p) for p in files["--target"]])
    want = F.cross_entropy(torch.from_numpy(x).double(), torch.from_numpy(t)).item()
    assert local["total"]["value"] == pytest.approx(want, rel=1e-6)


def test_progress_follows_tasks(scheduler, tmp_path):
    address, _ = scheduler
    files = shards("ce", tmp_path, n=4)
    calls = []
    sources = {"logits": files["--logits"], "target": files["--target"]}
    compute_files("ce", sources, {}, scheduler=address, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


SLOW = """
import time
import lossctl.cluster as c
c.fast_evaluate = getattr(c, "fast_evaluate", c.evaluate)
def slow(*args, **kwargs):
    time.sleep(0.4)
    return c.fast_evaluate(*args, **kwargs)
c.evaluate = slow
"""
FAST = "import lossctl.cluster as c\nc.evaluate = getattr(c, 'fast_evaluate', c.evaluate)\n"


def test_a_worker_killed_mid_run_does_not_change_the_result(scheduler, tmp_path):
    address, client = scheduler
    files = shards("ce", tmp_path, n=6, seed=2)
    sources = {"logits": files["--logits"], "target": files["--target"]}
    local = compute_files("ce", sources, {})
    client.run(exec, SLOW, {})  # each task now takes 0.4 s longer on the workers running now
    try:
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(compute_files, "ce", sources, {}, scheduler=address)
            busy = _wait_for_a_busy_worker(client)
            pids = client.run(os.getpid)
            os.kill(pids[busy], signal.SIGKILL)  # the worker process; its nanny starts another
            assert not run.done()
            got = run.result(timeout=60)
    finally:
        client.run(exec, FAST, {})
    assert got.to_dict() == local.to_dict()
    assert got.total.partial == local.total.partial
    client.wait_for_workers(2, timeout=30)


def _wait_for_a_busy_worker(client) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for worker, keys in client.processing().items():
            if any(str(k).startswith("lossctl-ce-") for k in keys):
                return worker
        time.sleep(0.01)
    raise AssertionError("no worker started a lossctl task")


def test_a_bad_shard_is_reported_once_by_name_and_no_total_is_printed(scheduler, cli, tmp_path, monkeypatch):
    address, _ = scheduler
    files = shards("ce", tmp_path, n=4)
    for i in (1, 3):  # two bad shards: the first in file order is reported, as a local run reports it
        Path(files["--logits"][i]).write_bytes(b"not an array")
    monkeypatch.chdir(tmp_path)  # relative paths as given: the workers get them absolute, the error names them as given
    args = ["ce", *[a if a.startswith("--") else os.path.basename(a) for a in args_of(files)]]
    local = cli(*args, code=2)
    remote = cli(*args, "--scheduler", address, code=2)
    assert remote.stdout == "" and remote.stderr == local.stderr
    assert remote.stderr == "lossctl: error: --logits (ce_logits_01.npy): not an .npy file (bad magic bytes)\n"


def test_a_worker_error_comes_back_as_the_same_lossctl_error(scheduler, tmp_path):
    address, _ = scheduler
    files = shards("ce", tmp_path, n=2)
    np.save(files["--target"][1], np.full(N, C + 3))  # a class out of range, found by the worker's loss check
    sources = {"logits": files["--logits"], "target": files["--target"]}
    with pytest.raises(errors.LossctlError) as local:
        compute_files("ce", sources, {})
    with pytest.raises(errors.LossctlError) as remote:
        compute_files("ce", sources, {}, scheduler=address)
    assert type(remote.value) is type(local.value) and str(remote.value) == str(local.value)
    assert remote.value.exit_code == 2


@pytest.mark.parametrize("cls", [c for c in vars(errors).values()
                                 if isinstance(c, type) and issubclass(c, errors.LossctlError)])
def test_lossctl_errors_and_results_pickle(cls, tmp_path):
    exc = cls("bad things", option="--logits", source="a.npy")
    back = pickle.loads(pickle.dumps(exc))
    assert (type(back), str(back), back.message, back.option, back.source, back.exit_code) == \
           (cls, str(exc), "bad things", "--logits", "a.npy", exc.exit_code)
    files = shards("ce", tmp_path, n=2)
    result = compute_files("ce", {"logits": files["--logits"], "target": files["--target"]}, {})
    assert pickle.loads(pickle.dumps(result)).to_dict() == result.to_dict()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_line_within_the_timeout(cli, tmp_path):
    files = shards("ce", tmp_path, n=2)
    address = f"tcp://127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    ran = cli("ce", *args_of(files), "--scheduler", address, "--scheduler-timeout", "1", code=2)
    assert time.monotonic() - t0 < 5
    assert ran.stdout == ""
    assert ran.stderr == f"lossctl: error: --scheduler: no Dask scheduler answered at {address} within 1 s\n"


MOST = 4 * (os.cpu_count() or 1)


@pytest.mark.parametrize("extra, message", [
    (["--scheduler", "local:0"], f"--scheduler: local:N takes a number of worker processes from 1 to {MOST} (4 per "
                                 "core here); got 'local:0'"),
    (["--scheduler", f"local:{MOST + 1}"], f"--scheduler: local:N takes a number of worker processes from 1 to "
                                           f"{MOST} (4 per core here); got 'local:{MOST + 1}'"),
    (["--scheduler", "nohost"], "--scheduler: not a scheduler address (missing port number in address 'nohost'); "
                                "give tcp://HOST:PORT or local[:N]"),
    (["--scheduler", "local", "--scheduler-timeout", "0"], "--scheduler-timeout: must be a number of seconds "
                                                           "above 0, at most 86400 (a day); got 0.0"),
    (["--scheduler", "local", "--scheduler-timeout", "1e308"], "--scheduler-timeout: must be a number of seconds "
                                                               "above 0, at most 86400 (a day); got 1e+308"),
    (["--scheduler-timeout", "3"], "--scheduler-timeout: applies only with --scheduler"),
])
def test_scheduler_usage_errors(cli, extra, message):
    ran = cli("ce", "--logits", "examples/logits.npy", "--target", "examples/targets.npy", *extra, code=2)
    assert ran.stderr == f"lossctl: error: {message}\n"


def test_standard_input_is_not_sent_to_workers(cli):
    ran = cli("ce", "--logits", "-", "--target", "[0]", "--scheduler", "local", input="[[1.0, 2.0]]", code=2)
    assert ran.stderr == ("lossctl: error: --scheduler: standard input ('-') cannot be sent to the workers; "
                          "give files they can read\n")


def test_missing_dask_names_the_extra(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    ran = cli("ce", "--logits", "examples/logits.npy", "--target", "examples/targets.npy", "--scheduler", "local",
              code=2)
    assert ran.stderr == ("lossctl: error: --scheduler: computing on a Dask cluster needs dask.distributed: "
                          "pip install 'lossctl[cluster]'\n")


PROBE = """
import contextlib, io, json, sys
from lossctl.cli import main
for args in json.loads(sys.argv[1]):
    sys.argv = ["lossctl", *args]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main()
        except SystemExit:
            pass
print(json.dumps(sorted(m for m in ("dask", "distributed", "fsspec", "s3fs") if m in sys.modules)))
"""


def test_help_and_local_runs_import_neither_dask_nor_fsspec():
    runs = [["ce", "--help"], ["ce", "--logits", "examples/logits.npy", "--target", "examples/targets.npy"]]
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(runs)], capture_output=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout) == []
