"""Growth-law fits on exact curves, and the two walk models: free (√t) and random landscape ((log t)^(2/α))."""

import numpy as np
import pandas as pd
import pytest

from workbench.dynamics import fit_growth, fractional_brownian_motion, predict_growth, simulate_walk
from workbench.errors import DataError


@pytest.mark.parametrize("law,curve,exponent", [
    ("log", lambda t: 0.5 + 2.0 * np.log(t), 1.0),
    ("log^β", lambda t: 1.0 + 0.3 * np.log(t) ** 1.7, 1.7),
    ("sqrt", lambda t: 0.2 + 3.0 * np.sqrt(t), 0.5),
    ("power", lambda t: 1.0 + 2.0 * t ** 0.3, 0.3),
])
def test_fit_recovers_exact_laws(law, curve, exponent):
    t = np.arange(1, 20_001)
    fits = fit_growth(pd.DataFrame({"step": t, "distance": curve(t)})).set_index("model")
    assert fits.attrs["best"] == law
    assert fits.loc[law, "r2"] == pytest.approx(1.0, abs=1e-9)
    assert fits.loc[law, "exponent"] == pytest.approx(exponent, abs=1e-3)
    pred = predict_growth(fits.reset_index(), [1, 10, 100], models=[law])
    np.testing.assert_allclose(pred["fitted"], curve(np.array([1.0, 10.0, 100.0])), rtol=1e-5)


def test_fractional_brownian_motion_structure_function():
    paths = fractional_brownian_motion(512, hurst=0.3, size=400, rng=np.random.default_rng(0))
    assert paths.shape == (400, 513) and (paths[:, 0] == 0).all()
    for lag in (1, 8, 64):
        sf = ((paths[:, lag:] - paths[:, :-lag]) ** 2).mean()
        assert sf == pytest.approx(lag ** 0.6, rel=0.05)  # E[(B(x) − B(y))²] = |x − y|^(2H) = |x − y|^α


def test_free_walk_grows_like_sqrt_t():
    df = simulate_walk("free", dim=1000, steps=20_000, seed=1, progress=False)
    fits = fit_growth(df).set_index("model")
    assert fits.attrs["best"] == "sqrt"
    assert fits.loc["sqrt", "r2"] >= 0.98
    # E‖w_t − w_0‖ = √(2t)·Γ((d+1)/2)/Γ(d/2) ≈ √(d·t): the scale, not only the shape
    assert fits.loc["sqrt", "b"] == pytest.approx(np.sqrt(1000), rel=0.05)


def test_free_walk_never_looks_logarithmic():
    for seed in range(3):
        fits = fit_growth(simulate_walk("free", dim=1000, steps=20_000, seed=seed, progress=False)).set_index("model")
        assert fits.attrs["best"] in ("sqrt", "power"), seed
        assert fits.loc["power", "exponent"] == pytest.approx(0.5, abs=0.03)
        assert fits.loc[["sqrt", "power"], "aic"].min() < fits.loc[["log", "log^β"], "aic"].min() - 10


def test_random_landscape_walk_grows_like_a_power_of_log_t():
    df = simulate_walk("random_landscape", dim=500, steps=50_000, alpha=1.0, temperature=0.5, seed=0,
                       progress=False)
    fits = fit_growth(df).set_index("model")
    assert fits.attrs["best"] in ("log", "log^β")
    assert fits.loc[fits.attrs["best"], "r2"] >= 0.98
    assert fits.loc["log^β", "exponent"] == pytest.approx(2.0, abs=0.4)  # theory: 2/α
    assert fits.loc["log^β", "aic"] < fits.loc["sqrt", "aic"] - 10
    assert df["distance"].iloc[-1] < 0.2 * np.sqrt(500 * 50_000)  # far slower than the free walk (≈ 0.14 here)


def test_walks_are_seeded():
    a = simulate_walk("random_landscape", dim=20, steps=500, seed=3, progress=False)
    b = simulate_walk("random_landscape", dim=20, steps=500, seed=3, progress=False)
    c = simulate_walk("random_landscape", dim=20, steps=500, seed=4, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["distance"], c["distance"])


def test_bad_input():
    with pytest.raises(DataError):
        simulate_walk("levy")
    with pytest.raises(DataError):
        simulate_walk("random_landscape", alpha=2.5)
    with pytest.raises(DataError):
        simulate_walk("free", steps=0)
    with pytest.raises(DataError, match="layer"):
        fit_growth(pd.DataFrame({"step": [1, 2], "layer": ["a", "a"], "distance": [1.0, 2.0]}))
    with pytest.raises(DataError, match="at least 5"):
        fit_growth(pd.DataFrame({"step": [1, 2, 3], "distance": [1.0, 2.0, 3.0]}))
