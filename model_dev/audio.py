"""Audio I/O: every clip aedfw touches becomes 16 kHz mono int16.

One place reads and writes audio so that every loader reports bad files the same way.
"""

from __future__ import annotations

import re
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
# libsndfile's header log line for a WAV data chunk that is shorter than its header says.
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def to_int16_mono(data: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Down-mix, resample and convert audio to int16 at ``target_rate``.

    Parameters
    ----------
    data : np.ndarray
        Samples, shape ``(n,)`` or ``(n, channels)``; int16 or float in [-1, 1].
    sample_rate : int
        Rate of ``data`` in Hz.
    target_rate : int
        Output rate in Hz.

    Returns
    -------
    np.ndarray
        int16 samples, shape ``(m,)``.
    """
    if data.dtype == np.int16 and data.ndim == 1 and sample_rate == target_rate:
        return data
    x = data.astype(np.float64)
    if data.dtype == np.int16:
        x /= 32768.0
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sample_rate != target_rate:
        from scipy.signal import resample_poly  # 1.5 s import; most corpora need no resampling

        g = gcd(sample_rate, target_rate)
        x = resample_poly(x, target_rate // g, sample_rate // g)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def read_audio(path: str | Path, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any soundfile-supported file as int16 mono at ``target_rate``.

    Raises
    ------
    AudioError
        If the file is missing, unreadable, empty, or holds non-finite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    try:
        with sf.SoundFile(path) as f:
            rate = f.samplerate
            if f.subtype in ("PCM_16",) and f.channels == 1:
                data = f.read(dtype="int16")
            else:
                data = f.read(dtype="float64", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(path, f"unreadable audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no samples")
    if data.dtype != np.int16 and not np.all(np.isfinite(data)):
        raise AudioError(path, "non-finite samples (NaN or Inf)")
    return to_int16_mono(data, rate, target_rate)


def check_audio(path: str | Path) -> sf._SoundFileInfo:
    """Cheaply check that ``path`` is a usable audio file, reading its header only.

    Parameters
    ----------
    path : str or Path
        The file to check.

    Returns
    -------
    soundfile info
        ``soundfile.info(path)`` (samplerate, channels, frames, ...).

    Raises
    ------
    AudioError
        If the file is missing, empty (0 bytes or 0 frames), its header cannot be parsed, or a
        WAV file is shorter than its header declares (truncated). Corruption inside the sample
        data is only found when the file is read (:func:`read_audio`).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        detail = getattr(exc, "error_string", "") or str(exc)  # libsndfile's, without the path
        raise AudioError(path, f"unreadable audio header ({detail})") from None
    if info.frames <= 0:
        raise AudioError(path, "no samples (0 frames)")
    short = _SHORT_DATA.search(info.extra_info or "")
    if short:
        declared, held = int(short[1]), int(short[2])
        # 0 and 0xFFFFFFFF are placeholders written by streaming recorders, not truncation.
        if held < declared and declared not in (0, 0xFFFFFFFF):
            raise AudioError(
                path, f"truncated: header declares {declared} data bytes, file holds {held}"
            )
    return info


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono samples as a 16-bit PCM WAV (byte-identical for identical input)."""
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise ValueError(f"{path}: expected 1-D int16 samples, got {samples.dtype} {samples.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sample_rate, subtype="PCM_16", format="WAV")
