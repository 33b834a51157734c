"""Emulated devices: the native build on a pty and the Cortex-M4 image under QEMU (semihosting on a
pty, or its UART on a TCP port) answer HELLO, block while idle, and stop without leaving
processes behind."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
import serial

from host_tools.device import Device
from host_tools.emulate import EmulatedDevice, emulated_device

from .conftest import HAS_M4, TINY_LABELS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_cpu_fraction(pid: int, seconds: float = 2.0) -> float:
    """Share of one core the process uses while nobody talks to it."""
    c0, t0 = _cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu_s(pid) - c0) / (time.monotonic() - t0)


# goal: <= 1% of a core while idle; the bound leaves room for a loaded CI machine
IDLE_CPU_BOUND = 0.05


def test_host_device_on_a_pty(tiny):
    with EmulatedDevice(tiny.fw, "host") as emu:
        assert emu.url.startswith("/dev/pts/") and emu.selftest["status"] == "PASS"
        pid = emu._proc.pid
        with Device(emu.url) as dev:  # a second client after the emulator's own HELLO
            assert dev.info.labels == TINY_LABELS
        with Device(emu.url) as dev:  # and a third: closing a client does not stop the device
            assert dev.info == dataclasses.replace(emu.hello, was_reset=False)
            assert _idle_cpu_fraction(pid) <= IDLE_CPU_BOUND  # blocks in read while idle
        assert _idle_cpu_fraction(pid) <= IDLE_CPU_BOUND
    assert not _alive(pid)
    with pytest.raises(ValueError, match="emulate target 'esp32'"):
        EmulatedDevice(tiny.fw, "esp32")
    with pytest.raises(ValueError, match="emulate link 'spi'"):
        EmulatedDevice(tiny.fw, "cortex-m4", link="spi")


@pytest.mark.skipif(not HAS_M4, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_qemu_device_over_semihosting_on_a_pty(tiny):
    with EmulatedDevice(tiny.fw, "cortex-m4") as emu:
        assert emu.url.startswith("/dev/pts/") and emu.selftest["status"] == "PASS"
        assert emu.exe.parent.name == "cortex-m4-semihosting"
        pid = emu._proc.pid
        with Device(emu.url, timeout=5.0) as dev:
            assert dev.info.labels == TINY_LABELS and "classify" in dev.info.capabilities
        assert _idle_cpu_fraction(pid) <= IDLE_CPU_BOUND  # QEMU blocks in the guest's read
        emu.restart()
        with Device(emu.url, timeout=5.0) as dev:
            assert dev.info.was_reset
        pid = emu._proc.pid
    assert not _alive(pid)


@pytest.mark.skipif(not HAS_M4, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_qemu_device_uart_on_a_tcp_port(tiny):
    with emulated_device(tiny.fw, "cortex-m4", link="uart") as url:
        assert url.startswith("socket://127.0.0.1:")
        with Device(url, timeout=5.0) as dev:
            assert dev.info.labels == TINY_LABELS and "classify" in dev.info.capabilities
    with pytest.raises(serial.SerialException):  # the server is gone with QEMU
        Device(url, timeout=0.2, retries=0)


def test_cli_emulate_prints_url_and_stops_on_sigterm(tiny):
    proc = subprocess.Popen(
        [sys.executable, "-m", "aedfw.cli", "emulate", "--target", "host", str(tiny.fw)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any("device ready" in x for x in lines) and time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
        url = lines[-1].rsplit(" ", 1)[-1].strip()
        assert url.startswith("/dev/pts/"), lines
        with Device(url) as dev:
            assert dev.info.labels == TINY_LABELS
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not any(_alive(int(c)) for c in children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
