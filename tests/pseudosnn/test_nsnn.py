"""NSNN noisy LIF: noise moments, CDF/density, firing probability, implied gradient."""

from __future__ import annotations

import math

import pytest
import torch

from pseudosnn.neurons.nsnn import NOISE_LAWS, NoisyLIFNeuron

LAWS = sorted(NOISE_LAWS)


@pytest.mark.parametrize("name", LAWS)
def test_noise_moments_and_cdf(name):
    torch.manual_seed(0)
    law, s, n = NOISE_LAWS[name], 0.5, 400_000
    eps = law.sample((n,), s).double()
    var = law.variance(s)
    assert eps.mean().item() == pytest.approx(0.0, abs=5 * math.sqrt(var / n))
    assert eps.var().item() == pytest.approx(var, rel=0.02)
    assert (eps ** 3).mean().item() == pytest.approx(0.0, abs=0.01)  # symmetric
    pts = torch.tensor([-0.6, -0.3, -0.1, 0.0, 0.2, 0.45], dtype=torch.float64)
    empirical = (eps[None, :] <= pts[:, None]).double().mean(1)
    torch.testing.assert_close(empirical, law.cdf(pts, s), atol=4e-3, rtol=0)


@pytest.mark.parametrize("name", LAWS)
def test_density_is_derivative_of_cdf_and_integrates_to_one(name):
    law, s = NOISE_LAWS[name], 0.4
    x = torch.linspace(-8, 8, 16001, dtype=torch.float64)
    keep = ((x.abs() - s).abs() > 1e-3) & (x.abs() > 1e-3)  # away from kinks
    xs = x[keep].clone().requires_grad_(True)
    (d,) = torch.autograd.grad(law.cdf(xs, s).sum(), xs)
    torch.testing.assert_close(law.pdf(xs.detach(), s), d)
    assert torch.trapezoid(law.pdf(x, s), x).item() == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("name", LAWS)
def test_firing_probability_is_cdf_and_gradient_is_density(name):
    torch.manual_seed(0)
    n = NoisyLIFNeuron(T=1, noise=name, sigma=0.4, threshold=1.0).double().train()
    u = torch.tensor([0.7, 0.9, 1.0, 1.15], dtype=torch.float64)
    x = u.repeat(100_000, 1).unsqueeze(0).requires_grad_(True)  # [1, B, 4]
    out = n(x)
    p = out.mean(dim=(0, 1))
    torch.testing.assert_close(p, n.law.cdf(u - 1.0, 0.4), atol=6e-3, rtol=0)
    out.sum().backward()
    torch.testing.assert_close(x.grad[0, 0], n.law.pdf(u - 1.0, 0.4))


def test_noise_stays_in_membrane_and_hard_reset():
    torch.manual_seed(0)
    n = NoisyLIFNeuron(T=3, noise="uniform", sigma=1e-6, tau=2.0).eval()
    n.eval_mode = "deterministic"
    out = n(torch.full((1, 1, 1), 0.8))
    # v: .8, .4+.8=1.2 -> spike -> 0, .8
    assert out.flatten().tolist() == [0, 1, 0]


def test_eval_modes():
    torch.manual_seed(0)
    n = NoisyLIFNeuron(T=2, noise="gaussian", sigma=0.4).eval()
    x = torch.full((1, 2000, 1), 1.0)
    a, b = n(x), n(x)
    assert not torch.equal(a, b)  # stochastic at test time (reference behaviour)
    n.eval_mode = "deterministic"
    assert torch.equal(n(x), n(x))


def test_errors_and_not_deployable():
    with pytest.raises(ValueError, match="gaussian"):
        NoisyLIFNeuron(noise="poisson")
    with pytest.raises(ValueError, match="eval_mode"):
        NoisyLIFNeuron(eval_mode="mean")
    spec = NoisyLIFNeuron(tau=2.0).deploy_spec()  # the deterministic threshold neuron
    assert (spec.dv, spec.reset, spec.v_reset, spec.v0) == (0.5, "hard", 0.0, 0.0)
    assert "stochastically in training and at eval" in spec.note
    assert "in training (" in NoisyLIFNeuron(eval_mode="deterministic").deploy_spec().note
