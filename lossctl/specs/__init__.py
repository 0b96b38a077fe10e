"""Every built-in loss's `LossSpec`. Importing this package registers them; it imports neither numpy nor torch."""

from . import classification, divergence, embedding  # noqa: F401
