"""``aedfw emulate``: a software device for the serial protocol when no board is at hand.

* ``host``: the package's native build runs with its stdin/stdout on a pseudo-terminal master;
  the port is the slave's path (``/dev/pts/N``), which any pyserial client opens.
* ``cortex-m4``: the Cortex-M4 image boots in ``qemu-system-arm -M mps2-an386 -icount shift=0``.
  By default its link is Arm semihosting on QEMU's stdin/stdout, which sit on a pseudo-terminal
  like the native build's (QEMU's UART model takes one byte per emulator main-loop turn, ~7 kB/s;
  semihosting moves blocks: 3-s clips validate in well under a second each). With
  ``link="uart"`` the image's UART0 driver is used instead, on a loopback TCP server; the port is
  then ``socket://127.0.0.1:PORT``.

Either way the emulator waits for the app's self-test line and a HELLO answer before it hands
out the URL, and stops the device (its whole process group) on exit, so no process is left.

>>> with emulated_device("fw", "host") as url:
...     report = validate(url, "model.tflite", "data/manifest.csv")
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import tty
from collections.abc import Iterator
from pathlib import Path

from firmware_gen.build import LINKS, TARGETS, build_firmware
from host_tools.device import Device, Hello
from host_tools.qemu import parse_selftest, qemu_command

BOOT_TIMEOUT_S = 60.0  # self-test line (the Cortex-M4 self-test runs in emulated time)


class EmulatedDevice:
    """A running emulated device (use as a context manager, or call :meth:`start`/:meth:`stop`).

    Parameters
    ----------
    fw_dir : str or Path
        Firmware package written by ``aedfw firmware``; it is built for ``target`` (``make`` is
        incremental) unless ``exe`` is given.
    target : {"host", "cortex-m4"}
        Native process on a pty, or QEMU mps2-an386.
    exe : str or Path, optional
        A prebuilt ``aed_app`` / ``aed_app.elf`` (built with ``link``) to run instead.
    link : {"semihosting", "uart"}
        Cortex-M4 only: the image's serial link (see the module docstring).
    boot_timeout : float
        Seconds to wait for the self-test line.

    Attributes
    ----------
    url : str
        The pyserial URL of the device (after :meth:`start`).
    selftest : dict
        The app's self-test line, parsed (``host_tools.qemu.parse_selftest``); a FAIL does
        not stop the emulator: validation is what tells the host what differs.
    hello : Hello
        The device's HELLO.
    """

    def __init__(
        self,
        fw_dir: str | Path,
        target: str = "host",
        *,
        exe: str | Path | None = None,
        link: str = "semihosting",
        boot_timeout: float = BOOT_TIMEOUT_S,
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"emulate target {target!r}: expected one of {', '.join(TARGETS)}")
        if link not in LINKS:
            raise ValueError(f"emulate link {link!r}: expected one of {', '.join(LINKS)}")
        if target == "cortex-m4" and shutil.which("qemu-system-arm") is None:
            raise RuntimeError("emulating the Cortex-M4 needs qemu-system-arm (make setup)")
        self.fw_dir, self.target, self.boot_timeout = Path(fw_dir), target, boot_timeout
        self.link = link if target == "cortex-m4" else "uart"
        self.exe = Path(exe) if exe is not None else None
        self._cmd: list[str] = []
        self.url = ""
        self.selftest: dict = {}
        self.hello: Hello | None = None
        self._proc: subprocess.Popen | None = None
        self._master = self._slave = -1
        self._port = 0

    # -- lifecycle --
    def start(self) -> str:
        """Build if needed, boot, wait for the self-test line and HELLO; returns :attr:`url`."""
        if self.exe is None:
            self.exe = build_firmware(self.fw_dir, self.target, link=self.link)
        try:
            if self.target == "host":
                self._start_pty([str(self.exe)])
            elif self.link == "semihosting":
                self._start_pty(qemu_command(self.exe, link="semihosting"))
            else:
                self._start_qemu()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _start_pty(self, cmd: list[str]) -> None:
        """The device's stdin/stdout on a pty master; clients open the slave."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)  # no echo, no line discipline: a clean 8-bit link
        tty.setraw(self._slave)
        self.url = os.ttyname(self._slave)
        self._cmd = cmd
        self._spawn(cmd, stdin=self._master, stdout=self._master)
        self._boot_pty()

    def _boot_pty(self) -> None:
        # our slave fd stays open while the device runs: without it, the master would see a
        # hang-up whenever the last client closes the port, and the app would stop
        text = b""
        deadline = time.monotonic() + self.boot_timeout
        while not _has_selftest(text):
            self._check_alive(text)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.exe}: no self-test line within {self.boot_timeout:g} s")
            if select.select([self._slave], [], [], 0.05)[0]:
                text += os.read(self._slave, 4096)
        self.selftest = parse_selftest(text.decode(errors="replace"))
        with Device(self.url, timeout=2.0) as dev:
            self.hello = dev.info

    def _start_qemu(self) -> None:
        self._port = _free_port()
        self.url = f"socket://127.0.0.1:{self._port}"
        chardev = f"tcp:127.0.0.1:{self._port},server=on"
        self._spawn(qemu_command(self.exe, serial=chardev), stdin=subprocess.DEVNULL)
        # QEMU waits for the first connection before it starts the CPU: connect, read the
        # self-test line, disconnect; the server then accepts the next client (HELLO's). A raw
        # socket, not pyserial: pyserial's open() discards what has already arrived, and the
        # self-test line of a small model can arrive that early.
        deadline = time.monotonic() + self.boot_timeout
        while True:
            self._check_alive(b"")
            try:
                link = socket.create_connection(("127.0.0.1", self._port), timeout=0.05)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QEMU did not open {self.url}") from None
                time.sleep(0.05)
        with link:
            text = b""
            while not _has_selftest(text):
                self._check_alive(text)
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.exe}: no self-test line within {self.boot_timeout:g} s: {text!r}"
                    )
                with contextlib.suppress(TimeoutError):
                    text += link.recv(4096)
        self.selftest = parse_selftest(text.decode(errors="replace"))
        with Device(self.url, timeout=5.0) as dev:
            self.hello = dev.info

    def _spawn(self, cmd: list[str], **kw) -> None:
        # a session of its own: stop() signals the whole group, nothing outlives us
        self._proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, start_new_session=True, close_fds=True, **kw
        )

    def _check_alive(self, text: bytes) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            raise RuntimeError(
                f"the {self.target} device exited with status {self._proc.returncode}: "
                f"{(text.decode(errors='replace') + err)[-2000:]}"
            )

    @property
    def running(self) -> bool:
        """Whether the device process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def restart(self) -> None:
        """Power-cycle the device (on a pty: host, or cortex-m4 over semihosting): kill it and
        boot it again on the same pty, so clients keep their port and see the reset
        (FLAG_RESET) on their next request."""
        if self._master < 0:
            raise ValueError("restart is implemented for devices on a pty (not link='uart')")
        self._kill()
        self._spawn(self._cmd, stdin=self._master, stdout=self._master)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def stop(self) -> None:
        """Close the pty, stop the device process group; safe to call twice."""
        # the slave first: with no client left the device reads end of input and stops serving
        # (QEMU blocked in a semihosting read would not see SIGTERM before that)
        for fd in (self._slave, self._master):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        self._kill()

    def wait(self) -> int:
        """Block until the device exits (or a signal arrives); returns its exit status."""
        if self._proc is None:
            return 0
        return self._proc.wait()

    def __enter__(self) -> EmulatedDevice:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _has_selftest(text: bytes) -> bool:
    return b"\n" in text.partition(b"aedfw selftest")[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def emulated_device(fw_dir: str | Path, target: str = "host", **kwargs) -> Iterator[str]:
    """Run an emulated device for the duration of a ``with`` block; yields its pyserial URL.

    Parameters
    ----------
    fw_dir : str or Path
        Firmware package folder.
    target : {"host", "cortex-m4"}
        See :class:`EmulatedDevice` (``kwargs`` go there too).
    """
    with EmulatedDevice(fw_dir, target, **kwargs) as device:
        yield device.url


def emulate(fw_dir: str | Path, target: str = "host") -> int:
    """``aedfw emulate``: start the device, print its URL, serve until Ctrl-C or SIGTERM.

    Returns
    -------
    int
        0 after a clean stop; 1 if the device process died on its own.
    """

    def stop(signum, frame):  # SIGTERM -> the same clean path as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with EmulatedDevice(fw_dir, target) as device:
            h = device.hello
            print(
                f"self-test {device.selftest['status']} {device.selftest['passed']}/"
                f"{device.selftest['clips']}; firmware {h.firmware_version}, model "
                f"{h.model_hash[:12]}, front end {h.frontend_hash[:12]}, "
                f"labels {','.join(h.labels)}"
            )
            print(f"device ready ({target}): {device.url}", flush=True)
            print("Ctrl-C to stop", flush=True)
            try:
                status = device.wait()
            except KeyboardInterrupt:
                print("stopping")
                return 0
            print(f"the device exited with status {status}")
            return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
