"""Hostile input, table-driven: every bad file, value and option ends in exit 2 and one clear line on stderr.

The corpus is generated here (no committed binaries). Each case gives the command line, optional stdin bytes,
and the fragments the first stderr line must hold: the option, the file and what is wrong.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from lossctl.errors import LossctlError
from lossctl.io import load_array
from lossctl.io.npy import MAGIC


def npy_bytes(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy file with a hand-written header, padded as numpy pads it."""
    raw = header.encode("latin1")
    lenfmt = "<H" if version == (1, 0) else "<I"
    pre = len(MAGIC) + 2 + struct.calcsize(lenfmt)
    raw += b" " * ((-(pre + len(raw) + 1)) % 64) + b"\n"
    return MAGIC + bytes(version) + struct.pack(lenfmt, len(raw)) + raw + data


def save_npy(arr: np.ndarray, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def save_npz(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_pt(obj) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Thing:
    """A plain object: weights_only=True refuses to build it."""


def _pt_objects():
    import torch

    return {
        "pt_list": [1, 2, 3],
        "pt_object": {"logits": Thing()},
        "pt_mixed": {"logits": torch.zeros(2, 3), "meta": "a note"},
    }


LOGITS = "[[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]"
TARGET = "[0, 1]"


def ce(logits: str = LOGITS, target: str = TARGET, *extra: str) -> list[str]:
    return ["ce", "--logits", logits, "--target", target, *extra]


# Files the cases refer to by name; written into tmp_path by the `files` fixture.
def corpus_files() -> dict[str, bytes]:
    good = save_npy(np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]]))
    nan = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, np.nan]])
    pinf = np.array([[2.0, 1.0, 0.1], [0.5, np.inf, 0.3]])
    files = {
        "good.npy": good,
        "truncated.npy": good[:-5],
        "huge_shape.npy": npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000), }",
                                    b"\0" * 64),
        "bad_magic.npy": b"\x93NUMPZ\x01\x00" + b"x" * 100,
        "malformed.npy": npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3) "),
        "bad_header_dict.npy": npy_bytes("{'descr': '<f8', 'shape': (2, 3), }"),
        "huge_header.npy": MAGIC + bytes((2, 0)) + struct.pack("<I", 0xFFFFFFF0) + b"{" * 100,
        "object.npy": save_npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True),
        "strings.npy": save_npy(np.array(["a", "b"])),
        "empty.npy": b"",
        "two.npz": save_npz(logits=np.zeros((2, 3)), target=np.array([0, 1])),
        "one.npz": save_npz(logits=np.zeros((2, 3))),
        "not_zip.npz": b"PK\x03\x04" + b"\0" * 40,
        "random.pt": bytes(range(256)) * 2,
        "empty.json": b"",
        "blank.csv": b"\n\n  \n",
        "ragged.json": b"[[1.0, 2.0], [3.0]]",
        "ragged_deep.json": b"[[[1.0], [2.0]], [[3.0], 4.0]]",
        "ragged.csv": b"1.0,2.0,3.0\n4.0,5.0\n",
        "cell.csv": b"a,b,c\n1.0,2.0,3.0\n4.0,oops,6.0\n",
        "cell.json": b'[[1.0, "2"], [3.0, 4.0]]',
        "bool.json": b"[[1.0, true]]",
        "latin1.csv": "1.0,2.0\n3.0,\xe94.0\n".encode("latin1"),
        "latin1.json": b"[1.0, 2.0]\xff",
        "deep.json": b"[" * 200_000 + b"]" * 200_000,
        "deep40.json": b"[" * 40 + b"1.0" + b"]" * 40,
        "overflow.json": b"[[1.0, 1e999, 0.5]]",
        "overflow.csv": b"1.0,2.0\n3.0,1e999\n",
        "bigint.json": b"[123456789012345678901234567890]",
        "bigint.csv": b"123456789012345678901234567890\n",
        "data.xyz": b"1 2 3\n",
        "noext": b"1,2,3\n",
        "nan.npy": save_npy(nan),
        "pinf.npy": save_npy(pinf),
        "neginf.npy": save_npy(np.array([[2.0, -np.inf, 0.1], [-np.inf, 2.5, 0.3]])),
        "nan_target.npy": save_npy(np.array([[0.2, 0.8, np.nan]])),
        "bundle_no_target.npz": save_npz(logits=np.zeros((2, 3))),
        "bundle_no_target.json": json.dumps({"logits": [[1.0, 2.0]]}).encode(),
        "bundle_list.json": b"[[1.0, 2.0]]",
    }
    for name, obj in _pt_objects().items():
        files[name + ".pt"] = save_pt(obj)
    return files


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for name, data in corpus_files().items():
        (root / name).write_bytes(data)
    (root / "adir.npy").mkdir()
    return root


# (id, argv with {d} for the corpus folder, stdin bytes or None, fragments of the first stderr line)
CASES = [
    # --- binary files
    ("npy-truncated", ce("{d}/truncated.npy"), None, ["--logits", "truncated.npy", "truncated"]),
    ("npy-huge-shape", ce("{d}/huge_shape.npy"), None,
     ["--logits", "huge_shape.npy", "truncated", "(1000000000, 1000000)"]),
    ("npy-bad-magic", ce("{d}/bad_magic.npy"), None, ["--logits", "bad_magic.npy", "not an .npy file"]),
    ("npy-malformed-header", ce("{d}/malformed.npy"), None, ["--logits", "malformed.npy", "malformed .npy header"]),
    ("npy-header-missing-key", ce("{d}/bad_header_dict.npy"), None, ["--logits", "bad_header_dict.npy", "header"]),
    ("npy-huge-header", ce("{d}/huge_header.npy"), None, ["--logits", "huge_header.npy", "header"]),
    ("npy-object-dtype", ce("{d}/object.npy"), None, ["--logits", "object.npy", "pickle", "never unpickles"]),
    ("npy-strings", ce("{d}/strings.npy"), None, ["--logits", "strings.npy", "dtype"]),
    ("npy-empty-file", ce("{d}/empty.npy"), None, ["--logits", "empty.npy", "empty"]),
    ("npz-missing-key", ce("{d}/two.npz:scores"), None, ["--logits", "two.npz", "'scores'", "logits, target"]),
    ("npz-several-no-key", ce("{d}/two.npz"), None, ["--logits", "two.npz", "several arrays", "FILE.npz:KEY"]),
    ("npz-not-zip", ce("{d}/not_zip.npz"), None, ["--logits", "not_zip.npz", ".npz"]),
    ("pt-list", ce("{d}/pt_list.pt"), None, ["--logits", "pt_list.pt", "list", "not a tensor"]),
    ("pt-object", ce("{d}/pt_object.pt"), None,
     ["--logits", "pt_object.pt", "weights_only", "refused", "test_hostile.Thing"]),
    ("pt-mixed-key", ce("{d}/pt_mixed.pt:meta"), None, ["--logits", "pt_mixed.pt:meta", "holds a str"]),
    ("pt-random-bytes", ce("{d}/random.pt"), None, ["--logits", "random.pt", "not a"]),
    ("stdin-random-bytes", ce("-"), bytes(range(128, 256)) * 3, ["--logits", "<stdin>", "UTF-8"]),
    ("stdin-empty", ce("-"), b"", ["--logits", "<stdin>", "empty"]),
    ("stdin-truncated-npy", ce("-"), save_npy(np.zeros((4, 3)))[:-8], ["--logits", "<stdin>", "truncated"]),
    ("stdin-binary-garbage", ce("-"), b"\x00\x01\x02garbage\x00", ["--logits", "<stdin>", "binary"]),
    # --- text files
    ("json-empty", ce("{d}/empty.json"), None, ["--logits", "empty.json", "empty"]),
    ("csv-blank", ce("{d}/blank.csv"), None, ["--logits", "blank.csv", "empty"]),
    ("json-ragged", ce("{d}/ragged.json"), None, ["--logits", "ragged.json", "ragged", "[1]", "expected 2"]),
    ("json-ragged-deep", ce("{d}/ragged_deep.json"), None, ["--logits", "ragged_deep.json", "ragged", "[1, 1]"]),
    ("csv-ragged", ce("{d}/ragged.csv"), None, ["--logits", "ragged.csv", "ragged", "row 2", "expected 3"]),
    ("csv-cell", ce("{d}/cell.csv"), None, ["--logits", "cell.csv", "row 3, column 2", "'oops'"]),
    ("json-cell", ce("{d}/cell.json"), None, ["--logits", "cell.json", "non-numeric", "[0, 1]"]),
    ("json-bool", ce("{d}/bool.json"), None, ["--logits", "bool.json", "non-numeric", "true", "[0, 1]"]),
    ("csv-not-utf8", ce("{d}/latin1.csv"), None, ["--logits", "latin1.csv", "UTF-8", "offset 12"]),
    ("json-not-utf8", ce("{d}/latin1.json"), None, ["--logits", "latin1.json", "UTF-8"]),
    ("json-deep", ce("{d}/deep.json"), None, ["--logits", "deep.json", "nested"]),
    ("json-deep40", ce("{d}/deep40.json"), None, ["--logits", "deep40.json", "nested deeper"]),
    ("json-1e999", ce("{d}/overflow.json"), None, ["--logits", "overflow.json", "[0, 1]", "inf"]),
    ("csv-1e999", ce("{d}/overflow.csv"), None, ["--logits", "overflow.csv", "row 2, column 2", "overflows"]),
    ("literal-1e999", ce("[[1.0, 1e999]]"), None, ["--logits", "literal", "[0, 1]", "inf"]),
    ("json-bigint", ce("[[1.0, 2.0]]", "{d}/bigint.json"), None, ["--target", "bigint.json", "int64"]),
    ("csv-bigint", ce("[[1.0, 2.0]]", "{d}/bigint.csv"), None, ["--target", "bigint.csv", "row 1", "int64"]),
    ("literal-bad-json", ce("[[1.0, 2.0]"), None, ["--logits", "literal", "invalid JSON"]),
    # --- paths
    ("missing-file", ce("{d}/nope.npy"), None, ["--logits", "nope.npy", "no such file"]),
    ("directory", ce("{d}/adir.npy"), None, ["--logits", "adir.npy", "directory"]),
    ("unknown-ext", ce("{d}/data.xyz"), None, ["--logits", "data.xyz", "unknown format .xyz", ".npy", ".csv"]),
    ("no-ext", ce("{d}/noext"), None, ["--logits", "noext", "unknown format", ".json"]),
    ("two-stdin", ce("-", "-"), b"[1.0]", ["standard input", "--logits", "--target"]),
    ("from-and-option-stdin", ["ce", "--from", "-", "--target", "-"], b"{}", ["standard input", "--from"]),
    ("from-missing-role-npz", ["ce", "--from", "{d}/bundle_no_target.npz"], None,
     ["--target", "bundle_no_target.npz", "no key target"]),
    ("from-missing-role-json", ["ce", "--from", "{d}/bundle_no_target.json"], None,
     ["--target", "bundle_no_target.json"]),
    ("from-not-object", ["ce", "--from", "{d}/bundle_list.json"], None, ["--from", "bundle_list.json", "object"]),
    ("from-unknown-ext", ["ce", "--from", "{d}/data.xyz"], None, ["--from", "data.xyz", ".npz"]),
    # --- values
    ("nan-logits", ce("{d}/nan.npy"), None, ["--logits", "nan.npy", "nan", "[1, 2]"]),
    ("pinf-logits", ce("{d}/pinf.npy"), None, ["--logits", "pinf.npy", "inf", "[1, 1]"]),
    ("nan-target-prob", ce("[[1.0, 2.0, 3.0]]", "{d}/nan_target.npy"), None,
     ["--target", "nan_target.npy", "nan", "[0, 2]"]),
    ("nan-weight", ce(LOGITS, TARGET, "--weight", "{d}/nan_target.npy"), None, ["--weight", "nan"]),
    ("nan-bce", ["bce", "--logits", "{d}/nan.npy", "--target", "{d}/nan.npy"], None, ["--logits", "nan", "[1, 2]"]),
    ("class-negative", ce(LOGITS, "[0, -3]"), None, ["--target", "literal", "-3", "[1]", "out of range"]),
    ("class-out-of-range", ce(LOGITS, "[0, 3]"), None, ["--target", "literal", "class index 3", "[1]", "[0, 3)"]),
    ("class-non-integer", ce(LOGITS, "[0, 1.5]"), None, ["--target", "integers", "1.5", "[1]"]),
    ("class-non-integer-index", ce(LOGITS, "[0.5, 1]", "--target-kind", "index"), None,
     ["--target", "integers", "0.5", "[0]"]),
    ("nll-class-non-integer", ["nll", "--log-probs", LOGITS, "--target", "[0, 0.25]"], None,
     ["--target", "integers", "0.25"]),
    ("nll-class-out-of-range", ["nll", "--log-probs", LOGITS, "--target", "[7, 0]"], None,
     ["--target", "class index 7", "[0]"]),
    ("all-ignored-mean", ce(LOGITS, "[-100, -100]"), None, ["--target", "all 2 targets", "--ignore-index", "nan"]),
    ("weight-wrong-length", ce(LOGITS, TARGET, "--weight", "[1.0, 2.0]"), None,
     ["--weight", "(3,)", "(2,)"]),
    ("pos-weight-wrong-length", ["bce", "--logits", LOGITS, "--target", "[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]",
                                 "--pos-weight", "[1.0, 2.0]"], None, ["--pos-weight", "(2,)", "(3,)"]),
    ("zero-rows", ce("[]", "[]"), None, ["--logits", "empty"]),
    ("zero-rows-npy", ["ce", "--logits", "{d}/zero.npy", "--target", "[]"], None, ["--logits", "empty"]),
    ("bce-probs-out", ["bce", "--probs", "[0.5, 1.5]", "--target", "[1.0, 0.0]"], None,
     ["--probs", "literal", "[0, 1]", "1.5", "[1]"]),
    ("bce-target-out", ["bce", "--logits", "[0.5, 1.5]", "--target", "[1.0, -0.5]"], None,
     ["--target", "[0, 1]", "-0.5", "[1]"]),
    ("cosine-target", ["cosine", "--x1", "[[1.0, 0.0], [0.0, 1.0]]", "--x2", "[[1.0, 0.0], [1.0, 1.0]]",
                       "--target", "[1, 0]"], None, ["--target", "1 or -1", "[1]"]),
    ("ce-negative-prob", ce("[[1.0, 2.0]]", "[[1.2, -0.2]]"), None, ["--target", ">= 0", "-0.2", "[0, 1]"]),
    ("kl-negative-prob", ["kl", "--probs", "[[0.5, 0.5]]", "--target", "[[1.5, -0.5]]", "--reduction", "batchmean"],
     None, ["--target", ">= 0", "-0.5"]),
    ("kl-negative-model-prob", ["kl", "--probs", "[[-0.5, 1.5]]", "--target", "[[0.5, 0.5]]"], None,
     ["--probs", ">= 0", "-0.5"]),
    ("entropy-negative-prob", ["entropy", "--probs", "[[0.5, -0.5, 1.0]]"], None, ["--probs", ">= 0", "[0, 1]"]),
    ("label-smoothing-high", ce(LOGITS, TARGET, "--label-smoothing", "1.5"), None, ["--label-smoothing", "[0, 1]"]),
    ("label-smoothing-negative", ce(LOGITS, TARGET, "--label-smoothing", "-0.1"), None,
     ["--label-smoothing", "[0, 1]"]),
    ("unknown-reduction", ce(LOGITS, TARGET, "--reduction", "average"), None,
     ["--reduction", "mean, sum, none", "'average'"]),
    ("kl-reduction-unknown", ["kl", "--logits", "[[1.0, 2.0]]", "--target", "[[0.5, 0.5]]", "--reduction", "avg"],
     None, ["--reduction", "batchmean"]),
    ("unknown-target-kind", ce(LOGITS, TARGET, "--target-kind", "onehot"), None,
     ["--target-kind", "auto, index, prob, logits", "'onehot'"]),
    ("kl-unknown-target-kind", ["kl", "--logits", "[[1.0, 2.0]]", "--target", "[[0.5, 0.5]]",
                                "--target-kind", "index"], None, ["--target-kind", "log-prob"]),
    ("unknown-dtype", ce(LOGITS, TARGET, "--dtype", "float16"), None, ["--dtype", "float64"]),
    ("unknown-base", ce(LOGITS, TARGET, "--base", "3"), None, ["--base"]),
    ("shape-mismatch", ce(LOGITS, "[0, 1, 2]"), None, ["--target", "(3,)", "(2, 3)"]),
    ("two-inputs", ["nll", "--log-probs", LOGITS, "--logits", LOGITS, "--target", TARGET], None,
     ["only one of", "--log-probs"]),
    ("decompose-nan", ["decompose", "--logits", "{d}/nan.npy", "--target", TARGET], None, ["--logits", "nan"]),
    ("check-bad-class", ["check", "--logits", LOGITS, "--target", "[0, 9]"], None, ["--target", "9"]),
]


def _argv(args: list[str], root: Path) -> list[str]:
    return [a.replace("{d}", str(root)) for a in args]


def assert_clean_exit2(result, fragments: list[str]) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    err = result.stderr
    assert "Traceback" not in err
    assert result.stdout == ""
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3, err
    first = lines[0]
    assert first.startswith("lossctl: error: "), first
    for frag in fragments:
        assert frag in first, f"{frag!r} not in {first!r}"
    return first


@pytest.mark.parametrize("args, stdin, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_exits_2_with_one_clear_line(files, args, stdin, fragments):
    if "{d}/zero.npy" in args:
        np.save(files / "zero.npy", np.zeros((0, 3)))
    start = time.perf_counter()
    result = run_cli(*_argv(args, files), input=stdin, code=None)
    assert_clean_exit2(result, fragments)
    assert time.perf_counter() - start < 10


def test_unknown_format_lists_every_supported_format(files):
    result = run_cli(*ce(str(files / "data.xyz")), code=None)
    for ext in (".npy", ".npz", ".json", ".csv", ".tsv", ".pt", "'-'"):
        assert ext in result.stderr


def test_huge_header_shape_is_refused_before_allocating(files):
    tracemalloc.start()
    try:
        with pytest.raises(LossctlError, match="truncated"):
            load_array(str(files / "huge_shape.npy"), option="--logits")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_huge_header_length_is_refused_before_reading(tmp_path):
    # A header length of ~4 GiB in a file that really is big must not be read into memory.
    path = tmp_path / "big_header.npy"
    with open(path, "wb") as fp:
        fp.write(MAGIC + bytes((2, 0)) + struct.pack("<I", 0xFFFFFFF0))
        fp.truncate(64 * 2**20)  # sparse: 64 MiB of zeros that a naive reader would pull in
    tracemalloc.start()
    try:
        with pytest.raises(LossctlError, match="header"):
            load_array(str(path), option="--logits")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


@pytest.mark.parametrize("shape, why", [
    ("(0, 9223372036854775807)", "too big for an array"),
    ("(99999999999999999999, 0)", "too big for an array"),
    ("(4294967296, 4294967296, 0)", "too big for an array"),
    ("(" + "1, " * 70 + ")", "70 axes, NumPy's limit is 64"),
])
def test_npy_shape_numpy_cannot_make_is_one_line(tmp_path, shape, why):
    """A zero-size shape passes the bytes check (no data is due), but NumPy cannot make the array either."""
    path = tmp_path / "odd.npy"
    path.write_bytes(npy_bytes(f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}", b"\0" * 8))
    shown = shape if "1, 1" not in shape else "(1, 1, 1, 1, ... 70 axes)"
    ran = run_cli(*ce(str(path)), code=2)
    assert ran.stderr == f"lossctl: error: --logits ({path}): malformed .npy header: shape {shown} ({why})\n"
    assert ran.stdout == ""


def test_npy_header_with_an_expression_names_it_without_an_address(tmp_path):
    """NumPy's literal_eval refuses a shape written as an expression (2**62) with the node's repr, so the error read
    '<ast.BinOp object at 0x7fa60afed2d0>': an address that changes each run and says nothing to a user."""
    path = tmp_path / "expr.npy"
    path.write_bytes(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2**62, 3), }"))
    ran = run_cli(*ce(str(path)), code=2)
    assert ran.stderr == (f"lossctl: error: --logits ({path}): malformed .npy header (malformed node or string on "
                          "line 1: an expression (BinOp))\n")


@pytest.mark.parametrize("threads", ["1", "2"])
def test_streamed_npy_of_no_rows_allocates_no_chunk_of_its_rows(tmp_path, threads):
    """(0, 2**40) float64: no data, so no truncation; a chunk buffer of even one such row would be 8 TiB."""
    path = tmp_path / "wide.npy"
    path.write_bytes(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 1099511627776), }"))
    ran = run_cli("l1", "--input", str(path), "--target", str(path), "--stream", "--threads", threads, code=2)
    assert ran.stderr == (f"lossctl: error: --input ({path}): is empty (shape (0, 1099511627776)): "
                          "there is nothing to compute\n")


def test_neg_inf_logits_are_allowed_as_a_mask(files):
    result = run_cli(*ce(str(files / "neginf.npy"), TARGET, "--format", "plain"), code=None)
    assert result.exit_code == 0, result.stderr
    import torch

    arr = np.load(files / "neginf.npy")
    expected = torch.nn.CrossEntropyLoss()(torch.from_numpy(arr), torch.tensor([0, 1])).item()
    assert float(result.stdout) == pytest.approx(expected)


def test_pt_dict_with_metadata_still_reads_its_tensors(files):
    result = run_cli(*ce(f"{files}/pt_mixed.pt:logits", TARGET, "--format", "plain"), code=None)
    assert result.exit_code == 0, result.stderr
    assert float(result.stdout) == pytest.approx(np.log(3.0))


def test_pt_tensors_numpy_cannot_hold_are_one_line(tmp_path):
    """Sparse, meta and quantized tensors are refused by name; float8 widens to float32 exactly, as bfloat16 does;
    a raw pickle's refusal says what torch's weights-only loader objected to, without its UserWarning."""
    import pickle
    import warnings

    import torch
    import torch.nn.functional as F

    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantized tensors
        odd = {"sparse": (x.to_sparse(), "a sparse_coo tensor; make it dense (tensor.to_dense())"),
               "meta": (torch.zeros(4, 3, device="meta"), "a meta tensor: it has a shape but no values"),
               "quantized": (torch.quantize_per_tensor(x, 0.1, 0, torch.qint8),
                             "a qint8 tensor, which NumPy cannot hold (need integers, bool or floats)")}
    for name, (tensor, why) in odd.items():
        torch.save({"logits": tensor}, tmp_path / f"{name}.pt")
        ran = run_cli(*ce(f"{tmp_path}/{name}.pt:logits", TARGET), code=2)
        assert ran.stderr == f"lossctl: error: --logits ({tmp_path}/{name}.pt:logits): {why}\n"
    f8 = x.to(torch.float8_e4m3fn)
    torch.save({"logits": f8}, tmp_path / "f8.pt")
    got = run_cli(*ce(f"{tmp_path}/f8.pt:logits", "[0, 1, 2, 0]", "--format", "plain"))
    assert float(got.stdout) == pytest.approx(F.cross_entropy(f8.float(), torch.tensor([0, 1, 2, 0])).item(),
                                              rel=1e-6)
    (tmp_path / "raw.pt").write_bytes(pickle.dumps(print, protocol=4))
    ran = run_cli(*ce(f"{tmp_path}/raw.pt", TARGET), code=2)
    assert ran.stderr.count("\n") == 1 and "weights-only loader refused it" in ran.stderr, ran.stderr


# --- soft problems: a warning and exit 0; --strict makes them exit 2

SOFT = [
    ("ce-rows-not-sum", ce("[[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]", "[[0.2, 0.3, 0.5], [0.5, 0.5, 0.5]]"),
     ["--target", "sum to 1", "row [1]", "1.5"]),
    ("kl-mean", ["kl", "--logits", "[[1.0, 2.0]]", "--target", "[[0.5, 0.5]]"], ["batchmean"]),
    ("kl-rows-not-sum", ["kl", "--logits", "[[1.0, 2.0], [0.0, 0.0]]", "--target", "[[0.5, 0.5], [0.1, 0.3]]",
                         "--reduction", "batchmean"], ["--target", "sum to 1", "row [1]", "0.4"]),
    ("entropy-rows-not-sum", ["entropy", "--probs", "[[0.5, 0.5], [2.0, 2.0]]"], ["--probs", "row [1]", "4"]),
]


@pytest.mark.parametrize("args, fragments", [c[1:] for c in SOFT], ids=[c[0] for c in SOFT])
def test_soft_problem_warns_and_strict_refuses(args, fragments):
    soft = run_cli(*[*args, "--format", "plain"], code=None)
    assert soft.exit_code == 0, soft.stderr
    float(soft.stdout)  # the result is still printed
    warning = [ln for ln in soft.stderr.splitlines() if ln.startswith("lossctl: warning: ")]
    assert warning, soft.stderr
    assert any(all(f in ln for f in fragments) for ln in warning), warning
    strict = run_cli(*[*args, "--format", "plain", "--strict"], code=None)
    first = assert_clean_exit2(strict, [])
    assert "--strict" in first
    assert any(f in first for f in fragments)


def test_no_warning_means_strict_passes():
    result = run_cli(*[*ce(), "--strict", "--format", "plain"], code=None)
    assert result.exit_code == 0 and result.stderr == ""


# --- pipes and signals, in a real process

def _lossctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "lossctl", *args]


def test_closed_stdout_exits_quietly(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "logits.npy", rng.normal(size=(50_000, 4)))
    np.save(tmp_path / "target.npy", rng.integers(0, 4, 50_000))
    cmd = _lossctl("ce", "--logits", str(tmp_path / "logits.npy"), "--target", str(tmp_path / "target.npy"),
                   "--reduction", "none", "--format", "plain")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # like `| head -1`: read one line, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) in (0, 1)
    assert float(first) > 0
    assert b"Traceback" not in err and b"Error" not in err, err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [ce(LOGITS, TARGET, "-f", "plain"), ce(LOGITS, TARGET, "-f", "table"),
                                  ce(LOGITS, TARGET, "--partials"), ["--version"], ["--help"], ["ce", "--help"],
                                  ["--show-completion", "bash"]])
def test_a_full_disk_on_stdout_is_one_line(args):
    """A write to stdout that fails (ENOSPC) was a traceback, or Python's 'Exception ignored' and exit 120; Click's
    own writes (--help, completion) too."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as a user's shell runs it
    with open("/dev/full", "w") as full:
        proc = subprocess.run(_lossctl(*args), stdout=full, stderr=subprocess.PIPE, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode() == "lossctl: error: stdout: cannot write the output: No space left on device\n"


def test_sigint_exits_130_without_traceback():
    # --logits - waits on a stdin that never ends: the process is interrupted mid-read.
    proc = subprocess.Popen(_lossctl("ce", "--logits", "-", "--target", "[0]"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (proc.returncode, err)
    assert b"Traceback" not in err, err
    assert out == b""


# --- issue #12: .safetensors, Parquet / Arrow IPC / Feather and JSON Lines, each file hostile in its own way

def st_bytes(header, data: bytes = b"", length: int | None = None) -> bytes:
    """A .safetensors file with a hand-written header (a dict, or raw bytes) and an optional lying length."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def st_tensor(dtype: str, shape: list, offsets: list) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


def parquet_bytes(**columns) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()


def feather_bytes(**columns) -> bytes:
    import pyarrow as pa
    import pyarrow.feather as feather

    sink = pa.BufferOutputStream()
    feather.write_feather(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()


def format_files() -> dict[str, bytes]:
    from safetensors.numpy import save

    good_st = save({"logits": np.zeros((2, 3)), "target": np.array([0, 1])})
    good_pq = parquet_bytes(logits=[[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], target=[0, 1], name=["a", "b"])
    return {
        "good.safetensors": good_st,
        "st_truncated.safetensors": good_st[:-10],
        "st_garbage.safetensors": b"this is not a safetensors file at all\n" * 4,
        "st_garbage_json.safetensors": st_bytes(b"\xff\xfe{not json" + b" " * 20),
        "st_empty.safetensors": b"",
        "st_short.safetensors": b"\x01\x02\x03",
        "st_bomb.safetensors": st_bytes({}, length=2**60),
        "st_past_end.safetensors": st_bytes({}, length=4096),
        "st_list.safetensors": st_bytes([1, 2]),
        "st_huge_shape.safetensors": st_bytes({"logits": st_tensor("F64", [10**9, 10**6], [0, 8])}, b"\0" * 8),
        "st_offsets_past_end.safetensors": st_bytes({"logits": st_tensor("F64", [100], [0, 800])}, b"\0" * 16),
        "st_negative.safetensors": st_bytes({"logits": st_tensor("F64", [-2], [0, 16])}, b"\0" * 16),
        "st_no_offsets.safetensors": st_bytes({"logits": {"dtype": "F64", "shape": [2]}}, b"\0" * 16),
        "st_complex.safetensors": st_bytes({"logits": st_tensor("C64", [2], [0, 16])}, b"\0" * 16),
        "st_unknown_dtype.safetensors": st_bytes({"logits": st_tensor("ZZZ", [2], [0, 16])}, b"\0" * 16),
        "st_gap.safetensors": st_bytes({"a": st_tensor("F64", [1], [0, 8]), "b": st_tensor("F64", [1], [16, 24])},
                                       b"\0" * 24),
        "good.parquet": good_pq,
        "pq_garbage.parquet": b"PAR1 but not really a parquet file\n" * 4,
        "pq_empty.parquet": b"",
        "pq_truncated.parquet": good_pq[: len(good_pq) // 2],
        "pq_null.parquet": parquet_bytes(target=[0, None, 1]),
        "pq_ragged.parquet": parquet_bytes(logits=[[2.0, 1.0], [0.5, 2.5], [1.0]]),
        "pq_null_inside.parquet": parquet_bytes(logits=[[2.0, 1.0], [0.5, None]]),
        "pq_nested.parquet": parquet_bytes(logits=[[[1.0]], [[2.0]]]),
        "pq_only_strings.parquet": parquet_bytes(name=["a", "b"]),
        "fe_garbage.feather": b"ARROW1" + bytes(range(256)),
        "fe_truncated.feather": feather_bytes(logits=[[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])[:-40],
        "fe_strings.feather": feather_bytes(logits=["a", "b"]),
        "empty.jsonl": b"",
        "blank.jsonl": b"\n  \n",
        "jl_not_json.jsonl": b'{"logits": [2.0, 1.0]}\n{"logits": [0.5, 2.5]}\n{"logits": [1.0, \n',
        "jl_missing_key.jsonl": b'{"logits": [2.0, 1.0]}\n\n{"scores": [0.5, 2.5]}\n',
        "jl_string.jsonl": b'{"logits": [2.0, 1.0]}\n{"logits": [0.5, "2.5"]}\n',
        "jl_bool.jsonl": b'[2.0, 1.0]\n[0.5, true]\n',
        "jl_ragged.jsonl": b'{"logits": [2.0, 1.0]}\n{"logits": [0.5, 2.5]}\n{"logits": [1.0]}\n',
        "jl_scalar_then_list.jsonl": b'{"logits": 1.0}\n{"logits": [0.5, 2.5]}\n',
        "jl_nested.jsonl": b'[[2.0], [1.0]]\n[[0.5], [2.5]]\n',
        "jl_overflow.jsonl": b'[2.0, 1.0]\n[0.5, 1e999]\n',
        "jl_bigint.jsonl": b'0\n123456789012345678901234567890\n',
        "jl_not_utf8.jsonl": b'[2.0, 1.0]\n[0.5, 2.5]\xff\n',
        "jl_two_keys.jsonl": b'{"logits": [2.0, 1.0], "target": 0}\n',
        "jl_bare.jsonl": b'[2.0, 1.0]\n[0.5, 2.5]\n',
        "jl_array_line.jsonl": b'{"logits": [2.0, 1.0]}\n[0.5, 2.5]\n',
    }


@pytest.fixture(scope="module")
def format_corpus(tmp_path_factory) -> Path:
    pytest.importorskip("pyarrow")
    pytest.importorskip("safetensors")
    root = tmp_path_factory.mktemp("formats")
    for name, data in format_files().items():
        (root / name).write_bytes(data)
    return root


FORMAT_CASES = [
    # --- .safetensors
    ("st-truncated", ce("{d}/st_truncated.safetensors:logits"), ["--logits", "st_truncated", "truncated"]),
    ("st-garbage", ce("{d}/st_garbage.safetensors"), ["--logits", "st_garbage", "header", "claims"]),
    ("st-garbage-json", ce("{d}/st_garbage_json.safetensors"), ["--logits", "not JSON"]),
    ("st-empty", ce("{d}/st_empty.safetensors"), ["--logits", "st_empty", "empty"]),
    ("st-short", ce("{d}/st_short.safetensors"), ["--logits", "truncated"]),
    ("st-header-bomb", ce("{d}/st_bomb.safetensors"), ["--logits", str(2**60), "refused"]),
    ("st-header-past-end", ce("{d}/st_past_end.safetensors"), ["--logits", "truncated", "4096"]),
    ("st-header-not-object", ce("{d}/st_list.safetensors"), ["--logits", "not a JSON object"]),
    ("st-huge-shape", ce("{d}/st_huge_shape.safetensors"),
     ["--logits", "(1000000000, 1000000)", "8 bytes"]),
    ("st-offsets-past-end", ce("{d}/st_offsets_past_end.safetensors"), ["--logits", "truncated", "800"]),
    ("st-negative-shape", ce("{d}/st_negative.safetensors"), ["--logits", "shape [-2]"]),
    ("st-no-offsets", ce("{d}/st_no_offsets.safetensors"), ["--logits", "data_offsets"]),
    ("st-complex", ce("{d}/st_complex.safetensors"), ["--logits", "st_complex.safetensors:logits", "C64"]),
    ("st-unknown-dtype", ce("{d}/st_unknown_dtype.safetensors"), ["--logits", "not a readable", "ZZZ"]),
    ("st-gap", ce("{d}/st_gap.safetensors:a"), ["--logits", "not a readable", "offset"]),
    ("st-wrong-key", ce("{d}/good.safetensors:scores"), ["--logits", "'scores'", "logits, target"]),
    ("st-several-no-key", ce("{d}/good.safetensors"), ["--logits", "several tensors", "FILE.safetensors:KEY"]),
    ("st-from-bomb", ["ce", "--from", "{d}/st_bomb.safetensors"], ["--from", "st_bomb", "refused"]),
    # --- Parquet, Arrow IPC / Feather
    ("pq-not-parquet", ce("{d}/pq_garbage.parquet"), ["--logits", "pq_garbage.parquet", "not a readable Parquet"]),
    ("pq-empty", ce("{d}/pq_empty.parquet"), ["--logits", "pq_empty.parquet", "Parquet"]),
    ("pq-truncated", ce("{d}/pq_truncated.parquet"), ["--logits", "pq_truncated.parquet", "Parquet"]),
    ("pq-wrong-column", ce("{d}/good.parquet:scores"), ["--logits", "'scores'", "logits, name, target"]),
    ("pq-several-no-column", ce("{d}/good.parquet"), ["--logits", "several columns", "FILE.parquet:COLUMN"]),
    ("pq-string-column", ce("{d}/good.parquet:name"), ["--logits", "column 'name'", "string", "not numbers"]),
    ("pq-null", ce(LOGITS, "{d}/pq_null.parquet"), ["--target", "column 'target', row 1", "null"]),
    ("pq-ragged", ce("{d}/pq_ragged.parquet"), ["--logits", "column 'logits', row 2", "ragged"]),
    ("pq-null-inside-list", ce("{d}/pq_null_inside.parquet"), ["--logits", "row 1", "null"]),
    ("pq-nested", ce("{d}/pq_nested.parquet"), ["--logits", "list<", "not numbers"]),
    ("pq-from-only-strings", ["ce", "--from", "{d}/pq_only_strings.parquet"], ["--from", "no column of numbers"]),
    ("fe-garbage", ce("{d}/fe_garbage.feather"), ["--logits", "fe_garbage.feather", "not a readable Arrow"]),
    ("fe-truncated", ce("{d}/fe_truncated.feather"), ["--logits", "fe_truncated.feather", "not a readable"]),
    ("fe-strings", ce("{d}/fe_strings.feather"), ["--logits", "column 'logits'", "string"]),
    # --- JSON Lines
    ("jl-empty", ce("{d}/empty.jsonl"), ["--logits", "empty.jsonl", "empty"]),
    ("jl-blank", ce("{d}/blank.jsonl"), ["--logits", "blank.jsonl", "blank"]),
    ("jl-not-json", ce("{d}/jl_not_json.jsonl:logits"), ["--logits", "line 3", "not JSON"]),
    ("jl-missing-key", ce("{d}/jl_missing_key.jsonl:logits"), ["--logits", "line 3", "no key 'logits'", "scores"]),
    ("jl-wrong-key", ce("{d}/jl_two_keys.jsonl:scores"), ["--logits", "'scores'", "logits, target"]),
    ("jl-several-no-key", ce("{d}/jl_two_keys.jsonl"), ["--logits", "several keys", "FILE.jsonl:KEY"]),
    ("jl-string", ce("{d}/jl_string.jsonl:logits"), ["--logits", "line 2", '"2.5"', "not a number"]),
    ("jl-bool", ce("{d}/jl_bool.jsonl"), ["--logits", "line 2", "true", "not a number"]),
    ("jl-ragged", ce("{d}/jl_ragged.jsonl:logits"), ["--logits", "line 3", "a list of 1", "line 1", "ragged"]),
    ("jl-scalar-then-list", ce("{d}/jl_scalar_then_list.jsonl:logits"), ["--logits", "line 2", "not a number"]),
    ("jl-nested", ce("{d}/jl_nested.jsonl"), ["--logits", "line 1", "[2.0]", "not a number"]),
    ("jl-overflow", ce("{d}/jl_overflow.jsonl"), ["--logits", "line 2", "overflows"]),
    ("jl-bigint", ce(LOGITS, "{d}/jl_bigint.jsonl"), ["--target", "line 2", "int64"]),
    ("jl-not-utf8", ce("{d}/jl_not_utf8.jsonl"), ["--logits", "line 2", "UTF-8"]),
    ("jl-key-on-bare-lines", ce("{d}/jl_bare.jsonl:logits"), ["--logits", "line 1", "not a JSON object"]),
    ("jl-array-after-objects", ce("{d}/jl_array_line.jsonl:logits"), ["--logits", "line 2", "not a JSON object"]),
    ("jl-from-bare-lines", ["ce", "--from", "{d}/jl_bare.jsonl"], ["--from", "JSON object on every line"]),
]


@pytest.mark.parametrize("args, fragments", [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES])
def test_hostile_format_file_exits_2_with_one_clear_line(format_corpus, args, fragments):
    result = run_cli(*_argv(args, format_corpus), code=None)
    assert_clean_exit2(result, fragments)


@pytest.mark.parametrize("name", ["st_bomb.safetensors", "st_huge_shape.safetensors", "st_past_end.safetensors"])
def test_safetensors_header_bombs_allocate_nothing(format_corpus, name):
    tracemalloc.start()
    try:
        with pytest.raises(LossctlError):
            load_array(str(format_corpus / name), option="--logits")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_safetensors_header_bomb_through_the_real_cli(format_corpus):
    proc = subprocess.run(_lossctl("ce", "--logits", str(format_corpus / "st_bomb.safetensors"), "--target", TARGET,
                                   "-f", "plain"), capture_output=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lossctl: error: --logits (") and "refused" in lines[0], lines


def test_a_read_error_on_stdin_is_one_line(monkeypatch):
    """An OSError reading the pipe (EIO; pytest's own stdin refuses reads too) is an InputError, not a traceback."""
    import errno

    from lossctl.errors import InputError
    from lossctl.io import read_stdin

    class Broken:
        def isatty(self):
            return False

        @property
        def buffer(self):
            return self

        def read(self):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sys, "stdin", Broken())
    with pytest.raises(InputError) as exc:
        read_stdin("--logits")
    assert str(exc.value) == "--logits (<stdin>): cannot read standard input (Input/output error)"
