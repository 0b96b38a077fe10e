"""The worked computation behind `lossctl explain ce|perplexity` with arrays.

Each step comes from the NumPy kernel that computes cross entropy everywhere else (in float64 here, for
display): the softmax, the picked log-probability, the weight, the loss and its denominator.
"""

from __future__ import annotations

import numpy as np

from .command_results import Step
from .kernels import cross_entropy_index, cross_entropy_prob, log_softmax
from .losses.classification import split_classes, target_kind_of

SHOWN_CLASSES = 8


def vec(x: np.ndarray) -> str:
    items = [f"{v:.6g}" for v in np.asarray(x).reshape(-1)[:SHOWN_CLASSES]]
    more = np.asarray(x).size - SHOWN_CLASSES
    return "[" + ", ".join(items) + (f", ... {more} more" if more > 0 else "") + "]"


def num(x: float) -> str:
    return f"{float(x):.10g}"


def _rows(arr: np.ndarray, axis: int, n_classes: int) -> np.ndarray:
    return np.moveaxis(np.asarray(arr, dtype=np.float64), axis, -1).reshape(-1, n_classes)


def _index_step(i, x, logp, t, w, loss, eps: float, ignore_index: int) -> list[tuple[str, str]]:
    lines = [("logits", vec(x[i])), ("softmax", vec(np.exp(logp[i]))), ("target class", str(int(t[i])))]
    if t[i] == ignore_index:
        return lines + [("ignored", f"target == --ignore-index ({ignore_index}): loss 0, weight 0")]
    y = int(t[i])
    lines += [(f"log p[{y}]", num(logp[i, y])), (f"weight[{y}]", num(w[y]))]
    main = (1 - eps) * w[y] * -logp[i, y]
    if eps:
        lines.append(("smoothing term", f"{eps:g}/{len(w)} * (-sum_c w_c log p_c) = {num(loss[i] - main)}"))
        return lines + [("loss", f"(1 - {eps:g}) * {num(w[y])} * {num(-logp[i, y])} + smoothing = {num(loss[i])}")]
    return lines + [("loss", f"-{num(w[y])} * {num(logp[i, y])} = {num(loss[i])}")]


def ce_steps(arrays: dict[str, np.ndarray], options: dict, samples: int
             ) -> tuple[list[Step], list[tuple[str, str]]]:
    """Cross entropy sample by sample: softmax, log p of the target, its weight, the loss; then sum / denominator."""
    logits, target, weight = np.asarray(arrays["logits"], dtype=np.float64), arrays["target"], arrays.get("weight")
    axis, n_classes, index_shape = split_classes(logits)
    kind = target_kind_of(options.get("target_kind", "auto"), logits, target, index_shape)
    eps, ignore_index = float(options.get("label_smoothing", 0.0)), options.get("ignore_index", -100)
    x = _rows(logits, axis, n_classes)
    logp = log_softmax(x, axis=1)
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    positions = list(np.ndindex(index_shape)) or [()]
    if kind == "index":
        t = np.asarray(target).reshape(-1).astype(np.int64)
        loss, denoms = cross_entropy_index(x, t, w if weight is not None else None, ignore_index=ignore_index,
                                           label_smoothing=eps, input_kind="logits")
        steps = [Step(f"sample {list(positions[i])}", _index_step(i, x, logp, t, w, loss, eps, ignore_index))
                 for i in range(min(samples, len(t)))]
        kept = int((t != ignore_index).sum())
        den_text = (f"{num(denoms.sum())} = sum of the targets' class weights" if weight is not None
                    else f"{kept} targets") + (f" ({len(t) - kept} ignored)" if kept < len(t) else "")
    else:
        q = _rows(target, axis, n_classes)
        if kind == "logits":
            q = np.exp(log_softmax(q, axis=1))
        loss = cross_entropy_prob(x, q, w if weight is not None else None, label_smoothing=eps)
        denoms = np.ones(len(loss))
        q_shown = q * (1 - eps) + eps / n_classes
        steps = [Step(f"sample {list(positions[i])}", [
            ("logits", vec(x[i])), ("softmax", vec(np.exp(logp[i]))),
            ("target distribution" + (" (smoothed)" if eps else ""), vec(q_shown[i])), ("log softmax", vec(logp[i])),
            ("loss", f"-sum_c {'w_c * ' if weight is not None else ''}q_c * log p_c = {num(loss[i])}")])
            for i in range(min(samples, len(loss)))]
        den_text = f"{len(loss)} samples (probability targets: the weights do not enter the denominator)"
    total, den = float(loss.sum()), float(denoms.sum())
    return steps, [("sum of the losses (float64, NumPy kernel)", num(total)), ("denominator for mean", den_text),
                   ("mean = sum / denominator", num(total / den) if den else "nan (nothing to divide by)")]
