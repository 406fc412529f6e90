"""Hardware-aware objective: the paper's FLOPs x timesteps cost and a spike-aware
synaptic-operation (SOP) cost, either usable as the training penalty, both reportable
per layer (rows keyed by the neuron's module name).

Structure. The model's documented structure (``pseudosnn.models``) is walked once into
*terms*: the input of every population (and of the readout) is a sum of terms
``(source, ops)``, a source population (or the analog input) followed by a chain of
linear ops (BatchNorm is folded at deployment and ignored here). Each term is one
synaptic projection of the deployed graph. A max pool in a chain (a ``SpikePool``'s, or
the analog stem's) is a window op: an event reaches every window that holds it (an upper
bound of the pooled events), and its FLOPs are 0, as in the paper's cost.

* Fan-out of a source neuron through a term (how many target neurons one event reaches)
  and the paper's FLOPs of a term are defined once, in the contract's counting module
  (``pseudosnn.compiler.spiking.counting``: ``chain_fanout``, ``paper_flops``); this
  module only turns the torch modules of a term into its layers.

Costs (``T_k`` the STE-rounded timesteps of population ``k``, mean over its neurons):

* paper: ``sum_k T_k * FLOPs_k / FLOPs_total + mean_k T_k`` where ``FLOPs_k`` is what
  population ``k``'s events drive and ``FLOPs_total`` includes the encoder.
* spike: ``sum_k sum_i fanout_ki * E[n_ki] / sum_k sum_i fanout_ki + mean_k T_k`` with
  the expected spike count ``E[n_ki] = T_ki * clip(c_ki, 0, 1)`` (batch mean) from the
  forward pass just run: expected SOPs per synapse, plus the same latency term.
* energy: the deployed energy the spike-aware estimate implies on a chip
  (:mod:`pseudosnn.simulator.energy`, memory included): per population
  ``E_k = sum_i E[n_ki] * w_ki + u_k * sum_i T_ki`` with ``w_ki`` the energy of one spike of
  neuron ``i`` (its SOPs, the events its targets read, its own emission) and ``u_k`` of one
  neuron update, priced with the memory sizes of the deployed layers
  (``counting.chain_projection``); the cost is ``sum_k E_k / sum_k sum_i (w_ki + u_k) +
  mean_k T_k``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from pseudosnn.compiler.ir import adaptive_pool_window
from pseudosnn.compiler.spiking import counting
from pseudosnn.models import (
    BasicBlock,
    PreActBlock,
    SeqToANN,
    SEWBlock,
    SpikePool,
    SpikingNetwork,
)
from pseudosnn.neurons import SpikingNeuron
from pseudosnn.simulator.energy import EnergyModel, snn

INPUT = "input"
READOUT = "readout"
LINEAR_OPS = (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d,
              nn.Flatten)
"""The ops of a term's chain (BatchNorm is left out: folded at deployment)."""


@dataclass(frozen=True)
class Term:
    """One projection: events of ``source`` passed through ``ops`` (a chain of linear ops)."""

    source: str
    ops: tuple[nn.Module, ...] = ()


@dataclass
class Structure:
    """Per target (population name or ``"readout"``): the terms summed into its input."""

    inputs: dict[str, list[Term]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def outgoing(self, source: str) -> Iterator[tuple[str, Term]]:
        for target, terms in self.inputs.items():
            for term in terms:
                if term.source == source:
                    yield target, term


def trace_structure(model: SpikingNetwork) -> Structure:
    """Walk ``model.body`` and ``model.readout`` into terms (see the module docstring)."""
    names = {id(m): n for n, m in model.named_modules()}
    st = Structure()
    st.shapes[INPUT] = tuple(model.input_shape[-3:]) if len(model.input_shape) >= 3 \
        else tuple(model.input_shape)

    def chain(expr: list[Term], ops: tuple[nn.Module, ...]) -> list[Term]:
        return [Term(t.source, t.ops + ops) for t in expr]

    def walk(item: nn.Module, expr: list[Term]) -> list[Term]:
        if isinstance(item, SeqToANN):
            return chain(expr, tuple(m for m in item if isinstance(m, LINEAR_OPS)))
        if isinstance(item, SpikingNeuron):
            name = names[id(item)]
            if item.shape is None:
                raise ValueError(f"neuron {name} has no feature shape; build it with shape=")
            st.inputs[name], st.shapes[name] = expr, tuple(item.shape)
            return [Term(name)]
        if isinstance(item, BasicBlock):
            a = walk(item.conv2, walk(item.sn1, walk(item.conv1, expr)))
            b = expr if item.shortcut is None else walk(item.shortcut, expr)
            return walk(item.sn2, a + b)
        if isinstance(item, SEWBlock):
            a = walk(item.sn2, walk(item.conv2, walk(item.sn1, walk(item.conv1, expr))))
            b = expr if item.shortcut is None else walk(item.shortcut_sn,
                                                       walk(item.shortcut, expr))
            return a + b
        if isinstance(item, SpikePool):
            return chain(walk(item.sn, expr), (item.pool,))
        if isinstance(item, PreActBlock):
            a = walk(item.conv2, walk(item.sn2, walk(item.conv1, walk(item.sn1, expr))))
            b = expr if item.shortcut is None else walk(item.shortcut, expr)
            return a + b
        raise TypeError(f"cannot trace {type(item).__name__}: not part of the documented "
                        "model structure (see pseudosnn.models)")

    expr = [Term(INPUT)]
    for item in model.body:
        expr = walk(item, expr)
    st.inputs[READOUT] = chain(expr, (model.readout.fc,))
    st.shapes[READOUT] = (model.readout.fc.out_features,)
    return st


# --- geometry: counted by the contract's counting module --------------------------------
def chain_layers(source_shape: tuple[int, ...], ops: tuple[nn.Module, ...]
                 ) -> list[counting.Layer]:
    """The ops of a term as :class:`~pseudosnn.compiler.spiking.counting.Layer` s (shapes
    tracked from ``source_shape``)."""
    shape, layers = tuple(source_shape), []
    for i, op in enumerate(ops):
        name = f"{type(op).__name__}{i}"
        if isinstance(op, nn.Flatten):
            out = (math.prod(shape),)
            layers.append(counting.Layer(name, "flatten", shape, out))
        elif isinstance(op, nn.Linear):
            out = (op.out_features,)
            layers.append(counting.Layer(name, "linear", shape, out))
        elif len(shape) != 3:
            raise ValueError(f"{op} after flattening: not supported by the cost model")
        else:
            kind = "conv" if isinstance(op, nn.Conv2d) else \
                "maxpool" if isinstance(op, nn.MaxPool2d) else "avgpool"
            k, s, p = _geometry(op, shape)
            c = op.out_channels if kind == "conv" else shape[0]
            out = (c, *((n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip(shape[1:], k, s, p,
                                                                            strict=True)))
            layers.append(counting.Layer(name, kind, shape, out, kernel=k, stride=s, padding=p,
                                         groups=getattr(op, "groups", 1)))
        shape = out
    return layers


def _geometry(op: nn.Module, shape: tuple[int, ...]) -> tuple[tuple, tuple, tuple]:
    """``(kernel, stride, padding)`` per spatial axis of a conv or a pool."""
    if isinstance(op, nn.AdaptiveAvgPool2d):
        windows = [adaptive_pool_window(n, o)
                   for n, o in zip(shape[1:], _pair(op.output_size), strict=True)]
        if None in windows:
            raise ValueError(f"{op} on {shape}: windows of different sizes are not supported")
        return tuple(w[0] for w in windows), tuple(w[1] for w in windows), (0, 0)
    if isinstance(op, nn.AvgPool2d | nn.MaxPool2d) and op.ceil_mode:
        raise ValueError(f"{op} uses ceil_mode: not supported by the cost model")
    return tuple(_pair(v) for v in (op.kernel_size, op.stride or op.kernel_size, op.padding))


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def term_fanout(source_shape: tuple[int, ...], ops: tuple[nn.Module, ...]) -> np.ndarray:
    """Structural fan-out of every source neuron through ``ops``: the deployed projection's
    (:func:`~pseudosnn.compiler.spiking.counting.chain_fanout`)."""
    return counting.chain_fanout(source_shape, chain_layers(source_shape, ops))


def spike_prices(st: Structure, model: EnergyModel) -> tuple[dict[str, np.ndarray],
                                                             dict[str, float]]:
    """Per population: ``w`` (pJ per spike of each neuron) and ``u`` (pJ per neuron update)
    on the chip ``model``, with each target's sizes as deployed (see the module
    docstring); the unit prices are :func:`pseudosnn.simulator.energy.snn.unit_prices`."""
    prices, kinds = {}, {}
    for target, terms in st.inputs.items():
        projections = [counting.chain_projection(st.shapes[t.source], chain_layers(
            st.shapes[t.source], t.ops)) for t in terms]
        kinds[target] = [kind for kind, _ in projections]
        shape = st.shapes[target]
        layer = counting.LayerCounts(
            target, "readout" if target == READOUT else "population", math.prod(shape),
            weights=sum(w for _, w in projections), biases=counting.bias_entries(shape))
        prices[target] = snn.unit_prices(model, layer)
    w = {k: np.full(st.shapes[k], prices[k]["spike"]) for k in st.inputs if k != READOUT}
    for target, terms in st.inputs.items():
        p = prices[target]
        for term, kind in zip(terms, kinds[target], strict=True):
            if term.source != INPUT:
                w[term.source] = w[term.source] + p["conv_event" if kind == "conv" else "event"] \
                    + term_fanout(st.shapes[term.source], term.ops) * p["sop"]
    return w, {k: prices[k]["update"] for k in w}


def term_flops(source_shape: tuple[int, ...], ops: tuple[nn.Module, ...]) -> int:
    """The paper's FLOPs of ``ops`` on one sample of ``source_shape``
    (:func:`~pseudosnn.compiler.spiking.counting.paper_flops`)."""
    return sum(counting.paper_flops(layer) for layer in chain_layers(source_shape, ops))


# --- the objective ------------------------------------------------------------------
@dataclass
class LayerCost:
    """One row of the per-layer report (``expected_*`` are per sample, batch mean)."""

    name: str
    timesteps: float
    flops: int
    paper_share: float
    expected_spikes: float
    expected_sops: float
    expected_energy_pj: float = math.nan


CostKind = Literal["paper", "spike", "energy"]


class HardwareCost:
    """The penalty ``cost: paper | spike | energy`` of a model; ``cost()`` after a forward
    pass (``energy`` and the energy column of the report need ``energy_model``).

    Forward hooks on the neurons record their currents ``c = scale*mean_t(x) + bias``
    (differentiable), from which the spike-aware costs and the report are computed.
    """

    def __init__(self, model: SpikingNetwork, kind: CostKind = "paper",
                 record: bool | None = None, energy_model: EnergyModel | None = None):
        if kind not in ("paper", "spike", "energy"):
            raise ValueError(f"cost={kind!r} is not 'paper', 'spike' or 'energy'")
        if kind == "energy" and energy_model is None:
            raise ValueError("cost='energy' needs an energy model")
        self.model, self.kind = model, kind
        self.structure = trace_structure(model)
        self.neurons = dict(model.neurons())
        for name, n in self.neurons.items():
            if not hasattr(n, "timesteps_float"):
                raise ValueError(f"neuron {name} ({n.family}) has no learnable timesteps: "
                                 "the hardware cost needs PseudoSN neurons")
        st = self.structure
        self.flops = {k: sum(term_flops(st.shapes[k], t.ops) for _, t in st.outgoing(k))
                      for k in self.neurons}
        self.encoder_flops = sum(term_flops(st.shapes[INPUT], t.ops)
                                 for _, t in st.outgoing(INPUT))
        self.total_flops = self.encoder_flops + sum(self.flops.values())
        self.fanout = {k: sum((term_fanout(st.shapes[k], t.ops) for _, t in st.outgoing(k)),
                              np.zeros(st.shapes[k], np.int64)) for k in self.neurons}
        self.total_fanout = float(sum(int(f.sum()) for f in self.fanout.values()))
        self.spike_pj, self.update_pj = spike_prices(st, energy_model) if energy_model \
            else ({}, {})
        self._tensors: dict[tuple[str, str], torch.Tensor] = {}
        self.currents: dict[str, torch.Tensor] = {}
        # currents are recorded for the spike-aware costs and the report (``record``); the
        # paper cost needs no forward pass
        self.recording = kind != "paper" if record is None else record
        self._hooks = [n.register_forward_hook(self._record(k)) for k, n in self.neurons.items()]

    @classmethod
    def from_config(cls, model: SpikingNetwork, config: dict) -> HardwareCost:
        """The penalty a training config selects (``cost``; ``energy_model`` or ``chip``
        for ``cost: energy``)."""
        from pseudosnn.simulator.energy import resolve

        energy = resolve(config["energy_model"], config["chip"]) \
            if config["cost"] == "energy" else None
        return cls(model, config["cost"], energy_model=energy)

    def _record(self, name: str):
        def hook(module, inputs, output):
            if self.recording:
                self.currents[name] = module.current(inputs[0])[0]  # [B, *shape]
        return hook

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()

    def _tensor(self, table: str, name: str, like: torch.Tensor) -> torch.Tensor:
        """``self.<table>[name]`` (fan-out or pJ per spike) as a float32 tensor on ``like``'s
        device, cached."""
        f = self._tensors.get((table, name))
        if f is None or f.device != like.device:
            f = torch.from_numpy(getattr(self, table)[name].astype(np.float32)).to(like.device)
            self._tensors[(table, name)] = f
        return f

    def mean_timesteps(self) -> torch.Tensor:
        return torch.stack([n.timesteps_float().mean() for n in self.neurons.values()]).mean()

    def paper_cost(self) -> torch.Tensor:
        energy = sum(n.timesteps_float().mean() * (self.flops[k] / self.total_flops)
                     for k, n in self.neurons.items())
        return energy + self.mean_timesteps()

    def expected_spikes(self, name: str, quantised: bool = False) -> torch.Tensor:
        """``T * clip(c, 0, 1)`` per neuron, batch mean (needs a forward pass first);
        ``quantised``: the deployed count ``clamp(floor(T*c + 1/2), 0, T)`` instead."""
        if name not in self.currents:
            raise RuntimeError("run a forward pass before asking for spike estimates")
        c = self.currents[name]
        T = self.neurons[name].timesteps_float()
        if quantised:
            return torch.minimum(torch.clamp(torch.floor(T * c + 0.5), min=0.0), T).mean(0)
        return (T * c.clamp(0.0, 1.0)).mean(0)

    def expected_sops(self, name: str, quantised: bool = False) -> torch.Tensor:
        n = self.expected_spikes(name, quantised)
        return (n * self._tensor("fanout", name, n)).sum()

    def expected_energy(self, name: str, quantised: bool = False) -> torch.Tensor:
        """pJ per sample of population ``name``'s spikes and updates (module docstring)."""
        n = self.expected_spikes(name, quantised)
        updates = torch.broadcast_to(self.neurons[name].timesteps_float(), n.shape).sum()
        return (n * self._tensor("spike_pj", name, n)).sum() + self.update_pj[name] * updates

    def spike_cost(self) -> torch.Tensor:
        sops = sum(self.expected_sops(k) for k in self.neurons)
        return sops / self.total_fanout + self.mean_timesteps()

    def energy_cost(self) -> torch.Tensor:
        norm = sum(float(w.sum()) + self.update_pj[k] * w.size for k, w in self.spike_pj.items())
        energy = sum(self.expected_energy(k) for k in self.neurons)
        return energy / norm + self.mean_timesteps()

    def cost(self) -> torch.Tensor:
        return {"paper": self.paper_cost, "spike": self.spike_cost,
                "energy": self.energy_cost}[self.kind]()

    def rows(self, quantised: bool = False) -> list[LayerCost]:
        """Per-layer report from the latest forward pass (see :func:`layer_report`)."""
        out = []
        with torch.no_grad():
            for k, n in self.neurons.items():
                have = k in self.currents
                out.append(LayerCost(
                    name=k, timesteps=float(n.timesteps_float().mean()),
                    flops=self.flops[k], paper_share=self.flops[k] / self.total_flops,
                    expected_spikes=float(self.expected_spikes(k, quantised).sum())
                    if have else math.nan,
                    expected_sops=float(self.expected_sops(k, quantised)) if have else math.nan,
                    expected_energy_pj=float(self.expected_energy(k, quantised))
                    if have and self.spike_pj else math.nan))
        return out


ReportForward = Literal["expected", "calibrated", "noise_free"]


def layer_report(model: SpikingNetwork, x: torch.Tensor,
                 forward: ReportForward = "calibrated", quantised: bool = False,
                 energy_model: EnergyModel | None = None) -> list[LayerCost]:
    """:func:`layer_reports` with one counting rule: ``quantised`` or ``T*clip(c, 0, 1)``."""
    return layer_reports(model, x, forward, energy_model)[int(quantised)]


def layer_reports(model: SpikingNetwork, x: torch.Tensor,
                  forward: ReportForward = "calibrated",
                  energy_model: EnergyModel | None = None
                  ) -> tuple[list[LayerCost], list[LayerCost]]:
    """Per-layer rows (name, T, FLOPs, paper-cost share, expected spikes, SOPs and, with
    ``energy_model``, energy per sample) from a training-mode forward of ``x`` (BatchNorm
    on its running statistics, as deployed; the model's state is restored after).

    ``forward`` picks the training forward whose currents ``c`` are recorded:

    * ``calibrated``: the calibration-phase forward that ends the paper's recipe: neurons
      pass the deployed rate ``n/T`` on (what the next layer sees once deployed);
    * ``expected``: the noise model at its expectation (quantisation noise is zero-mean,
      clipping is what a spiking neuron does): neurons pass ``clip(c, 0, 1)`` on;
    * ``noise_free``: noise off, the unclipped ReLU passed on.

    One forward, counted two ways: ``(rows, quantised_rows)`` with spikes counted as
    ``T * clip(c, 0, 1)`` (the spike-aware estimate) and as the deployed count
    ``clamp(floor(T*c + 1/2), 0, T)``.
    """
    if forward not in ("expected", "calibrated", "noise_free"):
        raise ValueError(f"forward={forward!r} is not expected, calibrated or noise_free")
    cost = HardwareCost(model, "paper", record=True, energy_model=energy_model)
    was_training = model.training
    saved = {k: (n.noise_prob, n.calibrating) for k, n in cost.neurons.items()}
    hooks = []
    try:
        model.train()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        for n in cost.neurons.values():
            n.noise_prob = 0.0
            n.calibrating = forward == "calibrated"
            if forward == "expected":
                hooks.append(n.register_forward_hook(
                    lambda mod, inputs, out: mod.current(inputs[0]).clamp(0.0, 1.0)))
        with torch.no_grad():
            model(x)
        return cost.rows(quantised=False), cost.rows(quantised=True)
    finally:
        for h in hooks:
            h.remove()
        for k, n in cost.neurons.items():
            n.noise_prob, n.calibrating = saved[k]
        model.train(was_training)
        cost.remove()


def format_rows(rows: list[LayerCost]) -> str:
    """A plain-text table of :class:`LayerCost` rows."""
    head = f"{'layer':<22}{'T':>7}{'FLOPs':>12}{'share':>8}{'E[spikes]':>12}{'E[SOPs]':>14}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name:<22}{r.timesteps:>7.2f}{r.flops:>12d}{r.paper_share:>8.3f}"
                     f"{r.expected_spikes:>12.1f}{r.expected_sops:>14.1f}")
    return "\n".join(lines)
