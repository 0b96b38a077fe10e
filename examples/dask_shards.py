"""The exact loss over many shards, computed on a local Dask cluster with lossctl's mergeable partials.

Each task computes one shard pair's partial sums (what `lossctl ce --partials` prints); the client adds
them, which gives exactly the loss over all shards at once. The same works for a Slurm array or Spark:
map `lossctl ... --partials` over the shards, then `lossctl merge` the outputs.

    pip install -e '.[dask]'
    python examples/dask_shards.py examples/shards      # makes a few shards there if it is empty
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def shard_partial(logits_path: str, target_path: str) -> dict:
    """Runs on a worker: one shard's partial document."""
    import lossctl
    from lossctl.batch import partial_document

    return partial_document(lossctl.compute("ce", logits=logits_path, target=target_path))


def make_shards(folder: Path, n: int = 6, rows: int = 64, classes: int = 10, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        np.save(folder / f"logits_{i:02d}.npy", rng.standard_normal((rows, classes)).astype(np.float32))
        np.save(folder / f"target_{i:02d}.npy", rng.integers(0, classes, rows))


def total_loss(folder: Path, workers: int = 2) -> float:
    from dask.distributed import Client, LocalCluster

    from lossctl.batch import merge

    pairs = list(zip(sorted(map(str, folder.glob("logits_*.npy"))), sorted(map(str, folder.glob("target_*.npy"))),
                     strict=True))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        docs = client.gather(client.map(shard_partial, *zip(*pairs, strict=True)))
    return merge(docs).value


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/shards")
    if not any(folder.glob("logits_*.npy")):
        make_shards(folder)
    print(total_loss(folder))


if __name__ == "__main__":
    main()
