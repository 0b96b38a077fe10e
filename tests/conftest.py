"""Shared helpers: seeded data, dtype tolerances, files of every input form, and the one CLI harness."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _realistic_dir() -> Path:
    """../shared/data/realistic beside the checkout (CI lays shared/ there), or where $LOSSCTL_SHARED points."""
    roots = [Path(os.environ["LOSSCTL_SHARED"])] if "LOSSCTL_SHARED" in os.environ else []
    roots += [p / "shared" for p in ROOT.parents]
    return next((r / "data" / "realistic" for r in roots if (r / "data" / "realistic").is_dir()),
                ROOT.parent / "shared" / "data" / "realistic")


REALISTIC = _realistic_dir()  # outputs of real models (see its README)

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


@dataclass
class Ran:
    """One run of `lossctl.cli:main`: its exit code and what it wrote."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class _Stdin(io.TextIOWrapper):
    def isatty(self) -> bool:
        return False


def run_cli(*args: str, input: bytes | str | None = None, env: dict[str, str | None] | None = None,
            code: int | None = 0) -> Ran:
    """The one CLI harness: `lossctl.cli:main` (the entry point users run) in-process, as `lossctl ARGS` would run.

    Checks that no traceback was printed and, unless `code` is None, the exit code. `env` sets (None: unsets)
    environment variables for the run.
    """
    from lossctl.cli import main

    old_env = {k: os.environ.get(k) for k in env or {}}
    _set_env(env or {})

    data = input.encode() if isinstance(input, str) else (input or b"")
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr
    sys.argv = ["lossctl", *map(str, args)]
    sys.stdin = _Stdin(io.BytesIO(data), encoding="utf-8") if input is not None else None
    sys.stdout, sys.stderr = out, err
    exit_code = 0
    try:
        main()
    except SystemExit as exc:
        exit_code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved
        _set_env(old_env)
    ran = Ran(exit_code, out.getvalue(), err.getvalue())
    assert "Traceback" not in ran.output, ran.output
    if code is not None:
        assert ran.exit_code == code, (ran.exit_code, ran.stdout, ran.stderr)
    return ran


def _set_env(env: dict[str, str | None]) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def cli():
    return run_cli


def run_subprocess(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m lossctl ...` in a real process, stdout piped (so --format auto means plain)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "lossctl", *map(str, args)], input=input, capture_output=True,
                          env=full_env, cwd=cwd or ROOT, timeout=120)
