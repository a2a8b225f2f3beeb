"""Build the report notebooks with nbformat (committed without outputs).

    python scripts/make_notebook_reports.py          # writes both notebooks below

- notebooks/reports/compression_report.ipynb: the compression report (model x formats).
- tests/notebooks/tiny_report.ipynb: a seconds-long report for the tests and the sweep benchmark; it fails on
  purpose when ``x == fail_on`` unless the file named by ``gate`` exists (so a test can "fix the cause" without
  changing any parameter).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _nb(cells: list) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def params_cell(source: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source.strip("\n"))
    cell.metadata["tags"] = ["parameters"]
    return cell


def tiny_report() -> nbformat.NotebookNode:
    return _nb([
        new_markdown_cell("# Tiny report\n\nA seconds-long parameterized notebook for the report and sweep tests."),
        params_cell('''
x: int = 1  # the grid variable
scale: float = 1.0  # multiplies x
label = "a"  # a free-text label
fail_on: int = -1  # raise when x equals this, unless the gate file exists
gate = ""  # path of a file whose existence disables the failure
seed = 0  # random seed
quick = None  # None = follow WORKBENCH_QUICK
plot = True  # draw the plotly figure
metrics_path = ""  # where to write the metrics JSON ("" = do not write)
'''),
        new_code_cell('''
import os

import numpy as np
import plotly.graph_objects as go

from workbench.reports import seed_everything, setup_report_rendering, write_metrics

setup_report_rendering()
seed_everything(seed, torch=False)
if x == fail_on and not (gate and os.path.exists(gate)):
    raise ValueError(f"x == {x}: failing on purpose (create {gate!r} to let it pass)")
'''.strip("\n")),
        new_code_cell('''
noise = np.random.default_rng(seed).normal(size=16)
y = scale * x + noise
if plot:
    fig = go.Figure(go.Scatter(y=y, mode="lines+markers", name=label))
    fig.update_layout(title=f"x = {x}, scale = {scale}", height=300)
    fig.show()
'''.strip("\n")),
        new_code_cell('''
metrics = {"x": x, "scale": scale, "label": label, "mean_y": float(y.mean()), "max_y": float(y.max())}
write_metrics(metrics, metrics_path)
metrics
'''.strip("\n")),
    ])


def main() -> None:
    targets = {ROOT / "tests" / "notebooks" / "tiny_report.ipynb": tiny_report()}
    try:
        from report_notebook_compression import compression_report
    except ImportError:
        compression_report = None
    if compression_report is not None:
        targets[ROOT / "notebooks" / "reports" / "compression_report.ipynb"] = compression_report(_nb, params_cell)
    for path, nb in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
