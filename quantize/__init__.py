"""Student -> full-int8 TFLite with embedded front-end config; float-vs-int8 evaluation, LiteRT
vs TFLM parity and the exact TFLM arena (see ``docs/quantize.md``).

Modules: :mod:`quantize.keras_mirror` (Keras twin of the block spec), :mod:`quantize.convert`
(conversion and graph checks), :mod:`quantize.metadata` (aedfw metadata in the .tflite),
:mod:`quantize.runtime` (LiteRT / TFLM runners, arena search), :mod:`quantize.pipeline`
(:func:`quantize`, the ``aedfw quantize`` command).
"""

from __future__ import annotations

from typing import Any


def quantize(*args: Any, **kwargs: Any) -> dict:
    """:func:`quantize.pipeline.quantize` (imported lazily: torch and TF are heavy)."""
    from quantize.pipeline import quantize as run

    return run(*args, **kwargs)
