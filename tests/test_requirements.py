"""The install works from the public package index alone: every pin is a plain version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: ``name==version`` and nothing else: no ``file://`` or ``@ URL`` references, no paths, no
#: ``-e``/``--find-links``/``--index-url`` options pointing at one machine's folders.
PLAIN_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+")


def requirement_files() -> list[Path]:
    files = [ROOT / "constraints.txt", *ROOT.glob("requirements*.txt")]
    return [*files, *ROOT.glob("**/requirements*.txt")]


def pins() -> list[tuple[str, str]]:
    found = []
    for path in sorted(set(requirement_files())):
        if ".venv" in path.parts or not path.is_file():
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                found.append((f"{path.relative_to(ROOT)}:{number}", text))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found += [("pyproject.toml dependencies", d) for d in project["dependencies"]]
    for extra, deps in project.get("optional-dependencies", {}).items():
        found += [(f"pyproject.toml [{extra}]", d) for d in deps]
    return found


def test_pins_are_plain_versions_without_local_paths():
    entries = pins()
    assert any(where.startswith("constraints.txt") for where, _ in entries)
    bad = [(w, t) for w, t in entries if not PLAIN_PIN.fullmatch(t.replace(" ", ""))]
    assert not bad, f"not a plain 'name==version' pin (a local path or URL?): {bad}"


def test_setup_installs_from_the_package_index_only():
    for name in ("scripts/setup.sh", "Makefile"):
        text = (ROOT / name).read_text()
        for local in ("file:", "--find-links", "--index-url", "--extra-index-url", ".whl"):
            assert local not in text, f"{name} names {local!r}: installs must use the index"


@pytest.mark.parametrize(
    "text",
    [
        "torch @ file:///opt/wheels/torch-2.13.0-cp311-linux_x86_64.whl",
        "file:///opt/wheels/torch-2.13.0.whl",
        "./wheels/torch.whl",
        "--find-links /opt/wheels",
        "-e ../other",
        "torch>=2",
    ],
)
def test_the_check_catches_local_references(text):
    assert not PLAIN_PIN.fullmatch(text.replace(" ", ""))
