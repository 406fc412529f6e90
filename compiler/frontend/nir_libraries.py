"""Reference networks of the outside SNN libraries, run in their own time loops and written
with their own NIR exporters (for the differential tests and ``examples/08_nir_interop.py``).

Each ``*_run(folder, steps, batch, seed)`` builds a small network of one library (snnTorch:
conv + Leaky + linear + Leaky; Norse: linear + LIFBoxCell + linear + LIFCell; SpikingJelly:
conv + LIFNode + avg-pool + linear + LIFNode; sinabs: conv + IAF + sum-pool + linear + LIF),
feeds the same input at every step through the library's own loop, records every spiking
layer's output per step, and exports the network with the library's exporter. Every
library's model is float32, as its users run it. :func:`agreement` compares those spikes
with a simulation of the imported graph, step for step and neuron for neuron, under the
importer's shift (our step ``t + start`` is the library's ``t``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LibraryRun:
    """One library's network: its NIR file, how to read it, its input and its spikes."""

    library: str
    path: Path
    dialect: str
    dt: float | None
    x: np.ndarray  # (B, *input shape), the input of every step
    spikes: dict[str, np.ndarray]  # NIR node key -> (B, steps, *shape) of 0/1
    output: str  # the NIR key of the spiking layer the Output reads


def _recorder(net, keys: dict[str, int | str]):
    """Forward hooks that append every step's spikes of ``net[i]`` under NIR key ``k``
    (``net``: a module list or a dict of named modules)."""
    rec = {k: [] for k in keys}

    def hook(k):
        def fn(_module, _inputs, out):
            out = out[0] if isinstance(out, tuple) else out
            rec[k].append(out.detach().numpy().copy())
        return fn

    handles = [net[i].register_forward_hook(hook(k)) for k, i in keys.items()]
    return rec, handles


def _stacked(rec: dict[str, list], steps: int) -> dict[str, np.ndarray]:
    return {k: np.stack(v[:steps], axis=1).astype(np.float64) for k, v in rec.items()}


def snntorch_run(folder: Path, steps: int = 20, batch: int = 4, seed: int = 0) -> LibraryRun:
    """snnTorch 1.0.0: Conv2d -> Leaky -> Flatten -> Linear -> Leaky on 1x8x8 inputs,
    ``reset_mechanism="zero"`` (the reset its NIR files state)."""
    import nir
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        snn.Leaky(beta=torch.full((4, 8, 8), 0.9), threshold=torch.full((4, 8, 8), 0.5),
                  init_hidden=True, reset_mechanism="zero"),
        torch.nn.Flatten(), torch.nn.Linear(256, 10),
        snn.Leaky(beta=torch.full((10,), 0.8), threshold=torch.full((10,), 0.3),
                  init_hidden=True, output=True, reset_mechanism="zero"))
    with torch.no_grad():
        net[3].weight.mul_(2.0)
    x = torch.rand(batch, 1, 8, 8) * 2.0
    rec, handles = _recorder(net, {"1": 1, "4": 4})
    with torch.no_grad():
        for _ in range(steps):
            net(x)
    for h in handles:
        h.remove()
    path = Path(folder) / "snntorch.nir"
    nir.write(str(path), export_to_nir(net, x[:1], ignore_dims=[0]))
    return LibraryRun("snnTorch", path, "snntorch", None, x.numpy().astype(np.float64),
                      _stacked(rec, steps), "4")


def norse_run(folder: Path, steps: int = 30, batch: int = 4, seed: int = 0) -> LibraryRun:
    """Norse 1.1.0: Linear -> LIFBoxCell -> Linear -> LIFCell (a current-based LIF), dt
    1e-3 (``to_nir``'s default)."""
    import nir
    import norse.torch as norse
    import torch

    torch.manual_seed(seed)
    net = norse.SequentialState(
        torch.nn.Linear(6, 8),
        norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.full((8,), 100.0),
                                                v_th=torch.full((8,), 0.2),
                                                v_leak=torch.zeros(8))),
        torch.nn.Linear(8, 3, bias=False),
        norse.LIFCell(norse.LIFParameters(tau_mem_inv=torch.full((3,), 100.0),
                                          tau_syn_inv=torch.full((3,), 200.0),
                                          v_th=torch.full((3,), 0.1), v_leak=torch.zeros(3))))
    with torch.no_grad():
        net[0].weight.abs_()
        net[2].weight.abs_()
    x = torch.rand(batch, 6) * 2.0
    rec, handles = _recorder(net, {"1": 1, "3": 3})
    state = None
    with torch.no_grad():
        for _ in range(steps):
            _, state = net(x, state)
    for h in handles:
        h.remove()
    path = Path(folder) / "norse.nir"
    nir.write(str(path), norse.to_nir(net, x[0]))
    return LibraryRun("Norse", path, "norse", 1e-3, x.numpy().astype(np.float64),
                      _stacked(rec, steps), "3")


def spikingjelly_run(folder: Path, steps: int = 20, batch: int = 4,
                     seed: int = 0) -> LibraryRun:
    """SpikingJelly 2.0.0: Conv2d -> LIFNode (decay_input) -> AvgPool2d -> Flatten ->
    Linear -> LIFNode (no decay_input), dt 1e-4 (``export_to_nir``'s default)."""
    import torch
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange.to_nir import export_to_nir

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1),
        neuron.LIFNode(tau=2.0, v_threshold=0.3, v_reset=0.0),
        layer.AvgPool2d(2), layer.Flatten(), layer.Linear(64, 10),
        neuron.LIFNode(tau=4.0, decay_input=False, v_threshold=0.5, v_reset=0.0))
    with torch.no_grad():
        net[4].weight.abs_()
    x = torch.rand(batch, 1, 8, 8) * 3.0
    rec, handles = _recorder(net, {"_1": 1, "_5": 5})
    functional.reset_net(net)
    with torch.no_grad():
        for _ in range(steps):
            net(x)
    for h in handles:
        h.remove()
    functional.reset_net(net)
    path = Path(folder) / "spikingjelly.nir"
    export_to_nir(net, x[:1], save_path=str(path), dt=1e-4)
    return LibraryRun("SpikingJelly", path, "spikingjelly", 1e-4,
                      x.numpy().astype(np.float64), _stacked(rec, steps), "_5")


def sinabs_run(folder: Path, steps: int = 20, batch: int = 4, seed: int = 0,
               multi_spike: bool = False) -> LibraryRun:
    """sinabs 3.1.3: Conv2d -> IAF -> SumPool2d -> Flatten -> Linear -> LIF (tau 5 steps,
    ``norm_input=False``) with ``SingleSpike`` (or sinabs's default ``MultiSpike``, whose
    counts above 1 per step no binary spike train can equal); sinabs runs the whole loop in
    one call on the batch folded with time (batch major)."""
    import nir
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MultiSpike, SingleSpike
    from sinabs.nir import to_nir

    torch.manual_seed(seed)
    fn = MultiSpike if multi_spike else SingleSpike
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1),
        sl.IAFSqueeze(batch_size=batch, spike_threshold=1.0, spike_fn=fn),
        sl.SumPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, 4),
        sl.LIFSqueeze(tau_mem=torch.full((4,), 5.0), batch_size=batch,
                      spike_threshold=torch.full((4,), 1.0), norm_input=False, spike_fn=fn))
    with torch.no_grad():
        net[0].weight.abs_()
        net[4].weight.abs_()
    x = torch.rand(batch, 1, 8, 8) * 1.5
    rec, handles = _recorder(net, {"1": 1, "5": 5})
    with torch.no_grad():
        net(x.repeat_interleave(steps, dim=0))  # (batch * steps, ...)
    for h in handles:
        h.remove()
    for m in net.modules():
        if isinstance(m, sl.StatefulLayer):
            m.reset_states()
    g = to_nir(net, x)  # one step of the whole batch (the Squeeze layers need it)
    g.infer_types()
    path = Path(folder) / "sinabs.nir"
    nir.write(str(path), g)
    spikes = {k: v[0].reshape(batch, steps, *v[0].shape[1:]).astype(np.float64)
              for k, v in rec.items()}
    return LibraryRun("sinabs", path, "sinabs", None, x.numpy().astype(np.float64), spikes,
                      "5")


def snntorch_import_run(path: Path, x: np.ndarray, steps: int,
                        shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """``import_from_nir`` of snnTorch on ``path``, run ``steps`` steps per sample (its
    Flatten swallows the batch axis: one sample at a time); the spikes ``(B, steps,
    *shape)`` of the nodes ``shapes`` names."""
    import nir
    import snntorch as snn
    import torch
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(nir.read(str(path)))
    rec, handles = _recorder(dict(net.named_modules()), {k: k for k in shapes})
    out = {k: [] for k in shapes}
    with torch.no_grad():
        for b in range(len(x)):
            for m in net.modules():
                if isinstance(m, snn.Leaky | snn.Synaptic):
                    m.reset_mem()
            for k in shapes:
                rec[k].clear()
            for _ in range(steps):
                net(torch.as_tensor(x[b:b + 1], dtype=torch.float32))
            for k, shape in shapes.items():
                out[k].append(np.stack(rec[k]).reshape(steps, *shape))
    for h in handles:
        h.remove()
    return {k: np.stack(v).astype(np.float64) for k, v in out.items()}


def spikingjelly_import_run(path: Path, x: np.ndarray, steps: int, dt: float,
                            keys: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """SpikingJelly's ``import_from_nir`` on ``path`` (its node names are the NIR keys with
    ``.`` as ``_``), run ``steps`` steps: the spikes of ``keys`` ``(B, steps, ...)`` and the
    output summed over the steps."""
    import torch
    from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir

    net = import_from_nir(str(path), dt=dt)
    modules = dict(net.named_modules())
    rec, handles = _recorder(modules, {k: k.replace(".", "_") for k in keys})
    state, total = None, 0.0
    with torch.no_grad():
        for _ in range(steps):
            y, state = net(torch.as_tensor(x, dtype=torch.float32), state)
            total = total + y.numpy().astype(np.float64)
    for h in handles:
        h.remove()
    return _stacked(rec, steps), total


RUNNERS = {"snntorch": snntorch_run, "norse": norse_run, "spikingjelly": spikingjelly_run,
           "sinabs": sinabs_run}


def agreement(run: LibraryRun, graph, result) -> dict[str, dict]:
    """Per spiking layer (NIR key): the fraction of neuron-steps whose spike equals the
    library's (``per_neuron``), the fraction of steps at which every neuron of the layer
    and batch agrees (``per_step``), and both sides' spike totals."""
    out = {}
    for key, lib in run.spikes.items():
        pop = graph.population(key)
        steps = lib.shape[1]
        ours = result.spikes[key][:, pop.start:pop.start + steps].astype(np.float64)
        same = ours == lib
        out[key] = {"per_neuron": float(same.mean()),
                    "per_step": float(same.reshape(same.shape[0], steps, -1)
                                      .all(axis=(0, 2)).mean()),
                    "library_spikes": int(lib.sum()), "our_spikes": int(ours.sum()),
                    "shift": int(pop.start), "steps": steps,
                    "outside_window": int(result.spikes[key][:, :pop.start].sum()
                                          + result.spikes[key][:, pop.start + steps:].sum())}
    return out
