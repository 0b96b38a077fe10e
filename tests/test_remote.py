"""Sources given as URLs, read through fsspec: http(s) from a local http.server thread, s3 from moto's
ThreadedMotoServer (in a child process, so that the memory test measures lossctl alone), all on 127.0.0.1.
Every remote result is held to the same files computed locally, bit for bit."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossctl
from lossctl import stream
from lossctl.errors import InputError
from lossctl.io import remote

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

N, C = 40, 5


def write_formats(folder: Path, seed: int = 0) -> None:
    """The same logits and targets in every format lossctl reads."""
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal((N, C)), rng.integers(0, C, N)
    np.save(folder / "x.npy", x)
    np.save(folder / "t.npy", t)
    np.savez(folder / "b.npz", logits=x, target=t)
    torch.save({"logits": torch.from_numpy(x), "target": torch.from_numpy(t)}, folder / "b.pt")
    (folder / "x.csv").write_text("\n".join(",".join(repr(v) for v in row) for row in x.tolist()) + "\n")
    (folder / "t.csv").write_text("\n".join(map(str, t.tolist())) + "\n")
    (folder / "t.json").write_text(json.dumps(t.tolist()))
    save_file({"logits": x, "target": t}, str(folder / "b.safetensors"))
    pq.write_table(pa.table({"logits": pa.array(list(x)), "target": t}), folder / "b.parquet")
    feather.write_feather(pa.table({"logits": pa.array(list(x)), "target": t}), folder / "b.feather")  # lz4
    with pa.ipc.new_stream(str(folder / "b.arrow"), pa.schema([("logits", pa.list_(pa.float64())),
                                                               ("target", pa.int64())])) as w:  # the stream format
        w.write_table(pa.table({"logits": pa.array(list(x)), "target": t}))
    (folder / "b.jsonl").write_text("".join(json.dumps({"logits": a, "target": b}) + "\n"
                                            for a, b in zip(x.tolist(), t.tolist(), strict=True)))


CASES = {  # name: (sources with {} for the folder or URL, --from bundle)
    "npy": ({"logits": "{}/x.npy", "target": "{}/t.npy"}, None),
    "csv+json": ({"logits": "{}/x.csv", "target": "{}/t.json"}, None),
    "npz": ({"logits": "{}/b.npz:logits", "target": "{}/b.npz:target"}, None),
    "npz-from": ({}, "{}/b.npz"),
    "pt": ({"logits": "{}/b.pt:logits", "target": "{}/b.pt:target"}, None),
    "pt-from": ({}, "{}/b.pt"),
    "safetensors": ({"logits": "{}/b.safetensors:logits", "target": "{}/b.safetensors:target"}, None),
    "safetensors-from": ({}, "{}/b.safetensors"),
    "parquet": ({"logits": "{}/b.parquet:logits", "target": "{}/b.parquet:target"}, None),
    "feather": ({"logits": "{}/b.feather:logits", "target": "{}/b.feather:target"}, None),
    "feather-from": ({}, "{}/b.feather"),
    "arrow-stream": ({"logits": "{}/b.arrow:logits", "target": "{}/b.arrow:target"}, None),
    "jsonl-from": ({}, "{}/b.jsonl"),
    "jsonl": ({"logits": "{}/b.jsonl:logits", "target": "{}/b.jsonl:target"}, None),
}


def same_as_local(base: str, folder: Path, case: str, **kw) -> None:
    sources, bundle = CASES[case]
    got = lossctl.compute("ce", **{k: v.format(base) for k, v in sources.items()},
                          bundle=bundle and bundle.format(base), **kw)
    want = lossctl.compute("ce", **{k: v.format(folder) for k, v in sources.items()},
                           bundle=bundle and bundle.format(folder), **kw)
    assert got.to_dict() == want.to_dict()  # the value and the float64 partial sums, bit for bit
    if case == "npy":  # and the local run is torch's number
        x, t = np.load(folder / "x.npy"), np.load(folder / "t.npy")
        assert want.value == pytest.approx(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item(),
                                           rel=1e-12)


# --- http(s) -------------------------------------------------------------------------------------------------

class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class ServesRanges(Quiet):
    """Python's file server, answering `Range: bytes=a-b` with those bytes (206), as most file hosts do."""

    def do_GET(self) -> None:
        asked = self.headers.get("Range", "")
        if not asked.startswith("bytes="):
            return super().do_GET()
        data = Path(self.translate_path(self.path)).read_bytes()
        first, _, last = asked[6:].partition("-")
        begin, end = int(first), min(int(last or len(data) - 1), len(data) - 1) + 1
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {begin}-{end - 1}/{len(data)}")
        self.send_header("Content-Length", str(end - begin))
        self.end_headers()
        self.wfile.write(data[begin:end])


def served(tmp_path_factory, name: str, handler):
    """Every format in a fresh folder, served over http on 127.0.0.1 by `handler` while the module's tests run."""
    folder = tmp_path_factory.mktemp(name)
    write_formats(folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """Python's own server, which ignores range requests, as some servers do."""
    yield from served(tmp_path_factory, "web", Quiet)


@pytest.fixture(scope="module")
def ranged_web(tmp_path_factory):
    """The same files from a server that serves byte ranges."""
    yield from served(tmp_path_factory, "ranged", ServesRanges)


@pytest.mark.parametrize("case", list(CASES))
def test_http_sources_equal_the_local_files(web, case):
    folder, base = web
    same_as_local(base, folder, case)


@pytest.mark.parametrize("files", [("x.npy", "t.npy"), ("x.csv", "t.csv"), ("b.jsonl:logits", "b.jsonl:target")])
def test_http_streams_in_chunks_as_a_local_file_does(web, monkeypatch, files):
    folder, base = web
    monkeypatch.setattr(stream, "CHUNK_BYTES", 256)  # a few rows a chunk: many chunks, in order
    got = lossctl.compute("ce", logits=f"{base}/{files[0]}", target=f"{base}/{files[1]}", stream=True)
    want = lossctl.compute("ce", logits=str(folder / files[0]), target=str(folder / files[1]), stream=True)
    chunks = [n for n in got.notes if n.startswith("streamed in")]
    assert chunks == [n for n in want.notes if n.startswith("streamed in")]
    assert int(chunks[0].split()[2]) > 5  # many chunks, read in order
    assert got.to_dict() == want.to_dict()


@pytest.mark.parametrize("case", ["parquet", "feather", "feather-from", "arrow-stream", "safetensors",
                                  "safetensors-from"])
def test_http_files_read_at_offsets_where_the_server_serves_ranges(web, ranged_web, monkeypatch, case):
    """Parquet, Arrow IPC and .safetensors are read at offsets from a server that serves byte ranges; from one
    that does not, they are copied to a temporary file first. Either way the result is the local file's."""
    import lossctl.io

    copies = []
    monkeypatch.setattr(lossctl.io, "local_copy", lambda path, option: copies.append(path) or remote.local_copy(
        path, option))
    for (folder, base), ranges in ((ranged_web, True), (web, False)):
        copies.clear()
        assert remote.serves_ranges(f"{base}/b.parquet") is ranges
        same_as_local(base, folder, case)
        if ranges and case in ("parquet", "feather", "arrow-stream"):  # and streamed, a record batch at a time
            sources = {k: v.format(base) for k, v in CASES[case][0].items()}
            got = lossctl.compute("ce", **sources, stream=True).to_dict()
            want = lossctl.compute("ce", **{k: v.format(folder) for k, v in CASES[case][0].items()}).to_dict()
            assert got.pop("notes")[0].startswith("streamed in")  # (its chunks sized from the first rows read)
            assert got == {k: v for k, v in want.items() if k != "notes"}
        assert bool(copies) is not ranges, copies


def test_http_cli_output_and_errors(web, cli):
    folder, base = web
    got = cli("ce", "--logits", f"{base}/x.npy", "--target", f"{base}/t.npy", "-f", "plain")
    assert got.stdout == cli("ce", "--logits", folder / "x.npy", "--target", folder / "t.npy", "-f", "plain").stdout
    ran = cli("ce", "--logits", f"{base}/nothere.npy", "--target", f"{base}/t.npy", code=2)
    assert ran.stderr == f"lossctl: error: --logits ({base}/nothere.npy): no such file\n"
    ran = cli("ce", "--logits", f"{base}/x*.npy", "--target", f"{base}/t.npy", code=2)
    assert ran.stderr == ("lossctl: error: --logits: a glob cannot match http:// URLs (a web server gives no "
                          "listing); give each URL\n")


# --- s3 ------------------------------------------------------------------------------------------------------

MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""
BUCKET = "lossctl-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 on 127.0.0.1; s3fs finds it and the fake credentials where it finds real ones: the environment."""
    s3fs = pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", MOTO, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")  # botocore's own endpoint setting
        try:
            assert proc.stdout.readline().strip() == "ready"
            s3fs.S3FileSystem.clear_instance_cache()
            fs = s3fs.S3FileSystem()
            fs.mkdir(BUCKET)
            folder = tmp_path_factory.mktemp("s3")
            write_formats(folder)
            fs.put([str(p) for p in folder.iterdir()], f"{BUCKET}/formats/")
            yield fs, folder
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            proc.stdin.close()
            proc.wait(timeout=10)


@pytest.mark.parametrize("case", ["npy", "csv+json", "npz", "pt", "safetensors", "parquet", "feather", "feather-from",
                                  "arrow-stream", "jsonl-from"])
def test_s3_sources_equal_the_local_files(s3, case):
    fs, folder = s3
    same_as_local(f"s3://{BUCKET}/formats", folder, case)


def test_s3_glob_over_shards_equals_the_local_run(s3, cli, tmp_path):
    fs, _ = s3
    rng = np.random.default_rng(3)
    for i in range(4):
        np.save(tmp_path / f"logits_{i:02d}.npy", rng.standard_normal((N, C)).astype(np.float32))
        np.save(tmp_path / f"target_{i:02d}.npy", rng.integers(0, C, N))
    fs.put([str(p) for p in sorted(tmp_path.iterdir())], f"{BUCKET}/shards/")
    url = f"s3://{BUCKET}/shards"
    got = json.loads(cli("ce", "--logits", f"{url}/logits_*.npy", "--target", f"{url}/target_*.npy",
                         "-f", "json").stdout)
    want = json.loads(cli("ce", "--logits", f"{tmp_path}/logits_*.npy", "--target", f"{tmp_path}/target_*.npy",
                          "-f", "json").stdout)
    assert [f.pop("file") for f in got["files"]] == [f"{url}/logits_{i:02d}.npy" for i in range(4)]
    assert [f.pop("file") for f in want["files"]] == [f"{tmp_path}/logits_{i:02d}.npy" for i in range(4)]
    assert got == want
    ran = cli("ce", "--logits", f"{url}/nomatch_*.npy", "--target", f"{url}/target_*.npy", code=2)
    assert ran.stderr == f"lossctl: error: --logits ({url}/nomatch_*.npy): the pattern matches no file\n"


def traced(compute):
    """compute()'s result and the peak of memory traced (tracemalloc) while it ran."""
    tracemalloc.start()
    try:
        return compute(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_s3_big_npy_streams_in_bounded_memory(s3, monkeypatch, tmp_path):
    fs, _ = s3
    rows = 1 << 18
    rng = np.random.default_rng(5)
    np.save(tmp_path / "big.npy", rng.standard_normal((rows, 16)).astype(np.float32))  # 16 MiB
    np.save(tmp_path / "big_t.npy", rng.integers(0, 16, rows).astype(np.int32))  # 1 MiB
    fs.put([str(tmp_path / "big.npy"), str(tmp_path / "big_t.npy")], f"{BUCKET}/big/")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 256 << 10)
    monkeypatch.setattr(remote, "BLOCK_BYTES", 256 << 10)
    url = f"s3://{BUCKET}/big"
    want = lossctl.compute("ce", logits=str(tmp_path / "big.npy"), target=str(tmp_path / "big_t.npy"), stream=True,
                           threads=1)
    got, peak = traced(lambda: lossctl.compute("ce", logits=f"{url}/big.npy", target=f"{url}/big_t.npy",
                                               stream=True, threads=1))
    assert got.to_dict() == want.to_dict()
    assert any("streamed in 64 chunks" in n for n in got.notes)
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB held to stream a 17 MiB file"


def test_s3_big_jsonl_streams_in_bounded_memory(s3, monkeypatch, tmp_path):
    """JSON Lines are read front to back, so a remote file streams as a local one does, without a local copy."""
    fs, _ = s3
    rng = np.random.default_rng(6)
    x, t = rng.standard_normal((40000, 8)).round(6), rng.integers(0, 8, 40000)
    with open(tmp_path / "big.jsonl", "w") as f:
        f.writelines(json.dumps({"logits": a, "target": b}) + "\n" for a, b in zip(x.tolist(), t.tolist(), strict=True))
    size = (tmp_path / "big.jsonl").stat().st_size
    fs.put(str(tmp_path / "big.jsonl"), f"{BUCKET}/big/big.jsonl")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 64 << 10)
    monkeypatch.setattr(remote, "BLOCK_BYTES", 256 << 10)
    url = f"s3://{BUCKET}/big/big.jsonl"
    got, peak = traced(lambda: lossctl.compute("ce", logits=f"{url}:logits", target=f"{url}:target", stream=True,
                                               threads=1))
    assert got.value == pytest.approx(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item(), rel=1e-12)
    assert any(n.startswith("streamed in") for n in got.notes)
    assert peak < size / 1.5, f"{peak / 2**20:.1f} MiB held to stream a {size / 2**20:.1f} MiB file"  # 2.2 seen


def test_s3_parquet_streams_by_row_group_in_bounded_memory(s3, monkeypatch, tmp_path):
    """Parquet is read at offsets (its footer, then a row group at a time), so a file on S3 streams without a local
    copy; over http, which need not serve ranges, it is still copied first (the web cases above)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, _ = s3
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((60000, 8)), rng.integers(0, 8, 60000)
    pq.write_table(pa.table({"logits": pa.array(list(x)), "target": t}), tmp_path / "big.parquet",
                   row_group_size=5000)
    fs.put(str(tmp_path / "big.parquet"), f"{BUCKET}/big/big.parquet")
    monkeypatch.setattr(stream, "CHUNK_BYTES", 64 << 10)
    monkeypatch.setattr(remote, "BLOCK_BYTES", 256 << 10)
    url = f"s3://{BUCKET}/big/big.parquet"
    peaks = {}
    for streamed in (True, False):
        got, peaks[streamed] = traced(lambda streamed=streamed: lossctl.compute(
            "ce", logits=f"{url}:logits", target=f"{url}:target", stream=streamed, threads=1))
        assert got.value == pytest.approx(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item(),
                                          rel=1e-12)
        assert any(n.startswith("streamed in") for n in got.notes) == streamed
    assert peaks[True] < peaks[False] / 3, peaks


def test_remote_reads_import_fsspec_only_when_a_url_is_given():
    probe = ("import sys, lossctl; lossctl.compute('ce', logits='examples/logits.npy', target='examples/targets.npy');"
             "print('fsspec' in sys.modules)")
    from conftest import ROOT

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("url, package", [("gs://bucket/x.npy", "gcsfs"), ("az://container/x.npy", "adlfs"),
                                          ("hf://datasets/org/data/x.npy", "huggingface_hub")])
def test_a_missing_file_system_package_is_named(url, package):
    try:
        __import__(package)
        pytest.skip(f"{package} is installed")
    except ImportError:
        pass
    with pytest.raises(InputError) as err:
        lossctl.compute("ce", logits=url, target="[0]")
    scheme = url.split(":")[0]
    assert str(err.value) == f"--logits ({url}): reading {scheme}:// URLs needs {package}: pip install {package}"


def test_missing_fsspec_names_the_extra(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    ran = cli("ce", "--logits", "s3://bucket/x.npy", "--target", "[0]", code=2)
    assert ran.stderr == ("lossctl: error: --logits (s3://bucket/x.npy): reading s3:// URLs needs fsspec: "
                          "pip install 'lossctl[remote]'\n")


def test_remote_shards_on_a_local_cluster(web, cli):
    pytest.importorskip("distributed")
    folder, base = web
    args = ["ce", "--logits", f"{base}/x.npy", "--logits", f"{base}/x.csv", "--target", f"{base}/t.npy",
            "--target", f"{base}/t.json", "-f", "json"]
    t0 = time.monotonic()
    got = json.loads(cli(*args, "--scheduler", "local:2").stdout)
    assert got == json.loads(cli(*args).stdout)
    assert time.monotonic() - t0 < 30


def counting_opens(monkeypatch, module) -> list[int]:
    """The bytes of each range request that files `module` opens with remote.open_random fetch, as a list."""
    fetched: list[int] = []

    def counting(path, option):
        fp = remote.open_random(path, option)
        fetch = fp.cache.fetcher  # what fsspec's read-ahead cache calls for each range request
        fp.cache.fetcher = lambda start, end: fetched.append(end - start) or fetch(start, end)
        return fp

    monkeypatch.setattr(module, "open_random", counting)
    monkeypatch.setattr(remote, "BLOCK_BYTES", 64 << 10)  # what each request may fetch beyond what is asked
    return fetched


def test_s3_arrow_ipc_fetches_only_the_columns_read(s3, monkeypatch, tmp_path):
    """An Arrow IPC / Feather file on S3 is read at offsets: its footer, then only the chosen columns' buffers, a
    record batch at a time when it streams, so a wide column beside the ones read is never fetched."""
    import pyarrow as pa
    import pyarrow.feather as feather

    from lossctl.io import arrow

    fs, _ = s3
    rng = np.random.default_rng(8)
    x, t = rng.standard_normal((40000, 8)), rng.integers(0, 8, 40000)
    other = rng.standard_normal((40000, 64))  # 20 MiB that no run reads
    table = pa.table({"logits": pa.array(list(x)), "target": t, "embedding": pa.array(list(other))})
    feather.write_feather(table, tmp_path / "wide.feather", compression="uncompressed", chunksize=5000)
    fs.put(str(tmp_path / "wide.feather"), f"{BUCKET}/big/wide.feather")
    size = (tmp_path / "wide.feather").stat().st_size
    fetched = counting_opens(monkeypatch, arrow)
    monkeypatch.setattr(stream, "CHUNK_BYTES", 64 << 10)
    url = f"s3://{BUCKET}/big/wide.feather"
    want = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item()
    for streamed in (True, False):
        fetched.clear()
        got = lossctl.compute("ce", logits=f"{url}:logits", target=f"{url}:target", stream=streamed, threads=1)
        assert got.value == pytest.approx(want, rel=1e-12)
        assert any(n.startswith("streamed in") for n in got.notes) == streamed
        assert 0 < sum(fetched) < size / 3, f"{sum(fetched) / 2**20:.1f} MiB fetched of a {size / 2**20:.1f} MiB file"


def test_s3_safetensors_fetches_its_header_and_the_tensors_read(s3, monkeypatch, tmp_path):
    """A .safetensors file on S3 is read at offsets: its header, then each tensor read, never the others' bytes;
    bfloat16 widens as it does from a local file, and a damaged header is the local file's error, naming the URL."""
    from safetensors.torch import save_file

    from lossctl.io import safetensors

    fs, _ = s3
    rng = np.random.default_rng(9)
    x, t = rng.standard_normal((2000, 10)), rng.integers(0, 10, 2000)
    save_file({"logits": torch.from_numpy(x), "target": torch.from_numpy(t), "hidden": torch.zeros(2000, 768),
               "half": torch.from_numpy(x).to(torch.bfloat16)}, str(tmp_path / "out.safetensors"))
    (tmp_path / "bad.safetensors").write_bytes((10**6).to_bytes(8, "little") + b"{}")
    fs.put([str(tmp_path / "out.safetensors"), str(tmp_path / "bad.safetensors")], f"{BUCKET}/st/")
    size = (tmp_path / "out.safetensors").stat().st_size
    fetched = counting_opens(monkeypatch, safetensors)
    url = f"s3://{BUCKET}/st/out.safetensors"
    got = lossctl.compute("ce", logits=f"{url}:logits", target=f"{url}:target")
    assert got.value == pytest.approx(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item(), rel=1e-12)
    assert 0 < sum(fetched) < size / 10, f"{sum(fetched)} bytes fetched of a {size}-byte file"
    half = lossctl.compute("ce", logits=f"{url}:half", target=f"{url}:target")
    assert half.to_dict() == lossctl.compute("ce", logits=f"{tmp_path}/out.safetensors:half",
                                             target=f"{tmp_path}/out.safetensors:target").to_dict()
    bundle = lossctl.compute("ce", bundle=url)  # every tensor fetched; the roles take theirs by name
    assert bundle.value == got.value
    with pytest.raises(InputError) as err:
        lossctl.compute("ce", logits=f"s3://{BUCKET}/st/bad.safetensors", target="[0]")
    assert str(err.value) == (f"--logits (s3://{BUCKET}/st/bad.safetensors): truncated: the header claims 1000000 "
                              "bytes but only 2 follow its length")


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:1/x.npy", "cannot read (ClientConnectorError: Cannot connect to host 127.0.0.1:1"),
    ("ftp://127.0.0.1:1/x.npy", "cannot reach the server (ConnectionRefusedError: "),
])
def test_an_unreachable_server_is_one_line_not_no_such_file(cli, url, why):
    ran = cli("ce", "--logits", url, "--target", "[0]", code=2)
    assert ran.stderr.startswith(f"lossctl: error: --logits ({url}): {why}") and ran.stderr.count("\n") == 1, \
        ran.stderr
