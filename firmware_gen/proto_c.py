"""Emit the device side of the serial protocol (docs/protocol.md): frame codec and dispatcher."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware_gen.render import (
    GENERATOR_VERSION,
    INCLUDE_DIR,
    SOURCE_DIR,
    copy_source,
    write_rendered,
)
from model_dev.frontend import FrontendConfig

#: Must equal host_tools.protocol.PROTOCOL_VERSION (a test checks).
PROTOCOL_VERSION = 1
#: Package paths: the generated configuration header, then the hand-written codec and dispatcher.
PROTO_CONFIG = f"{INCLUDE_DIR}/aed_proto_config.h"
FRAME_FILES = (f"{INCLUDE_DIR}/aed_proto_frame.h", f"{SOURCE_DIR}/aed_proto_frame.c")
PROTO_FILES = (
    PROTO_CONFIG,
    *FRAME_FILES,
    f"{INCLUDE_DIR}/aed_proto.h",
    f"{SOURCE_DIR}/aed_proto.c",
)
DEFAULT_MAX_PAYLOAD = 512
CAP_FEATURES, CAP_INFER, CAP_CLASSIFY, CAP_BENCH = 0x01, 0x02, 0x04, 0x08
#: The model is an anomaly detector: HELLO's thresholds are u32 and its tail names the method
#: (docs/protocol.md); absent: tagging.
CAP_ANOMALY = 0x10
#: HELLO's fixed part (docs/protocol.md): versions, max payload, capabilities, front end, model.
HELLO_FIXED = struct.Struct("<4BHHI7H32s32s")


@dataclass(frozen=True)
class ProtoModel:
    """What the protocol needs to know about the model (from its aedfw metadata).

    Attributes
    ----------
    model_hash : str
        64 hex digits, ``quantize.metadata.model_hash`` of the .tflite.
    labels : tuple of str
        Class names, in output order.
    thresholds_q : tuple of int
        Score thresholds: class ``c`` fires when its int8 clip score >= ``thresholds_q[c]``
        (128: never).
    window_frames, window_hop_frames : int
        The model's window and the hop between windows of a clip, in frames.
    task : str
        ``"tagging"`` or ``"anomaly"`` (one window score per window, ``thresholds_q`` in
        integer score units: anomalous when the clip mean >= ``thresholds_q[0]``).
    method, machine_type, score : str
        Anomaly models: the detector, the machine type and the metadata's score name.
    machine_ids : tuple of str
        ID classifier: the machine IDs in class order (the own ID is set with MACHINE_ID);
        empty for the other methods.
    """

    model_hash: str
    labels: tuple[str, ...]
    thresholds_q: tuple[int, ...]
    window_frames: int
    window_hop_frames: int
    task: str = "tagging"
    method: str = ""
    machine_type: str = ""
    score: str = ""
    machine_ids: tuple[str, ...] = ()

    @classmethod
    def from_metadata(cls, meta) -> ProtoModel:
        """Take the fields from a ``quantize.metadata.ModelMetadata``."""
        anomaly = meta.task == "anomaly"
        return cls(
            meta.model_hash,
            tuple(meta.labels),
            tuple(int(t) for t in meta.thresholds_q),
            int(meta.window_frames),
            int(meta.window_hop_frames),
            meta.task,
            meta.method if anomaly else "",
            meta.machine_type if anomaly else "",
            meta.score if anomaly else "",
            tuple(meta.machine_ids) if anomaly else (),
        )

    @property
    def anomaly(self) -> bool:
        """True for an anomaly detector (HELLO capability ``CAP_ANOMALY``)."""
        return self.task == "anomaly"


def _digest(hex_digest: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(hex_digest)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{what} must be 64 hex digits (sha256), got {hex_digest!r}")
    return raw


def _text(value: str, what: str) -> bytes:
    """A HELLO string: u8 length + UTF-8 (1..255 bytes)."""
    raw = value.encode()
    if not 0 < len(raw) < 256:
        raise ValueError(f"{what} {value!r}: must be 1..255 bytes of UTF-8")
    return bytes([len(raw)]) + raw


def hello_payload(
    cfg: FrontendConfig, model: ProtoModel | None, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> bytes:
    """The HELLO response payload the generated device sends, byte for byte."""
    version = [int(v) for v in GENERATOR_VERSION.split(".")]
    caps = CAP_FEATURES | CAP_BENCH | ((CAP_INFER | CAP_CLASSIFY) if model else 0)
    anomaly = model is not None and model.anomaly
    caps |= CAP_ANOMALY if anomaly else 0
    labels: Sequence[str] = model.labels if model else ()
    n_classes = len(labels)
    fixed = HELLO_FIXED.pack(
        PROTOCOL_VERSION,
        *version,
        max_payload,
        caps,
        cfg.sample_rate,
        cfg.window_length,
        cfg.hop_length,
        cfg.n_mels,
        model.window_frames if model else 0,
        cfg.n_mels if model else 0,
        n_classes,
        model.window_hop_frames if model else 0,
        _digest(model.model_hash, "model_hash") if model else bytes(32),
        _digest(cfg.hash, "frontend hash"),
    )
    kind = "I" if anomaly else "h"  # anomaly: u32 score units; tagging: int16 int8 scores
    tail = bytearray(struct.pack(f"<{n_classes}{kind}", *(model.thresholds_q if model else ())))
    for label in labels:
        tail += _text(label, "label")
    if anomaly:
        for what in ("method", "machine_type", "score"):
            tail += _text(getattr(model, what), what)
        tail.append(len(model.machine_ids))
        for mid in model.machine_ids:
            tail += _text(mid, "machine ID")
    return fixed + bytes(tail)


def write_proto(
    out_dir: str | Path,
    cfg: FrontendConfig,
    model: ProtoModel | None = None,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> list[Path]:
    """Write the device side of the protocol into the package folder ``out_dir``.

    ``aed_proto_frame.h/.c`` (codec) and ``aed_proto.h/.c`` (dispatcher) are copied from
    ``csrc/``; ``aed_proto_config.h`` (version, payload limit, HELLO bytes, whether a model is
    built in) is generated. The dispatcher includes ``aed_frontend.h``, ``aed_platform.h`` and,
    with a model, ``aed_model.h`` and ``aed_post.h``; without a model INFER and CLASSIFY answer
    UNSUPPORTED.

    Parameters
    ----------
    out_dir : str or Path
        Package directory.
    cfg : FrontendConfig
        The front end the device runs.
    model : ProtoModel, optional
        The model's identity, labels, thresholds and windowing; an anomaly model's
        dispatcher (``AED_PROTO_TASK_ANOMALY``) also needs ``aed_anomaly.h`` (window score, clip
        mean and decision) in the package.
    max_payload : int
        Largest payload per frame (64..4096): sets the device's receive and transmit buffers.

    Returns
    -------
    list of Path
        The written files, in ``PROTO_FILES`` order.
    """
    if not 64 <= max_payload <= 4096:
        raise ValueError(f"max_payload must be 64..4096 bytes, got {max_payload}")
    if model is not None:
        n = len(model.labels)
        if n == 0 or len(model.thresholds_q) != n:
            raise ValueError(f"{n} labels but {len(model.thresholds_q)} thresholds_q")
        if model.window_frames < 1 or model.window_hop_frames < 1:
            raise ValueError("window_frames and window_hop_frames must be >= 1")
        if model.task not in ("tagging", "anomaly"):
            raise ValueError(f"task must be 'tagging' or 'anomaly', got {model.task!r}")
        if model.anomaly:
            if n != 1 or not 0 <= model.thresholds_q[0] < 2**32:
                raise ValueError(
                    "an anomaly model has one score with a threshold of 0..2^32-1 score units, "
                    f"got labels {model.labels} and thresholds_q {model.thresholds_q}"
                )
            if len(model.machine_ids) > 255:
                raise ValueError(f"{len(model.machine_ids)} machine IDs: at most 255")
        elif any(not -128 <= t <= 128 for t in model.thresholds_q):
            raise ValueError(
                f"thresholds_q must be -128..128 (128: never), got {model.thresholds_q}"
            )
    hello = hello_payload(cfg, model, max_payload)
    if len(hello) > max_payload:
        raise ValueError(f"HELLO needs {len(hello)} bytes > max_payload {max_payload}")
    caps = hello[6] | hello[7] << 8
    context = {
        "protocol_version": PROTOCOL_VERSION,
        "max_payload": max_payload,
        "hello_bytes": list(hello),
        "capabilities": f"0x{caps:02X}",
        "model": None
        if model is None
        else {
            "window_frames": model.window_frames,
            "hop_frames": model.window_hop_frames,
            "n_classes": len(model.labels),
            "anomaly": model.anomaly,
            "machine_ids": len(model.machine_ids),
        },
    }
    inputs = {"frontend_config": cfg.hash, "protocol": f"v{PROTOCOL_VERSION}"}
    if model is not None:
        inputs["model"] = model.model_hash
    config = write_rendered(out_dir, PROTO_CONFIG, inputs, **context)
    return [config, *(copy_source(name, out_dir) for name in PROTO_FILES[1:])]
