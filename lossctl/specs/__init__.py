"""Every built-in loss's `LossSpec`, registered on import; the registry itself knows none of them.

Import the registry's functions from here (`from .specs import get_loss`) so the built-in losses are registered
before anything looks one up. Importing this package imports neither numpy nor torch.
"""

from ..registry import all_specs, get_loss, list_losses
from . import classification, distance, divergence, embedding, extra, margin, regression, sequence  # noqa: F401

__all__ = ["all_specs", "get_loss", "list_losses"]
