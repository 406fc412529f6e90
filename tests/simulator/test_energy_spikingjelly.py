"""The ``lemaire`` preset against SpikingJelly 2.0.0's implementation of Lemaire et al. 2022
(``op_counter.LemaireEnergyProfiler``), layer by layer, on the same counts.

A small SNN (analog-input conv encoder + IF, conv + LIF, linear readout; single-step mode,
T steps, batch 1) runs once; forward hooks record what every layer received and emitted.
SpikingJelly then prices each layer (its synaptic module with its neuron) replaying those
inputs, and our model prices the same layer from :class:`LayerCounts` built from the
recorded counts, with Lemaire's count definitions where they differ from ours (its SOPs
are ``events · C_out/groups · k²`` with padding taps, and the encoder runs every step).
The same for a ReLU network through the ANN pricing (SpikingJelly's non-strict mode).
"""

from __future__ import annotations

import math
import os

import pytest

torch = pytest.importorskip("torch")
if not os.environ.get("CI"):  # CI installs it (make venv): a missing package fails there
    pytest.importorskip("spikingjelly.activation_based.op_counter")
from pseudosnn.compiler.spiking.counting import Layer, LayerCounts  # noqa: E402
from pseudosnn.simulator.energy import ann, get_model, snn  # noqa: E402
from spikingjelly.activation_based import functional, neuron  # noqa: E402
from spikingjelly.activation_based.op_counter import (  # noqa: E402
    LemaireEnergyConfig,
    LemaireEnergyProfiler,
)
from torch import nn  # noqa: E402

T = 4
REL = 1e-12


def sj_energy(module: nn.Module, inputs: list[torch.Tensor], strict: bool = True) -> float:
    """SpikingJelly's Lemaire energy (pJ) of ``module`` run once per input (one step each)."""
    prof = LemaireEnergyProfiler(config=LemaireEnergyConfig(strict=strict))
    prof.bind_model(module)
    functional.reset_net(module)
    with prof, torch.no_grad():
        for x in inputs:
            module(x)
    return prof.get_report().total_pj


def snn_network() -> tuple[nn.Sequential, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=True), neuron.IFNode(v_threshold=0.5),
                        nn.Conv2d(4, 8, 3, padding=1, bias=True),
                        neuron.LIFNode(tau=2.0, v_threshold=0.5),
                        nn.Flatten(), nn.Linear(8 * 6 * 6, 10, bias=False))
    with torch.no_grad():
        net[0].weight.uniform_(-0.2, 0.6)
        net[2].weight.uniform_(-0.1, 0.3)
    return net, torch.rand(1, 1, 8, 8)


def record(net: nn.Sequential, x: torch.Tensor) -> dict[int, list[tuple]]:
    """Per module index, per step: (input, output)."""
    seen: dict[int, list[tuple]] = {i: [] for i in range(len(net))}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen[k].append((i[0], o)))
             for k, m in enumerate(net)]
    functional.reset_net(net)
    with torch.no_grad():
        for _ in range(T):
            net(x)
    for h in hooks:
        h.remove()
    return seen


def nnz(pairs, which: int) -> int:
    return sum(int(p[which].count_nonzero()) for p in pairs)


def test_lemaire_preset_equals_spikingjelly_per_layer():
    net, x = snn_network()
    seen = record(net, x)
    s1, s2 = nnz(seen[1], 1), nnz(seen[3], 1)
    assert 0 < s1 < T * 144 and 0 < s2 < T * 288  # both layers spike, neither saturates
    n1, n2 = 4 * 6 * 6, 8 * 6 * 6
    encoder = Layer("conv1", "conv", (1, 8, 8), (4, 6, 6), kernel=(3, 3))
    ours = {
        "conv1+IF": LayerCounts("conv1", "population", n1, weights=36, biases=4,
                                encoders=(encoder,), encoder_passes=T, active_updates=T * n1,
                                state_updates=T * n1, spikes_out=s1),
        # Lemaire's SOP count: every event reaches C_out·k² targets, padding included
        "conv2+LIF": LayerCounts("conv2", "population", n2, weights=288, biases=8,
                                 sops=s1 * 8 * 9, events_in=s1, conv_events_in=s1,
                                 active_updates=T * n2, state_updates=T * n2, spikes_out=s2,
                                 leak_multiplies=T * n2),
        "readout": LayerCounts("fc", "readout", 10, weights=2880, biases=0, sops=s2 * 10,
                               events_in=s2)}
    theirs = {
        "conv1+IF": sj_energy(nn.Sequential(net[0], net[1]), [p[0] for p in seen[0]]),
        "conv2+LIF": sj_energy(nn.Sequential(net[2], net[3]), [p[0] for p in seen[2]]),
        "readout": sj_energy(net[5], [p[0] for p in seen[5]])}
    whole = sj_energy(net, [x] * T, strict=False)  # Flatten is skipped (costs nothing)
    assert sum(theirs.values()) == pytest.approx(whole, rel=REL)
    model = get_model("lemaire")
    for name, counts in ours.items():
        mine = snn.total(snn.layer_energy(model, counts))
        assert mine == pytest.approx(theirs[name], rel=REL), name


def test_lemaire_ann_pricing_equals_spikingjelly_per_layer():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 6, 3, bias=True), nn.ReLU(), nn.Flatten(),
                        nn.Linear(6 * 6 * 6, 5, bias=True))
    x = torch.rand(1, 2, 8, 8)
    layers = [Layer("conv", "conv", (2, 8, 8), (6, 6, 6), kernel=(3, 3)),
              Layer("fc", "linear", (216,), (5,))]
    inputs = [x, torch.relu(net[0](x)).flatten(1).detach()]
    model = get_model("lemaire")
    for layer, module, inp in zip(layers, (net[0], net[3]), inputs, strict=True):
        ar = ann.arithmetic(model, layer, {}, quantised=False)
        mine = sum(ann.layer_energy(model, layer, ar).values())
        assert mine == pytest.approx(sj_energy(module, [inp]), rel=REL), layer.name
    assert math.isclose(sj_energy(net, [x], strict=False),
                        sum(sj_energy(m, [i]) for m, i in zip((net[0], net[3]), inputs,
                                                               strict=True)), rel_tol=REL)
