"""d loss / d input, by torch autograd on the loss exactly as lossctl computes it.

The loss's own compute function runs with the torch backend and a grad context: every float input that torch
differentiates (logits, probs, log_probs, input, x1/x2, anchor/positive/negative, var, p/q) becomes a leaf tensor
with requires_grad, which `floats` (and so `Context.array`) hands to the loss in place of a fresh tensor. The
reduction is torch's module reduction, written on the LossOutput: mean = sum(values) / sum(denominators) (the
targets' class weights for CE/NLL with index targets, 1 per element otherwise; CTC's values divided by their
target lengths first), batchmean = sum / rows, sum; reduction none differentiates the sum of the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .command_results import GradientResult
from .errors import ComputeError, StrictWarningError, UsageError
from .losses._common import Context, concluded
from .pipeline import (
    backend_label,
    check_denominator,
    check_finite,
    checked_warnings,
    compute_output,
    gather,
    move_class_axis,
    one_source,
    settings,
    value_warnings,
)
from .reduce import LossOutput, finish, partial_of
from .registry import LossSpec, flag, resolve
from .specs import get_loss

# Arrays torch takes as data, not as what the loss is a function of: targets, class or element weights, lengths.
NOT_DIFFERENTIATED = frozenset({"target", "weight", "pos_weight", "input_lengths", "target_lengths"})
DTYPES = ("float32", "float64")
NONE_NOTE = ("reduction none: the value is the sum of the per-element losses, and the gradient is the gradient of "
             "the sum of the per-element losses (what loss.sum().backward() gives), not one gradient per element")


def differentiated(spec: LossSpec, arrays: Mapping[str, Any], target: bool = False) -> list[str]:
    """The given roles whose gradient is computed, in the spec's order: the inputs, and the target if asked."""
    return [r.name for r in spec.roles if r.name in arrays
            and (r.name not in NOT_DIFFERENTIATED or (target and r.name == "target"))]


def _check_target(spec: LossSpec, arrays: Mapping[str, np.ndarray]) -> None:
    """--target-grad needs a float target: class indices and integer labels have no gradient in torch."""
    target = arrays.get("target")
    if target is None:
        raise UsageError(f"{spec.name} has no --target to differentiate", option="--target-grad")
    if target.dtype.kind != "f":
        raise UsageError(f"--target holds {target.dtype} values (class indices or labels), which torch does not "
                         "differentiate", option="--target-grad")


def reduced_loss(out: LossOutput, reduction: str):
    """The scalar torch's module returns for `reduction`, from the per-element values (a tensor with its graph)."""
    if reduction == "batchmean":
        return out.values.sum() / out.rows
    if reduction != "mean":
        return out.values.sum()  # sum; and none, whose gradient is that of the sum
    values = out.mean_values if out.mean_values is not None else out.values
    denominator = out.weights.sum() if out.weights is not None else values.numel()
    return values.sum() / denominator


def _leaves(arrays: Mapping[str, np.ndarray], roles: list[str], dtype: np.dtype) -> dict[str, Any]:
    import torch

    # ascontiguousarray makes a 0-d array 1-d; keep the shape, as `floats` does.
    return {r: torch.from_numpy(np.ascontiguousarray(arrays[r], dtype=dtype).reshape(np.shape(arrays[r])))
            .requires_grad_(True) for r in roles}


def gradient_sources(spec: LossSpec, sources: Mapping[str, Any], options: Mapping[str, Any], *,
                     reduction: str | None = None, dtype: str = "float64", bundle: str | None = None,
                     header: str = "auto", class_axis: int = 1, target_grad: bool = False, base: str = "e",
                     strict: bool = False) -> GradientResult:
    """Load the sources whole, run the loss with leaf tensors for its float inputs, and backpropagate.

    base: the loss's unit, as the loss command's --base (the gradient is in that unit too); strict: every warning
    is an error, as there.

    class_axis: where the class scores hold their classes (-1: classes last); their gradient comes back in the same
    layout as the input. target_grad: the target's gradient too, where torch differentiates it."""
    if dtype not in DTYPES:
        raise UsageError(f"must be one of {', '.join(DTYPES)}; got {dtype!r}", option="--dtype")
    st = settings(spec, options, reduction=reduction, backend="torch", header=header, class_axis=class_axis,
                  base=base, strict=strict)
    loaded = gather(spec, sources, bundle, header)
    check_finite(spec, loaded, np.dtype(dtype))
    # a view each: leaves are found by the array's identity, and one array passed for two roles (anchor=a,
    # positive=a) must still be two leaves, and a target equal to an input no leaf at all
    original = {name: item.array.view() for name, item in loaded.items()}
    arrays = move_class_axis(spec, original, st)
    if target_grad:
        _check_target(spec, arrays)
    roles = differentiated(spec, arrays, target_grad)
    if not roles:
        raise UsageError(f"{spec.name} has no input to differentiate", option=flag(spec.roles[0].name))
    leaves = _leaves(arrays, roles, np.dtype(dtype))
    by_id = {id(arrays[r]): leaves[r] for r in roles}
    ctx = Context(dtype=np.dtype(dtype), reduction=st.reduction, backend="torch", leaf=lambda a: by_id.get(id(a)))
    out = compute_output(spec, arrays, st, ctx, loaded)
    partial = partial_of(out, st.reduction)
    check_denominator(partial, st.reduction, out.unit)
    loss = reduced_loss(out, st.reduction)
    notes = list(out.notes) + ([NONE_NOTE] if st.reduction == "none" else [])
    # the loss command's warnings, in its order: the inputs', the reduced value's, the post-processing's
    value = None if st.reduction == "none" else finish(partial, st.reduction)
    warnings = [*out.warnings, *value_warnings(spec, st, partial, value, out.unit)]
    post = resolve(spec.post)
    if post is not None:
        loss, note, post_warnings = post(loss, partial)
        notes.append(note)
        warnings.extend(post_warnings)
    loss.backward()
    missing = [r for r in roles if leaves[r].grad is None]
    if "target" in missing:  # torch takes it as labels only (hinge-embedding's, cosine-embedding's signs)
        raise UsageError(f"torch does not differentiate {spec.name}'s --target: it selects or signs the terms, "
                         "and no gradient reaches it", option="--target-grad")
    if missing:
        raise ComputeError(f"{spec.name}: {flag(missing[0])} did not reach torch's graph; no gradient to give")
    gradients = {r: _as_given(leaves[r].grad.numpy(), original[r], arrays[r], st) for r in roles}
    warnings = _final_warnings(spec, st, partial, warnings, gradients)
    return GradientResult(
        loss=spec.name, torch_name=spec.torch_name, reduction=st.reduction, dtype=str(np.dtype(dtype)),
        value=float(loss.detach()), gradients=gradients,
        shapes={name: list(a.shape) for name, a in original.items()},
        options={**st.options, **({"base": st.base} if spec.information else {})},
        warnings=warnings,
        notes=list(dict.fromkeys(notes)), backend=backend_label("torch"))


def _final_warnings(spec: LossSpec, st, partial, warnings: list[str], gradients: Mapping[str, np.ndarray]
                    ) -> list[str]:
    """The loss command's warnings (checked_warnings: a non-finite value; --strict), then the gradients'."""
    warnings = checked_warnings(spec, st, partial, concluded(warnings))
    found = nonfinite_warnings(gradients)
    if st.strict and found:
        raise StrictWarningError(f"{found[0]} (--strict makes warnings errors)", option="--strict")
    return list(dict.fromkeys([*warnings, *found]))


def nonfinite_warnings(gradients: Mapping[str, np.ndarray]) -> list[str]:
    """One warning per input whose gradient holds nan or +-inf: torch's own numbers, kept, but never shown bare."""
    warnings = []
    for role, g in gradients.items():
        nan, inf = int(np.isnan(g).sum()), int(np.isinf(g).sum())
        if nan or inf:
            kinds = " and ".join(f"{n} {k}" for n, k in ((nan, "nan"), (inf, "±inf")) if n)
            warnings.append(f"d loss / d {flag(role)}: {nan + inf} of {g.size} elements are not finite ({kinds}) as "
                            "torch autograd computes them: an input at the edge of the loss's domain (a probability "
                            "of 0 or 1, a -inf logit) or an overflow")
    return warnings


def _as_given(grad: np.ndarray, given: np.ndarray, computed: np.ndarray, st) -> np.ndarray:
    """A gradient in the layout its input was given in (--class-axis moved the classes to axis 1 to compute).

    Whether the input was moved is whether move_class_axis gave a view in its place: its shape cannot tell, as
    logits (N, L, C) with L == C keep theirs."""
    return np.moveaxis(grad, 1, st.class_axis) if computed is not given else grad


def gradient(name: str, *, reduction: str | None = None, dtype: str = "float64", bundle: str | None = None,
             header: str = "auto", class_axis: int = 1, target_grad: bool = False, base: str = "e",
             strict: bool = False, **kwargs: Any) -> GradientResult:
    """d loss / d input of loss `name`, computed by torch autograd. Keyword arguments named as the loss's arrays
    are its inputs (arrays, lists, tensors, paths or JSON literals); the others are its options. class_axis: -1
    for classes-last scores (their gradient comes back classes-last too). target_grad: d loss / d target too,
    where torch differentiates it (a float target: mse's, kl's, bce's, ce's probabilities).

    >>> gradient("mse", input=[1.0, 3.0], target=[0.0, 0.0]).gradients["input"]  # 2 (x - y) / N
    array([1., 3.])
    """
    spec = get_loss(name)
    roles = {r.name for r in spec.roles}
    sources = {k: v for k, v in kwargs.items() if k in roles}
    options = {k: v for k, v in kwargs.items() if k not in roles}
    return gradient_sources(spec, sources, options, reduction=reduction, dtype=dtype, bundle=bundle, header=header,
                            class_axis=class_axis, target_grad=target_grad, base=base, strict=strict)


def gradient_files(name: str, sources: Mapping[str, list[Any] | None], options: Mapping[str, Any], *,
                   reduction: str | None = None, dtype: str = "float64", bundle: str | None = None,
                   header: str = "auto", class_axis: int = 1, target_grad: bool = False, base: str = "e",
                   strict: bool = False) -> GradientResult:
    """What `lossctl grad NAME` computes: one source per array (the options repeat as the loss command's do, but a
    gradient is of one set of inputs)."""
    spec = get_loss(name)
    single = {role: one_source(values, flag(role), "grad") for role, values in sources.items()}
    return gradient_sources(spec, single, options, reduction=reduction, dtype=dtype, bundle=bundle, header=header,
                            class_axis=class_axis, target_grad=target_grad, base=base, strict=strict)


def save_gradients(result: GradientResult, path: str | Path) -> Path:
    """-o FILE: .npy for the one gradient there is, .npz with one key per input (named as its role)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".npy", ".npz"):
        raise UsageError(f"writes .npy (one input) or .npz (one key per input); got {path.name!r}", option="-o")
    if ext == ".npy" and len(result.gradients) > 1:
        raise UsageError(f"{len(result.gradients)} inputs have gradients ({', '.join(result.gradients)}); write "
                         "them to an .npz file", option="-o")
    try:  # through a file object: given a name, numpy appends .npy or .npz to one that ends otherwise (g.NPY)
        with open(path, "wb") as f:
            if ext == ".npy":
                np.save(f, next(iter(result.gradients.values())))
            else:
                np.savez(f, **result.gradients)
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}", option="-o") from None
    return path
