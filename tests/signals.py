"""Deterministic int16 test signals that stress the integer front end's corners."""

from __future__ import annotations

import numpy as np

SR = 16000


def _clip16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def edge_signals(seed: int = 0) -> dict[str, np.ndarray]:
    """About 230 named signals: silence, DC, squares, sweeps, impulses, clipping, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    sig: dict[str, np.ndarray] = {}
    for n in (0, 1, 399, 400, 401, 559, 560, 16000):
        sig[f"silence_{n}"] = np.zeros(n, np.int16)
    for level in (1, -1, 7, -300, 12345, 32767, -32768):
        sig[f"dc_{level}"] = np.full(4000, level, np.int16)
    for f in (50, 125, 440, 1000, 3333, 7000, 7999, 8000):
        sig[f"square_full_{f}"] = _clip16(np.where(np.sin(2 * np.pi * f * t) >= 0, 32767, -32768))
    sig["nyquist_full"] = np.tile(np.array([32767, -32768], np.int16), 4000)
    for amp in (1, 3, 40, 1000, 20000, 32767):
        for f0, f1 in ((20, 8000), (8000, 100), (500, 900)):
            phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / 2)
            sig[f"sweep_{amp}_{f0}_{f1}"] = _clip16(amp * np.sin(phase))
    for pos in (0, 1, 159, 160, 399, 400, 555, 7999):
        for value in (32767, -32768, 1, -1):
            x = np.zeros(8000, np.int16)
            x[pos] = value
            sig[f"impulse_{pos}_{value}"] = x
    for gain in (1.5, 4, 30, 1000):
        sig[f"clipped_{gain}"] = _clip16(gain * 32767 * np.sin(2 * np.pi * 700 * t))
    for sigma in (0.3, 1, 3, 10, 100, 1000, 8000, 30000):
        for k in range(4):
            sig[f"noise_{sigma}_{k}"] = _clip16(rng.standard_normal(8000) * sigma)
    for k in range(20):
        sig[f"uniform_{k}"] = rng.integers(-32768, 32768, 6000).astype(np.int16)
    for k in range(30):  # random mixtures: tone + noise + bursts at random levels and lengths
        n = int(rng.integers(400, 20000))
        tt = np.arange(n) / SR
        x = 10 ** rng.uniform(0, 4.5) * np.sin(2 * np.pi * rng.uniform(30, 7900) * tt)
        x += 10 ** rng.uniform(-1, 3.5) * rng.standard_normal(n)
        x *= (rng.random(n) < 0.7) | (rng.random() < 0.5)
        sig[f"mix_{k}"] = _clip16(x)
    for k in range(30):  # level steps: quiet and loud halves inside one frame
        x = _clip16(rng.standard_normal(3000) * 10 ** rng.uniform(0, 2))
        x[int(rng.integers(0, 3000)) :] = _clip16(rng.standard_normal(1) * 20000)[0]
        sig[f"step_{k}"] = x
    return sig
