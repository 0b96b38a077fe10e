"""Specs of the divergence losses; the compute functions live in lossctl.losses.divergence."""

from ..registry import NUMPY_AND_TORCH, LossSpec, Opt, Role, Streaming, register_loss

register_loss(LossSpec(
    name="kl", backends=NUMPY_AND_TORCH, stream=Streaming("rows"),
    lints=("log-probs-last-are-probs", "dim-logits-are-probs", "negative-kl"),
    aliases=("kl-div",), torch_name="torch.nn.KLDivLoss",
    summary="Kullback-Leibler divergence KL(target || model), elementwise as KLDivLoss computes it.",
    formula="loss_{n,c} = p_{n,c} * (log p_{n,c} - log q_{n,c}), p = target, log q = model log-probs",
    roles=(Role("log_probs", "The model's log-probabilities (what KLDivLoss takes).", group="input",
                neg_inf_ok=True, floats_only=True),
           Role("logits", "The model's logits; log_softmax over the last axis is applied.", group="input",
                neg_inf_ok=True, floats_only=True, own_dtype=True),
           Role("probs", "The model's probabilities; log is applied.", group="input", own_dtype=True),
           # torch takes the target's xlogy, exp or softmax in its own dtype before it meets the input
           Role("target", "The target distribution (see --target-kind), the input's shape.", neg_inf_ok=True,
                floats_only=True, own_dtype=True)),
    options=(Opt("target_kind", str, "prob", "prob; log-prob (torch's log_target=True); logits (softmax first).",
                 choices=("prob", "log-prob", "logits")),),
    reductions=("mean", "sum", "none", "batchmean"), compute="lossctl.losses.divergence:kl", information=True,
    denominator="mean: every element (N * C); batchmean: the rows N",
    traps=("The argument order is KL(target || model): the model's log-probabilities come first in torch.",
           "'mean' divides by N * C, not N: use --reduction batchmean for the textbook KL per sample.",
           "KLDivLoss takes log-probabilities as input and probabilities as target unless log_target=True."),
))

register_loss(LossSpec(
    name="entropy", backends=NUMPY_AND_TORCH, lints=("dim-logits-are-probs",),
    # Chunks of rows hold whole distributions unless --dim names the batch axis itself.
    stream=Streaming("rows", when=lambda options, ndim: options["dim"] % ndim != 0),
    torch_name="torch.distributions.Categorical(...).entropy()",
    summary="Shannon entropy of each distribution, reduced over the batch.",
    formula="H_n = -sum_c p_{n,c} * log p_{n,c}, with 0 log 0 = 0",
    roles=(Role("probs", "Probabilities (normalised along --dim, as Categorical does).", group="input"),
           Role("logits", "Logits; softmax along --dim.", group="input", neg_inf_ok=True)),
    options=(Opt("dim", int, -1, "The axis that holds the classes."),),
    compute="lossctl.losses.divergence:entropy", information=True, denominator="the number of distributions",
    traps=("Categorical normalises probabilities that do not sum to 1 without a word; lossctl warns.",),
))
