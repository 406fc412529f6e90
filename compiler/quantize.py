"""Fixed-point quantisation of a spiking graph (the graph contract, DESIGN.md §2).

Each population ``p`` gets a scale ``S_p`` (integer membrane units per float unit):
``θ_int = round(θ·S_p)``, ``b_int = round(b·S_p)``, ``v0 = θ_int // 2`` (half threshold) and,
for every incoming event projection, int8 weights with one exponent ``e`` in ``[0, 7]``:
``W_int·2^e ≈ W_eff·S_p`` (``W_eff`` already holds ``1/T_src``). The encoder keeps float
weights; its current is rounded with ``S_p`` by the backends. ``S_p`` aims at a threshold
resolution of ``2**TARGET_THETA_BITS`` units (or the largest incoming weight using all 8
bits, whichever is finer), capped so that every projection fits with ``e <= 7``.

A leaky or hard-reset population (Loihi's LIF arithmetic, :mod:`.spiking.semantics`) also
gets 12-bit decays ``round(d·4096)/4096``, ``v_reset_int = round(v_reset·S_p)`` and Loihi's
comparison ``v > θ``: exactly ``v >= θ_int`` as ``v > θ_int - 1`` when nothing decays (its
state then stays on the integer grid), else ``v > θ_int`` (a change the report names). Its
state carries 6 more bits (``<< 6``), so ``θ_int`` stays below ``2**MAX_LIF_THETA_BITS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from pseudosnn.compiler.spiking.graph import (
    WEIGHT_EXP_MAX,
    WEIGHT_MAX,
    WEIGHT_MIN,
    Projection,
    SpikingGraph,
    validate,
)
from pseudosnn.compiler.spiking.reference import evaluate
from pseudosnn.compiler.spiking.semantics import (
    ACTIVATION_SHIFT,
    DECAY_UNITY,
    V_MAX,
    Dynamics,
    decay_int,
    state_scale,
)

from pseudosnn.errors import PseudoSNNError

TARGET_THETA_BITS = 12
"""Aimed threshold resolution: θ_int ≈ 4096 membrane units."""
MIN_THETA_BITS = 8
"""Below θ_int = 256 the report warns that the threshold resolution is coarse."""
MAX_THETA_BITS = 20
"""Headroom: θ_int <= 2**20 leaves 8x to the 24-bit membrane's 2**23."""
MAX_LIF_THETA_BITS = MAX_THETA_BITS - ACTIVATION_SHIFT
"""The same 8x headroom for Loihi's LIF state, which is ``<< 6`` (``θ_int << 6 <= 2**20``)."""


class FixedPointError(PseudoSNNError, ValueError):
    """A network that cannot be represented in the fixed-point format."""


@dataclass
class QuantReport:
    layers: list[dict] = field(default_factory=list)  # per population/readout
    warnings: list[str] = field(default_factory=list)
    max_output_error: float | None = None  # max |readout_fixed - readout_float|
    count_mismatch_fraction: float | None = None
    membrane_saturations: int | None = None
    accuracy_float: float | None = None
    accuracy_fixed: float | None = None
    agreement: float | None = None  # fraction of samples with the same argmax
    dynamics: list[str] = field(default_factory=list)  # what quantising the neuron changed

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _choose_scale(theta: float, wmax: float, name: str, max_bits: int = MAX_THETA_BITS
                  ) -> float:
    hi = WEIGHT_MAX * 2.0 ** WEIGHT_EXP_MAX / wmax if wmax > 0 else np.inf
    s = max(2.0 ** TARGET_THETA_BITS / theta, WEIGHT_MAX / wmax if wmax > 0 else 0.0)
    s = min(s, hi, 2.0 ** max_bits / theta)
    if round(theta * s) < 1:
        raise FixedPointError(
            f"{name}: weights up to {wmax:.3g} are too large for a threshold of {theta:.3g} in "
            f"8-bit weights with exponent <= {WEIGHT_EXP_MAX} (threshold would round to 0); "
            "retrain with weight decay / smaller weights or compile in float")
    return float(s)


def _quantise_weights(pr: Projection, s: float) -> tuple[Projection, dict]:
    w = np.asarray(pr.weight, np.float64) * s
    m = float(np.abs(w).max(initial=0.0))
    e = 0 if m <= WEIGHT_MAX else int(np.ceil(np.log2(m / WEIGHT_MAX)))
    if e > WEIGHT_EXP_MAX:
        raise FixedPointError(f"projection {pr.name!r}: weights need exponent {e} > "
                              f"{WEIGHT_EXP_MAX}; they overflow 8-bit fixed point")
    q = np.round(w / 2.0 ** e)
    clipped = int(np.sum((q < WEIGHT_MIN) | (q > WEIGHT_MAX)))
    q = np.clip(q, WEIGHT_MIN, WEIGHT_MAX).astype(np.int8)
    err = float(np.abs(q * 2.0 ** e - w).max(initial=0.0) / s)
    return replace(pr, weight=q, weight_exp=e), {"projection": pr.name, "weight_exp": e,
                                                  "clipped": clipped, "max_weight_error": err}


Runner = Callable[[SpikingGraph, np.ndarray], tuple[dict[str, np.ndarray], np.ndarray]]
"""Runs a graph on a batch: ``(spike counts per population, readout)``."""


def quantize(graph: SpikingGraph, x: np.ndarray | None = None, y: np.ndarray | None = None,
             seed: int = 0, run: Runner | None = None) -> tuple[SpikingGraph, QuantReport]:
    """Fixed-point copy of ``graph`` and a report; ``x``/``y`` is a calibration batch
    (random inputs when absent; accuracy only with labels). The error is measured with the
    closed-form reference when every population is rate-coupled, else with ``run`` (the
    caller's cycle-accurate executor, e.g. the simulator) when given."""
    report = QuantReport()
    for pr in graph.projections:
        if pr.event_scale is not None:
            raise FixedPointError(f"projection {pr.name!r} needs a per-event scale (per-neuron "
                                  "T into a conv); fixed point cannot represent it")
        if not np.all(np.isfinite(pr.weight)):
            raise FixedPointError(f"projection {pr.name!r} has NaN or Inf weights")
    new_projs: dict[str, Projection] = {pr.name: pr for pr in graph.projections}

    def scale_for(target: str, theta: float, max_bits: int = MAX_THETA_BITS
                  ) -> tuple[float, list[dict]]:
        events = [pr for pr in graph.incoming(target) if not pr.is_encoder]
        wmax = max((float(np.abs(pr.weight).max(initial=0)) for pr in events), default=0.0)
        s = _choose_scale(theta, wmax, target, max_bits)
        rows = []
        for pr in events:
            new_projs[pr.name], row = _quantise_weights(pr, s)
            report.warnings += [f"projection {pr.name!r}: {row['clipped']} weights clipped"] \
                if row["clipped"] else []
            rows.append(row)
        return s, rows

    pops = []
    for p in graph.populations:
        lif = not p.dynamics.is_if
        s, rows = scale_for(p.name, p.threshold, MAX_LIF_THETA_BITS if lif else MAX_THETA_BITS)
        theta_int = int(round(p.threshold * s))
        if theta_int < 2 ** MIN_THETA_BITS:
            report.warnings.append(f"population {p.name!r}: threshold resolution is only "
                                   f"{theta_int} units (large weights)")
        bias = np.round(np.asarray(p.bias, np.float64) * s).astype(np.int64)
        if np.abs(bias).max(initial=0) > V_MAX // state_scale(p.dynamics, True):
            raise FixedPointError(f"population {p.name!r}: bias overflows the 24-bit membrane")
        v0 = theta_int // 2 if np.isclose(p.v0, p.threshold / 2) else int(round(p.v0 * s))
        q = replace(p, threshold=theta_int, bias=bias, v0=v0, units_per_float=s)
        if lif:
            q, change = _loihi_dynamics(q, p.dynamics, s)
            report.dynamics += [f"population {p.name!r}: {change}"] if change else []
        pops.append(q)
        report.layers.append({"name": p.name, "scale": s, "threshold_int": q.threshold,
                              "fire": q.fire, "du": q.du, "dv": q.dv, "projections": rows})
    ro = graph.readout
    s_r, rows = scale_for(ro.name, 1.0)
    readout = replace(ro, bias=np.round(np.asarray(ro.bias, np.float64) * s_r).astype(np.int64),
                      units_per_float=s_r)
    report.layers.append({"name": ro.name, "scale": s_r, "projections": rows})
    fixed = replace(graph, populations=tuple(pops), readout=readout,
                    projections=tuple(new_projs[pr.name] for pr in graph.projections),
                    fixed_point=True)
    validate(fixed)
    if x is None:
        x = np.random.default_rng(seed).normal(0, 1, size=(16, *graph.input.sample_shape))
    if all(p.coupling == "rate" for p in graph.populations):
        a, b = evaluate(graph, x), evaluate(fixed, x)
        _measure(report, (a.counts, a.output), (b.counts, b.output), y)
        report.membrane_saturations = sum(
            int(np.sum((np.abs(b.currents[p.name]) + p.threshold)
                       * state_scale(p.dynamics, True) > V_MAX)) for p in fixed.populations)
    elif run is not None:
        _measure(report, run(graph, x), run(fixed, x), y)
    else:
        report.warnings.append(
            "stream-coupled populations: the closed-form reference cannot measure the "
            "quantisation error; compare `pseudosnn simulate` on the float and fixed artifacts")
    return fixed, report


def _loihi_dynamics(q, dyn: Dynamics, s: float):
    """The fixed-point dynamics of a leaky/hard-reset population ``q`` (threshold already
    ``θ_int``): 12-bit decays, integer ``v_reset``, Loihi's ``v > θ`` (module docstring);
    returns the population and what changed (None: nothing)."""
    du, dv = decay_int(dyn.du) / DECAY_UNITY, decay_int(dyn.dv) / DECAY_UNITY
    changes = [f"{k} {a:g} -> {b:g} ({decay_int(b)}/{DECAY_UNITY})"
               for k, a, b in (("du", dyn.du, du), ("dv", dyn.dv, dv)) if a != b]
    theta = q.threshold
    if dyn.fire == ">=":
        if du == 1 and dv == 0:  # state stays on the integer grid: v >= θ iff v > θ - 1
            theta -= 1
        else:
            changes.append("fires on v > θ (Loihi's comparator) instead of v >= θ")
    q = replace(q, threshold=theta, du=du, dv=dv, fire=">",
                v_reset=int(round(dyn.v_reset * s)) if dyn.reset == "hard" else 0)
    return q, "; ".join(changes) or None


def _measure(report: QuantReport, flt: tuple, fixed: tuple, y) -> None:
    """Fill ``report`` from the runs ``(counts, readout)`` of the float and fixed graphs."""
    (ca, oa), (cb, ob) = flt, fixed
    report.max_output_error = float(np.abs(oa - ob).max())
    total = sum(v.size for v in ca.values())
    diff = sum(int(np.sum(ca[k] != cb[k])) for k in ca)
    report.count_mismatch_fraction = diff / max(total, 1)
    pa = oa.reshape(len(oa), -1).argmax(1)
    pb = ob.reshape(len(ob), -1).argmax(1)
    report.agreement = float(np.mean(pa == pb))
    if y is not None:
        report.accuracy_float = float(np.mean(pa == np.asarray(y)))
        report.accuracy_fixed = float(np.mean(pb == np.asarray(y)))
