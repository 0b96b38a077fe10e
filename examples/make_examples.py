"""Regenerate the small example files in this folder, byte for byte: `python examples/make_examples.py`.

The data follow the tutorial (deep_thoughts, "PyTorch CE, NLL, KL, entropy, BCE, cosine"): a batch of
logits over 4 classes, class-index targets, target logits whose softmax is a soft target, binary
probabilities with 0/1 targets, and pairs of embeddings with +1/-1 targets. Only numpy's seeded
generator is used (not torch's), so the files do not depend on the torch version. The same logits and targets
are also written as whitespace text, JSON Lines, safetensors and Parquet (the last two need the test extra's
safetensors and pyarrow), and a classes-last batch (N, L, C) shows --class-axis.
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
        **more(np.random.default_rng(SEED + 1), logits, targets),
    }


def more(rng: np.random.Generator, logits: np.ndarray, targets: np.ndarray) -> dict[str, object]:
    """Files added later, from a generator of their own so that the files above stay as they were."""
    logits_nlc = rng.standard_normal((2, 3, CLASSES)).astype(np.float32)  # (N, L, C), as Hugging Face returns
    labels_nl = rng.integers(CLASSES, size=(2, 3)).astype(np.int64)
    labels_nl[1, 2] = -100  # padding
    return {
        "logits.txt": logits,
        "samples.jsonl": [{"id": i, "logits": row.tolist(), "target": int(t)} for i, (row, t) in
                          enumerate(zip(logits, targets, strict=True))],
        "bundle.safetensors": {"logits": logits, "target": targets},
        "samples.parquet": {"logits": logits, "target": targets},
        "logits_nlc.npy": logits_nlc,
        "labels_nl.npy": labels_nl,
    }


def write_formats(path: Path, content) -> None:
    """The formats beyond numpy's own: whitespace text (np.savetxt), JSON Lines, safetensors, Parquet."""
    if path.suffix == ".txt":
        np.savetxt(path, content, header="logits of the examples: 8 samples x 4 classes")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(line) + "\n" for line in content), encoding="utf-8")
    elif path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(content, str(path))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        width = content["logits"].shape[1]
        table = pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(content["logits"].reshape(-1)), width),
                          "target": pa.array(content["target"])})
        pq.write_table(table, path)


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
        elif path.suffix in (".txt", ".jsonl", ".safetensors", ".parquet"):
            write_formats(path, content)
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
