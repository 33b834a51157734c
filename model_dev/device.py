"""The torch compute device: selection, reproducible RNG scope, mixed precision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; CUDA requested but missing -> ValueError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


@contextmanager
def reproducible(device: torch.device) -> Iterator[None]:
    """Fork the global RNGs (restored on exit); deterministic algorithms on CPU."""
    devices = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=devices):
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(device.type == "cpu" or before)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before)


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.float16, enabled=amp)
