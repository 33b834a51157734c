"""The aedfw serial protocol, host side: frame codec, CRC and an incremental frame decoder.

The wire format is specified in ``docs/protocol.md``; the device side is generated from
``firmware_gen/templates/aed_proto_frame.c.j2`` and decodes byte for byte the same way (the tests
check both directions). A frame on the wire is ``0x00, COBS(header | payload | crc32), 0x00``::

    offset  size  field
    0       1     version   protocol version (PROTOCOL_VERSION)
    1       1     code      command (request) or command | 0x80 (response); 0x80 = NAK
    2       1     status    0 in requests; Status in responses
    3       1     flags     0 in requests; FLAG_RESET in responses (device reset since HELLO)
    4       2     seq       sequence number, little-endian
    6       2     length    payload length, little-endian
    8       n     payload
    8+n     4     crc       CRC-32/ISO-HDLC of bytes 0 .. 8+n-1, little-endian
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBBBHH")
HEADER_BYTES = HEADER.size  # 8
CRC_BYTES = 4
OVERHEAD = HEADER_BYTES + CRC_BYTES
DELIMITER = 0
RESPONSE_BIT = 0x80
NAK_CODE = RESPONSE_BIT  # response to a frame the device could not read
FLAG_RESET = 0x01  # response flag: the device was (re)initialised since it last answered HELLO
MAX_LENGTH = 0xFFFF  # the length field's limit


class Command(enum.IntEnum):
    """Request codes."""

    HELLO = 0x01
    FEATURES = 0x02
    INFER = 0x03
    CLASSIFY = 0x04
    BENCH = 0x05
    STATS = 0x06
    RESET = 0x07
    MACHINE_ID = 0x08


class Status(enum.IntEnum):
    """Response status codes."""

    OK = 0
    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_COMMAND = 3
    BAD_STATE = 4
    BUSY = 5
    BAD_ARGUMENT = 6
    BAD_VERSION = 7
    UNSUPPORTED = 8


class DecodeKind(enum.Enum):
    """Why an encoded frame (the bytes between two delimiters) was rejected."""

    TOO_LONG = "too_long"  # decodes to more than the receiver's buffer
    COBS = "cobs"  # ends inside a COBS block
    SHORT = "short"  # fewer bytes than a header and a CRC
    CRC = "crc"  # CRC mismatch
    LENGTH = "length"  # CRC fine, but the length field disagrees with the frame size


@dataclass(frozen=True)
class Frame:
    """One decoded frame (request or response)."""

    code: int
    seq: int
    payload: bytes = b""
    status: int = 0
    flags: int = 0
    version: int = PROTOCOL_VERSION

    @property
    def is_response(self) -> bool:
        """True for device responses (code has the 0x80 bit)."""
        return bool(self.code & RESPONSE_BIT)


@dataclass(frozen=True)
class DecodeError:
    """A rejected frame; ``seq`` is the (unverified) header seq when at least 6 bytes decoded."""

    kind: DecodeKind
    size: int  # decoded bytes (capped at the buffer size plus one for TOO_LONG)
    seq: int | None = None


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (zlib, Ethernet): poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF.

    ``crc32(b"123456789") == 0xCBF43926``.
    """
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no delimiters); after a 254-byte block a new block always starts."""
    out = bytearray()
    for part in bytes(data).split(b"\x00"):
        while len(part) >= 254:
            out.append(0xFF)
            out += part[:254]
            part = part[254:]
        out.append(len(part) + 1)
        out += part
    return bytes(out)


def cobs_decode(encoded: bytes, limit: int) -> tuple[bytes, DecodeKind | None]:
    """Decode one COBS frame exactly as the device's byte-at-a-time decoder does.

    Parameters
    ----------
    encoded : bytes
        The bytes between two delimiters (no zero bytes).
    limit : int
        Buffer size: decoding more than ``limit`` bytes is ``TOO_LONG``.

    Returns
    -------
    tuple
        ``(decoded, None)`` or ``(partial, kind)`` with kind ``TOO_LONG`` or ``COBS``.
    """
    out = bytearray()
    i, n, zero_pending = 0, len(encoded), False
    while i < n:
        code = encoded[i]
        i += 1
        if zero_pending:  # a block's implicit zero is only real when another block follows
            out.append(0)
        block = encoded[i : i + code - 1]
        out += block
        i += len(block)
        if len(out) > limit:
            return bytes(out[: limit + 1]), DecodeKind.TOO_LONG
        if len(block) < code - 1:
            return bytes(out), DecodeKind.COBS
        zero_pending = code != 0xFF
    return bytes(out), None


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``: ``0x00 + COBS(header + payload + CRC) + 0x00``."""
    if len(frame.payload) > MAX_LENGTH:
        raise ValueError(f"payload of {len(frame.payload)} bytes exceeds {MAX_LENGTH}")
    body = HEADER.pack(
        frame.version, frame.code, frame.status, frame.flags, frame.seq & 0xFFFF, len(frame.payload)
    )
    body += frame.payload
    body += struct.pack("<I", crc32(body))
    return b"\x00" + cobs_encode(body) + b"\x00"


def parse_frame(decoded: bytes) -> Frame | DecodeError:
    """Check a decoded frame's size, CRC and length field; returns the frame or why not."""
    size = len(decoded)
    seq = int.from_bytes(decoded[4:6], "little") if size >= 6 else None
    if size < OVERHEAD:
        return DecodeError(DecodeKind.SHORT, size, seq)
    if crc32(decoded[:-CRC_BYTES]) != int.from_bytes(decoded[-CRC_BYTES:], "little"):
        return DecodeError(DecodeKind.CRC, size, seq)
    version, code, status, flags, seq, length = HEADER.unpack_from(decoded)
    if length != size - OVERHEAD:
        return DecodeError(DecodeKind.LENGTH, size, seq)
    return Frame(code, seq, bytes(decoded[HEADER_BYTES:-CRC_BYTES]), status, flags, version)


class FrameDecoder:
    """Incremental decoder: feed it any byte chunks; it returns frames and rejected frames.

    It never holds more than about twice its frame limit: bytes of an over-long frame are
    discarded until the next delimiter, which is where it resynchronises after any garbage.

    Parameters
    ----------
    max_payload : int
        Largest payload accepted (the device's is announced in HELLO); longer frames are
        reported as ``TOO_LONG``.
    """

    def __init__(self, max_payload: int = MAX_LENGTH) -> None:
        self.limit = OVERHEAD + max_payload
        # any encoding longer than this decodes to more than `limit` bytes (COBS adds one
        # byte per 254 plus one), so the rest of it need not be kept
        self._keep = self.limit + self.limit // 254 + 2
        self._buf = bytearray()
        self._overflow = False

    def reset(self) -> None:
        """Drop any partial frame."""
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> list[Frame | DecodeError]:
        """Consume ``data``; returns the frames (and rejections) completed by it, in order."""
        events: list[Frame | DecodeError] = []
        start, n = 0, len(data)
        while start < n:
            end = data.find(b"\x00", start)
            piece = data[start : n if end < 0 else end]
            if not self._overflow:
                self._buf += piece
                if len(self._buf) > self._keep:
                    del self._buf[self._keep :]
                    self._overflow = True
            if end < 0:
                break
            if self._buf:
                events.append(self._finish())
            self.reset()
            start = end + 1
        return events

    def _finish(self) -> Frame | DecodeError:
        decoded, kind = cobs_decode(bytes(self._buf), self.limit)
        if kind is not None:
            seq = int.from_bytes(decoded[4:6], "little") if len(decoded) >= 6 else None
            return DecodeError(kind, len(decoded), seq)
        return parse_frame(decoded)
