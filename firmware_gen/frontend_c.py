"""Emit the C front end (code + tables) for one FrontendConfig."""

from __future__ import annotations

from pathlib import Path

from firmware_gen.render import render, write_if_changed
from model_dev.frontend import FrontendConfig, make_tables

FRONTEND_FILES = ("aed_frontend.h", "aed_frontend.c", "aed_frontend_tables.c")


def write_frontend(cfg: FrontendConfig, out_dir: str | Path) -> list[Path]:
    """Write ``aed_frontend.h``, ``aed_frontend.c`` and ``aed_frontend_tables.c`` to ``out_dir``.

    Returns
    -------
    list of Path
        The written files, in ``FRONTEND_FILES`` order.
    """
    tables = make_tables(cfg)
    context = {
        "cfg": cfg,
        "cfg_hash": cfg.short_hash,
        "tables": tables,
        "n_mel_weights": len(tables.mel.weights),
        # radix-4 stages (sub-DFT length q), emitted as calls with constant q
        "fft_stages": [4**i for i in range((cfg.fft_size // 2).bit_length() // 2)],
    }
    inputs = {"frontend_config": cfg.hash}
    paths = []
    for name in FRONTEND_FILES:
        path = Path(out_dir) / name
        write_if_changed(path, render(f"{name}.j2", inputs, **context))
        paths.append(path)
    return paths
