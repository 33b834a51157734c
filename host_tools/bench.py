"""``aedfw bench``: timed inferences on a device over the serial link, like the MLPerf Tiny
runner's ``infer N W``: ``repeats`` BENCH requests of ``n`` timed runs after ``warmup`` untimed
ones; the median over repeats is reported, in the device's cycle counter and in wall-clock runs
per second (timed on the host around each request, so it includes one link round trip)."""

from __future__ import annotations

import time

import numpy as np

from host_tools.device import Device, ProtocolError, SerialLike, open_device


def bench(
    port: str | SerialLike | Device,
    n: int = 100,
    warmup: int = 10,
    repeats: int = 5,
    *,
    target: str = "model",
    seed: int = 0,
) -> dict:
    """Benchmark the model (or one front-end frame) on the device.

    Parameters
    ----------
    port : str, SerialLike or Device
        Pyserial URL, open port or connected device.
    n, warmup : int
        Timed and untimed runs per BENCH request.
    repeats : int
        BENCH requests; medians over them are reported.
    target : {"model", "frontend"}
        What runs: the model on a seeded random int8 window (uploaded once), or the front end.
    seed : int
        Seed of that window.

    Returns
    -------
    dict
        ``target``, ``n``, ``warmup``, ``repeats``, ``cycles_median`` (median over repeats of
        the mean cycles per run), ``cycles_min``, ``cycles_max`` (over all runs),
        ``runs_per_s`` (median wall-clock), ``per_repeat`` (mean cycles, seconds) and the
        device's ``firmware_version``.
    """
    if n < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"bench: need n >= 1, warmup >= 0, repeats >= 1 (got {n}, {warmup}, {repeats})"
        )
    dev, owned = open_device(port)
    try:
        info = dev.info
        window = None
        if target == "model":
            rng = np.random.default_rng(seed)
            window = rng.integers(-128, 128, (info.in_frames, info.in_mels), dtype=np.int8)
        rows = []
        for r in range(repeats):
            t0 = time.perf_counter()
            res = dev.bench(n, warmup, target=target, window=window if r == 0 else None)
            rows.append((res, time.perf_counter() - t0))
    except ProtocolError as exc:
        raise RuntimeError(f"bench on {port}: {exc}") from exc
    finally:
        if owned:
            dev.close()
    means = [res.mean for res, _ in rows]
    rates = [(n + warmup) / seconds for _, seconds in rows]
    return {
        "target": target,
        "n": n,
        "warmup": warmup,
        "repeats": repeats,
        "cycles_median": float(np.median(means)),
        "cycles_min": min(res.min for res, _ in rows),
        "cycles_max": max(res.max for res, _ in rows),
        "runs_per_s": float(np.median(rates)),
        "per_repeat": [
            {"cycles_mean": m, "seconds": s} for m, (_, s) in zip(means, rows, strict=True)
        ],
        "firmware_version": info.firmware_version,
    }
