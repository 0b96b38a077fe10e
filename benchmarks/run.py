"""Benchmarks for the speed and memory targets: each figure beside its baseline, run in the same session.

    python benchmarks/run.py            # everything (makes ~1.1 GiB of data under benchmarks/data/)
    python benchmarks/run.py --quick    # skips the CSV file
    python benchmarks/run.py --part startup   # only the start-up rows (or --part big)

Prints a Markdown table (the one in the README). Times are the median wall time of --repeat runs of a
fresh process; peak memory is the child's maximum RSS as the kernel reports it (wait4). Not a test:
machines are noisy, so targets are shown, never asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PY = sys.executable
LOSSCTL = [PY, "-m", "lossctl"]

BASELINE_CE = """
import sys, numpy as np, torch, torch.nn.functional as F
a, b = sys.argv[1], sys.argv[2]
x = torch.from_numpy(np.load(a)); t = torch.from_numpy(np.load(b)); print(F.cross_entropy(x, t).item())
"""

BASELINE_CSV = """
import sys, pandas as pd, torch, torch.nn.functional as F
x = torch.from_numpy(pd.read_csv(sys.argv[1], header=None).to_numpy())
t = torch.from_numpy(pd.read_csv(sys.argv[2], header=None).to_numpy()[:, 0])
print(F.cross_entropy(x, t).item())
"""

# The floor: the same numbers from NumPy alone, the least a Python tool that reads the inputs can take.
NUMPY_FLOOR = {
    "ce": """
import json, sys, numpy as np
x = np.array(json.loads(sys.argv[1])); t = np.array(json.loads(sys.argv[2]))
m = x.max(1, keepdims=True); lp = x - m - np.log(np.exp(x - m).sum(1, keepdims=True))
print(-lp[np.arange(len(t)), t].mean())
""",
    "kl": """
import sys, numpy as np
x = np.load(sys.argv[1]); p = np.load(sys.argv[2])
m = x.max(1, keepdims=True); lq = x - m - np.log(np.exp(x - m).sum(1, keepdims=True))
print((p * (np.log(p) - lq)).sum() / len(x))
""",
    "bce": """
import sys, numpy as np
x = np.load(sys.argv[1]); y = np.load(sys.argv[2])
print(((1 - y) * x + np.logaddexp(0, -x)).mean())
""",
    "mse": """
import sys, numpy as np
x = np.load(sys.argv[1]); y = np.load(sys.argv[2])
print(((x - y) ** 2).mean())
""",
}


# The streamed computation alone: lossctl imported and warmed up, then one timed compute (a fresh process each time).
IN_PROCESS = """
import sys, time, lossctl
lossctl.compute("ce", logits="[[1.0, 2.0]]", target="[0]")  # imports what a run needs
import lossctl.stream, lossctl.kernels.classification, concurrent.futures
t0 = time.perf_counter()
r = lossctl.compute("ce", logits=sys.argv[1], target=sys.argv[2], threads=int(sys.argv[3]))
print(time.perf_counter() - t0)
"""

# What no Python tool reading this file can go below on this machine: the 1 GiB read from the page cache (os.preadv,
# as lossctl reads) and one np.exp over its 262 million float32 values, each on every core.
FLOOR_BIG = """
import os, sys, time, numpy as np
from concurrent.futures import ThreadPoolExecutor
path, threads = sys.argv[1], os.cpu_count()
fd, rows, cols = os.open(path, os.O_RDONLY), 262144, 1000
step = 2048
def read(start):
    buf = np.empty((step, cols), np.float32)
    os.preadv(fd, [memoryview(buf).cast("B")], 128 + start * cols * 4)
x = np.random.default_rng(0).standard_normal((step, cols), dtype=np.float32)
def exp(start):
    np.exp(x, out=np.empty_like(x))
with ThreadPoolExecutor(threads) as pool:
    t0 = time.perf_counter(); list(pool.map(read, range(0, rows, step)))
    t1 = time.perf_counter(); list(pool.map(exp, range(0, rows, step)))
    t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def measure(cmd: list[str], repeat: int) -> tuple[float, float, str]:
    """Run `cmd` from a small helper process so that its RUSAGE_CHILDREN holds this command's peak alone."""
    code = (
        "import resource, subprocess, sys, time, statistics, json\n"
        "cmd = json.loads(sys.argv[1]); n = int(sys.argv[2]); ts = []\n"
        "for _ in range(n):\n"
        "    t0 = time.perf_counter(); p = subprocess.run(cmd, capture_output=True)\n"
        "    ts.append(time.perf_counter() - t0)\n"
        "    if p.returncode not in (0, 2): sys.exit(p.stderr.decode()[-2000:])\n"
        "print(json.dumps([statistics.median(ts), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,"
        " p.stdout.decode().strip()]))\n"
    )
    import json

    p = subprocess.run([PY, "-c", code, json.dumps(cmd), str(repeat)], capture_output=True, text=True,
                       env={**os.environ, "NO_COLOR": "1"})
    if p.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}{p.stdout[-2000:]}")
    t, rss, out = json.loads(p.stdout)
    return t, rss, out


def make_npy(rows: int, cols: int, name: str) -> tuple[Path, Path]:
    x, t = DATA / f"{name}_logits.npy", DATA / f"{name}_targets.npy"
    if not (x.exists() and t.exists()):
        rng = np.random.default_rng(0)
        arr = np.lib.format.open_memmap(x, mode="w+", dtype=np.float32, shape=(rows, cols))
        step = 8192
        for i in range(0, rows, step):
            arr[i:i + step] = rng.standard_normal((min(step, rows - i), cols), dtype=np.float32)
        arr.flush()
        del arr
        np.save(t, rng.integers(0, cols, rows))
    return x, t


def make_csv(rows: int, cols: int) -> tuple[Path, Path]:
    x, t = DATA / "csv_logits.csv", DATA / "csv_targets.csv"
    if not (x.exists() and t.exists()):
        rng = np.random.default_rng(1)
        np.savetxt(x, rng.standard_normal((rows, cols)), fmt="%.6f", delimiter=",")
        np.savetxt(t, rng.integers(0, cols, rows), fmt="%d")
    return x, t


def make_tiny() -> dict[str, list[str]]:
    """Tiny inputs of kl, bce --logits and mse as .npy files, and each command's arguments."""
    d = DATA / "tiny"
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    p = np.exp(x[::-1]) / np.exp(x[::-1]).sum(1, keepdims=True)
    arrays = {"x": x, "p": p.astype(np.float32), "y": (rng.random((4, 5)) > 0.5).astype(np.float32),
              "z": rng.standard_normal((4, 5)).astype(np.float32)}
    for name, arr in arrays.items():
        np.save(d / f"{name}.npy", arr)
    f = {k: str(d / f"{k}.npy") for k in arrays}
    return {"kl": ["kl", "--logits", f["x"], "--target", f["p"], "--reduction", "batchmean"],
            "bce": ["bce", "--logits", f["x"], "--target", f["y"]],
            "mse": ["mse", "--input", f["x"], "--target", f["z"]],
            "floor:kl": [f["x"], f["p"]], "floor:bce": [f["x"], f["y"]], "floor:mse": [f["x"], f["z"]]}


def row(name: str, ours: float, base: float, goal: float, unit: str = "s") -> str:
    ratio = ours / base
    return f"| {name} | {ours:.3f} {unit} | {base:.3f} {unit} | {ratio:.2f}x | <= {goal}x | " \
           f"{'yes' if ratio <= goal else 'NO'} |"


def startup_rows(repeat: int) -> tuple[list[str], float]:
    """Start-up figures are small and the machine is noisy: take each of them, `import torch` and the NumPy floor
    in turn, several times, and compare the medians."""
    tiny = make_tiny()
    logits, target = "[[2.0,1.0,0.1],[0.5,2.5,0.3]]", "[0,1]"
    runs = {"`lossctl --help`": [*LOSSCTL, "--help"], "`lossctl list`": [*LOSSCTL, "list", "--format", "plain"],
            "usage error": [*LOSSCTL, "ce", "--bogus"],
            "ce": [*LOSSCTL, "ce", "--logits", logits, "--target", target, "--format", "plain"],
            "floor:ce": [PY, "-c", NUMPY_FLOOR["ce"], logits, target],
            **{k: [*LOSSCTL, *tiny[k], "--format", "plain"] for k in ("kl", "bce", "mse")},
            **{f"floor:{k}": [PY, "-c", NUMPY_FLOOR[k], *tiny[f"floor:{k}"]] for k in ("kl", "bce", "mse")},
            "torch": [PY, "-c", "import torch"]}
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(max(repeat, 7)):
        for label, cmd in runs.items():
            samples[label].append(measure(cmd, 1)[0])
    med = {k: statistics.median(v) for k, v in samples.items()}
    lines = [row(f"{label} vs `import torch`", med[label], med["torch"], 0.1)
             for label in ("`lossctl --help`", "`lossctl list`", "usage error")]
    for loss, how in (("ce", "inline literals"), ("kl", ".npy"), ("bce", ".npy, --logits"), ("mse", ".npy")):
        lines.append(row(f"tiny `lossctl {loss}` ({how}) vs `import torch`", med[loss], med["torch"], 0.15))
        lines.append(row(f"tiny `lossctl {loss}` vs the NumPy-only script", med[loss], med[f"floor:{loss}"], 1.5))
    return lines, med["torch"]


def big_rows(repeat: int, quick: bool) -> tuple[list[str], str]:
    x1, t1 = make_npy(262144, 1000, "1g")
    base_t, base_rss, base_out = measure([PY, "-c", BASELINE_CE, str(x1), str(t1)], repeat)
    cmd = [*LOSSCTL, "ce", "--logits", str(x1), "--target", str(t1), "--format", "plain"]
    ours_t, ours_rss, ours_out = measure(cmd, repeat)
    one_t, _, one_out = measure([*cmd, "--threads", "1"], repeat)
    lines = [row("CE, 1 GiB float32 .npy: time vs np.load + F.cross_entropy", ours_t, base_t, 0.1),
             f"| CE, 1 GiB: peak RSS | {ours_rss:.0f} MiB | {base_rss:.0f} MiB | {ours_rss / base_rss:.2f}x "
             f"| <= 100 MiB | {'yes' if ours_rss <= 100 else 'NO'} |",
             f"| CE, 1 GiB: {os.cpu_count()} threads (the default) vs `--threads 1` | {ours_t:.3f} s | {one_t:.3f} s "
             f"| {one_t / ours_t:.2f}x faster | >= 1.6x faster | {'yes' if one_t / ours_t >= 1.6 else 'NO'} |"]
    compute = {n: statistics.median(float(measure([PY, "-c", IN_PROCESS, str(x1), str(t1), str(n)], 1)[2])
                                    for _ in range(repeat)) for n in (os.cpu_count(), 1)}
    lines.append(f"| CE, 1 GiB: the streamed computation alone (in-process, after start-up), {os.cpu_count()} threads "
                 f"vs 1 | {compute[os.cpu_count()]:.3f} s | {compute[1]:.3f} s | "
                 f"{compute[1] / compute[os.cpu_count()]:.2f}x faster | (not a target: what threads change) | |")
    numpy_t = statistics.median(measure([PY, "-c", "import numpy"], 1)[0] for _ in range(repeat))
    read_t, exp_t = (float(v) for v in measure([PY, "-c", FLOOR_BIG, str(x1)], 1)[2].split())
    values = (f"1 GiB values: lossctl {ours_out} ({one_out} on one thread), torch script {base_out}. "
              f"The 1 GiB floor on {os.cpu_count()} cores: `python -c 'import numpy'` {numpy_t:.3f} s, reading the "
              f"file with os.preadv {read_t:.3f} s, one np.exp over it {exp_t:.3f} s: "
              f"{numpy_t + read_t + exp_t:.3f} s together, {(numpy_t + read_t + exp_t) / base_t:.2f}x the torch script")
    if not quick:
        xc, tc = make_csv(100_000, 100)
        mb = xc.stat().st_size / 1e6
        b_t, _, b_out = measure([PY, "-c", BASELINE_CSV, str(xc), str(tc)], repeat)
        o_t, _, o_out = measure([*LOSSCTL, "ce", "--logits", str(xc), "--target", str(tc), "--format", "plain"],
                                repeat)
        lines.append(row(f"CE, {mb:.0f} MB CSV vs pandas.read_csv + torch", o_t, b_t, 1.0))
        values += f"; CSV: lossctl {o_out}, pandas+torch {b_out}"
    return lines, values


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the CSV file")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--part", choices=("all", "startup", "big"), default="all", help="measure only these rows")
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    # Measure what an installed lossctl does: its modules compiled once (PYTHONDONTWRITEBYTECODE, set on some
    # machines, would otherwise make every run compile them again).
    subprocess.run([PY, "-m", "compileall", "-q", str(HERE.parent / "lossctl")], check=True)
    lines = ["| target | lossctl | baseline | ratio | goal | met |", "|---|---|---|---|---|---|"]
    start, torch_t = startup_rows(args.repeat) if args.part != "big" else ([], math.nan)
    big, values = big_rows(args.repeat, args.quick) if args.part != "startup" else ([], "")
    print("\n".join(lines + start + big))
    print(f"\n`import torch`: {torch_t:.3f} s. {values}. Machine: {os.cpu_count()} cores, "
          f"{shutil.disk_usage(DATA).free // 2**30} GiB disk free, Python {sys.version.split()[0]}.")


if __name__ == "__main__":
    main()
