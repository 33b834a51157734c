"""Quiet tools: library log lines stay off the terminal unless --verbose or the command fails."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

#: Lines only the libraries write: absl/glog prefixes, TensorFlow's notes, CUDA probes, warnings.
LIBRARY_LINE = re.compile(
    r"^[IWEF]\d{4} |absl|InitializeLog|oneDNN|tensorflow|cuda|cuInit|Warning", re.I | re.M
)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )


@pytest.mark.parametrize("verbose", [False, True])
def test_descriptor_2_is_captured_and_python_stderr_is_not(verbose):
    r = _python(f"""
        import logging, os, sys, warnings
        from aedfw.quiet import library_output
        logging.basicConfig()
        with library_output({verbose}) as captured:
            os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit\\n")
            print("aedfw progress", file=sys.stderr)
            warnings.warn_explicit("converter warning", UserWarning, "lib.py", 1, "somelib")
            logging.getLogger("somelib").warning("start-up note")
            print("captured:", repr(captured.text()))
    """)
    assert r.returncode == 0, r.stderr
    assert "aedfw progress" in r.stderr
    for library_line in ("cuInit", "converter warning", "start-up note"):
        assert (library_line in r.stderr) is verbose, library_line
    assert ("cuInit" in r.stdout) is not verbose  # kept, to show if the command fails


def test_a_failing_command_shows_the_captured_lines(tmp_path):
    r = _python(f"""
        import os, sys
        import aedfw.commands.data_synth as command
        from aedfw import cli
        def boom(args):
            os.write(2, b"E0000 library.cc:1] the reason\\n")
            raise ValueError("it failed")
        command.run = boom  # registered by build_parser below
        sys.exit(cli.main(["data", "synth", "--out", {str(tmp_path)!r}]))
    """)
    assert r.returncode == 1
    assert r.stderr.index("the reason") < r.stderr.index("aedfw: error: it failed")


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_and_litert_start_up_lines_are_captured(verbose):
    r = _python(f"""
        from aedfw.quiet import library_output
        with library_output({verbose}):
            import tensorflow, ai_edge_litert.interpreter, tflite_micro
            tensorflow.constant(1)
    """)
    assert r.returncode == 0
    assert bool(LIBRARY_LINE.search(r.stderr)) is verbose, r.stderr  # they exist: verbose shows


@pytest.mark.slow
def test_quantize_prints_no_library_log_lines(tmp_path):
    from aedfw.cli import main
    from model_dev.synth import synth

    data, cache, run = tmp_path / "c", tmp_path / "f", tmp_path / "run"
    synth(data, preset="tiny", jobs=1, progress=False)
    common = ["--data", str(data), "--cache", str(cache), "--jobs", "1"]
    args = ["train", "student", *common, "--out", str(run), "--epochs", "1", "--device", "cpu"]
    assert main(args) == 0
    quantize = [sys.executable, "-m", "aedfw.cli", "quantize", str(run / "best.pt"), *common]
    quantize += ["--out", str(tmp_path / "m.tflite"), "--limit", "2"]
    quiet = subprocess.run(quantize, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    assert "TFLM vs LiteRT" in quiet.stdout
    assert not LIBRARY_LINE.search(quiet.stderr), quiet.stderr
    verbose = subprocess.run([*quantize, "--verbose"], capture_output=True, text=True)
    assert verbose.returncode == 0 and LIBRARY_LINE.search(verbose.stderr)  # they exist
