"""Deploy every trained family with a deterministic deployed form (LIF, ASGL, NSNN, IF with
hard reset) on the three digits models, and measure what deploying changes:

* accuracy on the 360 test digits: torch eval (as configured; NSNN's is stochastic, the
  mean of 5 draws), the noisy training forward where it differs (ASGL, NSNN), the deployed
  network on the simulator (float, fixed point) and on Lava (float, fixed point);
* spike for spike, every neuron at every step: the torch time loop (float64, NSNN's
  deterministic neuron) against the simulator (float), the simulator against Lava (float),
  the simulator (fixed) against Lava (fixed); and which populations Lava ran on its own
  ``LIF`` process.

Trains ``configs/digits/{lif,asgl,nsnn,if_hard}_{mlp,cnn,rescnn}.yaml`` (seconds each),
compiles float and fixed-point artifacts, prints a table and writes ``OUT/report.json``.
Lava runs use the vectorised ``Conv`` model (``--conv-model im2col``, lava's arithmetic,
checked equal to lava's own in ``tests/backends/test_lava_digits.py``) on every test digit
and lava's own ``Conv`` model on the first ``--own-conv-samples``.

    .venv/bin/python examples/07_deploy_families.py --out deploy_families_output
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from pseudosnn.backends.lava_backend import run_artifacts
from pseudosnn.compiler.artifact import load
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.compiler.command import compile_path
from pseudosnn.compiler.frontend.checkpoint import load_model_and_ir
from pseudosnn.compiler.frontend.deploy_gap import noisy_forward_accuracy
from pseudosnn.compiler.frontend.testing import spike_trains
from pseudosnn.simulator.datasets import fit_to_input, load_digits_test
from pseudosnn.simulator.engine import simulate

from pseudosnn.config import load_config
from pseudosnn.trainer import train

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("lif", "asgl", "nsnn", "if_hard")
ARCHS = ("mlp", "cnn", "rescnn")
DRAWS = 5


def torch_trains(model, x: np.ndarray):
    """Readout and every neuron's spikes ``[T, B, *f]`` of the deterministic torch forward
    (float64; NSNN with its noise off: the deployed neuron)."""
    for m in model.modules():
        if hasattr(m, "eval_mode"):
            m.eval_mode = "deterministic"
    return spike_trains(model, x)


def eval_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Torch eval as configured: the mean of DRAWS seeded forwards (NSNN's stochastic eval
    differs between draws; the others do not)."""
    model = model.float().eval()
    accs = []
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(DRAWS):
            accs.append(float(np.mean(model(torch.as_tensor(x, dtype=torch.float32))
                                      .argmax(-1).numpy() == y)))
    return float(np.mean(accs))


def spike_mismatches(a: dict, b: dict, graph, window_only: bool = False) -> int:
    """Spikes that differ between two runs (``a`` torch trains ``[T, B, ...]`` when
    ``window_only``, else global-clock ``(B, steps, ...)`` like ``b``)."""
    bad = 0
    for p in graph.populations:
        sb = b[p.name]
        if window_only:
            sb = np.moveaxis(sb[:, p.start:p.start + p.t_max], 1, 0)
        bad += int(np.sum(a[p.name] != sb))
    return bad


def measure(family: str, arch: str, root: Path, x_img, y, own_n: int) -> dict:
    cfg = load_config(REPO / f"configs/digits/{family}_{arch}.yaml", {"progress": False})
    t0 = time.perf_counter()
    train(cfg, root / "runs" / f"{family}_{arch}", log=lambda s: None)
    ckpt = root / "runs" / f"{family}_{arch}" / "best.pth"
    arts, notes = {}, []
    for fixed in (False, True):
        arts[fixed] = root / "build" / f"{family}_{arch}{'-fixed' if fixed else ''}"
        rep = compile_path(ckpt, arts[fixed], target="lava", fixed_point=fixed, calib="digits",
                           calib_samples=len(y))
        notes = notes or [w for w in rep["warnings"] if "deployed:" in w]
    model, ir_graph = load_model_and_ir(ckpt)
    x = fit_to_input(x_img, model.input_shape, "digits")
    row = {"family": family, "arch": arch, "torch_eval": eval_accuracy(model, x, y),
           "compile_notes": notes}
    for note in ir_graph.meta.get("deploy_notes", []):  # the training forward's noise on
        row["torch_noisy_forward"] = noisy_forward_accuracy(model, note["layers"], x, y)
    y_torch, trains = torch_trains(model, x)
    row["torch_deterministic"] = float(np.mean(y_torch.argmax(-1) == y))
    for fixed in (False, True):
        graph = load(arts[fixed])
        sim = simulate(graph, x, record_spikes=True)
        mode = "fixed" if fixed else "float"
        row[f"sim_{mode}"] = float(np.mean(sim.output.argmax(-1) == y))
        if not fixed:
            row["spikes_torch_vs_sim_float"] = spike_mismatches(trains, sim.spikes, graph, True)
            row["readout_max_diff_torch_vs_sim"] = float(np.abs(sim.output - y_torch).max())
            row["spikes_total"] = int(sum(c.sum() for c in sim.counts.values()))
            row["latency_steps"] = graph.latency_steps
        lava, own = (run_artifacts([(arts[fixed], xs)], fixed_point=fixed, record_spikes=True,
                                   timeout=3600, options=["--conv-model", model_name])[0]
                     for xs, model_name in ((x, "im2col"), (x[:own_n], "lava")))
        row[f"lava_{mode}"] = float(np.mean(lava.output.argmax(-1) == y))
        row[f"spikes_sim_vs_lava_{mode}"] = spike_mismatches(lava.spikes, sim.spikes, graph)
        row[f"spikes_sim_vs_lava_own_conv_{mode}"] = spike_mismatches(
            own.spikes, {k: v[:own_n] for k, v in sim.spikes.items()}, graph)
        row[f"readouts_equal_sim_lava_{mode}"] = bool(
            np.array_equal(lava.output, sim.output) if fixed
            else np.allclose(lava.output, sim.output, rtol=1e-12, atol=1e-12))
        row[f"lava_lif_{mode}"] = lava.extra.get("lava_lif", [])
        row["populations"] = [p.name for p in graph.populations]
    row["seconds"] = time.perf_counter() - t0
    return row


def table(rows: list[dict]) -> str:
    head = ("| family | model | torch eval | noisy fwd | sim float | sim fixed | Lava float | "
            "Lava fixed | spikes ≠ torch/sim | ≠ sim/Lava float | ≠ sim/Lava fixed | "
            "on Lava's LIF |")
    lines = [head, "|" + "---|" * 12]

    def p(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    for r in rows:
        lif = len(r["lava_lif_fixed"])
        lines.append(
            f"| {r['family']} | {r['arch']} | {p(r['torch_eval'])} | "
            f"{p(r.get('torch_noisy_forward'))} | {p(r['sim_float'])} | {p(r['sim_fixed'])} | "
            f"{p(r['lava_float'])} | {p(r['lava_fixed'])} | {r['spikes_torch_vs_sim_float']} "
            f"of {r['spikes_total']} | {r['spikes_sim_vs_lava_float']} | "
            f"{r['spikes_sim_vs_lava_fixed']} | {lif}/{len(r['populations'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "deploy_families_output")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--own-conv-samples", type=int, default=20,
                    help="test digits also run with lava's own (slow) Conv model")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_digits_test()
    rows = []
    for family in args.families:
        for arch in args.archs:
            print(f"{family} {arch} ...", flush=True)
            rows.append(measure(family, arch, args.out.resolve(), ds.x, ds.y,
                                args.own_conv_samples))
            print(json.dumps(rows[-1]), flush=True)
    text = table(rows)
    print(text)
    write_atomic(args.out / "report.json", json.dumps(rows, indent=1))
    write_atomic(args.out / "report.md", text + "\n")


if __name__ == "__main__":
    main()
