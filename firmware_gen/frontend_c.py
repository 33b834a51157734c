"""Emit the C front end for one FrontendConfig: the hand-written code and its generated config
header and tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firmware_gen.render import INCLUDE_DIR, SOURCE_DIR, copy_source, write_rendered
from model_dev.frontend import FrontendConfig, make_tables

#: Package paths of the front end, hand-written and generated.
FRONTEND_FILES = (
    f"{INCLUDE_DIR}/aed_frontend.h",
    f"{INCLUDE_DIR}/aed_frontend_config.h",
    f"{SOURCE_DIR}/aed_frontend.c",
    f"{SOURCE_DIR}/aed_frontend_tables.c",
)


def check_split_symmetry(cos_q30: np.ndarray) -> None:
    """What the C split step assumes of the Q30 table (sin(k) = cos(k - N/4)): it computes bins k
    and N/2 - k from one pair of products, which needs cos[N/2 - k] = -cos[k] and sin[N/2 - k] =
    sin[k] exactly for k = 0..N/4; it takes k = 0 and N/4 as the exact twiddles 1 and -j
    (cos[0] = 2^30, cos[N/4] = 0) and doubles cos and sin in between (below 2^30 there). True
    for every valid FFT size (tests); raises otherwise."""
    n = len(cos_q30)
    k = np.arange(n // 4 + 1)
    mirror = n // 2 - k
    inner = np.concatenate([cos_q30[1 : n // 4], cos_q30[3 * n // 4 + 1 :]])
    if not (
        np.array_equal(cos_q30[mirror], -cos_q30[k])
        and np.array_equal(cos_q30[(mirror - n // 4) % n], cos_q30[(k - n // 4) % n])
        and cos_q30[0] == 2**30
        and cos_q30[n // 4] == 0
        and np.abs(inner).max(initial=0) < 2**30
    ):
        raise ValueError(f"fft_size {n}: the Q30 twiddle table is not mirror-symmetric")


def fft_twiddles(cos_q30: np.ndarray) -> np.ndarray:
    """(cos, sin) of W^(m j N / 4q) from the Q30 table, in the order the C FFT reads them: stages
    q = 4, 16, .., N/8 (the first stage has only twiddle 1), offsets j = 1..q-1, m = 1..3;
    int32, flat. sin(i) = cos(i - N/4)."""
    n = len(cos_q30)
    out, q = [], 4
    while q < n // 2:
        i = np.arange(1, q)[:, None] * np.arange(1, 4) * (n // (4 * q))  # [j, m]
        out.append(np.stack([cos_q30[i], cos_q30[(i - n // 4) % n]], axis=-1).ravel())
        q *= 4
    return np.concatenate(out or [np.zeros(0)]).astype(np.int32)


def split_twiddles(cos_q30: np.ndarray) -> np.ndarray:
    """2 (cos, sin) of W^k for the split step's k = 1..N/4 - 1 (doubled: below 2^31 there, see
    check_split_symmetry); int32, flat."""
    n = len(cos_q30)
    k = np.arange(1, n // 4)
    pairs = np.stack([cos_q30[k], cos_q30[(k - n // 4) % n]], axis=-1).astype(np.int64)
    return (2 * pairs).ravel().astype(np.int32)


def power_needs_64_bits(window_q15: np.ndarray) -> bool:
    """Whether the C front end must keep P = |Y|^2 >> 16 in 64 bits for this window: |Y| <= 2 S
    with S = sum of the window (block normalisation brings every frame's peak to full scale, so
    any input, however quiet, can reach it), so P < 2^32 needs 4 (S + margin)^2 < 2^48; the
    margin covers the FFT's roundings. Windows up to about 512 samples fit 32 bits (the faster
    path on a 32-bit core); longer ones, like the anomaly task's 1024, need 64."""
    s = int(np.abs(window_q15.astype(np.int64)).sum()) + 64
    return 4 * s * s >= 2**48


def write_frontend(cfg: FrontendConfig, out_dir: str | Path) -> list[Path]:
    """Write the front end for ``cfg`` into the package folder ``out_dir``.

    ``aed_frontend.h`` and ``aed_frontend.c`` are copied from ``csrc/``;
    ``aed_frontend_config.h`` (the ``AED_FE_*`` constants) and ``aed_frontend_tables.c`` (window,
    twiddles in reading order, digit reversal, mel weights, log table) are generated.

    Returns
    -------
    list of Path
        The written files, in ``FRONTEND_FILES`` order.
    """
    tables = make_tables(cfg)
    check_split_symmetry(tables.cos)
    context = {
        "cfg": cfg,
        "cfg_hash": cfg.short_hash,
        "tables": tables,
        "n_mel_weights": len(tables.mel.weights),
        "power_64": power_needs_64_bits(tables.window),
        "fft_twiddles": fft_twiddles(tables.cos),
        "split_twiddles": split_twiddles(tables.cos),
        # the first FFT stage reads the inputs of its butterfly r at digit_reverse[r], r < N/8
        "digit_reverse": tables.digit_reverse[: cfg.fft_size // 8],
        # round(log2_steps lut / 2^16), the Q16 table's share of the rounded log (<= log2_steps)
        "log_frac": (cfg.log2_steps * tables.log2.astype(np.int64) + 2**15) >> 16,
    }
    inputs = {"frontend_config": cfg.hash}
    return [
        copy_source(FRONTEND_FILES[0], out_dir),
        write_rendered(out_dir, FRONTEND_FILES[1], inputs, **context),
        copy_source(FRONTEND_FILES[2], out_dir),
        write_rendered(out_dir, FRONTEND_FILES[3], inputs, **context),
    ]
