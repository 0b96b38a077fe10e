"""The worked computation behind `lossctl explain` with arrays, recomputed in float64 NumPy.

Cross entropy is shown term by term (softmax, the picked log-probability, the weight, the loss); other losses
show their per-sample values as torch gives them with reduction='none'.
"""

from __future__ import annotations

import numpy as np

from .explain import Step
from .losses.classification import split_classes, target_kind

SHOWN_CLASSES = 8


def vec(x: np.ndarray) -> str:
    items = [f"{v:.6g}" for v in np.asarray(x).reshape(-1)[:SHOWN_CLASSES]]
    more = np.asarray(x).size - SHOWN_CLASSES
    return "[" + ", ".join(items) + (f", ... {more} more" if more > 0 else "") + "]"


def num(x: float) -> str:
    return f"{float(x):.10g}"


def ce_steps(arrays: dict[str, np.ndarray], options: dict, samples: int, *,
             perplexity: bool = False) -> tuple[list[Step], list[tuple[str, str]]]:
    """Cross entropy sample by sample: softmax, log p of the target, its weight, the loss; then sum / denominator."""
    logits = np.asarray(arrays["logits"], dtype=np.float64)
    target, weight = arrays["target"], arrays.get("weight")
    axis, n_classes, index_shape = split_classes(logits)
    kind = target_kind(options.get("target_kind", "auto"), logits, target, index_shape)
    eps = float(options.get("label_smoothing", 0.0))
    ignore_index = options.get("ignore_index", -100)
    x = np.moveaxis(logits, axis, -1).reshape(-1, n_classes)
    shift = x.max(axis=1, keepdims=True)
    shift[~np.isfinite(shift)] = 0.0
    logp = x - shift - np.log(np.exp(x - shift).sum(axis=1, keepdims=True))
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    positions = list(np.ndindex(index_shape)) or [()]
    steps: list[Step] = []
    if kind == "index":
        t = np.asarray(target).reshape(-1).astype(np.int64)
        keep = t != ignore_index
        tt = np.where(keep, t, 0)
        picked = logp[np.arange(len(t)), tt]
        smooth = -(logp * w).sum(axis=1)
        losses = np.where(keep, (1 - eps) * -w[tt] * picked + eps / n_classes * smooth, 0.0)
        denoms = np.where(keep, w[tt], 0.0)
        for i in range(min(samples, len(t))):
            lines = [("logits", vec(x[i])), ("softmax", vec(np.exp(logp[i]))), ("target class", str(int(t[i])))]
            if not keep[i]:
                lines.append(("ignored", f"target == --ignore-index ({ignore_index}): loss 0, weight 0"))
            else:
                lines += [(f"log p[{tt[i]}]", num(picked[i])), (f"weight[{tt[i]}]", num(w[tt[i]]))]
                if eps:
                    lines.append(("smoothing term", f"{eps:g}/{n_classes} * (-sum_c w_c log p_c) = "
                                  f"{num(eps / n_classes * smooth[i])}"))
                    lines.append(("loss", f"(1 - {eps:g}) * {num(w[tt[i]])} * {num(-picked[i])} + smoothing = "
                                  f"{num(losses[i])}"))
                else:
                    lines.append(("loss", f"-{num(w[tt[i]])} * {num(picked[i])} = {num(losses[i])}"))
            steps.append(Step(f"sample {list(positions[i])}", lines))
        den_text = (f"{num(denoms.sum())} = sum of the targets' class weights"
                    if weight is not None else f"{int(keep.sum())} targets")
        if not keep.all():
            den_text += f" ({int((~keep).sum())} ignored)"
    else:
        q = np.moveaxis(np.asarray(target, dtype=np.float64), axis, -1).reshape(-1, n_classes)
        if kind == "logits":
            q = np.exp(q - q.max(axis=1, keepdims=True))
            q /= q.sum(axis=1, keepdims=True)
        q = q * (1 - eps) + eps / n_classes
        losses = -(q * w * np.where(q > 0, logp, 0.0)).sum(axis=1)
        denoms = np.ones(len(losses))
        for i in range(min(samples, len(losses))):
            steps.append(Step(f"sample {list(positions[i])}", [
                ("logits", vec(x[i])), ("softmax", vec(np.exp(logp[i]))),
                ("target distribution" + (" (smoothed)" if eps else ""), vec(q[i])),
                ("log softmax", vec(logp[i])),
                ("loss", f"-sum_c {'w_c * ' if weight is not None else ''}q_c * log p_c = {num(losses[i])}")]))
        den_text = f"{len(losses)} samples (probability targets: the weights do not enter the denominator)"
    total, den = float(losses.sum()), float(denoms.sum())
    totals = [("sum of the losses (float64, NumPy)", num(total)), ("denominator for mean", den_text),
              ("mean = sum / denominator", num(total / den) if den else "nan (nothing to divide by)")]
    if perplexity and den:
        totals.append(("perplexity = exp(mean)", num(np.exp(total / den))))
    return steps, totals


def value_steps(values: np.ndarray, samples: int, unit: str) -> list[Step]:
    """The first per-sample (or per-element) values, as torch gives them with reduction='none'."""
    values = np.asarray(values)
    if values.ndim == 0:
        return [Step("the only value", [("loss", num(values) + unit)])]
    steps = []
    for n, idx in enumerate(np.ndindex(values.shape)):
        if n == samples:
            break
        steps.append(Step(f"element {list(idx)}", [("loss", num(values[idx]) + unit)]))
    return steps
