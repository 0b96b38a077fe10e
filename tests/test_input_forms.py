"""Every input form (each file format, stdin, literals, npz/pt keys, --from bundles) gives the same number."""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import save

import lossctl
from lossctl.errors import InputError, LossctlError

N, C = 4, 3


@pytest.fixture
def data(rng):
    """float64 logits and int targets, and torch's CE on them: every form must reproduce this number."""
    x = rng.normal(size=(N, C))
    y = rng.integers(0, C, size=N)
    w = rng.random(C) + 0.5
    return {"logits": x, "target": y, "weight": w,
            "expected": F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y)).item(),
            "weighted": F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w)).item()}


def ce_value(cli, *args, input=None) -> float:
    res = cli("ce", *args, "--format", "json", input=input)
    return json.loads(res.stdout)["value"]


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize("ext", [".npy", ".json", ".csv", ".tsv", ".pt", ".npz"])
def test_each_file_format(tmp_path, data, ext):
    lp = save(data["logits"], tmp_path / f"logits{ext}")
    tp = save(data["target"], tmp_path / f"target{ext}")
    res = lossctl.compute("ce", logits=str(lp), target=str(tp))
    assert res.dtype == "float64"
    assert res.value == pytest.approx(data["expected"], rel=1e-14)


@pytest.mark.parametrize("ext", [".csv", ".tsv"])
def test_text_tables_with_a_header_row(tmp_path, data, ext):
    lp = save(data["logits"], tmp_path / f"logits{ext}", header=True)
    tp = save(data["target"], tmp_path / f"target{ext}", header=True)
    assert lossctl.compute("ce", logits=str(lp), target=str(tp)).value == pytest.approx(data["expected"], rel=1e-14)


def test_csv_single_column_is_a_vector_and_whole_floats_are_indices(tmp_path, data):
    tp = tmp_path / "target.csv"
    tp.write_text("label\n" + "\n".join(f"{v}.0" for v in data["target"]) + "\n")
    res = lossctl.compute("ce", logits=data["logits"], target=str(tp))
    assert res.shapes["target"] == [N]
    assert res.value == pytest.approx(data["expected"], rel=1e-14)


def test_npz_keys(tmp_path, data):
    both = tmp_path / "both.npz"
    np.savez(both, logits=data["logits"], target=data["target"])
    res = lossctl.compute("ce", logits=f"{both}:logits", target=f"{both}:target")
    assert res.value == pytest.approx(data["expected"], rel=1e-14)
    with pytest.raises(InputError, match="several arrays"):
        lossctl.compute("ce", logits=str(both), target=f"{both}:target")
    with pytest.raises(InputError, match="no array named 'nope'"):
        lossctl.compute("ce", logits=f"{both}:nope", target=f"{both}:target")


def test_pt_dict_with_key_and_float32_tensor(tmp_path, data):
    pt = tmp_path / "both.pt"
    torch.save({"logits": torch.from_numpy(data["logits"]), "target": torch.from_numpy(data["target"])}, pt)
    res = lossctl.compute("ce", logits=f"{pt}:logits", target=f"{pt}:target")
    assert res.value == pytest.approx(data["expected"], rel=1e-14)
    x32 = torch.from_numpy(data["logits"]).float()
    torch.save(x32, tmp_path / "x32.pt")
    res = lossctl.compute("ce", logits=str(tmp_path / "x32.pt"), target=data["target"].tolist())
    assert res.dtype == "float32"  # a binary file keeps its float dtype under --dtype auto
    assert res.value == pytest.approx(F.cross_entropy(x32, torch.from_numpy(data["target"])).item(), rel=2e-6)


def test_pt_with_anything_but_tensors_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"logits": torch.zeros(2, 2), "when": datetime.date(2024, 1, 1)}, bad)
    with pytest.raises(InputError) as info:
        lossctl.compute("ce", logits=f"{bad}:logits", target=[0, 1])
    assert str(info.value).startswith("--logits")


def test_float32_npy_computes_in_float32(tmp_path, data):
    x32 = data["logits"].astype(np.float32)
    lp = save(x32, tmp_path / "x32.npy")
    res = lossctl.compute("ce", logits=str(lp), target=data["target"].tolist())
    assert res.dtype == "float32"
    ref = F.cross_entropy(torch.from_numpy(x32), torch.from_numpy(data["target"])).item()
    assert res.value == pytest.approx(ref, rel=2e-6)
    assert lossctl.compute("ce", logits=str(lp), target=data["target"].tolist(), dtype="float64").dtype == "float64"


def test_inline_literals(data):
    res = lossctl.compute("ce", logits=json.dumps(data["logits"].tolist()), target=json.dumps(data["target"].tolist()))
    assert res.value == pytest.approx(data["expected"], rel=1e-14)


@pytest.mark.parametrize("literal, where", [("nan", 1), ("+0", 1), ("[0.5, nan]", 7)])
def test_a_literal_that_is_no_json_says_what_a_literal_is(cli, literal, where):
    """Python's spellings (nan, +0) are no JSON: the error once said only "invalid JSON"."""
    res = cli("mse", "--input", literal, "--target", "0.0", code=2)
    assert res.stderr == (f"lossctl: error: --input (literal): invalid JSON (Expecting value: line 1 column {where} "
                          f"(char {where - 1})); an inline literal is JSON: a number (0.5, -2, 1e-3, NaN, Infinity, "
                          "-Infinity) or nested lists of them ([[2.0, 1.0], [0.1, 3.0]])\n")


def test_bare_number_is_a_scalar_target(data):
    x = data["logits"][0]
    res = lossctl.compute("ce", logits=json.dumps(x.tolist()), target="2")
    expected = F.cross_entropy(torch.from_numpy(x), torch.tensor(2)).item()
    assert res.value == pytest.approx(expected, rel=1e-14)
    assert res.shapes["target"] == []


def test_every_form_through_the_cli(cli, tmp_path, data):
    """The same CE through each form on the command line, stdin included."""
    x, y = data["logits"], data["target"]
    for ext in (".npy", ".json", ".csv", ".tsv", ".pt"):
        save(x, tmp_path / f"x{ext}")
        save(y, tmp_path / f"y{ext}")
    np.savez(tmp_path / "single.npz", x)
    np.savez(tmp_path / "keys.npz", logits=x, target=y)
    literal_x, literal_y = json.dumps(x.tolist()), json.dumps(y.tolist())
    csv_x = "\n".join(",".join(repr(float(v)) for v in row) for row in x)
    runs = [
        *[(str(tmp_path / f"x{ext}"), str(tmp_path / f"y{ext}"), None) for ext in (".npy", ".json", ".csv", ".tsv",
                                                                                 ".pt")],
        (str(tmp_path / "single.npz"), literal_y, None),
        (f"{tmp_path / 'keys.npz'}:logits", f"{tmp_path / 'keys.npz'}:target", None),
        (literal_x, literal_y, None),
        ("-", literal_y, npy_bytes(x)),
        ("-", literal_y, literal_x.encode()),
        ("-", literal_y, csv_x.encode()),
        ("-", literal_y, ("a,b,c\n" + csv_x).encode()),
        (literal_x, "-", json.dumps(y.tolist()).encode()),
        (literal_x, "-", "\n".join(map(str, y)).encode()),
    ]
    for logits, target, stdin in runs:
        value = ce_value(cli, "--logits", logits, "--target", target, input=stdin)
        assert value == pytest.approx(data["expected"], rel=1e-14), (logits, target)


def test_float32_npy_on_stdin_keeps_float32(cli, data):
    x32 = data["logits"].astype(np.float32)
    res = cli("ce", "--logits", "-", "--target", json.dumps(data["target"].tolist()), "--format", "json",
              input=npy_bytes(x32))
    out = json.loads(res.stdout)
    assert out["dtype"] == "float32"
    ref = F.cross_entropy(torch.from_numpy(x32), torch.from_numpy(data["target"])).item()
    assert out["value"] == pytest.approx(ref, rel=2e-6)


def test_float32_npz_on_stdin_keeps_float32(cli, data):
    """An .npz is binary wherever it comes from: piped, as read from its path, its float32 stays float32."""
    x32 = data["logits"].astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, x32)
    res = cli("ce", "--logits", "-", "--target", json.dumps(data["target"].tolist()), "--format", "json",
              input=buf.getvalue())
    out = json.loads(res.stdout)
    assert out["dtype"] == "float32"
    ref = F.cross_entropy(torch.from_numpy(x32), torch.from_numpy(data["target"])).item()
    assert out["value"] == pytest.approx(ref, rel=2e-6)


def _stdin_files(tmp_path, data) -> dict[str, bytes]:
    """The bytes of each binary format that standard input does not read, as its writer wrote them."""
    import pyarrow as pa
    import pyarrow.feather
    import pyarrow.parquet
    from safetensors.numpy import save as st_save

    x = data["logits"]
    torch.save(torch.from_numpy(x), tmp_path / "zip.pt")
    torch.save(torch.from_numpy(x), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    table = pa.table({"logits": pa.array(list(map(list, x)))})
    pyarrow.parquet.write_table(table, tmp_path / "x.parquet")
    pyarrow.feather.write_feather(table, tmp_path / "x.feather")
    files = {name: (tmp_path / name).read_bytes() for name in ("zip.pt", "legacy.pt", "x.parquet", "x.feather")}
    return files | {"x.safetensors": st_save({"logits": x.astype(np.float32)})}


@pytest.mark.parametrize("option", ["--logits", "--from"])
def test_stdin_names_a_binary_format_it_does_not_read(cli, tmp_path, data, option):
    what = {"zip.pt": "a PyTorch archive (torch.save), not an .npz: ",
            "legacy.pt": "a pickle (a .pt file of torch's legacy format): ", "x.parquet": "a Parquet file: ",
            "x.feather": "an Arrow IPC / Feather file: ", "x.safetensors": "a .safetensors file: "}
    target = () if option == "--from" else ("--target", json.dumps(data["target"].tolist()))
    for name, raw in _stdin_files(tmp_path, data).items():
        res = cli("ce", option, "-", *target, input=raw, code=2)
        assert res.stderr == (f"lossctl: error: {option} (<stdin>): {what[name]}standard input reads .npy, .npz, "
                              "JSON, JSON Lines and text tables; give the file by its path\n"), name


def test_stdin_with_several_arrays_says_how_to_pick_one(cli, data):
    x, y = data["logits"], data["target"]
    buf = io.BytesIO()
    np.savez(buf, logits=x, target=y)
    bundle_json = json.dumps({"logits": x.tolist(), "target": y.tolist()}).encode()
    for raw in (buf.getvalue(), bundle_json):
        res = cli("ce", "--logits", "-", "--target", json.dumps(y.tolist()), input=raw, code=2)
        assert res.stderr == ("lossctl: error: --logits (<stdin>): holds several arrays (logits, target); standard "
                              "input cannot name one: give the file's path as FILE:KEY, or pipe it to --from -\n")
        assert ce_value(cli, "--from", "-", input=raw) == pytest.approx(data["expected"], rel=1e-14)
    res = cli("ce", "--from", "-", input=npy_bytes(x), code=2)
    assert res.stderr == ("lossctl: error: --from (<stdin>): an .npy file holds one array with no name: a bundle is "
                          "an .npz or a JSON object\n")


def test_a_pt_file_named_npz_is_named_for_what_it_is(cli, tmp_path, data):
    torch.save(torch.from_numpy(data["logits"]), tmp_path / "x.npz")
    res = cli("ce", "--logits", str(tmp_path / "x.npz"), "--target", json.dumps(data["target"].tolist()), code=2)
    assert res.stderr == (f"lossctl: error: --logits ({tmp_path / 'x.npz'}): a PyTorch archive (torch.save), not an "
                          ".npz: name it .pt\n")


def test_only_one_option_may_read_stdin(cli):
    res = cli("ce", "--logits", "-", "--target", "-", input=b"[[1.0, 2.0]]", code=2)
    assert "standard input" in res.stderr and "--logits" in res.stderr and "--target" in res.stderr


# --- --from bundles ------------------------------------------------------------------------------------------


def bundles(tmp_path, data) -> list[str]:
    x, y, w = data["logits"], data["target"], data["weight"]
    npz = tmp_path / "b.npz"
    np.savez(npz, logits=x, target=y, weight=w)
    js = tmp_path / "b.json"
    js.write_text(json.dumps({"logits": x.tolist(), "target": y.tolist(), "weight": w.tolist(), "other": [1]}))
    pt = tmp_path / "b.pt"
    torch.save({"logits": torch.from_numpy(x), "target": torch.from_numpy(y), "weight": torch.from_numpy(w)}, pt)
    return [str(npz), str(js), str(pt)]


def test_from_bundle_fills_every_role(tmp_path, data):
    for bundle in bundles(tmp_path, data):
        res = lossctl.compute("ce", bundle=bundle)
        assert res.value == pytest.approx(data["weighted"], rel=1e-14), bundle
        assert set(res.shapes) == {"logits", "target", "weight"}


def test_explicit_options_override_the_bundle(cli, tmp_path, data):
    other = np.roll(data["target"], 1)
    other[0] = (other[0] + 1) % C
    x, w = torch.from_numpy(data["logits"]), torch.from_numpy(data["weight"])
    expected = F.cross_entropy(x, torch.from_numpy(other), weight=w).item()
    for bundle in bundles(tmp_path, data):
        res = lossctl.compute("ce", bundle=bundle, target=json.dumps(other.tolist()))
        assert res.value == pytest.approx(expected, rel=1e-14), bundle
        value = ce_value(cli, "--from", bundle, "--target", json.dumps(other.tolist()))
        assert value == pytest.approx(expected, rel=1e-14), bundle


def test_from_stdin(cli, tmp_path, data):
    npz, js, _ = bundles(tmp_path, data)
    for path in (npz, js):
        with open(path, "rb") as fp:
            value = ce_value(cli, "--from", "-", input=fp.read())
        assert value == pytest.approx(data["weighted"], rel=1e-14)


def test_json_lines_on_stdin_read_as_by_path(cli, tmp_path, data):
    """Several JSON values, one per line: JSON Lines, as a .jsonl file gives them (once "invalid JSON (Extra
    data...)")."""
    x, y, w = data["logits"], data["target"], data["weight"]
    records = "".join(json.dumps({"logits": r.tolist(), "target": int(t)}) + "\n" for r, t in zip(x, y, strict=True))
    (tmp_path / "b.jsonl").write_text(records)
    for source, stdin in ((str(tmp_path / "b.jsonl"), None), ("-", records.encode())):
        assert ce_value(cli, "--from", source, "--weight", json.dumps(w.tolist()), input=stdin) == \
            pytest.approx(data["weighted"], rel=1e-14)
    rows = "".join(json.dumps(r.tolist()) + "\n\n" for r in x).encode()  # a bare list per line, blank lines between
    assert ce_value(cli, "--logits", "-", "--target", json.dumps(y.tolist()), input=rows) == \
        pytest.approx(data["expected"], rel=1e-14)
    one_key = "".join(json.dumps({"target": int(t)}) + "\n" for t in y).encode()
    assert ce_value(cli, "--logits", json.dumps(x.tolist()), "--target", "-", input=one_key) == \
        pytest.approx(data["expected"], rel=1e-14)
    res = cli("ce", "--logits", "-", "--target", json.dumps(y.tolist()), input=records.encode(), code=2)
    assert res.stderr == ("lossctl: error: --logits (<stdin>): holds several keys (logits, target); standard input "
                          "cannot name one: give the file's path as FILE:KEY, or pipe it to --from -\n")
    res = cli("ce", "--logits", "-", "--target", json.dumps(y.tolist()), input=b"[1.0, 2.0]\n[3.0, oops]\n", code=2)
    assert res.stderr == "lossctl: error: --logits (<stdin>): line 2: not JSON (Expecting value at column 7)\n"


def test_from_json_leaves_out_values_that_are_no_arrays(cli, tmp_path, data):
    """A note or a config object beside the arrays, as a .pt dict may hold: once the whole bundle was refused."""
    js = tmp_path / "b.json"
    js.write_text(json.dumps({"logits": data["logits"].tolist(), "target": data["target"].tolist(), "note": "run 7",
                              "config": {"lr": 0.1}, "done": True, "parent": None}))
    assert ce_value(cli, "--from", str(js)) == pytest.approx(data["expected"], rel=1e-14)
    js.write_text(json.dumps({"logits": "see run 7", "target": data["target"].tolist()}))
    res = cli("ce", "--from", str(js), code=2)
    assert res.stderr == f'lossctl: error: --from ({js}:logits): non-numeric value "see run 7"\n'
    res = cli("ce", "--from", "-", input=js.read_bytes(), code=2)  # not read again: the message says no more
    assert res.stderr == "lossctl: error: --from (<stdin>): key 'logits' holds no numbers\n"


def _weight_bundles(tmp_path, data, weight) -> dict[str, Path]:
    x, y = data["logits"], data["target"]
    npz, js, pt = tmp_path / "w.npz", tmp_path / "w.json", tmp_path / "w.pt"
    np.savez(npz, logits=x, target=y, weight=np.array(weight, dtype=object if isinstance(weight, str) else None))
    js.write_text(json.dumps({"logits": x.tolist(), "target": y.tolist(), "weight": weight}))
    torch.save({"logits": torch.from_numpy(x), "target": torch.from_numpy(y), "weight": weight}, pt)
    return {"npz": npz, "json": js, "pt": pt}


def test_from_bundle_refuses_an_optional_role_that_holds_no_numbers(cli, tmp_path, data):
    """A weight the bundle cannot read must not be dropped: that would print the unweighted CE as if weighted."""
    for kind, path in _weight_bundles(tmp_path, data, "1,5,1").items():
        res = cli("ce", "--from", str(path), code=2)
        assert res.stderr.startswith(f"lossctl: error: --from ({path}:weight): "), (kind, res.stderr)
    js = tmp_path / "w.json"
    res = cli("ce", "--from", "-", input=js.read_bytes(), code=2)
    assert res.stderr == "lossctl: error: --from (<stdin>): key 'weight' holds no numbers\n"
    # read as numbers, the same weight gives torch's weighted CE
    for path in _weight_bundles(tmp_path, data, data["weight"].tolist()).values():
        assert ce_value(cli, "--from", str(path)) == pytest.approx(data["weighted"], rel=1e-6)


def test_from_bundle_leaves_out_class_names(cli, tmp_path, data):
    """Class names beside the arrays (a list of strings) name no role: JSON and .pt bundles leave them out."""
    x, y = data["logits"], data["target"]
    js, pt = tmp_path / "n.json", tmp_path / "n.pt"
    js.write_text(json.dumps({"logits": x.tolist(), "target": y.tolist(), "classes": ["cat", "dog", "eel"]}))
    torch.save({"logits": torch.from_numpy(x), "target": torch.from_numpy(y), "classes": ["cat", "dog"]}, pt)
    assert ce_value(cli, "--from", str(js)) == pytest.approx(data["expected"], rel=1e-14)
    assert ce_value(cli, "--from", str(pt)) == pytest.approx(data["expected"], rel=1e-12)


def test_from_npz_leaves_out_members_that_hold_no_numbers(cli, tmp_path, data):
    """Class names (a string array) or pickled metadata beside the arrays: once the whole bundle was refused."""
    x, y = data["logits"], data["target"]
    npz = tmp_path / "b.npz"
    np.savez(npz, logits=x, target=y, classes=np.array(["cat", "dog", "eel"]), meta=np.array([{"a": 1}], dtype=object))
    assert ce_value(cli, "--from", str(npz)) == pytest.approx(data["expected"], rel=1e-14)
    assert ce_value(cli, "--from", "-", input=npz.read_bytes()) == pytest.approx(data["expected"], rel=1e-14)
    with zipfile.ZipFile(npz, "a") as zf:
        zf.writestr("README.txt", "what the arrays are")
    assert ce_value(cli, "--from", str(npz)) == pytest.approx(data["expected"], rel=1e-14)
    np.savez(npz, logits=np.array(["a"]), target=y)
    res = cli("ce", "--from", str(npz), code=2)
    assert res.stderr == f"lossctl: error: --from ({npz}:logits): unsupported dtype <U1 (need numbers)\n"


def test_from_bundle_missing_a_role_names_it(tmp_path, data):
    js = tmp_path / "only_logits.json"
    js.write_text(json.dumps({"logits": data["logits"].tolist()}))
    with pytest.raises(LossctlError) as info:
        lossctl.compute("ce", bundle=str(js))
    assert "--target" in str(info.value) and "only_logits.json" in str(info.value)


def test_from_other_losses(tmp_path, rng):
    """Bundles fill any loss's roles: kl (log_probs and target) and cosine (x1, x2, target)."""
    x, p = rng.normal(size=(3, 4)), rng.dirichlet(np.ones(4), size=3)
    np.savez(tmp_path / "kl.npz", logits=x, target=p)
    expected = F.kl_div(torch.log_softmax(torch.from_numpy(x), -1), torch.from_numpy(p), reduction="batchmean")
    res = lossctl.compute("kl", bundle=str(tmp_path / "kl.npz"), reduction="batchmean")
    assert res.value == pytest.approx(expected.item(), rel=1e-13)
    x1, x2 = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    (tmp_path / "cos.json").write_text(json.dumps({"x1": x1.tolist(), "x2": x2.tolist(), "target": [1, -1, 1]}))
    expected = F.cosine_embedding_loss(torch.from_numpy(x1), torch.from_numpy(x2), torch.tensor([1.0, -1.0, 1.0]))
    res = lossctl.compute("cosine", bundle=str(tmp_path / "cos.json"))
    assert res.value == pytest.approx(expected.item(), rel=1e-12)


# --- bad files -----------------------------------------------------------------------------------------------


def test_bad_csv_cell_names_row_and_column(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1.0,2.0,3.0\n4.0,oops,6.0\n")
    res = cli("ce", "--logits", bad, "--target", "[0, 1]", code=2)
    assert "--logits" in res.stderr and "bad.csv" in res.stderr
    assert "row 3, column 2" in res.stderr and "'oops'" in res.stderr


def test_missing_file_and_unknown_format(cli, tmp_path):
    res = cli("ce", "--logits", tmp_path / "nope.npy", "--target", "[0]", code=2)
    assert "--logits" in res.stderr and "nope.npy" in res.stderr
    (tmp_path / "x.xyz").write_text("1,2")
    res = cli("ce", "--logits", tmp_path / "x.xyz", "--target", "[0]", code=2)
    assert "--logits" in res.stderr and "x.xyz" in res.stderr and "unknown format" in res.stderr


def test_pickled_npy_is_never_loaded(cli, tmp_path):
    bad = tmp_path / "obj.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    res = cli("ce", "--logits", bad, "--target", "[0]", code=2)
    assert "--logits" in res.stderr and "pickle" in res.stderr


def test_from_a_bundle_of_probs_and_logits_one_is_named_by_its_option(cli, tmp_path):
    """A bundle holding both probs and logits (the binary model's npz): --from alone says which to name, and naming
    one with its own option keeps the bundle from filling the other (it could never be used with bce before)."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=20), (rng.random(20) < 0.5).astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    np.savez(tmp_path / "b.npz", logits=x, probs=p, target=y)
    b = str(tmp_path / "b.npz")
    res = cli("bce", "--from", b, code=2)
    assert res.stderr == (f"lossctl: error: --logits: give only one of --probs or --logits (--from {b} holds probs "
                          f"and logits: name the one to use, as --probs {b}:probs)\n")
    logits = json.loads(cli("bce", "--from", b, "--logits", f"{b}:logits", "-f", "json").stdout)["value"]
    probs = json.loads(cli("bce", "--from", b, "--probs", f"{b}:probs", "-f", "json").stdout)["value"]
    want = F.binary_cross_entropy_with_logits(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert logits == pytest.approx(want, rel=1e-12)
    assert probs == pytest.approx(F.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y)).item(), rel=1e-12)
