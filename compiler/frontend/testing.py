"""Test helpers on the torch side of the compiler: randomised zoo models and spike counts
captured from the torch eval forward (float64), used by the differential tests and the
benchmark."""

from __future__ import annotations

import numpy as np

DEPLOYABLE_FAMILIES = {
    "pseudo-layer": {"family": "pseudo", "granularity": "layer"},
    "pseudo-channel": {"family": "pseudo", "granularity": "channel"},
    "pseudo-neuron": {"family": "pseudo", "granularity": "neuron"},
    "qcfs": {"family": "qcfs"},
    "multispike": {"family": "multispike"},
    "if": {"family": "if", "T": 4},
    "if-hard-reset": {"family": "if", "T": 4, "reset": "hard", "v_reset": -0.25},
    "lif": {"family": "lif", "T": 4},
    "lif-hard-reset": {"family": "lif", "T": 4, "tau": 3.0, "decay_input": True,
                       "reset": "hard"},
    "asgl": {"family": "asgl", "T": 3},
    "nsnn": {"family": "nsnn", "T": 3, "eval_mode": "deterministic"},
}
"""Every neuron family the compiler deploys, as a zoo ``neuron`` config (PseudoSN at its
three granularities, the multi-step families with their deployed eval, QCFS, MultiSpike)."""
DIGITS_ARCHS = [("mlp_digits", (64,)), ("cnn_digits", (1, 8, 8)), ("rescnn_digits", (1, 8, 8))]


def compiled_family(arch: str, shape: tuple[int, ...], family: str, seed: int = 5):
    """The scheduled float spiking graph of zoo model ``arch`` with randomised parameters
    and the neurons of :data:`DEPLOYABLE_FAMILIES` ``[family]``."""
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend.torch_model import model_to_ir

    from pseudosnn.models import build_model

    model = build_model(arch, num_classes=10, input_shape=shape,
                        neuron=DEPLOYABLE_FAMILIES[family])
    randomize(model, seed=seed)
    return pipeline.run(model_to_ir(model.double().eval())).graph


def randomize(model, seed: int = 0, t_lo: int = 1, t_hi: int = 16):
    """Random BN statistics/affine, neuron scale/bias and T (logits) in a zoo model."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
            if hasattr(m, "logit"):
                m.logit.normal_(0, 2.0, generator=g)
                m.scale.uniform_(0.7, 1.3, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
    return model.eval()


def _forward_capturing(model, x, capture) -> np.ndarray:
    """The model's float64 readout on ``x``; ``capture(name, neuron, output)`` sees every
    neuron's output on the way."""
    import torch

    from pseudosnn.neurons.base import SpikingNeuron

    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: capture(name, mod, out))
             for name, m in model.named_modules() if isinstance(m, SpikingNeuron)]
    try:
        with torch.no_grad():
            return model.double()(torch.as_tensor(x, dtype=torch.float64)).numpy()
    finally:
        for h in hooks:
            h.remove()


def torch_counts(model, x):
    """Run the model (float64) and capture every neuron's spike counts ``n = r·T/a``."""
    import torch

    counts = {}

    def capture(name, mod, out):
        spec = mod.deploy_spec()
        T = spec.timesteps.double()
        counts[name] = torch.round(out.mean(0) * T / spec.out_scale).long().numpy()

    return _forward_capturing(model, x, capture), counts


def spike_trains(model, x):
    """Run the model (float64, eval) and capture every neuron's output spikes
    ``[T, B, *features]`` (bool), with the readout."""
    trains = {}
    y = _forward_capturing(model.eval(), x,
                           lambda name, mod, out: trains.__setitem__(name, (out != 0).numpy()))
    return y, trains


def first_mismatch(a: dict, b: dict, order) -> tuple[str, int] | None:
    for name in order:
        if name in a and name in b:
            bad = int(np.sum(np.asarray(a[name]) != np.asarray(b[name])))
            if bad:
                return name, bad
    return None
