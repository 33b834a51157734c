"""Built-in synthetic urban sound-tagging corpus (the offline default data set).

Clips are procedurally generated for the 8 coarse classes of the SONYC-UST taxonomy
(:data:`CLASSES`). Every clip has an urban background bed (traffic rumble with a random spectral
tilt, and sometimes wind, distant babble, mains/fan hum, hiss), sometimes unlabelled distractors
(birds, rain, gusts, rustling) and 0-3 possibly overlapping labelled events, each mixed at an SNR
drawn from :data:`SNR_DB_RANGE`: the event's power over its active 50 ms blocks (gated as in
ITU-R BS.1770, so a few barks are levelled by how loud they are while barking) relative to the
background bed's power over the event's span. Clips are not normalised: as with a fixed-gain
sensor, the bed level varies (:data:`BED_DBFS_RANGE`) and loud events make loud clips; the few
that reach full scale saturate softly (never wrap).

The classes are built to be confusable in their long-term spectrum (engines, saws and hum share
harmonic buzz; sirens, music notes, dog whines and bird trills are all tonal; both impact classes
use the same modal hit model) and to differ mostly in temporal structure: regular vs irregular
hits, rpm sweeps vs load-dependent pitch drops, periodic siren sweeps vs melodies with rhythm,
syllabic voice prosody vs sustained notes.

Output layout of :func:`synth`::

    out_dir/audio/clip_00000.wav   16-bit PCM, mono, 16 kHz
    out_dir/clips.csv              filename,split,labels   (filename relative to out_dir/audio)
    out_dir/events.csv             filename,label,onset_s,offset_s,snr_db
    out_dir/corpus.json            generator, version, preset, seed, n_clips, classes

Each clip's randomness comes only from ``SeedSequence([seed, index])``, so a corpus is
byte-identical for a seed whatever the number of worker processes, and presets of the same clip
length share their first clips and splits (``tiny``'s 120 are the first of ``small``'s 800).
Bump :data:`VERSION` whenever the generated audio or tables change for a given seed.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_dev.audio import SAMPLE_RATE, write_wav
from model_dev.datasets import SONYC_CLASSES
from model_dev.synth_sounds import (
    DURATIONS,
    GENERATORS,
    active_rms,
    background,
    distractor,
    fade,
    reverb,
    rms,
)

CLASSES = SONYC_CLASSES  # the 8 coarse SONYC-UST classes, in their order
VERSION = "1.1"  # 1.1: gated SNR, fixed-gain levels, reverb, sung music, soft saturation
SNR_DB_RANGE = (-6.0, 24.0)
SNR_MODE_DB = 24.0  # triangular distribution: most events audible, a tail near the noise floor
# Background level: no per-clip normalisation, so (as with a fixed-gain sensor) loud events make
# loud clips, and quiet scenes stay quiet.
BED_DBFS_RANGE = (-56.0, -36.0)
# Imbalanced on purpose, like real urban recordings: engines and voices are everywhere.
CLASS_WEIGHTS = np.array([0.24, 0.11, 0.09, 0.07, 0.14, 0.08, 0.20, 0.07])
N_EVENTS_P = np.array([0.12, 0.43, 0.32, 0.13])  # P(0, 1, 2, 3 events in a clip)

SR = SAMPLE_RATE


@dataclass(frozen=True)
class SynthPreset:
    """Size of a generated corpus.

    Attributes
    ----------
    name : str
        Preset name.
    n_clips : int
        Number of clips.
    duration_s : float
        Length of every clip in seconds.
    splits : tuple[float, float, float]
        Fractions of clips in the train, validate and test splits.
    """

    name: str
    n_clips: int
    duration_s: float
    splits: tuple[float, float, float]


PRESETS: dict[str, SynthPreset] = {
    p.name: p
    for p in (
        SynthPreset("tiny", 120, 3.0, (0.7, 0.15, 0.15)),
        SynthPreset("small", 800, 3.0, (0.7, 0.15, 0.15)),
        SynthPreset("default", 2000, 4.0, (0.7, 0.15, 0.15)),
        SynthPreset("large", 10000, 10.0, (0.7, 0.15, 0.15)),
    )
}


@dataclass(frozen=True)
class Event:
    """A labelled sound event in a clip.

    Attributes
    ----------
    label : str
        One of :data:`CLASSES`.
    onset_s, offset_s : float
        Span of the event in the clip, seconds.
    snr_db : float
        Event power over its active (gated) blocks relative to the background bed's power over
        the event's span, dB.
    """

    label: str
    onset_s: float
    offset_s: float
    snr_db: float


# ---------------------------------------------------------------------------------------------
# Mixing


def _saturate(x: np.ndarray, knee: float = 0.6, ceiling: float = 0.9) -> np.ndarray:
    """Analog-style saturation: linear up to ``knee``, tanh up to ``ceiling`` (of full scale).

    Loud clips saturate instead of wrapping, and since no output exceeds 0.9 full scale, no
    sample-to-sample step reaches 60000 LSB (the signature of an int16 wrap).
    """
    a = np.abs(x)
    soft = knee + (ceiling - knee) * np.tanh((a - knee) / (ceiling - knee))
    return np.sign(x) * np.where(a > knee, soft, a)


def synthesize_clip(index: int, seed: int, duration_s: float) -> tuple[np.ndarray, list[Event]]:
    """Generate one clip of the synthetic corpus.

    Parameters
    ----------
    index : int
        Clip index within the corpus.
    seed : int
        Corpus seed; the clip's randomness is ``SeedSequence([seed, index])`` only.
    duration_s : float
        Clip length in seconds.

    Returns
    -------
    audio : np.ndarray
        int16 mono samples at :data:`model_dev.audio.SAMPLE_RATE`.
    events : list[Event]
        The labelled events, sorted by onset (empty for a background-only clip).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    n = int(round(duration_s * SR))
    bed = background(rng, n) * 10 ** (rng.uniform(*BED_DBFS_RANGE) / 20)
    x = bed.copy()
    for _ in range(rng.choice(3, p=[0.7, 0.25, 0.05])):
        d = distractor(rng, n)
        x += d / rms(d) * rms(bed) * 10 ** (rng.uniform(-10, 10) / 20)
    events = []
    k = rng.choice(len(N_EVENTS_P), p=N_EVENTS_P)
    for c in sorted(rng.choice(len(CLASSES), size=k, replace=False, p=CLASS_WEIGHTS)):
        lo, hi = DURATIONS[c]
        m = min(n, int(rng.uniform(lo, hi) * SR))
        start = int(rng.integers(0, n - m + 1))
        s = GENERATORS[c](rng, m)
        s = (reverb(rng, s) if rng.random() < 0.6 else s) * fade(m, 0.005, 0.02)
        snr = round(float(rng.triangular(SNR_DB_RANGE[0], SNR_MODE_DB, SNR_DB_RANGE[1])), 1)
        x[start : start + m] += s / active_rms(s) * rms(bed[start : start + m]) * 10 ** (snr / 20)
        events.append(Event(CLASSES[c], round(start / SR, 3), round((start + m) / SR, 3), snr))
    if rng.random() < 0.03:  # a hot recording: peaks driven up to 6 dB into saturation
        x *= rng.uniform(1.0, 2.0) / np.abs(x).max()
    audio = np.clip(np.round(_saturate(x) * 32767), -32768, 32767).astype(np.int16)
    return audio, sorted(events, key=lambda e: (e.onset_s, e.label))


def event_sound(label: str, seed: int, duration_s: float, snr_db: float = 18.0) -> np.ndarray:
    """One event of class ``label`` alone over the urban background, as the corpus renders it
    (for figures and demonstrations; the corpus itself uses :func:`synthesize_clip`).

    Parameters
    ----------
    label : str
        One of :data:`CLASSES`.
    seed : int
        Seeds the event's generator (its variant, pitch, period...) and the background.
    duration_s : float
        Length; the event fills it.
    snr_db : float
        Event level over the background.

    Returns
    -------
    np.ndarray
        int16 mono samples.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; choose one of {list(CLASSES)}")
    rng = np.random.default_rng(seed)  # the event's generator draws first (its variant)
    n = int(round(duration_s * SR))
    s = GENERATORS[CLASSES.index(label)](rng, n) * fade(n, 0.005, 0.02)
    bed = background(rng, n) * 10 ** (-46 / 20)
    x = bed + s / active_rms(s) * rms(bed) * 10 ** (snr_db / 20)
    return np.clip(np.round(_saturate(x) * 32767), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------------------------------------
# Corpus writer


def split_of(index: int, fractions: tuple[float, float, float]) -> str:
    """Deterministic split of clip ``index`` (golden-ratio sequence: exact fractions, interleaved).

    Parameters
    ----------
    index : int
        Clip index.
    fractions : tuple[float, float, float]
        Train, validate and test fractions.

    Returns
    -------
    str
        ``"train"``, ``"validate"`` or ``"test"``.
    """
    u = ((index + 0.5) * 0.6180339887498949) % 1.0
    return (
        "train" if u < fractions[0] else "validate" if u < fractions[0] + fractions[1] else "test"
    )


def _render(task: tuple[int, int, float, str]) -> list[Event]:
    """Worker: synthesise one clip, write its WAV, return its events (top level: spawn-safe)."""
    index, seed, duration_s, audio_dir = task
    audio, events = synthesize_clip(index, seed, duration_s)
    write_wav(Path(audio_dir) / _name(index), audio)
    return events


def _name(index: int) -> str:
    return f"clip_{index:05d}.wav"


def synth(
    out_dir: str | Path,
    preset: str = "default",
    seed: int = 0,
    jobs: int = 2,
    progress: bool = True,
) -> Path:
    """Generate the synthetic corpus.

    Parameters
    ----------
    out_dir : str or Path
        Output directory (created; existing files of the same names are overwritten).
    preset : str
        A key of :data:`PRESETS`: ``"tiny"`` (120 x 3 s, for tests), ``"small"`` (800 x 3 s,
        ``aedfw demo``'s), ``"default"`` (2000 x 4 s) or ``"large"`` (10000 x 10 s).
    seed : int
        Corpus seed; the output is byte-identical for a seed whatever ``jobs``.
    jobs : int
        Worker processes (1: generate in this process).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        If ``preset`` is unknown.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown synth preset {preset!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    tasks = [(i, seed, p.duration_s, str(out / "audio")) for i in range(p.n_clips)]
    bar = dict(total=p.n_clips, disable=not progress, desc=f"synth {preset}", unit="clip")
    if jobs <= 1:
        results = list(tqdm(map(_render, tasks), **bar))
    else:
        with multiprocessing.get_context().Pool(min(jobs, p.n_clips)) as pool:
            results = list(tqdm(pool.imap(_render, tasks, chunksize=4), **bar))
    with (
        open(out / "clips.csv", "w", newline="") as fc,
        open(out / "events.csv", "w", newline="") as fe,
    ):
        clips, evs = csv.writer(fc, lineterminator="\n"), csv.writer(fe, lineterminator="\n")
        clips.writerow(["filename", "split", "labels"])
        evs.writerow(["filename", "label", "onset_s", "offset_s", "snr_db"])
        for i, events in enumerate(results):
            labels = [c for c in CLASSES if any(e.label == c for e in events)]
            clips.writerow([_name(i), split_of(i, p.splits), ";".join(labels)])
            for e in events:
                evs.writerow(
                    [_name(i), e.label, f"{e.onset_s:.3f}", f"{e.offset_s:.3f}", f"{e.snr_db:.1f}"]
                )
    meta = {
        "generator": "aedfw.synth",
        "version": VERSION,
        "preset": preset,
        "seed": seed,
        "n_clips": p.n_clips,
        "classes": list(CLASSES),
    }
    (out / "corpus.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def ensure_corpus(out_dir: str | Path, preset: str, seed: int, jobs: int = 2) -> Path:
    """Generate the corpus unless ``out_dir`` already holds this preset, seed and VERSION."""
    meta = Path(out_dir) / "corpus.json"
    want = {"preset": preset, "seed": seed, "version": VERSION}
    if meta.is_file() and all(json.loads(meta.read_text()).get(k) == v for k, v in want.items()):
        return Path(out_dir)
    return synth(out_dir, preset=preset, seed=seed, jobs=jobs)
