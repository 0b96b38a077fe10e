"""Specs of the sequence losses; the compute functions live in lossctl.losses.sequence."""

from ..registry import LossSpec, Opt, Role, register_loss

register_loss(LossSpec(
    name="ctc", torch_name="torch.nn.CTCLoss", lints=("log-probs-last-are-probs",),
    summary="Connectionist temporal classification: -log of the total probability of every alignment.",
    formula="loss_n = -log sum_{alignments a of target_n} prod_t p_t(a_t), a collapsing repeats and blanks",
    roles=(Role("log_probs", "Log-probabilities (T, N, C) or (T, C): time first, log_softmax over C.",
                # batched: time first, the batch at axis 1; one per shard, not per class
                neg_inf_ok=True, floats_only=True),
           Role("target", "Target labels: padded (N, S), or all targets concatenated (sum of target lengths); "
                "(S) unbatched, S = the target length, or (1, S) padded."),
           Role("input_lengths", "Length of each input sequence, (N), or () or (1) unbatched; each <= T."),
           Role("target_lengths", "Length of each target, (N), or () or (1) unbatched.")),
    options=(Opt("blank", int, 0, "The blank label's class index."),
             Opt("zero_infinity", bool, False, "Replace infinite losses (no possible alignment) by 0.")),
    compute="lossctl.losses.sequence:ctc", information=True,
    denominator="mean: each sequence's loss is first divided by its target length (at least 1), "
                "then the mean is over the N sequences",
    traps=("'mean' divides each loss by its target length before averaging over the batch; 'sum' does not.",
           "The input is time-first (T, N, C), not batch-first, and must be log-probabilities.",
           "An input too short for its target (T < S + repeats) gives an infinite loss unless --zero-infinity.",
           "The blank index must not appear in the targets."),
))
