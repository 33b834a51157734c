"""Compile a generated package and report its memory: ``make`` for ``host`` and ``cortex-m4``,
flash and RAM per part from the GNU ld map file (``memory.json`` and ``memory.md``)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from firmware_gen.render import write_if_changed

TARGETS = ("host", "cortex-m4")
#: Serial links of the Cortex-M4 image: UART0 (a board) or Arm semihosting (QEMU, fast).
LINKS = ("uart", "semihosting")
#: What memory.json's ``sources_sha256`` covers: the package's C, headers and build files.
_SOURCE_SUFFIXES = (".c", ".cc", ".h", ".ld", ".mk", ".txt")


def sources_hash(out_dir: str | Path) -> str:
    """sha256 over the package's sources (what a memory report was measured from)."""
    out = Path(out_dir)
    digest = hashlib.sha256()
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if rel.parts[0] == "build" or not path.is_file():
            continue
        if path.suffix in _SOURCE_SUFFIXES or path.name == "Makefile":
            digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build_firmware(
    out_dir: str | Path,
    target: str,
    *,
    selftest_only: bool = False,
    sanitize: bool = False,
    link: str = "uart",
) -> Path:
    """Compile a generated package with ``make`` and return the executable.

    Parameters
    ----------
    out_dir : str or Path
        Package folder written by :func:`firmware_gen.package.firmware`.
    target : {"host", "cortex-m4"}
        ``cortex-m4`` also writes ``memory.json`` and ``memory.md`` from the map file.
    selftest_only : bool
        Build without the serial protocol (``-DAED_NO_PROTO``): the app prints the self-test
        line and stops.
    sanitize : bool
        Host only: build with ASan and UBSan.
    link : {"uart", "semihosting"}
        Cortex-M4 only: the serial link (``port/mps2_an386``). ``semihosting`` is QEMU's fast
        path; its build writes no memory report (the UART build is the one a board runs).

    Returns
    -------
    Path
        ``build/<target>[-selftest][-sanitize|-semihosting]/aed_app`` (``aed_app.elf`` for
        Cortex-M4).

    Raises
    ------
    RuntimeError
        A tool is missing or the build failed; the message carries make's output.
    """
    out = Path(out_dir)
    if target not in TARGETS:
        raise ValueError(f"build target {target!r}: expected one of {', '.join(TARGETS)}")
    tools = ["make", "gcc"] if target == "host" else ["make", "arm-none-eabi-gcc"]
    for tool in tools:
        if shutil.which(tool) is None:
            raise RuntimeError(f"building {target} needs {tool}; install it (make setup does)")
    if link not in LINKS:
        raise ValueError(f"link {link!r}: expected one of {', '.join(LINKS)}")
    sanitize = sanitize and target == "host"
    link = link if target == "cortex-m4" else "uart"
    args = ["make", "-C", str(out), target, f"SELFTEST_ONLY={int(selftest_only)}"]
    args += [f"SANITIZE={int(sanitize)}", f"LINK={link}"]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"make {target} failed in {out}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    suffix = (
        "-selftest" * selftest_only + "-sanitize" * sanitize + "-semihosting" * (link != "uart")
    )
    exe = out / "build" / f"{target}{suffix}" / ("aed_app" if target == "host" else "aed_app.elf")
    if target == "cortex-m4" and link == "uart":
        report = memory_report(exe.with_suffix(".map"))
        report["elf"] = exe.relative_to(out).as_posix()
        report["sources_sha256"] = sources_hash(out)
        write_if_changed(out / "memory.json", json.dumps(report, indent=2) + "\n")
        write_if_changed(out / "memory.md", memory_markdown(report))
    return exe


#: Map-file parts: object file stem -> (part of its code and read-only data, part of its RAM).
_PARTS = {
    "aed_model": ("model", "activations"),
    "aed_frontend": ("frontend", "frontend"),
    "aed_frontend_tables": ("tables", "frontend"),
    "aed_post": ("post", "post"),
    "aed_anomaly": ("post", "post"),
    "aed_anomaly_methods": ("post", "post"),  # the other methods' scores and their tables
    "aed_golden": ("selftest", "selftest"),
    "aed_selftest": ("selftest", "selftest"),
    "aed_proto": ("protocol", "protocol"),
    "aed_proto_frame": ("protocol", "protocol"),
}
_RAM_BASE = 0x20000000
_INPUT_RE = re.compile(r"^ (\S+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)(?:\s+(\S.*?))?\s*$")
_CONT_RE = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")
_OUTPUT_RE = re.compile(r"^(\.\S+)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+))?")


def _map_sections(map_text: str) -> list[tuple[str, str, int, int, str]]:
    """Input sections of a GNU ld map: (output section, input section, address, size, file)."""
    body = map_text.split("Linker script and memory map", 1)[-1]
    rows, output, pending = [], "", None
    for line in body.splitlines():
        if line.startswith("OUTPUT("):
            break
        m = _OUTPUT_RE.match(line)
        if m:
            output, pending = m.group(1), None
            continue
        if pending is not None:
            m = _CONT_RE.match(line)
            if m:
                rows.append((output, pending, int(m.group(1), 16), int(m.group(2), 16), m[3]))
            pending = None
            continue
        m = _INPUT_RE.match(line)
        if m:
            rows.append((output, m[1], int(m[2], 16), int(m[3], 16), (m[4] or "").strip()))
        elif re.match(r"^ \.\S+$", line):
            pending = line.strip()  # long name: address, size and file on the next line
    return rows


def _part(section: str, file: str) -> tuple[str, str]:
    """(flash part, RAM part) of one input section."""
    if section == "*fill*":
        return "padding", "padding"
    if ".a(" in file:
        return "libc", "libc"
    stem = Path(file).stem
    code, ram = _PARTS.get(stem, ("app", "app"))
    if stem == "aed_model" and section.startswith(".rodata"):
        code = "weights"
    elif section.startswith(".text") and code in ("model", "frontend", "post"):
        code = f"code_{code}"
    elif code == "frontend":
        code = "tables"
    elif code == "post":
        code = "tables"  # labels and thresholds
    return code, ram


def memory_report(map_path: str | Path) -> dict:
    """Flash and RAM per part of a Cortex-M4 build, from its GNU ld map file.

    Parameters
    ----------
    map_path : str or Path
        ``aed_app.map`` written by ``make cortex-m4``.

    Returns
    -------
    dict
        ``flash`` (``weights``, ``tables``, ``code_frontend``, ``code_model``, ``code_post``,
        ``selftest`` (golden vectors and self-test code), ``app``, ``protocol``, ``libc``,
        ``padding``, ``total``), ``ram`` (``activations``, ``frontend``, ``selftest``, ``app``,
        ``protocol``, ``stack``, ..., ``total``) and ``library`` (the front end, engine and
        post-processing alone: ``weights_tables_code`` flash bytes and ``activations``), in
        bytes. ``.data`` counts in both (initial values in flash, variables in RAM).
    """
    map_path = Path(map_path)
    flash: dict[str, int] = defaultdict(int)
    ram: dict[str, int] = defaultdict(int)
    for output, section, address, size, file in _map_sections(map_path.read_text()):
        if size == 0:
            continue
        code_part, ram_part = _part(section, file)
        if output == ".stack":
            ram["stack"] += size
        elif output == ".data":
            flash[code_part] += size
            ram[ram_part] += size
        elif address >= _RAM_BASE:
            ram[ram_part] += size
        else:
            flash[code_part] += size
    flash = dict(sorted(flash.items())) | {"total": sum(flash.values())}
    ram = dict(sorted(ram.items())) | {"total": sum(ram.values())}
    lib = sum(flash.get(k, 0) for k in ("weights", "tables", "code_frontend", "code_model"))
    lib += flash.get("code_post", 0)
    return {
        "target": "cortex-m4",
        "map": map_path.name,
        "flash": flash,
        "ram": ram,
        "library": {"weights_tables_code": lib, "activations": ram.get("activations", 0)},
    }


def deployable_bytes(out_dir: str | Path) -> int:
    """Weights + tables + code bytes (front end, engine, post-processing) of the Cortex-M4 build,
    from ``memory.json`` (for benchmarks; build with ``--build cortex-m4`` first)."""
    path = Path(out_dir) / "memory.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no memory report; build with --build cortex-m4 first")
    return int(json.loads(path.read_text())["library"]["weights_tables_code"])


def memory_markdown(report: dict) -> str:
    """The memory report as a Markdown table (``memory.md`` of a package)."""
    flash, ram = list(report["flash"].items()), list(report["ram"].items())
    rows = []
    for i in range(max(len(flash), len(ram))):
        f = flash[i] if i < len(flash) else ("", "")
        r = ram[i] if i < len(ram) else ("", "")
        rows.append(f"| {f[0]} | {f[1]} | | {r[0]} | {r[1]} |")
    lib = report["library"]
    return "\n".join(
        [
            "# Memory (Cortex-M4)",
            "",
            f"From `{report['elf']}` and its map file (`memory.json`), bytes:",
            "",
            "| flash | bytes | | RAM | bytes |",
            "|---|---:|---|---|---:|",
            *rows,
            "",
            f"The library alone (front end, engine, post-processing): "
            f"{lib['weights_tables_code']} bytes of flash (weights, tables, code) and "
            f"{lib['activations']} bytes of activations, plus `sizeof(aed_frontend_t)` and "
            "`sizeof(aed_post_t)` per stream and your stack. `selftest` is the golden vectors and "
            "the self-test (leave `golden/` and `app/aed_selftest.c` out in production); `app` "
            "and `protocol` are the reference firmware.",
            "",
        ]
    )
