"""``pseudosnn run ARTIFACT --target lava``: deploy a compiled artifact and report.

Runs the artifact's samples on Lava (in the Lava venv, through a subprocess with a
timeout) or on the NumPy simulator, prints accuracy, latency, SOPs and seconds per sample,
and with ``--check`` also runs the simulator and says whether every spike count, SOP
count and readout agrees.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

TARGETS = ("lava", "numpy")


def _agreement(graph, lava, sim) -> dict:
    """Where the Lava run and the simulator agree (exact counts; readouts bit-exact in
    fixed point, to float rounding in float mode)."""
    counts = all(np.array_equal(lava.counts[p.name], sim.counts[p.name])
                 for p in graph.populations)
    if graph.fixed_point:
        readout = bool(np.array_equal(lava.output, sim.output))
    else:
        readout = bool(np.allclose(lava.output, sim.output, rtol=1e-9, atol=1e-12))
    return {"counts_equal": counts, "sops_equal": lava.sops == sim.sops,
            "readout_equal": readout,
            "predictions_equal": bool(np.array_equal(lava.output.argmax(-1),
                                                     sim.output.argmax(-1)))}


@click.command("run")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(TARGETS), default="lava", show_default=True,
              help="lava: Intel lava-nc in the Lava venv ($PSEUDOSNN_LAVA_PYTHON, default "
                   ".venv-lava; create it with `make lava-venv`); numpy: the simulator.")
@click.option("--data", default="digits", show_default=True, metavar="SPEC",
              help="'digits' (sklearn's 8x8 digits test split) or 'npz:PATH' (arrays x and "
                   "optional labels y).")
@click.option("--samples", type=int, default=20, show_default=True,
              help="Run the first N samples of the data.")
@click.option("--fixed-point", is_flag=True,
              help="Use the bit-accurate fixed-point models (the artifact must be quantised).")
@click.option("--conv-model", type=click.Choice(("lava", "im2col")), default="lava",
              show_default=True,
              help="Model of lava's Conv process: lava's own, or the same arithmetic as one "
                   "GEMM per step (several times faster on CNNs).")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds before a hung Lava run is killed.")
@click.option("--check", is_flag=True,
              help="Also run the simulator and report whether spikes, SOPs and readouts agree.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the summary as JSON here.")
def run(artifact, target, data, samples, fixed_point, conv_model, timeout, check, out):
    """Run a compiled ARTIFACT on a deployment target (default: Lava) and report accuracy,
    latency, synaptic operations and seconds per sample."""
    from ..compiler.artifact import load
    from ..compiler.atomic import write_atomic
    from ..simulator.datasets import fit_to_input, load_dataset

    if samples < 1:
        raise click.BadParameter(f"must be >= 1, got {samples}", param_hint="--samples")
    graph = load(artifact)
    if fixed_point and not graph.fixed_point:
        raise click.UsageError(f"{artifact} holds a float graph; --fixed-point needs an "
                               "artifact compiled with fixed-point quantisation")
    ds = load_dataset(data)
    x = fit_to_input(ds.x[:samples], graph.input.shape, data)
    y = None if ds.y is None else ds.y[:samples]
    t0 = time.perf_counter()
    if target == "lava":
        from .lava_backend import LavaRunError, LavaUnavailableError, run_artifact

        try:
            result = run_artifact(artifact, x, fixed_point=graph.fixed_point, timeout=timeout,
                                  conv_model=conv_model)
        except (LavaRunError, LavaUnavailableError) as exc:
            raise click.ClickException(str(exc)) from None
    else:
        from ..simulator.engine import simulate

        result = simulate(graph, x)
    seconds = time.perf_counter() - t0
    n = x.shape[0]
    summary = {
        "artifact": str(artifact), "target": target, "data": data, "samples": n,
        "mode": "fixed point" if graph.fixed_point else "float",
        **({"conv_model": conv_model} if target == "lava" else {}),
        "latency_steps": int(result.steps),
        "sops_per_sample": sum(result.sops.values()) / n, "macs_per_sample": result.macs / n,
        "seconds_per_sample": seconds / n,
    }
    if y is not None:
        summary["accuracy"] = float(np.mean(result.output.argmax(-1) == y))
    if check and target == "lava":
        from ..simulator.engine import simulate

        summary["agreement_with_simulator"] = _agreement(graph, result, simulate(graph, x))
    for key, value in summary.items():
        click.echo(f"{key:>26}: {value}")
    if out is not None:
        write_atomic(out, json.dumps(summary, indent=1) + "\n")
        click.echo(f"wrote {out}")
    if check and target == "lava" and not all(summary["agreement_with_simulator"].values()):
        raise click.ClickException("Lava and the simulator disagree (see above)")
