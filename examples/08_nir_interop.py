"""NIR in and out, measured:

1. **Other libraries in**: a network of snnTorch, Norse, SpikingJelly and sinabs each, run
   in its own time loop and written with its own NIR exporter, compiled with ``--from`` and
   simulated: spike agreement per neuron-step and per step, every spiking layer (sinabs
   also with its default ``MultiSpike``, which binary spikes cannot always equal).
2. **A trained snnTorch network**: a conv + linear Leaky network trained on the digits
   (surrogate gradients, a few seconds), exported, compiled with ``pseudosnn-compile
   --from snntorch``: its accuracy and every spike on the 360 test digits against
   snnTorch's own loop, its energy report (``pseudosnn simulate``), and our export of it
   read back by snnTorch's ``import_from_nir``.
3. **Ours out**: every deployable zoo family through ``export -> import`` (the identity),
   and a trained PseudoSNN digits CNN exported with ``--lossy`` (what a plain NIR reader
   loses).

Prints the tables and writes ``OUT/report.json``.

    .venv/bin/python examples/08_nir_interop.py --out nir_interop_output
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from pseudosnn.backends.export_command import plain_loss
from pseudosnn.backends.nir_backend import export, to_bytes
from pseudosnn.compiler.artifact import load
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.compiler.command import compile_path
from pseudosnn.compiler.frontend.nir import NirOptions, load_nir
from pseudosnn.compiler.frontend.nir_libraries import (
    RUNNERS,
    agreement,
    sinabs_run,
    snntorch_import_run,
)
from pseudosnn.compiler.frontend.testing import DEPLOYABLE_FAMILIES, DIGITS_ARCHS, compiled_family
from pseudosnn.compiler.testing import graph_differences
from pseudosnn.simulator.command import run_simulation
from pseudosnn.simulator.datasets import fit_to_input, load_digits_test
from pseudosnn.simulator.engine import simulate

REPO = Path(__file__).resolve().parents[1]
STEPS = 10


def libraries_in(root: Path) -> dict:
    """Part 1: every library's own network against its import, layer by layer."""
    out = {}
    runs = {name: fn for name, fn in RUNNERS.items()}
    runs["sinabs-multispike"] = lambda d: sinabs_run(d, multi_spike=True)
    for name, runner in runs.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        run = runner(folder)
        steps = next(iter(run.spikes.values())).shape[1]
        graph = load_nir(run.path, NirOptions(run.dialect, run.dt, steps))
        res = simulate(graph, run.x, record_spikes=True)
        out[name] = {"library": graph.meta["source_framework"], "dialect": run.dialect,
                     "dt": graph.meta["nir"]["dt"], "steps": steps, "batch": len(run.x),
                     "layers": agreement(run, graph, res),
                     "readout_equals_summed_output_spikes": bool(np.array_equal(
                         res.output, run.spikes[run.output].sum(axis=1))),
                     "max_library_spikes_per_step": float(max(s.max() for s in
                                                              run.spikes.values()))}
    return out


def train_snntorch(x: np.ndarray, y: np.ndarray, epochs: int = 15):
    """A conv + linear snnTorch network (Leaky, reset to zero), trained with BPTT over
    STEPS steps on the summed output spikes."""
    import snntorch as snn
    from snntorch import surrogate

    torch.manual_seed(0)
    spike = surrogate.fast_sigmoid()
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        snn.Leaky(beta=torch.full((8, 8, 8), 0.9), threshold=torch.full((8, 8, 8), 1.0),
                  init_hidden=True, reset_mechanism="zero", spike_grad=spike),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(128, 10),
        snn.Leaky(beta=torch.full((10,), 0.9), threshold=torch.full((10,), 1.0),
                  init_hidden=True, output=True, reset_mechanism="zero", spike_grad=spike))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(64):
            reset(net)
            counts = sum(net(xt[idx])[0] for _ in range(STEPS))
            loss = torch.nn.functional.cross_entropy(counts, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def reset(net) -> None:
    import snntorch as snn

    for m in net.modules():
        if isinstance(m, snn.Leaky):
            m.reset_mem()


def snntorch_loop(net, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """snnTorch's own loop: summed output spikes and every Leaky layer's spikes."""
    rec = {"1": [], "5": []}
    hooks = [net[int(k)].register_forward_hook(
        lambda m, i, o, k=k: rec[k].append((o[0] if isinstance(o, tuple) else o).numpy()))
        for k in rec]
    reset(net)
    with torch.no_grad():
        for _ in range(STEPS):
            net(torch.as_tensor(x, dtype=torch.float32))
    for h in hooks:
        h.remove()
    spikes = {k: np.stack(v, 1).astype(np.float64) for k, v in rec.items()}
    return spikes["5"].sum(axis=1), spikes


def trained_snntorch(root: Path) -> dict:
    """Part 2: a trained snnTorch network through NIR, the CLI and back."""
    import nir
    from snntorch.export_nir import export_to_nir

    from pseudosnn.data import load_digits_data

    train_x, train_y = (t.numpy() for t in load_digits_data().train.tensors)
    t0 = time.perf_counter()
    net = train_snntorch(train_x.reshape(-1, 1, 8, 8), train_y)
    seconds = time.perf_counter() - t0
    test = load_digits_test()
    x = fit_to_input(test.x, (1, 8, 8), "digits")
    theirs, spikes = snntorch_loop(net, x)
    path = root / "snntorch_digits.nir"
    nir.write(str(path), export_to_nir(net, torch.as_tensor(x[:1], dtype=torch.float32),
                                       ignore_dims=[0]))
    art = root / "build" / "snntorch_digits"
    compile_path(path, art, calib="digits", calib_samples=len(x), force=True,
                 nir=NirOptions("snntorch", None, STEPS))
    graph = load(art)
    res = simulate(graph, x, record_spikes=True)
    layers = {}
    for key, lib in spikes.items():
        pop = graph.population(key)
        ours = res.spikes[key][:, pop.start:pop.start + STEPS]
        layers[key] = {"per_neuron": float(np.mean(ours == lib)),
                       "per_step": float(np.mean((ours == lib).reshape(len(x), STEPS, -1)
                                                 .all(axis=(0, 2)))),
                       "spikes": int(lib.sum())}
    print("\nenergy report of the imported snnTorch network (pseudosnn simulate):")
    report = run_simulation([art], "digits", progress=False)[0]
    again = root / "again.nir"
    exported = export(graph)
    again.write_bytes(to_bytes(exported))
    back = snntorch_import_run(again, x[:40], STEPS, {k: graph.population(k).shape
                                                      for k in spikes})
    return {
        "train_seconds": seconds, "test_samples": len(x),
        "snntorch_accuracy": float(np.mean(theirs.argmax(-1) == test.y)),
        "pseudosnn_accuracy": float(np.mean(res.output.argmax(-1) == test.y)),
        "readout_equals_snntorch_counts": bool(np.array_equal(res.output, theirs)),
        "layers": layers, "energy_pj_per_sample": report["totals"]["energy_pj_per_sample"],
        "source_framework": report["source_framework"],
        "export_lossy_reasons": exported.lossy,
        "snntorch_importer_spikes_equal_ours_40_samples": all(
            np.array_equal(back[k], res.spikes[k][:40, graph.population(k).start:
                                                   graph.population(k).start + STEPS])
            for k in back)}


def ours_out(root: Path) -> dict:
    """Part 3: the zoo families' identity round trip and a lossy export measured."""
    identity = {}
    for family in DEPLOYABLE_FAMILIES:
        for arch, shape in DIGITS_ARCHS:
            graph = compiled_family(arch, shape, family)
            path = root / "roundtrip.nir"
            path.write_bytes(to_bytes(export(graph)))
            identity[f"{family}/{arch}"] = graph_differences(graph, load_nir(path)) == []
    from pseudosnn.config import load_config
    from pseudosnn.trainer import train

    cfg = load_config(REPO / "configs/digits/cnn.yaml", {"progress": False, "epochs": 3})
    train(cfg, root / "runs" / "cnn", log=lambda s: None)
    art = root / "build" / "pseudo_cnn"
    compile_path(root / "runs" / "cnn" / "best.pth", art, force=True)
    graph = load(art)
    exported = export(graph)
    test = load_digits_test()
    x = fit_to_input(test.x, graph.input.sample_shape, "digits")
    loss = plain_loss(graph, exported, to_bytes(exported), 1e-4, x, test.y)
    return {"identity": identity, "lossy_export_pseudo_cnn": {
        "reasons": exported.lossy, **loss}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("nir_interop_output"))
    root = ap.parse_args().out
    root.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    report = {"libraries": libraries_in(root)}
    print(f"{'library':18s} {'layer':6s} {'per neuron':>11s} {'per step':>9s} "
          f"{'spikes':>8s} {'shift':>5s}")
    for name, lib in report["libraries"].items():
        for key, a in lib["layers"].items():
            print(f"{name:18s} {key:6s} {a['per_neuron']:11.6f} {a['per_step']:9.4f} "
                  f"{a['library_spikes']:8d} {a['shift']:5d}")
    report["trained_snntorch"] = trained_snntorch(root)
    report["ours_out"] = ours_out(root)
    print(json.dumps({k: report[k] for k in ("trained_snntorch", "ours_out")}, indent=1,
                     default=str))
    write_atomic(root / "report.json", json.dumps(report, indent=1, default=str))
    print(f"wrote {root / 'report.json'}")


if __name__ == "__main__":
    main()
