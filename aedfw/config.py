"""Config files for the CLI: JSON or YAML, validated field by field."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from model_dev.frontend import FrontendConfig


def read_config_file(path: str | Path) -> dict:
    """Read a JSON (``.json``) or YAML (``.yaml``/``.yml``) mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: invalid {path.suffix.lstrip('.') or 'YAML'} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def load_frontend_config(path: str | Path | None) -> FrontendConfig:
    """The front-end config in ``path`` (JSON or YAML), or the defaults when ``path`` is None."""
    if path is None:
        return FrontendConfig()
    return FrontendConfig.from_dict(read_config_file(path), str(path))
