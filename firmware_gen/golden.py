"""Golden vectors: short clips with the bytes every stage must produce on the device.

The clips are cut from audio the caller passes in (a recording, a synthetic clip) or, by default,
from :func:`test_signal`; their lengths exercise the edge cases of window assembly. The expected
bytes come from the host references: the Python front end and the TFLM runtime with the task's
clip post-processing (:func:`quantize.runtime.clip_outputs`).
"""

from __future__ import annotations

import numpy as np

from model_dev.frontend import Frontend

#: Golden clips: (name, frames as a function of model window W and hop H).
GOLDEN = (
    ("short", lambda w, h: max(w // 2, 1)),  # shorter than a window: padded
    ("exact", lambda w, h: w),  # exactly one window
    ("ragged", lambda w, h: w + h // 2 + 1),  # a hop does not fit: extra final window
)
#: Extra samples after the last frame (a partial hop the front end keeps for later).
GOLDEN_TAIL_SAMPLES = 37


def test_signal(n: int, seed: int = 0) -> np.ndarray:
    """``n`` samples of deterministic int16 test audio: a chirp, tone bursts and noise.

    Broadband and non-stationary, so the golden clips exercise every mel band and many
    normalisation shifts of the front end.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    chirp = np.sin(2 * np.pi * (100.0 * t + 900.0 * t**2))
    bursts = np.sin(2 * np.pi * 1250.0 * t) * (np.sin(2 * np.pi * 3.0 * t) > 0.3)
    noise = rng.standard_normal(n)
    level = 0.05 + 0.45 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    audio = level * (0.5 * chirp + 0.3 * bursts + 0.2 * noise)
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def golden_clips(tflite: bytes, meta, audio: np.ndarray | None = None) -> list[dict]:
    """The golden clips: audio, reference features, TFLM window scores, clip scores, decisions.

    Parameters
    ----------
    tflite : bytes
        The model.
    meta : quantize.metadata.ModelMetadata
        Its metadata (front end, window, hop, task, thresholds).
    audio : np.ndarray, optional
        int16 mono audio at the front end's sample rate to cut the clips from, one after the
        other (repeated when too short). Default: :func:`test_signal`.

    Returns
    -------
    list of dict
        One dict per clip with ``name``, ``audio`` (int16), ``features`` (int8, flat),
        ``window_scores`` (int8, flat), ``clip_scores``, ``decisions`` and the sizes.
    """
    from quantize.runtime import clip_outputs

    cfg = meta.frontend
    w, h = meta.window_frames, meta.window_hop_frames
    lengths = [
        cfg.window_length + (frames_of(w, h) - 1) * cfg.hop_length + GOLDEN_TAIL_SAMPLES
        for _, frames_of in GOLDEN
    ]
    source = test_signal(sum(lengths)) if audio is None else np.asarray(audio)
    if source.dtype != np.int16 or source.ndim != 1 or not len(source):
        raise ValueError(
            f"golden audio must be non-empty 1-D int16, got {source.dtype} {source.shape}"
        )
    source = np.resize(source, sum(lengths))
    starts = np.cumsum([0, *lengths[:-1]])
    clips_audio = [source[s : s + n] for s, n in zip(starts, lengths, strict=True)]
    fe = Frontend(cfg)
    features = [fe(a) for a in clips_audio]
    outputs = clip_outputs(tflite, meta, features, meta.arena_bytes)
    clips = []
    for (name, _), clip, feats, (scores, clip_scores, decisions) in zip(
        GOLDEN, clips_audio, features, outputs, strict=True
    ):
        clips.append(
            {
                "name": name,
                "audio": clip,
                "n_samples": len(clip),
                "features": feats.ravel(),
                "n_frames": len(feats),
                "window_scores": scores.ravel(),
                "n_windows": len(scores),
                "clip_scores": clip_scores,
                "decisions": decisions.astype(np.uint8),
            }
        )
    return clips
