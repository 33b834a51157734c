"""Client for an aedfw device over any pyserial URL (docs/protocol.md).

>>> with Device("socket://127.0.0.1:5555") as dev:   # or /dev/ttyACM0, rfc2217://, loop://
...     print(dev.info.labels)
...     result = dev.classify(audio_int16)

One request at a time: the client sends a request, waits for the response with the same
sequence number and retransmits the same bytes after a timeout, a NAK or a corrupted frame, up
to ``retries`` times; the device answers a retransmitted request by resending its last answer, so
streaming state never advances twice.
"""

from __future__ import annotations

import math
import secrets
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import serial

from host_tools.protocol import (
    FLAG_RESET,
    HEADER_BYTES,
    NAK_CODE,
    OVERHEAD,
    PROTOCOL_VERSION,
    RESPONSE_BIT,
    Command,
    DecodeError,
    Frame,
    FrameDecoder,
    Status,
    encode_frame,
)

HELLO_FIXED = struct.Struct("<4BHHI7H32s32s")
CAPABILITIES = {0x01: "features", 0x02: "infer", 0x04: "classify", 0x08: "bench", 0x10: "anomaly"}
STATS = struct.Struct("<5IQ2IQ4I")
STATS_FIELDS = (
    "rx_frames rx_errors duplicates naks fe_frames fe_cycles fe_cycles_max model_runs "
    "model_cycles model_cycles_max stack_used activation_bytes state_bytes"
).split()
BENCH = struct.Struct("<B3xIIIIQ")
SUMMARY = struct.Struct("<5I")
ANOMALY_SUMMARY = struct.Struct("<QIB")  # score sum, score windows, decision
CLASSIFY_BEGIN, CLASSIFY_END = 0x01, 0x02
OPT_FEATURES, OPT_WINDOWS = 0x01, 0x02
POLL_S = 0.02  # port read timeout while waiting for a response


class SerialLike(Protocol):
    """What the client needs from a port: pyserial objects and ``host_tools.link.FaultyLink``."""

    timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


class ProtocolError(Exception):
    """A request failed; ``command`` and ``seq`` name it."""

    def __init__(self, command: Command | int, seq: int, message: str) -> None:
        name = command.name if isinstance(command, Command) else f"command 0x{command:02X}"
        super().__init__(f"{name} (seq {seq}): {message}")
        self.command, self.seq = command, seq


class DeviceTimeout(ProtocolError):
    """No valid response after all retries."""


class DeviceError(ProtocolError):
    """The device answered with an error status."""

    def __init__(self, command: Command | int, seq: int, status: int, detail: str) -> None:
        name = Status(status).name if status in Status._value2member_map_ else f"status {status}"
        super().__init__(command, seq, f"device answered {name}: {detail or '(no detail)'}")
        self.status = status


class VersionMismatch(ProtocolError):
    """The device speaks another protocol version."""


class DeviceReset(ProtocolError):
    """The device was reset since the last HELLO: its stream state (and any clip) is lost."""


@dataclass(frozen=True)
class Hello:
    """What the device says about itself."""

    protocol_version: int
    firmware_version: str
    max_payload: int
    capabilities: frozenset[str]
    sample_rate: int
    fe_window_length: int
    fe_hop_length: int
    n_mels: int
    in_frames: int
    in_mels: int
    n_classes: int
    window_hop_frames: int
    model_hash: str  # 64 hex digits, zeros when the build has no model
    frontend_hash: str  # 64 hex digits, model_dev FrontendConfig.hash
    thresholds_q: tuple[int, ...]  # a class fires when its int8 clip score >= this (128: never)
    labels: tuple[str, ...]
    was_reset: bool  # the device had been (re)started since the previous HELLO
    # "anomaly" (capability bit 4): one u32 score per window, thresholds_q in score units (the
    # clip mean is anomalous when >= it), and the detector's method, machine type and score
    task: str = "tagging"
    method: str = ""
    machine_type: str = ""
    score: str = ""
    machine_ids: tuple[str, ...] = ()  # ID classifier: class order; the own one set by MACHINE_ID

    @classmethod
    def parse(cls, payload: bytes, was_reset: bool = False) -> Hello:
        """Decode a HELLO payload; raises ValueError naming the field that does not fit."""
        if len(payload) < HELLO_FIXED.size:
            raise ValueError(f"HELLO payload of {len(payload)} bytes < {HELLO_FIXED.size}")
        f = HELLO_FIXED.unpack_from(payload)
        n_classes, pos = f[12], HELLO_FIXED.size
        caps = frozenset(name for bit, name in CAPABILITIES.items() if f[5] & bit)
        anomaly = "anomaly" in caps
        kind = "I" if anomaly else "h"  # anomaly: u32 score units; tagging: int16
        thresholds = struct.unpack_from(f"<{n_classes}{kind}", payload, pos)
        pos += struct.calcsize(f"<{n_classes}{kind}")
        names = [f"label {c}" for c in range(n_classes)]
        names += ["method", "machine type", "score"] if anomaly else []

        def text(name: str) -> str:  # u8 length + UTF-8
            nonlocal pos
            if pos >= len(payload) or pos + 1 + payload[pos] > len(payload):
                raise ValueError(f"HELLO payload ends inside {name}")
            start, pos = pos + 1, pos + 1 + payload[pos]
            return payload[start:pos].decode()

        texts = [text(name) for name in names]
        task = ()
        if anomaly:
            if pos >= len(payload):
                raise ValueError("HELLO payload ends before the machine ID count")
            pos += 1
            ids = tuple(text(f"machine ID {k}") for k in range(payload[pos - 1]))
            task = ("anomaly", *texts[n_classes:], ids)
        if pos != len(payload):
            raise ValueError(f"HELLO payload has {len(payload) - pos} trailing bytes")
        return cls(
            f[0], f"{f[1]}.{f[2]}.{f[3]}", f[4], caps, *f[6:14], f[14].hex(), f[15].hex(),
            tuple(thresholds), tuple(texts[:n_classes]), was_reset, *task,
        )  # fmt: skip

    @property
    def anomaly(self) -> bool:
        """True for an anomaly detector (one u32 score per window)."""
        return self.task == "anomaly"


@dataclass(frozen=True)
class InferResult:
    """INFER: int8 scores ``[n_classes]`` (anomaly: the u32 window score ``[1]``) and the
    model's cycles."""

    scores: np.ndarray
    cycles: int


@dataclass(frozen=True)
class ClassifyResult:
    """CLASSIFY of one clip, everything the device computed.

    ``features`` int8 ``[frames, n_mels]`` (empty unless requested), ``window_starts`` int
    ``[windows]`` (model_dev.arch.window_starts order), ``window_scores`` int8
    ``[windows, n_classes]``, ``window_cycles`` ``[windows]``, ``clip_scores`` int8
    ``[n_classes]`` (max over windows), ``decisions`` bool ``[n_classes]``, ``cycles`` per stage
    for the clip (``frontend``, ``model``, ``post``), ``n_frames`` and ``n_windows``.

    From an anomaly device: ``window_scores`` uint32 ``[windows, 1]``, ``clip_scores`` uint64
    ``[2]`` = (sum of the window scores, their number), the exact clip mean, and ``decisions``
    bool ``[1]`` (mean >= threshold): the form of ``quantize.tasks.TASKS[task].clip_post``.
    """

    features: np.ndarray
    window_starts: np.ndarray
    window_scores: np.ndarray
    window_cycles: np.ndarray
    clip_scores: np.ndarray
    decisions: np.ndarray
    cycles: dict[str, int]
    n_frames: int
    n_windows: int


@dataclass(frozen=True)
class BenchResult:
    """BENCH: cycles per run over ``n`` timed runs after ``warmup`` untimed ones."""

    target: str
    n: int
    warmup: int
    min: int
    max: int
    total: int

    @property
    def mean(self) -> float:
        """Mean cycles per run."""
        return self.total / self.n


@dataclass(frozen=True)
class Stats:
    """STATS counters (``stack_used`` is None when the platform does not measure it)."""

    rx_frames: int
    rx_errors: int
    duplicates: int
    naks: int
    fe_frames: int
    fe_cycles: int
    fe_cycles_max: int
    model_runs: int
    model_cycles: int
    model_cycles_max: int
    stack_used: int | None
    activation_bytes: int
    state_bytes: int


@dataclass
class LinkCounters:
    """Host-side link accounting (for link efficiency and fault-injection reports)."""

    requests: int = 0
    retransmissions: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    payload_sent: int = 0
    payload_received: int = 0
    problems: Counter = field(default_factory=Counter)  # rejected frames by kind, NAKs, stale


class Device:
    """A device on a serial link (see the module docstring).

    Parameters
    ----------
    port : str or SerialLike
        A pyserial URL or device path (opened with ``serial.serial_for_url``), or an open port.
    timeout : float
        Seconds to wait for each response before retransmitting.
    retries : int
        Retransmissions before giving up with :class:`DeviceTimeout`.
    baudrate : int
        For real serial ports (ignored by socket:// and loop://).
    max_payload : int, optional
        Use frames smaller than the device's maximum (helps on very noisy links).
    hello : bool
        Send HELLO on open (fills :attr:`info`; needed by the data commands).
    """

    def __init__(
        self,
        port: str | SerialLike,
        *,
        timeout: float = 1.0,
        retries: int = 5,
        baudrate: int = 115200,
        max_payload: int | None = None,
        hello: bool = True,
    ) -> None:
        if isinstance(port, str):
            port = serial.serial_for_url(port, baudrate=baudrate, timeout=POLL_S)
        else:
            port.timeout = POLL_S
        self.port: SerialLike = port
        self.timeout, self.retries, self.max_payload = timeout, retries, max_payload
        self.info: Hello | None = None
        self.counters = LinkCounters()
        self._decoder = FrameDecoder()
        self._seq = secrets.randbelow(1 << 16)  # a fresh session never matches a cached seq
        if hello:
            try:
                self.hello()
            except BaseException:
                self.close()
                raise

    # -- plumbing --
    def close(self) -> None:
        """Close the port."""
        self.port.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def payload_limit(self) -> int:
        """Largest payload per frame in use (the device's, or less if asked)."""
        limit = self._info().max_payload
        return min(limit, self.max_payload) if self.max_payload else limit

    def _info(self) -> Hello:
        if self.info is None:
            raise RuntimeError("no HELLO yet: call hello() first")
        return self.info

    def request(
        self, command: Command, payload: bytes = b"", timeout: float | None = None
    ) -> Frame:
        """Send one request and return the device's OK response (retrying as documented).

        Raises
        ------
        DeviceTimeout, DeviceError, VersionMismatch, DeviceReset
        """
        self._seq = (self._seq + 1) & 0xFFFF
        seq, wait = self._seq, self.timeout if timeout is None else timeout
        wire = encode_frame(Frame(int(command), seq, bytes(payload)))
        self.counters.requests += 1
        self.counters.payload_sent += len(payload)
        problems: Counter = Counter()
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters.retransmissions += 1
            self.port.write(wire)
            self.counters.bytes_sent += len(wire)
            frame = self._await(command, seq, time.monotonic() + wait, problems)
            if frame is None:
                continue
            if frame.status == Status.BUSY:
                problems["busy"] += 1
                time.sleep(wait / 4)
                continue
            reset = bool(frame.flags & FLAG_RESET)
            if reset and self.info is not None and command not in (Command.HELLO, Command.RESET):
                raise DeviceReset(command, seq, "the device was reset since HELLO; state lost")
            if frame.status != Status.OK:
                detail = frame.payload.decode("utf-8", "replace")
                raise DeviceError(command, seq, frame.status, detail)
            self.counters.payload_received += len(frame.payload)
            return frame
        seen = ", ".join(f"{n} {k}" for k, n in sorted(problems.items())) or "nothing"
        raise DeviceTimeout(
            command,
            seq,
            f"no valid response after {self.retries + 1} attempts ({wait:g} s each); "
            f"received: {seen}",
        )

    def _await(self, command: Command, seq: int, deadline: float, problems: Counter):
        """The response to (command, seq), or None to retransmit now (timeout, NAK, bad frame)."""
        want = int(command) | RESPONSE_BIT
        while time.monotonic() < deadline:
            data = self.port.read(max(1, self.port.in_waiting))
            if not data:
                continue
            self.counters.bytes_received += len(data)
            retransmit = False
            found = None
            for event in self._decoder.feed(data):
                if isinstance(event, DecodeError):
                    problems[f"{event.kind.value} frames"] += 1
                    self.counters.problems[event.kind.value] += 1
                    retransmit = True  # possibly our answer, damaged
                elif not event.is_response:
                    problems["echoed requests"] += 1  # loop:// or a half-duplex echo
                elif event.version != PROTOCOL_VERSION:
                    raise VersionMismatch(
                        command,
                        seq,
                        f"device speaks protocol v{event.version}, host v{PROTOCOL_VERSION}",
                    )
                elif event.code == NAK_CODE:
                    problems["NAKs"] += 1
                    self.counters.problems["nak"] += 1
                    retransmit |= event.seq == seq
                elif event.code == want and event.seq == seq and found is None:
                    found = event
                else:
                    problems["stale frames"] += 1
                    self.counters.problems["stale"] += 1
            if found is not None:
                return found
            if retransmit:
                return None
        problems["timeouts"] += 1
        return None

    # -- commands --
    def hello(self) -> Hello:
        """HELLO: versions, hashes, shapes, labels; checks the protocol version."""
        frame = self.request(Command.HELLO)
        if frame.payload[:1] != bytes([PROTOCOL_VERSION]):
            raise VersionMismatch(
                Command.HELLO, frame.seq, f"device reports protocol {frame.payload[:1].hex()}"
            )
        try:
            self.info = Hello.parse(frame.payload, bool(frame.flags & FLAG_RESET))
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            raise ProtocolError(Command.HELLO, frame.seq, f"malformed HELLO: {exc}") from exc
        return self.info

    def _need(self, capability: str, command: Command) -> Hello:
        info = self._info()
        if capability not in info.capabilities:
            raise ProtocolError(command, self._seq, f"the device does not offer {capability}")
        return info

    def features(self, audio: np.ndarray) -> np.ndarray:
        """FEATURES: stream ``audio`` (int16) through the device's front end.

        Returns
        -------
        np.ndarray
            int8 ``[frames, n_mels]``, the same frames the front end gives for the whole clip.
        """
        info = self._need("features", Command.FEATURES)
        audio = _int16(audio)
        rows_per = (self.payload_limit - 2) // info.n_mels
        step = max(1, min((self.payload_limit - 2) // 2, rows_per * info.fe_hop_length))
        rows = []
        for i, start in enumerate(range(0, max(len(audio), 1), step)):
            chunk = audio[start : start + step]
            frame = self.request(Command.FEATURES, bytes([1 if i == 0 else 0, 0]) + chunk.tobytes())
            n = int.from_bytes(frame.payload[:2], "little")
            rows.append(np.frombuffer(frame.payload[2:], np.int8).reshape(n, info.n_mels))
        return np.concatenate(rows)

    def _upload(self, window: np.ndarray, run: bool) -> Frame:
        info = self._need("infer", Command.INFER)
        window = np.asarray(window)
        if window.dtype != np.int8 or window.size != info.in_frames * info.in_mels:
            raise ValueError(
                f"INFER window must be int8 [{info.in_frames}, {info.in_mels}], got "
                f"{window.dtype} {list(window.shape)}"
            )
        data = window.tobytes()
        step = self.payload_limit - 8
        for offset in range(0, len(data), step):
            last = offset + step >= len(data)
            header = struct.pack("<BBHI", 1 if (run and last) else 0, 0, 0, offset)
            frame = self.request(Command.INFER, header + data[offset : offset + step])
        return frame

    def infer(self, window: np.ndarray) -> InferResult:
        """INFER: run the model on one int8 feature window ``[in_frames, in_mels]``."""
        payload = self._upload(window, run=True).payload
        dtype = "<u4" if self._info().anomaly else np.int8
        scores = np.frombuffer(payload[8:], dtype).copy()
        return InferResult(scores, int.from_bytes(payload[4:8], "little"))

    def classify(
        self, audio: np.ndarray, *, features: bool = True, windows: bool = True
    ) -> ClassifyResult:
        """CLASSIFY: stream one clip; the device cuts windows, runs the model and aggregates.

        Parameters
        ----------
        audio : np.ndarray
            int16 samples of one clip.
        features, windows : bool
            Also return the feature rows / per-window scores (more bytes on the link).
        """
        info = self._need("classify", Command.CLASSIFY)
        audio = _int16(audio)
        m, c, hop = info.n_mels, info.n_classes, info.fe_hop_length
        score = np.dtype(("<u4", (c,))) if info.anomaly else np.dtype(("i1", (c,)))
        record = 8 + score.itemsize
        summary = SUMMARY.size + (ANOMALY_SUMMARY.size if info.anomaly else 2 * c)
        limit = self.payload_limit

        def fits(n: int, end: bool) -> bool:
            rows = math.ceil(n / hop)
            size = 4 + features * rows * m + windows * (rows + 1) * record + end * summary
            return 2 + 2 * n <= limit and size <= limit

        step = (limit - 2) // 2
        while step > 1 and not fits(step, True):
            step -= 1
        if not fits(step, True):
            raise ValueError(
                f"CLASSIFY: a payload limit of {limit} bytes cannot hold one response; raise "
                "max_payload or ask for fewer outputs (features=False, windows=False)"
            )
        options = (OPT_FEATURES if features else 0) | (OPT_WINDOWS if windows else 0)
        rows, recs, starts = [], [], range(0, max(len(audio), 1), step)
        tail = b""
        for i, start in enumerate(starts):
            op = (CLASSIFY_BEGIN if i == 0 else 0) | (CLASSIFY_END if i == len(starts) - 1 else 0)
            chunk = audio[start : start + step].tobytes()
            p = self.request(Command.CLASSIFY, bytes([op, options]) + chunk).payload
            n_rows, n_win = struct.unpack_from("<HH", p)
            pos = 4 + n_rows * m
            rows.append(np.frombuffer(p[4:pos], np.int8).reshape(n_rows, m))
            recs.append(p[pos : pos + n_win * record])
            tail = p[pos + n_win * record :]
        n_frames, n_windows, fe_cyc, model_cyc, post_cyc = SUMMARY.unpack_from(tail)
        if info.anomaly:
            score_sum, score_windows, decision = ANOMALY_SUMMARY.unpack_from(tail, SUMMARY.size)
            clip = np.array([score_sum, score_windows], np.uint64)
            decisions = np.array([decision], np.uint8).astype(bool)
        else:
            clip = np.frombuffer(tail[SUMMARY.size : SUMMARY.size + c], np.int8).copy()
            decisions = np.frombuffer(tail[SUMMARY.size + c : summary], np.uint8).astype(bool)
        dt = np.dtype([("start", "<u4"), ("cycles", "<u4"), ("scores", score)])
        win = np.frombuffer(b"".join(recs), dt)
        return ClassifyResult(
            features=np.concatenate(rows),
            window_starts=win["start"].astype(np.int64),
            window_scores=win["scores"].reshape(-1, c).copy(),
            window_cycles=win["cycles"].astype(np.int64),
            clip_scores=clip,
            decisions=decisions,
            cycles={"frontend": fe_cyc, "model": model_cyc, "post": post_cyc},
            n_frames=n_frames,
            n_windows=n_windows,
        )

    def bench(
        self,
        n: int = 100,
        warmup: int = 10,
        *,
        target: str = "model",
        window: np.ndarray | None = None,
        timeout: float = 120.0,
    ) -> BenchResult:
        """BENCH: ``n`` timed runs after ``warmup`` (like MLPerf Tiny's ``infer N W``).

        Parameters
        ----------
        target : {"model", "frontend"}
            The model on the loaded INFER window, or one front-end frame.
        window : np.ndarray, optional
            Upload this int8 window first (target "model").
        timeout : float
            Seconds to wait for the answer (the device is busy meanwhile).
        """
        targets = {"model": 0, "frontend": 1}
        if target not in targets:
            raise ValueError(f"bench target must be one of {sorted(targets)}, got {target!r}")
        if window is not None:
            self._upload(window, run=False)
        payload = struct.pack("<BxxxII", targets[target], n, warmup)
        p = self.request(Command.BENCH, payload, timeout=max(timeout, self.timeout)).payload
        _, n_, w_, lo, hi, total = BENCH.unpack(p)
        return BenchResult(target, n_, w_, lo, hi, total)

    def stats(self, clear: bool = False) -> Stats:
        """STATS: link counters, cycles per stage, stack and activation memory."""
        values = list(STATS.unpack(self.request(Command.STATS, bytes([int(clear)])).payload))
        values[10] = None if values[10] in (0, 0xFFFFFFFF) else values[10]  # not measured
        return Stats(**dict(zip(STATS_FIELDS, values, strict=True)))

    def machine_id(self, index: int | None = None) -> int:
        """MACHINE_ID: set (``index``, a class index into ``info.machine_ids``) and/or read the
        ID classifier's own machine ID."""
        if not self._info().machine_ids:
            raise ProtocolError(Command.MACHINE_ID, self._seq, "the model uses no machine ID")
        payload = b"" if index is None else bytes([index])
        return self.request(Command.MACHINE_ID, payload).payload[0]

    def reset(self) -> Hello:
        """RESET the device (streams, counters), then HELLO again; returns the new HELLO."""
        self.request(Command.RESET)
        return self.hello()


def open_device(port: str | SerialLike | Device, **kwargs) -> tuple[Device, bool]:
    """``(device, owned)``: ``port`` itself if it is a Device, else a new connection (HELLO
    done) that the caller closes; link failures become RuntimeError naming the port."""
    if isinstance(port, Device):
        return port, False
    try:
        return Device(port, **kwargs), True
    except ProtocolError as exc:
        raise RuntimeError(f"{port}: no answer from a device ({exc})") from exc


def _int16(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.dtype != np.int16:
        raise ValueError(f"audio must be 1-D int16, got {audio.dtype} {list(audio.shape)}")
    return np.ascontiguousarray(audio, dtype="<i2")


__all__ = [
    "BenchResult",
    "ClassifyResult",
    "Device",
    "DeviceError",
    "DeviceReset",
    "DeviceTimeout",
    "Hello",
    "InferResult",
    "LinkCounters",
    "ProtocolError",
    "Stats",
    "VersionMismatch",
    "HEADER_BYTES",
    "OVERHEAD",
]
