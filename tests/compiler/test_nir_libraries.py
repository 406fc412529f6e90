"""Networks of snnTorch, Norse, SpikingJelly and sinabs, exported with their own NIR
exporters and compiled by us: the simulator gives the same spikes as the library's own
time loop at every step and neuron (shifted by each population's depth), and the readout
equals the library's output spikes summed over the run. Then the way back: our export of
those graphs (and of a zoo LIF family) read by snnTorch's and SpikingJelly's own NIR
importers computes the same spikes again."""

from __future__ import annotations

import numpy as np
import pytest
from pseudosnn.compiler.frontend.nir import NirOptions, load_nir
from pseudosnn.compiler.frontend.nir_libraries import RUNNERS, agreement
from pseudosnn.simulator.engine import simulate

torch = pytest.importorskip("torch")
pytest.importorskip("nir")

LIBRARY_MODULES = {"snntorch": "snntorch", "norse": "norse", "spikingjelly": "spikingjelly",
                   "sinabs": "sinabs"}


def imported(run, steps):
    graph = load_nir(run.path, NirOptions(run.dialect, run.dt, steps))
    return graph, simulate(graph, run.x, record_spikes=True)


@pytest.mark.parametrize("library", sorted(RUNNERS))
def test_library_network_spike_for_spike(library, tmp_path):
    pytest.importorskip(LIBRARY_MODULES[library])
    torch.set_num_threads(1)
    run = RUNNERS[library](tmp_path)
    steps = next(iter(run.spikes.values())).shape[1]
    graph, res = imported(run, steps)
    assert graph.meta["source_framework"].lower().startswith(library[:5])
    for key, a in agreement(run, graph, res).items():
        assert a["library_spikes"] > 0, f"{library}: layer {key} never fires"
        assert a["per_neuron"] == 1.0 and a["per_step"] == 1.0, (library, key, a)
        assert a["outside_window"] == 0
    # the readout: the output layer's spike counts over the run, as the library's
    np.testing.assert_array_equal(res.output, run.spikes[run.output].sum(axis=1))


def test_our_export_read_by_snntorchs_importer(tmp_path):
    """snnTorch -> ours -> NIR (exact for plain readers) -> snnTorch's import_from_nir:
    the same spikes as our simulator and as the original snnTorch network."""
    pytest.importorskip("snntorch")
    from pseudosnn.backends.nir_backend import export, to_bytes
    from pseudosnn.compiler.frontend.nir_libraries import snntorch_import_run, snntorch_run

    torch.set_num_threads(1)
    run = snntorch_run(tmp_path, steps=20, batch=3)
    graph, res = imported(run, 20)
    exported = export(graph)
    assert exported.lossy == []
    path = tmp_path / "ours.nir"
    path.write_bytes(to_bytes(exported))
    theirs = snntorch_import_run(path, run.x, 20, {k: graph.population(k).shape
                                                   for k in run.spikes})
    for key, spikes in theirs.items():
        pop = graph.population(key)
        assert spikes.sum() > 0
        np.testing.assert_array_equal(spikes, res.spikes[key][:, pop.start:pop.start + 20])
        np.testing.assert_array_equal(spikes, run.spikes[key])


def _lif_zoo_graph():
    """The zoo's LIF family with hard reset (SpikingJelly's neuron: v >= θ, reset to 0),
    weights scaled up so that every layer fires."""
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend import testing as helpers
    from pseudosnn.compiler.frontend.torch_model import model_to_ir

    from pseudosnn.models import build_model

    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "lif", "T": 4, "tau": 3.0, "decay_input": True,
                                "reset": "hard"})
    helpers.randomize(model, seed=5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                m.weight.mul_(5.0 if isinstance(m, torch.nn.Conv2d) else 20.0)
    return pipeline.run(model_to_ir(model.double().eval())).graph


def test_zoo_lif_export_read_by_spikingjellys_importer(tmp_path):
    """A zoo LIF network -> NIR -> SpikingJelly's import_from_nir (dt 1e-4, the exporter's):
    the NIR spec's comparison is all it loses, and SpikingJelly fires on v >= θ as we do,
    so its spikes equal ours at every step and its summed output our readout."""
    pytest.importorskip("spikingjelly")
    from pseudosnn.backends.nir_backend import export, to_bytes
    from pseudosnn.compiler.frontend.nir_libraries import spikingjelly_import_run

    torch.set_num_threads(1)
    graph = _lif_zoo_graph()
    exported = export(graph)
    assert exported.lossy and all("v >= threshold" in why for why in exported.lossy)
    path = tmp_path / "lif.nir"
    path.write_bytes(to_bytes(exported))
    x = np.random.default_rng(1).normal(0.3, 1.0, size=(3, 1, 8, 8)) * 3
    res = simulate(graph, x, record_spikes=True)
    keys = {exported.keys[p.name]: p for p in graph.populations}
    theirs, out = spikingjelly_import_run(path, x, exported.steps, 1e-4, list(keys))
    for key, pop in keys.items():
        assert theirs[key].sum() > 0, key
        np.testing.assert_array_equal(theirs[key],
                                      res.spikes[pop.name][:, pop.start:pop.start + pop.t_max])
    np.testing.assert_allclose(out, res.output, rtol=1e-5, atol=1e-5)


def test_norse_li_readout_is_the_final_state(tmp_path):
    """A Norse network ending in an LIBoxCell (NIR LI): our leaky readout equals the LI
    membrane Norse's loop returns at the last step."""
    pytest.importorskip("norse")
    import nir
    import norse.torch as norse

    torch.manual_seed(0)
    steps = 25
    net = norse.SequentialState(
        torch.nn.Linear(6, 8),
        norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.full((8,), 100.0),
                                                v_th=torch.full((8,), 0.2),
                                                v_leak=torch.zeros(8))),
        torch.nn.Linear(8, 3),
        norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=torch.full((3,), 50.0),
                                              v_leak=torch.zeros(3))))
    with torch.no_grad():
        net[0].weight.abs_()
    x = torch.rand(4, 6) * 2
    state = None
    with torch.no_grad():
        for _ in range(steps):
            y, state = net(x, state)
    nir.write(str(tmp_path / "li.nir"), norse.to_nir(net, x[0]))
    graph = load_nir(tmp_path / "li.nir", NirOptions("norse", 1e-3, steps))
    assert graph.readout.decay == pytest.approx(0.05)
    out = simulate(graph, x.numpy().astype(np.float64)).output
    assert np.abs(y.numpy()).max() > 0.1
    np.testing.assert_allclose(out, y.numpy(), rtol=1e-5, atol=1e-6)
