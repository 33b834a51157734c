"""Training-time augmentation: mixup of clips, SpecAugment-style masks of windows."""

from __future__ import annotations

import numpy as np
import torch

from model_dev.train_config import TrainConfig


def mixup(
    x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Mix every clip of a batch with a random partner (see :mod:`model_dev.train`); returns
    the mixed windows, mask and labels and each clip's partner."""
    partner = rng.permutation(len(x))
    perm = torch.as_tensor(partner, device=x.device)
    lam = torch.as_tensor(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, len(x)), device=x.device)
    lam = lam.to(x.dtype)
    x = torch.lerp(x[perm], x, lam[:, None, None, None])
    if cfg.mixup_labels == "max":
        y = torch.maximum(y, y[perm])
    else:
        y = torch.lerp(y[perm], y, lam[:, None])
    return x, mask | mask[perm], y, partner


def span_mask(rng: np.random.Generator, n: int, length: int, count: int, width: int) -> np.ndarray:
    """bool ``[n, length]``: ``count`` random spans of width ``0..width`` per row."""
    widths = rng.integers(0, min(width, length) + 1, size=(n, count))
    starts = rng.integers(0, length - widths + 1)
    pos = np.arange(length)
    return ((pos >= starts[..., None]) & (pos < (starts + widths)[..., None])).any(axis=1)


def spec_augment(x: torch.Tensor, cfg: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """Time and frequency masks on windows ``[N, T, F]``, filled with each window's mean."""
    n, t, f = x.shape
    hit = np.zeros((n, t, f), dtype=bool)
    if cfg.time_masks and cfg.time_mask_frames:
        hit |= span_mask(rng, n, t, cfg.time_masks, cfg.time_mask_frames)[:, :, None]
    if cfg.freq_masks and cfg.freq_mask_bins:
        hit |= span_mask(rng, n, f, cfg.freq_masks, cfg.freq_mask_bins)[:, None, :]
    if not hit.any():
        return x
    hit_t = torch.from_numpy(hit).to(x.device)
    return torch.where(hit_t, x.mean(dim=(1, 2), keepdim=True), x)
