# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tiny report
#
# A seconds-long parameterized notebook for the report and sweep tests.

# %% tags=["parameters"]
x: int = 1  # the grid variable
scale: float = 1.0  # multiplies x
label = "a"  # a free-text label
fail_on: int = -1  # raise when x equals this, unless the gate file exists
gate = ""  # path of a file whose existence disables the failure
seed = 0  # random seed
quick = None  # None = follow WORKBENCH_QUICK
plot = True  # draw the plotly figure
metrics_path = ""  # where to write the metrics JSON ("" = do not write)

# %%
import os

import numpy as np
import plotly.graph_objects as go

from workbench.reports import seed_everything, setup_report_rendering, write_metrics

setup_report_rendering()
seed_everything(seed, torch=False)
if x == fail_on and not (gate and os.path.exists(gate)):
    raise ValueError(f"x == {x}: failing on purpose (create {gate!r} to let it pass)")

# %%
noise = np.random.default_rng(seed).normal(size=16)
y = scale * x + noise
if plot:
    fig = go.Figure(go.Scatter(y=y, mode="lines+markers", name=label))
    fig.update_layout(title=f"x = {x}, scale = {scale}", height=300)
    fig.show()

# %%
metrics = {"x": x, "scale": scale, "label": label, "mean_y": float(y.mean()), "max_y": float(y.max())}
write_metrics(metrics, metrics_path)
metrics
