"""Distillation losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model_dev.arch import STUDENTS, TEACHER, block_shapes, build_torch
from model_dev.distill import (
    DistillConfig,
    default_layer_pairs,
    distillation_loss,
    iusp_loss,
    kd_loss,
    resize_gram,
    sp_loss,
    utterance_gram,
)

torch.set_num_threads(1)
LOSSES = [sp_loss, iusp_loss]


def _feats(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).relu()


@pytest.mark.parametrize("loss", LOSSES)
def test_zero_when_student_equals_teacher(loss) -> None:
    f = _feats(4, 6, 5, 3)
    assert loss(f.clone(), f).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
def test_channel_permutation_invariance(loss) -> None:
    fs, ft = _feats(4, 6, 5, 3, seed=1), _feats(4, 9, 7, 4, seed=2)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss(fs[:, perm], ft), loss(fs, ft))
    assert loss(ft[:, torch.randperm(9)], ft).item() == pytest.approx(0.0, abs=1e-6)


def test_resize_matches_interpolate_on_known_matrix() -> None:
    g = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    out = resize_gram(g, 4)
    # align_corners=False: source coordinates (i + 0.5) / 2 - 0.5, clamped -> 0, .25, .75, 1
    r = torch.tensor([0.0, 0.25, 0.75, 1.0])
    torch.testing.assert_close(out[0], 2 * r[:, None] + r[None, :])
    ref = F.interpolate(g[:, None], size=(4, 4), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(out, ref)
    big = torch.rand(2, 7, 7)
    ref = F.interpolate(big[:, None], size=(3, 3), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(resize_gram(big, 3), ref)
    assert resize_gram(big, 7) is big


def test_iusp_by_definition_with_mismatched_shapes() -> None:
    fs, ft = _feats(3, 8, 5, 4, seed=4), _feats(3, 16, 13, 7, seed=5)
    gs, gt = utterance_gram(fs), utterance_gram(ft)
    assert gs.shape == (3, 5, 5) and gt.shape == (3, 13, 13)
    q = ft[1].permute(1, 0, 2).reshape(13, -1)  # utterance 1: T x (C F)
    torch.testing.assert_close(gt[1], F.normalize(q @ q.T, dim=-1))
    gs_r = F.interpolate(gs[:, None], size=(13, 13), mode="bilinear", align_corners=False)[:, 0]
    expected = sum(torch.linalg.matrix_norm(gt[b] - gs_r[b]) ** 2 for b in range(3)) / 3
    torch.testing.assert_close(iusp_loss(fs, ft), expected)
    for loss in LOSSES:
        value = loss(fs, ft)
        assert value.shape == () and torch.isfinite(value) and value > 0


def test_sp_by_definition() -> None:
    fs, ft = _feats(5, 3, 4, 2, seed=6), _feats(5, 7, 2, 6, seed=7)
    qs, qt = fs.reshape(5, -1), ft.reshape(5, -1)
    gs, gt = F.normalize(qs @ qs.T, dim=1), F.normalize(qt @ qt.T, dim=1)
    torch.testing.assert_close(sp_loss(fs, ft), ((gt - gs) ** 2).sum() / 25)


def test_kd_minimum_and_gradient() -> None:
    t = torch.randn(4, 8, generator=torch.Generator().manual_seed(8)) * 3
    for temp in (1.0, 3.0):
        s = t.clone().requires_grad_(True)
        at_eq = kd_loss(s, t, temp)
        at_eq.backward()
        assert s.grad.abs().max().item() < 1e-6
        p = torch.sigmoid(t / temp)
        entropy = F.binary_cross_entropy(p, p)
        torch.testing.assert_close(at_eq.detach(), entropy * temp**2)
        for seed in range(3):
            other = t + torch.randn(4, 8, generator=torch.Generator().manual_seed(seed))
            assert kd_loss(other, t, temp) > at_eq


def test_gradients_reach_student_only() -> None:
    s_logits = torch.randn(3, 8, requires_grad=True)
    t_logits = torch.randn(3, 8, requires_grad=True)
    s_feats = [
        torch.randn(3, 4, 6, 5, requires_grad=True),
        torch.randn(3, 8, 3, 2, requires_grad=True),
    ]
    t_feats = [
        torch.randn(3, 6, 9, 5, requires_grad=True),
        torch.randn(3, 9, 5, 3, requires_grad=True),
    ]
    cfg = DistillConfig(kd=1.0, sp=2.0, iusp=0.5, layer_pairs=[(0, 0), (1, 1)])
    total, parts = distillation_loss(cfg, s_logits, t_logits, s_feats, t_feats)
    assert set(parts) == {"kd", "sp", "iusp"}
    torch.testing.assert_close(total.detach(), parts["kd"] + 2 * parts["sp"] + 0.5 * parts["iusp"])
    total.backward()
    assert t_logits.grad is None and all(f.grad is None for f in t_feats)
    assert s_logits.grad.abs().sum() > 0 and all(f.grad.abs().sum() > 0 for f in s_feats)


def test_default_pairs_and_real_models() -> None:
    student = STUDENTS["s5k"]
    pairs = default_layer_pairs(block_shapes(student), block_shapes(TEACHER))
    # student stages end at 50x20, 25x10, 13x5 -> teacher stage ends at the same resolutions
    assert pairs == ((0, 1), (2, 3), (4, 5))
    x = torch.randn(2, 100, 40)
    s_logits, s_feats = build_torch(student)(x)
    with torch.no_grad():
        t_logits, t_feats = build_torch(TEACHER).eval()(x)
    cfg = DistillConfig(kd=1.0, sp=1.0, iusp=1.0)
    assert default_layer_pairs([f.shape for f in s_feats], [f.shape for f in t_feats]) == pairs
    total, parts = distillation_loss(cfg, s_logits, t_logits, s_feats, t_feats)
    assert torch.isfinite(total) and set(parts) == {"kd", "sp", "iusp"}
    total, parts = distillation_loss(DistillConfig(), s_logits, t_logits, s_feats, t_feats)
    assert set(parts) == {"kd"}


def test_config_validation() -> None:
    assert DistillConfig(layer_pairs=[[1, 2]]).layer_pairs == ((1, 2),)
    with pytest.raises(ValueError, match="temperature"):
        DistillConfig(temperature=0)
    with pytest.raises(ValueError, match="sp"):
        DistillConfig(sp=-1)
