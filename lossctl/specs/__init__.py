"""Every built-in loss's `LossSpec`. Importing this package registers them; it imports neither numpy nor torch."""

from . import classification, distance, divergence, embedding, extra, margin, regression, sequence  # noqa: F401
