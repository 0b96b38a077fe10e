"""Specs of the classification losses; the compute functions live in lossctl.losses.classification."""

from ..registry import NUMPY_AND_TORCH, LossSpec, Opt, Role, Streaming, register_loss

IGNORE_INDEX = Opt("ignore_index", int, -100,
                   "Targets equal to this class index are ignored (no loss, no denominator).")
WEIGHT = Role("weight", "A manual rescaling weight per class, shape (C,).", required=False, batched=False,
              floats_only=True)

TARGET_KIND = Opt("target_kind", str, "auto",
                  "auto: integers are class indices, a target of the logits' shape probabilities; "
                  "index; prob; logits (softmax is applied to the target first).",
                  choices=("auto", "index", "prob", "logits"))

# A chunk of rows streams with its class indices (one axis fewer) beside it.
BY_ROWS_WITH_INDICES = Streaming("rows", index_target=True)
CE_STEPS = "lossctl.explain_steps:ce_steps"
INDEX_REPORT = "lossctl.reports:index_report"
LABEL_REPORT = "lossctl.reports:label_report"

register_loss(LossSpec(
    name="ce", backends=NUMPY_AND_TORCH, stream=BY_ROWS_WITH_INDICES, explain_steps=CE_STEPS,
    lints=("logits-are-probs",), report=INDEX_REPORT, baseline="ce", class_roles=("logits",),
    aliases=("cross-entropy",),
    torch_name="torch.nn.CrossEntropyLoss",
    summary="Cross entropy between logits and class indices or a target distribution.",
    formula="loss_n = -sum_c w_c * q_{n,c} * log softmax(x_n)_c; index target q = onehot(y_n)",
    roles=(Role("logits", "Unnormalised scores, shape (C), (N, C) or (N, C, d1..dk).", neg_inf_ok=True,
                floats_only=True, own_dtype=True),
           Role("target", "Class indices, shape (), (N) or (N, d1..dk), or probabilities of the logits' shape.",
                neg_inf_ok=True, floats_only=True),
           WEIGHT),
    options=(IGNORE_INDEX,
             Opt("label_smoothing", float, 0.0, "Mix the target with the uniform distribution, in [0, 1]."),
             TARGET_KIND),
    compute="lossctl.losses.classification:cross_entropy", information=True,
    denominator="index targets: the sum of the targets' class weights (1 each without --weight), ignored "
                "targets excluded; probability targets: N * d1 * ... * dk",
    traps=("With --weight and index targets the mean divides by the sum of the targets' weights, not by N.",
           "If every target equals --ignore-index, torch's mean is 0/0 = nan; lossctl refuses instead.",
           "Probability targets are not normalised for you: rows should sum to 1."),
))

register_loss(LossSpec(
    name="nll", backends=NUMPY_AND_TORCH, stream=BY_ROWS_WITH_INDICES,
    lints=("logits-are-probs", "log-probs-are-probs"), report=INDEX_REPORT, baseline="ce",
    class_roles=("log_probs", "logits", "probs"), torch_name="torch.nn.NLLLoss",
    summary="Negative log-likelihood of the target class under log-probabilities.",
    formula="loss_n = -w_{y_n} * logp_{n, y_n}",
    roles=(Role("log_probs", "Log-probabilities (what NLLLoss takes), shape (C), (N, C) or (N, C, d...).",
                group="input", neg_inf_ok=True, floats_only=True),
           Role("logits", "Logits; log_softmax is applied over the class axis.", group="input", neg_inf_ok=True,
                floats_only=True),
           Role("probs", "Probabilities; log is applied.", group="input"),
           Role("target", "Class indices, shape (), (N) or (N, d...)."),
           WEIGHT),
    options=(IGNORE_INDEX,),
    compute="lossctl.losses.classification:nll", information=True,
    denominator="the sum of the targets' class weights (1 each without --weight), ignored targets excluded",
    traps=("NLLLoss takes log-probabilities: passing raw logits as --log-probs gives a wrong loss silently.",
           "With --weight the mean divides by the sum of the targets' weights, not by N."),
))

register_loss(LossSpec(
    name="bce", backends=NUMPY_AND_TORCH, stream=Streaming("elements"),
    lints=("sigmoid-applied",), report=LABEL_REPORT, baseline="bce", aliases=("binary-cross-entropy",),
    torch_name="torch.nn.BCELoss / torch.nn.BCEWithLogitsLoss",
    summary="Binary cross entropy of probabilities (BCELoss) or logits (BCEWithLogitsLoss).",
    formula="loss = -w * [pos_weight * y * log p + (1 - y) * log(1 - p)], p = x or sigmoid(x)",
    roles=(Role("probs", "Probabilities in [0, 1] (BCELoss).", group="input", floats_only=True),
           Role("logits", "Logits (BCEWithLogitsLoss, numerically stable).", group="input", floats_only=True,
                own_dtype=True),
           # BCEWithLogitsLoss computes in the target's dtype: float32 beside float64 logits
           Role("target", "Targets in [0, 1], the input's shape.", floats_only=True, own_dtype=True),
           Role("weight", "Per-element rescaling weight, broadcast to the input.", required=False),
           Role("pos_weight", "Weight of positive examples per class (last axis); logits only.", required=False,
                batched=False)),
    compute="lossctl.losses.classification:bce",
    traps=("BCELoss clamps log(p) and log(1 - p) at -100, so the loss per element is at most 100.",
           "The mean divides by the number of elements even with --weight."),
))
