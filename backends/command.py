"""``pseudosnn run ARTIFACT --target {numpy,lava,onnx}``: deploy a compiled artifact on a
target from the backend registry and report.

Prints accuracy, latency, encoder MACs and SOPs per sample (from the counting module,
like every command) and seconds per sample; with ``--check`` it also runs the simulator
and says whether every spike count, SOP count and readout agrees.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
from pseudosnn.backends.registry import BACKENDS
from pseudosnn.simulator.command import DATA_HELP
from pseudosnn.simulator.datasets import LAYOUTS

from pseudosnn.cli_base import Command, FiniteFloat

CHECK_RTOL = {"numpy": 0.0, "lava": 1e-9, "onnx": 1e-5}
"""Readout tolerance of ``--check`` in float mode: Lava sums the readout step by step
(float64, a different order), onnxruntime computes in float32. Fixed point is bit-exact."""


def agreement(graph, result, reference, rtol: float) -> dict:
    """Where a target's run and the simulator's agree (counts, SOPs and predictions
    exactly; readouts bit-exact in fixed point, to ``rtol`` in float mode)."""
    counts = all(np.array_equal(result.counts[p.name], reference.counts[p.name])
                 for p in graph.populations)
    if graph.fixed_point:
        readout = bool(np.array_equal(result.output, reference.output))
    else:
        readout = bool(np.allclose(result.output, reference.output, rtol=rtol, atol=rtol))
    return {"counts_equal": counts, "sops_equal": result.sops == reference.sops,
            "readout_equal": readout,
            "predictions_equal": bool(np.array_equal(result.output.argmax(-1),
                                                     reference.output.argmax(-1)))}


@click.command("run", cls=Command)
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(tuple(BACKENDS)), default="lava",
              show_default=True,
              help="lava: Intel lava-nc in the Lava venv ($PSEUDOSNN_LAVA_PYTHON, else "
                   ".venv-lava in this folder or a parent; `make lava-venv`); numpy: the "
                   "simulator; onnx: onnxruntime on the artifact's rate-equivalent model.")
@click.option("--data", default="digits", show_default=True, metavar="SPEC", help=DATA_HELP)
@click.option("--layout", type=click.Choice(LAYOUTS), default=None,
              help="npz only: HWC (channels last) or flat (C order) samples.")
@click.option("--samples", type=click.IntRange(min=1), default=20, show_default=True,
              help="Run the first N samples of the data.")
@click.option("--fixed-point", is_flag=True,
              help="Require the bit-accurate fixed-point models (the artifact must be "
                   "quantised).")
@click.option("--conv-model", type=click.Choice(("lava", "im2col")), default="lava",
              show_default=True,
              help="Lava only: model of lava's Conv process, lava's own or the same "
                   "arithmetic as one GEMM per step (several times faster on CNNs).")
@click.option("--timeout", type=FiniteFloat(min=0, min_open=True), default=600.0,
              show_default=True,
              help="Lava only: seconds before the run is stopped.")
@click.option("--check", is_flag=True,
              help="Also run the simulator and report whether spikes, SOPs and readouts agree.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the summary as JSON here.")
def run(artifact, target, data, layout, samples, fixed_point, conv_model, timeout, check, out):
    """Run a compiled ARTIFACT on a deployment target (default: Lava) and report accuracy,
    latency, encoder MACs, synaptic operations and seconds per sample."""
    from pseudosnn.backends.registry import get_backend
    from pseudosnn.compiler.artifact import load
    from pseudosnn.compiler.atomic import safe_output_path, write_atomic
    from pseudosnn.compiler.spiking.backend import check_supported
    from pseudosnn.simulator.datasets import check_labels, open_dataset

    from pseudosnn.errors import UsageError

    if out is not None:
        data_file = data.partition(":")[2]
        out = safe_output_path(out, [artifact, *([data_file] if data_file else [])], "--out")
    graph = load(artifact)
    if fixed_point and not graph.fixed_point:
        raise UsageError(f"{artifact} holds a float graph; --fixed-point needs an artifact "
                         "compiled with fixed-point quantisation (pseudosnn-compile "
                         "--fixed-point)")
    options = {"timeout": timeout, "conv_model": conv_model} if target == "lava" else {}
    backend = get_backend(target, artifact=artifact, **options)
    check_supported(backend, graph)
    source = open_dataset(data, graph.input.sample_shape, layout).head(samples)
    if source.warning:
        click.echo(source.warning, err=True)
    x, y = source.x[:samples], source.y
    check_labels(y, graph.readout.shape[-1], data)
    t0 = time.perf_counter()
    result = backend.run(graph, x)
    seconds = time.perf_counter() - t0
    n = x.shape[0]
    summary = {
        "artifact": str(artifact), "target": target, "data": data, "samples": n,
        "mode": "fixed point" if graph.fixed_point else "float",
        **({"conv_model": conv_model} if target == "lava" else {}),
        "latency_steps": int(result.steps),
        "encoder_macs_per_sample": result.macs / n,
        "sops_per_sample": sum(result.sops.values()) / n,
        "seconds_per_sample": seconds / n,
    }
    if y is not None:
        summary["accuracy"] = float(np.mean(result.output.argmax(-1) == y))
    if check and target != "numpy":
        reference = get_backend("numpy").run(graph, x)
        summary["agreement_with_simulator"] = agreement(graph, result, reference,
                                                        CHECK_RTOL[target])
    for key, value in summary.items():
        click.echo(f"{key:>26}: {value}")
    if out is not None:
        write_atomic(out, json.dumps(summary, indent=1) + "\n")
        click.echo(f"wrote {out}")
    if "agreement_with_simulator" in summary and \
            not all(summary["agreement_with_simulator"].values()):
        raise click.ClickException(f"{target} and the simulator disagree (see above)")
