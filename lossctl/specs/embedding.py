"""Specs of the embedding losses; the compute functions live in lossctl.losses.embedding."""

from ..registry import NUMPY_AND_TORCH, LossSpec, Opt, Role, Streaming, register_loss

register_loss(LossSpec(
    name="cosine-embedding", backends=NUMPY_AND_TORCH, aliases=("cosine",), torch_name="torch.nn.CosineEmbeddingLoss",
    stream=Streaming("rows", index_target=True),
    summary="1 - cos(x1, x2) for similar pairs (y = 1), max(0, cos - margin) for dissimilar ones (y = -1).",
    formula="loss_n = 1 - cos(x1_n, x2_n) if y_n = 1; max(0, cos(x1_n, x2_n) - margin) if y_n = -1",
    # torch takes each embedding's norm in its own dtype, as cosine-similarity does
    roles=(Role("x1", "First embeddings, (N, D) or (D).", own_dtype=True), Role("x2", "Second embeddings, x1's shape.",
                                                                      own_dtype=True),
           Role("target", "1 (similar) or -1 (dissimilar), shape (N) or ()."),),
    options=(Opt("margin", float, 0.0, "Margin for dissimilar pairs, in [-1, 1]; 0 to 0.5 is suggested."),),
    compute="lossctl.losses.embedding:cosine_embedding", denominator="the number of pairs",
    traps=("Targets other than 1 and -1 give 0 loss in torch without a word; lossctl refuses them.",),
))
