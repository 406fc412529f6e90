"""PseudoSN: training forward, gradients, eval = the deployed IF neuron."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pseudosnn.compiler.spiking.semantics import if_step, rate_spike_count

from pseudosnn.neurons import UnknownNeuronFamily, make_neuron
from pseudosnn.neurons.pseudo import PseudoSpikingNeuron


def neuron(**kw) -> PseudoSpikingNeuron:
    return PseudoSpikingNeuron(kw.pop("shape", (3, 4, 4)), **kw)


def test_timesteps_init_and_rounding():
    n = neuron(init_T=5, min_T=1, max_T=16)
    assert n.timesteps().item() == 5
    assert n.timesteps().dtype == torch.int64
    n = neuron(granularity="channel", init_T=3)
    assert n.timesteps().shape == (3, 1, 1)
    assert torch.all(n.timesteps() == 3)
    n = neuron(granularity="neuron", shape=(7,))
    assert n.timesteps().shape == (7,)


def test_straight_through_rounding_gradient():
    n = neuron(init_T=8)
    t = n.timesteps_float()
    t.backward()
    # d round_ste(T)/d logit = (max_T - min_T) * sigmoid'(logit)
    s = torch.sigmoid(n.logit.detach())
    assert torch.allclose(n.logit.grad, 15 * s * (1 - s))


def test_training_output_is_relu_of_current_without_noise():
    n = neuron(noise_prob=0.0).train()
    with torch.no_grad():
        n.scale.fill_(2.0)
        n.bias.fill_(-0.25)
    x = torch.randn(3, 5, 3, 4, 4)
    y = n(x)
    assert y.shape == (1, 5, 3, 4, 4)
    assert torch.allclose(y, torch.relu(2.0 * x.mean(0, keepdim=True) - 0.25))


@pytest.mark.parametrize("scope", ["layer", "element"])
def test_noise_always_on_bounds(scope):
    """With noise_prob=1 both noises apply: clipped at 1, quantisation noise within
    +-1/(2T) (uniform) only where 0 < c < 1, zero elsewhere."""
    torch.manual_seed(0)
    n = neuron(noise_prob=1.0, noise_scope=scope, init_T=4).train()
    x = torch.linspace(-1, 2, 3 * 4 * 4 * 8).reshape(1, 8, 3, 4, 4)
    y = n(x)
    assert y.max() <= 1.0
    inside = (x > 0) & (x < 1)
    diff = (y - x.clamp(0, 1))[inside]
    assert diff.abs().max() <= 0.5 / 4 + 1e-6
    assert diff.abs().max() > 0.01
    assert torch.equal(y[~inside], x.clamp(0, 1)[~inside])


def test_element_scope_applies_noise_to_about_p_of_elements():
    torch.manual_seed(1)
    n = neuron(shape=(10000,), noise_prob=0.3, noise_scope="element", init_T=2).train()
    x = torch.full((1, 1, 10000), 0.3)
    y = n(x)
    frac = (y != x).float().mean().item()
    assert 0.25 < frac < 0.35


def test_task_loss_reaches_T_only_through_noise():
    x = torch.rand(1, 16, 3, 4, 4)
    for granularity in ("layer", "channel", "neuron"):
        quiet = neuron(noise_prob=0.0, granularity=granularity).train()
        quiet(x).square().sum().backward()
        assert quiet.logit.grad is None or torch.all(quiet.logit.grad == 0)
        torch.manual_seed(0)
        noisy = neuron(noise_prob=1.0, granularity=granularity).train()
        noisy(x).square().sum().backward()
        assert noisy.logit.grad is not None and noisy.logit.grad.abs().sum() > 0


def ref_counts_by_if_loop(c: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Step the shared IF semantics T_max times, each neuron active for its own T."""
    T = np.broadcast_to(T, c.shape)
    v = np.full(c.shape, 0.5)
    counts = np.zeros(c.shape, dtype=np.int64)
    for t in range(int(T.max())):
        v, s = if_step(v, c, 1.0, active=t < T)
        counts += s
    return counts


def set_timesteps(n: PseudoSpikingNeuron, T: torch.Tensor) -> None:
    """Set the logit so that the neuron's rounded T equals ``T``."""
    ratio = (T.double() - n.min_T) / (n.max_T - n.min_T)
    with torch.no_grad():
        n.logit.copy_(torch.logit(ratio))


@pytest.mark.parametrize("granularity", ["layer", "channel", "neuron"])
def test_eval_rate_equals_step_by_step_if_loop(granularity):
    torch.manual_seed(3)
    n = neuron(granularity=granularity, init_T=6, max_T=17).eval()
    # heterogeneous power-of-two T and dyadic inputs: exact ties T*c + 1/2 = integer
    set_timesteps(n, 2 ** torch.randint(1, 5, n.logit.shape))
    with torch.no_grad():
        n.scale.fill_(0.5)
        n.bias.fill_(0.125)
    x = (torch.randint(-16, 80, (2, 32, 3, 4, 4)) / 16.0).double()
    n = n.double()
    with torch.no_grad():
        y = n(x)
    assert y.shape == (1, 32, 3, 4, 4)
    T = n.timesteps().numpy()
    c = (0.5 * x.mean(0) + 0.125).numpy()
    ties = np.isclose((T * c + 0.5) % 1, 0) & (c > 0) & (c < 1)
    assert ties.sum() > 20
    loop = ref_counts_by_if_loop(c, T)
    closed = rate_spike_count(c, T, 1.0, 0.5)
    np.testing.assert_array_equal(loop, closed)
    np.testing.assert_array_equal((y[0].numpy() * T).round().astype(np.int64), loop)


def test_eval_paper_rule_streams_equal_T_and_rates_otherwise():
    n = neuron(init_T=4, eval_rule="paper").eval()
    # stream: input already has T=4 steps, each step driven by its own value
    x = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(4, 1, 1, 1, 1).expand(4, 1, 3, 4, 4)
    y = n(x)
    assert y.shape == (4, 1, 3, 4, 4)
    assert y[:, 0, 0, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    # rate: 2-step input -> mean 0.5 for 4 steps from v0=0.5 -> spikes at t=0, 2
    y = n(torch.tensor([1.0, 0.0]).view(2, 1, 1, 1, 1).expand(2, 1, 3, 4, 4))
    assert y[:, 0, 0, 0, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    # the count equals the closed form for constant drive
    x = torch.rand(1, 8, 3, 4, 4) * 1.4 - 0.2
    counts = n(x).sum(0).numpy()
    np.testing.assert_array_equal(counts, rate_spike_count(x[0].numpy(), 4, 1.0, 0.5))


def test_paper_rule_rejects_per_channel_T():
    with pytest.raises(ValueError, match="granularity='layer'"):
        neuron(granularity="channel", eval_rule="paper")


def test_calibration_forward_is_deployed_output_with_ste_gradient():
    n = neuron(init_T=4).train()
    n.calibrating = True
    x = torch.tensor([0.1, 0.3, 0.6, 1.4, -0.2]).view(1, 1, 5).requires_grad_()
    n.shape = (5,)
    y = n(x)
    assert y.flatten().tolist() == [0.0, 0.25, 0.5, 1.0, 0.0]
    y.sum().backward()
    assert x.grad.flatten().tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_deploy_spec():
    n = neuron(granularity="channel", init_T=5, scale=0.5)
    spec = n.deploy_spec()
    assert spec.timesteps.shape == (3, 1, 1) and torch.all(spec.timesteps == 5)
    assert (spec.threshold, spec.v0, spec.coupling, spec.reset) == (1.0, 0.5, "rate", "soft")
    assert float(spec.scale) == 0.5 and float(spec.bias) == 0.0
    assert neuron(eval_rule="paper").deploy_spec().coupling == "stream"


@pytest.mark.parametrize("kwargs, match", [
    ({"granularity": "pixel"}, "granularity"),
    ({"noise_type": "laplace"}, "noise_type"),
    ({"init_T": 20}, "init_T"),
    ({"min_T": 5, "max_T": 2}, "min_T"),
    ({"noise_prob": 1.5}, "noise_prob"),
    ({"eval_rule": "exact"}, "eval_rule"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neuron(**kwargs)


def test_shape_required_for_channel_granularity():
    with pytest.raises(ValueError, match="shape"):
        PseudoSpikingNeuron(granularity="channel")


def test_registry():
    assert isinstance(make_neuron("pseudo", (4,), init_T=3), PseudoSpikingNeuron)
    assert make_neuron("relu", (4,))(torch.tensor([[[-1.0, 2.0, 0.0, 1.0]]])).tolist() == \
        [[[0.0, 2.0, 0.0, 1.0]]]
    with pytest.raises(UnknownNeuronFamily, match="pseudo") as err:
        make_neuron("psuedo")
    assert "known families" in str(err.value)
