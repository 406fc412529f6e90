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
  population's. The pool of a population computed in closed form (below) pools its whole
  train at once.
* **rate** targets and the readout only ever see the *sum* of what they were delivered
  (the accumulator is not observable before the window closes). By linearity
  ``sum_t W @ s_t = W @ n`` (exact in integer arithmetic; in float mode the very same
  ``synapses.drive`` call as the closed-form reference on the same counts: the summands of
  one trained layer through one GEMM), so a rate target's current is computed once, from
  its sources' final counts, when its window opens.
* A rate population's membrane is not observable either: an integrate-and-fire one's
  whole window is computed at its start in closed form (:mod:`.closed_form`: counts,
  spikes per step, and the train where it is recorded, pooled or feeds stream targets),
  and the train reaches each stream target through batched projections of its
  steps (chunks of ``TRAIN_CHUNK_VALUES``). Leaky
  and hard-reset populations (no closed form), fixed-point ones whose threshold could
  saturate the 24-bit membrane, and stream populations step.
* a **leaky** readout (``decay > 0``) is delivered to step by step like a stream target
  and folds what it received at the end, ``acc <- acc·(1 − decay) + delivered(t)``, plus
  the encoder's current once.

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
from pseudosnn.compiler.spiking.semantics import Dynamics, initial_state, neuron_step
from pseudosnn.compiler.spiking.synapses import (
    drive,
    encoder_currents,
    frame_targets,
    project,
    spike_pool,
)
from pseudosnn.simulator import closed_form
from pseudosnn.simulator import threads as _threads
from pseudosnn.simulator.kernels import Kernels

from pseudosnn.errors import PseudoSNNError

PRECISIONS = ("float64", "float32")
TRAIN_CHUNK_VALUES = 1 << 21
"""Spike-train values (steps × batch × neurons) projected into stream targets per call, at
least one step: bounds the kernels' intermediates of one call (an int64 copy, sum-pooled
values, im2col columns, onnxruntime's arena) to tens of MiB. The paper's VGGSNN at batch 16
(``benchmarks/simulate.py``, 1 thread): peak RSS float32 2.26x -> 1.82x onnxruntime's, fixed
point 2.27x -> 1.55x, float32 time unchanged (fixed point faster: no int64 whole-train copy)."""


class SimulationError(PseudoSNNError, ValueError):
    """The inputs or the graph cannot be simulated; the message names the fix."""


@dataclass
class _PopState:
    pop: Population
    T: np.ndarray  # (*shape) int64
    uniform_T: bool
    theta: float | int
    bias: np.ndarray
    v: np.ndarray | None  # (B, *shape); None: a window in closed form (closed_form.py)
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
    stream_targets: set[str]  # delivered to step by step: stream populations, leaky readout
    whole_window: set[str]  # rate populations computed in closed form
    fanouts: counting.Fanouts
    timesteps: dict[str, np.ndarray]
    window: dict[str, tuple[int, int]]  # population or pool -> (start, T_max)
    kernels: dict[str, Kernels] = field(default_factory=dict)
    pools: list[SpikePool] = field(default_factory=list)

    def kernel(self, mode: str) -> Kernels:
        """The kernels of one mode (weights and sessions cached for the graph's lifetime)."""
        if mode not in self.kernels:
            self.kernels[mode] = Kernels(mode)
        return self.kernels[mode]


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def plan_of(graph: SpikingGraph) -> _Plan:
    plan = _PLANS.get(graph)
    if plan is None:
        pops = list(graph.topological_populations())
        pools = [p for p in graph.topological_sources() if isinstance(p, SpikePool)]
        outgoing = {p.name: graph.outgoing(p.name) for p in (*pops, *pools)}
        stream = {p.name for p in pops if p.coupling == "stream"}
        if graph.readout.decay:
            stream.add(graph.readout.name)
        plan = _Plan(
            steps=graph.latency_steps, pops=pops, outgoing=outgoing, stream_targets=stream,
            whole_window={p.name for p in pops if closed_form.exact_for(p, graph.fixed_point)},
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


def _plus_bias(a, bias: np.ndarray):
    """``a + bias``, in place when ``a`` is an accumulator array (owned by the engine) of the
    result's dtype and shape: the same sums without a fresh array."""
    if (isinstance(a, np.ndarray) and a.dtype == np.result_type(a, bias)
            and np.broadcast_shapes(a.shape, bias.shape) == a.shape):
        return np.add(a, bias, out=a)
    return a + bias


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
    fixed_point: bool | None = None, precision: str = "float64", threads: int | None = None,
) -> RunResult:
    """Run ``graph`` on a batch ``x`` of shape ``(B, *graph.input.sample_shape)`` step by step.

    ``fixed_point=None`` follows ``graph.fixed_point``; asking for the other mode is an
    error (quantisation is the compiler's job). ``precision`` (float mode only):
    ``"float64"`` (default; currents bit-identical to the closed-form reference) or
    ``"float32"`` (the precision of the ONNX/torch executors; faster). ``threads``: BLAS and
    onnxruntime threads (None: every core). Returns the :class:`RunResult` of the observed
    readouts, counts and spikes per step (and spike trains with ``record_spikes``); every
    other count comes from the counting module.
    """
    fixed = graph.fixed_point if fixed_point is None else bool(fixed_point)
    if fixed != graph.fixed_point:
        have = "fixed-point" if graph.fixed_point else "float"
        raise SimulationError(
            f"the graph is {have}; simulate it in that mode (recompile with or without "
            "quantisation to change it)")
    if precision not in PRECISIONS:
        raise SimulationError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
    with _threads.using(threads):
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
        self.kernel = plan.kernel("fixed" if fixed else precision)
        self.work_dtype = np.dtype(np.float64 if fixed else precision)  # of float factors
        self.states = {p.name: self._state(p) for p in plan.pops}
        self.encoder: dict[str, np.ndarray] = {}  # encoder current of rate targets
        # inboxes of stream populations: step -> delivered current
        self.inbox: dict[str, dict[int, np.ndarray]] = {
            name: {} for name in (*plan.stream_targets, *(p.name for p in plan.pools))}
        self.frames: dict[str, np.ndarray] = {}  # stream target -> (B, F, ...) currents
        sources = (*plan.pops, *plan.pools)
        self.spikes = ({p.name: np.zeros((B, plan.steps, *p.shape), dtype=bool)
                        for p in sources} if record_spikes else None)
        self.per_step = {p.name: np.zeros(plan.steps, dtype=np.int64) for p in sources}
        self.pool_counts = {p.name: np.zeros((B, *p.shape), dtype=np.int64)
                            for p in plan.pools}
        self.counts = {name: st.counts for name, st in self.states.items()} | self.pool_counts

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
        """One projection of ``events`` (the kernels of this run's mode)."""
        return project(pr, events, self.fixed, self.kernel, x_max, self.work_dtype)

    def current(self, target: str) -> np.ndarray | int:
        """What a rate target (or the readout) integrates, from its sources' final counts:
        ``synapses.drive``, the encoder's current first (as the reference computes it)."""
        c = drive(self.graph, target, self.counts, fixed_point=self.fixed, kernel=self.kernel,
                  dtype=self.work_dtype, initial=self.encoder.pop(target, None))
        return 0 if c is None else c

    def encode(self) -> None:
        """The encoder: MACs on the analog input, once (float64 as the reference, also
        before fixed-point rounding; float32 mode: float32 like the ONNX executor)."""
        kernel = None if self.fixed or self.dtype == np.float64 else \
            (lambda pr, x: project(pr, x, kernel=self.kernel, dtype=self.dtype))
        framed = frame_targets(self.graph)
        for target, c in encoder_currents(self.graph, self.x, kernel).items():
            if target in framed:
                self.frames[target] = c
            elif target in self.states and target in self.inbox:
                st = self.states[target]
                st.drive = st.drive + c
            else:
                self.encoder[target] = c

    def step(self, t: int) -> None:
        """Global step ``t``: every population whose window is open, in topological order,
        then the spike pools of stepped populations. A closed-form population's whole
        window (and its pools') is computed at its start."""
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
            if 0 <= t - start < t_max and pool.source not in plan.whole_window:
                self._pool_step(pool, t)

    def _whole_window(self, p: Population, t: int) -> None:
        """The window of rate population ``p`` (starting at ``t``) in closed form; its train
        is built only where it is recorded, pooled or feeds stream targets; its pools'
        trains follow from it at once (``POOL_DELAY`` later)."""
        st = self.states[p.name]
        c = _plus_bias(self.current(p.name), st.bias)
        c = np.broadcast_to(c, st.counts.shape).reshape(self.B, -1)
        win = closed_form.Window(c, st.T.reshape(-1), st.uniform_T, st.theta, st.v0, self.fixed)
        win.counts(st.counts)
        pools = self.graph.pools_of(p.name)
        if not pools and not self._train_observed(p.name):
            self.per_step[p.name][t:t + win.t_max] = win.per_step()
            return
        train = np.empty((win.t_max, self.B, c.shape[1]), dtype=bool)
        win.train(train)
        train = train.reshape(win.t_max * self.B, *p.shape)
        self._deliver_train(p.name, train, t, win.t_max)
        for pool in pools:
            pooled = spike_pool(pool, train)
            counts = self.pool_counts[pool.name]
            counts += pooled.reshape(win.t_max, *counts.shape).sum(axis=0, dtype=np.int64)
            self._deliver_train(pool.name, pooled, t + POOL_DELAY, win.t_max)

    def _train_observed(self, name: str) -> bool:
        """Whether the spike train of source ``name`` is recorded or feeds stream targets."""
        return self.spikes is not None or any(
            pr.target in self.plan.stream_targets for pr in self.plan.outgoing[name])

    def _deliver_train(self, name: str, train: np.ndarray, t: int, steps: int) -> None:
        """The whole train ``(steps * B, *shape)`` (step-major) of event source ``name``
        from step ``t``: spikes per step, the recording, and each stream target's currents
        of all steps through one projection per chunk of steps (``TRAIN_CHUNK_VALUES``)."""
        per_sample = train.reshape(steps, self.B, -1)
        self.per_step[name][t:t + steps] = np.count_nonzero(per_sample, axis=(1, 2))
        if self.spikes is not None:
            self.spikes[name][:, t:t + steps] = np.moveaxis(
                per_sample, 0, 1).reshape(self.B, steps, *train.shape[1:])
        chunk = max(1, TRAIN_CHUNK_VALUES // max(1, per_sample[0].size))
        for pr in self.plan.outgoing[name]:
            if pr.target not in self.plan.stream_targets:
                continue
            box = self.inbox[pr.target]
            for k0 in range(0, steps, chunk):
                y = self.apply(pr, train[k0 * self.B:(k0 + chunk) * self.B], 1)
                for k in range(k0, min(steps, k0 + chunk)):
                    at = t + k + pr.delay
                    step = y[(k - k0) * self.B:(k - k0 + 1) * self.B]
                    box[at] = box[at] + step if at in box else step

    def _one_step(self, p: Population, t: int, k: int) -> None:
        st = self.states[p.name]
        if p.coupling == "rate":
            if k == 0:
                st.current = _plus_bias(self.current(p.name), st.bias)
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
        self._emit(p.name, s, t)

    def _pool_step(self, pool: SpikePool, t: int) -> None:
        """Step ``t`` of a spike pool's train: the OR over each window of what its source
        emitted ``POOL_DELAY`` steps ago."""
        spikes = self.inbox[pool.name].pop(t, None)
        if spikes is None:  # the source's channel windows closed (per-channel T)
            spikes = np.zeros((self.B, *self.graph.shape_of(pool.source)), dtype=bool)
        s = spike_pool(pool, spikes)
        counts = self.pool_counts[pool.name]
        counts += s
        self._emit(pool.name, s, t)

    def _emit(self, name: str, s: np.ndarray, t: int) -> None:
        """The spikes ``s`` of event source ``name`` at step ``t``: recorded, then delivered
        to stream targets (rate targets read the final counts, :meth:`current`)."""
        self.per_step[name][t] = np.count_nonzero(s)
        if self.spikes is not None:
            self.spikes[name][:, t] = s
        for pr in self.plan.outgoing[name]:
            if pr.target in self.plan.stream_targets:
                box = self.inbox[pr.target]
                box[t + pr.delay] = box.get(t + pr.delay, 0) + self.apply(pr, s, 1)

    def result(self) -> RunResult:
        ro = self.graph.readout
        if ro.decay:  # acc <- acc·(1 - decay) + delivered(t); the encoder's current once
            box, acc = self.inbox[ro.name], 0
            for t in range(self.plan.steps):
                acc = acc * (1.0 - ro.decay) + box.pop(t, 0)
            out = self.encoder.pop(ro.name, 0) + acc + np.asarray(ro.bias)
        else:
            out = self.current(ro.name) + np.asarray(ro.bias)
        for name, box in self.inbox.items():
            if box:
                raise GraphError(f"events reached stream population {name!r} outside its "
                                 f"window (steps {sorted(box)}); the schedule is inconsistent")
        out = out / ro.units_per_float if self.fixed else out
        output = np.broadcast_to(np.asarray(out, np.float64), (self.B, *ro.shape)).copy()
        return run_result(self.graph, output, self.counts, spikes=self.spikes,
                          spikes_per_step=self.per_step, fanouts=self.plan.fanouts)
