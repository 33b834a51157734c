"""Issue 12, rows 2-5 and 11: model metadata that does not fit its graph, or that would inject
code into the generated C, is refused up front (field and values named) and never leaves a
partial package; hostile labels are escaped and compile to the same bytes."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from aedfw.cli import main
from firmware_gen.build import build_firmware
from firmware_gen.package import firmware
from firmware_gen.render import c_string
from host_tools.qemu import run_selftest
from quantize.metadata import MetadataError, check_model, read_metadata, write_metadata

HOSTILE = (
    '*/ int injected(void) { return 1; } /* "\\ \n#error no ??/',
    "caf\u00e9 \x01 tab\there // */",
)


def _edited(tiny, tmp_path, **fields):
    """A copy of the tiny model with metadata fields replaced (model hash kept valid)."""
    meta = read_metadata(tiny.model)
    path = tmp_path / "edited.tflite"
    path.write_bytes(tiny.model.read_bytes())
    write_metadata(path, dataclasses.replace(meta, **fields))
    return path


def _refused(path, out, capsys, *needles):
    """``aedfw firmware`` exits 1 naming the file and ``needles``, leaving no package."""
    assert main(["firmware", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and all(n in err for n in needles), err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
    return err


def test_tiny_arena_is_refused_before_anything_is_written(tiny, tmp_path, capsys):
    """Row 2: arena_bytes 10 segfaulted the TFLM runtime (exit 139, 9 files left)."""
    path = _edited(tiny, tmp_path, arena_bytes=10)
    _refused(path, tmp_path / "fw", capsys, "arena_bytes 10")


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"labels": ("a", "b", "c"), "thresholds": (0.5,) * 3, "thresholds_q": (0,) * 3},
         "labels: 3 labels for 2 model outputs"),
        ({"window_frames": 15}, "window_frames 15"),
        ({"thresholds_q": (5, 5)}, "thresholds_q [5, 5] do not quantise"),
        ({"output_zero_point": 3}, "output_zero_point: metadata 3"),
    ],
)  # fmt: skip
def test_metadata_not_matching_the_graph_is_named(tiny, tmp_path, capsys, fields, needle):
    """Row 3: numpy broadcast errors / TFLite 'Dimension mismatch', half-written package."""
    _refused(_edited(tiny, tmp_path, **fields), tmp_path / "fw", capsys, needle)


def test_n_mels_not_matching_the_graph_is_named(tiny, tmp_path, capsys):
    meta = read_metadata(tiny.model)
    fe = dataclasses.replace(meta.frontend, n_mels=10)
    path = _edited(tiny, tmp_path, frontend=fe, frontend_hash=fe.hash)
    _refused(path, tmp_path / "fw", capsys, "frontend.n_mels 10")


def test_front_end_zero_point_must_be_the_model_inputs(tiny, tmp_path, capsys):
    """Row 4: a log_offset edit moved the front end's zero point; firmware built and validate
    passed. Both commands now refuse, naming both zero points."""
    meta = read_metadata(tiny.model)
    fe = dataclasses.replace(meta.frontend, log_offset=meta.frontend.log_offset - 8)
    assert fe.input_zero_point == meta.input_zero_point + 8
    path = _edited(tiny, tmp_path, frontend=fe, frontend_hash=fe.hash)
    both = f"{meta.input_zero_point} differ from the front end's"
    _refused(path, tmp_path / "fw", capsys, both, f"/{fe.input_zero_point}")
    args = ["validate", "--port", "loop://", "--model", str(path), "--data", str(tiny.data)]
    assert main([*args, "--out", str(tmp_path / "report")]) == 1
    assert both in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_unknown_aggregation_is_refused(tiny, tmp_path):
    """Row 11: aggregation 'mean' was accepted and ignored (the device takes the max)."""
    path = _edited(tiny, tmp_path, aggregation="mean")
    with pytest.raises(MetadataError, match="aggregation 'mean' is not supported"):
        read_metadata(path)


def test_a_failed_regeneration_leaves_the_previous_package(tiny, tmp_path):
    """An existing package is replaced only by a complete new one."""
    out = firmware(tiny.model, tmp_path / "fw")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(MetadataError):
        firmware(_edited(tiny, tmp_path, arena_bytes=10), out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_c_string_escapes_everything_that_could_leave_the_literal():
    assert c_string("engine") == '"engine"'
    assert c_string('*/"\\?\n') == '"\\052\\057\\042\\134\\077\\012"'
    assert c_string("\u00e9") == '"\\303\\251"'


def test_hostile_labels_compile_to_the_same_bytes(tiny, tmp_path):
    """Row 5: a label with */ and a newline was copied raw into a C comment: code injection."""
    path = _edited(tiny, tmp_path, labels=HOSTILE, score='x" ; int injected2; "')
    check_model(path)
    out = firmware(path, tmp_path / "fw")
    config = (out / "aed/include/aed_config.h").read_text()
    assert "*/ int" not in config and "\n#error" not in config
    readme = (out / "README.md").read_text().splitlines()  # classes: still one table row
    (row,) = [line for line in readme if line.startswith("| classes |")]
    assert row.endswith("#error no ??/, caf\u00e9 tab here // */ |"), row
    probe = out / "probe.c"
    probe.write_text(
        '#include <stdio.h>\n#include "aed_config.h"\n'
        "static const char *const labels[AED_N_CLASSES] = AED_LABELS;\n"
        'int main(void) { for (int i = 0; i < AED_N_CLASSES; ++i) printf("%s|", labels[i]);\n'
        '  printf("%s", AED_SCORE); return 0; }\n'
    )
    exe = tmp_path / "probe"
    cc = [
        "gcc",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-I",
        str(out / "aed/include"),
    ]
    subprocess.run([*cc, str(probe), "-o", str(exe)], check=True, capture_output=True)
    printed = subprocess.run([exe], check=True, capture_output=True).stdout
    assert printed == ("|".join(HOSTILE) + '|x" ; int injected2; "').encode()
    result = run_selftest(build_firmware(out, "host", selftest_only=True))
    assert result["status"] == "PASS", result
