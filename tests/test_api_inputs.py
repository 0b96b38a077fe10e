"""What the library and the rarer commands are given by mistake: one LossctlError naming the option, or the number
torch gives; never another exception type, and never a silently different meaning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

import lossctl
import lossctl.api
from lossctl.errors import InputError, LossctlError, UsageError
from lossctl.grad import gradient

L = [[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]
T = [0, 1]
EX = ROOT / "examples"


def odd_tensors() -> dict[str, tuple[torch.Tensor, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantized tensors
        quantized = torch.quantize_per_tensor(torch.tensor(L), 0.1, 0, torch.qint8)
        nested = torch.nested.nested_tensor([torch.zeros(3)] * 2)  # a prototype API, which warns
    return {"sparse": (torch.tensor(L).to_sparse(), "a sparse_coo tensor; make it dense (tensor.to_dense())"),
            "meta": (torch.empty(2, 3, device="meta"), "a meta tensor: it has a shape but no values"),
            "nested": (nested, "a nested tensor; pad it first (torch.nested.to_padded_tensor)"),
            "quantized": (quantized, "a qint8 tensor, which NumPy cannot hold (need integers, bool or floats)"),
            "complex": (torch.tensor([[1 + 5j, 2 + 0j, 0j]] * 2), "complex tensors are not supported")}


@pytest.mark.parametrize("name", list(odd_tensors()))
def test_a_tensor_numpy_cannot_hold_is_one_error(name):
    tensor, why = odd_tensors()[name]
    with pytest.raises(InputError) as err:
        lossctl.compute("ce", logits=tensor, target=T)
    assert str(err.value) == f"--logits (array): {why}"


@pytest.mark.parametrize("value, why", [
    ([[1.0, 2.0], [1.0]], "nested lists of different lengths (ragged rows)"),
    ({"a": 1}, "must be numbers (an array, a tensor, a list, a path or a literal); got a dict"),
])
def test_a_python_value_that_is_no_array_is_one_error(value, why):
    with pytest.raises(InputError) as err:
        lossctl.compute("ce", logits=value, target=[0, 0])
    assert str(err.value) == f"--logits: {why}"


@pytest.mark.parametrize("kw, line", [
    ({"label_smoothing": "abc"}, "--label-smoothing: must be a number; got 'abc'"),
    ({"label_smoothing": True}, "--label-smoothing: must be a number; got True"),
    ({"ignore_index": 1.5}, "--ignore-index: must be a whole number; got 1.5"),
    ({"threads": "2"}, "--threads: must be a number; got '2'"),
    ({"worst": "2"}, "--worst: must be a number; got '2'"),
    ({"worst": -1}, "--worst: must be 0 or more; got -1"),
    ({"class_axis": "-1"}, "--class-axis: must be a number; got '-1'"),
    ({"device": 0}, "--device: must be cpu, cuda, mps or auto; got 0"),
    ({"bundle": {"logits": L}}, "--from: takes a path (or '-'); got a dict"),
])
def test_an_option_of_the_wrong_type_is_refused(kw, line):
    sources = {} if "bundle" in kw else {"logits": L, "target": T}
    with pytest.raises(UsageError) as err:
        lossctl.compute("ce", **sources, **kw)
    assert str(err.value) == line


def test_a_yes_no_option_takes_only_a_bool():
    """bool('False') is True: a string would silently mean the opposite of what it says."""
    x, y = torch.tensor([0.5, 2.0], dtype=torch.float64), torch.tensor([1.0, 3.0], dtype=torch.float64)
    got = lossctl.compute("poisson-nll", input=x.numpy(), target=y.numpy(), log_input=False).value
    assert got == pytest.approx(F.poisson_nll_loss(x, y, log_input=False).item(), rel=1e-12)
    for value in ("False", 0, None.__class__):
        with pytest.raises(UsageError) as err:
            lossctl.compute("poisson-nll", input=x.numpy(), target=y.numpy(), log_input=value)
        assert str(err.value).startswith("--log-input: must be true or false; got ")


def test_paths_may_be_path_objects():
    x, t = np.load(EX / "logits.npy"), np.load(EX / "targets.npy")
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item()
    assert lossctl.compute("ce", logits=EX / "logits.npy", target=EX / "targets.npy").value == pytest.approx(
        want, rel=1e-6)
    assert lossctl.compute("ce", bundle=EX / "bundle.npz").value == lossctl.compute(
        "ce", bundle=str(EX / "bundle.npz")).value


def test_decompose_and_check_tolerances_of_the_wrong_type():
    for fn in (lossctl.decompose, lossctl.check):
        with pytest.raises(UsageError) as err:
            fn(logits=str(EX / "logits.npy"), target=str(EX / "targets.npy"), atol="x")
        assert str(err.value) == "--atol: must be a finite number >= 0; got 'x'"


def test_merge_refuses_an_empty_partial_file(cli, tmp_path):
    """A shard whose --partials run failed leaves an empty file: merged without a word, the total would be
    another number."""
    part = tmp_path / "a.json"
    part.write_text(cli("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "--partials").stdout)
    for name, text in (("empty", ""), ("list", "[]"), ("blank", "\n")):
        bad = tmp_path / f"{name}.json"
        bad.write_text(text)
        ran = cli("merge", part, bad, code=2)
        assert ran.stderr == (f"lossctl: error: merge ({bad}): holds no partial (an empty file or list: did the run "
                              "that wrote it fail?)\n")
    x, t = np.load(EX / "logits.npy"), np.load(EX / "targets.npy")
    merged = lossctl.api.merge_files(Path(part))  # one path, as a Path
    assert merged.value == pytest.approx(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item(), rel=1e-6)


def test_breakdowns_need_class_index_targets(cli):
    ran = cli("ce", "--logits", EX / "logits.npy", "--target", EX / "target_probs.json", "--by-class", "-f", "json",
              code=2)
    assert ran.stderr == ("lossctl: error: --by-class: breakdowns by class and the worst samples need class-index "
                          "targets; these are probabilities\n")
    assert json.loads(cli("ce", "--logits", EX / "logits.npy", "--target", EX / "targets.npy", "--by-class", "-f",
                          "json").stdout)["by_class"]


def test_gradient_takes_class_axis():
    x, t = np.load(EX / "logits_nlc.npy"), np.load(EX / "labels_nl.npy")
    got = gradient("ce", logits=x, target=t, class_axis=-1).gradients["logits"]
    xt = torch.from_numpy(x).double().requires_grad_()
    F.cross_entropy(xt.movedim(-1, 1), torch.from_numpy(t)).backward()
    np.testing.assert_allclose(got, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_check_names_torchs_ignore_index_and_triplet_margin_names_its_option(cli):
    ran = cli("check", "--logits", EX / "logits.npy", "--target", EX / "targets_ignored.npy", code=2)
    assert ran.stderr.startswith("lossctl: error: --target: holds -100, torch's ignore_index, at index ")
    with pytest.raises(LossctlError) as err:
        lossctl.compute("triplet-margin", anchor=[[0.0, 0.0]], positive=[[3.0, 0.0]], negative=[[3.0, 1.0]],
                        margin=-1.0)
    assert str(err.value) == "--margin: must be > 0 (torch refuses others); got -1.0"
    with pytest.raises(ValueError):  # torch refuses it too
        F.triplet_margin_loss(torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), margin=-1.0)


def test_classes_last_probability_targets_move_with_the_logits(tmp_path):
    rng = np.random.default_rng(3)
    x, p = rng.standard_normal((2, 3, 4)), rng.random((2, 3, 4))
    p /= p.sum(-1, keepdims=True)
    want = F.cross_entropy(torch.from_numpy(x).movedim(-1, 1), torch.from_numpy(p).movedim(-1, 1)).item()
    assert lossctl.compute("ce", logits=x, target=p, class_axis=-1).value == pytest.approx(want, rel=1e-12)


def test_an_empty_kl_input_is_named_by_its_own_option():
    with pytest.raises(LossctlError) as err:
        lossctl.compute("kl", logits=np.zeros((0, 4)), target=np.zeros((0, 4)))
    assert str(err.value).startswith("--logits (array): is empty")


def test_a_finding_survives_pickling_to_a_worker():
    import pickle

    from lossctl.losses._common import Finding

    f = pickle.loads(pickle.dumps(Finding("row-sum:target", "--target: rows do not sum to 1", every=True, weak=True)))
    assert (str(f), f.key, f.every, f.weak) == ("--target: rows do not sum to 1", "row-sum:target", True, True)
    g = Finding("sigmoid-applied", "x", every=True, weak=True, extent=(8, 0.1, 0.3, 16, 0.5))
    g = pickle.loads(pickle.dumps(g))
    assert g.extent == (8, 0.1, 0.3, 16, 0.5)
    # two parts of one array that together hold 16 values spread over 0.8 conclude the rule
    joined = g.joined(Finding("sigmoid-applied", "y", every=True, weak=True, extent=(8, 0.6, 0.9, 16, 0.5)))
    assert (str(joined), joined.weak, joined.extent) == ("x", False, (16, 0.1, 0.9, 16, 0.5))


def test_grad_keeps_quiet_about_a_rule_too_few_values_can_show(cli):
    ran = cli("grad", "bce", "--logits", "[0.2, 0.5, 0.9]", "--target", "[0, 1, 1]", "-f", "plain")
    assert "sigmoid" not in ran.stderr
    x = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64, requires_grad=True)
    F.binary_cross_entropy_with_logits(x, torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)).backward()
    assert [float(v.split()[-1]) for v in ran.stdout.splitlines()] == pytest.approx(x.grad.tolist(), rel=1e-12)


def test_an_option_past_what_a_float_or_int64_holds_is_one_error():
    with pytest.raises(UsageError) as err:
        lossctl.compute("huber", input=[1.0, 2.0], target=[0.0, 0.0], delta=10**400)
    assert str(err.value) == "--delta: must be a number a float holds; got 10000000000000000000... (401 digits)"


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_numpy_scalars_keep_their_float_dtype_as_0d_arrays_do(backend):
    """np.float32(x) computes in float32 as torch.tensor(np.float32(x)) does; it once computed in float64."""
    x, y = np.float32(53.9162), np.float32(0.0011)
    res = lossctl.compute("mse", input=x, target=y, backend=backend)
    expected = F.mse_loss(torch.tensor(x), torch.tensor(y))
    assert expected.dtype == torch.float32 and res.dtype == "float32"
    assert res.value == pytest.approx(expected.item(), rel=1e-6)
    assert res.value != pytest.approx(float((np.float64(x) - np.float64(y)) ** 2), rel=1e-9)  # not float64's
