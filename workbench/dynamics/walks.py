"""The statistical model behind "Train longer, generalize better" (Hoffer, Hubara & Soudry 2017, section 3).

Two walkers in ``dim`` dimensions, both seeded and both returning ‖w_t − w_0‖ at log-spaced steps:

``kind="free"``
    A Gaussian random walk, w_{t+1} = w_t + s·ξ_t with ξ_t ~ N(0, I). Then E‖w_t − w_0‖² = s²·dim·t: distance ~ √t.

``kind="random_landscape"``
    A walker on a random potential L whose increments have the structure function
    E[(L(w1) − L(w2))²] ~ ‖w1 − w2‖^α with 0 < α < 2. The paper's argument (after Bouchaud & Georges 1990 and
    Sinai 1982): to get a distance r away the walker must cross barriers of height ~ r^(α/2), which takes a time
    ~ exp(r^(α/2)/T), so r ~ (T·log t)^(2/α) — ultra-slow, logarithmic diffusion.

    The model used here, exactly: the potential is separable, L(w) = σ·Σ_i V_i(w_i), one independent
    fractional Brownian motion V_i with Hurst exponent H = α/2 per coordinate, sampled exactly on the integer lattice
    (circulant embedding of fractional Gaussian noise, Davies & Harte 1987, then a cumulative sum), so
    E[(V_i(x) − V_i(y))²] = |x − y|^α for lattice points x, y. Hence E[(L(w1) − L(w2))²] = σ²·Σ_i |Δ_i|^α, which lies
    between σ²‖Δ‖^α and σ²·dim^(1 − α/2)·‖Δ‖^α: the required ‖Δ‖^α scaling up to a constant. (α = 1 is Sinai's
    Brownian potential, where r ~ (log t)², the classic result.) The walker moves by Metropolis updates at
    temperature T: every step each coordinate proposes ±1 lattice site with equal probability and accepts with
    probability min(1, exp(−ΔL/T)). Because L is separable, this is Metropolis-within-Gibbs and each coordinate is
    an independent Sinai-type walker, so ‖w_t − w_0‖ = s·(Σ_i x_i(t)²)^(1/2) grows like (log t)^(2/α). The lattice
    is large enough that no walker reaches its edge in practice (moves off the lattice are rejected).

>>> df = simulate_walk("free", dim=50, steps=1000, seed=0)
>>> list(df.columns)
['step', 'distance', 'kind', 'dim', 'alpha']
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from workbench.progress import progress_bar

from workbench.errors import DataError


def fractional_brownian_motion(n: int, hurst: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` independent fBm paths on 0..n (shape ``size × (n+1)``, value 0 at 0), E[(B_i − B_j)²] = |i−j|^(2H).

    Davies–Harte: the autocovariance of fractional Gaussian noise, γ(k) = ½(|k+1|^2H − 2|k|^2H + |k−1|^2H), embedded
    in a circulant of size 2n whose eigenvalues (an FFT) are non-negative for fGn; complex Gaussian weights give two
    exact samples per transform.
    """
    from workbench.checks import integer, number

    n = integer("n", n, low=1, where="fractional_brownian_motion")
    size = integer("size", size, low=1, where="fractional_brownian_motion")
    if not isinstance(hurst, (int, float)) or not 0.0 < hurst < 1.0:
        raise DataError(f"fractional Brownian motion needs 0 < H < 1, got H={hurst}")
    k = np.arange(n + 1, dtype=float)
    gamma = 0.5 * (np.abs(k + 1) ** (2 * hurst) - 2 * k ** (2 * hurst) + np.abs(k - 1) ** (2 * hurst))
    row = np.concatenate([gamma, gamma[-2:0:-1]])  # length 2n
    lam = np.fft.fft(row).real
    lam = np.clip(lam, 0.0, None)  # tiny negative round-off only
    m = len(row)
    z = rng.standard_normal((size, m)) + 1j * rng.standard_normal((size, m))
    w = np.fft.fft(np.sqrt(lam / m) * z, axis=1)
    fgn = w.real[:, :n]
    return np.concatenate([np.zeros((size, 1)), np.cumsum(fgn, axis=1)], axis=1)


def _record_steps(steps: int, points: int) -> np.ndarray:
    return np.unique(np.concatenate([[0], np.round(np.geomspace(1, steps, points)).astype(np.int64)]))


def _free(dim: int, steps: int, step_size: float, rec: np.ndarray, rng: np.random.Generator,
          progress: bool) -> np.ndarray:
    pos = np.zeros(dim)
    out = np.zeros(len(rec))
    chunk = max(1, min(steps, 2_000_000 // max(dim, 1)))
    j = 1  # rec[0] == 0
    done = 0
    with progress_bar(total=steps, desc="free walk", disable=not progress) as bar:
        while done < steps:
            c = min(chunk, steps - done)
            path = pos + np.cumsum(rng.standard_normal((c, dim)) * step_size, axis=0)
            while j < len(rec) and rec[j] <= done + c:
                out[j] = np.linalg.norm(path[rec[j] - done - 1])
                j += 1
            pos = path[-1]
            done += c
            bar.update(c)
    return out


def _landscape(dim: int, steps: int, alpha: float, temperature: float, sigma: float, step_size: float,
               rec: np.ndarray, rng: np.random.Generator, half_width: int | None, progress: bool) -> np.ndarray:
    if half_width is None:
        # Sinai-type walkers reach ~ (T log t / σ)^(2/α); leave a wide margin (and at least the free-walk scale
        # for hot walkers), capped so the potential stays a few MB.
        reach = (max(temperature, 1e-3) * math.log(steps + 1) / sigma) ** (2.0 / alpha)
        half_width = int(min(max(8 * reach, 6 * math.sqrt(steps) if temperature > 5 * sigma else 0, 256), 1 << 15))
    n = 2 * half_width
    potential = sigma * fractional_brownian_motion(n, alpha / 2.0, dim, rng)
    potential -= potential[:, [half_width]]  # V_i(0) = 0 at the start point
    rows = np.arange(dim)
    pos = np.full(dim, half_width, dtype=np.int64)
    out = np.zeros(len(rec))
    j = 1
    chunk = max(1, min(steps, 1_000_000 // max(dim, 1)))
    done = 0
    beta = 1.0 / temperature
    with progress_bar(total=steps, desc="random-landscape walk", disable=not progress) as bar:
        while done < steps:
            c = min(chunk, steps - done)
            moves = rng.integers(0, 2, size=(c, dim), dtype=np.int64) * 2 - 1
            logu = np.log(rng.random((c, dim)))
            for s in range(c):
                prop = pos + moves[s]
                inside = (prop >= 0) & (prop <= n)
                prop = np.where(inside, prop, pos)
                dv = potential[rows, prop] - potential[rows, pos]
                pos = np.where(logu[s] < -beta * dv, prop, pos)
                t = done + s + 1
                if j < len(rec) and rec[j] == t:
                    out[j] = step_size * float(np.sqrt(((pos - half_width) ** 2).sum()))
                    j += 1
            done += c
            bar.update(c)
    return out


KINDS = ("free", "random_landscape")


def simulate_walk(kind: str = "free", dim: int = 100, steps: int = 100_000, alpha: float = 1.0, seed: int = 0,
                  temperature: float = 1.0, sigma: float = 1.0, step_size: float = 1.0, points: int = 200,
                  half_width: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Simulate a free or random-landscape walk; returns ``step, distance, kind, dim, alpha`` at log-spaced steps.

    ``alpha`` (0 < α < 2) sets the landscape's roughness E[(L(w1) − L(w2))²] ~ ‖w1 − w2‖^α (ignored for the free
    walk); ``temperature`` and ``sigma`` the Metropolis temperature and the potential's scale (only their ratio
    matters); ``points`` how many log-spaced steps are recorded (plus step 0); ``half_width`` the lattice's
    half width in sites (default: wide enough that no walker reaches the edge).
    """
    from workbench.checks import integer, number, option

    where = "simulate_walk"
    option("kind", kind, KINDS, where=where)
    dim = integer("dim", dim, low=1, where=where)
    steps = integer("steps", steps, low=1, where=where)
    points = integer("points", points, low=2, where=where)
    seed = integer("seed", seed, where=where)
    if kind == "random_landscape":
        alpha = number("alpha", alpha, low=0, high=2, low_open=True, high_open=True, where=where)
    temperature = number("temperature", temperature, low=0, low_open=True, where=where)
    sigma = number("sigma", sigma, low=0, low_open=True, where=where)
    step_size = number("step_size", step_size, low=0, low_open=True, where=where)
    if half_width is not None:
        half_width = integer("half_width", half_width, low=1, where=where)
    rng = np.random.default_rng(seed)
    rec = _record_steps(int(steps), int(points))
    if kind == "free":
        dist = _free(int(dim), int(steps), step_size, rec, rng, progress)
    else:
        dist = _landscape(int(dim), int(steps), float(alpha), float(temperature), float(sigma), step_size, rec, rng,
                          half_width, progress)
    return pd.DataFrame({"step": rec, "distance": dist, "kind": kind, "dim": int(dim),
                         "alpha": float(alpha) if kind == "random_landscape" else float("nan")})


__all__ = ["simulate_walk", "fractional_brownian_motion"]
