"""JSON round trip shared by the frozen config dataclasses (FrontendConfig, TrainConfig), and
strict-JSON report values."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Self

import numpy as np


def json_finite(obj: object) -> object:
    """``obj`` with NaN and infinities replaced by None and numpy scalars by Python ones, so
    ``json.dumps(..., allow_nan=False)`` (strict JSON) accepts it."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_finite(v) for v in obj]
    return obj


class JsonConfig:
    """Mixin for frozen dataclasses: canonical JSON, and parsing whose errors name the field."""

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no whitespace): the same config gives the same bytes."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict:
        """Plain JSON-able dict of the fields (tuples as lists)."""
        return json.loads(self.to_json())

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> Self:
        """Build from a dict; unknown or malformed fields raise ValueError naming them."""
        source = source or cls.__name__
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> Self:
        """Parse JSON text (as written by :meth:`to_json`, or by hand)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source or cls.__name__}: invalid JSON ({exc})") from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a config from a JSON file."""
        return cls.from_json(Path(path).read_text(), str(path))
