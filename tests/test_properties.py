"""Property-based tests: every reader and every loss ends in a result or a LossctlError, never another exception;
and the tutorial's identities hold on arbitrary data.

Example counts are kept small so the whole file runs in well under a minute; benchmarks/fuzz_long.py runs the
same properties far longer.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lossctl
from lossctl.errors import ComputeError, LossctlError
from lossctl.io import load_array, load_bundle
from lossctl.specs import all_specs

# benchmarks/fuzz_long.py raises LOSSCTL_FUZZ_SCALE to run the same properties far longer.
SCALE = max(1, int(os.environ.get("LOSSCTL_FUZZ_SCALE", "1")))
# The long run also fails on ComputeError: an input only torch's own checks caught, which a loss should name.
STRICT = os.environ.get("LOSSCTL_FUZZ_STRICT") == "1"
FAST = settings(max_examples=60 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXTS = (".npy", ".npz", ".json", ".csv", ".tsv", ".pt")
WORK = Path(tempfile.mkdtemp(prefix="lossctl-props-"))


def _valid_files() -> dict[str, bytes]:
    """One well-formed file per format, for the mutation strategy to damage."""
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    npy, npz, pt = io.BytesIO(), io.BytesIO(), io.BytesIO()
    np.save(npy, arr)
    np.savez(npz, logits=arr, target=np.array([0, 1]))
    torch.save({"logits": torch.from_numpy(arr), "target": torch.tensor([0, 1])}, pt)
    return {".npy": npy.getvalue(), ".npz": npz.getvalue(), ".pt": pt.getvalue(),
            ".json": b"[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]", ".csv": b"a,b,c\n0,1,2\n3.5,4,5\n",
            ".tsv": b"0\t1\t2\n3\t4\t5\n"}


VALID = _valid_files()


@st.composite
def damaged(draw, ext: str) -> bytes:
    """A valid file of `ext` with a few bytes overwritten, cut short, or grown."""
    data = bytearray(VALID[ext])
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _read(path: Path, option: str = "--logits"):
    try:
        out = load_array(str(path), option=option)
    except LossctlError as exc:
        assert str(exc).startswith(option), str(exc)
        assert "\n" not in str(exc)
        return None
    assert isinstance(out.array, np.ndarray)
    assert out.array.dtype.kind in "biuf"
    return out


@pytest.mark.parametrize("ext", EXTS)
@SLOW
@given(data=st.one_of(st.binary(max_size=512), st.data()))
def test_reader_on_arbitrary_bytes_gives_array_or_lossctl_error(ext, data):
    if not isinstance(data, bytes):
        data = data.draw(damaged(ext))
    path = WORK / f"fuzz{ext}"
    path.write_bytes(data)
    _read(path)
    if ext in (".npz", ".pt", ".json"):
        try:
            arrays, _ = load_bundle(str(path))
        except LossctlError:
            pass
        else:
            assert all(isinstance(a, np.ndarray) for a in arrays.values())


@FAST
@given(data=st.one_of(st.binary(max_size=512), st.sampled_from(sorted(VALID)).flatmap(damaged)))
def test_stdin_sniffing_on_arbitrary_bytes(data):
    try:
        out = load_array("-", option="--logits", stdin=data)
    except LossctlError as exc:
        assert str(exc).startswith("--logits")
    else:
        assert out.array.dtype.kind in "biuf"


@SLOW
@given(text=st.text(max_size=200))
def test_literal_and_csv_text_give_array_or_lossctl_error(text):
    for ext in (".csv", ".json"):
        path = WORK / f"text{ext}"
        path.write_text(text, encoding="utf-8")
        _read(path)
    try:
        load_array(text, option="--target")
    except LossctlError:
        pass


# --- arbitrary, well-formed but wrong arrays into every loss

DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.bool_])
ELEMENTS = st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, 3.0, -100.0, 1e30, -np.inf, np.inf, np.nan])


@st.composite
def wrong_array(draw) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    values = draw(hnp.arrays(np.float64, shape, elements=ELEMENTS))
    dtype = draw(DTYPES)
    with np.errstate(invalid="ignore", over="ignore"):
        if np.dtype(dtype).kind in "ib":
            values = np.nan_to_num(values, nan=0.0, posinf=5.0, neginf=-5.0)
        return values.astype(dtype)


def _option_values(opt):
    if opt.choices:
        return st.sampled_from([*opt.choices, "bogus"])
    if opt.type is bool:
        return st.booleans()
    if opt.type is int:
        return st.sampled_from([opt.default, -100, -1, 0, 1, 2, 99])
    if opt.type is float:
        return st.sampled_from([opt.default, -0.5, 0.0, 0.1, 1.0, 1.5])
    return st.just(opt.default)


SPECS = {s.name: s for s in all_specs()}


@pytest.mark.parametrize("name", sorted(SPECS))
@SLOW
@given(data=st.data())
def test_loss_on_wrong_arrays_gives_result_or_lossctl_error(name, data):
    spec = SPECS[name]
    kwargs = {}
    for role in spec.roles:
        if data.draw(st.booleans() if not role.required or role.group else st.just(True) | st.booleans()):
            kwargs[role.name] = data.draw(wrong_array())
    for opt in spec.options:
        if data.draw(st.booleans()):
            kwargs[opt.name] = data.draw(_option_values(opt))
    reduction = data.draw(st.sampled_from([*spec.reductions, "bogus"]))
    try:
        result = lossctl.compute(name, reduction=reduction, **kwargs)
    except LossctlError as exc:
        assert "\n" not in str(exc)
        assert not (STRICT and isinstance(exc, ComputeError)), str(exc)
        return
    if result.values is not None:
        assert isinstance(result.values, np.ndarray)
    else:
        assert isinstance(result.value, float)


# --- the tutorial's identities, as properties

def logit_rows(min_classes: int = 2):
    return st.tuples(st.integers(1, 5), st.integers(min_classes, 6)).flatmap(
        lambda s: hnp.arrays(np.float64, s, elements=st.floats(-20, 20)))


def _none(name: str, **kw) -> np.ndarray:
    return np.asarray(lossctl.compute(name, reduction="none", **kw).values)


@FAST
@given(logits=logit_rows(), shift=hnp.arrays(np.float64, 5, elements=st.floats(-50, 50)), data=st.data())
def test_ce_is_unchanged_by_a_constant_added_to_a_row(logits, shift, data):
    n, c = logits.shape
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    shifted = logits + shift[:n, None]
    np.testing.assert_allclose(_none("ce", logits=shifted, target=target), _none("ce", logits=logits, target=target),
                               rtol=1e-9, atol=1e-9)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@FAST
@given(logits=logit_rows())
def test_kl_of_a_distribution_with_itself_is_zero(logits):
    p = _softmax(logits)
    kl = lossctl.compute("kl", probs=p, target=p, reduction="batchmean").value
    assert abs(kl) < 1e-12
    np.testing.assert_allclose(_none("kl", logits=logits, target=logits, target_kind="logits"), 0.0, atol=1e-12)


@FAST
@given(logits=logit_rows(), target_logits=logit_rows())
def test_ce_equals_entropy_plus_kl(logits, target_logits):
    n = min(len(logits), len(target_logits))
    c = min(logits.shape[1], target_logits.shape[1])
    x, q = logits[:n, :c], _softmax(target_logits[:n, :c])
    ce = _none("ce", logits=x, target=q)
    h = _none("entropy", probs=q)
    kl = _none("kl", logits=x, target=q).sum(axis=-1)
    np.testing.assert_allclose(ce, h + kl, rtol=1e-9, atol=1e-9)


@SLOW
@given(data=st.data())
def test_ce_gradient_equals_torch_autograd_over_its_options(data):
    """`lossctl grad ce` against torch.autograd.grad of F.cross_entropy on arbitrary shapes (N, C, d...), classes
    first or last (L == C too), -inf masks, class weights with zeros, ignored targets, label smoothing, index or
    probability targets, every reduction, float64 and float32. Where the mean has no denominator lossctl refuses
    (torch's nan), and nothing else."""
    import torch.nn.functional as F

    from lossctl.grad import gradient

    draw = data.draw
    n, c, extra = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.lists(st.integers(1, 3), max_size=2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=(n, c, *extra)) * 3
    x[rng.random(x.shape) < draw(st.sampled_from([0.0, 0.2]))] = -np.inf
    probs = draw(st.booleans())
    t = np.moveaxis(rng.dirichlet(np.ones(c), (n, *extra)), -1, 1) if probs else rng.integers(0, c, (n, *extra))
    options = {"label_smoothing": draw(st.sampled_from([0.0, 0.3]))}
    if not probs:
        options["ignore_index"] = draw(st.sampled_from([-100, 0]))
    weight = rng.uniform(0, 2, c) * (rng.random(c) < 0.7) if draw(st.booleans()) else None
    reduction, dtype = draw(st.sampled_from(["mean", "sum", "none"])), draw(st.sampled_from(["float64", "float32"]))
    last = bool(extra) and draw(st.booleans())
    tdt = getattr(torch, dtype)
    X = torch.tensor(x, dtype=tdt, requires_grad=True)
    T = torch.tensor(t, dtype=tdt) if probs else torch.from_numpy(t)
    W = None if weight is None else torch.tensor(weight, dtype=tdt)
    loss = F.cross_entropy(X, T, weight=W, reduction=reduction, **options)
    (want,) = torch.autograd.grad(loss.sum(), X)
    given_x, given_t = (np.moveaxis(x, 1, -1), np.moveaxis(t, 1, -1) if probs else t) if last else (x, t)
    arrays = {"logits": given_x, "target": given_t, **({"weight": weight} if weight is not None else {})}
    try:
        res = gradient("ce", reduction=reduction, dtype=dtype, class_axis=-1 if last else 1, **arrays, **options)
    except LossctlError as err:
        assert "has no denominator" in str(err) and reduction == "mean" and not np.isfinite(loss.item()), err
        return
    got = np.moveaxis(res.gradients["logits"], -1, 1) if last else res.gradients["logits"]
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == "float64" else {"rtol": 1.3e-6, "atol": 1e-5}
    np.testing.assert_allclose(got, want.numpy(), equal_nan=True, **tol)
    np.testing.assert_allclose(res.value, loss.sum().item(), equal_nan=True, **tol)
