"""Regenerate the small example files in this folder, byte for byte: `python examples/make_examples.py`.

The data follow the tutorial (deep_thoughts, "PyTorch CE, NLL, KL, entropy, BCE, cosine"): a batch of
logits over 4 classes, class-index targets, target logits whose softmax is a soft target, binary
probabilities with 0/1 targets, and pairs of embeddings with +1/-1 targets. Only numpy's seeded
generator is used (not torch's), so the files do not depend on the torch version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SEED = 20240555  # the tutorial is episode P_55
BATCH, CLASSES, DIM, PAIRS = 8, 4, 64, 4
HERE = Path(__file__).resolve().parent


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def make(rng: np.random.Generator) -> dict[str, object]:
    """Every example's content, by file name; arrays keep the dtype they are saved with."""
    logits = rng.standard_normal((BATCH, CLASSES)).astype(np.float32)
    targets = rng.integers(CLASSES, size=BATCH).astype(np.int64)
    target_logits = rng.standard_normal((BATCH, CLASSES)).astype(np.float32)
    # Text files hold float64 numbers: the softmax of the float32 target logits, computed in float64.
    target_probs = softmax(target_logits.astype(np.float64))
    targets_ignored = targets.copy()
    targets_ignored[[2, 5]] = -100  # e.g. padding positions
    binary_logits = rng.standard_normal(BATCH).astype(np.float32)
    probs_binary = (1.0 / (1.0 + np.exp(-binary_logits.astype(np.float64)))).astype(np.float32)
    targets_binary = rng.integers(2, size=BATCH).astype(np.int64)
    x1 = rng.standard_normal((PAIRS, DIM)).astype(np.float32)
    x2 = rng.standard_normal((PAIRS, DIM)).astype(np.float32)
    x2[0] = x1[0] + 0.3 * x2[0]  # one similar pair, so the loss is not all noise
    cos_target = [1, -1, 1, -1]
    weights = [1.0, 2.0, 0.5, 1.0]
    return {
        "logits.npy": logits,
        "targets.npy": targets,
        "target_logits.npy": target_logits,
        "target_probs.json": target_probs.tolist(),
        "targets_ignored.npy": targets_ignored,
        "class_weights.json": weights,
        "logits.csv": logits,
        "logits.tsv": logits,
        "targets.csv": targets,
        "bundle.npz": {"logits": logits, "target": targets, "weight": np.array(weights)},
        "logits_binary.npy": binary_logits,
        "probs_binary.npy": probs_binary,
        "targets_binary.csv": targets_binary,
        "x1.npy": x1,
        "x2.npy": x2,
        "cos_target.json": cos_target,
    }


def write_text_table(path: Path, arr: np.ndarray, delimiter: str, header: str | None) -> None:
    # repr of each value: float32 values are written exactly (as the float64 of the same number).
    rows = arr.reshape(len(arr), -1).tolist()
    lines = [header] if header else []
    lines += [delimiter.join(repr(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_all(out: Path) -> list[Path]:
    files = make(np.random.default_rng(SEED))
    written = []
    for name, content in files.items():
        path = out / name
        if name.endswith(".npy"):
            np.save(path, content, allow_pickle=False)
        elif name.endswith(".npz"):
            # Zip entries carry a fixed 1980 timestamp, so the archive is byte-identical on every run.
            np.savez(path, **content)
        elif name.endswith(".json"):
            path.write_text(json.dumps(content) + "\n", encoding="utf-8")
        elif name == "logits.csv":
            write_text_table(path, content, ",", ",".join(f"class_{c}" for c in range(CLASSES)))
        elif name == "logits.tsv":
            write_text_table(path, content, "\t", None)  # no header: lossctl reads both
        else:  # a single-column CSV with a header is a vector
            write_text_table(path, content, ",", "target")
        written.append(path)
    return written


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else HERE
    out.mkdir(parents=True, exist_ok=True)
    for path in write_all(out):
        print(f"{path.name}\t{path.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
