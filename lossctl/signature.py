"""A result's signature: one compact string of everything that determines its number, so that two reported
losses can be compared (the manner of sacreBLEU's signatures)."""

from __future__ import annotations

import sys

from . import __version__

SHORT = {"label_smoothing": "ls", "ignore_index": "ii", "target_kind": "target", "pos_weight": "pw"}


def torch_version() -> str:
    """torch's version without importing torch when a NumPy kernel computed the number."""
    if "torch" in sys.modules and sys.modules["torch"] is not None:
        return sys.modules["torch"].__version__.split("+")[0]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch").split("+")[0]
    except PackageNotFoundError:
        return "none"


def result_signature(result) -> str:
    from .sanity_summary import signature
    from .specs import get_loss

    roles = {r.name for r in get_loss(result.loss).roles}
    fields = {"loss": result.loss, "red": result.reduction}
    fields.update({SHORT.get(k, k): v for k, v in result.options.items() if k != "base"})
    # per-class arrays by their digest, so that two signatures agree only for the same weights
    fields.update({{"weight": "w"}.get(r, SHORT.get(r, r)): result.constants.get(r, "no")
                   for r in ("weight", "pos_weight") if r in roles})
    fields.update(dtype=result.dtype, backend=result.backend.replace(" ", "-"),
                  base=result.options.get("base"), lossctl=__version__, torch=torch_version())
    return signature(fields)
