"""lossctl: compute PyTorch losses from files, exactly as torch.nn does."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "compute", "check", "decompose"]


def __getattr__(name: str):
    # The API pulls in numpy; keep `import lossctl` (and so `lossctl --help`) light until it is used.
    if name in ("compute", "check", "decompose"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
