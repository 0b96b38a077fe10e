"""`lossctl --help`, `list`, `--version` and usage errors must stay fast: they never import torch."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

# Run the app in a fresh interpreter, then report which heavy modules the runs pulled in.
PROBE = """
import contextlib, io, json, sys
from lossctl.cli import main
runs = {}
for args in json.loads(sys.argv[1]):
    sys.argv = ["lossctl", *args]
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main()
        except SystemExit as exc:
            code = exc.code or 0
    runs[" ".join(args)] = code
print(json.dumps({"codes": runs, "torch": "torch" in sys.modules, "numpy": "numpy" in sys.modules}))
"""


def probe(*runs: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(runs))], capture_output=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def test_import_does_not_load_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lossctl.cli"], capture_output=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    modules = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines() if "|" in line}
    assert "lossctl.cli" in modules
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}
    assert "numpy" not in modules


def test_help_version_and_usage_errors_do_not_load_torch_or_numpy():
    out = probe(["--help"], ["--version"], ["ce", "--help"], ["decompose", "--help"], ["ce", "--nosuch"],
                ["nosuchloss"])
    assert out["codes"] == {"--help": 0, "--version": 0, "ce --help": 0, "decompose --help": 0,
                            "ce --nosuch": 2, "nosuchloss": 2}
    assert out["torch"] is False and out["numpy"] is False


def test_list_and_missing_arrays_do_not_load_torch():
    out = probe(["list"], ["list", "-f", "json"], ["ce", "--logits", "[[1.0, 2.0]]"],
                ["ce", "--logits", "[[1.0, 2.0]]", "--target", "[0]", "--reduction", "batchmean"])
    assert out["codes"] == {"list": 0, "list -f json": 0, "ce --logits [[1.0, 2.0]]": 2,
                            "ce --logits [[1.0, 2.0]] --target [0] --reduction batchmean": 2}
    assert out["torch"] is False
