"""Specs of the regression losses; the compute functions live in lossctl.losses.regression."""

from ..registry import NUMPY_AND_TORCH, LossSpec, Opt, Role, Streaming, register_loss

INPUT = Role("input", "Predictions, any shape.")
# HuberLoss refuses integer predictions ("huber_cpu" not implemented for 'Long'), where MSE, L1 and SmoothL1 promote
# them beside float targets; and it computes in the predictions' dtype, a float64 target cast to float32 ones
HUBER_INPUT = Role("input", "Predictions, any shape.", floats_only=True, own_dtype=True)
TARGET = Role("target", "Targets, the input's shape.")
ELEMENTWISE = "the number of elements"
BY_ELEMENTS = Streaming("elements")  # a chunk of rows of the input beside the same rows of the target

register_loss(LossSpec(
    name="l1", backends=NUMPY_AND_TORCH, stream=BY_ELEMENTS, torch_name="torch.nn.L1Loss",
    summary="Mean absolute error |x - y|, elementwise.",
    formula="loss_i = |x_i - y_i|", roles=(INPUT, TARGET),
    compute="lossctl.losses.regression:l1", denominator=ELEMENTWISE,
))

register_loss(LossSpec(
    name="mse", backends=NUMPY_AND_TORCH, stream=BY_ELEMENTS, torch_name="torch.nn.MSELoss",
    summary="Mean squared error (x - y)^2, elementwise.",
    formula="loss_i = (x_i - y_i)^2", roles=(INPUT, TARGET),
    compute="lossctl.losses.regression:mse", denominator=ELEMENTWISE,
    traps=("The mean is over every element, not per sample: (N, D) inputs divide by N * D.",),
))

register_loss(LossSpec(
    name="huber", backends=NUMPY_AND_TORCH, stream=BY_ELEMENTS, torch_name="torch.nn.HuberLoss",
    summary="Quadratic below --delta, linear above: 0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta).",
    formula="d = x - y; loss_i = 0.5 d^2 if |d| < delta; delta * (|d| - 0.5 * delta) otherwise",
    roles=(HUBER_INPUT, TARGET),
    options=(Opt("delta", float, 1.0, "Where the loss turns from quadratic to linear; > 0."),),
    compute="lossctl.losses.regression:huber", denominator=ELEMENTWISE,
    traps=("Huber with delta equals delta * SmoothL1 with beta = delta: the two differ by a factor delta.",),
))

register_loss(LossSpec(
    name="smooth-l1", backends=NUMPY_AND_TORCH, stream=BY_ELEMENTS, torch_name="torch.nn.SmoothL1Loss",
    summary="0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta; beta = 0 is L1.",
    formula="d = x - y; loss_i = 0.5 d^2 / beta if |d| < beta; |d| - 0.5 * beta otherwise",
    roles=(INPUT, TARGET),
    options=(Opt("beta", float, 1.0, "Where the loss turns from quadratic to linear; >= 0 (0 gives L1)."),),
    compute="lossctl.losses.regression:smooth_l1", denominator=ELEMENTWISE,
    traps=("SmoothL1 with beta = delta is Huber / delta, not Huber.",),
))

register_loss(LossSpec(
    name="poisson-nll", torch_name="torch.nn.PoissonNLLLoss",
    summary="Negative log-likelihood of a Poisson target, with the input as log-rate (default) or rate.",
    formula="log_input: exp(x) - y * x; else: x - y * log(x + eps); "
            "full adds Stirling's y log y - y + 0.5 log(2 pi y) where y > 1",
    roles=(Role("input", "Log-rates (with --log-input, the default) or rates, any shape.", neg_inf_ok=True,
                own_dtype=True),
           Role("target", "Counts (Poisson samples), the input's shape.")),
    options=(Opt("log_input", bool, True, "The input is the log of the rate (torch's default)."),
             Opt("full", bool, False, "Add the Stirling approximation of log(y!)."),
             Opt("eps", float, 1e-8, "Added to the rate before its log when --no-log-input.")),
    compute="lossctl.losses.regression:poisson_nll", denominator=ELEMENTWISE,
    traps=("Without --full the constant log(y!) is dropped, so the loss can be negative.",
           "--full adds Stirling's term only where the target is > 1; smaller counts get nothing."),
))

register_loss(LossSpec(
    name="gaussian-nll", torch_name="torch.nn.GaussianNLLLoss",
    summary="Negative log-likelihood of the target under N(input, var).",
    formula="loss_i = 0.5 * (log max(var_i, eps) + (x_i - y_i)^2 / max(var_i, eps)) [+ 0.5 log(2 pi) with --full]",
    roles=(INPUT, Role("target", "Targets, the input's shape, or that shape with one size made 1 (shared along it)."),
           # torch takes log(var) in var's own dtype before it meets the input
           Role("var", "Variances: the input's shape, or one fewer trailing dim, or one dim of size 1 "
                "(shared along it), or one number for every element.", floats_only=True, own_dtype=True)),
    options=(Opt("full", bool, False, "Add the constant 0.5 * log(2 pi)."),
             Opt("eps", float, 1e-6, "Variances are clamped to at least eps (without gradient) for stability.")),
    compute="lossctl.losses.regression:gaussian_nll", denominator=ELEMENTWISE,
    traps=("Variances below --eps are clamped to eps, so tiny variances do not blow the loss up as expected.",
           "The constant 0.5 log(2 pi) is left out unless --full."),
))
