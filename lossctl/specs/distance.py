"""Specs of the distance functions (one value per row, not reduced unless asked); computed in losses.distance."""

from ..registry import NUMPY_AND_TORCH, LossSpec, Opt, Role, Streaming, register_loss

PAIR = (Role("x1", "First vectors, e.g. (N, D)."), Role("x2", "Second vectors, broadcastable to x1."))
# torch takes each vector's norm in its own dtype: a float32 x1's or x2's bounds the cosine's precision beside a
# float64 other
COSINE_PAIR = (Role("x1", PAIR[0].help, own_dtype=True), Role("x2", PAIR[1].help, own_dtype=True))

register_loss(LossSpec(
    name="cosine-similarity", backends=NUMPY_AND_TORCH, torch_name="torch.nn.CosineSimilarity",
    stream=Streaming("rows", when=lambda options, ndim: options["dim"] % ndim != 0),  # not along the batch axis
    summary="Cosine of the angle between x1 and x2 along --dim; one value per row unless --reduction.",
    formula="cos_n = x1_n . x2_n / (max(||x1_n||, eps) * max(||x2_n||, eps))",
    roles=COSINE_PAIR,
    options=(Opt("dim", int, 1, "The axis along which the cosine is taken."),
             Opt("eps", float, 1e-8, "Lower bound on each vector's norm (each is clamped to at least eps).")),
    compute="lossctl.losses.distance:cosine_similarity", default_reduction="none",
    denominator="the number of rows (vectors compared)",
    traps=("torch's default --dim is 1, not -1: a (D) vector needs --dim 0.",
           "It is a similarity, not a loss: 1 - cos is the cosine distance.",),
))

register_loss(LossSpec(
    name="pairwise-distance", backends=NUMPY_AND_TORCH, torch_name="torch.nn.PairwiseDistance",
    stream=Streaming("rows"),
    summary="p-norm distance ||x1 - x2 + eps||_p along the last axis; one value per row unless --reduction.",
    formula="d_n = ||x1_n - x2_n + eps||_p",
    roles=PAIR,
    options=(Opt("p", float, 2.0, "The norm degree."),
             Opt("eps", float, 1e-6, "Added to the difference (not the norm), so d(x, x) = eps * D^(1/p)."),
             Opt("keepdim", bool, False, "Keep the reduced last axis, of size 1.")),
    compute="lossctl.losses.distance:pairwise_distance", default_reduction="none",
    denominator="the number of rows (vector pairs)",
    traps=("eps is added to x1 - x2 before the norm, so the distance of a vector to itself is not 0.",),
))
