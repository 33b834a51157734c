"""Emit the C front end for one FrontendConfig: the hand-written code and its generated config
header and tables."""

from __future__ import annotations

from pathlib import Path

from firmware_gen.render import INCLUDE_DIR, SOURCE_DIR, copy_source, write_rendered
from model_dev.frontend import FrontendConfig, make_tables

#: Package paths of the front end, hand-written and generated.
FRONTEND_FILES = (
    f"{INCLUDE_DIR}/aed_frontend.h",
    f"{INCLUDE_DIR}/aed_frontend_config.h",
    f"{SOURCE_DIR}/aed_frontend.c",
    f"{SOURCE_DIR}/aed_frontend_tables.c",
)


def write_frontend(cfg: FrontendConfig, out_dir: str | Path) -> list[Path]:
    """Write the front end for ``cfg`` into the package folder ``out_dir``.

    ``aed_frontend.h`` and ``aed_frontend.c`` are copied from ``csrc/``;
    ``aed_frontend_config.h`` (the ``AED_FE_*`` constants) and ``aed_frontend_tables.c`` (window,
    twiddles, mel weights, log table) are generated.

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
    }
    inputs = {"frontend_config": cfg.hash}
    return [
        copy_source(FRONTEND_FILES[0], out_dir),
        write_rendered(out_dir, FRONTEND_FILES[1], inputs, **context),
        copy_source(FRONTEND_FILES[2], out_dir),
        write_rendered(out_dir, FRONTEND_FILES[3], inputs, **context),
    ]
