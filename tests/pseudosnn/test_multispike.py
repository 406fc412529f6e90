"""MultiSpike integer-count neuron and its deployment as a rate population."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pseudosnn.compiler.spiking.semantics import rate_spike_count

from pseudosnn.neurons import NotDeployable
from pseudosnn.neurons.multispike import MultiSpikeNeuron


def test_forward_known_values():
    n = MultiSpikeNeuron(max_value=4)
    x = torch.tensor([-1.0, 0.4, 0.6, 2.2, 3.7, 7.0]).view(1, 1, 6)
    assert (n(x) * 4).flatten().tolist() == [0, 0, 1, 2, 4, 4]
    n2 = MultiSpikeNeuron(max_value=4, norm=2.0)
    assert n2(x).flatten().tolist() == [0, 0, 0.5, 1.0, 2.0, 2.0]


def test_straight_through_gradient():
    n = MultiSpikeNeuron(min_value=0, max_value=4, norm=2.0)
    x = torch.tensor([-1.0, 0.0, 0.4, 3.9, 4.0, 4.5]).view(1, 1, 6).requires_grad_(True)
    n(x).sum().backward()
    assert x.grad.flatten().tolist() == [0.0, 0.5, 0.5, 0.5, 0.5, 0.0]


def test_time_mean_of_multistep_input():
    n = MultiSpikeNeuron(max_value=4)
    x = torch.tensor([[1.0], [2.0], [3.0], [2.0]]).view(4, 1, 1)
    out = n(x)
    assert out.shape == (1, 1, 1) and out.item() == 0.5  # round(2)/4


@pytest.mark.parametrize("max_value,norm", [(4, None), (6, 2.0), (1, None)])
def test_deploy_spec_reproduces_forward(max_value, norm):
    n = MultiSpikeNeuron((50,), max_value=max_value, norm=norm)
    spec = n.deploy_spec()
    assert spec.coupling == "rate" and spec.reset == "soft"
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(1, 8, 50, generator=g, dtype=torch.float64) * (max_value + 3) - 1.5)
    x = x[(x - x.floor() - 0.5).abs() > 1e-6].view(1, 1, -1)  # no exact ties (see docstring)
    c = spec.scale * x.numpy() + spec.bias
    T = int(spec.timesteps)
    counts = rate_spike_count(c, T, spec.threshold, spec.v0)
    np.testing.assert_allclose(spec.out_scale * counts / T, n(x).numpy(), rtol=0, atol=1e-12)


def test_negative_min_not_deployable_and_bad_args():
    with pytest.raises(NotDeployable, match="min_value"):
        MultiSpikeNeuron(min_value=-2).deploy_spec()
    with pytest.raises(ValueError, match="max_value"):
        MultiSpikeNeuron(max_value=0)
