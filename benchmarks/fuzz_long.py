"""A long fuzz run of lossctl's readers and losses (not run in CI).

Runs tests/test_properties.py with every example count multiplied by --scale (default 40), strictly: an input
that only torch's own checks refuse (ComputeError, the backstop) counts as a finding. Then throws damaged files
at the real CLI in subprocesses, checking each ends in exit 0 or 2 with no traceback.

    python benchmarks/fuzz_long.py [--scale 40] [--cli-runs 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_properties(scale: int) -> int:
    env = {**os.environ, "LOSSCTL_FUZZ_SCALE": str(scale), "LOSSCTL_FUZZ_STRICT": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_properties.py")]
    return subprocess.call(cmd, env=env, cwd=ROOT)


def damage(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        how = rng.choice(["flip", "cut", "insert", "dup"])
        i = rng.randrange(max(len(buf), 1))
        if how == "flip" and buf:
            buf[i] = rng.randrange(256)
        elif how == "cut":
            del buf[i:]
        elif how == "insert":
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        else:
            buf[i:i] = buf[i:i + rng.randint(1, 64)]
    return bytes(buf)


def run_cli(runs: int, seed: int) -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_properties import VALID  # one valid file per format

    rng = random.Random(seed)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(runs):
            ext = rng.choice(sorted(VALID))
            path = Path(tmp) / f"case{ext}"
            path.write_bytes(damage(VALID[ext], rng))
            args = ["ce", "--logits", str(path), "--target", "[0, 1]"]
            if rng.random() < 0.3:
                args = ["ce", "--from", str(path)]
            try:
                proc = subprocess.run([sys.executable, "-m", "lossctl", *args], capture_output=True, timeout=60)
            except subprocess.TimeoutExpired:
                print(f"run {n}: TIMEOUT on {ext}", file=sys.stderr)
                failures += 1
                continue
            err = proc.stderr.decode(errors="replace")
            if proc.returncode not in (0, 2) or "Traceback" in err or len(err.strip().splitlines()) > 3:
                failures += 1
                keep = ROOT / "benchmarks" / f"fuzz_failure_{n}{ext}"
                keep.write_bytes(path.read_bytes())
                print(f"run {n}: exit {proc.returncode}, kept {keep}\n{err}", file=sys.stderr)
    print(f"cli fuzz: {runs} runs, {failures} failures")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=40)
    ap.add_argument("--cli-runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rc = run_properties(a.scale)
    return run_cli(a.cli_runs, a.seed) or rc


if __name__ == "__main__":
    sys.exit(main())
