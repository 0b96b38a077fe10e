"""Benchmarks for the speed and memory targets: each figure beside its baseline, run in the same session.

    python benchmarks/run.py            # everything (makes ~6 GiB of data under benchmarks/data/)
    python benchmarks/run.py --quick    # skips the 4 GiB file

Prints a Markdown table (the one in the README). Times are the median wall time of --repeat runs of a
fresh process; peak memory is the child's maximum RSS as the kernel reports it (wait4). Not a test:
machines are noisy, so targets are shown, never asserted.
"""

from __future__ import annotations

import argparse
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


def make_shards(n: int) -> list[tuple[Path, Path]]:
    d = DATA / "shards"
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(2)
    out = []
    for i in range(n):
        x, t = d / f"l{i:03d}.npy", d / f"t{i:03d}.npy"
        if not x.exists():
            np.save(x, rng.standard_normal((256, 10)).astype(np.float32))
            np.save(t, rng.integers(0, 10, 256))
        out.append((x, t))
    return out


def row(name: str, ours: float, base: float, goal: float, unit: str = "s", base_label: str = "") -> str:
    ratio = ours / base
    ok = "yes" if ratio <= goal else "NO"
    return f"| {name} | {ours:.3f} {unit} | {base:.3f} {unit}{base_label} | {ratio:.2f}x | <= {goal}x | {ok} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 4 GiB file")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    DATA.mkdir(exist_ok=True)
    r = args.repeat
    lines = ["| target | lossctl | baseline | ratio | goal | met |", "|---|---|---|---|---|---|"]

    # Start-up figures are small and the machine is noisy: take each of them and `import torch` in turn,
    # several times, and compare the medians.
    starts = {"`lossctl --help`": ["--help"], "`lossctl list`": ["list", "--format", "plain"],
              "`lossctl --version`": ["--version"], "usage error": ["ce", "--bogus"],
              "tiny": ["ce", "--logits", "[[2.0,1.0,0.1]]", "--target", "[0]", "--format", "plain"]}
    samples: dict[str, list[float]] = {k: [] for k in ["torch", *starts]}
    for _ in range(max(r, 5)):
        samples["torch"].append(measure([PY, "-c", "import torch"], 1)[0])
        for label, cmd in starts.items():
            samples[label].append(measure([*LOSSCTL, *cmd], 1)[0])
    torch_t = statistics.median(samples["torch"])
    for label in starts:
        if label != "tiny":
            lines.append(row(f"1. {label} vs `import torch`", statistics.median(samples[label]), torch_t, 0.2))
    lines.append(row("2. tiny `lossctl ce` vs `import torch`", statistics.median(samples["tiny"]), torch_t, 1.15))

    x1, t1 = make_npy(262144, 1000, "1g")
    base_t, base_rss, base_out = measure([PY, "-c", BASELINE_CE, str(x1), str(t1)], r)
    ours_t, ours_rss, ours_out = measure([*LOSSCTL, "ce", "--logits", str(x1), "--target", str(t1),
                                          "--format", "plain"], r)
    lines.append(row("3. CE, 1 GiB float32 .npy: time", ours_t, base_t, 0.7))
    lines.append(f"| 3. CE, 1 GiB: peak RSS | {ours_rss:.0f} MiB | {base_rss:.0f} MiB | {ours_rss / base_rss:.2f}x "
                 f"| <= 400 MiB | {'yes' if ours_rss <= 400 else 'NO'} |")
    values = f"values: lossctl {ours_out}, torch script {base_out}"
    if not args.quick:
        x4, t4 = make_npy(4 * 262144, 1000, "4g")
        o4_t, o4_rss, _ = measure([*LOSSCTL, "ce", "--logits", str(x4), "--target", str(t4), "--format", "plain"], 1)
        b4_t, b4_rss, _ = measure([PY, "-c", BASELINE_CE, str(x4), str(t4)], 1)
        lines.append(row("3. CE, 4 GiB float32 .npy: time", o4_t, b4_t, 0.7))
        lines.append(f"| 3. CE, 4 GiB: peak RSS (1 GiB: {ours_rss:.0f} MiB) | {o4_rss:.0f} MiB | {b4_rss:.0f} MiB "
                     f"| {o4_rss / b4_rss:.2f}x | <= 400 MiB, flat | {'yes' if o4_rss <= 400 else 'NO'} |")

    xc, tc = make_csv(100_000, 100)
    mb = xc.stat().st_size / 1e6
    base_t, _, base_csv = measure([PY, "-c", BASELINE_CSV, str(xc), str(tc)], r)
    ours_t, _, ours_csv = measure([*LOSSCTL, "ce", "--logits", str(xc), "--target", str(tc), "--format", "plain"], r)
    lines.append(row(f"4. CE, {mb:.0f} MB CSV vs pandas.read_csv", ours_t, base_t, 1.0))
    values += f"; CSV: lossctl {ours_csv}, pandas+torch {base_csv}"

    shards = make_shards(50)
    one_t, _, _ = measure([*LOSSCTL, "ce", "--logits", str(shards[0][0]), "--target", str(shards[0][1]),
                           "--format", "plain"], r)
    many_t, _, _ = measure([*LOSSCTL, "ce", "--logits", str(DATA / "shards" / "l*.npy"), "--target",
                            str(DATA / "shards" / "t*.npy"), "--format", "plain"], r)
    lines.append(row("5. 50 shard pairs in one call vs one pair", many_t, one_t, 2.0))

    print("\n".join(lines))
    print(f"\n`import torch`: {torch_t:.3f} s. {values}. Machine: {os.cpu_count()} cores, "
          f"{shutil.disk_usage(DATA).free // 2**30} GiB disk free, Python {sys.version.split()[0]}.")


if __name__ == "__main__":
    main()
