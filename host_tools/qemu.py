"""QEMU mps2-an386 and the app's self-test: the command line that boots a Cortex-M4 image,
running a built app until its self-test line, and instruction counts under ``-icount``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from firmware_gen.build import build_firmware

SELFTEST_RE = re.compile(r"aedfw selftest (PASS|FAIL) (\d+)/(\d+)(.*)")


def parse_selftest(text: str) -> dict:
    """The fields of the app's ``aedfw selftest ...`` line (``status``, ``passed``, ``clips``,
    ``model``, ``fe``, ``frames``, ``fe_cycles``, ``windows``, ``model_cycles``, ``stack``,
    ``bad``); raises RuntimeError when ``text`` holds no such line."""
    m = SELFTEST_RE.search(text)
    if m is None:
        raise RuntimeError(f"no self-test line in the output: {text[-500:]!r}")
    result: dict = {"status": m[1], "passed": int(m[2]), "clips": int(m[3]), "bad": []}
    for key, value in re.findall(r"(\w+)=(\S+)", m[4]):
        if key == "bad":
            result["bad"].append(value)
        else:
            result[key] = int(value) if value.isdigit() else value
    return result


def qemu_command(
    elf: str | Path, serial: str = "stdio", icount: int | None = 0, link: str = "uart"
) -> list[str]:
    """``qemu-system-arm`` arguments booting ``elf`` on mps2-an386.

    ``link="uart"``: UART0 on the chardev ``serial``. ``link="semihosting"`` (an image built
    with that link): the link is QEMU's own stdin/stdout through Arm semihosting, UART0 unused.
    ``icount=0`` makes one instruction one virtual nanosecond, so a SysTick tick (25 MHz) is 40
    instructions; ``None`` runs in real time.
    """
    cmd = ["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none"]
    if link == "semihosting":
        cmd += ["-serial", "null", "-semihosting-config", "enable=on,target=native"]
    else:
        cmd += ["-serial", serial]
    cmd += ["-kernel", str(elf)]
    return cmd + (["-icount", f"shift={icount}"] if icount is not None else [])


def run_selftest(exe: str | Path, timeout: float = 60.0) -> dict:
    """Run a built app until it prints its self-test line and return :func:`parse_selftest`.

    A host executable runs with stdin closed (the protocol loop then ends); a Cortex-M4 ELF boots
    in QEMU (``-icount shift=0``), which is stopped once the line is out.

    Parameters
    ----------
    exe : str or Path
        ``build/host*/aed_app`` or ``build/cortex-m4*/aed_app.elf``.
    timeout : float
        Seconds to wait for the line.
    """
    exe = Path(exe)
    if exe.suffix == ".elf":
        if shutil.which("qemu-system-arm") is None:
            raise RuntimeError("running the Cortex-M4 image needs qemu-system-arm")
        cmd = qemu_command(exe)
    else:
        cmd = [str(exe)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    text, deadline = b"", time.monotonic() + timeout
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        while b"\n" not in text.partition(b"aedfw selftest")[2]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{exe}: no self-test line within {timeout:.0f} s: {text!r}")
            chunk = proc.stdout.read()
            if chunk:
                text += chunk
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return parse_selftest(text.decode(errors="replace"))


#: Instructions per SysTick tick under ``qemu -icount shift=0`` (1 GHz virtual vs 25 MHz).
QEMU_INSTRUCTIONS_PER_TICK = 40


def cortex_m4_instructions(out_dir: str | Path, timeout: float = 120.0) -> dict:
    """Front-end and model instructions on the Cortex-M4 under QEMU ``-icount shift=0``.

    Builds the self-test-only image, boots it and converts the SysTick counts of its self-test
    (all golden clips) into instructions (:data:`QEMU_INSTRUCTIONS_PER_TICK` per tick; the tick
    resolution is that many instructions).

    Returns
    -------
    dict
        ``frontend_per_frame``, ``model_per_inference``, and ``per_second_one_window`` (front end
        for one second of audio plus one inference) and ``per_second_at_hop`` (plus one
        inference per window hop), in instructions.
    """
    out = Path(out_dir)
    result = run_selftest(build_firmware(out, "cortex-m4", selftest_only=True), timeout)
    fe = result["fe_cycles"] * QEMU_INSTRUCTIONS_PER_TICK / result["frames"]
    model = result["model_cycles"] * QEMU_INSTRUCTIONS_PER_TICK / result["windows"]
    frames_per_second, hop = package_rates(out)
    return {
        "frontend_per_frame": round(fe),
        "model_per_inference": round(model),
        "per_second_one_window": round(fe * frames_per_second + model),
        "per_second_at_hop": round(fe * frames_per_second + model * frames_per_second / hop),
    }


def package_rates(fw_dir: Path) -> tuple[float, int]:
    """Front-end frames per second of audio and the window hop in frames, from the headers of
    the package in ``fw_dir``."""
    include = Path(fw_dir) / "aed" / "include"
    sr = _define(include / "aed_frontend_config.h", "AED_FE_SAMPLE_RATE")
    hop_length = _define(include / "aed_frontend_config.h", "AED_FE_HOP_LENGTH")
    return sr / hop_length, _define(include / "aed_config.h", "AED_POST_HOP_FRAMES")


def _define(header: Path, name: str) -> int:
    m = re.search(rf"^#define {name} (\d+)", header.read_text(), re.M)
    if m is None:
        raise RuntimeError(f"{header}: no #define {name}")
    return int(m[1])
