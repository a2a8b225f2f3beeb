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
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Shift invariance and image size
#
# A CNN is often described as "shift invariant": convolutions slide the same filter everywhere, and pooling throws
# positions away. Move a digit by one pixel, though, and a trained CNN can change its answer. The culprit is
# **strided downsampling** (a stride-2 convolution or max pool keeps every other pixel), which is not
# shift-equivariant: it **aliases**. This notebook follows two papers:
#
# * **Chaman & Dokmanić 2020**, *Truly shift-invariant convolutional neural networks*: **adaptive polyphase
#   sampling (APS)** picks, at every downsampling, the polyphase component of largest norm. A network whose every
#   layer is circular (circular padding, APS, global pooling) is then *exactly* invariant to circular shifts, even
#   untrained. Blur pooling (**Zhang 2019**, low-pass then subsample) only reduces the damage.
# * **Hoffer et al. 2019**, *Mix & Match*: training on several image sizes, with the batch scaled so every step costs
#   the same, makes a model resilient to the test size, so smaller (cheaper) test images can be used.
#
# Data: scikit-learn's 8×8 digits upsampled to 32×32 (a 24×24 digit on a 4-pixel zero border) so shifts have room.
# The three bundled models `digits32-cnn-max`, `-blur`, `-aps` share one architecture (three circular 3×3 conv
# blocks, a downsampling after each, global average pooling) and differ only in the downsampling.
#
# The default run takes under a minute on 2 cores (43 s measured at load avg 3): the shift experiments run here, and
# the Mix & Match comparison of section 4 is **loaded** from what the same code computed
# (`data/results/12_mix_and_match.json`, written by
# `python benchmarks/geometry.py --record data/results/12_mix_and_match.json --seeds 1 --steps 200`).
# **`full = True`** retrains the fixed-size and the mixed-size model here: about 2–3 more minutes on 2 cores (136 s
# for both at 200 steps, measured at load avg 7–8).

# %% tags=["parameters"]
# Parameters (papermill)
quick = None  # help: None = follow WORKBENCH_QUICK; True/False force quick mode (fewer shifts, tiny training)
full = False  # help: retrain the two Mix & Match models here (about 2-3 more min on 2 cores) instead of loading the recorded table
steps = 200  # help: SGD steps of each Mix & Match model when retrained (full = True; quick mode uses 30)
seed = 0  # help: seed of the Mix & Match models and of the random shifts

# %%
import json

import numpy as np
import pandas as pd
import torch

import workbench
from workbench.config import quick_mode
from workbench.data import DATA_DIR
from workbench.geometry import (
    BUNDLED_MODELS,
    DEFAULT_SIZES,
    compare_fixed_mixed,
    compare_shift_consistency,
    flops_per_image,
    make_digits_cnn,
    polyphase_components,
    shift_consistency,
    shift_images,
    size_schedule,
)
from workbench.viz.geometry import (
    consistency_figure,
    image_figure,
    polyphase_figure,
    shift_map_figure,
    size_accuracy_figure,
)

quick = quick_mode(quick)
n_shifts, n_images = (16, 120) if quick else (32, 360)
mm_steps = 30 if quick else int(steps)
handles = {name: workbench.load_model(name) for name in BUNDLED_MODELS}
x_test, y_test = handles["digits32-cnn-aps"].test_data()
pd.DataFrame([{"model": n, "test accuracy": h.record["test_accuracy"], "sha256": h.record["sha256"][:12] + "…"}
              for n, h in handles.items()])

# %% [markdown]
# ## 1. Aliasing: subsampling is not shift-equivariant
#
# Take the simplest signal that shows it: stripes one pixel wide. Keeping every other pixel gives all ones, or, after
# a one-pixel shift, all zeros. A shift of the input does not become a shift of the output; it becomes a different
# output. A stride-2 layer inside a network does the same to feature maps.

# %%
stripes = torch.tensor([[1.0, 0.0] * 4] * 8)[None, None]  # 8×8 vertical stripes
kept = stripes[..., ::2, ::2]
kept_shifted = torch.roll(stripes, 1, dims=3)[..., ::2, ::2]
print("subsampled:", kept[0, 0, 0].tolist(), " subsampled after a 1-pixel shift:", kept_shifted[0, 0, 0].tolist())
assert kept.sum() == 16 and kept_shifted.sum() == 0

# %% [markdown]
# ## 2. Polyphase components and adaptive polyphase sampling
#
# A stride-2 subsampling of an H×W map can keep any of **4 polyphase components**, `x[i::2, j::2]` for
# `i, j ∈ {0, 1}`; plain subsampling always keeps `(0, 0)`. A circular shift of the input permutes the four
# components (and shifts each). APS keeps the component of **largest norm**, so after a shift it finds the same
# content again, only shifted. Below: the first feature map of the APS model for a test digit (after its stride-1
# max pool), its four components, and the one APS keeps.

# %%
aps_model = handles["digits32-cnn-aps"].model
digit = x_test[:1]


def first_map(x):
    with torch.no_grad():
        m = aps_model
        return m.down1[0](m.act(m.bn1(m.conv1(x))))


feat = first_map(digit)
comps = polyphase_components(feat, 2)  # (1, 4, C, 16, 16)
norms = comps.flatten(2).square().sum(-1)[0]
polyphase_figure(comps[0, :, 0].numpy(), norms=norms.sqrt().numpy(),
                 title="first feature map of the APS model: the 4 polyphase components (channel 0)")

# %%
feat_shifted = first_map(shift_images(digit, 1, 0))
norms_shifted = polyphase_components(feat_shifted, 2).flatten(2).square().sum(-1)[0]
print("component norms:", norms.sqrt().numpy().round(2), "after a 1-pixel shift:",
      norms_shifted.sqrt().numpy().round(2))
pick, pick_shifted = int(norms.argmax()), int(norms_shifted.argmax())
kept, kept_shifted = comps[0, pick], polyphase_components(feat_shifted, 2)[0, pick_shifted]
same_content = any(torch.equal(torch.roll(kept, (a, b), (1, 2)), kept_shifted) for a in range(16) for b in range(16))
print(f"APS keeps component {pick}, then {pick_shifted}; the same content, shifted: {same_content}")
assert np.allclose(sorted(norms.tolist()), sorted(norms_shifted.tolist()), rtol=1e-5)  # the same 4 norms, permuted
assert pick != pick_shifted and same_content

# %% [markdown]
# ## 3. Shift consistency of the three models
#
# `shift_consistency` evaluates every test image under a set of shifts and reports the fraction of images whose
# predicted class is the **same under every shift** (*consistency*), and the mean total-variation change of the class
# probabilities against the unshifted image. Circular shifts roll the image around the 32×32 torus.

# %%
circular = compare_shift_consistency(list(handles.values()), shifts=n_shifts, mode="circular", n_images=n_images,
                                     seed=seed)
circular[["model", "n_shifts", "n_images", "accuracy", "consistency", "prob_change", "min_accuracy"]]

# %%
consistency_figure(circular, title=f"same class under {n_shifts} circular shifts ({n_images} test digits)")

# %%
c = circular.set_index("model")["consistency"]
assert c["digits32-cnn-aps"] == 1.0 and circular.set_index("model").loc["digits32-cnn-aps", "prob_change"] < 1e-6
assert c["digits32-cnn-max"] < 1.0
print(f"consistency: max {c['digits32-cnn-max']:.1%}, blur {c['digits32-cnn-blur']:.1%}, "
      f"APS {c['digits32-cnn-aps']:.0%}")

# %% [markdown]
# APS is at 100 %, and its probabilities do not move (the change is rounding). Which shifts break the max-pool model?
# The map below shows, for the 64 shifts 0 ≤ dx, dy < 8, the fraction of images that keep their class. The network's
# total stride is 8: a circular shift by a multiple of 8 moves every polyphase grid onto itself, so even max pooling is
# exactly invariant to those shifts, and only the others can break it.

# %%
small = dict(n_images=60 if quick else 120)
grid = [(dx, dy) for dy in range(8) for dx in range(8)]  # shifts mod 8: every phase of the total stride
max_map = shift_consistency(handles["digits32-cnn-max"], shifts=grid, per_shift=True, **small)
shift_map_figure(max_map, value="agreement", title="max-pool model: share of images keeping their class, per shift")

# %%
multiples = shift_consistency(handles["digits32-cnn-max"], shifts=[(8, 0), (0, 8), (16, 24), (8, 8)], **small)
assert multiples.loc[0, "consistency"] == 1.0
print("max-pool model, shifts by multiples of 8: consistency", multiples.loc[0, "consistency"])

# %% [markdown]
# **Linear shifts** (the digit moves and zeros fill in) are what a camera sees. These digits sit on a 4-pixel zero
# border, so a linear shift of at most 4 pixels only wraps zeros around: it *is* a circular shift, and APS is exactly
# invariant to it. Beyond the border a linear shift cuts ink off; APS's guarantee does not cover that, and the table
# (16 random linear shifts of up to 8 pixels) shows how each model fares.

# %%
assert torch.equal(shift_images(x_test[:50], 4, -3, "linear"), shift_images(x_test[:50], 4, -3, "circular"))
linear = compare_shift_consistency(list(handles.values()), shifts=16, mode="linear", max_shift=8, n_images=120,
                                   seed=seed)
linear[["model", "n_shifts", "accuracy", "consistency", "prob_change", "min_accuracy"]]

# %% [markdown]
# ## 4. Mix & Match: training with several image sizes
#
# The same networks run at any size (global average pooling), but a model trained on 32×32 images only is accurate
# near 32×32. Mix & Match draws an image size per step from 16/24/32/40 and scales the batch so the pixels per step
# stay those of the base (batch 32 at 32×32): `B(s) = 32·(32/s)²`; the learning rate follows the batch (linear rule,
# implemented as the summed loss divided by 32). The fixed-size baseline makes the same number of steps at 32×32.
#
# Training the two models takes about 3 minutes on 2 cores, so unless `full = True` the table below is the one
# `compare_fixed_mixed` computed for `data/results/12_mix_and_match.json` (seed 0, 200 steps each). With
# `full = True` it is recomputed here (in quick mode with only 30 steps: the curves run but are not meaningful).

# %%
size_schedule(DEFAULT_SIZES, 8, seed=seed)

# %%
RESULTS_FILE = DATA_DIR / "results" / "12_mix_and_match.json"
recorded = json.loads(RESULTS_FILE.read_text(encoding="utf-8"))
test_sizes = tuple(recorded["test_sizes"])
if full:
    frame = compare_fixed_mixed((seed,), steps=mm_steps, test_sizes=test_sizes)
    source = f"retrained here: seed {seed}, {mm_steps} steps"
else:
    frame = pd.DataFrame(recorded["table"])
    frame = frame[frame["seed"] == (seed if seed in recorded["seeds"] else recorded["seeds"][0])]
    source = f"recorded ({RESULTS_FILE.name}): seed {int(frame['seed'].iloc[0])}, {recorded['steps']} steps"
sizes = pd.concat([frame.assign(training=frame["training"]),
                   frame.assign(training=frame["training"] + ", BN recalibrated", accuracy=frame["accuracy_bn"])],
                  ignore_index=True)[["training", "test_size", "accuracy", "flops"]]
print(source)
sizes.pivot(index="test_size", columns="training", values="accuracy").round(3)

# %%
flops = sizes[sizes["training"] == "fixed"][["test_size", "flops"]].rename(columns={"test_size": "size"})
size_accuracy_figure(sizes, flops=flops, title="accuracy against test size (hover: FLOPs per image)")

# %% [markdown]
# The compute of a forward pass grows with the number of pixels: a 16×16 image costs about a quarter of a 32×32 one.
# (Counted here on a fresh network of the same architecture; the count does not depend on the weights, so it equals
# the table's.)

# %%
net = make_digits_cnn("max", seed=seed)
live_flops = {s: flops_per_image(net, s) for s in test_sizes}
print(pd.DataFrame({"size": test_sizes, "MFLOPs per image": [live_flops[s] / 1e6 for s in test_sizes]}))
assert flops[["size", "flops"]].drop_duplicates().set_index("size")["flops"].to_dict() == live_flops
assert live_flops[16] < 0.3 * live_flops[32]

# %% [markdown]
# Why mixed sizes help: a convolution's filters see a digit's strokes at one scale when trained at one size; at 16×16
# the strokes are half as wide and the fixed-size model has never seen that. Mixed-size training shows every scale.
# A second effect is in **BatchNorm**: its running statistics are averaged over the training sizes, and feature
# statistics depend on the size; recomputing them on training images at the test size ("BN recalibrated", no weight
# changes) recovers much of the accuracy at sizes far from the training mix. In the recorded table (and when
# retrained with 200 steps, not in quick mode) the mixed-size model is more accurate than the fixed-size one at the
# smallest test size, with and without recalibration:

# %%
acc = sizes.pivot(index="test_size", columns="training", values="accuracy")
if not (full and quick):
    assert acc.loc[16, "mixed"] > acc.loc[16, "fixed"]
    assert acc.loc[16, "mixed, BN recalibrated"] > acc.loc[16, "fixed, BN recalibrated"]
acc.loc[[16, 32]]

# %% [markdown]
# ## 5. The dashboard view
#
# The `geometry` tab of the dashboard (`workbench.Workbench(...)`) shows the same: shift a digit with the `dx`/`dy`
# sliders and watch the three models' class probabilities (APS's stay put under circular shifts), then train a fixed
# and a mixed model and slide the test size.

# %%
from workbench.widgets.geometry import GeometryView

view = GeometryView(handles["digits32-cnn-aps"], quick=quick)
view.dx.value, view.dy.value = 3, 1
view.ui
