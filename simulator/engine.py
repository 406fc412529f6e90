"""Cycle-accurate execution of a spiking graph (the contract, ``compiler/spiking``).

One global clock ``t = 0 .. latency_steps - 1``. At every step, in topological order,
each population whose window is open integrates its current with
``semantics.neuron_step`` (``if_step``: soft reset, ``v0``, 24-bit saturation in fixed
point; ``lif_step`` for leaky and hard-reset populations, Loihi's arithmetic in fixed
point), neuron ``i`` for its own ``T_i`` steps from ``start``. Events emitted at ``t``
reach a target at ``t + delay``.

* **stream** targets integrate, at step ``t``, the projected events delivered at ``t``
  plus ``b`` (plus the encoder current, held constant like direct encoding, or frame ``k``
  at window step ``k`` for event frames): one projection per source step.
* **spike pools** emit at step ``t`` the OR over each window of their source's spikes of
  step ``t - POOL_DELAY`` (``synapses.spike_pool``); their events go out like a
  population's. A population that feeds a pool is stepped one step at a time
  (``neuron_step``, leaky or not: the pool ORs its real train).
* **rate** targets and the readout only ever see the *sum* of what they were delivered
  (the accumulator is not observable before the window closes). By linearity
  ``sum_t W @ s_t = W @ n`` (exact in integer arithmetic; in float mode the very same
  ``synapses.project`` call as the closed-form reference on the same counts), so the
  events of a source window are projected once, when that window closes. Neuron updates
  still step: a rate population that feeds no stream population is stepped through its
  whole window at its start, chunk by chunk (cache blocking), recording spikes at their
  global steps; nothing outside it can observe the difference. Unless spikes are
  recorded, only its neurons with ``0 < c < theta`` are stepped: ``c <= 0`` provably never
  fires and ``c >= theta`` fires at every step of its window (``_step_live``;
  ``0 <= v0 < theta``). These shortcuts (chunked ``_integrate``, ``_step_live``) are
  proven for the integrate-and-fire step only: a leaky or hard-reset rate window is
  stepped whole with ``semantics.lif_step`` itself, every neuron (``_lif_window``).
* a **leaky** readout (``decay > 0``) keeps what is delivered at each step and folds it at
  the end, ``acc <- acc·(1 − decay) + delivered(t)``; its sources are stepped.

The engine observes readouts, spike counts and spikes per step (and spike trains when
asked); SOPs, MACs and neuron updates come from ``compiler.spiking.counting``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.graph import (
    GraphError,
    Population,
    Projection,
    SpikePool,
    SpikingGraph,
)
from pseudosnn.compiler.spiking.result import RunResult, run_result
from pseudosnn.compiler.spiking.schedule import POOL_DELAY
from pseudosnn.compiler.spiking.semantics import (
    V_MAX,
    V_MIN,
    Dynamics,
    initial_state,
    lif_step,
    neuron_step,
)
from pseudosnn.compiler.spiking.synapses import (
    encoder_currents,
    frame_targets,
    project,
    spike_pool,
)
from pseudosnn.simulator.kernels import Projector

from pseudosnn.errors import PseudoSNNError

WINDOW_CHUNK_ELEMENTS = 1 << 14
"""Neurons stepped together through a whole rate window (cache blocking: the membrane,
current and spike buffers of one chunk stay in L2 for all T steps)."""
SKIPPED_STEPS_PER_NEURON_MIN = 2.0
"""Step only the neurons whose spikes are not known in advance (``_step_live``) when the
neuron-steps this saves, per neuron of the population, exceed this: sorting, gathering and
scattering costs about 1.5-2 neuron-steps per neuron (measured here, 1 thread, float32 and
float64, T = 2 and 8, 20-80 % of neurons stepped: break-even at 1.2-1.6 skipped steps)."""
PRECISIONS = ("float64", "float32")


class SimulationError(PseudoSNNError, ValueError):
    """The inputs or the graph cannot be simulated; the message names the fix."""


@dataclass
class _PopState:
    pop: Population
    T: np.ndarray  # (*shape) int64
    uniform_T: bool
    theta: float | int
    bias: np.ndarray
    v: np.ndarray | None  # (B, *shape); None: whole-window population, see step_window
    counts: np.ndarray  # (B, *shape) int64
    v0: float | int = 0
    current: np.ndarray | None = None  # rate: constant current, set at start
    drive: np.ndarray | int | float = 0  # stream: encoder current (constant)
    dyn: Dynamics = field(default_factory=Dynamics)
    u: np.ndarray | None = None  # synaptic current of a population with du < 1


@dataclass
class _Plan:
    """What ``simulate`` derives from a graph alone, computed once per graph."""

    steps: int
    pops: list[Population]
    outgoing: dict[str, list[Projection]]
    stream_targets: set[str]
    whole_window: set[str]  # rate populations that feed no stream population
    fanouts: counting.Fanouts
    timesteps: dict[str, np.ndarray]
    window: dict[str, tuple[int, int]]  # population or pool -> (start, T_max)
    projectors: dict[tuple, Projector] = field(default_factory=dict)
    pools: list[SpikePool] = field(default_factory=list)

    def projector(self, pr: Projection, dtype, exact_int: bool) -> Projector:
        key = (pr.name, np.dtype(dtype).str, exact_int)
        if key not in self.projectors:
            self.projectors[key] = Projector(pr, dtype, exact_int)
        return self.projectors[key]


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def plan_of(graph: SpikingGraph) -> _Plan:
    plan = _PLANS.get(graph)
    if plan is None:
        pops = list(graph.topological_populations())
        pools = [p for p in graph.topological_sources() if isinstance(p, SpikePool)]
        outgoing = {p.name: graph.outgoing(p.name) for p in (*pops, *pools)}
        stream = {p.name for p in pops if p.coupling == "stream"}
        pooled = {p.source for p in pools}
        stepped = stream | ({graph.readout.name} if graph.readout.decay else set())
        plan = _Plan(
            steps=graph.latency_steps, pops=pops, outgoing=outgoing, stream_targets=stream,
            whole_window={p.name for p in pops if p.coupling == "rate" and p.name not in pooled
                          and not any(pr.target in stepped for pr in outgoing[p.name])},
            fanouts=counting.Fanouts(graph),
            timesteps={p.name: p.timesteps_full() for p in pops},
            window={p.name: (p.start, p.t_max) for p in (*pops, *pools)}, pools=pools)
        _PLANS[graph] = plan
    return plan


def _as_int(value, what: str) -> int:
    iv = int(round(float(value)))
    if iv != float(value):
        raise SimulationError(f"fixed-point graph: {what} must be an integer, got {value}")
    return iv


def _accumulate(acc: dict, key: str, y: np.ndarray) -> None:
    """``acc[key] = acc[key] + y`` without copying ``y`` into a fresh sum when ``acc[key]``
    is still the initial 0 (``y`` is a fresh array owned by the caller)."""
    prev = acc[key]
    acc[key] = y if isinstance(prev, int) and prev == 0 else prev + y


def _plus_bias(a, bias: np.ndarray):
    """``a + bias``, in place when ``a`` is an accumulator array (owned by the engine) of the
    result's dtype and shape: the same sums without a fresh array."""
    if (isinstance(a, np.ndarray) and a.dtype == np.result_type(a, bias)
            and np.broadcast_shapes(a.shape, bias.shape) == a.shape):
        return np.add(a, bias, out=a)
    return a + bias


def _count_dtype(t_max: int) -> np.dtype:
    """Smallest unsigned integer holding a window's spike count (same-type adds of the
    bool spikes viewed as uint8 are the cheapest accumulation)."""
    return np.dtype(np.uint8 if t_max < 2**8 else np.uint16 if t_max < 2**16 else np.uint32)


def step_window(st: _PopState, current: np.ndarray, saturate: bool,
                rec: np.ndarray | None, per_step: np.ndarray) -> None:
    """All ``T_max`` steps of a rate window, in place, chunk by chunk; per step exactly
    ``semantics.if_step`` (``v += c`` where active, 24-bit clip, ``s = v >= theta`` where
    active, ``v -= theta`` where ``s``). ``rec``: bool ``(B, T_max, N)`` or None.
    ``st.v is None``: the membrane starts at ``v0`` and is not kept (nothing reads it
    after the window), so only one chunk of it is ever allocated."""
    if not st.dyn.is_if:
        _lif_window(st, current, saturate, rec, per_step)
        return
    B = st.counts.shape[0]
    start, t_max = st.pop.start, st.pop.t_max
    dtype = np.dtype(np.int64) if saturate else np.asarray(st.theta).dtype
    keep_v = st.v is not None
    v = st.v.reshape(B, -1) if keep_v else None
    c = np.ascontiguousarray(np.broadcast_to(current, st.counts.shape),
                             dtype=dtype).reshape(B, -1)
    if (not keep_v and rec is None and 0 <= st.v0 < st.theta
            and (not saturate or V_MIN < st.theta <= V_MAX)):
        theta_c = dtype.type(st.theta)
        live = (c > 0) & (c < theta_c)
        skipped = 1.0 - np.count_nonzero(live) / max(live.size, 1)
        if skipped * t_max > SKIPPED_STEPS_PER_NEURON_MIN:
            _step_live(st, c, live, c >= theta_c, saturate, per_step)
            return
    cnt = st.counts.reshape(B, -1)
    n = c.shape[1]
    theta = dtype.type(st.theta)
    T = None if st.uniform_T else st.T.reshape(-1)
    rows = max(1, WINDOW_CHUNK_ELEMENTS // max(n, 1))
    s = np.empty((rows, n), dtype=bool)
    s_u8 = s.view(np.uint8)
    local = np.empty((rows, n), dtype=_count_dtype(t_max))  # counts of the chunk
    shed = np.empty((rows, n), dtype=dtype)  # s * theta
    v_chunk = None if keep_v else np.empty((rows, n), dtype=dtype)
    for r0 in range(0, B, rows):
        r1 = min(B, r0 + rows)
        m = r1 - r0
        cc, ss, ss8, ll, sh = c[r0:r1], s[:m], s_u8[:m], local[:m], shed[:m]
        if keep_v:
            vv = v[r0:r1]
        else:
            vv = v_chunk[:m]
            vv.fill(st.v0)
        ll.fill(0)
        _integrate(vv, cc, T, theta, t_max, saturate, ss, ss8, sh, ll, per_step, start,
                   None if rec is None else rec[r0:r1])
        cnt[r0:r1] += ll


def _lif_window(st: _PopState, current: np.ndarray, fixed: bool, rec: np.ndarray | None,
                per_step: np.ndarray) -> None:
    """``step_window`` of a leaky or hard-reset population: every neuron stepped through
    the whole window with ``semantics.lif_step`` (no shortcut: those are IF proofs)."""
    start, t_max = st.pop.start, st.pop.t_max
    dtype = np.dtype(np.int64) if fixed else np.asarray(st.theta).dtype
    c = np.ascontiguousarray(np.broadcast_to(current, st.counts.shape), dtype=dtype)
    v, u = (st.v, st.u) if st.v is not None else \
        initial_state(c.shape, st.v0, st.dyn, fixed, dtype)
    for k in range(t_max):
        v, u, s = lif_step(v, u, c, st.theta, st.dyn, True if st.uniform_T else k < st.T,
                           fixed)
        st.counts += s
        per_step[start + k] += np.count_nonzero(s)
        if rec is not None:
            rec[:, k] = s.reshape(s.shape[0], -1)
    if st.v is not None:
        st.v, st.u = v, u


def _step_live(st: _PopState, c: np.ndarray, live: np.ndarray, full: np.ndarray,
               saturate: bool, per_step: np.ndarray) -> None:
    """``step_window`` for a membrane that starts at ``0 <= v0 < theta`` (fixed point:
    ``V_MIN < theta <= V_MAX``), stepping only the neurons whose spikes are not known in
    advance. Proofs, for floats under monotone rounding and for the 24-bit clip:

    * ``c <= 0``: never fires. ``v + c <= v`` and ``clip(v + c) <= max(v, V_MIN)``, so ``v``
      stays below ``theta``.
    * ``c >= theta`` (``full``): fires at every active step (count ``T_i``). With ``v >= 0``,
      ``v + c >= theta`` (also after the clip, as ``V_MAX >= theta``), so it spikes and
      ``v - theta >= 0`` again.

    The rest (``live``: ``0 < c < theta``), gathered into one flat array, are stepped with
    the same ops per step as ``step_window`` and their counts scattered back. No membrane
    is observed after the window, so nothing else can tell the difference."""
    B, n = c.shape
    t_max = st.pop.t_max
    T = st.T.reshape(1, n)
    # the window's counts (``st.counts`` is still all 0: a window is stepped once): T_i
    # where ``full``, 0 where silent, written in one pass; then the stepped ones
    cnt = st.counts.reshape(B, n)
    np.multiply(full, T, out=cnt)
    # neurons of ``full`` still active at step k: those with T_i > k
    if st.uniform_T:
        n_active = np.full(t_max, np.count_nonzero(full), dtype=np.int64)
    else:
        hist = np.bincount(T[0], weights=np.count_nonzero(full, axis=0), minlength=t_max + 1)
        n_active = np.rint(hist[::-1].cumsum()[::-1][1:]).astype(np.int64)
    per_step[st.pop.start:st.pop.start + t_max] += n_active
    idx = np.flatnonzero(live)
    if idx.size:
        cnt.reshape(-1)[idx] = _step_flat(st, c.reshape(-1)[idx],
                                          None if st.uniform_T else T[0][idx % n],
                                          saturate, per_step)


def _step_flat(st: _PopState, c: np.ndarray, T: np.ndarray | None, saturate: bool,
               per_step: np.ndarray) -> np.ndarray:
    """Counts of neurons with constant currents ``c`` (flat) stepped through the window
    from ``v0``, chunk by chunk, with the ops of ``step_window``."""
    start, t_max = st.pop.start, st.pop.t_max
    theta = c.dtype.type(st.theta)
    size = min(WINDOW_CHUNK_ELEMENTS, c.size)
    s = np.empty(size, dtype=bool)
    s_u8 = s.view(np.uint8)
    shed = np.empty(size, dtype=c.dtype)
    vv_buf = np.empty(size, dtype=c.dtype)
    counts = np.empty(c.size, dtype=_count_dtype(t_max))
    for i0 in range(0, c.size, size):
        i1 = min(c.size, i0 + size)
        m = i1 - i0
        cc, ss, ss8, sh, vv, ll = c[i0:i1], s[:m], s_u8[:m], shed[:m], vv_buf[:m], counts[i0:i1]
        Tc = None if T is None else T[i0:i1]
        vv.fill(st.v0)
        ll.fill(0)
        _integrate(vv, cc, Tc, theta, t_max, saturate, ss, ss8, sh, ll, per_step, start)
    return counts


def _integrate(v: np.ndarray, c: np.ndarray, T: np.ndarray | None, theta, t_max: int,
               saturate: bool, s: np.ndarray, s_u8: np.ndarray, shed: np.ndarray,
               counts: np.ndarray, per_step: np.ndarray, start: int,
               rec: np.ndarray | None = None) -> None:
    """Step membranes ``v`` (in place) through ``t_max`` steps of constant currents ``c``;
    per step exactly ``semantics.if_step``: ``v += c`` where active (``k < T``; ``T=None``:
    always), 24-bit clip when ``saturate``, ``s = v >= theta`` where active, ``v -= theta``
    where ``s``. Adds each neuron's spikes to ``counts``, each step's total to
    ``per_step[start + k]``, and records ``rec[:, k] = s`` when given. ``s_u8`` views ``s``;
    ``shed`` is scratch for ``s * theta`` (masked ufuncs measured 3-5x slower than
    multiplying by the 0/1 mask; ``v - s*theta`` equals ``v - where(s, theta, 0)``)."""
    for k in range(t_max):
        if T is None:
            v += c
        else:
            active = k < T
            v += c * active
        if saturate:
            np.clip(v, V_MIN, V_MAX, out=v)
        np.greater_equal(v, theta, out=s)
        if T is not None:
            s &= active
        np.multiply(s, theta, out=shed)
        v -= shed
        np.add(counts, s_u8, out=counts)
        per_step[start + k] += np.count_nonzero(s)
        if rec is not None:
            rec[:, k] = s


def check_input(graph: SpikingGraph, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    shape = graph.input.sample_shape
    if x.ndim < 1 or tuple(x.shape[1:]) != tuple(shape):
        raise SimulationError(
            f"input batch has shape {tuple(x.shape)}, the graph expects (B, "
            f"{', '.join(map(str, shape))}); reshape the data to the network's "
            "input shape (batch first)")
    if x.shape[0] == 0:
        raise SimulationError("the input batch is empty (0 samples); pass at least one sample")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise SimulationError("the input contains NaN/Inf or is not numeric")
    return x.astype(np.float64, copy=False)


def simulate(
    graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False,
    fixed_point: bool | None = None, precision: str = "float64",
) -> RunResult:
    """Run ``graph`` on a batch ``x`` of shape ``(B, *graph.input.sample_shape)`` step by step.

    ``fixed_point=None`` follows ``graph.fixed_point``; asking for the other mode is an
    error (quantisation is the compiler's job). ``precision`` (float mode only):
    ``"float64"`` (default; currents bit-identical to the closed-form reference) or
    ``"float32"`` (the precision of the ONNX/torch executors; faster). Returns the
    :class:`RunResult` of the observed readouts, counts and spikes per step (and spike
    trains with ``record_spikes``); every other count comes from the counting module.
    """
    fixed = graph.fixed_point if fixed_point is None else bool(fixed_point)
    if fixed != graph.fixed_point:
        have = "fixed-point" if graph.fixed_point else "float"
        raise SimulationError(
            f"the graph is {have}; simulate it in that mode (recompile with or without "
            "quantisation to change it)")
    if precision not in PRECISIONS:
        raise SimulationError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    run = _Run(graph, check_input(graph, x), record_spikes, precision)
    run.encode()
    for t in range(run.plan.steps):
        run.step(t)
    return run.result()


class _Run:
    """The state of one batch on the global clock (see the module docstring)."""

    def __init__(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool,
                 precision: str):
        self.graph, self.x = graph, x
        self.B = B = x.shape[0]
        self.fixed = fixed = graph.fixed_point
        self.plan = plan = plan_of(graph)
        self.dtype = np.dtype(np.int64 if fixed else precision)
        self.exact_ref = not fixed and self.dtype == np.float64  # synapses.project itself
        self.states = {p.name: self._state(p) for p in plan.pops}
        # accumulators of rate populations and of the readout; inboxes of stream ones
        self.acc: dict[str, np.ndarray | int | float] = {
            p.name: 0 for p in plan.pops if p.coupling == "rate"}
        self.acc[graph.readout.name] = 0
        self.inbox: dict[str, dict[int, np.ndarray]] = {
            p.name: {} for p in (*plan.pops, *plan.pools)
            if isinstance(p, SpikePool) or p.coupling == "stream"}
        self.leaky = graph.readout.name if graph.readout.decay else None
        self.readout_box: dict[int, np.ndarray] = {}  # leaky readout: step -> delivered
        self.frames: dict[str, np.ndarray] = {}  # stream target -> (B, F, ...) currents
        sources = (*plan.pops, *plan.pools)
        self.spikes = ({p.name: np.zeros((B, plan.steps, *p.shape), dtype=bool)
                        for p in sources} if record_spikes else None)
        self.per_step = {p.name: np.zeros(plan.steps, dtype=np.int64) for p in sources}
        self.pool_counts = {p.name: np.zeros((B, *p.shape), dtype=np.int64)
                            for p in plan.pools}

    def _state(self, p: Population) -> _PopState:
        fixed, dtype = self.fixed, self.dtype
        T = self.plan.timesteps[p.name]
        theta = _as_int(p.threshold, f"{p.name}.threshold") if fixed else float(p.threshold)
        v0 = _as_int(p.v0, f"{p.name}.v0") if fixed else float(p.v0)
        bias = np.asarray(p.bias)
        if fixed:
            if not np.all(bias == np.round(bias)):
                raise SimulationError(f"fixed-point graph: bias of {p.name!r} is not integer")
            bias = bias.astype(np.int64)
        else:
            bias = bias.astype(dtype)
            theta = dtype.type(theta)
        whole = p.name in self.plan.whole_window
        dyn = p.dynamics
        if fixed and dyn.reset == "hard":
            dyn = Dynamics(du=dyn.du, dv=dyn.dv, reset="hard", fire=dyn.fire,
                           v_reset=_as_int(dyn.v_reset, f"{p.name}.v_reset"))
        v, u = (None, None) if whole else initial_state((self.B, *p.shape), v0, dyn, fixed, dtype)
        return _PopState(
            pop=p, T=T, uniform_T=bool(np.all(T.flat[0] == T)), theta=theta, bias=bias,
            v=v, counts=np.zeros((self.B, *p.shape), dtype=np.int64), v0=v0, dyn=dyn, u=u)

    def apply(self, pr: Projection, events: np.ndarray, x_max: int) -> np.ndarray:
        if self.exact_ref:
            return project(pr, events)
        return self.plan.projector(pr, self.dtype, self.fixed)(events, x_max)

    def encode(self) -> None:
        """The encoder: MACs on the analog input, once (float64 as the reference, also
        before fixed-point rounding; float32 mode: float32 like the ONNX executor)."""
        kernel = None if self.exact_ref or self.fixed else \
            (lambda pr, x: self.plan.projector(pr, self.dtype, False)(x))
        framed = frame_targets(self.graph)
        for target, c in encoder_currents(self.graph, self.x, kernel).items():
            if target in framed:
                self.frames[target] = c
            elif target in self.inbox:
                st = self.states[target]
                st.drive = st.drive + c
            else:
                _accumulate(self.acc, target, c)

    def step(self, t: int) -> None:
        """Global step ``t``: every population whose window is open, in topological order.
        A rate population that feeds no stream population is unobservable step by step
        from outside: its whole window is stepped at once (cache-blocked), at its start."""
        plan = self.plan
        for p in plan.pops:
            start, t_max = plan.window[p.name]
            k = t - start
            if 0 <= k < t_max:
                if p.name in plan.whole_window:
                    if k == 0:
                        self._whole_window(p, t)
                else:
                    self._one_step(p, t, k)
        for pool in plan.pools:
            start, t_max = plan.window[pool.name]
            if 0 <= t - start < t_max:
                self._pool_step(pool, t, t - start)

    def _whole_window(self, p: Population, t: int) -> None:
        st = self.states[p.name]
        rec = None
        if self.spikes is not None:
            full = self.spikes[p.name].reshape(self.B, self.plan.steps, -1)  # a view
            rec = full[:, t:t + st.pop.t_max]
        step_window(st, _plus_bias(self.acc.pop(p.name), st.bias), self.fixed, rec,
                    self.per_step[p.name])
        for pr in self.plan.outgoing[p.name]:
            _accumulate(self.acc, pr.target, self.apply(pr, st.counts, st.pop.t_max))

    def _one_step(self, p: Population, t: int, k: int) -> None:
        st = self.states[p.name]
        if p.coupling == "rate":
            if k == 0:
                st.current = _plus_bias(self.acc.pop(p.name), st.bias)
            current = st.current
        else:
            frame = self.frames[p.name][:, k] if p.name in self.frames else 0
            current = self.inbox[p.name].pop(t, 0) + st.drive + frame + st.bias
        active = True if st.uniform_T else (k < st.T)
        st.v, st.u, s = neuron_step(st.v, st.u, np.broadcast_to(current, st.v.shape), st.theta,
                                    st.dyn, active=active, fixed=self.fixed)
        st.counts += s
        for pool in self.graph.pools_of(p.name):
            self.inbox[pool.name][t + POOL_DELAY] = s
        self._emit(p.name, s, st.counts, t, k, st.pop.t_max)

    def _pool_step(self, pool: SpikePool, t: int, k: int) -> None:
        """Step ``k`` of a spike pool's train: the OR over each window of what its source
        emitted ``POOL_DELAY`` steps ago."""
        spikes = self.inbox[pool.name].pop(t, None)
        if spikes is None:  # the source's channel windows closed (per-channel T)
            spikes = np.zeros((self.B, *self.graph.shape_of(pool.source)), dtype=bool)
        s = spike_pool(pool, spikes)
        counts = self.pool_counts[pool.name]
        counts += s
        self._emit(pool.name, s, counts, t, k, pool.t_max)

    def _emit(self, name: str, s: np.ndarray, counts: np.ndarray, t: int, k: int,
              t_max: int) -> None:
        """The spikes ``s`` of event source ``name`` at step ``t`` (step ``k`` of its
        window): recorded, then delivered to stream targets, or as counts to the others
        when the window closes."""
        self.per_step[name][t] = np.count_nonzero(s)
        if self.spikes is not None:
            self.spikes[name][:, t] = s
        for pr in self.plan.outgoing[name]:
            if pr.target in self.plan.stream_targets or pr.target == self.leaky:
                box = self.readout_box if pr.target == self.leaky else self.inbox[pr.target]
                box[t + pr.delay] = box.get(t + pr.delay, 0) + self.apply(pr, s, 1)
            elif k == t_max - 1:
                _accumulate(self.acc, pr.target, self.apply(pr, counts, t_max))

    def result(self) -> RunResult:
        for name, box in self.inbox.items():
            if box:
                raise GraphError(f"events reached stream population {name!r} outside its "
                                 f"window (steps {sorted(box)}); the schedule is inconsistent")
        ro = self.graph.readout
        if self.leaky:  # acc <- acc·(1 - decay) + delivered(t), up to the readout step
            acc = 0
            for t in range(self.plan.steps):
                acc = acc * (1.0 - ro.decay) + self.readout_box.pop(t, 0)
            self.acc[ro.name] = self.acc[ro.name] + acc  # + the encoder's current, once
        out = self.acc[ro.name] + np.asarray(ro.bias)
        out = out / ro.units_per_float if self.fixed else out
        output = np.broadcast_to(np.asarray(out, np.float64), (self.B, *ro.shape)).copy()
        counts = {name: st.counts for name, st in self.states.items()} | self.pool_counts
        return run_result(self.graph, output, counts, spikes=self.spikes,
                          spikes_per_step=self.per_step, fanouts=self.plan.fanouts)
