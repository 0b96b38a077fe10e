"""Text tables as people write them: pandas' default headers, quoted cells, whitespace .txt, stdin, streaming.

Every case checks the parsed array against the array that was written out or an independent reader (np.loadtxt,
pandas.read_csv), and the loss against torch.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossctl.errors import InputError, UsageError
from lossctl.io import _sniff_bytes, load_array
from lossctl.io import text as text_mod
from lossctl.io.rows import open_rows

pd = pytest.importorskip("pandas")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, C = 30, 5


@pytest.fixture
def frame(rng):
    return pd.DataFrame(rng.normal(size=(N, C)))


@pytest.fixture
def targets(rng):
    return pd.Series(rng.integers(0, C, N))


def write_quoted(path, rows, header=None):
    with open(path, "w", newline="") as fp:
        w = csv.writer(fp, quoting=csv.QUOTE_ALL)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return str(path)


def streamed(path, step=7, **kw):
    """Every row of `path` through open_rows, read `step` rows at a time; and the reader's header flag."""
    reader = open_rows(str(path), "--logits", step, **kw)
    try:
        parts = []
        while len(part := reader.read(step)):
            parts.append(part.copy())
        return np.concatenate(parts), reader.header
    finally:
        reader.close()


# --- pandas' default header -------------------------------------------------------------------------------------

def test_pandas_frame_and_series_with_default_headers(tmp_path, frame, targets):
    frame.to_csv(tmp_path / "x.csv", index=False)
    targets.to_csv(tmp_path / "t.csv", index=False)
    assert (tmp_path / "x.csv").read_text().splitlines()[0] == "0,1,2,3,4"
    x = load_array(str(tmp_path / "x.csv"), option="--logits")
    assert x.header is True and x.binary is False and x.array.dtype == np.float64
    np.testing.assert_array_equal(x.array, frame.to_numpy())  # repr round-trips float64 exactly
    np.testing.assert_array_equal(x.array, pd.read_csv(tmp_path / "x.csv").to_numpy())
    # An integer column under `0` could be class 0 on top: read as data unless told otherwise.
    t = load_array(str(tmp_path / "t.csv"), option="--target")
    assert t.header is False and t.array.tolist() == [0, *targets.tolist()]
    t = load_array(str(tmp_path / "t.csv"), option="--target", header="yes")
    assert t.header is True and t.array.dtype == np.int64
    np.testing.assert_array_equal(t.array, targets.to_numpy())


def test_pandas_float_series_header_is_skipped(tmp_path, rng):
    s = pd.Series(rng.uniform(size=N))
    s.to_csv(tmp_path / "p.csv", index=False)
    got = load_array(str(tmp_path / "p.csv"), option="--input")
    assert got.header is True and got.array.shape == (N,)
    np.testing.assert_array_equal(got.array, s.to_numpy())
    got = load_array("-", option="--input", stdin=b"0\n0.5\n1.25\n")
    assert got.header is True and got.array.tolist() == [0.5, 1.25]


@pytest.mark.parametrize("classes, header", [(5, True), (3, True), (2, False)])
def test_pandas_one_hot_frame(tmp_path, rng, classes, header):
    onehot = pd.DataFrame(np.eye(classes, dtype=np.int64)[rng.integers(0, classes, N)])
    onehot.to_csv(tmp_path / "y.csv", index=False)
    got = load_array(str(tmp_path / "y.csv"), option="--target")
    # 0,1,...,C-1 with C >= 3 holds a value no 0/1 row below reaches; with C = 2 it is itself a one-hot row.
    assert got.header is header
    expected = onehot.to_numpy() if header else np.vstack([np.arange(classes), onehot.to_numpy()])
    np.testing.assert_array_equal(got.array, expected)
    np.testing.assert_array_equal(load_array(str(tmp_path / "y.csv"), option="--target", header="yes").array,
                                  onehot.to_numpy())


def test_integer_table_whose_values_reach_c_minus_1_keeps_its_first_row(tmp_path, rng):
    arr = rng.integers(0, 10, (N, 3))
    arr[:, 2] = 9
    arr[0] = [0, 1, 2]
    np.savetxt(tmp_path / "k.csv", arr, fmt="%d", delimiter=",")
    got = load_array(str(tmp_path / "k.csv"), option="--target")
    assert got.header is False
    np.testing.assert_array_equal(got.array, np.loadtxt(tmp_path / "k.csv", delimiter=",", dtype=np.int64))
    tiled = np.tile(np.arange(4), (6, 1))  # every row 0..C-1: data, not a header
    np.savetxt(tmp_path / "tiled.csv", tiled, fmt="%d", delimiter=",")
    np.testing.assert_array_equal(load_array(str(tmp_path / "tiled.csv"), option="--target").array, tiled)


def test_header_yes_and_no(tmp_path, frame):
    frame.to_csv(tmp_path / "x.csv", index=False)
    got = load_array(str(tmp_path / "x.csv"), option="--logits", header="no")
    assert got.header is False
    np.testing.assert_array_equal(got.array, np.vstack([np.arange(C), frame.to_numpy()]))
    np.savetxt(tmp_path / "plain.csv", frame.to_numpy(), delimiter=",", fmt="%.17g")
    got = load_array(str(tmp_path / "plain.csv"), option="--logits", header="yes")
    assert got.header is True
    np.testing.assert_allclose(got.array, frame.to_numpy()[1:], rtol=1e-15)
    (tmp_path / "named.csv").write_text("a,b\n1.5,2.5\n")
    assert load_array(str(tmp_path / "named.csv"), option="--logits").header is True
    with pytest.raises(InputError) as exc:
        load_array(str(tmp_path / "named.csv"), option="--logits", header="no")
    assert str(exc.value) == f"--logits ({tmp_path / 'named.csv'}): row 1, column 1: 'a' is not a number"


def test_header_is_ignored_by_binary_and_json_sources(tmp_path, frame):
    np.save(tmp_path / "x.npy", frame.to_numpy())
    got = load_array(str(tmp_path / "x.npy"), option="--logits", header="yes")
    assert got.header is None and got.binary
    np.testing.assert_array_equal(got.array, frame.to_numpy())
    got = load_array("[[1.5, 2.5]]", option="--logits", header="yes")
    assert got.header is None and got.array.tolist() == [[1.5, 2.5]]


def test_bad_header_value_is_a_usage_error(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    for call in (lambda: load_array(str(tmp_path / "x.csv"), option="--logits", header="maybe"),
                 lambda: text_mod.parse_csv("1,2\n", option="--logits", source="x", header="true"),
                 lambda: open_rows(str(tmp_path / "x.csv"), "--logits", 4, header="Yes")):
        with pytest.raises(UsageError) as exc:
            call()
        assert str(exc.value).startswith("--header: must be one of auto, yes, no; got ")


def test_header_only_file_under_yes(tmp_path):
    (tmp_path / "h.csv").write_text("0,1,2\n")
    np.testing.assert_array_equal(load_array(str(tmp_path / "h.csv"), option="--logits").array, [[0, 1, 2]])
    with pytest.raises(InputError) as exc:
        load_array(str(tmp_path / "h.csv"), option="--logits", header="yes")
    assert str(exc.value) == f"--logits ({tmp_path / 'h.csv'}): holds a header but no data rows"


# --- quoted cells ---------------------------------------------------------------------------------------------------

def test_quote_all_csv(tmp_path, rng):
    arr = rng.normal(size=(N, 4))
    path = write_quoted(tmp_path / "q.csv", [[repr(v) for v in row] for row in arr.tolist()], header="abcd")
    assert (tmp_path / "q.csv").read_bytes().startswith(b'"a","b","c","d"\r\n"')  # csv's CRLF too
    got = load_array(path, option="--logits")
    assert got.header is True
    np.testing.assert_array_equal(got.array, arr)
    np.testing.assert_array_equal(got.array, pd.read_csv(path).to_numpy())
    path = write_quoted(tmp_path / "t.csv", [[v] for v in range(7)])
    got = load_array(path, option="--target")
    assert got.array.dtype == np.int64 and got.array.tolist() == list(range(7)) and got.header is False


def test_quote_all_pandas_header(tmp_path, frame):
    frame.to_csv(tmp_path / "x.csv", index=False, quoting=csv.QUOTE_ALL)
    assert (tmp_path / "x.csv").read_text().startswith('"0","1","2","3","4"\n"')
    got = load_array(str(tmp_path / "x.csv"), option="--logits")
    assert got.header is True
    np.testing.assert_array_equal(got.array, frame.to_numpy())


def test_bad_quoted_cell_names_row_and_column(tmp_path):
    path = write_quoted(tmp_path / "q.csv", [["0.5", "1.5"], ["0.25", "oops"]], header="ab")
    with pytest.raises(InputError) as exc:
        load_array(path, option="--logits")
    assert str(exc.value) == f"--logits ({path}): row 3, column 2: 'oops' is not a number"


def test_big_quoted_csv_fast_path_equals_the_validating_parser(monkeypatch, rng):
    arr = rng.normal(size=(30_000, 4))
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL).writerows([[repr(v) for v in row] for row in arr.tolist()])
    body = '"w","x","y","z"\n# a comment line\n' + buf.getvalue()
    assert len(body) > text_mod.FAST_CSV_CHARS
    fast = text_mod.parse_table(body, option="--logits", source="x", delimiter=",")
    monkeypatch.setattr(text_mod, "FAST_CSV_CHARS", 1 << 40)
    slow = text_mod.parse_table(body, option="--logits", source="x", delimiter=",")
    assert fast[1] is True and slow[1] is True
    np.testing.assert_array_equal(fast[0], arr)
    np.testing.assert_array_equal(slow[0], arr)


# --- whitespace-delimited text --------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".txt", ".dat"])
def test_savetxt_whitespace_with_a_header_comment(tmp_path, rng, ext):
    arr = rng.normal(size=(N, C))
    path = tmp_path / f"x{ext}"
    np.savetxt(path, arr, header="logits of 5 classes", comments="# ")
    got = load_array(str(path), option="--logits")
    assert got.header is False  # a comment, not a header row
    np.testing.assert_array_equal(got.array, np.loadtxt(path))
    np.testing.assert_allclose(got.array, arr, rtol=1e-15)


def test_whitespace_runs_tabs_and_trailing_comments(tmp_path):
    (tmp_path / "x.txt").write_text("# model output\n  2.0   1.0\t0.1  # first\n\n0.1\t 2.0 1.0\n# end\n")
    got = load_array(str(tmp_path / "x.txt"), option="--logits")
    np.testing.assert_array_equal(got.array, np.loadtxt(tmp_path / "x.txt"))
    (tmp_path / "t.txt").write_text("3\n1\n0\n")
    got = load_array(str(tmp_path / "t.txt"), option="--target")
    assert got.array.dtype == np.int64 and got.array.tolist() == [3, 1, 0]  # one column: a vector
    np.savetxt(tmp_path / "c.txt", np.eye(3), delimiter=",")  # a .txt may hold CSV too
    np.testing.assert_array_equal(load_array(str(tmp_path / "c.txt"), option="--target").array, np.eye(3))


def test_csv_skips_comment_lines(tmp_path, rng):
    arr = rng.normal(size=(6, 3))
    np.savetxt(tmp_path / "x.csv", arr, delimiter=",", header="a,b,c", fmt="%.17g")  # '# a,b,c' on top
    got = load_array(str(tmp_path / "x.csv"), option="--logits")
    assert got.header is False
    np.testing.assert_array_equal(got.array, np.loadtxt(tmp_path / "x.csv", delimiter=","))


def test_big_whitespace_text_fast_path_equals_loadtxt(monkeypatch, tmp_path, rng):
    arr = rng.normal(size=(30_000, 4))
    np.savetxt(tmp_path / "x.txt", arr, header="big", comments="# ")
    body = (tmp_path / "x.txt").read_text()
    assert len(body) > text_mod.FAST_CSV_CHARS
    fast, _ = text_mod.parse_table(body, option="--logits", source="x")
    monkeypatch.setattr(text_mod, "FAST_CSV_CHARS", 1 << 40)
    slow, _ = text_mod.parse_table(body, option="--logits", source="x")
    reference = np.loadtxt(tmp_path / "x.txt")
    np.testing.assert_array_equal(fast, reference)
    np.testing.assert_array_equal(slow, reference)


@pytest.mark.parametrize("body, message", [
    ("# header\n1 2 3\n4 5\n", "ragged rows: row 3 has 2 columns, expected 3"),
    ("# header\n1 2 3\n\n4 x 6\n", "row 4, column 2: 'x' is not a number"),
    ("1.5 2.5\n3.5 1e999\n", "row 2, column 2: '1e999' overflows float64"),
    ("# only a comment\n", "holds only comments, no data"),
])
def test_whitespace_errors_name_the_file_line_and_column(tmp_path, body, message):
    (tmp_path / "x.txt").write_text(body)
    with pytest.raises(InputError) as exc:
        load_array(str(tmp_path / "x.txt"), option="--logits")
    assert str(exc.value) == f"--logits ({tmp_path / 'x.txt'}): {message}"


# --- standard input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"2.0 1.0 0.1\n0.1 2.0 1.0\n",
    b"  2.0\t1.0 0.1\n0.1   2.0\t1.0\n",
    b"# x\n2.0 1.0 0.1 # one\n0.1 2.0 1.0\n",
    b'"2.0","1.0","0.1"\n"0.1","2.0","1.0"\n',
    b"2.0;1.0;0.1\n0.1;2.0;1.0\n",
])
def test_stdin_sniffing(data):
    reference = np.loadtxt(io.StringIO(data.decode().replace('"', "").replace(";", " ").replace(",", " ")))
    got = _sniff_bytes(data, option="--logits", source="<stdin>")
    assert got.header is False and got.source == "<stdin>"
    np.testing.assert_array_equal(got.array, reference)
    np.testing.assert_array_equal(load_array("-", option="--logits", stdin=data).array, reference)


def test_stdin_header_option_and_error():
    got = load_array("-", option="--logits", stdin=b"x y z\n2.0 1.0 0.1\n")
    assert got.header is True and got.array.tolist() == [[2.0, 1.0, 0.1]]
    got = load_array("-", option="--logits", stdin=b"0 1\n5 6\n", header="yes")
    assert got.header is True and got.array.tolist() == [[5, 6]]
    with pytest.raises(InputError) as exc:
        load_array("-", option="--logits", stdin=b"2.0 1.0 0.1\n0.1 2.0\n")
    assert str(exc.value) == "--logits (<stdin>): ragged rows: row 2 has 2 columns, expected 3"


# --- streaming ------------------------------------------------------------------------------------------------------

def test_streamed_quoted_file(tmp_path, rng):
    arr = rng.normal(size=(100, 3))
    path = write_quoted(tmp_path / "q.csv", [[repr(v) for v in row] for row in arr.tolist()], header="abc")
    got, header = streamed(path)
    assert header is True
    np.testing.assert_array_equal(got, arr)
    got, header = streamed(write_quoted(tmp_path / "nohead.csv", [[repr(v) for v in row] for row in arr.tolist()]))
    assert header is False
    np.testing.assert_array_equal(got, arr)


def test_streamed_pandas_header_files(tmp_path, frame, targets):
    frame.to_csv(tmp_path / "x.csv", index=False)
    got, header = streamed(tmp_path / "x.csv", step=4)
    assert header is True
    np.testing.assert_array_equal(got, frame.to_numpy())
    targets.to_csv(tmp_path / "t.csv", index=False)
    got, header = streamed(tmp_path / "t.csv", step=4)
    assert header is False and got.tolist() == [0, *targets.tolist()]  # as in memory: ambiguous, kept as data
    got, header = streamed(tmp_path / "t.csv", step=4, header="yes")
    assert header is True
    np.testing.assert_array_equal(got, targets.to_numpy())
    got, header = streamed(tmp_path / "x.csv", step=4, header="no")
    assert header is False
    np.testing.assert_array_equal(got, np.vstack([np.arange(C), frame.to_numpy()]))


def test_streamed_whitespace_text(tmp_path, rng):
    arr = rng.normal(size=(50, 4))
    np.savetxt(tmp_path / "x.txt", arr, header="a b c d", comments="# ")
    got, header = streamed(tmp_path / "x.txt", step=16)
    assert header is False
    np.testing.assert_array_equal(got, np.loadtxt(tmp_path / "x.txt"))


def test_streamed_bad_quoted_cell_names_row_and_column(tmp_path):
    rows = [["0.5", "1.5"]] * 20
    rows[12] = ["0.5", "nope"]
    path = write_quoted(tmp_path / "q.csv", rows, header="ab")
    with pytest.raises(InputError) as exc:
        streamed(path)
    assert str(exc.value) == f"--logits ({path}): row 14, column 2: 'nope' is not a number"


@pytest.mark.parametrize("columns, index", [(None, None), (list("abcde"), None), (None, [f"s{i}" for i in range(N)])])
def test_pandas_index_column_is_left_out(monkeypatch, tmp_path, frame, targets, columns, index):
    """DataFrame.to_csv's default writes the index first, under an empty header cell: once read as class 0."""
    frame = pd.DataFrame(frame.to_numpy(), columns=columns, index=index)
    frame.to_csv(tmp_path / "x.csv")
    targets.to_csv(tmp_path / "t.csv")
    expected_x = pd.read_csv(tmp_path / "x.csv", index_col=0).to_numpy()
    expected_t = pd.read_csv(tmp_path / "t.csv", index_col=0).to_numpy()[:, 0]
    for name, expected in (("x.csv", expected_x), ("t.csv", expected_t)):
        np.testing.assert_array_equal(load_array(str(tmp_path / name), option="--logits").array, expected)
        np.testing.assert_array_equal(streamed(tmp_path / name)[0], expected)
        with monkeypatch.context() as m:  # a big file's parse by pandas, with no validating parser to fall back to
            m.setattr(text_mod, "FAST_CSV_CHARS", 0)
            m.setattr(text_mod, "_fill", None)
            np.testing.assert_array_equal(load_array(str(tmp_path / name), option="--logits").array, expected)
    ref = F.cross_entropy(torch.tensor(expected_x), torch.tensor(expected_t)).item()
    for stream in ("--no-stream", "--stream"):
        res = lossctl("ce", "--logits", str(tmp_path / "x.csv"), "--target", str(tmp_path / "t.csv"), stream,
                      "-f", "plain")
        assert res.returncode == 0, res.stderr
        np.testing.assert_allclose(float(res.stdout), ref, rtol=1e-12)


def assert_refused_whole_and_streamed(path, message: str) -> None:
    """The CSV at `path` is refused as --logits with `message`, read whole and streamed alike."""
    for read in (lambda p: load_array(p, option="--logits"), streamed):
        with pytest.raises(InputError) as exc:
            read(str(path))
        assert str(exc.value) == f"--logits ({path}): {message}"


def test_index_column_cells_are_named_by_the_files_column(tmp_path, frame):
    frame.iloc[3, 1] = np.nan
    frame.to_csv(tmp_path / "x.csv")
    assert_refused_whole_and_streamed(tmp_path / "x.csv", "row 5, column 3: '' is not a number")


def test_a_first_row_missing_its_first_value_is_no_index(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(",0,1,2\n0.5,1,2,3\n")
    with pytest.raises(InputError) as exc:
        load_array(str(path), option="--logits")
    assert str(exc.value) == f"--logits ({path}): row 1, column 1: '' is not a number"


def test_header_yes_leaves_out_an_index_of_fractions(monkeypatch, tmp_path, frame, targets):
    """`,0,1,...` above an index of fractions (a float index): under auto the first row may be data missing its
    first value; --header yes says it is a header, and its empty first cell heads pandas' index, as for names."""
    index = np.arange(N) + 0.5
    frame.set_axis(index).to_csv(tmp_path / "x.csv")
    targets.set_axis(index).to_csv(tmp_path / "t.csv")
    assert (tmp_path / "x.csv").read_text().startswith(",0,1,2,3,4\n0.5,")
    expected_x = pd.read_csv(tmp_path / "x.csv", index_col=0).to_numpy()
    expected_t = pd.read_csv(tmp_path / "t.csv", index_col=0).to_numpy()[:, 0]
    for name, expected in (("x.csv", expected_x), ("t.csv", expected_t)):
        path = str(tmp_path / name)
        np.testing.assert_array_equal(load_array(path, option="--logits", header="yes").array, expected)
        np.testing.assert_array_equal(streamed(path, header="yes")[0], expected)
        with monkeypatch.context() as m:  # a big file's parse by pandas
            m.setattr(text_mod, "FAST_CSV_CHARS", 0)
            m.setattr(text_mod, "_fill", None)
            np.testing.assert_array_equal(load_array(path, option="--logits", header="yes").array, expected)
    ref = F.cross_entropy(torch.tensor(expected_x), torch.tensor(expected_t)).item()
    for stream in ("--no-stream", "--stream"):
        res = lossctl("ce", "--logits", str(tmp_path / "x.csv"), "--target", str(tmp_path / "t.csv"), stream,
                      "--header", "yes", "-f", "json")
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        np.testing.assert_allclose(out["value"], ref, rtol=1e-12)
        assert (stream == "--stream") == any("streamed" in n for n in out["notes"])


def test_semicolon_csv_as_pandas_writes_it(tmp_path, frame):
    """pandas' to_csv(sep=';'): once its first row was taken for a header and the next failed as one cell."""
    frame.to_csv(tmp_path / "x.csv", sep=";", index=False)
    frame.to_csv(tmp_path / "y.csv", sep=";", index=False, header=False)
    expected = pd.read_csv(tmp_path / "x.csv", sep=";").to_numpy()
    for name in ("x.csv", "y.csv"):
        np.testing.assert_array_equal(load_array(str(tmp_path / name), option="--logits").array, expected)
        np.testing.assert_array_equal(streamed(tmp_path / name)[0], expected)


def test_a_cell_with_an_underscore_is_no_number(tmp_path):
    """Python's float('1_0') is 10.0; np.loadtxt and pandas refuse it, and so does lossctl, whole or streamed."""
    path = tmp_path / "x.csv"
    path.write_text("1_0,2,3\n0.5,2,1\n")
    with pytest.raises(ValueError):
        np.loadtxt(path, delimiter=",")
    assert_refused_whole_and_streamed(path, "row 1, column 1: '1_0' is not a number")


def test_utf16_text_is_named(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("1\t2\t3\n0.5\t2\t1\n", encoding="utf-16")
    for source, stdin in ((str(path), None), ("-", path.read_bytes())):
        with pytest.raises(InputError) as exc:
            load_array(source, option="--logits", stdin=stdin)
        assert str(exc.value) == f"--logits ({path if stdin is None else '<stdin>'}): UTF-16 text: save it as UTF-8"


def test_decimal_comma_is_named(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("0.5;1,5;2\n")
    with pytest.raises(InputError) as exc:
        load_array(str(path), option="--logits")
    assert str(exc.value) == (f"--logits ({path}): row 1, column 2: '1,5' is not a number (a decimal comma? numbers "
                              "are read with '.')")
    with pytest.raises(InputError) as exc:
        streamed(path)
    assert str(exc.value).endswith("'1,5' is not a number (a decimal comma? numbers are read with '.')")


def test_a_quoted_semicolon_in_a_comma_header_keeps_the_comma(tmp_path, frame):
    path = tmp_path / "x.csv"
    path.write_text('"a;b",' + ",".join(f'"c{i}"' for i in range(1, C)) + "\n" + frame.to_csv(index=False,
                                                                                              header=False))
    np.testing.assert_array_equal(load_array(str(path), option="--logits").array, frame.to_numpy())


# --- the whole command ------------------------------------------------------------------------------------------

def lossctl(*args, stdin=None):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "lossctl", *args], input=stdin, capture_output=True, env=env,
                          timeout=120)


def test_cli_pandas_files_with_default_headers_equal_torch(tmp_path, frame, rng):
    """Both files as pandas writes them, 30 rows: once silently computed over 31 samples (header rows as data)."""
    probs = pd.DataFrame(rng.dirichlet(np.ones(C), N))
    frame.to_csv(tmp_path / "x.csv", index=False)
    probs.to_csv(tmp_path / "p.csv", index=False)
    res = lossctl("ce", "--logits", str(tmp_path / "x.csv"), "--target", str(tmp_path / "p.csv"), "-f", "plain")
    assert res.returncode == 0, res.stderr
    expected = F.cross_entropy(torch.tensor(frame.to_numpy()), torch.tensor(probs.to_numpy())).item()
    np.testing.assert_allclose(float(res.stdout), expected, rtol=1e-12)


def test_cli_pandas_integer_series_target_is_refused_not_miscounted(tmp_path, frame, targets):
    """An integer Series' `0` header is ambiguous (class 0?): one clear line, never a 31-sample result."""
    frame.to_csv(tmp_path / "x.csv", index=False)
    targets.to_csv(tmp_path / "t.csv", index=False)
    res = lossctl("ce", "--logits", str(tmp_path / "x.csv"), "--target", str(tmp_path / "t.csv"), "-f", "plain")
    assert res.returncode == 2 and res.stdout == b""
    err = res.stderr.decode().strip()
    assert "\n" not in err and "Traceback" not in err
    assert "--target" in err and "(31,)" in err and "(30, 5)" in err


def test_cli_whitespace_stdin(tmp_path):
    """The issue's example: `printf '2.0 1.0 0.1\\n0.1 2.0 1.0\\n' | lossctl ce --logits - --target '[0,1]'`."""
    res = lossctl("ce", "--logits", "-", "--target", "[0,1]", "-f", "plain", stdin=b"2.0 1.0 0.1\n0.1 2.0 1.0\n")
    assert res.returncode == 0, res.stderr
    x = torch.tensor([[2.0, 1.0, 0.1], [0.1, 2.0, 1.0]], dtype=torch.float64)
    expected = F.cross_entropy(x, torch.tensor([0, 1])).item()
    np.testing.assert_allclose(float(res.stdout), expected, rtol=1e-12)


def test_a_csv_header_holding_a_semicolon_keeps_the_comma(cli, tmp_path):
    """Only a file whose first two lines both hold ';' is ;-separated: a header cell 'x;y' above comma rows is not."""
    (tmp_path / "x.csv").write_text("x;y,z\n0.5,1.5\n-1.0,2.0\n")
    (tmp_path / "t.csv").write_text("0\n1\n")
    want = F.cross_entropy(torch.tensor([[0.5, 1.5], [-1.0, 2.0]], dtype=torch.float64), torch.tensor([0, 1]))
    for stream in ("--no-stream", "--stream"):
        res = cli("ce", "--logits", tmp_path / "x.csv", "--target", tmp_path / "t.csv", stream, "-f", "plain")
        assert float(res.stdout) == pytest.approx(float(want), rel=1e-12), stream
