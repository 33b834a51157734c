"""The link-fault probe shared by the fault tests and ``benchmarks/reliability.py``: CLASSIFY
clips through a :class:`~host_tools.link.FaultyLink` and sort every answer into correct,
reported (the client raised) or wrong (accepted, but not the device's true answer)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import serial

from host_tools.device import Device, ProtocolError
from host_tools.link import FaultyLink
from host_tools.validate import compare, host_reference
from model_dev.datasets import load_dataset
from quantize.metadata import read_metadata


def references(model, data, n: int) -> tuple[list[np.ndarray], list, tuple[str, ...]]:
    """The first ``n`` clips of the manifest ``data``, their host references and the labels."""
    meta = read_metadata(model)
    ds = load_dataset("manifest", data)
    audios = [ds.load(i) for i in range(min(n, len(ds)))]
    return audios, host_reference(model.read_bytes(), meta, audios), meta.labels


def classify_through_faults(
    url: str, audios, refs, labels, *, seed: int, timeout: float = 0.05, **rates: float
) -> dict:
    """CLASSIFY every clip over ``url`` with the given per-byte fault ``rates`` (FaultyLink's
    ``drop``, ``corrupt``, ``duplicate``) in both directions.

    Returns
    -------
    dict
        ``clips``, ``correct``, ``reported`` (a ProtocolError: the client gave up and said
        so), ``wrong`` (an answer accepted that differs from the host reference), the faults
        ``injected`` by kind and the client's ``retransmissions``.
    """
    link = FaultyLink(serial.serial_for_url(url, timeout=0.01), seed=seed, **rates)
    outcome: Counter = Counter()
    dev = Device(link, timeout=timeout, retries=60, max_payload=64, hello=False)
    try:
        for audio, ref in zip(audios, refs, strict=True):
            try:
                if dev.info is None:
                    dev.hello()
                got = dev.classify(audio)
            except ProtocolError:
                outcome["reported"] += 1
                continue
            outcome["correct" if compare(ref, got, labels) is None else "wrong"] += 1
    finally:
        dev.close()
    return {
        "clips": len(audios),
        "correct": outcome["correct"],
        "reported": outcome["reported"],
        "wrong": outcome["wrong"],
        "injected": dict(link.injected),
        "retransmissions": dev.counters.retransmissions,
    }
