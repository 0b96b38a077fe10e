"""`lossctl grad`: for every registered loss, d loss / d input equals torch autograd through the torch.nn module
called directly on tensors with requires_grad; and the CE gradient identity of `lossctl check`.

The registry drives the cases (tests/test_registry.py CASES), so a new loss is differentiated the moment it has
cases there. Focal loss has no torch.nn module: its reference is torchvision's formula written out in torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REALISTIC, save, tol
from test_registry import CASES, Case, tensors

from lossctl import checks
from lossctl.grad import gradient
from lossctl.specs import all_specs

GRAD_TOL = {"rtol": 1e-10, "atol": 1e-10}
DATA_ROLES = {"target", "weight", "pos_weight", "input_lengths", "target_lengths"}  # what torch takes as data
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")


def focal_torch(T: dict, r: str, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss for labels of the logits' shape; the softmax form (kornia's) for class
    indices (whole-number floats too)."""
    x, y = T["logits"], T["target"]
    if y.shape == x.shape:
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        values = (alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma
        return {"none": values, "sum": values.sum(), "mean": values.mean()}[r]
    y = y.long()
    keep = y != -100
    logp = torch.gather(torch.log_softmax(x, 1), 1, y.clamp(min=0).unsqueeze(1)).squeeze(1)
    w = T["weight"][y.clamp(min=0)] if "weight" in T else torch.ones_like(logp)
    values = torch.where(keep, -alpha * w * (1 - logp.exp()) ** gamma * logp, torch.zeros_like(logp))
    return {"none": values, "sum": values.sum(), "mean": values.sum() / keep.sum()}[r]


def reference(case: Case, reduction: str, dtype=np.float64) -> dict[str, np.ndarray]:
    """torch autograd through the case's torch.nn module (or focal_torch), on the float inputs."""
    T = tensors(case.arrays, dtype)
    roles = [k for k in case.arrays if k not in DATA_ROLES]
    for role in roles:
        T[role].requires_grad_(True)
    out = case.torch_fn(T, reduction) if case.torch_fn is not None else focal_torch(T, reduction)
    (out.sum() if reduction == "none" else out).backward()
    return {role: T[role].grad.numpy() for role in roles}


def js_formula(T: dict, r: str) -> torch.Tensor:
    """JS = 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2, written out in torch."""
    p, q = T["p"], T["q"]
    m = 0.5 * (p + q)
    values = 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)
    return {"none": values, "sum": values.sum(), "mean": values.mean()}[r]


def for_gradients(name: str, case: Case) -> Case:
    """JS of probabilities: the registry's reference goes through Categorical, which renormalises p and q, so off
    the simplex its gradient is the projected one; the gradient of JS as defined is the formula's. Row 0 holds
    zeros, where d JS / dp is -inf (torch's xlogy gives nan), so it is left out."""
    if name == "js" and case.label == "prob":
        return Case(case.label, {k: v[1:] for k, v in case.arrays.items()}, js_formula, None, case.options)
    return case


PARAMS = [pytest.param(spec, for_gradients(spec.name, case), id=f"{spec.name}-{case.label}")
          for spec in all_specs() for case in CASES[spec.name]()
          if case.torch_fn is not None or case.options == {}]  # focal's reference has the default alpha, gamma


def test_every_loss_is_differentiated():
    assert {p.values[0].name for p in PARAMS} == {s.name for s in all_specs()}


@pytest.mark.parametrize(("spec", "case"), PARAMS)
def test_gradient_equals_torch_autograd(spec, case):
    for reduction in spec.reductions:
        res = gradient(spec.name, reduction=reduction, **case.arrays, **case.options)
        expected = reference(case, reduction)
        assert set(res.gradients) == set(expected), (spec.name, reduction)
        for role, g in expected.items():
            assert res.gradients[role].shape == g.shape
            np.testing.assert_allclose(res.gradients[role], g, **GRAD_TOL,
                                       err_msg=f"{spec.name} {case.label} {reduction} d/d{role}")
        assert res.dtype == "float64" and res.reduction == reduction


@pytest.mark.parametrize("name", ["ce", "mse", "triplet-margin"])
def test_float32_gradient_equals_torch_float32(name):
    case = CASES[name]()[0]
    arrays = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in case.arrays.items()}
    case32 = Case(case.label, arrays, case.torch_fn, None, case.options)
    res = gradient(name, dtype="float32", **arrays, **case.options)
    for role, g in reference(case32, "mean", np.float32).items():
        assert res.gradients[role].dtype == np.float32
        np.testing.assert_allclose(res.gradients[role], g, **tol(np.float32))


# --- the command line ----------------------------------------------------------------------------------------

def _args(case: Case, tmp_path: Path) -> list[str]:
    """The case as `lossctl grad` options: each array in an .npy file, each option as its flag."""
    args = []
    for role, arr in case.arrays.items():
        args += [f"--{role.replace('_', '-')}", str(save(np.asarray(arr), tmp_path / f"{role}.npy"))]
    for name, value in case.options.items():
        flag = f"--{name.replace('_', '-')}"
        args += [flag if value else f"--no-{flag[2:]}"] if isinstance(value, bool) else [flag, str(value)]
    return args


CLI_CASES = [("ce", "weight-ignore-smoothing"), ("nll", "probs"), ("ctc", "padded"), ("kl", "log-prob"),
             ("triplet-margin", "p1-swap-margin"), ("gaussian-nll", "var-N"), ("bce", "logits-pos-weight")]


@pytest.mark.parametrize(("name", "label"), CLI_CASES, ids=[f"{n}-{label}" for n, label in CLI_CASES])
def test_cli_npz_equals_torch_autograd(cli, tmp_path, name, label):
    case = next(c for c in CASES[name]() if c.label == label)
    out = tmp_path / "grad.npz"
    ran = cli("grad", name, *_args(case, tmp_path), "-o", out)
    assert ran.stdout == "" and f"to {out}" in ran.stderr
    expected = reference(case, "mean")
    with np.load(out) as z:
        assert sorted(z.files) == sorted(expected)
        for role, g in expected.items():
            np.testing.assert_allclose(z[role], g, **GRAD_TOL)


def test_cli_npy_round_trip_and_formats(cli, tmp_path):
    x = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [0.0, 0.0, 4.0]])
    t = np.array([0, 1, 0])
    args = ("grad", "ce", "--logits", save(x, tmp_path / "x.npy"), "--target", save(t, tmp_path / "t.npy"))
    # the closed form: (softmax(x) - onehot(y)) / N
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    expected = (p - np.eye(3)[t]) / 3
    cli(*args, "-o", tmp_path / "g.npy")
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), expected, rtol=1e-12, atol=1e-15)
    plain = cli(*args, "-f", "plain").stdout.split()
    np.testing.assert_allclose(np.array(plain, dtype=float), expected.ravel(), rtol=1e-12, atol=1e-15)
    doc = json.loads(cli(*args, "-f", "json").stdout)
    assert doc["loss"] == "ce" and doc["reduction"] == "mean" and doc["dtype"] == "float64"
    np.testing.assert_allclose(doc["gradients"]["logits"], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(doc["value"], -np.log(p[np.arange(3), t]).mean(), rtol=1e-12)
    csv = cli(*args, "-f", "csv").stdout.splitlines()
    assert csv[0] == "input,i0,i1,gradient" and csv[1].startswith("logits,0,0,") and len(csv) == 10
    table = cli(*args, "-f", "table").stdout
    assert "d loss / d logits" in table


def test_reduction_none_is_the_gradient_of_the_sum(cli):
    ran = cli("grad", "mse", "--input", "[1.0, 3.0]", "--target", "[0.0, 1.0]", "--reduction", "none",
              "-f", "json")
    doc = json.loads(ran.stdout)
    assert doc["gradients"]["input"] == pytest.approx([2.0, 4.0])  # d/dx sum (x - y)^2 = 2 (x - y)
    assert any("gradient of the sum of the per-element losses" in n for n in doc["notes"])
    # the value is that sum, not a loss torch gives (its none is [1, 4]); the note says so, as the loss shown
    assert doc["value"] == 5.0
    assert any(n.startswith("reduction none: the value is the sum of the per-element losses") for n in doc["notes"])
    assert "each element's own gradient is its row" not in ran.stdout  # kl's or mse's element is no row


def test_cli_refusals(cli, tmp_path):
    triplet = ("grad", "triplet-margin", "--anchor", "[[1.0, 2.0]]", "--positive", "[[1.0, 0.0]]", "--negative",
               "[[0.0, 2.0]]")
    ran = cli(*triplet, "-o", tmp_path / "g.npy", code=2)
    assert ran.stderr.startswith("lossctl: error: -o: 3 inputs have gradients") and ran.stderr.count("\n") == 1
    assert "-o: writes .npy" in cli(*triplet, "-o", tmp_path / "g.txt", code=2).stderr
    assert "--target" in cli("grad", "ce", "--logits", "[[1.0, 2.0]]", "--target", "[2]", code=2).stderr
    assert "--dtype" in cli("grad", "ce", "--logits", "[[1.0]]", "--target", "[0]", "--dtype", "auto",
                            code=2).stderr
    assert "unknown loss 'nosuch'" in cli("grad", "nosuch", code=2).stderr
    assert "--reduction" in cli("grad", "perplexity", "--logits", "[[1.0]]", "--target", "[0]", "--reduction",
                                "sum", code=2).stderr


def test_grad_help_lists_the_loss_options(cli):
    out = cli("grad", "ce", "--help").stdout
    for text in ("--logits", "--label-smoothing", "--reduction", "--dtype", "--output"):
        assert text in out


# --- the gradient identity of lossctl check -----------------------------------------------------------------

def _digits(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    path = REALISTIC / "digits_logreg.npz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with np.load(path) as z:
        x, t = z["logits"], z["target"]
    return save(x, tmp_path / "x.npy"), save(t, tmp_path / "t.npy"), x, t


def test_check_gradient_identity_on_realistic_data(cli, tmp_path):
    xp, tp, x, t = _digits(tmp_path)
    w = save(np.linspace(0.5, 2.0, 10), tmp_path / "w.npy")
    for extra in ((), ("--weight", str(w))):
        doc = json.loads(cli("check", "--logits", xp, "--target", tp, *extra, "-f", "json").stdout)
        grad = next(c for c in doc["checks"] if c["check"] == "ce-grad")
        assert grad["ok"] and grad["total"] == 540 and grad["dtype"] == "float32"
    q = save(np.exp(x) / np.exp(x).sum(1, keepdims=True), tmp_path / "q.npy")
    doc = json.loads(cli("check", "--logits", xp, "--target", q, "-f", "json").stdout)
    grad = next(c for c in doc["checks"] if c["check"] == "ce-grad")
    assert grad["ok"] and grad["skipped"] is None


def test_check_gradient_identity_is_skipped_for_binary_data(cli):
    doc = json.loads(cli("check", "--probs", "[0.2, 0.9]", "--target", "[0, 1]", "-f", "json").stdout)
    grad = next(c for c in doc["checks"] if c["check"] == "ce-grad")
    assert grad["skipped"].startswith("needs (N, C) logits")


def test_closed_form_against_the_formula_written_out(rng):
    x, t, w = rng.normal(size=(6, 4)), rng.integers(0, 4, 6), rng.uniform(0.5, 2, 4)
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    onehot = np.eye(4)[t]
    got = checks.ce_gradient_closed_form(torch.from_numpy(x), torch.from_numpy(onehot), torch.from_numpy(w), 1,
                                         w[t].sum())
    np.testing.assert_allclose(got.numpy(), w[t][:, None] * (p - onehot) / w[t].sum(), rtol=1e-12)
    q = p[::-1].copy()
    got = checks.ce_gradient_closed_form(torch.from_numpy(x), torch.from_numpy(q), None, 1, 6)
    np.testing.assert_allclose(got.numpy(), (p - q) / 6, rtol=1e-12, atol=1e-15)


def test_check_fails_on_a_wrong_closed_form(cli, tmp_path, monkeypatch):
    """A closed form that divides a weighted mean by N, not by the sum of the targets' weights, fails (exit 1)."""
    xp, tp, x, t = _digits(tmp_path)
    w = save(np.linspace(0.5, 2.0, 10), tmp_path / "w.npy")
    right = checks.ce_gradient_closed_form

    def by_n(x, q, w, axis, denominator):
        return right(x, q, w, axis, x.shape[0])

    monkeypatch.setattr(checks, "ce_gradient_closed_form", by_n)
    out = cli("check", "--logits", xp, "--target", tp, "--weight", w, "-f", "plain", code=1).stdout
    assert "ce-grad\tFAIL" in out
    rows = checks.gradient_rows(torch.ones(2, 3), torch.ones(2, 3) * (1 + 1e-3), 1e-5, 1e-5)
    assert [r.ok for r in rows] == [False, False]


def test_grad_takes_classes_last_logits_and_gives_their_layout(cli, tmp_path):
    path = REALISTIC / "gpt2_init.npz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with np.load(path) as z:
        x = torch.tensor(z["logits_nlc"], dtype=torch.float64, requires_grad=True)
        t = torch.from_numpy(z["labels_nl"])
    torch.nn.functional.cross_entropy(x.permute(0, 2, 1), t).backward()
    out = tmp_path / "g.npy"
    cli("grad", "ce", "--logits", f"{path}:logits_nlc", "--target", f"{path}:labels_nl", "--class-axis", "-1",
        "-o", out)
    np.testing.assert_allclose(np.load(out), x.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_non_finite_gradients_are_kept_and_warned_about(cli):
    """At p = 0, d JS / dp is -inf in the formula and torch's xlogy gives nan: lossctl keeps torch's number and
    says which input and how many elements, as the loss commands warn about a non-finite loss."""
    p = torch.tensor([[0.0, 1.0], [0.3, 0.7]], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    m = 0.5 * (p + q)
    js = 0.5 * (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(-1) + 0.5 * (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(-1)
    js.mean().backward()
    want_p = p.grad.numpy()
    bad = int((~np.isfinite(want_p)).sum())
    assert bad == 1 and np.isfinite(q.grad.numpy()).all()
    args = ("grad", "js", "--p", json.dumps(p.tolist()), "--q", json.dumps(q.tolist()))
    res = cli(*args, "-f", "json")
    out = json.loads(res.stdout)
    np.testing.assert_allclose(np.array(out["gradients"]["p"], dtype=float), want_p, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(np.array(out["gradients"]["q"], dtype=float), q.grad.numpy(), rtol=1e-12)
    warning = f"d loss / d --p: {bad} of 4 elements are not finite (1 nan) as torch autograd computes them"
    assert warning in res.stderr and "--q" not in res.stderr
    assert out["warnings"] and warning in out["warnings"][0]
    clean = cli("grad", "js", "--p", "[[0.3, 0.7]]", "--q", "[[0.5, 0.5]]", "-f", "json")
    assert clean.stderr == "" and json.loads(clean.stdout)["warnings"] == []


def test_the_gradients_name_their_backend(cli):
    """Every loss result names what computed it (README: `backend` in the table and JSON); the gradients did not."""
    args = ("grad", "mse", "--input", "[1.0, 3.0]", "--target", "[0.0, 1.0]")
    version = f"torch {torch.__version__.split('+')[0]}"
    assert json.loads(cli(*args, "-f", "json").stdout)["backend"] == version
    assert "│ backend   │ " + version in cli(*args, "-f", "table").stdout


@pytest.mark.parametrize(("name", "role"), [("ce", "logits"), ("nll", "log_probs")])
def test_classes_last_gradient_keeps_its_layout_when_l_equals_c(cli, name, role):
    """Logits (N, L, C) with L == C keep their shape when their classes move to axis 1, so the gradient has to be
    moved back by what was done to the input, not by whether its shape changed (it came back transposed)."""
    x = np.array([[[1.0, 2.0, -0.5], [0.5, -1.0, 0.0], [3.0, 0.2, 0.1]]])
    if role == "log_probs":
        x = np.log(np.exp(x) / np.exp(x).sum(-1, keepdims=True))
    t = np.array([[0, 1, 2]])
    leaf = torch.tensor(x, requires_grad=True)
    fn = F.cross_entropy if name == "ce" else F.nll_loss
    (want,) = torch.autograd.grad(fn(leaf.movedim(-1, 1).contiguous(), torch.from_numpy(t)), leaf)
    ran = cli("grad", name, f"--{role.replace('_', '-')}", json.dumps(x.tolist()), "--target", json.dumps(t.tolist()),
              "--class-axis", "-1", "-f", "json")
    np.testing.assert_allclose(json.loads(ran.stdout)["gradients"][role], want.numpy(), **GRAD_TOL)


VALUE_WARNINGS = [
    (("ce", "--logits", "[[1.0, -Infinity, 0.0], [0.1, 0.8, 0.1]]", "--target", "[1, 1]"),
     "the result is inf as torch computes it: an input of -inf (a masked logit, log 0) meets a target with non-zero "
     "probability, or a loss overflows or is undefined (log 0, 0/0, 0 x inf, inf - inf)"),
    (("kl", "--log-probs", "[[-0.1, -0.2, -0.3]]", "--target", "[[0.6, 0.3, 0.1]]", "--reduction", "batchmean"),
     "KL is negative (-0.747946 < 0)"),  # sum t (log t - l), written out
    (("ce", "--logits", "[[1.0, 2.0, 0.0]]", "--target", "[0]", "--ignore-index", "0", "--reduction", "sum"),
     "--target: all 1 targets equal --ignore-index: the sum is 0 because nothing is counted, as torch gives it, not "
     "because the predictions are right"),
]


@pytest.mark.parametrize(("args", "warning"), VALUE_WARNINGS, ids=["inf", "negative-kl", "all-ignored-sum"])
def test_grad_warns_of_the_value_as_the_loss_command_does(cli, args, warning):
    """grad warned only of its inputs and gradients: a loss of inf (torch's, at a masked target logit), a negative
    KL and a sum over targets all ignored went unsaid, where the loss command warns of each."""
    ran = cli("grad", *args, "-f", "json")
    doc = json.loads(ran.stdout)
    assert any(w.startswith(warning) for w in doc["warnings"]), doc["warnings"]
    assert f"lossctl: warning: {warning}" in ran.stderr
    assert doc["warnings"] == json.loads(cli(*args, "-f", "json").stdout)["warnings"]


def test_one_array_for_two_roles_is_two_inputs():
    """Leaves were found by the array's identity, so one array passed for two roles was one leaf: kl's target
    passed as the same array as log_probs took the leaf (d/d log_probs 0 where torch gives -exp(a) / N),
    and triplet's anchor=positive=a left the anchor out of the graph (refused)."""
    a = np.log(np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    x = torch.tensor(a, requires_grad=True)
    F.kl_div(x, torch.tensor(a), reduction="batchmean", log_target=True).backward()
    got = gradient("kl", log_probs=a, target=a, reduction="batchmean", target_kind="log-prob").gradients
    np.testing.assert_allclose(got["log_probs"], x.grad.numpy(), **GRAD_TOL)
    b, n = np.array([[1.0, 2.0], [0.5, -1.0]]), np.array([[0.0, 1.0], [0.4, -0.5]])
    A, P, N = (torch.tensor(v, requires_grad=True) for v in (b, b, n))
    F.triplet_margin_loss(A, P, N, margin=3.0).backward()
    got = gradient("triplet-margin", anchor=b, positive=b, negative=n, margin=3.0).gradients
    for role, leaf in (("anchor", A), ("positive", P), ("negative", N)):
        np.testing.assert_allclose(got[role], leaf.grad.numpy(), **GRAD_TOL, err_msg=role)


# --- --target-grad: d loss / d target where torch differentiates it --------------------------------------------

def _target_leaves(name: str, rng) -> tuple[dict, dict, torch.Tensor]:
    """A case whose target torch differentiates: the arrays, lossctl's options, and torch's loss on leaves."""
    x, y = rng.normal(size=(3, 4)), rng.dirichlet(np.ones(4), 3)
    arrays = {"mse": {"input": x, "target": y}, "kl": {"log_probs": np.log(y[::-1]), "target": y},
              "bce": {"probs": 1 / (1 + np.exp(-x)), "target": y}, "ce": {"logits": x, "target": y},
              "huber": {"input": x, "target": y * 4}}[name]
    T = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    first, t = T[next(iter(T))], T["target"]
    loss = {"mse": lambda: F.mse_loss(first, t), "kl": lambda: F.kl_div(first, t, reduction="batchmean"),
            "bce": lambda: F.binary_cross_entropy(first, t), "huber": lambda: F.huber_loss(first, t),
            "ce": lambda: F.cross_entropy(first, t, label_smoothing=0.1)}[name]()
    options = {"kl": {"reduction": "batchmean"}, "ce": {"label_smoothing": 0.1}}.get(name, {})
    return arrays, options, dict(zip(T, torch.autograd.grad(loss, list(T.values())), strict=True))


@pytest.mark.parametrize("name", ["mse", "kl", "bce", "ce", "huber"])
def test_target_grad_equals_torch_autograd(name, rng):
    """A float target is differentiable in torch (distillation's soft targets, a regression's target); grad gave
    no way to ask for its gradient. --target-grad adds it."""
    arrays, options, want = _target_leaves(name, rng)
    got = gradient(name, target_grad=True, **arrays, **options).gradients
    assert list(got) == list(want)
    for role, g in want.items():
        np.testing.assert_allclose(got[role], g.numpy(), **GRAD_TOL, err_msg=role)
    assert list(gradient(name, **arrays, **options).gradients) == list(want)[:1]  # not asked: the input only


def test_target_grad_on_the_command_line(cli, tmp_path, rng):
    """Classes last (N, L, C), L == C: the probability target's gradient comes back in its given layout too."""
    x, q = rng.normal(size=(2, 3, 3)), rng.dirichlet(np.ones(3), (2, 3))
    X, Q = (torch.tensor(v, requires_grad=True) for v in (x, q))
    F.cross_entropy(X.movedim(-1, 1), Q.movedim(-1, 1)).backward()
    args = ("grad", "ce", "--logits", json.dumps(x.tolist()), "--target", json.dumps(q.tolist()), "--class-axis",
            "-1", "--target-grad")
    doc = json.loads(cli(*args, "-f", "json").stdout)
    np.testing.assert_allclose(doc["gradients"]["logits"], X.grad.numpy(), **GRAD_TOL)
    np.testing.assert_allclose(doc["gradients"]["target"], Q.grad.numpy(), **GRAD_TOL)
    cli(*args, "-o", tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz") as z:
        assert sorted(z.files) == ["logits", "target"]
        np.testing.assert_allclose(z["target"], Q.grad.numpy(), **GRAD_TOL)


@pytest.mark.parametrize(("args", "error"), [
    (("soft-margin", "--input", "[1.0, 2.0]", "--target", "[1.0, -1.0]"),
     "soft-margin: torch refused these inputs: The function 'soft_margin_loss' is not differentiable with respect "
     "to argument 'target'. This input cannot have requires_grad True."),
    (("hinge-embedding", "--input", "[1.0, 2.0]", "--target", "[1.0, -1.0]"),
     "--target-grad: torch does not differentiate hinge-embedding's --target: it selects or signs the terms, and "
     "no gradient reaches it"),
    (("ce", "--logits", "[[1.0, 2.0]]", "--target", "[1]"),
     "--target-grad: --target holds int64 values (class indices or labels), which torch does not differentiate"),
], ids=["soft-margin", "hinge-embedding", "class-indices"])
def test_target_grad_refused_where_torch_refuses(cli, args, error):
    ran = cli("grad", *args, "--target-grad", code=2)
    assert ran.stderr == f"lossctl: error: {error}\n"
    assert "No such option: --target-grad" in cli("grad", "js", "--p", "[[0.5, 0.5]]", "--q", "[[0.5, 0.5]]",
                                                  "--target-grad", code=2).stderr


@pytest.mark.parametrize("args", [("mse", "--input", "[1e39, 1.0]", "--target", "[0.0, 0.0]"),
                                  ("ce", "--logits", "[[1e39, 0.0]]", "--target", "[0]")], ids=["mse", "ce"])
def test_grad_refuses_a_value_float32_cannot_hold(cli, args):
    """grad --dtype float32 turned 1e39 into inf and differentiated that (a loss of inf, an inf gradient), where
    the loss command, as README says, refuses a value the compute dtype cannot hold."""
    index = "[0]" if args[0] == "mse" else "[0, 0]"
    ran = cli("grad", *args, "--dtype", "float32", code=2)
    assert ran.stderr == (f"lossctl: error: {args[1]}: 1e+39 at index {index} (literal) does not fit float32 (its "
                          "largest is 3.403e+38); use --dtype float64\n")
    cli("grad", *args, "-f", "json")  # float64 holds it


@pytest.mark.parametrize("command", [(), ("grad",), ("explain",)], ids=["loss", "grad", "explain"])
def test_a_header_row_read_as_data_is_hinted_by_every_command(cli, tmp_path, command):
    """Text tables one row apart: the loss command's error said a header row may have been read as data, grad's
    the same error without the hint (the hint was added by the loss command's run alone)."""
    (tmp_path / "x.csv").write_text("1,2,3\n4,5,6\n")
    (tmp_path / "t.csv").write_text("0\n1\n2\n")
    ran = cli(*command, "ce", "--logits", tmp_path / "x.csv", "--target", tmp_path / "t.csv", code=2)
    assert ran.stderr == (f"lossctl: error: --target ({tmp_path / 't.csv'}): shape (3,) does not match --logits "
                          "(2, 3); expected (2,); the text inputs differ by exactly one row; a header row may have "
                          "been read as data or taken for one (--header yes|no decides)\n")


@pytest.mark.parametrize("name", ["g.NPY", "g.Npz"])
def test_output_is_written_to_the_name_given(cli, tmp_path, name):
    """-o g.NPY was accepted (the extension is read case-blind) but numpy, given a name that does not end in
    '.npy', appended one: the gradient went to g.NPY.npy while lossctl said it wrote g.NPY."""
    out = tmp_path / name
    ran = cli("grad", "mse", "--input", "[1.0, 3.0]", "--target", "[0.0, 1.0]", "-o", out)
    assert ran.stderr.endswith(f"to {out}\n") and sorted(p.name for p in tmp_path.iterdir()) == [name]
    loaded = np.load(out)
    got = loaded if isinstance(loaded, np.ndarray) else loaded["input"]
    np.testing.assert_allclose(got, [1.0, 2.0], rtol=1e-12)  # 2 (x - y) / N


@pytest.mark.parametrize(("name", "arrays", "base"), [
    ("ce", {"logits": [[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], "target": [0, 1]}, "2"),
    ("entropy", {"logits": [[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]}, "10"),
])
def test_grad_takes_the_loss_commands_base(cli, name, arrays, base):
    """README: grad 'takes the arrays and options of lossctl LOSS'; ce's, nll's, kl's and entropy's --base was
    refused ('No such option: --base'). In bits the loss and its gradient are the nats' divided by ln 2."""
    x = torch.tensor(arrays["logits"], dtype=torch.float64, requires_grad=True)
    nats = (F.cross_entropy(x, torch.tensor(arrays["target"])) if name == "ce"
            else torch.distributions.Categorical(logits=x).entropy().mean())
    loss = nats / np.log(float(base))
    loss.backward()
    args = [a for role, v in arrays.items() for a in (f"--{role}", json.dumps(v))]
    doc = json.loads(cli("grad", name, *args, "--base", base, "-f", "json").stdout)
    np.testing.assert_allclose(doc["value"], loss.item(), rtol=1e-12)
    np.testing.assert_allclose(doc["gradients"]["logits"], x.grad.numpy(), **GRAD_TOL)
    assert doc["options"]["base"] == base
    assert "No such option: --base" in cli("grad", "mse", "--input", "[1.0]", "--target", "[0.0]", "--base", "2",
                                           code=2).stderr


def test_grad_strict_makes_its_warnings_errors(cli):
    """--strict, every loss command's, was refused by grad: its warnings (torch's KL 'mean', a non-finite
    gradient) could not fail a CI job as the loss command's do."""
    kl = ("grad", "kl", "--log-probs", "[[-0.5, -1.0]]", "--target", "[[0.6, 0.4]]")
    ran = cli(*kl, "--strict", code=2)
    assert ran.stderr == ("lossctl: error: --strict: kl: reduction 'mean' divides the total loss by both the batch "
                          "size and the support size; 'batchmean' divides only by the batch size and matches the KL "
                          "definition (torch's warning) (--strict makes warnings errors)\n")
    cli(*kl, "--reduction", "batchmean", "--strict")
    ran = cli("grad", "js", "--p", "[[0.0, 1.0]]", "--q", "[[0.5, 0.5]]", "--strict", code=2)
    assert ran.stderr == ("lossctl: error: --strict: d loss / d --p: 1 of 2 elements are not finite (1 nan) as torch "
                          "autograd computes them: an input at the edge of the loss's domain (a probability of 0 or 1, "
                          "a -inf logit) or an overflow (--strict makes warnings errors)\n")
