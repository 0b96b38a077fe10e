"""What people save model outputs in (.safetensors, Parquet, Arrow IPC/Feather, JSON Lines) reads as .npy does.

Every file here is written by the format's own library (numpy, safetensors, pyarrow, json) from one array, and
every loss is compared with torch on that original array. Hostile files of these formats are in test_hostile.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, run_subprocess

from lossctl.errors import InputError
from lossctl.io import load_array, load_bundle, split_key
from lossctl.io.rows import open_rows

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")
st_numpy = pytest.importorskip("safetensors.numpy")

N, C = 11, 5


@pytest.fixture
def data(rng):
    return {"logits": rng.normal(size=(N, C)) * 3, "target": rng.integers(0, C, size=N)}


def list_column(x: np.ndarray, *, fixed: bool = False):
    flat = pa.array(x.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, x.shape[1]) if fixed else pa.array(list(x), pa.list_(flat.type))


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_arrow_stream(path: Path, table) -> Path:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=4)
    return path


def write_format(fmt: str, d: Path, x: np.ndarray, t: np.ndarray) -> tuple[str, str]:
    """Write (logits, target) in one format with that format's own writer; return the two sources."""
    table = pa.table({"logits": list_column(x, fixed=fmt == "parquet-fixed"), "target": t,
                      "id": [f"row{i}" for i in range(len(t))]})
    if fmt == "npy":
        np.save(d / "logits.npy", x)
        np.save(d / "target.npy", t)
        return str(d / "logits.npy"), str(d / "target.npy")
    if fmt == "safetensors":
        st_numpy.save_file({"logits": x, "target": t}, str(d / "x.safetensors"))
        path = d / "x.safetensors"
    elif fmt.startswith("parquet"):
        path = d / "x.parquet"
        pq.write_table(table, path, row_group_size=4)
    elif fmt == "feather":
        path = d / "x.feather"
        feather.write_feather(table, path, chunksize=4)
    elif fmt == "arrow-stream":
        path = write_arrow_stream(d / "x.arrow", table)
    elif fmt == "jsonl":
        path = write_jsonl(d / "x.jsonl", ({"id": i, "logits": r.tolist(), "target": int(y)}
                                           for i, (r, y) in enumerate(zip(x, t, strict=True))))
    else:  # bare values, one file per array
        assert fmt == "ndjson"
        return (str(write_jsonl(d / "logits.ndjson", (r.tolist() for r in x))),
                str(write_jsonl(d / "target.ndjson", (int(y) for y in t))))
    return f"{path}:logits", f"{path}:target"


FORMATS = ["npy", "safetensors", "parquet", "parquet-fixed", "feather", "arrow-stream", "jsonl", "ndjson"]
BINARY = {"npy", "safetensors", "parquet", "parquet-fixed", "feather", "arrow-stream"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_the_original_arrays(tmp_path, data, fmt):
    logits, target = write_format(fmt, tmp_path, data["logits"], data["target"])
    got_x, got_t = load_array(logits, option="--logits"), load_array(target, option="--target")
    assert got_x.array.dtype == np.float64 and got_t.array.dtype == np.int64
    np.testing.assert_array_equal(got_x.array, data["logits"])
    np.testing.assert_array_equal(got_t.array, data["target"])
    assert got_x.binary is (fmt in BINARY)
    assert got_x.array.flags.writeable  # torch warns on read-only arrays


@pytest.mark.parametrize("fmt", FORMATS)
def test_ce_through_the_real_cli_equals_torch(tmp_path, data, fmt):
    logits, target = write_format(fmt, tmp_path, data["logits"], data["target"])
    proc = run_subprocess("ce", "--logits", logits, "--target", target, "-f", "plain")
    assert proc.returncode == 0, proc.stderr.decode()
    expected = F.cross_entropy(torch.from_numpy(data["logits"]), torch.from_numpy(data["target"])).item()
    assert float(proc.stdout) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fmt", ["safetensors", "parquet", "feather", "arrow-stream", "jsonl"])
def test_from_bundle_fills_each_role_from_its_name(tmp_path, cli, data, fmt):
    logits, _ = write_format(fmt, tmp_path, data["logits"], data["target"])
    path, _ = split_key(logits)
    res = cli("ce", "--from", path, "--format", "json")
    expected = F.cross_entropy(torch.from_numpy(data["logits"]), torch.from_numpy(data["target"])).item()
    assert json.loads(res.stdout)["value"] == pytest.approx(expected, rel=1e-12)
    arrays, binary = load_bundle(path)
    assert sorted(arrays) == (["id", "logits", "target"] if fmt == "jsonl" else ["logits", "target"])
    assert binary is (fmt != "jsonl")  # Parquet and Arrow leave the string column out


@pytest.mark.parametrize("fmt", ["safetensors", "parquet", "feather"])
def test_float32_files_compute_in_float32(tmp_path, cli, data, fmt):
    x, t = data["logits"].astype(np.float32), data["target"]
    logits, target = write_format(fmt, tmp_path, x, t)
    assert load_array(logits, option="--logits").array.dtype == np.float32
    res = cli("ce", "--logits", logits, "--target", target, "--format", "json")
    out = json.loads(res.stdout)
    assert out["dtype"] == "float32"
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t))
    torch.testing.assert_close(torch.tensor(out["value"], dtype=torch.float32), expected)


def test_safetensors_bfloat16_widens_to_float32_and_half_stays_half(tmp_path, data):
    """NumPy has no bfloat16: float32 holds it exactly. float16 stays float16, as an .npy's does, so that the
    loss can say it computes in float32 where torch would compute in float16."""
    from safetensors.torch import save_file

    x = torch.from_numpy(data["logits"])
    path = tmp_path / "half.safetensors"
    save_file({"bf16": x.to(torch.bfloat16), "f16": x.to(torch.float16), "i32": torch.arange(6, dtype=torch.int32)},
              str(path))
    for key, dtype, kept in (("bf16", torch.bfloat16, np.float32), ("f16", torch.float16, np.float16)):
        got = load_array(f"{path}:{key}", option="--logits").array
        assert got.dtype == kept and got.shape == (N, C)
        np.testing.assert_array_equal(got, x.to(dtype).float().numpy())  # widening is exact
    np.testing.assert_array_equal(load_array(f"{path}:i32", option="--target").array, np.arange(6, dtype=np.int32))


def test_reading_new_formats_never_imports_torch_or_pandas(tmp_path, data):
    # pandas too: pyarrow's to_numpy and pq.read_table import it (0.4 s); the readers take other roads.
    from safetensors.torch import save_file

    save_file({"bf16": torch.from_numpy(data["logits"]).to(torch.bfloat16)}, str(tmp_path / "bf.safetensors"))
    sources = [str(tmp_path / "bf.safetensors"), *write_format("parquet", tmp_path, data["logits"], data["target"]),
               *write_format("jsonl", tmp_path, data["logits"], data["target"])]
    code = ("import json, sys\nfrom lossctl.io import load_array\n"
            "shapes = [list(load_array(s, option='--logits').array.shape) for s in sys.argv[1:]]\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'pandas': 'pandas' in sys.modules, 'shapes': shapes}))")
    proc = subprocess.run([sys.executable, "-c", code, *sources], capture_output=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out == {"torch": False, "pandas": False, "shapes": [[N, C], [N, C], [N], [N, C], [N]]}


def test_help_and_importing_io_load_no_format_package():
    code = ("import contextlib, io, sys\nimport lossctl.io\nfrom lossctl.cli import main\n"
            "sys.argv = ['lossctl', 'ce', '--help']\n"
            "try:\n    with contextlib.redirect_stdout(io.StringIO()):\n        main()\n"
            "except SystemExit as exc:\n    assert exc.code == 0\n"
            "print(sorted(m for m in ('pyarrow', 'safetensors', 'torch') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "[]"


@pytest.mark.parametrize("module, ext, extra", [("pyarrow", "parquet", "parquet"), ("pyarrow", "feather", "parquet"),
                                                ("safetensors", "safetensors", "safetensors")])
def test_missing_package_names_the_extra(tmp_path, monkeypatch, cli, data, module, ext, extra):
    fmt = {"parquet": "parquet", "feather": "feather", "safetensors": "safetensors"}[ext]
    logits, target = write_format(fmt, tmp_path, data["logits"], data["target"])
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    path = split_key(logits)[0]
    with pytest.raises(InputError) as err:
        load_array(logits, option="--logits")
    assert str(err.value) == f"--logits ({path}): reading .{ext} needs {module}: pip install 'lossctl[{extra}]'"
    res = cli("ce", "--logits", logits, "--target", target, code=2)
    assert res.stderr.strip().splitlines() == [f"lossctl: error: {err.value}"]


def test_keys_may_be_left_out_where_the_file_holds_one_array(tmp_path, data):
    x = data["logits"]
    st_numpy.save_file({"only": x}, str(tmp_path / "one.safetensors"))
    pq.write_table(pa.table({"scores": list_column(x)}), tmp_path / "one.parquet")
    write_jsonl(tmp_path / "one.jsonl", ({"scores": r.tolist()} for r in x))
    for name in ("one.safetensors", "one.parquet", "one.jsonl"):
        np.testing.assert_array_equal(load_array(str(tmp_path / name), option="--logits").array, x)


def test_numeric_column_is_a_vector_and_list_column_rows(tmp_path, data):
    x = data["logits"].astype(np.float32)
    pq.write_table(pa.table({"v": x[:, 0], "rows": list_column(x)}), tmp_path / "t.parquet")
    v = load_array(f"{tmp_path / 't.parquet'}:v", option="--target").array
    rows = load_array(f"{tmp_path / 't.parquet'}:rows", option="--logits").array
    assert v.shape == (N,) and rows.shape == (N, C) and v.dtype == rows.dtype == np.float32
    np.testing.assert_array_equal(rows, x)


def test_jsonl_mixed_ints_and_floats_is_float64_and_nan_is_kept(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"p": [1, 2.5]}\n\n{"p": [NaN, -Infinity]}\n{"p": [3, 4]}\n')
    got = load_array(f"{path}:p", option="--logits").array
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.array([[1.0, 2.5], [np.nan, -np.inf], [3.0, 4.0]]))


def test_jsonl_lines_parse_with_orjson_and_fall_back_to_json(tmp_path, monkeypatch):
    """orjson parses the lines (the standard library's json took 15 us for a line of 32 floats, orjson 4.5 us: a
    1M-line file read 30 s against 2.7 s as CSV); what orjson refuses, json still reads: NaN, Infinity, integers
    past int64 (orjson reads them as floats: json then reads the chunk and names the line), a byte-order mark."""
    orjson = pytest.importorskip("orjson")
    from lossctl.io import jsonl

    calls = []
    monkeypatch.setattr(jsonl, "_FAST", lambda raw: calls.append(raw) or orjson.loads(raw))
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"p": [1.5, 2]}\n{"p": [0.1, 1e-310]}\n{"p": [NaN, -Infinity]}\n')
    got = load_array(f"{path}:p", option="--logits").array
    np.testing.assert_array_equal(got, np.array([[1.5, 2.0], [0.1, 1e-310], [np.nan, -np.inf]]))
    assert len(calls) >= 3  # every line offered to orjson first
    path.write_text('{"p": [1, 2]}\n{"p": [3, 18446744073709551616]}\n')
    with pytest.raises(InputError, match="line 2, key 'p': 18446744073709551616 does not fit in int64"):
        load_array(f"{path}:p", option="--logits")


def test_a_small_jsonl_file_does_not_import_orjson(tmp_path):
    """orjson's import (about 14 ms) was paid by every JSON Lines read, an 8-line file too, where JSON files take it
    only from text.FAST_JSON_CHARS; now a small file is parsed by json, a big one still by orjson."""
    pytest.importorskip("orjson")
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_text('{"p": [0.5, 1.5]}\n{"p": [2.5, -1.0]}\n')
    big.write_text('{"p": [0.5, 1.5]}\n' * 8192)  # 144 KiB, past 64 KiB
    probe = ("import sys; from lossctl.io import load_array; a = load_array(sys.argv[1], option='--logits').array; "
             "print(a.sum(), 'orjson' in sys.modules)")
    for path, total, imported in ((small, 3.5, False), (big, 8192 * 2.0, True)):
        proc = subprocess.run([sys.executable, "-c", probe, f"{path}:p"], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [repr(total), str(imported)]


@pytest.mark.parametrize("fmt", ["parquet", "feather", "arrow-stream", "jsonl", "ndjson"])
@pytest.mark.parametrize("step", [1, 3, 4, 64])
def test_row_readers_reassemble_the_original(tmp_path, data, fmt, step):
    for source, original in zip(write_format(fmt, tmp_path, data["logits"], data["target"]),
                                (data["logits"], data["target"]), strict=True):
        rows = open_rows(source, "--logits", step)
        try:
            parts, seen = [], []
            while len(chunk := rows.read(step)):
                assert len(chunk) <= step
                parts.append(chunk)
                seen.append(rows.position())
            assert rows.dtype == original.dtype
        finally:
            rows.close()
        np.testing.assert_array_equal(np.concatenate(parts), original)
        assert seen == sorted(seen) and 0 < seen[-1] <= rows.total_bytes


def test_row_readers_name_the_row_in_a_later_chunk(tmp_path):
    x = [[1.0, 2.0]] * 9 + [[1.0]]
    pq.write_table(pa.table({"p": pa.array(x)}), tmp_path / "r.parquet", row_group_size=4)
    write_jsonl(tmp_path / "r.jsonl", ({"p": r} for r in x))
    for source, where in ((f"{tmp_path / 'r.parquet'}:p", "row 9"), (f"{tmp_path / 'r.jsonl'}:p", "line 10")):
        rows = open_rows(source, "--logits", 3)
        with pytest.raises(InputError, match=f"{where}.*ragged"):
            while len(rows.read(3)):
                pass
        rows.close()


MEMORY_PROBE = """
import json, sys, tracemalloc
import pyarrow, pyarrow.compute, pyarrow.ipc, pyarrow.parquet
from lossctl.io.rows import open_rows
tracemalloc.start()  # after the imports: what reading allocates, not what importing does
rows, n = open_rows(sys.argv[1], "--logits", 1000), 0
while len(chunk := rows.read(1000)):
    n += len(chunk)
rows.close()
print(json.dumps({"rows": n, "python": tracemalloc.get_traced_memory()[1],
                  "arrow": pyarrow.default_memory_pool().max_memory()}))
"""


def test_row_readers_stream_in_bounded_memory(tmp_path):
    x = np.random.default_rng(1).normal(size=(100_000, 8))  # 6.4 MB as float64
    pq.write_table(pa.table({"p": list_column(x, fixed=True)}), tmp_path / "big.parquet", row_group_size=5000)
    write_jsonl(tmp_path / "big.jsonl", ({"p": r.tolist()} for r in x))
    for name in ("big.parquet", "big.jsonl"):
        proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, f"{tmp_path / name}:p"], capture_output=True,
                              cwd=ROOT, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()
        out = json.loads(proc.stdout)
        assert out["rows"] == len(x)
        assert out["python"] < x.nbytes / 4 and out["arrow"] < x.nbytes / 4, (name, out)


def test_a_bundle_key_that_holds_no_numbers_says_why(tmp_path, cli):
    """--from leaves out keys whose values are not numbers (an id, a note); a role's own key left out that way is
    read alone, as FILE:KEY is, so the error says what is wrong with it instead of that it is missing."""
    (tmp_path / "nulls.jsonl").write_text('{"logits": [1, 2], "target": null}\n')
    ran = cli("ce", "--from", f"{tmp_path}/nulls.jsonl", code=2)
    assert ran.stderr == (f"lossctl: error: --from ({tmp_path}/nulls.jsonl): line 1, key 'target': null is not a "
                          "number\n")
    x, t = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]]), np.array([2, 0])
    table = pa.table({"logits": list_column(x), "target": pa.array(t).dictionary_encode()})
    feather.write_feather(table, tmp_path / "dict.feather")  # Feather keeps the dictionary type
    ran = cli("ce", "--from", f"{tmp_path}/dict.feather", code=2)
    assert ran.stderr.startswith(f"lossctl: error: --from ({tmp_path}/dict.feather): column 'target' holds "
                                 "dictionary<"), ran.stderr
    (tmp_path / "late.jsonl").write_text('{"logits": [1.0, 2.0, 0.5], "note": "a", "target": 2}\n'
                                         '{"logits": [0.0, 1.0, 3.0], "note": "b", "target": 0}\n')
    got = cli("ce", "--from", f"{tmp_path}/late.jsonl", "-f", "plain")  # the note is left out, the rest read
    assert float(got.stdout) == pytest.approx(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item(),
                                              rel=1e-12)
    (tmp_path / "none.jsonl").write_text('{"logits": [1.0, 2.0]}\n')
    ran = cli("ce", "--from", f"{tmp_path}/none.jsonl", code=2)
    assert ran.stderr == (f"lossctl: error: --target: ce needs --target (and --from {tmp_path}/none.jsonl has no "
                          "key target holding numbers)\n")


def test_an_error_lists_at_most_twenty_names(tmp_path):
    """A JSON object of a key per row: the error naming the keys once listed every one of them."""
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({f"row{i}": i % 3 for i in range(1000)}))
    first = ", ".join(sorted(f"row{i}" for i in range(1000))[:20])
    with pytest.raises(InputError) as exc:
        load_array(str(path), option="--target")
    assert str(exc.value) == f"--target ({path}): holds several arrays ({first}, and 980 more); name one as FILE:KEY"
    np.savez(tmp_path / "many.npz", **{f"a{i}": np.zeros(1) for i in range(25)})
    with pytest.raises(InputError) as exc:
        load_array(f"{tmp_path / 'many.npz'}:zz", option="--target")
    assert str(exc.value).endswith(", ".join(sorted(f"a{i}" for i in range(25))[:20]) + ", and 5 more")
    pq.write_table(pa.table({f"c{i}": pa.array(["x"]) for i in range(30)}), tmp_path / "wide.parquet")
    with pytest.raises(InputError) as exc:
        load_bundle(str(tmp_path / "wide.parquet"))
    assert str(exc.value).endswith(", ".join(sorted(f"c{i}" for i in range(30))[:20]) + ", and 10 more)")


def test_pandas_to_json_default_says_what_to_write(tmp_path, data):
    """DataFrame/Series.to_json's default is keyed by row number: once 'holds several arrays (0, 1, 10, ...)'."""
    pd = pytest.importorskip("pandas")
    pd.DataFrame(data["logits"]).to_json(tmp_path / "x.json")
    pd.Series(data["target"]).to_json(tmp_path / "t.json")
    for name, what in (("x.json", "DataFrame"), ("t.json", "Series")):
        with pytest.raises(InputError) as exc:
            load_array(str(tmp_path / name), option="--logits")
        assert str(exc.value) == (f"--logits ({tmp_path / name}): an object keyed by row number, as pandas' to_json "
                                  f"writes a {what}: write it with orient='values' (lossctl reads nested lists)")
    pd.DataFrame(data["logits"]).to_json(tmp_path / "v.json", orient="values", double_precision=15)
    np.testing.assert_allclose(load_array(str(tmp_path / "v.json"), option="--logits").array, data["logits"],
                               rtol=1e-12)  # pandas writes at most 15 significant digits


def test_float8_safetensors_says_what_to_save_instead(tmp_path, cli):
    """A float8 tensor is numbers NumPy cannot hold: once 'unsupported dtype F8_E4M3 (need numbers)'."""
    from safetensors.torch import save_file

    save_file({"logits": torch.zeros(2, 3).to(torch.float8_e4m3fn)}, tmp_path / "f8.safetensors")
    res = cli("ce", "--logits", str(tmp_path / "f8.safetensors"), "--target", "[0, 1]", code=2)
    assert res.stderr == (f"lossctl: error: --logits ({tmp_path / 'f8.safetensors'}:logits): unsupported dtype "
                          "F8_E4M3 (float8, which NumPy cannot hold: save it as F16, BF16 or F32)\n")


@pytest.mark.parametrize("ext", ["parquet", "feather"])
def test_pandas_index_columns_are_no_data(tmp_path, data, ext):
    """A DataFrame whose rows were filtered keeps its index as a column (`__index_level_0__`, or the index's name)
    that pandas' metadata names: the only column without a key, and no key of a --from bundle, is the data's."""
    pd = pytest.importorskip("pandas")
    import lossctl

    keep = data["target"] > 0
    x, t = data["logits"][keep], data["target"][keep]
    frames = {"x": pd.DataFrame({"logits": list(x)}).set_axis(np.flatnonzero(keep)),
              "t": pd.DataFrame({"target": t}).set_axis(pd.Index(np.flatnonzero(keep), name="row")),
              "both": pd.DataFrame({"logits": list(x), "target": t}).set_axis(np.flatnonzero(keep))}
    for name, frame in frames.items():
        table = pa.Table.from_pandas(frame)
        assert len(table.column_names) == len(frame.columns) + 1  # the index is stored as a column
        (pq.write_table if ext == "parquet" else feather.write_feather)(table, tmp_path / f"{name}.{ext}")
    files = {"logits": str(tmp_path / f"x.{ext}"), "target": str(tmp_path / f"t.{ext}")}
    np.testing.assert_array_equal(load_array(files["logits"], option="--logits").array, x)
    assert set(load_bundle(str(tmp_path / f"both.{ext}"))[0]) == {"logits", "target"}
    assert load_array(f"{files['target']}:row", option="--target").array.tolist() == np.flatnonzero(keep).tolist()
    want = float(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)))
    for stream in (True, False):
        r = lossctl.compute("ce", **files, stream=stream)
        assert stream == any("streamed" in n for n in r.notes)
        np.testing.assert_allclose(r.value, want, rtol=1e-12)
    np.testing.assert_allclose(lossctl.compute("ce", bundle=str(tmp_path / f"both.{ext}")).value, want, rtol=1e-12)
