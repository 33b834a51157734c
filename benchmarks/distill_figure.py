"""The figure of docs/distillation.md: clip-level IUSP Grams of one siren, teacher and students.

A two-tone (hi-lo) siren of 4 s from the built-in corpus's generator (``synth.event_sound``,
seed 1: the generator's first draw picks the hi-lo variant) goes through the integer front end;
the teacher, an undistilled student and an IUSP student run on the windows that tile the clip,
and the clip-level Grams of the benchmark's layer pair are drawn side by side (the students'
resized to the teacher's size, as the loss sees them).

Usage::

    python benchmarks/distill_figure.py TEACHER.pt NONE_STUDENT.pt IUSP_STUDENT.pt \
        [--out docs/img/iusp_grams.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from model_dev.arch import block_shapes, clip_windows
from model_dev.checkpoint import load_checkpoint
from model_dev.distill import DistillConfig, clip_gram, clip_groups, resize_gram
from model_dev.frontend import Frontend, FrontendConfig
from model_dev.synth import event_sound

SIREN_SEED, SECONDS = 1, 4.0


@torch.no_grad()
def grams(paths: list[Path]) -> tuple[list[np.ndarray], list[str], str]:
    """Clip Grams (teacher first; students resized to its size), panel titles, pair text."""
    (teacher, tmeta), *students = [load_checkpoint(p) for p in paths]
    cfg = FrontendConfig.from_dict(tmeta["frontend"])
    q = Frontend(cfg)(event_sound("alert-signal", SIREN_SEED, SECONDS))
    window = teacher.spec.window_frames
    x = torch.from_numpy(
        (clip_windows(q, window, window).astype(np.float32) - cfg.input_zero_point)
        * cfg.input_scale
    )
    group = clip_groups([len(q)], [len(x)], window, window)[0]
    _, smeta = students[-1]
    dcfg = DistillConfig(iusp=1.0, layer_pairs=smeta["train_config"]["layer_pairs"])
    s_block, t_block = dcfg.pairs_for(
        block_shapes(students[-1][0].spec), block_shapes(teacher.spec)
    )[-1]
    gt = clip_gram(teacher(x)[1][t_block], group, window)
    out, titles = [gt[0].numpy()], [f"teacher block {t_block}"]
    for model, meta in students:
        gs = resize_gram(clip_gram(model(x)[1][s_block], group, window), gt.shape[-1])
        arm = "IUSP" if meta["train_config"]["iusp"] > 0 else "no distillation"
        err = float((gs - gt).pow(2).mean())
        out.append(gs[0].numpy())
        titles.append(f"{meta['arch']['name']} block {s_block}, {arm}\nmean sq. diff {err:.4f}")
    return out, titles, f"student block {s_block} / teacher block {t_block}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", type=Path, nargs=3)
    ap.add_argument("--out", type=Path, default=Path("docs/img/iusp_grams.png"))
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mats, titles, pair = grams(args.checkpoints)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for ax, m, title in zip(axes, mats, titles, strict=True):
        ax.imshow(m, cmap="magma")  # own colour range per panel: the structure is the point
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("time step (4-s clip)")
    axes[0].set_ylabel("time step")
    fig.suptitle(f"Clip-level self-similarity of a hi-lo siren ({pair})", fontsize=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100, bbox_inches="tight", metadata={"Software": None})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
