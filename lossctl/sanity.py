"""Is this loss sensible? Baselines, input-convention lints, per-class and worst-K breakdowns, summaries.

Pure functions and mergeable partials over NumPy arrays: no torch, no printing. The CLI and the result wire
them in; this module only gathers the public names from the modules that implement them:

- sanity_baselines: baselines(), best_constant(), ratios(), at_or_above_uniform() (focal ones in sanity_focal)
- sanity_lint: lint_logits_are_probs(), lint_log_probs_are_probs(), lint_negative_kl(), lint_sigmoid_applied(),
  classes_last_hint(), move_class_axis()
- sanity_breakdown: ByClassPartial, by_class_rows(), WorstK
- sanity_summary: loss_summary(), histogram_lines(), signature()
"""

from __future__ import annotations

from .sanity_baselines import at_or_above_uniform, baselines, best_constant, ratios
from .sanity_breakdown import ByClassPartial, WorstK, by_class_rows
from .sanity_lint import (
    classes_last_hint,
    lint_log_probs_are_probs,
    lint_logits_are_probs,
    lint_negative_kl,
    lint_sigmoid_applied,
    move_class_axis,
)
from .sanity_summary import histogram_lines, loss_summary, signature

__all__ = [
    "ByClassPartial", "WorstK", "at_or_above_uniform", "baselines", "best_constant", "by_class_rows",
    "classes_last_hint", "histogram_lines", "lint_log_probs_are_probs", "lint_logits_are_probs",
    "lint_negative_kl", "lint_sigmoid_applied", "loss_summary", "move_class_axis", "ratios", "signature",
]
