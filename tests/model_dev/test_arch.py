"""Block spec, torch builder, statistics and window aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from model_dev.arch import (
    STUDENTS,
    TEACHER,
    ArchSpec,
    Conv,
    DSConv,
    clip_windows,
    same_pad,
    spec_stats,
    window_starts,
)
from model_dev.torch_net import aggregate, build_torch, clip_forward

torch.set_num_threads(1)

#: Odd shapes: even kernels, mixed strides, windows not divisible by the strides.
ODD = ArchSpec(
    "odd",
    (Conv(6, (4, 3), (2, 3)), DSConv(10, (2, 5), (3, 1)), DSConv(7, (3, 3), (1, 2))),
    n_classes=3,
    window_frames=37,
    n_mels=23,
)
SPECS = [TEACHER, *STUDENTS.values(), ODD]


def _count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of one sample from forward hooks on Conv2d and Linear modules."""
    total = 0

    def hook(mod: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            per_out = mod.in_channels // mod.groups * math.prod(mod.kernel_size)
            total += out[0].numel() * per_out
        else:
            total += mod.in_features * mod.out_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_stats_match_torch_model(spec: ArchSpec) -> None:
    model = build_torch(spec).eval()
    stats = spec_stats(spec)
    assert stats["params"] == sum(p.numel() for p in model.parameters())
    x = torch.randn(1, spec.window_frames, spec.n_mels)
    assert stats["macs"] == _count_macs(model, x)
    with torch.no_grad():
        logits, feats = model(x)
    assert logits.shape == (1, spec.n_classes)
    assert [tuple(f.shape[1:]) for f in feats] == stats["block_shapes"]
    assert len(feats) == len(spec.blocks)
    # folding BN removes gamma/beta and adds one bias per output channel
    n_bn = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert stats["deployed_params"] == stats["params"] - n_bn


def test_stats_by_hand() -> None:
    spec = ArchSpec(
        "hand", (Conv(4, (3, 3), (2, 2)), DSConv(8)), n_classes=2, window_frames=8, n_mels=6
    )
    s = spec_stats(spec)
    assert s["block_shapes"] == [(4, 4, 3), (8, 4, 3)]
    assert s["params"] == (36 + 8) + (36 + 8) + (32 + 16) + 18
    assert s["deployed_params"] == (36 + 4) + (36 + 4) + (32 + 8) + 18
    assert s["macs"] == 12 * 36 + 12 * 36 + 12 * 32 + 16
    assert s["weight_bytes_int8"] == (36 + 36 + 32 + 16) + 4 * (4 + 4 + 8 + 2)
    assert s["activation_bytes_int8"] == 48 + 96  # pointwise conv: 4x3x4 in, 4x3x8 out
    assert [r["op"] for r in s["layers"]] == [
        "conv",
        "depthwise",
        "conv",
        "mean",
        "fully_connected",
        "logistic",
    ]


@pytest.mark.parametrize(
    ("n", "k", "s", "pad"),
    [
        (5, 3, 2, (1, 1)),
        (6, 3, 2, (0, 1)),
        (7, 4, 1, (1, 2)),
        (4, 1, 2, (0, 0)),
        (40, 5, 2, (1, 2)),
        (3, 5, 1, (2, 2)),
        (9, 2, 3, (0, 0)),
    ],
)
def test_tf_same_padding(n: int, k: int, s: int, pad: tuple[int, int]) -> None:
    assert same_pad(n, k, s) == pad
    for blk in (Conv(2, (k, 1), (s, 1)), DSConv(2, (k, 1), (s, 1))):
        spec = ArchSpec("p", (Conv(3, (1, 1)), blk), window_frames=n, n_mels=4)
        with torch.no_grad():
            _, feats = build_torch(spec)(torch.randn(1, n, 4))
        assert feats[-1].shape[2] == math.ceil(n / s)


def test_family_sizes() -> None:
    params = {name: spec_stats(s)["params"] for name, s in STUDENTS.items()}
    assert len(params) >= 4
    values = list(params.values())
    assert values == sorted(values)
    for name, p in params.items():
        nominal = int(name[1:-1]) * 1000
        assert 0.7 * nominal <= p <= 1.3 * nominal, (name, p)
    assert 1_000_000 <= spec_stats(TEACHER)["params"] <= 5_000_000
    for s in STUDENTS.values():
        assert isinstance(s.blocks[0], Conv)
        assert all(isinstance(b, DSConv) for b in s.blocks[1:])


def test_windows_and_aggregation() -> None:
    assert window_starts(398, 100, 50) == [0, 50, 100, 150, 200, 250, 298]
    assert window_starts(200, 100, 50) == [0, 50, 100]
    assert window_starts(100, 100, 50) == [0]
    assert window_starts(30, 100, 50) == [0]
    feats = np.arange(7 * 2, dtype=np.int8).reshape(7, 2)
    w = clip_windows(feats, 4, 2)
    assert w.shape == (3, 4, 2) and w.dtype == np.int8
    np.testing.assert_array_equal(w[2], feats[3:7])
    short = clip_windows(feats[:3].astype(np.float32) / 6, 5, 2, pad_value=-26.5)
    assert short.shape == (1, 5, 2)
    np.testing.assert_array_equal(short[0, 3:], -26.5)
    with pytest.raises(ValueError, match="pad_value"):
        clip_windows(feats[:3].astype(np.float32), 5, 2)
    assert clip_windows(feats[:3], 5, 2)[0, 4, 0] == -128

    logits = torch.tensor([[[0.0, -3.0], [2.0, -1.0], [-5.0, 9.0]]])
    torch.testing.assert_close(aggregate(logits), torch.tensor([[2.0, 9.0]]))
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(aggregate(logits, mask), torch.tensor([[2.0, -1.0]]))
    # max of probabilities == sigmoid of the aggregated logits
    torch.testing.assert_close(torch.sigmoid(logits).amax(1), torch.sigmoid(aggregate(logits)))


def test_clip_forward() -> None:
    model = build_torch(STUDENTS["s5k"]).eval()
    windows = torch.randn(2, 3, 100, 40)
    with torch.no_grad():
        clip, per_window, feats = clip_forward(model, windows)
        single, _ = model(windows[1])
    assert clip.shape == (2, 8) and per_window.shape == (2, 3, 8) and feats[0].shape[0] == 6
    torch.testing.assert_close(per_window[1], single)
    torch.testing.assert_close(clip, per_window.amax(1))
