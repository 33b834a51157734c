"""One command line: the same dataset options wherever a dataset is read, the same names for the
same things, and --help examples that really parse."""

from __future__ import annotations

import argparse
import shlex

import pytest

from aedfw.cli import build_parser

#: Names that would be second spellings of an existing option (the first spelling is the value).
SYNONYMS = {
    "--layout": "--dataset",
    "--data-dir": "--data",
    "--dataset-dir": "--data",
    "--cache-dir": "--cache",
    "--output": "--out",
    "--output-dir": "--out",
    "--workers": "--jobs",
    "--num-workers": "--jobs",
    "--n-jobs": "--jobs",
    "--processes": "--jobs",
    "--epoch": "--epochs",
    "--random-seed": "--seed",
    "--torch-threads": "--threads",
}
#: What every command that reads a tagging dataset takes (aedfw.options.add_dataset_options).
DATASET_OPTIONS = {"--dataset", "--data", "--cache", "--skip-bad", "--jobs", "--val-fraction"}


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every leaf command's parser, by its words (``"data synth"``)."""
    found = {}

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[" ".join(words)] = parser
        for sub in subs:
            for name, child in sub.choices.items():
                walk(child, [*words, name])

    walk(build_parser(), [])
    return found


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


COMMANDS = commands()


def test_every_command_reading_a_dataset_has_the_dataset_options():
    readers = {n: p for n, p in COMMANDS.items() if "--data" in options(p)}
    assert {"features", "train teacher", "train student", "evaluate", "sweep", "quantize"} <= set(
        readers
    )
    assert {"validate", "train anomaly"} <= set(readers)
    for name, parser in readers.items():
        opts = options(parser)
        if "train anomaly" == name:  # machine corpora: layout, root and cache only
            assert {"--dataset", "--data", "--cache"} <= set(opts), name
            continue
        assert DATASET_OPTIONS <= set(opts), f"{name} lacks {DATASET_OPTIONS - set(opts)}"
        reference = options(COMMANDS["features"])
        for flag in ("--dataset", "--skip-bad", "--val-fraction"):
            assert opts[flag].help == reference[flag].help, (name, flag)
            assert opts[flag].choices == reference[flag].choices, (name, flag)


def test_the_same_name_means_the_same_thing():
    seen: dict[str, tuple] = {}
    for name, parser in COMMANDS.items():
        opts = options(parser)
        assert "--verbose" in opts, name
        for flag, action in opts.items():
            primary = action.option_strings[-1] if flag in SYNONYMS else flag
            assert flag not in SYNONYMS or SYNONYMS[flag] in action.option_strings, (
                f"{name}: {flag} is spelled {SYNONYMS[flag]} elsewhere"
            )
            kind = (action.dest, action.type, type(action).__name__)
            first = seen.setdefault(primary, (name, kind))
            assert first[1] == kind, f"{flag}: {first[0]} has {first[1]}, {name} has {kind}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_examples_that_parse(name, capsys):
    parser = COMMANDS[name]
    assert parser.epilog and parser.epilog.startswith("examples:"), name
    examples = [line.strip() for line in parser.epilog.splitlines()[1:]]
    assert examples
    for example in examples:
        words = shlex.split(example)
        assert words[0] == "aedfw" and " ".join(words[1:]).startswith(name), example
        args = build_parser().parse_args(words[1:])  # exits (fails the test) on a bad example
        assert callable(args.run)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*name.split(), "--help"])
    assert examples[0] in capsys.readouterr().out
