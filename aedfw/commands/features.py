"""``aedfw features``: precompute the feature cache (:func:`model_dev.features.features`)."""

from __future__ import annotations

import argparse

from aedfw.commands import Commands
from aedfw.options import add_dataset_options, add_frontend_option, dataset_spec

EXAMPLES = (
    "aedfw features --data data/small",
    "aedfw features --dataset manifest --data clips.csv --val-fraction 0.15 --cache cache/features",
)


def register(commands: Commands) -> None:
    p = commands.add("features", "precompute and cache front-end features", run, examples=EXAMPLES)
    add_dataset_options(p)
    add_frontend_option(p)


def run(args: argparse.Namespace) -> None:
    from aedfw.config import load_frontend_config

    cfg = load_frontend_config(args.frontend)
    fs = dataset_spec(args).features(cfg)
    frames = int(fs.offsets[-1])
    print(f"{len(fs)} clips, {frames} frames x {cfg.n_mels} mels (front end {cfg.short_hash})")
    for path, why in fs.skipped:
        print(f"skipped {path}: {why}")
    for split, counts in fs.label_counts().items():  # a typo in a label shows up as its own
        print(f"{split} clips per label: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
