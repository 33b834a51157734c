"""Static activation plan of the C engine: where each buffer lives in the one arena.

Buffers are placed by a greedy first fit over their live ranges, trying several orders; an op
that streams through its input may write its output over the part it has finished reading
(the minimum distance, its lag, comes from the kernel).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantize.tflite_model import TFLiteModel

if TYPE_CHECKING:
    from firmware_gen.engine import Kernel


@dataclass
class MemoryPlan:
    """Where each activation tensor lives.

    Attributes
    ----------
    location : dict
        Tensor index -> ``("in", 0)``, ``("out", 0)`` or ``("arena", offset)``.
    arena_bytes : int
        Size of the static arena.
    copies : set of int
        Ops (RESHAPE) that must copy instead of aliasing.
    """

    location: dict[int, tuple[str, int]]
    arena_bytes: int
    copies: set[int]


def _first_fit(
    order: list[int],
    size: dict[int, int],
    live: dict[int, tuple[int, int]],
    lag: dict[tuple[int, int], int],
) -> tuple[dict[int, int], int]:
    """Greedy placement: each buffer at the lowest offset its placed neighbours allow."""
    offset: dict[int, int] = {}
    for x in order:
        forbidden = []
        for y, oy in offset.items():
            if live[x][1] < live[y][0] or live[y][1] < live[x][0]:
                continue
            lo, hi = oy - size[x], oy + size[y]  # open interval of forbidden offsets
            if (x, y) in lag:  # x is written over its dying input y, trailing by the lag
                lo = oy - min(lag[(x, y)], size[x])
            elif (y, x) in lag:
                hi = oy + min(lag[(y, x)], size[y])
            if lo < hi:
                forbidden.append((lo, hi))
        candidates = sorted({0, *(hi for _, hi in forbidden if hi > 0)})
        offset[x] = next(c for c in candidates if all(not lo < c < hi for lo, hi in forbidden))
    return offset, max((offset[b] + size[b] for b in offset), default=0)


def plan_memory(model: TFLiteModel, kernels: list[Kernel], tries: int = 64) -> MemoryPlan:
    """Static activation plan (see the module docstring); deterministic.

    Parameters
    ----------
    model : TFLiteModel
        The checked model.
    kernels : list of Kernel
        Its kernels, in op order.
    tries : int
        Random buffer orders tried besides the usual heuristics; the smallest arena wins.
    """
    t = model.tensors
    n_ops = len(kernels)
    # RESHAPE aliases its input unless that would make the graph input the output
    group = {i: i for i in range(len(t))}

    def find(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    copies = set()
    for k in kernels:
        if k.kind == "reshape":
            a, b = find(k.inputs[0]), find(k.output)
            ext = {find(model.inputs[0]), find(model.outputs[0])}
            if {a, b} == ext or (a in ext and b in ext):
                copies.add(k.op)
            else:
                group[b] = a
    g_in, g_out = find(model.inputs[0]), find(model.outputs[0])
    live: dict[int, list[int]] = {}
    for k in kernels:
        if k.kind == "reshape" and k.op not in copies:
            continue
        for i in [*k.inputs, k.output]:
            g = find(i)
            span = live.setdefault(g, [k.op, k.op])
            span[0], span[1] = min(span[0], k.op), max(span[1], k.op)
    live.setdefault(g_out, [n_ops, n_ops])[1] = n_ops
    size = {g: t[g].size for g in live}
    lag: dict[tuple[int, int], int] = {}
    for k in kernels:
        out_g = find(k.output)
        for i, lag_value in k.lag.items():
            in_g = find(i)
            if live[in_g][1] == k.op and in_g != out_g and in_g not in (g_in, g_out):
                lag[(out_g, in_g)] = lag_value
    bufs = sorted(g for g in live if g not in (g_in, g_out))
    spans = {g: tuple(live[g]) for g in bufs}
    orders = [
        sorted(bufs, key=lambda g: (-size[g], spans[g])),
        sorted(bufs, key=lambda g: (spans[g], -size[g])),
        sorted(bufs, key=lambda g: (-(spans[g][1] - spans[g][0]), -size[g], g)),
    ]
    rng = random.Random(0)
    for _ in range(tries):
        perm = bufs[:]
        rng.shuffle(perm)
        orders.append(perm)
    best = None
    for order in orders:
        offsets, total = _first_fit(order, size, spans, lag)
        if best is None or total < best[1]:
            best = (offsets, total)
    offsets, total = best if best else ({}, 0)
    location = {}
    for i in range(len(t)):
        g = find(i)
        if g == g_in:
            location[i] = ("in", 0)
        elif g == g_out:
            location[i] = ("out", 0)
        elif g in offsets:
            location[i] = ("arena", offsets[g])
    return MemoryPlan(location, total, copies)
