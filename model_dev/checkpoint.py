"""Checkpoints: integrity-checked, atomically written torch files with the run's metadata."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from model_dev.arch import ArchSpec
from model_dev.features import FeatureSet
from model_dev.fileio import atomic_write
from model_dev.torch_net import build_torch

CHECKPOINT_FORMAT = 1
#: Checkpoint entries that hold state rather than metadata (left out of ``load_checkpoint``'s meta).
_STATE_KEYS = ("model", "optimizer", "scheduler", "scaler")
_REQUIRED_KEYS = ("kind", "arch", "train_config", "frontend", "frontend_hash", "classes")
_REQUIRED_KEYS += ("model", "state_dict_sha256")


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 hex of a state dict: names, dtypes, shapes and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def read_checkpoint(path: Path) -> dict:
    """The raw checkpoint dict; ValueError naming ``path`` if missing, unreadable or foreign."""
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {first})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an aedfw checkpoint (format {CHECKPOINT_FORMAT} expected)")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    if state_dict_sha256(ckpt["model"]) != ckpt["state_dict_sha256"]:
        raise ValueError(f"{path}: weights do not match their recorded sha256 (corrupt file)")
    return ckpt


def open_checkpoint(path: Path, expect_kind: str | None) -> tuple[nn.Module, dict]:
    ckpt = read_checkpoint(path)
    if expect_kind is not None and ckpt["kind"] != expect_kind:
        raise ValueError(f"{path}: a {ckpt['kind']} checkpoint, expected a {expect_kind}")
    model = build_torch(ArchSpec.from_dict(ckpt["arch"], f"{path}: arch"))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the recorded architecture ({exc})") from None
    return model.eval(), ckpt


def load_checkpoint(path: str | Path, expect_kind: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a trained model from a checkpoint written by :func:`train`.

    Parameters
    ----------
    path : str or Path
        ``best.pt`` or ``last.pt``.
    expect_kind : {"teacher", "student"}, optional
        Required checkpoint kind.

    Returns
    -------
    model : nn.Module
        The :func:`~model_dev.torch_net.build_torch` model of the stored spec, on CPU, eval mode.
    meta : dict
        Every metadata entry: ``kind``, ``arch`` (:meth:`ArchSpec.to_dict`), ``train_config``,
        ``frontend`` and ``frontend_hash``, ``classes``, ``dataset``, ``teacher``, ``epoch``,
        ``best``, ``metrics`` (per-epoch rows), ``state_dict_sha256`` and, after
        :func:`evaluate`, ``thresholds``.

    Raises
    ------
    ValueError
        Missing, unreadable or corrupt file, or the wrong kind; the message names the file.
    """
    model, ckpt = open_checkpoint(Path(path), expect_kind)
    return model, {k: v for k, v in ckpt.items() if k not in _STATE_KEYS}


def check_compatible(meta: dict, fs: FeatureSet, source: str) -> None:
    """Raise ValueError unless ``fs`` has the classes and front end a checkpoint was trained on."""
    if tuple(meta["classes"]) != tuple(fs.classes):
        raise ValueError(f"{source}: trained on classes {meta['classes']}, data has {fs.classes}")
    if meta["frontend_hash"] != fs.config.hash:
        raise ValueError(
            f"{source}: trained on front end {meta['frontend_hash'][:16]}, "
            f"the features come from {fs.config.short_hash}"
        )
