"""Shared helpers: seeded data, dtype tolerances, files of every input form, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# lossctl sums in float64 while torch sums float32 in float32, so float32 results agree only to ~1e-6 relative.
TOL = {np.dtype(np.float32): {"rtol": 2e-5, "atol": 2e-6}, np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-13}}


def tol(dtype) -> dict[str, float]:
    return TOL[np.dtype(dtype)]


def assert_close(actual, expected, dtype=np.float64) -> None:
    """Compare a lossctl number or array with a reference (a float, array or torch tensor)."""
    if hasattr(expected, "detach"):
        expected = expected.detach().double().numpy()
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               **tol(dtype))


def result_value(res):
    """A lossctl Result's number (reduced) or array (reduction none)."""
    return res.values if res.values is not None else res.value


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


def save(arr: np.ndarray, path: Path, *, header: bool = False) -> Path:
    """Write `arr` in the format its suffix names; text forms keep float64 exactly (repr precision)."""
    ext = path.suffix
    if ext == ".npy":
        np.save(path, arr)
    elif ext == ".npz":
        np.savez(path, arr)
    elif ext == ".json":
        path.write_text(json.dumps(arr.tolist()))
    elif ext in (".csv", ".tsv"):
        sep = "," if ext == ".csv" else "\t"
        rows = arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, 1)
        lines = [sep.join(f"c{i}" for i in range(rows.shape[1]))] if header else []
        lines += [sep.join(repr(v.item()) for v in row) for row in rows]
        path.write_text("\n".join(lines) + "\n")
    elif ext == ".pt":
        import torch

        torch.save(torch.from_numpy(np.ascontiguousarray(arr)), path)
    else:
        raise ValueError(ext)
    return path


class CLI:
    """Runs the Typer app in-process; `.stdout` and `.stderr` come back separately."""

    def __init__(self) -> None:
        import typer.main
        from typer.testing import CliRunner

        from lossctl.cli import app

        self.app = app
        self.runner = CliRunner()
        # Building the Click command from the registry costs ~0.1 s; build it once, not on every invoke.
        self.command = typer.main.get_command(app)

    def __call__(self, *args: str, input: bytes | str | None = None, env: dict[str, str] | None = None,
                 code: int | None = 0):
        import typer.testing

        build = typer.testing._get_command
        typer.testing._get_command = lambda app: self.command if app is self.app else build(app)
        try:
            res = self.runner.invoke(self.app, [str(a) for a in args], input=input, env=env)
        finally:
            typer.testing._get_command = build
        assert "Traceback" not in res.output, res.output
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        if code is not None:
            assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
        return res


@pytest.fixture(scope="session")
def cli() -> CLI:
    return CLI()


def run_subprocess(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m lossctl ...` in a real process, stdout piped (so --format auto means plain)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "lossctl", *map(str, args)], input=input, capture_output=True,
                          env=full_env, cwd=cwd or ROOT, timeout=120)
