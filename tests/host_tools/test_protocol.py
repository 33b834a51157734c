"""The serial protocol (docs/protocol.md): codec, C <-> Python agreement, devices on a pty.

The device is the generated C protocol (aed_proto*.c) built for the host with ASan/UBSan and
served on a pseudo-terminal. Without a model it offers HELLO/FEATURES/BENCH/STATS/RESET; the
INFER/CLASSIFY tests pair it with a small position-sensitive test engine (written below, checked
against its numpy twin) and the package's real post-processing (aed_post), so window cutting,
padding and aggregation are checked against model_dev.arch exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tty
from pathlib import Path

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_gen.frontend_c import write_frontend
from firmware_gen.host_build import compile_host, package_includes
from firmware_gen.proto_c import PROTOCOL_VERSION as C_PROTOCOL_VERSION
from firmware_gen.proto_c import ProtoModel, hello_payload, write_proto
from firmware_gen.render import copy_source, write_if_changed, write_rendered
from host_tools.device import (
    Device,
    DeviceError,
    DeviceReset,
    DeviceTimeout,
    Hello,
    VersionMismatch,
)
from host_tools.link import FaultyLink
from host_tools.protocol import (
    OVERHEAD,
    PROTOCOL_VERSION,
    Command,
    DecodeError,
    DecodeKind,
    Frame,
    FrameDecoder,
    Status,
    cobs_decode,
    cobs_encode,
    crc32,
    encode_frame,
)
from model_dev.arch import clip_windows, window_starts
from model_dev.frontend import Frontend, FrontendConfig

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

CFG = FrontendConfig()
#: Test-only harnesses (the device itself is the package's shipped host port).
HARNESSES = Path(__file__).parent / "c"
frames_st = st.builds(
    Frame,
    code=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=700),
    status=st.integers(0, 255),
    flags=st.integers(0, 255),
    version=st.integers(0, 255),
)


# -- the codec on its own ------------------------------------------------------------------
def test_crc_test_vector_and_versions():
    assert crc32(b"123456789") == 0xCBF43926
    assert PROTOCOL_VERSION == C_PROTOCOL_VERSION


def test_cobs_known_vectors():
    assert cobs_encode(b"") == b"\x01"
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    data = bytes(range(1, 255))  # 254 non-zero bytes: a full block, then an empty one
    assert cobs_encode(data) == b"\xff" + data + b"\x01"
    assert cobs_decode(b"\x03\x11", 100) == (b"\x11", DecodeKind.COBS)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_cobs_round_trip(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded and len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded, len(data)) == (data, None)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(frames_st, max_size=5), cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_frames_round_trip_in_any_chunking(frames, cuts):
    wire = b"".join(encode_frame(f) for f in frames)
    decoder, events = FrameDecoder(), []
    for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(wire)], strict=True):
        events += decoder.feed(wire[a:b])
    assert events == frames


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=600), frame=frames_st)
def test_resync_after_garbage(garbage, frame):
    decoder = FrameDecoder(max_payload=512)
    events = decoder.feed(garbage + encode_frame(frame))
    valid = [e for e in events if isinstance(e, Frame)]
    if len(frame.payload) <= 512:
        assert valid[-1] == frame  # the leading delimiter cuts the garbage off
    assert len(decoder._buf) == 0


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=3000), limit=st.integers(0, 600))
def test_decoder_never_crashes_and_stays_bounded(data, limit):
    decoder = FrameDecoder(max_payload=limit)
    for event in decoder.feed(data):
        if isinstance(event, Frame):
            assert len(event.payload) <= limit
            assert encode_frame(event) in b"\x00" + data + b"\x00"
        else:
            assert isinstance(event, DecodeError)
    assert len(decoder._buf) <= decoder._keep


def test_decode_error_kinds():
    good = encode_frame(Frame(1, 7, b"abc"))
    assert FrameDecoder().feed(good) == [Frame(1, 7, b"abc")]
    body = bytearray(cobs_decode(good[1:-1], 1000)[0])
    flipped = bytes(body[:9]) + bytes([body[9] ^ 4]) + bytes(body[10:])
    kinds = {
        DecodeKind.CRC: b"\x00" + cobs_encode(flipped) + b"\x00",
        DecodeKind.SHORT: b"\x00" + cobs_encode(b"short") + b"\x00",
        DecodeKind.COBS: b"\x00\x09ab\x00",
        DecodeKind.TOO_LONG: encode_frame(Frame(1, 7, bytes(40))),
    }
    for kind, wire in kinds.items():
        (event,) = FrameDecoder(max_payload=32).feed(wire)
        assert isinstance(event, DecodeError) and event.kind == kind, kind
    bad_len = bytearray(body)
    bad_len[6] = 9  # length field 9 with a 3-byte payload; CRC recomputed
    bad_len[-4:] = crc32(bytes(bad_len[:-4])).to_bytes(4, "little")
    (event,) = FrameDecoder().feed(b"\x00" + cobs_encode(bytes(bad_len)) + b"\x00")
    assert event.kind == DecodeKind.LENGTH and event.seq == 7


# -- the C codec agrees with the Python one ------------------------------------------------------
@pytest.fixture(scope="module")
def codec_cli(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("codec")
    write_proto(build, CFG, max_payload=512)
    return compile_host(
        [build / "aed/src/aed_proto_frame.c", HARNESSES / "proto_codec_cli.c"],
        build / "codec",
        sanitize=True,
        include=package_includes(build),
    )


def _c_decode(exe: Path, data: bytes) -> list[tuple]:
    out = subprocess.run([str(exe), "decode"], input=data, capture_output=True, check=True)
    events = []
    for line in out.stdout.decode().splitlines():
        parts = line.split()
        if parts[0] == "OK":
            v, code, status, flags, seq, _, _ = map(int, parts[1:8])
            payload = bytes.fromhex(parts[8]) if len(parts) > 8 else b""
            events.append(("ok", Frame(code, seq, payload, status, flags, v)))
        else:
            events.append((parts[1], None if parts[2] == "65535" else int(parts[2])))
    return events


def _py_decode(data: bytes, max_payload: int = 512) -> list[tuple]:
    events = []
    for e in FrameDecoder(max_payload).feed(data):
        if isinstance(e, Frame):
            events.append(("ok", e))
        else:
            events.append((e.kind.value, e.seq))
    return events


def _random_wire(rng: np.random.Generator, n_frames: int) -> tuple[list[Frame], bytes]:
    frames = []
    for _ in range(n_frames):
        size = int(rng.choice([0, 1, 253, 254, 255, 508, 512, rng.integers(0, 513)]))
        zeros = rng.random() < 0.5
        payload = rng.integers(0, 3 if zeros else 256, size, dtype=np.uint8).tobytes()
        frames.append(
            Frame(*map(int, rng.integers(0, 256, 1)), int(rng.integers(0, 65536)), payload,
                  *map(int, rng.integers(0, 256, 2)))
        )  # fmt: skip
    return frames, b"".join(encode_frame(f) for f in frames)


def test_python_encoder_to_c_decoder(codec_cli):
    frames, wire = _random_wire(np.random.default_rng(1), 300)
    assert [f for _, f in _c_decode(codec_cli, wire)] == frames


def test_c_encoder_to_python_decoder(codec_cli):
    frames, expected = _random_wire(np.random.default_rng(2), 300)
    records = b"".join(
        bytes([f.code, f.status, f.flags]) + f.seq.to_bytes(2, "little")
        + len(f.payload).to_bytes(2, "little") + f.payload
        for f in frames
    )  # fmt: skip
    out = subprocess.run([str(codec_cli), "encode"], input=records, capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected  # byte-identical encoders
    assert FrameDecoder().feed(out.stdout) == frames


def test_decoders_agree_on_damaged_streams(codec_cli):
    """Random damage (flips, drops, zeros, overlong runs): identical events, C and Python."""
    rng = np.random.default_rng(3)
    _, wire = _random_wire(rng, 400)
    arr = np.frombuffer(wire, np.uint8).copy()
    hit = rng.random(len(arr)) < 0.002
    arr[hit] ^= rng.integers(1, 256, int(hit.sum()), dtype=np.uint8)
    arr[rng.random(len(arr)) < 0.0005] = 0
    keep = rng.random(len(arr)) > 0.0005
    noise = rng.integers(1, 256, 3000, dtype=np.uint8).tobytes()  # an overlong frame
    data = arr[keep].tobytes() + noise + b"\x00\x02\x01\x00" + rng.bytes(20000)
    c_events, py_events = _c_decode(codec_cli, data), _py_decode(data)
    assert c_events == py_events
    kinds = {k for k, _ in py_events}
    assert {"ok", "crc", "too_long", "cobs", "short"} <= kinds


# -- a device on a pseudo-terminal ---------------------------------------------------------------
def _build_device(build: Path, model: ProtoModel | None, max_payload: int = 512) -> Path:
    sources = write_frontend(CFG, build) + write_proto(build, CFG, model, max_payload=max_payload)
    if model is not None:
        sources += _write_test_model(build, model)
    sources.append(copy_source("port/host/aed_platform_host.c", build))
    sources.append(copy_source("aed/include/aed_platform.h", build))
    c_files = [p for p in sources if p.suffix == ".c"] + [HARNESSES / "proto_device.c"]
    return compile_host(c_files, build / "device", sanitize=True, include=package_includes(build))


@contextlib.contextmanager
def serve(exe: Path):
    """Run ``exe`` with its stdin/stdout on a pty master; yields the slave's path (the port)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    proc = subprocess.Popen([str(exe)], stdin=master, stdout=master)
    try:
        yield os.ttyname(slave)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
        os.close(slave)


@pytest.fixture(scope="module")
def device_exe(tmp_path_factory) -> Path:
    return _build_device(tmp_path_factory.mktemp("dev"), None)


@pytest.fixture()
def port(device_exe):
    with serve(device_exe) as path:
        yield path


def _clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    noise = (rng.standard_normal(16000) * 4000).astype(np.int16)
    return {
        "empty": np.zeros(0, np.int16),
        "short": noise[:399],
        "one_frame": noise[:400],
        "ragged": noise[:5123],
        "one_second": noise,
        "extremes": np.tile(np.array([32767, -32768], np.int16), 3000),
    }


def test_hello_features_stats_bench_reset_over_pty(port):
    with Device(port, timeout=2.0) as dev:
        assert dev.info == Hello.parse(hello_payload(CFG, None), was_reset=True)
        assert dev.info.frontend_hash == CFG.hash and dev.info.capabilities == {
            "features",
            "bench",
        }
        reference = Frontend(CFG)
        for name, clip in _clips().items():
            assert np.array_equal(dev.features(clip), reference(clip)), name
        stats = dev.stats()
        assert stats.fe_frames == sum(CFG.n_frames(len(c)) for c in _clips().values())
        assert stats.rx_errors == stats.duplicates == 0 and stats.stack_used is None
        bench = dev.bench(20, 2, target="frontend")
        assert bench.n == 20 and 0 < bench.min <= bench.mean <= bench.max
        with pytest.raises(DeviceError, match=r"BENCH \(seq \d+\): device answered UNSUPPORTED"):
            dev.bench(5, 0, target="model")
        with pytest.raises(DeviceError, match="UNSUPPORTED"):
            dev.request(Command.INFER, bytes(8))
        hello = dev.reset()
        assert hello.was_reset and dev.stats().fe_frames == 0
        assert dev.hello().was_reset is False


def test_device_errors_name_command_and_status(port):
    with Device(port) as dev:
        with pytest.raises(DeviceError, match=r"FEATURES .*BAD_STATE.*start flag"):
            dev.request(Command.FEATURES, bytes([0, 0, 1, 0]))  # continuation without a stream
        with pytest.raises(DeviceError, match="BAD_LENGTH"):
            dev.request(Command.FEATURES, bytes([1, 0, 1]))  # odd byte count
        with pytest.raises(DeviceError, match="UNKNOWN_COMMAND"):
            dev.request(0x55)
        assert dev.features(np.zeros(400, np.int16)).shape == (1, CFG.n_mels)


def test_duplicate_seq_is_answered_without_re_executing(port):
    clip = _clips()["one_second"]
    with Device(port) as dev:
        first = bytes([1, 0]) + clip[:255].tobytes()  # starts a stream: 255 samples, no row yet
        wire = encode_frame(Frame(Command.FEATURES, 1000, first))
        answers = []
        for _ in range(3):
            dev.port.write(wire)
            answers.append(dev._await(Command.FEATURES, 1000, _deadline(), _counter()))
        assert answers[0] == answers[1] == answers[2] and answers[0].status == Status.OK
        assert dev.stats().duplicates == 2
        rest = clip[255:]
        frame = dev.request(Command.FEATURES, bytes([0, 0]) + rest[:255].tobytes())
        expected = Frontend(CFG)(clip[:510])  # one stream: the duplicates did not feed it again
        assert frame.payload == len(expected).to_bytes(2, "little") + expected.tobytes()


def _deadline(seconds: float = 2.0) -> float:
    import time

    return time.monotonic() + seconds


def _counter():
    from collections import Counter

    return Counter()


def test_device_reset_mid_stream_is_detected(port):
    clip = _clips()["one_second"]
    with Device(port) as dev:
        dev.request(Command.FEATURES, bytes([1, 0]) + clip[:200].tobytes())
        with Device(port, hello=False) as other:  # someone else resets the board
            other.request(Command.RESET)
        with pytest.raises(DeviceReset, match=r"FEATURES \(seq \d+\): the device was reset"):
            dev.request(Command.FEATURES, bytes([0, 0]) + clip[200:400].tobytes())
        dev.hello()
        assert np.array_equal(dev.features(clip), Frontend(CFG)(clip))


def test_bad_version_is_refused_both_ways(port):
    with Device(port) as dev:
        dev.port.write(encode_frame(Frame(Command.HELLO, 77, version=PROTOCOL_VERSION + 1)))
        answer = dev._await(Command.HELLO, 77, _deadline(), _counter())
        assert answer.status == Status.BAD_VERSION and answer.version == PROTOCOL_VERSION
    loop = serial.serial_for_url("loop://", timeout=0.01)
    with Device(loop, hello=False, timeout=0.5) as dev:
        seq = (dev._seq + 1) & 0xFFFF
        loop.write(encode_frame(Frame(0x81, seq, b"\x02", version=PROTOCOL_VERSION + 1)))
        with pytest.raises(VersionMismatch, match=r"HELLO \(seq \d+\): device speaks protocol v2"):
            dev.hello()


def test_timeout_after_retries_over_loop_url():
    with pytest.raises(DeviceTimeout) as err:
        Device("loop://", timeout=0.05, retries=2)
    message = str(err.value)
    assert "HELLO (seq" in message and "after 3 attempts" in message
    assert "echoed requests" in message  # loop:// hands the host its own requests back


def test_frames_over_loop_url_with_faults_never_accept_damage():
    """Frames through loop:// and 1% corrupted bytes: every accepted frame is one that was sent."""
    link = FaultyLink(serial.serial_for_url("loop://", timeout=0.01), corrupt=0.01, seed=5)
    rng = np.random.default_rng(5)
    sent = [Frame(3, i, rng.bytes(int(rng.integers(0, 300)))) for i in range(300)]
    decoder, got = FrameDecoder(), []
    for frame in sent:
        link.write(encode_frame(frame))
        while link.in_waiting:
            got += decoder.feed(link.read(link.in_waiting))
    ok = [e for e in got if isinstance(e, Frame)]
    assert link.injected["corrupt"] > 500 and 10 < len(ok) < len(sent)
    assert all(f == sent[f.seq] for f in ok)


@pytest.mark.parametrize(
    "faults",
    [{"corrupt": 0.01}, {"drop": 0.005, "duplicate": 0.005}],
    ids=["corrupt-1pct", "drop-dup"],
)
def test_fault_injection_results_stay_correct(port, faults):
    link = FaultyLink(serial.serial_for_url(port, timeout=0.01), seed=11, **faults)
    clips = [c for name, c in _clips().items() if name != "extremes"]
    reference = Frontend(CFG)
    with Device(link, timeout=0.1, retries=30, max_payload=64) as dev:
        for clip in clips:
            assert np.array_equal(dev.features(clip[:3000]), reference(clip[:3000]))
        assert dev.hello().frontend_hash == CFG.hash
        assert dev.counters.requests > 200
        assert dev.counters.retransmissions > 10
    assert sum(link.injected.values()) > 50


# -- INFER / CLASSIFY with a test engine and the package's post-processing ---------------------
TEST_MODEL = ProtoModel(
    model_hash="ab" * 32,
    labels=("engine", "siren", "dog"),
    thresholds_q=(-20, 5, 128),
    window_frames=8,
    window_hop_frames=3,
)

TEST_MODEL_H = """/* Test engine for the protocol tests: position-sensitive, integer. */
#ifndef AED_MODEL_H
#define AED_MODEL_H
#include <stdint.h>
#define AED_MODEL_IN_FRAMES {frames}
#define AED_MODEL_IN_MELS {mels}
#define AED_MODEL_N_CLASSES {classes}
#define AED_MODEL_ACTIVATION_BYTES 0
void aed_model_run(const int8_t *in, int8_t *out);
#endif
"""

TEST_MODEL_C = """#include "aed_model.h"
void aed_model_run(const int8_t *in, int8_t *out)
{
    int c, t, m;
    for (c = 0; c < AED_MODEL_N_CLASSES; c++) {
        int32_t acc = 0;
        for (t = 0; t < AED_MODEL_IN_FRAMES; t++) {
            for (m = 0; m < AED_MODEL_IN_MELS; m++) {
                acc += in[t * AED_MODEL_IN_MELS + m] * ((7 * t + 3 * m + 11 * c) % 5 - 2);
            }
        }
        acc >>= 4;
        out[c] = (int8_t)(acc > 127 ? 127 : acc < -128 ? -128 : acc);
    }
}
"""


def toy_engine(windows: np.ndarray, n_out: int) -> np.ndarray:
    """numpy twin of TEST_MODEL_C: [n, frames, mels] int8 -> [n, n_out] int8."""
    t, m, c = np.ogrid[: windows.shape[1], : windows.shape[2], :n_out]
    weights = (7 * t + 3 * m + 11 * c) % 5 - 2
    acc = np.einsum("ntm,tmc->nc", windows.astype(np.int64), weights) >> 4
    return np.clip(acc, -128, 127).astype(np.int8)


def toy_scores(windows: np.ndarray) -> np.ndarray:
    """The test engine's class scores: [n, frames, mels] int8 -> [n, classes] int8."""
    return toy_engine(windows, len(TEST_MODEL.labels))


def _write_test_engine(build: Path, model: ProtoModel, n_out: int, **config) -> None:
    """TEST_MODEL_C with ``n_out`` outputs, and aed_config.h from the model plus ``config``
    (the task's own keys)."""
    files = {
        "aed/include/aed_model.h": TEST_MODEL_H.format(
            frames=model.window_frames, mels=CFG.n_mels, classes=n_out
        ),
        "aed/src/aed_model.c": TEST_MODEL_C,
    }
    for name, text in files.items():
        (build / name).parent.mkdir(parents=True, exist_ok=True)
        write_if_changed(build / name, text)
    context = {
        "labels": model.labels,
        "thresholds_q": model.thresholds_q,
        "model_hash": model.model_hash,
        "frontend_hash": CFG.hash,
        "window_frames": model.window_frames,
        "hop_frames": model.window_hop_frames,
        "n_golden": 0,
    }
    write_rendered(build, "aed/include/aed_config.h", {"test": "protocol"}, **context, **config)


def _write_test_model(build: Path, model: ProtoModel) -> list[Path]:
    n = len(model.labels)
    _write_test_engine(
        build, model, n, thresholds=(0.5,) * n, output_scale="0.00390625", output_zero_point=-128,
        task="tagging", score="probability",
        task_defines={},  # tagging's device-side post-processing needs no constants
    )  # fmt: skip
    copy_source("aed/include/aed_post.h", build)
    return [build / "aed/src/aed_model.c", copy_source("aed/src/aed_post.c", build)]


@pytest.fixture(scope="module")
def model_exe(tmp_path_factory) -> Path:
    return _build_device(tmp_path_factory.mktemp("model"), TEST_MODEL, max_payload=200)


def _expected_clip(audio: np.ndarray) -> dict:
    features = Frontend(CFG)(audio)
    w, h = TEST_MODEL.window_frames, TEST_MODEL.window_hop_frames
    scores = toy_scores(clip_windows(features, w, h))
    clip = scores.max(axis=0)
    return {
        "features": features,
        "starts": window_starts(len(features), w, h),
        "scores": scores,
        "clip": clip,
        "decisions": clip >= np.array(TEST_MODEL.thresholds_q),
    }


def test_infer_and_classify_match_model_dev_windowing(model_exe):
    rng = np.random.default_rng(6)
    lengths = [0, 399, 400, 400 + 6 * 160, 400 + 7 * 160, 400 + 8 * 160, 400 + 9 * 160, 9000]
    with serve(model_exe) as path, Device(path, timeout=2.0) as dev:
        info = dev.info
        assert info.capabilities == {"features", "infer", "classify", "bench"}
        assert (info.in_frames, info.in_mels, info.n_classes) == (8, CFG.n_mels, 3)
        assert info.labels == TEST_MODEL.labels and info.thresholds_q == TEST_MODEL.thresholds_q
        assert info.model_hash == TEST_MODEL.model_hash and info.max_payload == 200
        window = rng.integers(-128, 128, (8, CFG.n_mels), dtype=np.int8)
        result = dev.infer(window)
        assert np.array_equal(result.scores, toy_scores(window[None])[0])
        with pytest.raises(ValueError, match=r"int8 \[8, 40\]"):
            dev.infer(window[:7])
        for n in lengths:
            audio = (rng.standard_normal(n) * 3000).astype(np.int16)
            got, want = dev.classify(audio), _expected_clip(audio)
            assert np.array_equal(got.features, want["features"]), n
            assert got.window_starts.tolist() == want["starts"], n
            assert np.array_equal(got.window_scores, want["scores"]), n
            assert np.array_equal(got.clip_scores, want["clip"]), n
            assert np.array_equal(got.decisions, want["decisions"]), n
            assert got.n_frames == len(want["features"]) and got.n_windows == len(want["starts"])
            lean = dev.classify(audio, features=False, windows=False)
            assert lean.features.shape == (0, CFG.n_mels) and len(lean.window_starts) == 0
            assert np.array_equal(lean.clip_scores, want["clip"]), n
        bench = dev.bench(10, 1, window=window)
        assert bench.target == "model" and bench.min > 0
        stats = dev.stats()
        assert stats.model_runs > 20 and stats.model_cycles_max > 0
        with pytest.raises(DeviceError, match="CLASSIFY .*BAD_STATE"):
            dev.request(Command.CLASSIFY, bytes([0, 0]))


def test_classify_survives_corruption(model_exe):
    rng = np.random.default_rng(7)
    with serve(model_exe) as path:
        link = FaultyLink(serial.serial_for_url(path, timeout=0.01), corrupt=0.01, seed=8)
        with Device(link, timeout=0.1, retries=100, max_payload=96) as dev:
            for n in (300, 2000, 4000):
                audio = (rng.standard_normal(n) * 3000).astype(np.int16)
                got, want = dev.classify(audio), _expected_clip(audio)
                assert np.array_equal(got.features, want["features"])
                assert np.array_equal(got.window_scores, want["scores"])
                assert np.array_equal(got.clip_scores, want["clip"])
            assert dev.counters.retransmissions > 0


def test_write_proto_is_deterministic_and_checks_inputs(tmp_path):
    a = [p.read_bytes() for p in write_proto(tmp_path / "a", CFG, TEST_MODEL)]
    b = [p.read_bytes() for p in write_proto(tmp_path / "b", CFG, TEST_MODEL)]
    assert a == b and a[0].startswith(b"/*\n * Generated by")
    with pytest.raises(ValueError, match="max_payload"):
        write_proto(tmp_path, CFG, max_payload=32)
    with pytest.raises(ValueError, match="HELLO needs"):
        write_proto(tmp_path, CFG, TEST_MODEL, max_payload=64)
    with pytest.raises(ValueError, match="model_hash"):
        hello_payload(CFG, ProtoModel("xyz", ("a",), (0,), 8, 3))
    labels = sum(1 + len(s) for s in TEST_MODEL.labels)
    assert len(hello_payload(CFG, TEST_MODEL)) == 90 + 2 * 3 + labels
    assert OVERHEAD == 12


ANOMALY_MODEL = ProtoModel(
    model_hash="cd" * 32,
    labels=("anomalous",),
    thresholds_q=(3_000_000_000,),  # u32 score units: beyond int16 and int32
    window_frames=5,
    window_hop_frames=1,
    task="anomaly",
    method="dense_ae",
    machine_type="fan",
    score="reconstruction_sse",
)


def test_anomaly_hello_round_trip_and_checks(tmp_path):
    """An anomaly device's HELLO: capability bit 4, a u32 threshold, method, machine type and
    score after the label; a tagging HELLO is byte for byte what it was."""
    payload = hello_payload(CFG, ANOMALY_MODEL)
    tail = b"".join(bytes([len(s)]) + s.encode() for s in ("anomalous", "dense_ae", "fan"))
    tail += bytes([18]) + b"reconstruction_sse"
    assert payload[90:] == (3_000_000_000).to_bytes(4, "little") + tail + b"\x00"  # no IDs
    assert payload[6] == 0x1F and payload[22] == 1  # capabilities; n_classes (the window score)
    hello = Hello.parse(payload)
    assert (hello.task, hello.method, hello.machine_type, hello.score) == (
        "anomaly", "dense_ae", "fan", "reconstruction_sse",
    )  # fmt: skip
    assert hello.anomaly and "anomaly" in hello.capabilities
    assert hello.thresholds_q == (3_000_000_000,) and hello.labels == ("anomalous",)
    assert hello.machine_ids == ()
    ids = dataclasses.replace(ANOMALY_MODEL, method="id_classifier", machine_ids=("id_00", "id_04"))
    assert Hello.parse(hello_payload(CFG, ids)).machine_ids == ("id_00", "id_04")
    assert hello_payload(CFG, ids).endswith(b"\x02\x05id_00\x05id_04")
    tagging = Hello.parse(hello_payload(CFG, TEST_MODEL))
    assert tagging.task == "tagging" and not tagging.anomaly and tagging.method == ""
    assert hello_payload(CFG, TEST_MODEL)[6] == 0x0F  # no anomaly bit
    with pytest.raises(ValueError, match="ends inside machine type"):
        Hello.parse(payload[:-22])  # label and method whole, the machine type cut
    with pytest.raises(ValueError, match="threshold of 0..2"):
        write_proto(tmp_path, CFG, dataclasses.replace(ANOMALY_MODEL, thresholds_q=(2**32,)))
    with pytest.raises(ValueError, match="one score"):
        write_proto(
            tmp_path,
            CFG,
            dataclasses.replace(ANOMALY_MODEL, labels=("a", "b"), thresholds_q=(1, 2)),
        )
    with pytest.raises(ValueError, match="machine_type ''"):
        hello_payload(CFG, dataclasses.replace(ANOMALY_MODEL, machine_type=""))
    config = write_proto(tmp_path, CFG, ANOMALY_MODEL)[0].read_text()
    assert "#define AED_PROTO_TASK_ANOMALY 1" in config
    assert (
        "#define AED_PROTO_TASK_ANOMALY 0" in write_proto(tmp_path, CFG, TEST_MODEL)[0].read_text()
    )


# -- an anomaly device: the test engine reconstructs its window, aed_anomaly.c scores it --------
def _write_anomaly_test_model(build: Path, model: ProtoModel) -> list[Path]:
    """The test engine with one output per window value (an "autoencoder"), the anomaly
    configuration (input and output scale 1, zero points 0) and the package's aed_anomaly."""
    from types import SimpleNamespace

    from firmware_gen.package import TASK_SOURCES, _anomaly_defines, _c_value

    n_out = model.window_frames * CFG.n_mels
    meta = SimpleNamespace(
        method=model.method, machine_type=model.machine_type, thresholds_q=model.thresholds_q,
        input_scale=1.0, input_zero_point=0, output_scale=1.0, output_zero_point=0, frontend=CFG,
    )  # fmt: skip
    defines = _anomaly_defines(meta, (1, n_out))
    _write_test_engine(
        build, model, n_out, thresholds=(1.0,), output_scale="1.0", output_zero_point=0,
        task="anomaly", score=model.score,
        task_defines={k: _c_value(v) for k, v in defines.items()},
    )  # fmt: skip
    copied = [copy_source(name, build) for name in TASK_SOURCES["anomaly"]]
    return [build / "aed/src/aed_model.c", *(p for p in copied if p.suffix == ".c")]


def toy_reconstruction(windows: np.ndarray) -> np.ndarray:
    """The test engine with one output per window value: [n, frames * mels] int8."""
    return toy_engine(windows, windows.shape[1] * windows.shape[2])


ANOMALY_CLIPS = [0, 399, 400, 400 + 3 * 160, 400 + 4 * 160, 400 + 5 * 160, 9000]


@pytest.fixture(scope="module")
def anomaly_exe(tmp_path_factory) -> Path:
    """The anomaly device with its threshold at the floor of one clip's mean (the edge)."""
    from quantize.anomaly import integer_window_scores

    audio = (np.random.default_rng(9).standard_normal(9000) * 3000).astype(np.int16)
    windows = clip_windows(Frontend(CFG)(audio), 5, 1)
    scores = integer_window_scores(windows, toy_reconstruction(windows), (1.0, 0, 1.0, 0))
    threshold = int(scores.sum()) // len(scores)  # the largest threshold this clip reaches
    model = dataclasses.replace(ANOMALY_MODEL, thresholds_q=(threshold,))
    build = tmp_path_factory.mktemp("anomaly")
    sources = write_frontend(CFG, build) + write_proto(build, CFG, model, max_payload=200)
    sources += _write_anomaly_test_model(build, model)
    sources.append(copy_source("port/host/aed_platform_host.c", build))
    sources.append(copy_source("aed/include/aed_platform.h", build))
    c_files = [p for p in sources if p.suffix == ".c"] + [HARNESSES / "proto_device.c"]
    exe = compile_host(c_files, build / "device", sanitize=True, include=package_includes(build))
    return exe, threshold, audio


def test_anomaly_device_window_scores_clip_mean_and_decision(anomaly_exe):
    """u32 window scores, the exact (sum, windows) and the decision at the threshold's edge,
    with the model_dev windowing (short, exact, ragged clips), byte for byte."""
    from quantize.anomaly import integer_window_scores

    exe, threshold, edge = anomaly_exe
    rng = np.random.default_rng(10)
    with serve(exe) as path, Device(path, timeout=2.0) as dev:
        assert dev.info.anomaly and dev.info.thresholds_q == (threshold,)
        assert dev.info.max_payload == 200 and dev.info.n_classes == 1
        for n in [*ANOMALY_CLIPS, -1]:
            audio = edge if n == -1 else (rng.standard_normal(n) * 3000).astype(np.int16)
            features = Frontend(CFG)(audio)
            windows = clip_windows(features, 5, 1)
            want = integer_window_scores(windows, toy_reconstruction(windows), (1.0, 0, 1.0, 0))
            got = dev.classify(audio)
            assert np.array_equal(got.features, features), n
            assert got.window_starts.tolist() == window_starts(len(features), 5, 1), n
            assert got.window_scores.dtype == np.uint32 and got.window_scores.shape == (
                len(want),
                1,
            )
            assert got.window_scores[:, 0].tolist() == want.tolist(), n
            assert got.clip_scores.tolist() == [int(want.sum()), len(want)], n
            fired = int(want.sum()) >= threshold * len(want)
            assert got.decisions.tolist() == [fired], n
            if n == -1:  # the edge: fires, and would not one score unit higher
                assert fired and int(want.sum()) < (threshold + 1) * len(want)
            lean = dev.classify(audio, features=False, windows=False)
            assert lean.clip_scores.tolist() == got.clip_scores.tolist()
        assert dev.infer(windows[0]).scores.tolist() == [want[0]]
        with pytest.raises(DeviceError, match="MACHINE_ID .*UNSUPPORTED"):
            dev.request(Command.MACHINE_ID, b"\x01")  # the autoencoder's score uses none


def test_anomaly_device_survives_corruption(anomaly_exe):
    from quantize.anomaly import integer_window_scores

    exe, _, _ = anomaly_exe
    rng = np.random.default_rng(11)
    with serve(exe) as path:
        link = FaultyLink(serial.serial_for_url(path, timeout=0.01), corrupt=0.005, seed=12)
        with Device(link, timeout=0.1, retries=100, max_payload=120) as dev:
            for n in (300, 2000, 4000):
                audio = (rng.standard_normal(n) * 3000).astype(np.int16)
                windows = clip_windows(Frontend(CFG)(audio), 5, 1)
                want = integer_window_scores(windows, toy_reconstruction(windows), (1.0, 0, 1.0, 0))
                got = dev.classify(audio)
                assert got.window_scores[:, 0].tolist() == want.tolist()
                assert got.clip_scores.tolist() == [int(want.sum()), len(want)]
            assert dev.counters.retransmissions > 0
