"""A chip, as the energy model sees it: energy per operation, a memory whose energy per
byte depends on its size, and the widths of the data it stores.

Memory: ``memory`` holds points ``(capacity_bytes, pJ_per_byte)``. ``smallest``: data of
``M`` bytes live in the smallest memory that holds them (the largest one holds anything
bigger) and each byte accessed costs that memory's price. ``interpolate``: the price is
piecewise linear in ``M`` through the points, constant outside them (Lemaire et al. as
SpikingJelly implements it). No points: memory costs nothing (compute-only models).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

from pseudosnn.errors import PseudoSNNError

MemoryMode = Literal["smallest", "interpolate"]
BIT_FIELDS = ("weight_bits", "state_bits", "event_bits", "activation_bits")


class EnergyModelError(PseudoSNNError, ValueError):
    """An energy model with a missing, unknown, negative or non-finite field."""


@dataclass(frozen=True)
class EnergyModel:
    """Energies in pJ. Compute: ``add_pj`` per accumulate (one per SOP unless ``sop_pj``),
    an encoder or ANN MAC costs ``mult_pj + add_pj``; per active neuron update
    ``update_pj``, per idle one ``idle_update_pj``, per emitted spike ``fire_pj`` (reset),
    per leak multiply ``leak_pj``, per max-pool compare ``compare_pj``, per ANN bias add
    ``bias_pj`` (0: biases not counted). ``sop_pj`` (a measured chip): one number per SOP
    that includes its memory and addressing, and then the chip's SNN side has no separate
    memory or addressing terms (``snn_memory`` false). Addressing: ``address_add_pj``,
    ``address_mult_pj``. Routing per emitted spike: ``spike_pj + hops·hop_pj``. Memory: see
    the module docstring; ``accumulate_in_memory``: each SOP reads and writes the target's
    membrane; ``queue_entries``: size of the input and output event queues."""

    name: str
    source: str
    add_pj: float
    mult_pj: float
    note: str = ""
    sop_pj: float | None = None
    update_pj: float = 0.0
    idle_update_pj: float = 0.0
    fire_pj: float = 0.0
    leak_pj: float = 0.0
    compare_pj: float = 0.0
    bias_pj: float = 0.0
    address_add_pj: float = 0.0
    address_mult_pj: float = 0.0
    spike_pj: float = 0.0
    hop_pj: float = 0.0
    memory: tuple[tuple[float, float], ...] = ()
    memory_mode: MemoryMode = "smallest"
    snn_memory: bool = True
    accumulate_in_memory: bool = True
    queue_entries: int = 1000
    weight_bits: int = 32
    state_bits: int = 32
    event_bits: int = 32
    activation_bits: int = 32

    def __post_init__(self) -> None:
        validate(self)

    @property
    def mac_pj(self) -> float:
        return self.mult_pj + self.add_pj

    def memory_pj_per_byte(self, capacity_bytes: float) -> float:
        """Energy per byte accessed in a memory holding ``capacity_bytes``."""
        points = self.memory
        if not points:
            return 0.0
        if self.memory_mode == "smallest":
            return next((e for c, e in points if c >= capacity_bytes), points[-1][1])
        xs, ys = [c for c, _ in points], [e for _, e in points]
        m = min(max(capacity_bytes, xs[0]), xs[-1])
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            if m <= x1:
                return y0 + (y1 - y0) * (m - x0) / (x1 - x0)
        return ys[-1]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["memory"] = [list(p) for p in self.memory]
        return d


def _bad(field: str, why: str) -> EnergyModelError:
    return EnergyModelError(f"energy model field {field!r} {why}")


def _energy(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) \
        and v >= 0


def validate(m: EnergyModel) -> None:
    """Every energy finite and >= 0, widths positive integers, memory points increasing in
    capacity (names the first bad field)."""
    for f in fields(m):
        v = getattr(m, f.name)
        if f.name.endswith("_pj") and v is not None and not _energy(v):
            raise _bad(f.name, f"must be a finite energy >= 0 pJ, got {v!r}")
    for name in (*BIT_FIELDS, "queue_entries"):
        v = getattr(m, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise _bad(name, f"must be a positive integer, got {v!r}")
    if m.memory_mode not in ("smallest", "interpolate"):
        raise _bad("memory_mode", f"must be 'smallest' or 'interpolate', got {m.memory_mode!r}")
    prev = -math.inf
    for i, point in enumerate(m.memory):
        if len(point) != 2 or not all(_energy(v) for v in point):
            raise _bad(f"memory[{i}]", "must be [capacity_bytes, pJ_per_byte], both finite "
                       f"and >= 0, got {point!r}")
        if point[0] <= prev:
            raise _bad(f"memory[{i}]", "capacities must increase")
        prev = point[0]
    if m.sop_pj is not None and m.snn_memory:
        raise _bad("sop_pj", "is a measured per-SOP energy that includes memory: set "
                   "snn_memory to false with it")
