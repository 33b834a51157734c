"""Running an int8 .tflite on the host: LiteRT reference kernels, the TFLM runtime, arena size.

* LiteRT: ``ai_edge_litert.interpreter.Interpreter`` with ``OpResolverType.BUILTIN_REF`` (the
  reference kernels, never the default XNNPACK/optimised path), one thread.
* TFLM: the ``tflite_micro`` Python runtime, the same kernels a microcontroller build runs; its
  outputs are the host golden values (DESIGN contract 4).

Both take int8 windows ``[N, frames, mels]`` exactly as the front end emits them and return int8
scores ``[N, n_classes]``.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from quantize.tflite_model import read_tflite


@contextmanager
def quiet_fds(*fds: int) -> Iterator[None]:
    """Silence C-level file descriptors (default stderr): the converter's and TFLM's chatter."""
    fds = fds or (2,)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "wb") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
        yield
    finally:
        for fd, old in zip(fds, saved, strict=True):
            os.dup2(old, fd)
            os.close(old)


#: TFLM aligns arena allocations to 16 bytes; the arena search resolves to this step.
ARENA_STEP = 16
#: Smallest arena probed: the runtime crashes on arenas of a few hundred bytes (see arena_size).
ARENA_FLOOR = 1024


def _windows(windows_q: np.ndarray) -> np.ndarray:
    w = np.asarray(windows_q)
    if w.ndim != 3 or w.dtype != np.int8:
        raise ValueError(f"expected int8 windows [N, frames, mels], got {w.dtype} {w.shape}")
    return w


def run_litert(tflite: bytes, windows_q: np.ndarray) -> np.ndarray:
    """int8 scores of every window through LiteRT's reference kernels (``BUILTIN_REF``).

    Parameters
    ----------
    tflite : bytes
        Full-int8 model.
    windows_q : np.ndarray
        int8 ``[N, frames, mels]``.

    Returns
    -------
    np.ndarray
        int8 ``[N, n_classes]``.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    w = _windows(windows_q)
    it = Interpreter(
        model_content=tflite,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        num_threads=1,
    )
    it.allocate_tensors()
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for x in w:
        it.set_tensor(i_idx, x[None, ..., None])
        it.invoke()
        out.append(it.get_tensor(o_idx)[0].copy())
    n_out = int(np.prod(it.get_output_details()[0]["shape"]))
    return np.array(out, dtype=np.int8).reshape(len(w), n_out)


def _tflm(tflite: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    with quiet_fds():  # TFLM prints allocation failures to stderr before raising
        return runtime.Interpreter.from_bytes(tflite, arena_size=arena_size)


def run_tflm(tflite: bytes, windows_q: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """int8 scores of every window through the ``tflite_micro`` runtime (host golden).

    Parameters
    ----------
    tflite : bytes
        Full-int8 model.
    windows_q : np.ndarray
        int8 ``[N, frames, mels]``.
    arena_size : int, optional
        Tensor arena bytes (default: generous, 10x the model size + 64 KiB).

    Returns
    -------
    np.ndarray
        int8 ``[N, n_classes]``.
    """
    w = _windows(windows_q)
    it = _tflm(tflite, arena_size or 10 * len(tflite) + 65536)
    out = []
    for x in w:
        it.set_input(x[None, ..., None], 0)
        it.invoke()
        out.append(np.asarray(it.get_output(0)).reshape(-1).copy())
    return np.array(out, dtype=np.int8).reshape(len(w), -1)


def clip_outputs(
    tflite: bytes,
    meta,
    features: list[np.ndarray],
    arena_size: int | None = None,
    *,
    own: Sequence[int | None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """What a device must answer for each clip's features: the host golden of the post-processing.

    Windows per :func:`model_dev.arch.clip_windows`, outputs through :func:`run_tflm` (one
    interpreter for all clips), then the window scores and clip post-processing of the model's
    task (:attr:`quantize.tasks.Task.clip_post`; tagging: the outputs, clip score = max over
    windows, decision = clip score >= ``meta.thresholds_q``; anomaly: integer window scores,
    clip ``(sum, count)``, decision ``sum >= thresholds_q[0] * count``).

    Parameters
    ----------
    tflite : bytes
        Full-int8 model.
    meta : quantize.metadata.ModelMetadata
        Its task, window, hop and int8 thresholds.
    features : list of np.ndarray
        int8 ``[frames, mels]`` per clip.
    arena_size : int, optional
        As in :func:`run_tflm`.
    own : sequence of int or None, optional
        Per clip, the ID classifier's own machine-ID class index (None: the default).

    Returns
    -------
    list of (window_scores, clip_scores, decisions)
        Per clip, as :attr:`~quantize.tasks.Task.clip_post` returns them (tagging: int8
        ``[windows, classes]``, int8 ``[classes]``, bool ``[classes]``; anomaly: uint32
        ``[windows, 1]``, uint64 ``[2]``, bool ``[1]``).
    """
    from model_dev.arch import clip_windows
    from quantize.tasks import task_of

    post = task_of(meta).clip_post
    windows = [clip_windows(f, meta.window_frames, meta.window_hop_frames) for f in features]
    if not windows:
        return []
    scores = run_tflm(tflite, np.concatenate(windows), arena_size)
    own = [None] * len(windows) if own is None else list(own)
    if len(own) != len(windows):
        raise ValueError(f"own: {len(own)} machine IDs for {len(windows)} clips")
    out, pos = [], 0
    for win, clip_own in zip(windows, own, strict=True):
        out.append(post(win, scores[pos : pos + len(win)], meta, own=clip_own))
        pos += len(win)
    return out


def runs_with_arena(tflite: bytes, arena_size: int, window_q: np.ndarray | None = None) -> bool:
    """Whether the TFLM runtime allocates and invokes ``tflite`` with ``arena_size`` bytes.

    Probed in a forked child: for some arenas a little too small the ``tflite_micro`` runtime
    segfaults instead of reporting failure (seen with FULLY_CONNECTED stacks, e.g. the dense
    autoencoders at 7.5-9 KiB and 16 KiB), which would kill the caller.
    """
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401 - imported before the fork

    for stream in (sys.stdout, sys.stderr):  # else the child would write them out a second time
        stream.flush()
    pid = os.fork()
    if pid == 0:  # child: report by exit status only, never return into the caller's code
        faulthandler.disable()  # an expected crash, not one to report
        try:
            code = 0 if _runs_with_arena(tflite, arena_size, window_q) else 1
        except BaseException:  # noqa: BLE001 - any failure means "does not run"
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _runs_with_arena(tflite: bytes, arena_size: int, window_q: np.ndarray | None) -> bool:
    try:
        it = _tflm(tflite, arena_size)
        details = it.get_input_details(0)
        x = window_q if window_q is not None else np.zeros(details["shape"], np.int8)
        it.set_input(np.asarray(x, np.int8).reshape(details["shape"]), 0)
        with quiet_fds():
            it.invoke()
    except RuntimeError:
        return False
    return True


def arena_size(tflite: bytes, hi: int | None = None) -> int:
    """Smallest TFLM tensor arena (multiple of 16 bytes) with which the model allocates and runs.

    Binary search between ``max(largest activation tensor, ARENA_FLOOR)`` and ``hi``: the result
    runs, 16 bytes less does not. The figure is the host (64-bit) runtime's; the arena also
    holds TFLM's per-tensor bookkeeping, whose size depends on pointer width, so a 32-bit MCU
    build typically needs a little less.

    Parameters
    ----------
    tflite : bytes
        Full-int8 model.
    hi : int, optional
        Upper bound to start from (default: 10x model size + 64 KiB, doubled until it runs).

    Returns
    -------
    int
        Arena bytes.

    Raises
    ------
    RuntimeError
        If no arena up to 256 MiB works.
    """
    hi = hi or 10 * len(tflite) + 65536
    hi = -(-hi // ARENA_STEP) * ARENA_STEP
    while not runs_with_arena(tflite, hi):
        if hi > 1 << 28:
            raise RuntimeError("TFLM cannot run the model with any arena up to 256 MiB")
        hi *= 2
    # Smaller arenas than the largest activation tensor cannot run, and the tflite_micro runtime
    # segfaults (kills the process) with arenas below about 1 KiB instead of reporting failure:
    # the search starts above both. TFLM's own bookkeeping alone needs more than 1 KiB.
    activations = [t.size for t in read_tflite(tflite).tensors if t.data is None]
    lo = max(max(activations), ARENA_FLOOR) // ARENA_STEP * ARENA_STEP  # lo fails, hi runs
    if runs_with_arena(tflite, lo):
        raise RuntimeError(f"TFLM ran with {lo} bytes: below the search floor, cannot bisect")
    while hi - lo > ARENA_STEP:
        mid = (lo + hi) // 2 // ARENA_STEP * ARENA_STEP
        if runs_with_arena(tflite, mid):
            hi = mid
        else:
            lo = mid
    return hi
