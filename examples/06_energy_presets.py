"""Energy of one deployed network on every energy preset, by term, against the trained
network as a full-precision and a quantised ANN on the same chip.

A zoo architecture with random weights (firing measured on random images)::

    python examples/06_energy_presets.py --arch vggsnn_cifar --input 3,32,32 --T 4

or a trained checkpoint on a data set::

    python examples/06_energy_presets.py --checkpoint runs/digits-cnn/last.pth --data digits

Prints one table per preset; ``--json PATH`` also writes every report.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.simulator.energy import PRESETS
from pseudosnn.simulator.metrics.report import build_report, format_table
from pseudosnn.simulator.metrics.tally import Tally
from pseudosnn.simulator.sharding import simulate_dataset


def random_network(arch: str, shape: tuple[int, ...], T: int, samples: int, seed: int):
    """The zoo model (random weights, every layer ``T`` steps, BatchNorm statistics measured
    on the images, as training would leave them) compiled, and random images."""
    import torch
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend.torch_model import model_to_ir

    from pseudosnn.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, num_classes=10, input_shape=shape,
                        neuron={"family": "pseudo", "init_T": T, "noise_prob": 0.0})
    x = np.random.default_rng(seed).normal(0.0, 1.0, size=(samples, *shape))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the pass
    with torch.no_grad():
        model.train()(torch.as_tensor(x, dtype=torch.float32))
    return model.eval(), pipeline.run(model_to_ir(model)).graph, x, None


def trained_network(checkpoint: Path, data: str, samples: int | None):
    from pseudosnn.compiler.artifact import load
    from pseudosnn.compiler.command import compile_path
    from pseudosnn.simulator.datasets import open_dataset

    from pseudosnn.energy_check_command import load_torch_model

    with tempfile.TemporaryDirectory() as tmp:
        compile_path(checkpoint, Path(tmp) / "art", calib="none")
        graph = load(Path(tmp) / "art")
    ds = open_dataset(data, graph.input.sample_shape).head(samples)
    return load_torch_model(checkpoint), graph, ds.x[:], ds.y


def estimate_check(model, x: np.ndarray, report: dict, chip) -> None:
    """The spike-aware training-time estimate against the deployed energy of ``report``
    (priced on ``chip``)."""
    from pseudosnn.simulator import energy_check

    from pseudosnn.energy_check_command import training_estimates

    estimates = training_estimates(model, x, chip)
    if estimates is None:
        print("no learnable timesteps: the spike-aware estimate is not defined")
        return
    print(energy_check.format_table(energy_check.compare(estimates, report)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", help="zoo architecture with random weights")
    ap.add_argument("--input", default="3,32,32", help="input shape for --arch")
    ap.add_argument("--T", type=int, default=4, help="timesteps of every layer for --arch")
    ap.add_argument("--checkpoint", type=Path, help="a trained checkpoint instead of --arch")
    ap.add_argument("--data", default="digits", help="data set for --checkpoint")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write {preset: report} here")
    ap.add_argument("--estimate", default="45nm",
                    help="check the spike-aware estimate's energy on this preset ('' : no)")
    args = ap.parse_args()
    if (args.arch is None) == (args.checkpoint is None):
        ap.error("give exactly one of --arch and --checkpoint")
    if args.arch:
        shape = tuple(int(v) for v in args.input.split(","))
        model, graph, x, y = random_network(args.arch, shape, args.T, args.samples, args.seed)
        name = f"{args.arch} (random weights, T={args.T})"
    else:
        model, graph, x, y = trained_network(args.checkpoint, args.data, args.samples)
        name = str(args.checkpoint)
    tally: Tally = simulate_dataset(graph, x, y, batch_size=8)
    reports = {}
    for preset, chip in PRESETS.items():
        reports[preset] = build_report(graph, tally, chip, time_per_step_us=1.0, name=name)
        print(format_table(reports[preset]), end="\n\n")
    if args.estimate:
        estimate_check(model, x, reports[args.estimate], PRESETS[args.estimate])
    if args.json:
        write_atomic(args.json, json.dumps(reports, indent=1) + "\n")


if __name__ == "__main__":
    main()
