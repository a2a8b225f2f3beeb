"""Fast start: ``import workbench`` and the CLI module load no torch, triton, plotly or ipywidgets; every public
name of ``workbench`` still resolves (lazily) on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "triton", "plotly", "ipywidgets", "pandas", "transformers")


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_import_workbench_and_cli_loads_nothing_heavy():
    out = _run(
        "import sys, json\n"
        "import workbench, workbench.cli\n"
        "from workbench.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    assert json.loads(out) == []


def test_help_loads_nothing_heavy():
    out = _run(
        "import sys, json, contextlib, io\n"
        "from workbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    assert json.loads(out) == []


@pytest.mark.slow  # a fresh interpreter that imports every lab (torch, plotly, ipywidgets)
def test_public_names_resolve_on_first_use():
    out = _run(
        "import sys, json\n"
        "import workbench as wb\n"
        "before = 'torch' in sys.modules\n"
        "import torch\n"
        "m = torch.nn.Sequential(torch.nn.Linear(8, 4))\n"
        "table = wb.apply(m, '2:4')\n"
        "applied = wb.current_formats(m)\n"
        "wb.restore(m)\n"
        "from workbench import quantize, parse_format, list_formats, bits_per_weight, model_size_bytes\n"
        "from workbench import load_model, ModelHandle, WorkbenchError\n"
        "names = {n: callable(getattr(wb, n)) for n in wb.__all__ if n != 'Workbench'}\n"
        "print(json.dumps({'before': before, 'applied': applied, 'after': wb.current_formats(m),\n"
        "                  'names': names, 'q': quantize(torch.tensor([300.0]), 'fp8_e4m3', granularity=None).item(),\n"
        "                  'fmt': parse_format('2:4+int8').name, 'sub': wb.sparsity.__name__,\n"
        "                  'dir': sorted(set(wb.__all__) - set(dir(wb)))}))\n")
    res = json.loads(out)
    assert res["before"] is False
    assert res["applied"] == {"0": "2:4"} and res["after"] == {}
    assert res["names"] and all(res["names"].values())
    assert res["q"] == 288.0 and res["fmt"] == "2:4+int8" and res["sub"] == "workbench.sparsity"
    assert res["dir"] == []


def test_labs_are_lazy_submodules():
    out = _run(
        "import sys, json\n"
        "import workbench as wb\n"
        "before = [m for m in ('workbench.metric', 'workbench.zeroshot', 'torch') if m in sys.modules]\n"
        "print(json.dumps({'before': before, 'dir': [n for n in ('metric', 'zeroshot') if n in dir(wb)],\n"
        "                  'metric': wb.metric.fit_metric.__module__, 'zeroshot': wb.zeroshot.__name__}))\n")
    res = json.loads(out)
    assert res["before"] == [] and res["dir"] == ["metric", "zeroshot"]
    assert res["metric"] == "workbench.metric.fit" and res["zeroshot"] == "workbench.zeroshot"


def test_unknown_attribute_is_an_attribute_error():
    out = _run("import workbench\ntry:\n    workbench.nope\nexcept AttributeError as e:\n    print(e)\n")
    assert "no attribute 'nope'" in out
