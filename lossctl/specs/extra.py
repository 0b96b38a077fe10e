"""Losses people compute next to torch.nn's: focal, Jensen-Shannon, perplexity. Computed in losses.extra."""

from ..registry import NUMPY_AND_TORCH, LossSpec, Opt, Role, Streaming, register_loss
from .classification import (
    BY_ROWS_WITH_INDICES,
    CE_STEPS,
    IGNORE_INDEX,
    INDEX_REPORT,
    LABEL_REPORT,
    TARGET_KIND,
    WEIGHT,
)

register_loss(LossSpec(
    name="focal", backends=NUMPY_AND_TORCH, stream=Streaming("elements", index_target=True),
    lints=("sigmoid-applied", "index-logits-are-probs"), report=LABEL_REPORT,
    baseline="focal",
    class_roles=("logits",), torch_name="torchvision.ops.sigmoid_focal_loss (not in torch.nn)",
    summary="Focal loss: BCE scaled by (1 - p_t)^gamma and alpha_t; default reduction mean "
            "(torchvision's default is none). Index targets give the multi-class (softmax) form.",
    formula="sigmoid: loss = alpha_t * (1 - p_t)^gamma * BCE(x, y), p_t = p y + (1 - p)(1 - y), "
            "alpha_t = alpha y + (1 - alpha)(1 - y), p = sigmoid(x); "
            "multi-class: loss_n = -alpha * w_{y_n} * (1 - p_{n,y_n})^gamma * log p_{n,y_n}, p = softmax(x)",
    roles=(Role("logits", "Logits: any shape (sigmoid form), or (N, C) / (N, C, d...) with index targets.",
                neg_inf_ok=True, floats_only=True, own_dtype=True),
           # torchvision's BCE-with-logits computes in a float target's dtype, as bce's does
           Role("target", "0/1 labels (or probabilities) of the logits' shape, or class indices.", floats_only=True,
                own_dtype=True),
           Role("weight", "Multi-class form only: a weight per class, shape (C,).", required=False,
                batched=False)),
    options=(Opt("alpha", float, 0.25, "Weight of the positive class, in [0, 1]; negative disables it "
                 "(torchvision's convention). The multi-class form multiplies every class by it."),
             Opt("gamma", float, 2.0, "Focusing exponent, >= 0; 0 with alpha < 0 is plain BCE / CE."),
             Opt("target_kind", str, "auto", "auto: a target of the logits' shape minus the class axis is "
                 "class indices (multi-class; whole-number floats too, as ce reads them), anything else 0/1 labels; "
                 "binary; index.",
                 choices=("auto", "binary", "index")),
             IGNORE_INDEX),
    compute="lossctl.losses.extra:focal", information=False,
    denominator="sigmoid form: the number of elements; multi-class form: the targets not ignored",
    traps=("torchvision's sigmoid_focal_loss defaults to reduction none; lossctl defaults to mean like torch.nn.",
           "alpha weighs positives by 0.25 and negatives by 0.75 by default: it is not a class-balance weight of 1.",
           "The multi-class form multiplies every class by --alpha (as kornia does); pass --alpha -1 to drop it."),
))

register_loss(LossSpec(
    name="js", backends=NUMPY_AND_TORCH, aliases=("jensen-shannon",), lints=("kind-logits-are-probs",),
    stream=Streaming("rows"),
    torch_name="none (torch.nn has no Jensen-Shannon loss)",
    summary="Jensen-Shannon divergence between two distributions per row, symmetric and at most ln 2.",
    formula="JS(p, q) = 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2, over the last axis",
    roles=(Role("p", "First distribution(s), (N, C) or (C); see --p-kind.", neg_inf_ok=True),
           Role("q", "Second distribution(s), p's shape; see --q-kind.", neg_inf_ok=True)),
    options=(Opt("p_kind", str, "prob", "prob or logits (softmax over the last axis first).",
                 choices=("prob", "logits")),
             Opt("q_kind", str, "prob", "prob or logits (softmax over the last axis first).",
                 choices=("prob", "logits"))),
    compute="lossctl.losses.extra:js", information=True, denominator="the number of rows (distributions)",
    traps=("JS is bounded by ln 2 nats (1 bit with --base 2); its square root, not JS itself, is a metric.",
           "Unlike KL the order of --p and --q does not matter."),
))

_CE_ROLES = (Role("logits", "Unnormalised scores, shape (C), (N, C) or (N, C, d1..dk).", neg_inf_ok=True,
                  floats_only=True, own_dtype=True),
             Role("target", "Class indices, shape (), (N) or (N, d1..dk), or probabilities of the logits' shape.",
                  neg_inf_ok=True, floats_only=True), WEIGHT)

register_loss(LossSpec(
    name="perplexity", backends=NUMPY_AND_TORCH, stream=BY_ROWS_WITH_INDICES, explain_steps=CE_STEPS,
    lints=("logits-are-probs",), report=INDEX_REPORT, baseline="ce", class_roles=("logits",), aliases=("ppl",),
    torch_name="torch.exp(torch.nn.CrossEntropyLoss()(...))",
    summary="exp of the mean cross entropy: the effective number of equally likely choices per target.",
    formula="ppl = exp(sum_n CE_n / denominator), CE and its denominator exactly as ce computes them",
    roles=_CE_ROLES,
    options=(IGNORE_INDEX,
             Opt("label_smoothing", float, 0.0, "Mix the target with the uniform distribution, in [0, 1]."),
             TARGET_KIND),
    reductions=("mean",), compute="lossctl.losses.classification:cross_entropy", information=False,
    post="lossctl.losses.extra:perplexity", breakdown_loss="cross entropy (nats)",
    denominator="as ce's mean: the sum of the targets' class weights (1 each), ignored targets excluded; "
                "perplexity is only defined for the mean, so --reduction takes only mean",
    traps=("Perplexity is exp of CE in nats: a base would change nothing (2^bits = e^nats), so there is no --base.",
           "Ignored targets (--ignore-index, e.g. padding) leave both the sum and the count.",
           "Averaging per-batch perplexities is not the perplexity of the whole: average the CE, then exp."),
))
