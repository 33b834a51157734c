"""What every stage downstream of training starts from: a checkpoint and a dataset.

The checkpoint names its front end (``meta["frontend"]``); the dataset is described by a
:class:`DatasetSpec` (layout, root, feature cache). :func:`checkpoint_inputs` loads the checkpoint
once, derives the front end from it and returns the dataset's features under that front end, so
``evaluate``, ``quantize`` and ``sweep`` take a checkpoint path plus a dataset and need no
plumbing of their own (nor do the CLI commands that call them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from model_dev.datasets import Dataset, load_dataset
from model_dev.features import FeatureSet, features
from model_dev.frontend import FrontendConfig
from model_dev.val_split import carve_validation

if TYPE_CHECKING:
    from torch import nn

#: Files that identify a layout for ``kind="auto"``, tried in this order.
_MARKERS = (
    ("clips.csv", "synth"),
    ("annotations.csv", "sonyc-ust"),
    ("meta/esc50.csv", "esc50"),
    ("metadata/UrbanSound8K.csv", "urbansound8k"),
    ("manifest.csv", "manifest"),
)


def dataset_kind(root: str | Path, kind: str = "auto") -> str:
    """``kind``, or for ``"auto"`` the layout of ``root``: ``manifest`` for a .csv file, else the
    layout whose metadata file ``root`` holds (``folders`` must be named).

    Raises
    ------
    ValueError
        ``"auto"`` and no known metadata file; the message names ``root`` and the files looked for.
    """
    if kind != "auto":
        return kind
    root = Path(root)
    if root.suffix == ".csv":
        return "manifest"
    for marker, name in _MARKERS:
        if (root / marker).is_file():
            return name
    looked = ", ".join(marker for marker, _ in _MARKERS)
    raise ValueError(
        f"{root}: no known dataset layout (looked for {looked}); pass the dataset kind "
        "(--dataset; folders for a folder per class)"
    )


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset on disk and where its features are cached.

    Attributes
    ----------
    root : Path
        Dataset root folder (or manifest CSV for ``kind="manifest"``).
    kind : str
        Layout, one of :data:`model_dev.datasets.DATASET_KINDS` (default ``synth``), or
        ``"auto"`` (:func:`dataset_kind`).
    cache : Path or None
        Feature cache root (None only where a stage can do without features, e.g. validation).
    skip_bad : bool
        Leave out unreadable audio files (listed in the feature set) instead of failing.
    jobs : int
        Feature worker processes.
    val_fraction : float, optional
        Share of ``train`` carved into ``validate`` when the dataset has no validate split
        (:func:`model_dev.val_split.carve_validation`); None: the fraction a checkpoint
        recorded (:func:`checkpoint_inputs`), else the default.
    """

    root: Path
    kind: str = "synth"
    cache: Path | None = Path("cache/features")
    skip_bad: bool = False
    jobs: int = 2
    val_fraction: float | None = None

    def load(self) -> Dataset:
        """The dataset's clip list (:func:`model_dev.datasets.load_dataset`), with a validate
        split carved from train if it has none."""
        kind = dataset_kind(self.root, self.kind)
        dataset = load_dataset(kind, self.root, skip_bad=self.skip_bad)
        return carve_validation(dataset, self.val_fraction)

    def features(self, frontend: FrontendConfig, *, progress: bool = True) -> FeatureSet:
        """The dataset's features under ``frontend``, computed and cached on first use."""
        return features(
            self.load(), self.cache, frontend, jobs=self.jobs, skip_bad=self.skip_bad,
            progress=progress,
        )  # fmt: skip


def checkpoint_frontend(meta: dict, source: str | Path) -> FrontendConfig:
    """The front end a checkpoint was trained on (errors name ``source``)."""
    if "frontend" not in meta:
        raise ValueError(f"{source}: checkpoint has no front-end config")
    return FrontendConfig.from_dict(meta["frontend"], f"{source}: frontend")


def trained_split(data: DatasetSpec | FeatureSet, meta: dict) -> DatasetSpec | FeatureSet:
    """``data`` with the validation fraction the checkpoint's run carved its validate split
    with, unless ``data`` names one (features pass through): evaluation sees the same split."""
    carved = meta.get("dataset", {}).get("validation")
    if isinstance(data, DatasetSpec) and data.val_fraction is None and carved:
        return replace(data, val_fraction=carved["fraction"])
    return data


@dataclass(frozen=True)
class CheckpointInputs:
    """A loaded checkpoint and the features it consumes.

    Attributes
    ----------
    path : Path
        The checkpoint file.
    model : torch.nn.Module
        The model, weights loaded, in eval mode on the CPU.
    meta : dict
        The checkpoint's metadata (``kind``, ``frontend``, ``train_config``, ``classes``...).
    frontend : FrontendConfig
        The front end it was trained on.
    features : FeatureSet
        The dataset's features under that front end.
    """

    path: Path
    model: nn.Module
    meta: dict
    frontend: FrontendConfig
    features: FeatureSet


def checkpoint_inputs(
    checkpoint: str | Path,
    data: DatasetSpec | FeatureSet,
    *,
    expect_kind: str | None = None,
    progress: bool = True,
) -> CheckpointInputs:
    """Load ``checkpoint`` once and the features of ``data`` under its front end.

    Parameters
    ----------
    checkpoint : str or Path
        A checkpoint written by training (``best.pt``).
    data : DatasetSpec or FeatureSet
        The dataset, or features already computed (their front end must be the checkpoint's).
        A spec without ``val_fraction`` gets the fraction the checkpoint's run carved its
        validate split with, so evaluation sees the same split.
    expect_kind : str, optional
        ``"teacher"`` or ``"student"``: refuse any other kind of checkpoint.
    progress : bool
        Show the feature extraction's progress bar.

    Returns
    -------
    CheckpointInputs

    Raises
    ------
    ValueError
        Unreadable checkpoint, wrong kind, or features with other classes or another front end
        (the message names the file).
    """
    # torch only here: validate and the CLI use this module's dataset helpers without it
    from model_dev.checkpoint import check_compatible, load_checkpoint

    path = Path(checkpoint)
    model, meta = load_checkpoint(path, expect_kind=expect_kind)
    frontend = checkpoint_frontend(meta, path)
    data = trained_split(data, meta)
    fs = data if isinstance(data, FeatureSet) else data.features(frontend, progress=progress)
    check_compatible(meta, fs, str(path))
    return CheckpointInputs(path, model, meta, frontend, fs)
