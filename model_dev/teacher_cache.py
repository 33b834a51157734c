"""The teacher's side of distillation, live or cached.

A distilled student needs, per batch, the teacher's window logits (``kd``), the paired layers'
activations (``sp``) and their Grams (``iusp``). :class:`LiveTeacher` runs the frozen teacher on
the same (augmented) windows the student sees. :class:`TeacherCache` computes them once, on the
clean (un-augmented) windows of the training split, and serves them by clip index: a distilled
epoch then costs about as much as an undistilled one.

Augmentation with the cache: SpecAugment masks change only the student's input; its targets are
the teacher's outputs on the clean windows (the student learns to reproduce, from a masked input,
what the teacher sees in the whole one). Mixup would need the teacher on mixed clips, so it
requires the live teacher (:class:`~model_dev.train_config.TrainConfig` refuses the combination).

An entry lives in ``CACHE/teacher-<key>/`` where the key hashes the teacher's weights, the dataset
fingerprint, the front end, the window layout, the clips, the terms, IUSP scope and layer pairs; it
is written to a temporary folder and renamed into place like the feature cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model_dev.distill import (
    ClipGroup,
    DistillConfig,
    Pairs,
    TeacherBatch,
    clip_groups,
    clip_tiles,
    teacher_batch,
    tile_steps,
)
from model_dev.fileio import atomic_dir
from model_dev.windows import ClipWindows, forward_windows

CACHE_FORMAT = 1


class LiveTeacher:
    """The frozen teacher run on each batch's (augmented) windows."""

    def __init__(self, model: nn.Module, cfg: DistillConfig, pairs: Pairs, window_frames: int):
        self.model, self.cfg, self.pairs, self.window_frames = model, cfg, pairs, window_frames

    @torch.no_grad()
    def __call__(
        self, idx: np.ndarray, windows: torch.Tensor, mask: torch.Tensor, groups
    ) -> TeacherBatch:
        """Teacher outputs of the batch's real ``windows`` ``[N, T, F]``."""
        _, logits, feats = forward_windows(self.model, windows, mask)
        return teacher_batch(self.cfg, self.pairs, logits, feats, groups, self.window_frames)


def _entry_key(identity: dict) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TeacherCache:
    """Teacher outputs on the clean windows of a clip set, gathered per batch.

    Arrays (numpy, memory-mapped from the entry) are indexed by the position of a clip in the
    :class:`~model_dev.windows.ClipWindows` they were built from: ``logits`` ``[n, W, K]``;
    ``feat_<j>`` ``[n, W, C, T, F]`` (``sp``); ``wgram_<j>`` ``[n, W, T, T]`` (window-scope
    ``iusp``); ``cgram_<j>`` ``[n, Tc, Tc]`` with ``csize_<j>`` ``[n]`` (clip-scope ``iusp``,
    padded to the longest clip).
    """

    def __init__(self, entry: Path, cfg: DistillConfig, pairs: Pairs):
        self.cfg, self.pairs = cfg, pairs
        found = json.loads((entry / "index.json").read_text()).get("format")
        if found != CACHE_FORMAT:
            raise ValueError(f"{entry}: teacher cache format {found}, expected {CACHE_FORMAT}")
        self.arrays = {p.stem: np.load(p, mmap_mode="r") for p in sorted(entry.glob("*.npy"))}

    @classmethod
    def load_or_build(
        cls,
        cache_dir: str | Path,
        identity: dict,
        teacher: nn.Module,
        data: ClipWindows,
        cfg: DistillConfig,
        pairs: Pairs,
        device: torch.device,
        *,
        batch_size: int = 32,
        progress: bool = True,
    ) -> TeacherCache:
        """Open the entry for ``identity`` (teacher, data, front end, layout), building it on a
        miss.

        Parameters
        ----------
        cache_dir : str or Path
            Cache root.
        identity : dict
            What the targets depend on besides ``cfg``'s terms and ``pairs``: teacher weights
            hash, dataset fingerprint, front-end hash, window layout and clip indices.
        teacher : nn.Module
            The frozen teacher (eval mode).
        data : ClipWindows
            The clips to cache (the training split).
        cfg : DistillConfig
            Terms and IUSP scope.
        pairs : tuple of (student_block, teacher_block)
            Layer pairs.
        device : torch.device
            Where the teacher runs.
        batch_size : int
            Clips per teacher batch.
        progress : bool
            Show a progress bar while building.
        """
        full = {
            **identity,
            "format": CACHE_FORMAT,
            "terms": list(cfg.terms),
            "iusp_scope": cfg.iusp_scope if cfg.iusp else None,
            "teacher_blocks": sorted({j for _, j in pairs}) if (cfg.sp or cfg.iusp) else [],
        }
        entry = Path(cache_dir) / f"teacher-{_entry_key(full)}"
        if not (entry / "index.json").is_file():
            entry.parent.mkdir(parents=True, exist_ok=True)
            arrays = _compute(teacher, data, cfg, pairs, device, batch_size, progress)
            _write_entry(entry, full, arrays)
        return cls(entry, cfg, pairs)

    def __call__(
        self,
        idx: np.ndarray,
        windows: torch.Tensor,
        mask: torch.Tensor,
        groups: Sequence[ClipGroup] | None,
    ) -> TeacherBatch:
        """The cached teacher outputs of clips ``idx`` (their real windows, as ``mask``)."""
        idx = np.asarray(idx)
        device, n_win = windows.device, mask.shape[1]
        mask_cpu = mask.cpu()

        def windowed(name: str) -> torch.Tensor:
            a = torch.from_numpy(np.ascontiguousarray(self.arrays[name][idx, :n_win]))
            return a[mask_cpu].to(device)

        out = TeacherBatch(logits=windowed("logits") if self.cfg.kd else None)
        blocks = sorted({j for _, j in self.pairs})
        if self.cfg.sp:
            out.feats = {j: windowed(f"feat_{j}") for j in blocks}
        if self.cfg.iusp and self.cfg.iusp_scope == "window":
            out.grams = {j: [windowed(f"wgram_{j}")] for j in blocks}
        elif self.cfg.iusp:
            for j in blocks:
                grams, sizes = self.arrays[f"cgram_{j}"], self.arrays[f"csize_{j}"]
                out.grams[j] = []
                for g in groups:
                    clips = idx[g.clips.numpy()]
                    n = int(sizes[clips[0]])
                    block = np.ascontiguousarray(grams[clips, :n, :n])
                    out.grams[j].append(torch.from_numpy(block).to(device))
        return out


@torch.no_grad()
def _compute(
    teacher: nn.Module,
    data: ClipWindows,
    cfg: DistillConfig,
    pairs: Pairs,
    device: torch.device,
    batch_size: int,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Run the teacher over every clip's clean windows; arrays as :class:`TeacherCache` holds."""
    teacher.eval()
    n, n_win, window_frames = len(data), data.mask.shape[1], data.window_frames
    hop = data.hop_frames
    arrays: dict[str, np.ndarray] = {}
    longest: dict[int, int] = {}  # teacher block -> the largest clip Gram

    def put(name: str, rows: np.ndarray, value: np.ndarray, shape=None) -> None:
        if name not in arrays:
            shape = value.shape[1:] if shape is None else shape
            arrays[name] = np.zeros((n, *shape), value.dtype)
        arrays[name][rows] = value

    bar = tqdm(range(0, n, batch_size), desc="teacher cache", unit="batch", disable=not progress)
    for start in bar:
        idx = np.arange(start, min(start + batch_size, n))
        x, mask, _ = data.batch(idx, device)
        counts = mask.sum(1).cpu()
        groups = clip_groups(data.n_frames[idx].tolist(), counts.tolist(), window_frames, hop)
        _, logits, feats = forward_windows(teacher, x[mask], mask)
        tb = teacher_batch(cfg, pairs, logits, feats, groups, window_frames)
        grid = torch.zeros(len(idx), n_win, dtype=torch.bool)
        grid[:, : mask.shape[1]] = mask.cpu()
        put("logits", idx, _on_grid(logits.float(), grid))
        for j, f in tb.feats.items():
            put(f"feat_{j}", idx, _on_grid(f, grid))
        for j, grams in tb.grams.items():
            if cfg.iusp_scope == "window":
                put(f"wgram_{j}", idx, _on_grid(grams[0], grid))
                continue
            if j not in longest:
                longest[j] = max(_clip_steps(data, feats[j].shape[2], window_frames))
            size_max = longest[j]
            for g, gram in zip(groups, grams, strict=True):
                rows, size = idx[g.clips.numpy()], gram.shape[-1]
                block = np.zeros((len(rows), size_max, size_max), np.float32)
                block[:, :size, :size] = gram.cpu().numpy()
                put(f"cgram_{j}", rows, block)
                put(f"csize_{j}", rows, np.full(len(rows), size, np.int64))
    return arrays


def _on_grid(t: torch.Tensor, grid: torch.Tensor) -> np.ndarray:
    """Per-window rows ``[N, ...]`` placed on the ``[clips, windows]`` grid (zeros elsewhere)."""
    out = torch.zeros(*grid.shape, *t.shape[1:])
    out[grid] = t.cpu()
    return out.numpy()


def _clip_steps(data: ClipWindows, f_steps: int, window: int) -> set[int]:
    """Clip-level Gram sizes of the clips for a layer with ``f_steps`` steps per window."""
    return {
        sum(tile_steps(f, window, f_steps) for _, f in clip_tiles(n, window, data.hop_frames))
        for n in set(data.n_frames.tolist())
    }


def _write_entry(entry: Path, index: dict, arrays: dict[str, np.ndarray]) -> None:
    def fill(tmp: Path) -> None:
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", a)
        (tmp / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")

    try:
        atomic_dir(entry, fill)
    except OSError:
        if not (entry / "index.json").is_file():
            raise  # otherwise a parallel job built the same entry first: keep that one
