"""Keep the libraries' log lines off the terminal: only aedfw's own messages and progress bars.

TensorFlow, LiteRT and the TFLM runtime log from C++ straight to file descriptor 2 (absl's
"before InitializeLog" notice, oneDNN and CPU-feature notes, CUDA probes such as ``failed call
to cuInit`` on a machine without a GPU), ignoring Python's ``sys.stderr`` and, for the earliest
lines, ``TF_CPP_MIN_LOG_LEVEL``. :func:`library_output` points descriptor 2 at a temporary file
for the length of a command and keeps Python's ``sys.stderr`` (tqdm, aedfw's messages, errors)
on the terminal; Python warnings raised in other packages (the converter's, say) and Python
log records up to WARNING (Ray's start-up notes, absl's) are dropped.
When the command fails the captured lines are shown after all, since they may explain why;
``--verbose`` leaves descriptor 2 and the warnings alone.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Modules that are not aedfw's own (its packages' warnings stay on the terminal).
_LIBRARY = r"(?!(aedfw|model_dev|quantize|firmware_gen|host_tools|benchmarks)(\.|$))"


class Captured:
    """What the libraries wrote to descriptor 2 while :func:`library_output` held it."""

    def __init__(self, file: io.BufferedRandom | None) -> None:
        self._file = file

    def text(self) -> str:
        """The captured output so far ("" when nothing was captured)."""
        if self._file is None:
            return ""
        self._file.flush()
        self._file.seek(0)
        return self._file.read().decode(errors="replace")


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # e.g. a test runner's capture buffer
        return False


@contextmanager
def library_output(verbose: bool) -> Iterator[Captured]:
    """Capture descriptor 2 (the libraries' logs) unless ``verbose``; see the module docstring.

    Yields a :class:`Captured`; the caller decides whether to show it (on failure).
    """
    if verbose:
        yield Captured(None)
        return
    sys.stderr.flush()
    log = tempfile.TemporaryFile()
    terminal = os.dup(2)
    os.dup2(log.fileno(), 2)
    python_stderr = sys.stderr
    if _stderr_is_fd2():  # Python's own writes keep going to the terminal
        sys.stderr = open(os.dup(terminal), "w", buffering=1, errors="backslashreplace")  # noqa: SIM115
    logging.disable(logging.WARNING)  # aedfw itself does not log: these are the libraries'
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=_LIBRARY)
            yield Captured(log)
    finally:
        logging.disable(logging.NOTSET)
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(terminal, 2)
        os.close(terminal)
        log.close()
