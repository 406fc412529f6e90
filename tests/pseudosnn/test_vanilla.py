"""Vanilla IF/LIF neurons and their surrogate gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pseudosnn.compiler.spiking.semantics import if_step

from pseudosnn.neurons import make_neuron
from pseudosnn.neurons.surrogate import SURROGATES, get_surrogate, spike
from pseudosnn.neurons.vanilla import IFNeuron, LIFNeuron


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("alpha", [0.5, 1.0, 4.0])
def test_surrogate_derivative_is_autograd_of_smooth_step(name, alpha):
    sg = get_surrogate(name)
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    if name == "rectangle":  # kinks at |x| = 1/(2 alpha): keep away from them
        x = x[((x.abs() - 0.5 / alpha).abs() > 1e-3)]
    x.requires_grad_(True)
    (auto,) = torch.autograd.grad(sg.step(x, alpha).sum(), x)
    torch.testing.assert_close(sg.grad(x.detach(), alpha), auto)


def test_surrogate_formulas_at_known_points():
    # sigmoid: h(0) = alpha/4; atan: h(0) = alpha/2; rectangle: alpha inside, 0 outside
    z = torch.tensor([0.0])
    assert SURROGATES["sigmoid"].grad(z, 4.0).item() == pytest.approx(1.0)
    assert SURROGATES["atan"].grad(z, 2.0).item() == pytest.approx(1.0)
    assert SURROGATES["atan"].grad(torch.tensor([1 / np.pi]), 2.0).item() == pytest.approx(0.5)
    rect = SURROGATES["rectangle"].grad(torch.tensor([0.0, 0.4, 0.6, -0.6]), 1.0)
    assert rect.tolist() == [1.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_spike_forward_is_heaviside_and_backward_is_surrogate(name):
    x = torch.tensor([-1.0, -0.1, 0.0, 0.1, 2.0], requires_grad=True)
    s = spike(x, name, alpha=2.0)
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    w = torch.arange(1.0, 6.0)
    (s * w).sum().backward()
    torch.testing.assert_close(x.grad, w * get_surrogate(name).grad(x.detach(), 2.0))


def test_unknown_surrogate_names_choices():
    with pytest.raises(ValueError, match="atan"):
        IFNeuron(surrogate="tanh")


def test_if_soft_reset_known_trace():
    n = IFNeuron(T=5, threshold=1.0)
    out = n(torch.full((1, 1, 1), 0.6))
    assert out.flatten().tolist() == [0, 1, 0, 1, 1]  # v: .6, 1.2->.2, .8, 1.4->.4, 1.0->0


def test_if_hard_reset_known_trace():
    n = IFNeuron(T=5, threshold=1.0, reset="hard")
    out = n(torch.full((1, 1, 1), 0.6))
    assert out.flatten().tolist() == [0, 1, 0, 1, 0]  # v: .6, 1.2->0, .6, 1.2->0, .6


def test_lif_known_trace_decay_input_false():
    n = LIFNeuron(T=4, tau=2.0, threshold=1.0)
    out = n(torch.full((1, 1, 1), 0.6))
    # v: .6, .3+.6=.9, .45+.6=1.05 -> spike, soft reset .05, .025+.6=.625
    assert out.flatten().tolist() == [0, 0, 1, 0]


def test_lif_decay_input_true_matches_formula():
    n = LIFNeuron(T=3, tau=2.0, decay_input=True, threshold=0.5)
    out = n(torch.full((1, 1, 1), 0.8))
    # v: (0.8)/2=.4, .4+(.8-.4)/2=.6 -> spike, .1, .1+(.8-.1)/2=.45
    assert out.flatten().tolist() == [0, 1, 0]


def test_direct_encoding_broadcasts_and_checks_T():
    n = IFNeuron(T=4)
    assert n(torch.rand(1, 3, 5)).shape == (4, 3, 5)
    assert n(torch.rand(4, 3, 5)).shape == (4, 3, 5)
    with pytest.raises(ValueError, match="T=4"):
        n(torch.rand(3, 3, 5))


def test_if_stream_matches_compiler_semantics_step_by_step():
    """The torch IF forward equals the deployed neuron (compiler.semantics.if_step) on
    random per-step currents, for both start potentials."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 4, 50, generator=g, dtype=torch.float64) * 1.5 - 0.2
    for v0 in (0.0, 0.35):
        n = IFNeuron(T=8, threshold=0.7, v0=v0)
        spec = n.deploy_spec()
        assert spec.coupling == "stream" and spec.reset == "soft" and spec.v0 == v0
        torch_spikes = n(x).numpy()
        v = np.full(x.shape[1:], v0)
        for t in range(8):
            v, s = if_step(v, x[t].numpy(), spec.threshold)
            np.testing.assert_array_equal(torch_spikes[t], s.astype(np.float64))


def test_bptt_gradient_through_time_if():
    """d(s1+s2)/dc for a constant current c, T=2, detached reset:
    s1 = H(c - th), v2 = c - s1*th + c, ds/dc = h(c - th) + 2 h(v2 - th)."""
    th, alpha = 1.0, 4.0
    c = torch.tensor([[0.7]], dtype=torch.float64, requires_grad=True)
    n = IFNeuron(T=2, threshold=th, surrogate="sigmoid", alpha=alpha)
    n(c.unsqueeze(0)).sum().backward()
    h = SURROGATES["sigmoid"].grad
    v2 = 0.7 + 0.7  # no spike at step 1
    expected = h(torch.tensor(0.7 - th), alpha) + 2 * h(torch.tensor(v2 - th), alpha)
    assert c.grad.item() == pytest.approx(expected.item())


def test_amplitude_scales_spikes_and_out_scale():
    n = IFNeuron(T=3, threshold=2.0, v0=1.0, amplitude=2.0)
    out = n(torch.full((1, 1, 1), 1.0))
    assert out.flatten().tolist() == [2.0, 0.0, 2.0]  # v: 2->0, 1, 2->0
    assert n.deploy_spec().out_scale == 2.0


def _contract_spikes(spec, x: torch.Tensor) -> np.ndarray:
    """The deployed neuron (the contract's step with ``spec``) on the current
    ``scale*x + bias``, one step per time slice of ``x`` ``[T, B, N]``."""
    from pseudosnn.compiler.spiking.semantics import Dynamics, initial_state, neuron_step

    dyn = Dynamics(du=spec.du, dv=spec.dv, reset=spec.reset, v_reset=spec.v_reset,
                   fire=spec.fire)
    c = float(spec.scale) * x.double().numpy() + float(spec.bias)
    v, u = initial_state(c.shape[1:], spec.v0, dyn, False, np.float64)
    out = []
    for t in range(c.shape[0]):
        v, u, s = neuron_step(v, u, c[t], spec.threshold, dyn)
        out.append(s)
    return np.stack(out)


@pytest.mark.parametrize("neuron", [
    {"family": "if"}, {"family": "if", "reset": "hard", "v_reset": -0.3},
    {"family": "lif"}, {"family": "lif", "tau": 4.0, "reset": "hard", "v_reset": 0.25},
    {"family": "lif", "tau": 2.0, "decay_input": True, "v0": 0.5},
])
def test_deploy_spec_is_the_forward(neuron):
    """Every IF/LIF variant deploys: the contract's step with its spec gives the torch
    forward's spikes (tau a power of two: the decay is exact in both)."""
    n = make_neuron(neuron["family"], (500,), T=6,
                    **{k: v for k, v in neuron.items() if k != "family"}).double()
    x = torch.randn(6, 3, 500, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spec = n.deploy_spec()
    assert spec.coupling == "stream" and spec.reset == neuron.get("reset", "soft")
    want = n(x).numpy() != 0
    assert want.any() and np.array_equal(_contract_spikes(spec, x), want)
    if neuron["family"] == "lif":
        assert spec.dv == 1 / n.tau and spec.du == 1.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="T must"):
        IFNeuron(T=0)
    with pytest.raises(ValueError, match="reset"):
        IFNeuron(reset="zero")
    with pytest.raises(ValueError, match="tau"):
        LIFNeuron(tau=0.5)
