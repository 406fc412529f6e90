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


def compiled_family(arch: str, shape: tuple[int, ...], family: str, seed: int = 5,
                    pooling: str = "default"):
    """The scheduled float spiking graph of zoo model ``arch`` (``pooling``: the zoo's
    option) with randomised parameters and the neurons of :data:`DEPLOYABLE_FAMILIES`
    ``[family]``."""
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend.torch_model import model_to_ir

    from pseudosnn.models import build_model

    model = build_model(arch, num_classes=10, input_shape=shape,
                        neuron=DEPLOYABLE_FAMILIES[family], pooling=pooling)
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


def forward_with_hooks(model, x, hooks) -> np.ndarray:
    """``model(x)`` in float64 without gradients, with the forward hooks ``hooks``
    (``(module, fn)`` pairs) attached for that one call."""
    import torch

    model = model.double()
    handles = [m.register_forward_hook(fn) for m, fn in hooks]
    try:
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float64)).numpy()
    finally:
        for h in handles:
            h.remove()


def torch_counts(model, x):
    """Run the model (float64) and capture every neuron's spike counts ``n = r·T/a`` and
    every spike pool's (``<name>.pool``, of its neuron's T and ``a``; a rate neuron inside
    a pool, which eval does not call, is run on the pool's input)."""
    import torch

    from pseudosnn.models.layers import SpikePool
    from pseudosnn.neurons.base import SpikingNeuron

    model = model.double()  # the specs' T from the float64 parameters the forward uses
    counts, hooks = {}, []

    def count(out, spec):
        return torch.round(out.mean(0) * spec.timesteps.double() / spec.out_scale).long().numpy()

    for name, m in model.named_modules():
        if isinstance(m, SpikingNeuron):
            spec = m.deploy_spec()

            def hook(mod, inp, out, name=name, spec=spec):
                counts[name] = count(out, spec)
            hooks.append((m, hook))
        elif isinstance(m, SpikePool):
            spec = m.sn.deploy_spec()

            def pool_hook(mod, inp, out, name=name, spec=spec):
                counts[f"{name}.sn"] = count(mod.sn(inp[0]), spec)
                counts[f"{name}.pool"] = count(out, spec)
            hooks.append((m, pool_hook))
    return forward_with_hooks(model, x, hooks), counts


def spike_trains(model, x):
    """Run the model (float64, eval) and capture every neuron's output spikes
    ``[T, B, *features]`` (bool) and every spike pool's (``<name>.pool``), with the
    readout. For multi-step families (their eval output is the train)."""
    from pseudosnn.models.layers import SpikePool
    from pseudosnn.neurons.base import SpikingNeuron

    trains = {}

    def recorder(name):
        def hook(mod, inp, out):
            trains[name] = (out != 0).numpy()
        return hook

    hooks = [(m, recorder(f"{name}.pool" if isinstance(m, SpikePool) else name))
             for name, m in model.named_modules() if isinstance(m, SpikePool | SpikingNeuron)]
    return forward_with_hooks(model.eval(), x, hooks), trains


def first_mismatch(a: dict, b: dict, order) -> tuple[str, int] | None:
    for name in order:
        if name in a and name in b:
            bad = int(np.sum(np.asarray(a[name]) != np.asarray(b[name])))
            if bad:
                return name, bad
    return None
