"""Options shared by several commands, and the objects they describe."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model_dev.stage_inputs import DatasetSpec


def add_dataset_options(
    p: argparse.ArgumentParser,
    *,
    required: bool = True,
    jobs: int = 2,
    jobs_help: str = "feature worker processes",
    cache: Path | None = Path("cache/features"),
    cache_help: str = "feature cache root",
) -> None:
    """``--dataset --data --cache --skip-bad --jobs --val-fraction``: a dataset, its feature
    cache and the validate split carved from train when it has none."""
    from model_dev.datasets import DATASET_KINDS
    from model_dev.val_split import DEFAULT_VAL_FRACTION

    p.add_argument(
        "--dataset",
        default="auto",
        choices=("auto", *DATASET_KINDS),
        help="dataset layout (default auto: found from its metadata file, e.g. clips.csv of "
        "the built-in corpus or a manifest .csv; name folders explicitly)",
    )
    p.add_argument(
        "--data",
        type=Path,
        required=required,
        help="dataset root folder or manifest CSV" + ("" if required else " (required to run)"),
    )
    p.add_argument(
        "--cache", type=Path, default=cache, help=f"{cache_help} (default {cache or 'none'})"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable audio files and list them in the report instead of failing",
    )
    p.add_argument("--jobs", type=int, default=jobs, help=f"{jobs_help} (default {jobs})")
    p.add_argument(
        "--val-fraction",
        type=float,
        help="share of train carved into a validate split when the dataset has none, grouped "
        "by source and stratified by label (default: the checkpoint's, else "
        f"{DEFAULT_VAL_FRACTION})",
    )


def dataset_spec(args: argparse.Namespace) -> DatasetSpec:
    """The :class:`~model_dev.stage_inputs.DatasetSpec` of :func:`add_dataset_options`' flags."""
    from model_dev.stage_inputs import DatasetSpec

    if args.data is None:
        raise ValueError("--data is required")
    return DatasetSpec(
        args.data, args.dataset, args.cache, args.skip_bad, args.jobs, args.val_fraction
    )


def add_frontend_option(p: argparse.ArgumentParser) -> None:
    """``--frontend``: a front-end config file (see :func:`aedfw.config.load_frontend_config`)."""
    p.add_argument(
        "--frontend",
        type=Path,
        default=None,
        help="front-end config, JSON or YAML (default: built-in defaults)",
    )


def add_device_option(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--device``: where torch runs."""
    p.add_argument("--device", default=default, help="auto (default), cpu, cuda or cuda:N")


def comma_list(value: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None stays None."""
    return None if value is None else [v.strip() for v in value.split(",")]
