"""ASGL hybrid neuron: mask statistics, gradient through H_alpha, width granularity, schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseudosnn.neurons import NotDeployable
from pseudosnn.neurons.asgl import ASGLNeuron, noise_rate, set_noise_epoch
from pseudosnn.neurons.surrogate import SURROGATES


def _analog_region_input(n: int = 200_000) -> torch.Tensor:
    """Currents whose z = v - theta lies where H_alpha is strictly between 0 and 1."""
    g = torch.Generator().manual_seed(1)
    return (1.0 + (torch.rand(1, 1, n, generator=g) - 0.5)).double()  # z in (-0.5, 0.5)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.7])
def test_mask_statistics_fraction_of_exact_spikes_is_one_minus_p(p):
    torch.manual_seed(0)
    n = ASGLNeuron(T=1, p=p, alpha=1.0, surrogate="rectangle").double().train()
    x = _analog_region_input()
    out = n(x).flatten()
    z = x.flatten() - 1.0
    heaviside = (z >= 0).double()
    smooth = SURROGATES["rectangle"].step(z, 1.0)
    is_spike = torch.isclose(out, heaviside, rtol=0, atol=1e-12)
    is_analog = torch.isclose(out, smooth, rtol=0, atol=1e-12)
    assert bool((is_spike | is_analog).all())  # every output is one or the other
    frac = is_spike.double().mean().item()
    assert frac == pytest.approx(1.0 - p, abs=0.01)  # binomial sd < 0.0012


def test_mask_is_fresh_each_step():
    torch.manual_seed(0)
    n = ASGLNeuron(T=2, p=0.5, decay=0.5, v_reset=0.0).double().train()
    masks = []
    for _ in range(2):
        masks.append(n.hybrid_spike(torch.full((10_000,), 0.1, dtype=torch.float64)))
    assert not torch.equal(masks[0], masks[1])


@pytest.mark.parametrize("surrogate", ["sigmoid", "atan", "rectangle"])
def test_gradient_flows_through_smooth_step_whatever_the_mask(surrogate):
    torch.manual_seed(0)
    alpha = 2.0
    n = ASGLNeuron(T=1, p=0.5, alpha=alpha, surrogate=surrogate).double().train()
    x = _analog_region_input(1000).requires_grad_(True)
    n(x).sum().backward()
    z = x.detach() - 1.0
    torch.testing.assert_close(x.grad, SURROGATES[surrogate].grad(z, alpha))
    assert n.log_alpha.grad is not None and n.log_alpha.grad.abs().item() > 0


@pytest.mark.parametrize("gran,shape,pshape", [
    ("layer", (3, 4, 4), ()), ("channel", (3, 4, 4), (3, 1, 1)), ("channel", (7,), (7,)),
    ("neuron", (3, 4, 4), (3, 4, 4)),
])
def test_width_granularity(gran, shape, pshape):
    n = ASGLNeuron(shape, granularity=gran, T=2)
    assert tuple(n.log_alpha.shape) == pshape
    out = n(torch.randn(1, 2, *shape) + 1.0)
    out.sum().backward()
    assert n.log_alpha.grad.shape == n.log_alpha.shape


def test_granularity_needs_shape():
    with pytest.raises(ValueError, match="shape"):
        ASGLNeuron(granularity="channel")


def test_eval_is_heaviside_lif_with_hard_reset():
    n = ASGLNeuron(T=4, decay=0.5, learn_decay=False, threshold=1.0, p=0.9).eval()
    out = n(torch.full((1, 1, 1), 0.8))
    # v: .8, .4+.8=1.2 -> spike -> 0, .8, 1.2 -> spike
    assert out.flatten().tolist() == [0, 1, 0, 1]
    n.eval_spike = False
    smooth = n(torch.full((1, 1, 1), 0.8)).flatten()
    assert 0 < smooth[0].item() < 1


def test_p_zero_training_equals_eval_forward():
    torch.manual_seed(0)
    n = ASGLNeuron((5,), T=3, p=0.0, granularity="neuron")
    x = torch.randn(1, 8, 5) + 1.0
    train_out = n.train()(x)
    eval_out = n.eval()(x)
    torch.testing.assert_close(train_out, eval_out)


def test_noise_rate_schedule():
    # milestones at epochs 0 and 5 of 10: reduced after each finishes
    ms = (0.0, 0.5)
    assert noise_rate(0.2, 0.5, ms, 0, 10) == pytest.approx(0.2)
    assert noise_rate(0.2, 0.5, ms, 1, 10) == pytest.approx(0.1)
    assert noise_rate(0.2, 0.5, ms, 5, 10) == pytest.approx(0.1)
    assert noise_rate(0.2, 0.5, ms, 6, 10) == pytest.approx(0.05)
    model = torch.nn.Sequential(ASGLNeuron(p=0.2, gamma=0.5, milestones=ms),
                                ASGLNeuron(p=0.2, gamma=0.5, milestones=ms))
    assert set_noise_epoch(model, 6, 10) == pytest.approx(0.05)
    assert all(m.p == pytest.approx(0.05) for m in model)
    assert set_noise_epoch(torch.nn.Linear(2, 2), 0, 10) is None


def test_deploys_its_spiking_eval_forward():
    """The eval forward is a LIF with hard reset: the contract's step with the spec gives
    the same spikes; the training noise is named in the note; an analog eval does not
    deploy."""
    from pseudosnn.compiler.spiking.semantics import Dynamics, neuron_step

    n = ASGLNeuron((300,), T=5, decay=0.35, v_reset=-0.2).double().eval()
    x = torch.randn(5, 2, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    spec = n.deploy_spec()
    dyn = Dynamics(dv=spec.dv, reset="hard", v_reset=spec.v_reset)
    v, want, got = np.zeros((2, 300)), (n(x) != 0).numpy(), []
    for t in range(5):
        v, _, s = neuron_step(v, None, x[t].numpy(), spec.threshold, dyn)
        got.append(s)
    assert want.any() and np.array_equal(np.stack(got), want)
    assert "spike noise (a fraction p=0.2" in spec.note
    assert ASGLNeuron(p=0.0).deploy_spec().note is None
    with pytest.raises(NotDeployable, match="eval_spike=False"):
        ASGLNeuron(eval_spike=False).deploy_spec()
