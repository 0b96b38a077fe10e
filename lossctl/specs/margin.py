"""Specs of the margin and ranking losses; the compute functions live in lossctl.losses.margin."""

from ..registry import LossSpec, Opt, Role, register_loss

MARGIN_1 = Opt("margin", float, 1.0, "The margin.")
P_NORM = Opt("p", float, 2.0, "The norm degree of the pairwise distance.")
SWAP = Opt("swap", bool, False, "Use min(d(a, n), d(p, n)) as the negative distance (distance swap).")
TRIPLETS = "the number of triplets: N, or every position but the last axis's"
TRIPLET = (Role("anchor", "Anchor embeddings, (N, D) or (D); (N, ..., D) too, as torch takes it: the distances run "
                "along the last axis."),
           Role("positive", "Positive embeddings: the anchor's number of axes, broadcast with it as torch does "
                "((1, D) beside (N, D))."),
           Role("negative", "Negative embeddings: the anchor's number of axes, broadcast with it as torch does."))
CLASS_WEIGHT = Role("weight", "A manual rescaling weight per class, shape (C,).", required=False, batched=False)
# MultiMarginLoss refuses an integer weight ("expected scalar type Float"); MultiLabelSoftMarginLoss promotes it
MULTI_MARGIN_WEIGHT = Role("weight", CLASS_WEIGHT.help, required=False, batched=False, floats_only=True)

register_loss(LossSpec(
    name="hinge-embedding", torch_name="torch.nn.HingeEmbeddingLoss",
    summary="x where y = 1, max(0, margin - x) where y = -1 (x is usually a distance).",
    formula="loss_i = x_i if y_i = 1; max(0, margin - x_i) if y_i = -1",
    roles=(Role("input", "Inputs (usually distances), any shape.", floats_only=True),
           Role("target", "1 or -1, the input's shape.", label=True)),
    options=(MARGIN_1,), compute="lossctl.losses.margin:hinge_embedding",
    traps=("torch computes x + max(0, margin - x) for targets other than 1 and -1, silently; lossctl refuses them.",),
))

register_loss(LossSpec(
    name="soft-margin", torch_name="torch.nn.SoftMarginLoss",
    summary="Two-class logistic loss log(1 + exp(-y x)) with targets 1 or -1.",
    formula="loss_i = log(1 + exp(-y_i * x_i))",
    roles=(Role("input", "Scores, any shape.", floats_only=True),
           Role("target", "1 or -1, the input's shape.", label=True)),
    compute="lossctl.losses.margin:soft_margin",
    traps=("Targets are 1 and -1, not 1 and 0: a 0 target gives log 2 whatever the input.",),
))

register_loss(LossSpec(
    name="multilabel-soft-margin", lints=("sigmoid-applied",), torch_name="torch.nn.MultiLabelSoftMarginLoss",
    summary="Per-sample mean over classes of the binary logistic loss, for multi-label 0/1 targets.",
    formula="loss_n = -(1/C) sum_c w_c [y_nc log sigmoid(x_nc) + (1 - y_nc) log sigmoid(-x_nc)]",
    roles=(Role("input", "Scores, (N, C) or (C).", floats_only=True, own_dtype=True),
           Role("target", "0 or 1 per class, the input's shape."),
           CLASS_WEIGHT),
    compute="lossctl.losses.margin:multilabel_soft_margin", denominator="the number of samples N (each "
    "sample's loss is already a mean over its C classes)",
    traps=("Each sample's loss is averaged over the C classes first; --weight does not change the denominator.",
           "Its mean equals bce --logits's mean (with the same --weight); its sum is C times smaller.",),
))

register_loss(LossSpec(
    name="multilabel-margin", torch_name="torch.nn.MultiLabelMarginLoss",
    summary="Multi-label hinge loss: each target class should score 1 above each non-target class.",
    formula="loss_n = sum_{j in targets} sum_{i not in targets} max(0, 1 - (x[y_j] - x[i])) / C",
    roles=(Role("input", "Scores, (N, C) or (C).", floats_only=True),
           Role("target", "Target class indices, the input's shape, padded with -1 after the last one.")),
    compute="lossctl.losses.margin:multilabel_margin", denominator="the number of samples N",
    traps=("The target is not a 0/1 mask: it lists class indices and stops at the first -1; later entries "
           "are ignored.",),
))

register_loss(LossSpec(
    name="multi-margin", torch_name="torch.nn.MultiMarginLoss",
    summary="Multi-class hinge loss: the target class should score --margin above every other class.",
    formula="loss_n = sum_{i != y_n} w_{y_n} * max(0, margin - x[y_n] + x[i])^p / C",
    roles=(Role("input", "Scores, (N, C) or (C).", floats_only=True),
           Role("target", "Class indices: (N), or one sample's () or (1)."),
           MULTI_MARGIN_WEIGHT),
    options=(Opt("p", int, 1, "1 or 2: the power of each hinge term."), MARGIN_1),
    compute="lossctl.losses.margin:multi_margin", denominator="the number of samples N (not the weights' sum)",
    traps=("Unlike CE, --weight does not change the mean's denominator: it divides by N.",
           "Each sample's sum is divided by C, the number of classes, including the target class."),
))

register_loss(LossSpec(
    name="margin-ranking", torch_name="torch.nn.MarginRankingLoss",
    summary="max(0, -y (x1 - x2) + margin): x1 should rank above x2 where y = 1, below where y = -1.",
    formula="loss_i = max(0, -y_i * (x1_i - x2_i) + margin)",
    # torch subtracts float32 scores in float32 before a float64 target's sign meets them: +-1 widens nothing
    roles=(Role("x1", "First scores, (N) or ()."), Role("x2", "Second scores, x1's shape."),
           Role("target", "1 or -1, x1's shape.", label=True)),
    options=(Opt("margin", float, 0.0, "The margin."),), compute="lossctl.losses.margin:margin_ranking",
    traps=("A target of 0 is not an error in torch: the loss is then max(0, margin).",),
))

register_loss(LossSpec(
    name="triplet-margin", torch_name="torch.nn.TripletMarginLoss",
    summary="max(d(a, p) - d(a, n) + margin, 0) with the p-norm distance.",
    formula="loss_n = max(||a_n - p_n + eps||_p - ||a_n - n_n + eps||_p + margin, 0)",
    roles=TRIPLET,
    options=(MARGIN_1, P_NORM, Opt("eps", float, 1e-6, "Added to the differences before the norm."), SWAP),
    compute="lossctl.losses.margin:triplet_margin", denominator=TRIPLETS,
    traps=("eps is added to the difference a - p before the norm (pairwise_distance), not to the norm.",),
))

register_loss(LossSpec(
    name="triplet-margin-with-distance", torch_name="torch.nn.TripletMarginWithDistanceLoss",
    summary="max(d(a, p) - d(a, n) + margin, 0) with a chosen distance function.",
    formula="loss_n = max(d(a_n, p_n) - d(a_n, n_n) + margin, 0); d = pairwise_distance or 1 - cosine",
    roles=TRIPLET,
    options=(Opt("distance", str, "pairwise", "pairwise: torch's default, pairwise_distance (p = 2); "
                 "cosine: 1 - cosine_similarity along the last axis, as pairwise_distance runs (torch's "
                 "cosine_similarity defaults to dim=1: the same for (N, D)).", choices=("pairwise", "cosine")),
             MARGIN_1, SWAP),
    compute="lossctl.losses.margin:triplet_margin_with_distance", denominator=TRIPLETS,
    traps=("With --distance cosine the distance lies in [0, 2], so a margin of 1 is large.",),
))
