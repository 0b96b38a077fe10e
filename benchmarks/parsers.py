"""Which text parser lossctl uses, by measurement: each candidate on the same file, side by side.

    python benchmarks/parsers.py

CSV: lossctl's own validating parser (used below the streaming threshold, for its row/column errors),
numpy.loadtxt, and pandas' C engine (used to stream big CSV/TSV files). JSON: the standard library's json
and orjson (used when installed). Prints a Markdown table of seconds and ratios against the slowest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    DATA.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    arr = rng.standard_normal((20_000, 100))
    csv_path, json_path = DATA / "parse.csv", DATA / "parse.json"
    np.savetxt(csv_path, arr, fmt="%.6f", delimiter=",")
    json_path.write_text(json.dumps(np.round(arr, 6).tolist()))
    csv_text, json_text = csv_path.read_text(), json_path.read_text()

    from lossctl.io.text import parse_csv

    rows = [("CSV", "lossctl parse_csv (pure Python, validating)",
             best_of(lambda: parse_csv(csv_text, option="--logits", source="x"), 1)),
            ("CSV", "numpy.loadtxt", best_of(lambda: np.loadtxt(csv_path, delimiter=",")))]
    try:
        import pandas as pd

        rows.append(("CSV", "pandas.read_csv (C engine)",
                     best_of(lambda: pd.read_csv(csv_path, header=None, engine="c").to_numpy())))
    except ImportError:
        pass
    rows.append(("JSON", "json.loads + numpy", best_of(lambda: np.array(json.loads(json_text)))))
    try:
        import orjson

        rows.append(("JSON", "orjson.loads + numpy", best_of(lambda: np.array(orjson.loads(json_text)))))
    except ImportError:
        pass
    print(f"CSV {csv_path.stat().st_size / 1e6:.0f} MB, JSON {json_path.stat().st_size / 1e6:.0f} MB "
          f"({arr.shape[0]} x {arr.shape[1]} floats)\n")
    print("| format | parser | seconds | vs slowest |\n|---|---|---|---|")
    for fmt in ("CSV", "JSON"):
        group = [r for r in rows if r[0] == fmt]
        slowest = max(t for _, _, t in group)
        for _, name, t in group:
            print(f"| {fmt} | {name} | {t:.3f} | {t / slowest:.2f}x |")


if __name__ == "__main__":
    main()
