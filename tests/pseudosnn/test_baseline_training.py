"""Every baseline family trains on digits far above chance (10%): with a tiny loop on the
zoo models, and through the project's trainer from each family's digits config.

Eval accuracy uses each family's eval semantics (NSNN: stochastic by default)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.datasets import load_digits

from pseudosnn.config import load_config
from pseudosnn.models import build_model
from pseudosnn.neurons import make_neuron
from pseudosnn.neurons.asgl import set_noise_epoch
from pseudosnn.trainer import train

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
    acc, _ = train_and_test("cnn_digits", neuron, digits, epochs=2)
    assert acc > 0.85, f"{name}: test accuracy {acc:.3f}"


CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASELINE_FAMILIES = ("if", "lif", "asgl", "nsnn", "multispike", "qcfs", "relu")


def _baseline_configs(folder: str) -> list[Path]:
    return sorted(p for p in (CONFIGS / folder).glob("*_*.yaml")
                  if p.stem.split("_")[0] in BASELINE_FAMILIES)


def test_every_family_has_digits_and_cifar_configs():
    for folder in ("digits", "cifar10", "cifar100"):
        families = {p.stem.split("_")[0] for p in _baseline_configs(folder)}
        assert families == set(BASELINE_FAMILIES), (folder, families)


@pytest.mark.parametrize("folder", ["digits", "cifar10", "cifar100"])
def test_baseline_configs_load_and_their_neurons_build(folder):
    for path in _baseline_configs(folder):
        cfg = load_config(path)
        family = path.stem.split("_")[0]
        assert cfg["neuron"]["family"] == family, path
        assert cfg["penalty"] == 0.0, path  # fixed-T families take no hardware penalty
        kwargs = {k: v for k, v in cfg["neuron"].items() if k != "family"}
        shape = (1, 8, 8) if folder == "digits" else (64, 32, 32)
        make_neuron(family, shape, **kwargs)  # every key is a real constructor argument
        if folder == "digits":
            build_model(cfg["model"], num_classes=10, input_shape=(1, 8, 8),
                        neuron=cfg["neuron"])


@pytest.mark.parametrize("family", BASELINE_FAMILIES)
def test_trainer_trains_each_family_from_its_digits_config(family, tmp_path, digits):
    cfg = load_config(CONFIGS / "digits" / f"{family}_mlp.yaml",
                      {"epochs": 3, "progress": False, "threads": 1})
    summary = train(cfg, tmp_path, log=lambda _msg: None)
    assert summary["best_test_acc"] > 0.85, (family, summary)
    assert (tmp_path / "best.pth").is_file()


def test_trainer_applies_the_asgl_noise_schedule(tmp_path, digits, monkeypatch):
    """The trainer calls ASGLNeuron.set_epoch: with milestones at epochs 0 and 1 of 3 and
    gamma 0.5, the last epoch trains with p = 0.2 * 0.25 (seen by a forward hook)."""
    from pseudosnn.neurons.asgl import ASGLNeuron

    seen: list[float] = []
    original = ASGLNeuron.hybrid_spike

    def spy(self, z):
        if self.training:
            seen.append(self.p)
        return original(self, z)

    cfg = load_config(CONFIGS / "digits" / "asgl_mlp.yaml",
                      {"epochs": 3, "progress": False, "threads": 1,
                       "neuron.gamma": 0.5, "neuron.milestones": [0.0, 0.34]})
    monkeypatch.setattr(ASGLNeuron, "hybrid_spike", spy)
    train(cfg, tmp_path, log=lambda _msg: None)
    assert seen[0] == pytest.approx(0.2) and seen[-1] == pytest.approx(0.05)
