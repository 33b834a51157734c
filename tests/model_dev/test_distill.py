"""Distillation losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model_dev.arch import STUDENTS, TEACHER, block_shapes
from model_dev.distill import (
    DistillConfig,
    clip_gram,
    clip_groups,
    clip_tiles,
    default_layer_pairs,
    distillation_loss,
    iusp_loss,
    kd_loss,
    last_stage_pair,
    resize_gram,
    sp_loss,
    teacher_batch,
    utterance_gram,
)
from model_dev.torch_net import build_torch

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
    # mean over the 13 x 13 entries of each utterance, then over utterances
    expected = sum(torch.linalg.matrix_norm(gt[b] - gs_r[b]) ** 2 for b in range(3)) / 3 / 169
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
    for scope in ("window", "clip"):
        cfg = DistillConfig(kd=1.0, sp=2.0, iusp=0.5, layer_pairs="0:0,1:1", iusp_scope=scope)
        pairs = cfg.pairs_for([f.shape for f in s_feats], [f.shape for f in t_feats])
        groups = clip_groups([100, 200], [1, 2], window_frames=100, hop_frames=100)
        target = teacher_batch(cfg, pairs, t_logits, t_feats, groups, 100)
        terms = distillation_loss(cfg, pairs, s_logits, s_feats, target, groups, 100)
        assert set(terms) == {"kd", "sp", "iusp"}
        sum(terms.values()).backward()
        assert t_logits.grad is None and all(f.grad is None for f in t_feats)
        assert s_logits.grad.abs().sum() > 0 and all(f.grad.abs().sum() > 0 for f in s_feats)
        for f in [s_logits, *s_feats]:
            f.grad = None


def test_default_pairs_and_real_models() -> None:
    student = STUDENTS["s5k"]
    pairs = default_layer_pairs(block_shapes(student), block_shapes(TEACHER))
    # student stages end at 50x20, 25x10, 13x5 -> teacher stage ends at the same resolutions
    assert pairs == ((0, 1), (2, 3), (4, 5))
    # the last blocks: 13 steps per window against the teacher's 7, so IUSP resizes
    assert last_stage_pair(block_shapes(student), block_shapes(TEACHER)) == ((4, 7),)
    x = torch.randn(3, 100, 40)
    s_logits, s_feats = build_torch(student)(x)
    with torch.no_grad():
        t_logits, t_feats = build_torch(TEACHER).eval()(x)
    assert s_feats[4].shape[2] == 13 and t_feats[7].shape[2] == 7
    groups = clip_groups([200, 100], [2, 1], window_frames=100, hop_frames=100)
    for choice in ("stages", "last"):
        cfg = DistillConfig(kd=1.0, sp=1.0, iusp=1.0, layer_pairs=choice)
        pairs = cfg.pairs_for([f.shape for f in s_feats], [f.shape for f in t_feats])
        target = teacher_batch(cfg, pairs, t_logits, t_feats, groups, 100)
        terms = distillation_loss(cfg, pairs, s_logits, s_feats, target, groups, 100)
        assert all(torch.isfinite(v) for v in terms.values()) and set(terms) == {"kd", "sp", "iusp"}
    target = teacher_batch(DistillConfig(), (), t_logits, t_feats, None, 100)
    assert set(distillation_loss(DistillConfig(), (), s_logits, s_feats, target)) == {"kd"}


def test_config_validation() -> None:
    cfg = DistillConfig(layer_pairs="1:2")
    assert cfg.pairs_for([(1, 1, 1)] * 3, [(1, 1, 1)] * 3) == ((1, 2),)
    with pytest.raises(ValueError, match="the student has 1 blocks"):
        cfg.pairs_for([(1, 1, 1)], [(1, 1, 1)] * 3)
    for bad in ("1-2", "", "first", "1:2:3"):
        with pytest.raises(ValueError, match="layer_pairs"):
            DistillConfig(layer_pairs=bad)
    with pytest.raises(ValueError, match="temperature"):
        DistillConfig(temperature=0)
    with pytest.raises(ValueError, match="sp"):
        DistillConfig(sp=-1)
    with pytest.raises(ValueError, match="iusp_scope"):
        DistillConfig(iusp_scope="batch")


# --------------------------------------------------------------------------- clip-level IUSP
@pytest.mark.parametrize(
    ("n_frames", "hop", "tiles"),
    [
        (300, 50, ((0, 100), (2, 100), (4, 100))),  # exact: every second window
        (398, 50, ((0, 100), (2, 100), (4, 100), (6, 98))),  # tail from the end-aligned window
        (230, 100, ((0, 100), (1, 100), (2, 30))),
        (60, 50, ((0, 100),)),  # shorter than a window: the padded window
    ],
)
def test_clip_tiles(n_frames, hop, tiles) -> None:
    assert clip_tiles(n_frames, 100, hop) == tiles
    with pytest.raises(ValueError, match="divide the window"):
        clip_tiles(n_frames, 100, 30)


def test_clip_gram_equals_direct_computation_on_the_whole_sequence() -> None:
    """With features that keep every frame (identity layer), the clip-level Gram of the tiling
    windows, concatenated in time, is the Gram of the clip's whole feature sequence."""
    from model_dev.arch import clip_windows

    gen = torch.Generator().manual_seed(0)
    lengths = [398, 300, 398, 150]
    clips = [torch.randn(n, 6, generator=gen) for n in lengths]
    windows = [torch.from_numpy(clip_windows(c.numpy(), 100, 50, 0.0)) for c in clips]
    feats = torch.cat(windows)[:, None]  # [N, C=1, T=100, F=6]: the identity "layer"
    groups = clip_groups(lengths, [len(w) for w in windows], 100, 50)
    assert sorted(len(g.clips) for g in groups) == [1, 1, 2]  # the two 398-frame clips share
    for g in groups:
        got = clip_gram(feats, g, 100)
        for k, b in enumerate(g.clips.tolist()):
            direct = utterance_gram(clips[b].T[None, None].transpose(2, 3))[0]
            assert got[k].shape == (lengths[b], lengths[b])
            torch.testing.assert_close(got[k], direct)


def test_clip_iusp_resizes_student_gram_to_teacher_size() -> None:
    """Student 13 steps per window, teacher 7: each clip's student Gram (26 x 26 for a 2-window
    clip) is resized bilinearly to the teacher's (14 x 14) before the squared difference."""
    fs, ft = _feats(2, 4, 13, 5, seed=9), _feats(2, 6, 7, 3, seed=10)
    groups = clip_groups([200], [2], 100, 100)
    cfg = DistillConfig(kd=0.0, iusp=1.0, layer_pairs="0:0")
    target = teacher_batch(cfg, ((0, 0),), None, [ft], groups, 100)
    gt = target.grams[0][0]
    assert gt.shape == (1, 14, 14)
    gs = utterance_gram(torch.cat([fs[0], fs[1]], dim=1)[None])
    assert gs.shape == (1, 26, 26)
    expected = (gt - resize_gram(gs, 14)).pow(2).mean()
    terms = distillation_loss(cfg, ((0, 0),), None, [fs], target, groups, 100)
    torch.testing.assert_close(terms["iusp"], expected)
