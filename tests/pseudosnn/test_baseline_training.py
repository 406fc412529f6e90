"""Every baseline family trains on digits (zoo model, tiny loop) far above chance (10%).

Eval accuracy uses each family's eval semantics (NSNN: stochastic by default)."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from pseudosnn.models import build_model
from pseudosnn.neurons.asgl import set_noise_epoch

FAMILIES = {
    "if": {"family": "if", "T": 4},
    "if_hard_atan": {"family": "if", "T": 4, "reset": "hard", "surrogate": "atan"},
    "lif": {"family": "lif", "T": 4, "tau": 2.0},
    "lif_rectangle": {"family": "lif", "T": 4, "surrogate": "rectangle"},
    "asgl": {"family": "asgl", "T": 2, "alpha": 2.0, "p": 0.3, "gamma": 0.5,
             "milestones": [0.0, 0.5]},
    "nsnn_gaussian": {"family": "nsnn", "T": 2, "noise": "gaussian"},
    "nsnn_logistic": {"family": "nsnn", "T": 2, "noise": "logistic"},
    "nsnn_triangular": {"family": "nsnn", "T": 2, "noise": "triangular"},
    "nsnn_uniform": {"family": "nsnn", "T": 2, "noise": "uniform"},
    "multispike": {"family": "multispike", "max_value": 4},
    "qcfs": {"family": "qcfs", "L": 8, "init_lambda": 4.0},
}


@pytest.fixture(scope="module")
def digits():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine is shared; small models gain nothing from more
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    yield x[:1437], y[:1437], x[1437:], y[1437:]
    torch.set_num_threads(threads)


def train_and_test(arch: str, neuron: dict, data, epochs: int) -> tuple[float, torch.nn.Module]:
    xtr, ytr, xte, yte = data
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, input_shape=(1, 8, 8), neuron=neuron)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(epochs):
        set_noise_epoch(model, epoch, epochs)
        model.train()
        perm = torch.randperm(len(ytr))
        for i in range(0, len(ytr), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (model.eval()(xte).argmax(1) == yte).float().mean().item()
    return acc, model


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_trains_on_digits_mlp(name, digits):
    acc, model = train_and_test("mlp_digits", FAMILIES[name], digits, epochs=5)
    assert acc > 0.85, f"{name}: test accuracy {acc:.3f}"
    assert all(n.family == FAMILIES[name]["family"] for _, n in model.neurons())


def test_asgl_schedule_reached_the_last_rate(digits):
    _, model = train_and_test("mlp_digits", FAMILIES["asgl"], digits, epochs=3)
    # milestones at epochs 0 and 1 of 3: p = 0.3 * 0.5**2 during the last epoch
    assert all(n.p == pytest.approx(0.075) for _, n in model.neurons())


@pytest.mark.parametrize("name,neuron", [
    ("if", {"family": "if", "T": 4}),
    ("asgl_channel", {"family": "asgl", "T": 2, "alpha": 2.0, "granularity": "channel"}),
    ("qcfs", {"family": "qcfs", "L": 4, "init_lambda": 4.0}),
])
def test_family_trains_on_digits_cnn(name, neuron, digits):
    acc, _ = train_and_test("cnn_digits", neuron, digits, epochs=3)
    assert acc > 0.85, f"{name}: test accuracy {acc:.3f}"
