"""aedfw metadata embedded in the .tflite, so one file carries everything downstream needs.

Storage: an entry named ``"aedfw"`` in the flatbuffer's ``metadata`` list, pointing at a buffer
that holds canonical JSON (UTF-8, sorted keys) with a ``"format"`` number. TFLM, LiteRT and the C
engine ignore metadata they do not know.

Model hash: sha256 of the flatbuffer *without* the aedfw entry and its buffer, re-serialised by
:func:`pack` (deterministic, 16-byte aligned buffers). It is therefore the same before and after
embedding, and :func:`read_metadata` checks the stored value against the file.

Thresholds in the int8 domain
-----------------------------
The model output is an int8 probability ``p(q) = (q - output_zero_point) * output_scale``
(LOGISTIC: 1/256 and -128). For a probability threshold ``t`` (class fires when score >= t),
``thresholds_q = min{q in [-128, 127] : p(q) >= t}``, evaluated exactly as written in float64,
so ``q >= thresholds_q`` if and only if ``p(q) >= t`` for every int8 ``q``: no rounding
convention to agree on. ``t`` above ``p(127)`` (including ``inf``: never fires) gives 128, which
no int8 score reaches (compare in int16 or wider); ``t <= p(-128)`` gives -128 (always fires).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from model_dev.fileio import atomic_write
from model_dev.frontend import FrontendConfig
from quantize.tflite_model import TFLITE_IDENTIFIER

METADATA_NAME = b"aedfw"
METADATA_FORMAT = 1
#: The clip aggregation of window scores of each task: ``max`` (tagging, host reference and
#: device) and ``mean`` (anomaly, :mod:`quantize.anomaly`; no device post-processing yet).
AGGREGATIONS = {"tagging": "max", "anomaly": "mean"}
#: Anomaly-only fields, left out of a tagging model's JSON (its file stays byte-identical).
ANOMALY_FIELDS = ("method", "machine_type", "score_definition", "machine_ids", "log_scale_gain")
BUFFER_ALIGNMENT = 16


class MetadataError(ValueError):
    """A .tflite without valid aedfw metadata (message names the file)."""


@dataclass(frozen=True)
class ModelMetadata:
    """Everything firmware_gen and host_tools need besides the graph.

    Attributes
    ----------
    frontend : FrontendConfig
        The front end whose int8 output is the model input.
    frontend_hash : str
        ``frontend.hash``.
    labels : tuple of str
        Class names, in output order.
    thresholds : tuple of float
        Per-class probability thresholds (fires when score >= threshold; ``inf``: never).
    thresholds_q : tuple of int
        The same in the int8 output domain (fires when int8 score >= value; see the module
        docstring; 128 = never).
    window_frames, window_hop_frames : int
        Model window and hop (frames) of :func:`model_dev.arch.window_starts`.
    aggregation : str
        ``"max"``: clip score = maximum over windows of the int8 scores; ``"mean"`` (anomaly):
        mean over windows of the integer window scores.
    input_scale, input_zero_point, output_scale, output_zero_point
        I/O quantisation as in the flatbuffer (scales are float32 values).
    arena_bytes : int
        Smallest TFLM tensor arena (host ``tflite_micro`` runtime) that allocates and runs.
    model_hash : str
        :func:`model_hash` of the file.
    arch : str
        Architecture name (e.g. ``"s5k"``).
    checkpoint_sha256 : str
        sha256 of the source checkpoint file.
    state_dict_sha256 : str
        The checkpoint's weights hash.
    threshold_source : str
        Where ``thresholds`` came from.
    task : str
        What the model does, the key of :data:`quantize.tasks.TASKS` that post-processing,
        reports and validation dispatch on (``"tagging"``: multi-label sound events).
    score : str
        What an output score means (``"probability"``: per-class sigmoid probability;
        ``"reconstruction_sse"``: see :mod:`quantize.anomaly`).
    method, machine_type, score_definition : str
        Anomaly models only: the detector method (``"dense_ae"``...), the machine type it
        watches and the integer score in words (``""`` for tagging).
    machine_ids : tuple of str
        ID classifier only: the machine IDs in class order (the own-ID index the device is
        given points into it); ``()`` otherwise.
    log_scale_gain : float
        Group MADE only: the gain its output's log-scale half carries (``0.0`` otherwise).
    """

    frontend: FrontendConfig
    frontend_hash: str
    labels: tuple[str, ...]
    thresholds: tuple[float, ...]
    thresholds_q: tuple[int, ...]
    window_frames: int
    window_hop_frames: int
    aggregation: str
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    arena_bytes: int
    model_hash: str
    arch: str
    checkpoint_sha256: str
    state_dict_sha256: str = ""
    threshold_source: str = ""
    task: str = "tagging"
    score: str = "probability"
    method: str = ""
    machine_type: str = ""
    score_definition: str = ""
    machine_ids: tuple[str, ...] = ()
    log_scale_gain: float = 0.0

    @classmethod
    def for_graph(
        cls,
        info,
        frontend: FrontendConfig,
        labels,
        thresholds,
        window_frames: int,
        window_hop_frames: int,
        arena_bytes: int,
        arch: str,
        **extra,
    ) -> ModelMetadata:
        """Metadata of a converted graph: I/O quantisation and ``thresholds_q`` from ``info``.

        Parameters
        ----------
        info : quantize.convert.GraphInfo
            :func:`~quantize.convert.check_graph` of the model.
        frontend, labels, thresholds, window_frames, window_hop_frames, arena_bytes, arch
            The fields of the same names.
        **extra
            ``checkpoint_sha256`` (default 64 zeros: no checkpoint), ``state_dict_sha256``,
            ``threshold_source``, ``task``, ``score``, ``method``, ``machine_type``,
            ``score_definition``, ``machine_ids``, ``log_scale_gain``.
        """
        thresholds = tuple(float(t) for t in thresholds)
        return cls(
            frontend=frontend,
            frontend_hash=frontend.hash,
            labels=tuple(labels),
            thresholds=thresholds,
            thresholds_q=thresholds_to_q(thresholds, info.output_scale, info.output_zero_point),
            window_frames=window_frames,
            window_hop_frames=window_hop_frames,
            aggregation="max",
            input_scale=info.input_scale,
            input_zero_point=info.input_zero_point,
            output_scale=info.output_scale,
            output_zero_point=info.output_zero_point,
            arena_bytes=arena_bytes,
            model_hash="",  # set by embed_metadata
            arch=arch,
            **{"checkpoint_sha256": "0" * 64, **extra},
        )

    def to_dict(self) -> dict:
        """JSON-able dict (``inf`` thresholds as the string ``"inf"``)."""
        d = asdict(self)
        d["frontend"] = self.frontend.to_dict()
        d["thresholds"] = [t if np.isfinite(t) else "inf" for t in self.thresholds]
        d["labels"], d["thresholds_q"] = list(self.labels), list(self.thresholds_q)
        d["machine_ids"] = list(self.machine_ids)
        for k in ANOMALY_FIELDS:
            if not d[k]:
                del d[k]
        return {"format": METADATA_FORMAT, **d}

    @classmethod
    def from_dict(cls, data: dict, source: str) -> ModelMetadata:
        """Inverse of :meth:`to_dict`; malformed data raises MetadataError naming ``source``."""
        try:
            if data.get("format") != METADATA_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {METADATA_FORMAT}")
            known = {f.name for f in fields(cls)}
            required = {f.name for f in fields(cls) if f.default is dataclasses.MISSING}
            missing = sorted(required - set(data))
            if missing:
                raise ValueError(f"missing field(s) {missing}")
            d = {k: v for k, v in data.items() if k in known}
            d["frontend"] = FrontendConfig.from_dict(d["frontend"], "frontend")
            d["labels"] = tuple(str(s) for s in d["labels"])
            d["machine_ids"] = tuple(str(s) for s in d.get("machine_ids", ()))
            d["log_scale_gain"] = float(d.get("log_scale_gain", 0.0))
            d["thresholds"] = tuple(float(t) for t in d["thresholds"])
            d["thresholds_q"] = tuple(int(t) for t in d["thresholds_q"])
            meta = cls(**d)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise MetadataError(f"{source}: invalid aedfw metadata ({exc})") from None
        if meta.frontend.hash != meta.frontend_hash:
            raise MetadataError(f"{source}: aedfw metadata frontend_hash does not match frontend")
        if not len(meta.labels) == len(meta.thresholds) == len(meta.thresholds_q):
            raise MetadataError(f"{source}: labels, thresholds and thresholds_q differ in length")
        if meta.aggregation != AGGREGATIONS.get(meta.task):
            raise MetadataError(
                f"{source}: aedfw metadata aggregation {meta.aggregation!r} is not supported "
                f"for task {meta.task!r} (each task's aggregation: {AGGREGATIONS})"
            )
        return meta


def thresholds_to_q(thresholds, output_scale: float, output_zero_point: int) -> tuple[int, ...]:
    """Probability thresholds -> int8 score thresholds (see the module docstring)."""
    qs = np.arange(-128, 128)
    probs = (qs - output_zero_point).astype(np.float64) * float(output_scale)
    return tuple(int(qs[np.argmax(probs >= t)]) if probs[-1] >= t else 128 for t in thresholds)


# --------------------------------------------------------------------------------------------
# Flatbuffer surgery
# --------------------------------------------------------------------------------------------
def _schema():
    from quantize.convert import schema

    return schema()


def _aligned_buffer_type():
    fb = _schema()

    class AlignedBufferT(fb.BufferT):
        """BufferT whose data starts on a 16-byte boundary, as the converter writes it (int32
        biases must stay aligned for TFLM on a microcontroller)."""

        def Pack(self, builder):  # noqa: N802 (flatbuffers API)
            data = None
            if self.data is not None and len(self.data):
                raw = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
                builder.head -= len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                data = builder.EndVector()
            fb.BufferStart(builder)
            if data is not None:
                fb.BufferAddData(builder, data)
            fb.BufferAddOffset(builder, self.offset)
            fb.BufferAddSize(builder, self.size)
            return fb.BufferEnd(builder)

    return AlignedBufferT


def unpack(tflite: bytes, source: str = "model"):
    """The flatbuffer as a mutable ``ModelT``."""
    fb = _schema()
    if bytes(tflite[4:8]) != TFLITE_IDENTIFIER:
        raise MetadataError(f"{source}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = fb.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    except Exception as exc:  # the flatbuffer reader raises anything on garbage
        raise MetadataError(f"{source}: not a TFLite flatbuffer ({exc!r})") from None
    if not model.subgraphs:
        raise MetadataError(f"{source}: not a TFLite model (no subgraph)")
    return model


def pack(model) -> bytes:
    """Serialise a ``ModelT`` deterministically, buffers 16-byte aligned."""
    import flatbuffers

    aligned = _aligned_buffer_type()
    original = model.buffers
    bufs = []
    for b in original or []:
        nb = aligned()
        nb.data, nb.offset, nb.size = b.data, b.offset, b.size
        bufs.append(nb)
    model.buffers = bufs
    try:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    finally:
        model.buffers = original
    return bytes(builder.Output())


def _split(model) -> tuple[object, bytes | None]:
    """Remove the aedfw metadata entry (and its buffer) from ``model``; return it and the JSON."""
    entries = list(model.metadata or [])
    mine = [m for m in entries if m.name == METADATA_NAME]
    payload = None
    for m in mine:
        buf = model.buffers[m.buffer]
        payload = bytes(np.asarray(buf.data, dtype=np.uint8)) if buf.data is not None else b""
        used = {t.buffer for g in model.subgraphs for t in (g.tensors or [])}
        used |= {e.buffer for e in entries if e is not m}
        if m.buffer == len(model.buffers) - 1 and m.buffer not in used:
            model.buffers.pop()
        else:
            model.buffers[m.buffer].data = None
    model.metadata = [m for m in entries if m.name != METADATA_NAME] or None
    return model, payload


def _hash_of(model) -> str:
    return hashlib.sha256(pack(model)).hexdigest()


def model_hash(path: str | os.PathLike | bytes) -> str:
    """sha256 hex of a .tflite without its aedfw metadata (a path or the bytes)."""
    data, source = _read(path)
    model, _ = _split(unpack(data, source))
    return _hash_of(model)


def _read(path: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(path, (bytes, bytearray)):
        return bytes(path), "model"
    try:
        return Path(path).read_bytes(), str(path)
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read ({exc.strerror})") from None


def embed_metadata(tflite: bytes, meta: ModelMetadata) -> bytes:
    """Return ``tflite`` with ``meta`` embedded (replacing any aedfw metadata).

    ``meta.model_hash`` is set to the hash of ``tflite`` without metadata.
    """
    fb = _schema()
    model, _ = _split(unpack(tflite))
    meta = dataclasses.replace(meta, model_hash=_hash_of(model))
    payload = json.dumps(meta.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    buf = fb.BufferT()
    buf.data = np.frombuffer(payload, dtype=np.uint8).copy()
    buf.offset, buf.size = 0, 0
    model.buffers.append(buf)
    entry = fb.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return pack(model)


def write_metadata(path: str | os.PathLike, meta: ModelMetadata) -> Path:
    """Embed ``meta`` into the .tflite at ``path`` (in place, atomically); returns the path.

    ``meta.model_hash`` is recomputed from the file.
    """
    data, source = _read(path)
    out = embed_metadata(data, meta)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(out))
    return Path(path)


def read_metadata(path: str | os.PathLike | bytes) -> ModelMetadata:
    """The aedfw metadata of a .tflite (a path or its bytes).

    Raises
    ------
    MetadataError
        The file is unreadable, not a TFLite model, has no or malformed aedfw metadata, or
        its stored model hash does not match the graph. The message names the file.
    """
    data, source = _read(path)
    model, payload = _split(unpack(data, source))
    if payload is None:
        raise MetadataError(
            f"{source}: no aedfw metadata; convert the model with `aedfw quantize` first"
        )
    try:
        raw = json.loads(payload.decode())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise MetadataError(f"{source}: corrupt aedfw metadata ({exc})") from None
    meta = ModelMetadata.from_dict(raw, source)
    actual = _hash_of(model)
    if meta.model_hash != actual:
        raise MetadataError(
            f"{source}: aedfw metadata model_hash {meta.model_hash[:16]} does not match the "
            f"graph ({actual[:16]}); the model was changed after quantisation"
        )
    return meta


def check_model(path: str | os.PathLike):
    """Read a .tflite's metadata and check every field that describes the graph against it.

    Run before any artifact is written, so a hand-edited or mismatched metadata field is named
    up front instead of surfacing as a crash, a numpy or TFLite error, or a silently wrong
    package: I/O shapes (``window_frames``, ``frontend.n_mels``, one output per label), I/O
    quantisation, the front end's int8 format against the model input (DESIGN contract 2),
    ``thresholds_q`` against ``thresholds`` and ``arena_bytes`` against the TFLM runtime.

    Returns
    -------
    (ModelMetadata, bytes, quantize.convert.GraphInfo)
        The metadata, the file's bytes and :func:`~quantize.convert.check_graph` of it.

    Raises
    ------
    MetadataError
        A field that does not fit the graph, naming the file, the field and both values.
    quantize.tflite_model.GraphError
        The graph itself is refused (see :func:`~quantize.convert.check_graph`).
    """
    from quantize.convert import check_graph, check_io
    from quantize.runtime import ARENA_FLOOR, runs_with_arena
    from quantize.tasks import task_of
    from quantize.tflite_model import GraphError, read_tflite

    meta = read_metadata(path)
    tflite, source = Path(path).read_bytes(), str(path)
    info = check_graph(tflite, source)
    problems = []
    want_in = (1, meta.window_frames, meta.frontend.n_mels, 1)
    if tuple(info.input_shape) != want_in:
        problems.append(
            f"window_frames {meta.window_frames} and frontend.n_mels {meta.frontend.n_mels} "
            f"give input {list(want_in)}, the model's input is {list(info.input_shape)}"
        )
    task = task_of(meta)
    outputs_problem = task.check_outputs(meta, tuple(info.output_shape))
    if outputs_problem:
        problems.append(outputs_problem)
    if not 0 < meta.window_hop_frames:
        problems.append(f"window_hop_frames {meta.window_hop_frames}: must be > 0")
    for name in ("input_scale", "input_zero_point", "output_scale", "output_zero_point"):
        mine, graph = getattr(meta, name), getattr(info, name)
        if mine != graph:
            problems.append(f"{name}: metadata {mine!r}, model {graph!r}")
    try:
        check_io(info, meta.frontend, source)
    except GraphError as exc:
        problems.append(str(exc).removeprefix(f"{source}: "))
    want_q = task.thresholds_q(meta, info)
    if meta.thresholds_q != want_q:
        problems.append(
            f"thresholds_q {list(meta.thresholds_q)} do not quantise thresholds "
            f"{list(meta.thresholds)} (expected {list(want_q)})"
        )
    if not problems:  # the arena is only worth probing on a graph that matches
        largest = max(t.size for t in read_tflite(tflite).tensors if t.data is None)
        # below the floor the tflite_micro runtime segfaults instead of reporting failure
        if meta.arena_bytes < max(largest, ARENA_FLOOR) or not runs_with_arena(
            tflite, meta.arena_bytes
        ):
            problems.append(
                f"arena_bytes {meta.arena_bytes}: the TFLM runtime cannot run the model with "
                "it (re-run `aedfw quantize` to measure it)"
            )
    if problems:
        raise MetadataError(
            f"{source}: aedfw metadata does not match the model: " + "; ".join(problems)
        )
    return meta, tflite, info
