"""A pickle payload inside .npy, .npz or .pt is never executed: lossctl refuses the file (exit 2) instead.

The payload's __reduce__ makes unpickling call `open(marker, "w")`, which creates the marker file. The last test
checks the payload is live (a careless loader does create the marker), so the others prove something.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli


class Payload:
    """Unpickling this opens (creates) `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npy_payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker), 1.0], dtype=object), allow_pickle=True)
    return buf.getvalue()


def npz_payload(marker: Path) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, logits=np.array([Payload(marker)], dtype=object), target=np.array([0]))
    return buf.getvalue()


def pt_payload(marker: Path, *, legacy: bool = False, wrap: bool = True) -> bytes:
    buf = io.BytesIO()
    obj = {"logits": Payload(marker), "target": torch.tensor([0])} if wrap else Payload(marker)
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


MAKERS = {
    "npy": ("x.npy", npy_payload),
    "npz": ("x.npz", npz_payload),
    "pt-dict": ("x.pt", pt_payload),
    "pt-bare": ("x.pt", lambda m: pt_payload(m, wrap=False)),
    "pt-legacy": ("x.pt", lambda m: pt_payload(m, legacy=True)),
    "pth": ("x.pth", pt_payload),
}


def _assert_refused(result, marker: Path) -> None:
    assert not marker.exists(), "the payload ran"
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("lossctl: error: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("how", ["option", "key", "from"])
def test_payload_in_a_file_is_never_executed(tmp_path, kind, how):
    name, make = MAKERS[kind]
    marker = tmp_path / "PWNED"
    path = tmp_path / name
    path.write_bytes(make(marker))
    if how == "from":
        args = ["ce", "--from", str(path)]
    elif how == "key":
        args = ["ce", "--logits", f"{path}:logits" if kind in ("npz", "pt-dict", "pt-legacy", "pth") else str(path),
                "--target", "[0]"]
    else:
        args = ["ce", "--logits", str(path), "--target", "[0]"]
    result = run_cli(*args, code=None)
    _assert_refused(result, marker)
    if kind == "npy" and how != "from" or kind == "npz" and how == "key":
        assert "pickle" in result.stderr
    if kind.startswith("pt"):
        assert "weights_only" in result.stderr


@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_payload_on_stdin_is_never_executed(tmp_path, kind):
    marker = tmp_path / "PWNED"
    data = MAKERS[kind][1](marker)
    result = run_cli("ce", "--logits", "-", "--target", "[0]", input=data, code=None)
    _assert_refused(result, marker)
    result = run_cli("ce", "--from", "-", input=npz_payload(marker), code=None)
    _assert_refused(result, marker)


def test_the_payload_is_live(tmp_path):
    # Loaders that do unpickle run it: the tests above would notice an unsafe load.
    marker = tmp_path / "RAN"
    (tmp_path / "x.npy").write_bytes(npy_payload(marker))
    np.load(tmp_path / "x.npy", allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    (tmp_path / "x.pt").write_bytes(pt_payload(marker))
    torch.load(tmp_path / "x.pt", weights_only=False)
    assert marker.exists()
