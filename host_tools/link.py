"""A fault-injecting wrapper around a serial port, for testing the protocol's recovery.

>>> link = FaultyLink(serial.serial_for_url(url), corrupt=0.01, seed=1)
>>> dev = Device(link)

Each byte that passes (written to or read from the inner port) is independently dropped,
corrupted (XOR with a random non-zero value), duplicated or delayed with the given
probabilities, from a seeded generator, so a failing run can be replayed exactly.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np


class FaultyLink:
    """Wrap ``port`` (anything with ``read``/``write``/``in_waiting``/``timeout``/``close``).

    Parameters
    ----------
    port : serial.SerialBase or similar
        The real link.
    drop, corrupt, duplicate, delay : float
        Per-byte probabilities of each fault (0..1; drop + corrupt + duplicate <= 1).
    delay_s : float
        Pause before a delayed byte is passed on.
    seed : int
        Seed of the fault generator.
    directions : tuple of str
        Where to inject: ``"write"`` (host to device), ``"read"`` (device to host), or both.
    """

    def __init__(
        self,
        port,
        *,
        drop: float = 0.0,
        corrupt: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        delay_s: float = 0.002,
        seed: int = 0,
        directions: tuple[str, ...] = ("write", "read"),
    ) -> None:
        rates = {"drop": drop, "corrupt": corrupt, "duplicate": duplicate, "delay": delay}
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"FaultyLink: {name} rate must be in [0, 1], got {rate}")
        if drop + corrupt + duplicate > 1.0:
            raise ValueError("FaultyLink: drop + corrupt + duplicate must be <= 1")
        unknown = set(directions) - {"write", "read"}
        if unknown:
            raise ValueError(f"FaultyLink: unknown directions {sorted(unknown)}")
        self.port = port
        self.rates = rates
        self.delay_s = delay_s
        self.directions = frozenset(directions)
        self.injected: Counter = Counter()  # faults injected, by kind
        self._rng = np.random.default_rng(seed)
        self._pending = b""

    def _mangle(self, data: bytes) -> bytes:
        if not data:
            return data
        arr = np.frombuffer(data, np.uint8)
        u = self._rng.random(len(arr))
        r = self.rates
        drop = u < r["drop"]
        corrupt = (u >= r["drop"]) & (u < r["drop"] + r["corrupt"])
        dup = (u >= r["drop"] + r["corrupt"]) & (u < r["drop"] + r["corrupt"] + r["duplicate"])
        delays = int((self._rng.random(len(arr)) < r["delay"]).sum())
        out = arr.copy()
        out[corrupt] ^= self._rng.integers(1, 256, int(corrupt.sum()), dtype=np.uint8)
        counts = np.ones(len(arr), np.int64) - drop + dup
        self.injected.update(
            drop=int(drop.sum()), corrupt=int(corrupt.sum()), duplicate=int(dup.sum()),
            delay=delays,
        )  # fmt: skip
        if delays:
            time.sleep(delays * self.delay_s)
        return np.repeat(out, counts).tobytes()

    # -- the serial interface the protocol client uses --
    @property
    def timeout(self) -> float | None:
        """The inner port's read timeout."""
        return self.port.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.port.timeout = value

    @property
    def in_waiting(self) -> int:
        """Bytes readable without blocking (before faults are applied)."""
        return len(self._pending) + self.port.in_waiting

    def read(self, size: int = 1) -> bytes:
        """Read up to ``size`` bytes through the faults (may return fewer, even none)."""
        if not self._pending:
            data = self.port.read(size)
            self._pending = self._mangle(data) if "read" in self.directions else data
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def write(self, data: bytes) -> int:
        """Write ``data`` through the faults; returns ``len(data)`` as pyserial does."""
        self.port.write(self._mangle(bytes(data)) if "write" in self.directions else data)
        return len(data)

    def reset_input_buffer(self) -> None:
        """Drop buffered input."""
        self._pending = b""
        self.port.reset_input_buffer()

    def close(self) -> None:
        """Close the inner port."""
        self.port.close()
