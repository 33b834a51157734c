"""The device's C front end in-process: ``model_dev._aed_frontend``, a CPython extension that
``setup.py`` compiles at install time from ``firmware_gen/csrc/aed/src/aed_frontend.c``
(unchanged) with the generated header and tables of the default :class:`FrontendConfig`
(``firmware_gen/pyext/default``) and the binding ``firmware_gen/pyext/aed_frontend_module.c``.

:class:`model_dev.frontend.Frontend` runs clips through it when :func:`available` says the
extension was built for its config from the sources now in the tree; otherwise (another config,
no compiler at install time, or sources changed since: ``make setup`` rebuilds) its numpy code
runs. The bytes are the same either way (tests compare numpy, this and the device build).

No third-party imports at module level: ``setup.py`` loads this file for :data:`SOURCES` and
:func:`sources_sha256`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from pathlib import Path

#: The firmware_gen package folder, beside this one (source tree and installed package alike).
FIRMWARE_GEN = Path(__file__).resolve().parents[1] / "firmware_gen"
#: What setup.py compiles (relative to FIRMWARE_GEN) and the headers they include.
SOURCES = (
    "csrc/aed/src/aed_frontend.c",
    "pyext/default/aed_frontend_tables.c",
    "pyext/aed_frontend_module.c",
)
HEADERS = ("csrc/aed/include/aed_frontend.h", "pyext/default/aed_frontend_config.h")
INCLUDE_DIRS = ("pyext/default", "csrc/aed/include")


def sources_sha256(root: Path = FIRMWARE_GEN) -> str:
    """sha256 over the extension's sources and headers (compiled into it as SOURCES_SHA256)."""
    digest = hashlib.sha256()
    for rel in SOURCES + HEADERS:
        digest.update(rel.encode() + b"\0" + (Path(root) / rel).read_bytes())
    return digest.hexdigest()


@functools.cache
def status() -> str:
    """``"ok"``, ``"not built"`` or ``"stale"`` (built from other sources than the tree's)."""
    try:
        ext = importlib.import_module("model_dev._aed_frontend")
    except ImportError:
        return "not built"
    return "ok" if ext.SOURCES_SHA256 == sources_sha256() else "stale"


def available(config_short_hash: str) -> bool:
    """Whether the extension is built, fresh and for the config with this ``short_hash``."""
    if status() != "ok":
        return False
    from model_dev import _aed_frontend

    return _aed_frontend.CONFIG_HASH == config_short_hash


def clip_features(audio, n_frames: int, n_mels: int):
    """int16 audio [n] -> int8 features [n_frames, n_mels] through the extension (call only
    when :func:`available`)."""
    import numpy as np

    from model_dev import _aed_frontend

    out = np.empty((n_frames, n_mels), dtype=np.int8)
    _aed_frontend.clip(np.ascontiguousarray(audio), out)
    return out
