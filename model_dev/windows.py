"""A clip set as padded int8 model windows, and the models' forward pass over them.

Every clip is cut once into model windows (:func:`~model_dev.arch.clip_windows`, short clips
padded with the front end's silence code) and kept as int8 ``[total windows, T, F]``, clip after
clip, with a bool mask ``[n_clips, max_windows]`` of each clip's windows: memory follows the
windows the clips have, not the longest clip times the number of clips. A batch is laid out as
``[B, W, T, F]`` (W: the most windows of a clip in the batch, padding windows hold silence) and
dequantised on the compute device. The model runs on the real windows only; clip logits are the
maximum over windows (:func:`~model_dev.torch_net.aggregate`), exactly what the device computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from model_dev.arch import SILENCE_Q, ArchSpec, clip_windows
from model_dev.device import autocast
from model_dev.features import FeatureSet
from model_dev.torch_net import aggregate


@dataclass
class ClipWindows:
    """Model windows of a set of clips, int8, clip after clip.

    Attributes
    ----------
    windows : torch.Tensor
        int8 ``[total_windows, window_frames, n_mels]``: clip ``k``'s windows are rows
        ``first[k] .. first[k] + mask[k].sum() - 1``.
    mask : torch.Tensor
        bool ``[n_clips, max_windows]``, True for real windows (always a prefix of each row).
    first : torch.Tensor
        int64 ``[n_clips]``: each clip's first row in ``windows``.
    labels : torch.Tensor
        float32 multi-hot ``[n_clips, n_classes]``.
    scale : float
    zero_point : int
        Dequantisation of the features: ``(q - zero_point) * scale``.
    n_frames : np.ndarray
        int64 ``[n_clips]``: clip lengths in frames (the windows' layout follows from them).
    clip_index : np.ndarray
        int64 ``[n_clips]``: the clips' indices in the :class:`FeatureSet`.
    hop_frames : int
        Hop between a clip's windows.
    """

    windows: torch.Tensor
    mask: torch.Tensor
    first: torch.Tensor
    labels: torch.Tensor
    scale: float
    zero_point: int
    n_frames: np.ndarray
    clip_index: np.ndarray
    hop_frames: int

    @classmethod
    def from_features(
        cls, fs: FeatureSet, indices: np.ndarray, window_frames: int, hop_frames: int
    ) -> ClipWindows:
        """Cut clips ``indices`` of ``fs`` into windows (:func:`~model_dev.arch.clip_windows`)."""
        per_clip = [clip_windows(fs.clip(i), window_frames, hop_frames) for i in indices]
        counts = np.array([len(w) for w in per_clip], dtype=np.int64)
        n_win = int(counts.max(initial=1))
        mask = np.arange(n_win)[None, :] < counts[:, None]
        empty = np.zeros((0, window_frames, fs.features.shape[1]), np.int8)
        windows = np.concatenate(per_clip) if per_clip else empty
        return cls(
            torch.from_numpy(windows),
            torch.from_numpy(mask),
            torch.from_numpy(np.cumsum(counts) - counts),
            torch.from_numpy(np.asarray(fs.labels)[indices].astype(np.float32)),
            fs.config.input_scale,
            fs.config.input_zero_point,
            np.diff(fs.offsets)[indices].astype(np.int64),
            np.asarray(indices, dtype=np.int64),
            hop_frames,
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def window_frames(self) -> int:
        """Frames per window."""
        return int(self.windows.shape[1])

    def batch(
        self, idx: np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Dequantised windows ``[B, W, T, F]``, mask ``[B, W]`` and labels ``[B, C]`` of clips
        ``idx`` on ``device``; W is the most windows of any clip in the batch."""
        idx = torch.as_tensor(idx)
        mask = self.mask[idx]
        n_win = int(mask.sum(1).max())
        mask = mask[:, :n_win]
        q = torch.full((len(idx), n_win, *self.windows.shape[1:]), SILENCE_Q, dtype=torch.int8)
        q[mask] = self.windows[(self.first[idx][:, None] + torch.arange(n_win))[mask]]
        x = q.to(device, non_blocking=True).float()
        x = (x - self.zero_point) * self.scale
        return x, mask.to(device), self.labels[idx].to(device)


def forward_windows(
    model: nn.Module, windows: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Model over the real windows ``[N, T, F]`` (= ``x[mask]``) of a batch.

    Returns clip logits ``[B, C]`` (max over each clip's windows), window logits ``[N, C]`` and
    block features of the N windows.
    """
    logits, feats = model(windows)
    padded = logits.new_full((*mask.shape, logits.shape[1]), float("-inf"))
    return aggregate(padded.index_put((mask,), logits), mask), logits, feats


def split_windows(fs: FeatureSet, splits: Sequence[str], spec: ArchSpec, hop: int) -> ClipWindows:
    idx = fs.indices(splits)
    if not len(idx):
        raise ValueError(
            f"no clips in split(s) {list(splits)}; the data has {sorted(set(fs.splits))}"
        )
    return ClipWindows.from_features(fs, idx, spec.window_frames, hop)


@torch.no_grad()
def predict(
    model: nn.Module, data: ClipWindows, device: torch.device, batch_size: int, amp: bool = False
) -> np.ndarray:
    """Clip logits (max over windows), float64 ``[n_clips, n_classes]``."""
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        x, mask, _ = data.batch(np.arange(start, min(start + batch_size, len(data))), device)
        with autocast(device, amp):
            clip_logits = forward_windows(model, x[mask], mask)[0]
        out.append(clip_logits.float().cpu())
    return torch.cat(out).double().numpy()
