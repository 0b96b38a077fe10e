"""examples/dask_shards.py: the Dask total equals torch's cross entropy over all shards at once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("dask.distributed")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dask_shards.py"


def load_example():
    spec = importlib.util.spec_from_file_location("dask_shards", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dask_total_equals_torch_over_all_shards(tmp_path):
    ex = load_example()
    ex.make_shards(tmp_path, n=4, rows=33, classes=7, seed=3)
    x = np.concatenate([np.load(p) for p in sorted(tmp_path.glob("logits_*.npy"))])
    t = np.concatenate([np.load(p) for p in sorted(tmp_path.glob("target_*.npy"))])
    want = float(F.cross_entropy(torch.from_numpy(x).double(), torch.from_numpy(t)))
    assert ex.total_loss(tmp_path, workers=2) == pytest.approx(want, rel=1e-6)
