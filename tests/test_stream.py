"""Chunked, sharded and merged results equal torch's single pass, for every reduction and option."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossctl
from lossctl import stream
from lossctl.batch import load_partials, merge, partial_document
from lossctl.errors import LossctlError
from lossctl.specs import get_loss

RNG = np.random.default_rng(7)
N, C = 37, 5  # 37 rows in chunks of 4 leaves a short last chunk


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # Each row of (N, C) float32 is 20 bytes: 80 bytes per chunk gives 4 rows per chunk, 10 chunks.
    monkeypatch.setattr(stream, "CHUNK_BYTES", 80)


def save(tmp_path, name, arr):
    path = tmp_path / f"{name}.npy"
    np.save(path, arr)
    return str(path)


def logits(dtype=np.float32, shape=(N, C)):
    return RNG.standard_normal(shape).astype(dtype)


def torch_value(fn, reduction, *args, **kw):
    out = fn(*args, reduction=reduction, **kw)
    return out.double().numpy() if reduction == "none" else float(out)


def close(a, b, dtype):
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=tol, atol=tol)


def streamed(name, files, **kw):
    r = lossctl.compute(name, stream=True, **files, **kw)
    assert any("streamed" in n for n in r.notes), r.notes
    return r


def streamed_and_whole_errors(name, files, **kw) -> list[str]:
    """The error a run gives streamed, then read whole: the two must say the same."""
    errors = []
    for stream_it in (True, False):
        with pytest.raises(LossctlError) as err:
            lossctl.compute(name, stream=stream_it, **files, **kw)
        errors.append(str(err.value))
    return errors


CE_CASES = [
    {},
    {"ignore": True},
    {"weight": True},
    {"weight": True, "ignore": True},
    {"label_smoothing": 0.2},
    {"label_smoothing": 0.1, "weight": True, "ignore": True},
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", CE_CASES, ids=lambda c: "-".join(c) or "plain")
def test_ce_and_nll_streamed_equal_torch(tmp_path, dtype, reduction, case):
    x = logits(dtype)
    t = RNG.integers(0, C, N)
    if case.get("ignore"):
        t[::3] = -100
    w = RNG.uniform(0.1, 2.0, C).astype(dtype) if case.get("weight") else None
    eps = case.get("label_smoothing", 0.0)
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "t", t)}
    extra = {"weight": w} if w is not None else {}
    tw = torch.from_numpy(w) if w is not None else None
    got = streamed("ce", files, reduction=reduction, label_smoothing=eps, **extra).value
    want = torch_value(F.cross_entropy, reduction, torch.from_numpy(x), torch.from_numpy(t), weight=tw,
                       label_smoothing=eps)
    close(got, want, dtype)
    logp = torch.log_softmax(torch.from_numpy(x), 1)
    for role, arr in (("log_probs", logp.numpy()), ("logits", x), ("probs", logp.exp().numpy())):
        files = {role: save(tmp_path, role, arr), "target": save(tmp_path, "t", t)}
        got = streamed("nll", files, reduction=reduction, **extra).value
        close(got, torch_value(F.nll_loss, reduction, logp, torch.from_numpy(t), weight=tw), dtype)


def test_ce_streamed_spatial_and_prob_targets(tmp_path):
    x = logits(np.float32, (N, C, 3))
    t = RNG.integers(0, C, (N, 3))
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "t", t)}
    close(streamed("ce", files).value, float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))), np.float32)
    q = torch.softmax(torch.from_numpy(logits()), 1).numpy()
    x2 = logits()
    files = {"logits": save(tmp_path, "x2", x2), "target": save(tmp_path, "q", q)}
    for reduction in ("mean", "sum"):
        want = torch_value(F.cross_entropy, reduction, torch.from_numpy(x2), torch.from_numpy(q))
        close(streamed("ce", files, reduction=reduction).value, want, np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean"])
@pytest.mark.parametrize("kind", ["prob", "log-prob", "logits"])
def test_kl_streamed_equals_torch(tmp_path, reduction, kind):
    x = logits()
    q = torch.softmax(torch.from_numpy(logits()), 1)
    target = {"prob": q, "log-prob": q.log(), "logits": torch.from_numpy(logits())}[kind]
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "q", target.numpy())}
    got = streamed("kl", files, reduction=reduction, target_kind=kind).value
    tt = torch.softmax(target, 1) if kind == "logits" else target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's own advice about 'mean'; lossctl repeats it
        want = F.kl_div(torch.log_softmax(torch.from_numpy(x), 1), tt, reduction=reduction,
                        log_target=kind == "log-prob")
    close(got, float(want), np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_and_entropy_streamed_equal_torch(tmp_path, reduction):
    x = logits()
    y = RNG.integers(0, 2, (N, C)).astype(np.float32)
    pw = RNG.uniform(0.5, 2, C).astype(np.float32)
    w = RNG.uniform(0, 2, (N, C)).astype(np.float32)  # per-element weights, streamed with the rows
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "y", y), "weight": save(tmp_path, "w", w)}
    got = streamed("bce", files, reduction=reduction, pos_weight=pw).value
    want = F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w),
                                              pos_weight=torch.from_numpy(pw), reduction=reduction)
    close(got, float(want), np.float32)
    p = torch.sigmoid(torch.from_numpy(x)).numpy()
    files = {"probs": save(tmp_path, "p", p), "target": save(tmp_path, "y", y)}
    want = F.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y), reduction=reduction)
    close(streamed("bce", files, reduction=reduction).value, float(want), np.float32)
    h = torch.distributions.Categorical(logits=torch.from_numpy(x)).entropy()
    got = streamed("entropy", {"logits": save(tmp_path, "x", x)}, reduction=reduction).value
    close(got, float(h.mean() if reduction == "mean" else h.sum()), np.float32)
    x3 = logits(np.float32, (N, 3, C))  # --dim 1: the classes on the middle axis, the batch still first
    h = torch.distributions.Categorical(logits=torch.from_numpy(x3).movedim(1, -1)).entropy()
    got = streamed("entropy", {"logits": save(tmp_path, "x3", x3)}, reduction=reduction, dim=1).value
    close(got, float(h.mean() if reduction == "mean" else h.sum()), np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(N, C), (N,), (N, 3, C)])
@pytest.mark.parametrize("loss, fn, opts", [("mse", F.mse_loss, {}), ("l1", F.l1_loss, {}),
                                            ("huber", F.huber_loss, {"delta": 0.5}),
                                            ("smooth-l1", F.smooth_l1_loss, {"beta": 0.3})])
def test_regression_losses_streamed_equal_torch(tmp_path, reduction, shape, loss, fn, opts):
    x, y = logits(np.float32, shape), logits(np.float32, shape)
    files = {"input": save(tmp_path, "x", x), "target": save(tmp_path, "y", y)}
    got = streamed(loss, files, reduction=reduction, threads=2, **opts).value
    close(got, torch_value(fn, reduction, torch.from_numpy(x), torch.from_numpy(y), **opts), np.float32)


def test_a_streamed_target_of_another_shape_is_the_whole_arrays_error(tmp_path):
    """torch would broadcast (N, 1) against (N); lossctl refuses, naming the whole arrays' shapes, not a chunk's."""
    files = {"input": save(tmp_path, "x", logits(np.float32, (N, 1))), "target": save(tmp_path, "y", logits(
        np.float32, (N,)))}
    for error in streamed_and_whole_errors("mse", files):
        assert f"shape ({N},) does not match --input ({N}, 1)" in error


def test_stream_error_names_the_whole_arrays_position(tmp_path):
    x = logits()
    x[29, 2] = np.nan
    t = RNG.integers(0, C, N)
    t[33] = C
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "t", t)}
    with pytest.raises(LossctlError, match=r"index \[29, 2\]"):
        streamed("ce", files)
    x[29, 2] = 0
    files["logits"] = save(tmp_path, "x", x)
    with pytest.raises(LossctlError, match=r"class index 5 at index \[33\]"):
        streamed("ce", files)


def test_all_ignored_across_chunks_is_refused_only_when_whole(tmp_path):
    x, t = logits(), np.full(N, -100)
    t[-1] = 1  # every chunk but the last is fully ignored: the whole still has one target
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "t", t)}
    want = float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)))
    close(streamed("ce", files).value, want, np.float32)
    t[-1] = -100
    files["target"] = save(tmp_path, "t", t)
    with pytest.raises(LossctlError, match="ignore-index"):
        streamed("ce", files)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_shards_and_merged_partials_equal_single_pass(tmp_path, reduction):
    xs = [logits() for _ in range(3)]
    ts = [RNG.integers(0, C, N) for _ in range(3)]
    ts[1][:10] = -100
    w = RNG.uniform(0.5, 2, C).astype(np.float32)
    want = float(F.cross_entropy(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ts)),
                                 weight=torch.from_numpy(w), reduction=reduction))
    docs = []
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        r = lossctl.compute("ce", logits=save(tmp_path, f"x{i}", x), target=save(tmp_path, f"t{i}", t),
                            weight=w, reduction=reduction, stream=i % 2 == 0)
        docs.append(partial_document(r))
    path = tmp_path / "parts.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in docs))
    close(merge(load_partials(str(path))).value, want, np.float32)


def test_merge_refuses_unlike_partials(tmp_path):
    x, t = logits(), RNG.integers(0, C, N)
    a = partial_document(lossctl.compute("ce", logits=x, target=t))
    b = partial_document(lossctl.compute("ce", logits=x, target=t, reduction="sum"))
    with pytest.raises(LossctlError, match="reduction"):
        merge([a, b])
    c = partial_document(lossctl.compute("ce", logits=x, target=t, label_smoothing=0.1))
    with pytest.raises(LossctlError, match="options"):
        merge([a, c])


def test_ctc_shards_merge_and_pair_into_torchs_loss_on_the_whole_batch(cli, tmp_path):
    """ctc's log-probs are time first (T, N, C), but they are data, one per shard, not a per-class constant that
    shards must share: partials of different batches merged (and files paired) to an error."""
    lp = torch.randn(6, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).log_softmax(-1)
    target = torch.tensor([[1, 2, 3], [2, 2, 0], [4, 1, 0], [3, 3, 3]])
    in_len, tg_len = torch.tensor([6, 5, 6, 6]), torch.tensor([3, 2, 1, 3])
    want = F.ctc_loss(lp, target, in_len, tg_len).item()
    docs, args = [], {"--log-probs": [], "--target": [], "--input-lengths": [], "--target-lengths": []}
    for i, rows in enumerate((slice(0, 2), slice(2, 4))):
        for flag, arr in (("--log-probs", lp[:, rows]), ("--target", target[rows]), ("--input-lengths", in_len[rows]),
                          ("--target-lengths", tg_len[rows])):
            np.save(tmp_path / f"{flag[2:]}{i}.npy", arr.numpy())
            args[flag].append(tmp_path / f"{flag[2:]}{i}.npy")
        docs.append(partial_document(lossctl.compute("ctc", log_probs=lp[:, rows].numpy(), target=target[rows].numpy(),
                                                     input_lengths=in_len[rows].numpy(),
                                                     target_lengths=tg_len[rows].numpy())))
    assert merge(docs).value == pytest.approx(want, rel=1e-12)
    paired = [a for flag, paths in args.items() for p in paths for a in (flag, p)]
    assert float(cli("ctc", *paired, "-f", "plain").stdout.splitlines()[-1]) == pytest.approx(want, rel=1e-12)


def test_merge_mixes_float32_and_float64_shards():
    x, t = logits(), RNG.integers(0, C, N)
    x64 = logits(np.float64)
    docs = [partial_document(lossctl.compute("ce", logits=x, target=t)),
            partial_document(lossctl.compute("ce", logits=x64, target=t))]
    r = merge(docs)
    want = F.cross_entropy(torch.from_numpy(np.concatenate([x.astype(np.float64), x64])),
                           torch.from_numpy(np.concatenate([t, t])))
    close(r.value, float(want), np.float32)
    assert r.dtype == "float32+float64"
    # a partial of several files names its dtypes joined; merged again, each is named once
    both = dict(docs[1], dtype="float32+float64")
    assert merge([docs[0], both]).dtype == "float32+float64"


@pytest.mark.parametrize("header", [False, True])
def test_csv_streamed_in_chunks_equals_torch(tmp_path, monkeypatch, header):
    pytest.importorskip("pandas")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 200)  # 5 columns of float64: 5 rows per chunk
    x, t = RNG.standard_normal((N, C)), RNG.integers(0, C, N)
    t[::4] = -100
    xp, tp = tmp_path / "x.csv", tmp_path / "t.tsv"
    np.savetxt(xp, x, delimiter=",", fmt="%.17g", header="a,b,c,d,e" if header else "", comments="")
    np.savetxt(tp, t, fmt="%d", header="label" if header else "", comments="")
    r = streamed("ce", {"logits": str(xp), "target": str(tp)}, reduction="mean")
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))
    assert r.dtype == "float64"
    close(r.value, float(want), np.float64)


@pytest.mark.parametrize("bad", ["0.1,,0.3", "0.1,0.2", "0.1,0.2,0.3,0.4", "0.1,oops,0.3", "nan,0.2,0.3",
                                 "0.1,0.2,NaN", "0.1,NA,0.3", "null,0.2,0.3"])
@pytest.mark.parametrize("rows", [20, 40_000])
def test_csv_streamed_errors_are_the_whole_reads(tmp_path, bad, rows):
    """An empty cell, a short or long row, a word, a written nan: the same line streamed as read whole (a header
    and comment lines above the data, so that rows are counted as lines of the file)."""
    pytest.importorskip("pandas")
    lines = ["a,b,c", "# a comment", *["0.1,0.2,0.3"] * rows]
    lines[2 + rows * 3 // 4] = bad
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "t.csv").write_text("\n".join(["1"] * rows) + "\n")
    files = {"logits": str(tmp_path / "x.csv"), "target": str(tmp_path / "t.csv")}
    errors = streamed_and_whole_errors("ce", files)
    assert errors[0] == errors[1]
    assert f"row {3 + rows * 3 // 4}" in errors[0] or f"index [{rows * 3 // 4}," in errors[0], errors[0]


# 20 rows fit one pandas chunk; 40,000 rows span several, so the line must count the chunks before it.
@pytest.mark.parametrize("rows", [20, 40_000])
def test_csv_stream_errors_name_row_and_column(tmp_path, rows):
    pytest.importorskip("pandas")
    bad = rows * 3 // 4
    lines = ["0.1,0.2,0.3"] * rows
    lines[bad] = "0.1,oops,0.3"
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "t.csv").write_text("\n".join(["1"] * rows) + "\n")
    with pytest.raises(LossctlError, match=rf"--logits.*row {bad + 1}, column 2: 'oops' is not a number"):
        streamed("ce", {"logits": str(tmp_path / "x.csv"), "target": str(tmp_path / "t.csv")})
    (tmp_path / "x.csv").write_text("\n".join(["0.1,0.2,0.3"] * 20) + "\n")
    (tmp_path / "t.csv").write_text("\n".join(["1"] * 19) + "\n")
    with pytest.raises(LossctlError, match="different numbers of rows"):
        streamed("ce", {"logits": str(tmp_path / "x.csv"), "target": str(tmp_path / "t.csv")})


@pytest.mark.parametrize("kind", ["float", "int", "header", "tsv"])
def test_big_csv_fast_path_equals_the_validating_parser(monkeypatch, kind):
    pytest.importorskip("pandas")
    from lossctl.io import text

    sep = "\t" if kind == "tsv" else ","
    arr = RNG.integers(-5, 100, (80_000, 6)) if kind == "int" else RNG.standard_normal((30_000, 6))
    fmt = "%d" if kind == "int" else "%.17g"
    buf = __import__("io").StringIO()
    np.savetxt(buf, arr, fmt=fmt, delimiter=sep, header=sep.join("abcdef") if kind == "header" else "",
               comments="")
    body = buf.getvalue()
    assert len(body) > text.FAST_CSV_CHARS
    fast = text.parse_csv(body, option="--logits", source="x", delimiter=sep)
    monkeypatch.setattr(text, "FAST_CSV_CHARS", 1 << 40)
    slow = text.parse_csv(body, option="--logits", source="x", delimiter=sep)
    assert fast.dtype == slow.dtype and np.array_equal(fast, slow)
    np.testing.assert_array_equal(slow, arr)


def test_big_csv_with_a_bad_cell_still_names_row_and_column():
    from lossctl.io import text

    lines = ["0.5,1.5"] * 100_000
    lines[77_776] = "0.5,x1"
    with pytest.raises(LossctlError, match="row 77777, column 2: 'x1' is not a number"):
        text.parse_csv("\n".join(lines), option="--logits", source="x.csv")


def _shard_case(name):
    """Arrays for three shards of `name`, its options, and torch's single pass over all of them."""
    xs = [logits() for _ in range(3)]
    x = torch.from_numpy(np.concatenate(xs))
    if name in ("ce", "nll"):
        ts = [RNG.integers(0, C, N) for _ in range(3)]
        ts[2][::2] = -100
        w = RNG.uniform(0.5, 2, C).astype(np.float32)
        role = "logits"
        opts = {"weight": w}

        def want(r):
            return F.cross_entropy(x, torch.from_numpy(np.concatenate(ts)), weight=torch.from_numpy(w), reduction=r)
    elif name == "kl":
        ts = [torch.softmax(torch.from_numpy(logits()), 1).numpy() for _ in range(3)]
        role, opts = "logits", {}

        def want(r):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return F.kl_div(torch.log_softmax(x, 1), torch.from_numpy(np.concatenate(ts)), reduction=r)
    elif name == "bce":
        ts = [RNG.integers(0, 2, (N, C)).astype(np.float32) for _ in range(3)]
        pw = RNG.uniform(0.5, 2, C).astype(np.float32)
        role, opts = "logits", {"pos_weight": pw}

        def want(r):
            return F.binary_cross_entropy_with_logits(x, torch.from_numpy(np.concatenate(ts)),
                                                      pos_weight=torch.from_numpy(pw), reduction=r)
    else:
        ts, role, opts = [None] * 3, "logits", {}

        def want(r):
            h = torch.distributions.Categorical(logits=x).entropy()
            return h.mean() if r == "mean" else h.sum()
    return xs, ts, role, opts, want


@pytest.mark.parametrize("name", ["ce", "nll", "kl", "bce", "entropy"])
def test_every_streamed_loss_shards_and_merges_exactly(tmp_path, name):
    xs, ts, role, opts, want = _shard_case(name)
    spec_reductions = get_loss(name).reductions
    for reduction in [r for r in ("mean", "sum", "batchmean") if r in spec_reductions]:
        docs = []
        for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
            arrays = {role: save(tmp_path, f"x{i}", x)}
            if t is not None:
                arrays["target"] = save(tmp_path, f"t{i}", t)
            r = lossctl.compute(name, reduction=reduction, stream=i != 1, **arrays, **opts)  # mixed paths
            docs.append(partial_document(r))
        close(merge(docs).value, float(want(reduction)), np.float32)


# Regressions from review: each streamed case below once differed from the in-memory path.

def test_streamed_integer_one_hot_target_is_probabilities_like_in_memory(tmp_path):
    x = logits()
    onehot = np.eye(C, dtype=np.int64)[RNG.integers(0, C, N)]
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "oh", onehot)}
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(onehot).float())
    close(streamed("ce", files).value, float(want), np.float32)
    one = {"logits": save(tmp_path, "x1", x[:1]), "target": save(tmp_path, "oh1", onehot[:1])}
    want = F.cross_entropy(torch.from_numpy(x[:1]), torch.from_numpy(onehot[:1]).float())
    close(lossctl.compute("ce", stream=True, **one).value, float(want), np.float32)


def test_streamed_integer_logits_compute_in_float(tmp_path):
    x, t = RNG.integers(-3, 4, (N, C)), RNG.integers(0, C, N)
    files = {"logits": save(tmp_path, "xi", x), "target": save(tmp_path, "t", t)}
    want = F.cross_entropy(torch.from_numpy(x).double(), torch.from_numpy(t))
    close(streamed("ce", files).value, float(want), np.float64)


def test_streamed_entropy_with_negative_dim_on_the_batch_axis_is_not_split(tmp_path):
    p = RNG.dirichlet(np.ones(N), size=C).T.astype(np.float32).copy()  # (N, C): each column a distribution
    r = lossctl.compute("entropy", probs=save(tmp_path, "p", p), dim=-2, stream=True)
    want = torch.distributions.Categorical(probs=torch.from_numpy(p).T).entropy().mean()
    close(r.value, float(want), np.float32)
    assert not r.warnings


def test_streamed_bce_with_a_per_class_weight_when_rows_equal_classes(tmp_path):
    n = 12
    x, y = logits(np.float32, (n, n)), RNG.integers(0, 2, (n, n)).astype(np.float32)
    w = RNG.uniform(0.5, 2, n).astype(np.float32)
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "y", y), "weight": save(tmp_path, "w", w)}
    want = F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w))
    close(streamed("bce", files).value, float(want), np.float32)


def test_one_dimensional_kl_is_one_distribution_and_not_split(tmp_path):
    q = torch.softmax(torch.from_numpy(logits(np.float32, (200,))), 0)
    lp = torch.log_softmax(torch.from_numpy(logits(np.float32, (200,))), 0)
    files = {"log_probs": save(tmp_path, "lp", lp.numpy()), "target": save(tmp_path, "q", q.numpy())}
    r = lossctl.compute("kl", reduction="batchmean", stream=True, strict=True, **files)
    close(r.value, float(F.kl_div(lp, q, reduction="batchmean")), np.float32)


def test_streamed_fully_masked_row_is_torchs_value_without_numpy_noise(tmp_path, recwarn):
    x, t = logits(), RNG.integers(0, C, N)
    x[3] = -np.inf
    t[5] = -100
    x[5, 0] = -np.inf  # an ignored target whose stand-in class is masked still costs 0
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "t", t)}
    want = float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="sum"))
    got = streamed("ce", files, reduction="sum").value
    assert np.isnan(got) == np.isnan(want) and (np.isnan(want) or got == pytest.approx(want))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_merge_refuses_partials_with_other_weights():
    x, t = logits(), RNG.integers(0, C, N)
    w1, w2 = np.ones(C, np.float32), np.full(C, 2.0, np.float32)
    plain = partial_document(lossctl.compute("ce", logits=x, target=t))
    a = partial_document(lossctl.compute("ce", logits=x, target=t, weight=w1))
    b = partial_document(lossctl.compute("ce", logits=x, target=t, weight=w2))
    for pair in ((plain, a), (a, b)):
        with pytest.raises(LossctlError, match="per-class arrays"):
            merge(list(pair))
    assert merge([a, a]).value == pytest.approx(float(F.cross_entropy(
        torch.from_numpy(np.concatenate([x, x])), torch.from_numpy(np.concatenate([t, t])))), rel=2e-6)
    # the same weights, index targets (a weighted mean) and probability targets (a mean over N): said as such,
    # not as per-class arrays that differ ("True and False")
    soft = partial_document(lossctl.compute("ce", logits=x, target=np.eye(C, dtype=np.float32)[t], weight=w1))
    with pytest.raises(LossctlError) as info:
        merge([a, soft])
    assert str(info.value) == ("merge: cannot merge a weighted mean (class-index targets with --weight: divided by "
                               "the sum of the targets' weights) with an unweighted one (probability targets: divided "
                               "by N)")


def test_streamed_big_endian_float64_computes_in_float64(tmp_path):
    x, t = RNG.standard_normal((N, C)), RNG.integers(0, C, N)
    files = {"logits": save(tmp_path, "be", x.astype(">f8")), "target": save(tmp_path, "t", t)}
    r = streamed("ce", files)
    assert r.dtype == "float64"
    close(r.value, float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))), np.float64)


def test_a_table_starting_with_a_comment_streams(tmp_path):
    pytest.importorskip("pandas")
    x, t = RNG.standard_normal((N, C)), RNG.integers(0, C, N)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", fmt="%.17g", header="# logits of run 7", comments="")
    r = streamed("ce", {"logits": str(tmp_path / "x.csv"), "target": save(tmp_path, "t", t)})
    close(r.value, float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))), np.float64)


def test_streamed_input_lints_see_the_files_dtype_as_a_whole_read_does(tmp_path):
    """float16 probabilities passed as logits: the same warning streamed as read whole (chunks are no longer cast
    to the compute dtype before the lints judge them)."""
    p = torch.softmax(torch.from_numpy(RNG.standard_normal((N, C))), 1).numpy() * 1.005
    files = {"logits": save(tmp_path, "p16", p.astype(np.float16)),
             "target": save(tmp_path, "t", RNG.integers(0, C, N))}
    whole = lossctl.compute("ce", stream=False, **files).warnings
    assert any("probabilities" in w for w in whole), whole
    assert streamed("ce", files).warnings == whole


@pytest.mark.parametrize("case", ["early", "late"])
def test_streamed_csv_that_is_not_utf8_is_the_whole_reads_error(tmp_path, case):
    pytest.importorskip("pandas")
    np.savetxt(tmp_path / "x.csv", RNG.standard_normal((N, C)), delimiter=",")
    data = (tmp_path / "x.csv").read_bytes()
    bad = b"# caf\xe9\n" + data if case == "early" else data[:-40] + b"\xe9" + data[-39:]
    (tmp_path / "x.csv").write_bytes(bad)
    files = {"logits": str(tmp_path / "x.csv"), "target": save(tmp_path, "t", RNG.integers(0, C, N))}
    errors = streamed_and_whole_errors("ce", files)
    assert errors[0] == errors[1] and "not UTF-8 text (bad byte at offset" in errors[0]


def test_streamed_csv_integer_past_int64_is_named(tmp_path):
    pytest.importorskip("pandas")
    (tmp_path / "t.csv").write_text("1\n" * (N - 1) + "99999999999999999999999\n")
    files = {"logits": save(tmp_path, "x", logits()), "target": str(tmp_path / "t.csv")}
    errors = streamed_and_whole_errors("ce", files)
    assert errors[0] == errors[1]
    assert errors[0].endswith(f"row {N}, column 1: '99999999999999999999999' does not fit in int64")


@pytest.mark.parametrize("loss, x_shape, t_shape, t_int", [("mse", (N, C), (N, C + 1), False),
                                                           ("ce", (N, C, 4), (N, 3), True),
                                                           ("kl", (N, C), (N, C + 1), False)])
def test_a_shape_mismatch_beyond_the_rows_is_named_by_the_whole_arrays(tmp_path, loss, x_shape, t_shape, t_int):
    first = "input" if loss == "mse" else "logits"
    t = RNG.integers(0, C, t_shape) if t_int else RNG.random(t_shape)
    files = {first: save(tmp_path, "x", RNG.standard_normal(x_shape)), "target": save(tmp_path, "t", t)}
    errors = streamed_and_whole_errors(loss, files)
    assert errors[0] == errors[1] and f"shape ({N}," in errors[0], errors


def test_classes_last_logits_still_stream_beside_their_targets(tmp_path):
    x, t = RNG.standard_normal((N, 3, C)), RNG.integers(0, C, (N, 3))
    r = streamed("ce", {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "t", t)}, class_axis=-1)
    want = F.cross_entropy(torch.from_numpy(x).movedim(-1, 1), torch.from_numpy(t))
    close(r.value, float(want), np.float64)


def test_a_forced_stream_that_cannot_stream_says_so(tmp_path):
    x, y = logits(), RNG.integers(0, 2, (N, C)).astype(np.float32)
    files = {"input": save(tmp_path, "x", x), "target": save(tmp_path, "y", y)}
    r = lossctl.compute("multilabel-soft-margin", stream=True, **files)
    assert "--stream: read whole instead, as multilabel-soft-margin does not stream" in r.notes
    close(r.value, float(F.multilabel_soft_margin_loss(torch.from_numpy(x), torch.from_numpy(y))), np.float32)


def test_reduction_none_streams_in_memory_bounded_by_the_values(tmp_path):
    """reduction none keeps one value per sample, not the input: the chunks' values are joined in file order."""
    x, t = logits(np.float32, (N, C, 3)), RNG.integers(0, C, (N, 3))
    t[::5, 1] = -100
    files = {"logits": save(tmp_path, "x", x), "target": save(tmp_path, "t", t)}
    r = streamed("ce", files, reduction="none", threads=2)
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), reduction="none").numpy()
    assert r.values.shape == want.shape
    close(r.values, want, np.float32)
    close(r.kept, want[t != -100], np.float32)  # the summary's values: the targets not ignored
    a, b = logits(np.float32, (N, 3)), logits(np.float32, (N, 3))
    files = {"input": save(tmp_path, "a", a), "target": save(tmp_path, "b", b)}
    r = streamed("mse", files, reduction="none")
    close(r.values, F.mse_loss(torch.from_numpy(a), torch.from_numpy(b), reduction="none").numpy(), np.float32)
    q = torch.softmax(torch.from_numpy(logits()), 1)
    files = {"logits": save(tmp_path, "x2", x[:, :, 0].copy()), "target": save(tmp_path, "q", q.numpy())}
    want = F.kl_div(torch.log_softmax(torch.from_numpy(x[:, :, 0].copy()), 1), q, reduction="none").numpy()
    close(streamed("kl", files, reduction="none").values, want, np.float32)


def test_a_whole_array_warning_survives_a_short_last_chunk(tmp_path, monkeypatch):
    """'every value in [0, 1]' needs 16 values to conclude; a last chunk of 5 holds too few to refute it."""
    monkeypatch.setattr(stream, "CHUNK_BYTES", 1000)  # 125 float64 values a chunk: 5005 leaves 5
    p, y = RNG.random(5005), (RNG.random(5005) < 0.5) * 1.0
    files = {"logits": save(tmp_path, "p", p), "target": save(tmp_path, "y", y)}
    whole = lossctl.compute("bce", stream=False, **files).warnings
    assert any("sigmoid outputs" in w for w in whole)
    assert streamed("bce", files).warnings == whole
    assert lossctl.compute("bce", logits=[0.5, 0.2], target=[1.0, 0.0]).warnings == []  # too few to say


def test_an_empty_file_streamed_is_the_whole_reads_error(tmp_path):
    files = {"logits": save(tmp_path, "x", np.zeros((0, C), np.float32)),
             "target": save(tmp_path, "t", np.zeros(0, np.int64))}
    errors = streamed_and_whole_errors("ce", files)
    assert errors[0] == errors[1] == f"--logits ({files['logits']}): is empty (shape (0, {C})): there is nothing to " \
                                     "compute"


def test_a_list_column_of_one_value_streams_beside_wider_ones(tmp_path, monkeypatch):
    """BCE's per-row weight as a Parquet list column of width 1 (shape (N, 1)) broadcasts along the classes."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 1000)
    x, y, w = RNG.standard_normal((300, C)), (RNG.random((300, C)) < 0.5) * 1.0, RNG.random((300, 1))
    pq.write_table(pa.table({"x": pa.array(list(x)), "y": pa.array(list(y)), "w": pa.array(list(w))}),
                   tmp_path / "t.parquet", row_group_size=50)
    f = str(tmp_path / "t.parquet")
    r = streamed("bce", {"logits": f"{f}:x", "target": f"{f}:y", "weight": f"{f}:w"})
    want = F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w))
    close(r.value, float(want), np.float64)


@pytest.mark.parametrize("at", [0, 9_000])
@pytest.mark.parametrize("stream_it", [True, False])
def test_big_csv_integer_past_int64_is_refused_streamed_and_whole(tmp_path, monkeypatch, at, stream_it):
    """pandas reads 2**64 - 1 as uint64, or as float64 where its internal chunks of a column disagree (int64 above
    it, uint64 from it: 100 columns make those chunks 8,192 rows): refused as a small file's integer past int64 is."""
    pytest.importorskip("pandas")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 8 << 20)
    t = RNG.integers(0, 3, (12_000, 100))
    buf = __import__("io").StringIO()
    np.savetxt(buf, t, fmt="%d", delimiter=",")
    lines = buf.getvalue().splitlines()
    lines[at] = "18446744073709551615" + lines[at][1:]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "x.npy", np.zeros(t.shape))
    with pytest.raises(LossctlError) as err:
        lossctl.compute("l1", input=str(tmp_path / "x.npy"), target=str(tmp_path / "t.csv"), stream=stream_it)
    assert str(err.value).endswith(f"row {at + 1}, column 1: '18446744073709551615' does not fit in int64")


@pytest.mark.parametrize("big", ["1e19", "18446744073709551615"])
@pytest.mark.parametrize("stream_it", [True, False])
def test_big_csv_floats_past_int64_are_numbers(tmp_path, monkeypatch, big, stream_it):
    """A float table may hold a value past int64, even one written as an integer: a number, as a small file's."""
    pytest.importorskip("pandas")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 8 << 20)
    x = RNG.standard_normal((2_500, 100))
    buf = __import__("io").StringIO()
    np.savetxt(buf, x, fmt="%.3f", delimiter=",")
    lines = buf.getvalue().splitlines()
    assert len(buf.getvalue()) > (1 << 20)  # read by pandas when read whole
    lines[2_000] = big + lines[2_000][lines[2_000].index(","):]
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    want = np.loadtxt(tmp_path / "x.csv", delimiter=",")
    np.save(tmp_path / "t.npy", np.zeros(x.shape))
    r = lossctl.compute("l1", input=str(tmp_path / "x.csv"), target=str(tmp_path / "t.npy"), stream=stream_it)
    assert stream_it == any("streamed" in n for n in r.notes)
    close(r.value, float(F.l1_loss(torch.from_numpy(want), torch.zeros(x.shape))), np.float64)


def test_the_streamed_note_counts_one_chunk_and_one_thread_in_the_singular(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK_BYTES", 1 << 20)  # the whole file in one chunk
    files = {"logits": save(tmp_path, "x", logits()), "target": save(tmp_path, "t", RNG.integers(0, C, N))}
    one = [n for n in lossctl.compute("ce", stream=True, threads=1, **files).notes if n.startswith("streamed")]
    assert one and one[0].startswith("streamed in 1 chunk of up to ") and " rows on 1 thread; sums " in one[0]
    monkeypatch.setattr(stream, "CHUNK_BYTES", 80)
    many = [n for n in lossctl.compute("ce", stream=True, threads=2, **files).notes if n.startswith("streamed")]
    assert many[0].startswith("streamed in 10 chunks of up to 4 rows on 2 threads; sums ")


def test_safetensors_tensors_stream_by_rows_as_npy_does(tmp_path):
    """A local .safetensors was read whole (mapped, then copied: 834 MB of RSS for a 435 MB file that streams at 61
    MB as .npy); its float32/float64/int64 tensors now stream by rows, given as FILE:KEY or as a --from bundle."""
    st_numpy = pytest.importorskip("safetensors.numpy")
    x, t = logits(), RNG.integers(0, C, N)
    t[3] = -100
    path = tmp_path / "b.safetensors"
    st_numpy.save_file({"logits": x, "target": t, "weight": RNG.uniform(0.5, 2, C).astype(np.float32)}, str(path))
    w = torch.from_numpy(st_numpy.load_file(str(path))["weight"])
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), weight=w)
    for got in (streamed("ce", {"logits": f"{path}:logits", "target": f"{path}:target"}, weight=f"{path}:weight"),
                streamed("ce", {}, bundle=str(path), threads=2)):
        close(got.value, float(want), np.float32)
        assert got.shapes == {"logits": [N, C], "target": [N], "weight": [C]} and got.dtype == "float32"
    h = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), weight=w, reduction="none").numpy()
    close(streamed("ce", {}, bundle=str(path), reduction="none").values, h, np.float32)
    st_numpy.save_file({"logits": x.astype(np.float16), "target": t}, str(path))  # widened to float32: read whole
    r = lossctl.compute("ce", bundle=str(path), stream=True)
    assert not any(n.startswith("streamed in") for n in r.notes) and r.dtype == "float32"
    close(r.value, float(F.cross_entropy(torch.from_numpy(x.astype(np.float16)).float(), torch.from_numpy(t))),
          np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_js_and_focal_stream_and_equal_their_formulas(tmp_path, reduction):
    """js and focal read every file whole (2.0 GB of RSS for focal on two 410 MB float32 files, 2.3 GB for js);
    they now stream, js by rows, focal by elements (its sigmoid form) or by rows beside class indices."""
    p, q = (torch.softmax(torch.from_numpy(logits()), 1) for _ in range(2))
    m = (p + q) / 2
    js = 0.5 * (torch.xlogy(p, p / m) + torch.xlogy(q, q / m)).sum(-1)  # JS(p, q) written out, per row
    got = streamed("js", {"p": save(tmp_path, "p", p.numpy()), "q": save(tmp_path, "q", q.numpy())},
                   reduction=reduction, threads=2)
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]
    close(got.values if reduction == "none" else got.value, reduce(js).numpy(), np.float32)
    x, y = torch.from_numpy(logits()), (torch.rand(N, C) < 0.3).float()
    pt = torch.sigmoid(x) * y + (1 - torch.sigmoid(x)) * (1 - y)  # torchvision's sigmoid_focal_loss written out
    sigmoid = (0.25 * y + 0.75 * (1 - y)) * F.binary_cross_entropy_with_logits(x, y, reduction="none") * (1 - pt) ** 2
    got = streamed("focal", {"logits": save(tmp_path, "x", x.numpy()), "target": save(tmp_path, "y", y.numpy())},
                   reduction=reduction)
    close(got.values if reduction == "none" else got.value, reduce(sigmoid).numpy(), np.float32)
    assert got.constants.get("form") == lossctl.compute("focal", logits=x.numpy(), target=y.numpy()).constants["form"]
    t = torch.from_numpy(RNG.integers(0, C, N))
    t[::7] = -100
    logp = torch.log_softmax(x, 1)  # the multi-class form: alpha (1 - p_t)^gamma CE, ignored targets left out
    values = 0.25 * F.nll_loss((1 - logp.exp()) ** 2 * logp, t, reduction="none")
    want = values.sum() / (t != -100).sum() if reduction == "mean" else reduce(values)
    got = streamed("focal", {"logits": save(tmp_path, "x", x.numpy()), "target": save(tmp_path, "t", t.numpy())},
                   reduction=reduction)
    close(got.values if reduction == "none" else got.value, want.numpy(), np.float32)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cosine_and_pairwise_distance_stream_and_equal_torch(tmp_path, reduction):
    """cosine-embedding, cosine-similarity and pairwise-distance read every file whole (1.4 GB of RSS for
    cosine-embedding on two 410 MB files, 1.7 GB for cosine-similarity); they now stream by rows."""
    a, b = torch.from_numpy(logits()), torch.from_numpy(logits())
    y = torch.from_numpy(np.where(RNG.random(N) < 0.5, 1, -1))
    files = {"x1": save(tmp_path, "a", a.numpy()), "x2": save(tmp_path, "b", b.numpy())}
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]

    def value(r):
        return r.values if reduction == "none" else r.value

    got = streamed("cosine-embedding", {**files, "target": save(tmp_path, "y", y.numpy())}, reduction=reduction,
                   margin=0.2)
    close(value(got), F.cosine_embedding_loss(a, b, y, margin=0.2, reduction=reduction).numpy(), np.float32)
    got = streamed("cosine-similarity", files, reduction=reduction)
    close(value(got), reduce(F.cosine_similarity(a, b, dim=1)).numpy(), np.float32)
    got = streamed("pairwise-distance", files, reduction=reduction, p=1.5, keepdim=True)
    close(value(got), reduce(F.pairwise_distance(a, b, p=1.5, keepdim=True)).numpy(), np.float32)
    whole = lossctl.compute("cosine-similarity", stream=True, reduction=reduction, dim=0, **files)  # along the rows
    assert "--stream: read whole instead, as these inputs do not stream" in " ".join(whole.notes)
    close(value(whole), reduce(F.cosine_similarity(a, b, dim=0)).numpy(), np.float32)


def test_keys_of_one_json_lines_file_stream_from_one_parse(tmp_path, monkeypatch):
    """--logits F.jsonl:logits --target F.jsonl:target parsed every line once per key (two readers of one file);
    the keys now share one reader: each line parsed once, each key's errors still naming its own option."""
    orjson = pytest.importorskip("orjson")
    from lossctl.io import jsonl

    x, t = logits(np.float64), RNG.integers(0, C, N)
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"logits": r.tolist(), "target": int(y)}) + "\n"
                            for r, y in zip(x, t, strict=True)))
    parsed = []
    monkeypatch.setattr(jsonl, "_FAST", lambda raw: parsed.append(raw) or orjson.loads(raw))
    files = {"logits": f"{path}:logits", "target": f"{path}:target"}
    got = streamed("ce", files, threads=2)
    close(got.value, float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))), np.float64)
    assert len(parsed) == N + 2  # once per line, not once per key (2 N + 2); the planner reads each key's first line
    lines = path.read_text().splitlines()
    lines[9] = json.dumps({"logits": x[9].tolist(), "target": "cat"})
    path.write_text("\n".join(lines) + "\n")
    errors = streamed_and_whole_errors("ce", files)
    assert errors[0] == errors[1] and errors[0].startswith(f"--target ({path}): line 10, key 'target'"), errors


@pytest.mark.parametrize("fault", ["overlap", "trailing"])
def test_a_safetensors_file_the_package_refuses_does_not_stream_a_number(tmp_path, fault):
    """Streaming read a .safetensors tensor at its header's offsets without the package's checks: two tensors on the
    same bytes, or bytes after the last tensor, gave a number streamed where the whole read refuses the file."""
    pytest.importorskip("safetensors.numpy")
    import struct

    x = RNG.standard_normal((10, 3)).astype(np.float32)
    second = [0, 120] if fault == "overlap" else [120, 240]
    data = x.tobytes() + (b"" if fault == "overlap" else x.tobytes() + b"junk")
    for keys in (("x", "t"), ("input", "target")):
        head = json.dumps({keys[0]: {"dtype": "F32", "shape": [10, 3], "data_offsets": [0, 120]},
                           keys[1]: {"dtype": "F32", "shape": [10, 3], "data_offsets": second}}).encode()
        path = tmp_path / f"{keys[0]}.safetensors"
        path.write_bytes(struct.pack("<Q", len(head)) + head + data)
        if keys[0] == "x":
            errors = streamed_and_whole_errors("mse", {"input": f"{path}:x", "target": f"{path}:t"})
            want = f"--input ({path}): not a readable .safetensors file ("
        else:
            errors = streamed_and_whole_errors("mse", {}, bundle=str(path))
            want = f"--from ({path}): not a readable .safetensors file ("
        # the package names one of the two overlapping tensors, which one varies from run to run
        assert all(e.startswith(want) for e in errors), errors


def test_a_file_with_a_zero_length_axis_is_named_empty_streamed_too(tmp_path, cli):
    """--stream on an .npy or .safetensors tensor of shape (N, 0) was a traceback (memoryview: cannot cast view with
    zeros in shape or strides, reading a row of 0 bytes); it holds no element, so it is read whole, which names it
    empty, as --no-stream does."""
    a = save(tmp_path, "a", np.zeros((5, 0), np.float32))
    files = [("--input", a, "--target", a, f"--input ({a}): is empty (shape (5, 0))")]
    st_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "z.safetensors"
    st_numpy.save_file({"input": np.zeros((5, 0), np.float32), "target": np.zeros((5, 0), np.float32)}, str(path))
    files.append(("--from", str(path), f"--input ({path}:input): is empty (shape (5, 0))"))
    for *args, said in files:
        for stream_it in ("--stream", "--no-stream"):
            ran = cli("mse", *args, stream_it, code=2)
            assert ran.stderr == f"lossctl: error: {said}: there is nothing to compute\n"
