"""Difficulty check of the synthetic corpus: mean-over-time log-mel + logistic regression.

A trivial baseline that sees only the long-term spectrum of a clip. It should land clearly above
chance and clearly below 1.0 (target micro-AUPRC about 0.45-0.75 on the default preset), leaving
headroom for a CNN that sees temporal structure.

Usage::

    python benchmarks/synth_baseline.py [--data runs/synth-default] [--features-fn librosa]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_dev.audio import SAMPLE_RATE, read_audio
from model_dev.baseline import fit_mean_baseline
from model_dev.synth import CLASSES, ensure_corpus

N_MELS = 40


def librosa_features(audio: np.ndarray) -> np.ndarray:
    """Mean-over-time log-mel energies (40 mels, 25 ms window, 10 ms hop, 125-7500 Hz)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio.astype(np.float32) / 32768.0, sr=SAMPLE_RATE, n_fft=512, hop_length=160,
        win_length=400, n_mels=N_MELS, fmin=125.0, fmax=7500.0, power=2.0,
    )  # fmt: skip
    return np.log(mel + 1e-10).mean(axis=1)


# name -> clip_features(audio_int16) -> np.ndarray[n_mels]; add the integer front end here.
FEATURE_FNS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"librosa": librosa_features}


def load(data: Path, clip_features: Callable[[np.ndarray], np.ndarray]):
    """Features, multi-hot labels and split names of every clip in ``data/clips.csv``."""
    with open(data / "clips.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.stack([clip_features(read_audio(data / "audio" / r["filename"])) for r in rows])
    y = np.array([[c in r["labels"].split(";") for c in CLASSES] for r in rows], dtype=int)
    return x, y, np.array([r["split"] for r in rows])


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("runs/synth-default"))
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--features-fn", choices=sorted(FEATURE_FNS), default="librosa")
    args = ap.parse_args(argv)

    ensure_corpus(args.data, args.preset, args.seed, args.jobs)
    t0 = time.perf_counter()
    x, y, split = load(args.data, FEATURE_FNS[args.features_fn])
    t_feat = time.perf_counter() - t0
    train, test = split == "train", split == "test"
    res = fit_mean_baseline(x[train], y[train], x[test], y[test], CLASSES)
    print(
        f"\nfeatures: {args.features_fn} ({t_feat:.1f} s), train {train.sum()}, test {test.sum()}"
    )
    print(f"chance (micro) = {y[test].mean():.3f}\n")
    print("| class | test prevalence | AP |\n|---|---|---|")
    for c, prev in zip(CLASSES, y[test].mean(axis=0), strict=True):
        print(f"| {c} | {prev:.3f} | {res[f'ap/{c}']:.3f} |")
    print(f"| **micro** | {y[test].mean():.3f} | **{res['micro']:.3f}** |")
    print(f"| **macro** | | **{res['macro']:.3f}** |")
    return res


if __name__ == "__main__":
    main()
