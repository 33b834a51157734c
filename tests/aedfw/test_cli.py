"""The aedfw command line: help everywhere, clear errors, thin wrappers that work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aedfw.cli import build_parser, main
from aedfw.config import load_frontend_config
from model_dev.frontend import FrontendConfig

COMMANDS = [
    ["data", "synth"],
    ["features"],
    ["train", "teacher"],
    ["train", "student"],
    ["evaluate"],
    ["demo"],
]


def _aedfw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aedfw.cli", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("words", [[]] + COMMANDS + [["data"], ["train"]])
def test_help_on_every_command(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage: aedfw" in capsys.readouterr().out


def test_console_script_help():
    result = _aedfw("--help")
    assert result.returncode == 0 and "data" in result.stdout and "features" in result.stdout


def test_building_the_command_line_loads_no_deep_learning_library():
    """Every aedfw call builds the whole parser: torch or TensorFlow there costs seconds."""
    probe = "import sys; from aedfw.cli import build_parser; build_parser(); " + (
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_unknown_preset_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "synth", "--preset", "huge", "--out", str(tmp_path)]) == 1
    assert "huge" in capsys.readouterr().err


def test_synth_then_features(tmp_path, capsys):
    assert (
        main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "c"), "--jobs", "1"])
        == 0
    )
    assert (
        main(
            [
                "features",
                "--data",
                str(tmp_path / "c"),
                "--cache",
                str(tmp_path / "f"),
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    assert "120 clips" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "suffix", "needle"),
    [
        ('{"n_mels": 32}', ".json", None),
        ("n_mels: 32\nfmin_hz: 60\n", ".yaml", None),
        ("n_mels: [", ".yaml", "invalid"),
        ('{"nmels": 3}', ".json", "nmels"),
        ("- 1\n", ".yml", "mapping"),
    ],
)
def test_frontend_config_files(tmp_path, text, suffix, needle):
    path = tmp_path / f"fe{suffix}"
    path.write_text(text)
    if needle is None:
        assert load_frontend_config(path).n_mels == 32
    else:
        with pytest.raises(ValueError, match=needle) as err:
            load_frontend_config(path)
        assert str(path) in str(err.value)
    assert load_frontend_config(None) == FrontendConfig()


def test_every_command_module_registers_a_run_function():
    import importlib

    from aedfw.cli import COMMAND_MODULES

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"aedfw.commands.{name}")
        assert callable(module.register) and callable(module.run), name


def test_a_new_command_module_plugs_into_a_group():
    import argparse

    from aedfw.commands import Commands
    from aedfw.options import add_dataset_options, dataset_spec

    parser = argparse.ArgumentParser(prog="aedfw")
    commands = Commands(parser.add_subparsers(dest="command", required=True))
    commands.add("data synth", "first", lambda args: 0)
    p = commands.add("data extra", "second", lambda args: 7)
    add_dataset_options(p)
    args = parser.parse_args(["data", "extra", "--data", "d", "--skip-bad", "--jobs", "3"])
    assert args.run(args) == 7
    spec = dataset_spec(args)
    assert (spec.kind, str(spec.root), spec.skip_bad, spec.jobs) == ("auto", "d", True, 3)


def test_dataset_options_are_shared(tmp_path):
    for words in (["features"], ["train", "teacher"], ["evaluate", "ck.pt"], ["quantize", "c"]):
        args = build_parser().parse_args(
            [*words, "--data", "d", "--cache", "c", "--skip-bad", "--out", "o"][
                : None if words[0] in ("train", "quantize") else -2
            ]
        )
        assert (str(args.data), str(args.cache), args.skip_bad) == ("d", "c", True), words
