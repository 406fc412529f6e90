"""QCFS clip-floor-shift activation: formula, STE gradients, exact IF equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pseudosnn.compiler.spiking.semantics import if_step, rate_spike_count

from pseudosnn.neurons.qcfs import QCFSNeuron


def test_forward_known_values():
    n = QCFSNeuron(L=4, init_lambda=2.0)
    x = torch.tensor([-1.0, 0.2, 0.25, 0.3, 0.8, 1.9, 5.0]).view(1, 1, -1)
    # x*L/lam + 1/2 = 2x + .5 -> floor: 0(-1.5), 0(.9), 1(1.0), 1(1.1), 2(2.1), 4(4.3), 10
    expected = [0.0, 0.0, 0.5, 0.5, 1.0, 2.0, 2.0]
    assert n(x).flatten().tolist() == expected


def test_ste_gradients_wrt_input_and_lambda():
    lam, L = 2.0, 4
    x = torch.tensor([-1.0, 0.3, 0.8, 5.0], dtype=torch.float64).view(1, 1, -1)
    x.requires_grad_(True)
    n = QCFSNeuron(L=L, init_lambda=lam).double()
    n(x).sum().backward()
    q = torch.floor(x.detach() * L / lam + 0.5) / L
    inside = (q > 0) & (q < 1)
    # y = lam * q(x/lam) with identity-gradient floor: dy/dx = 1 inside, dy/dlam = q - x/lam
    torch.testing.assert_close(x.grad, inside.double())
    dlam = torch.where(inside, q - x.detach() / lam, (q >= 1).double())
    assert n.lam.grad.item() == pytest.approx(dlam.sum().item())


def test_deploy_spec_equals_if_neuron_exactly_ties_included():
    """QCFS forward == closed-form count == explicit step-by-step IF loop (v0 = lam/2),
    on random inputs plus dyadic inputs at exact rounding ties."""
    L, lam = 8, 2.0
    n = QCFSNeuron(L=L, init_lambda=lam).double()
    spec = n.deploy_spec()
    assert (spec.threshold, spec.v0, spec.out_scale, int(spec.timesteps)) == (lam, 1.0, lam, L)
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(500, generator=g, dtype=torch.float64) * 3 - 0.5
    ties = (torch.arange(-2, 20, dtype=torch.float64) + 0.5) * lam / L  # x*L/lam + 1/2 integer
    x = torch.cat([rand, ties]).view(1, 1, -1)
    y = n(x).detach().numpy().ravel()
    c = x.numpy().ravel()
    closed = rate_spike_count(c, L, spec.threshold, spec.v0)
    np.testing.assert_array_equal(closed * lam / L, y)
    v, count = np.full_like(c, spec.v0), np.zeros_like(c)
    for _ in range(L):
        v, s = if_step(v, c, spec.threshold)
        count += s
    np.testing.assert_array_equal(count, closed)


def test_lambda_learns_and_freezes():
    assert QCFSNeuron(learn_lambda=False).lam.requires_grad is False
    with pytest.raises(ValueError, match="L"):
        QCFSNeuron(L=0)
