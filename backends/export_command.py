"""``pseudosnn export ARTIFACT --format nir -o model.nir``: a compiled artifact as a file for
other tools (exporters of ``backends.registry.EXPORTERS``).

The file always carries what our importer needs to read the graph back exactly. When a
plain reader of the format would compute another network (the exporter's
``lossy_reasons``), the export is refused unless ``--lossy``; then the loss is measured on
data: the file read back as a plain reader does (``--from nir``, the exporter's ``dt``, one
run of ``N`` steps) is simulated beside the artifact, and the command prints how many
spike counts differ, the spikes per sample and the accuracies.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import numpy as np
from pseudosnn.backends.registry import EXPORTERS
from pseudosnn.simulator.datasets import SPECS

from pseudosnn.cli_base import Command, FiniteFloat
from pseudosnn.errors import PseudoSNNError, UsageError

SHOWN_REASONS = 3
"""Reasons named in the one-line refusal (the rest are counted)."""


def plain_loss(graph, exported, data: bytes, dt: float, x: np.ndarray,
               y: np.ndarray | None) -> dict:
    """What a plain NIR reader loses on ``x``: the file ``data`` read without our extension
    (``--from nir --dt dt --timesteps N``, ``--frames`` for event frames) against
    ``graph``, both on the simulator. Spike counts are compared per population and neuron
    over each one's whole run."""
    from pseudosnn.backends.registry import get_backend
    from pseudosnn.compiler.frontend.nir import NirOptions, load_nir

    sim = get_backend("numpy")
    ours = sim.run(graph, x)
    with tempfile.TemporaryDirectory(prefix="pseudosnn-nir-") as tmp:
        path = Path(tmp) / "plain.nir"
        path.write_bytes(data)
        frames = graph.input.frames
        if frames and frames != exported.steps:
            return {"readable": False, "why": f"it runs {exported.steps} steps, one event "
                    f"frame each, and a sample has {frames} frames"}
        try:
            plain = load_nir(path, NirOptions("nir", dt, exported.steps, frames=bool(frames),
                                              max_timesteps=exported.steps))
        except PseudoSNNError as exc:
            return {"readable": False, "why": str(exc).replace(str(path), "the file")}
    theirs = sim.run(plain, x)
    differ = total = 0
    for name, key in exported.keys.items():
        a, b = ours.counts[name], theirs.counts[key]
        differ += int(np.count_nonzero(a != b))
        total += a.size
    n = len(x)
    out = {"readable": True, "samples": n, "steps": exported.steps,
           "counts_differ": differ / max(total, 1),
           "spikes_per_sample": sum(int(c.sum()) for c in ours.counts.values()) / n,
           "plain_spikes_per_sample": sum(int(c.sum()) for c in theirs.counts.values()) / n,
           "predictions_agree": float(np.mean(ours.output.argmax(-1) ==
                                              theirs.output.argmax(-1)))}
    if y is not None:
        out["accuracy"] = float(np.mean(ours.output.argmax(-1) == y))
        out["plain_accuracy"] = float(np.mean(theirs.output.argmax(-1) == y))
    return out


def _echo_loss(loss: dict, dt: float, data: str) -> None:
    if not loss["readable"]:
        click.echo(f"a plain NIR reader cannot even map it: {loss['why']}")
        return
    click.echo(f"plain NIR reading (NIR spec, forward Euler dt = {dt:g}, {loss['steps']} "
               f"steps), measured on {loss['samples']} samples of {data}:")
    click.echo(f"  spike counts: {loss['counts_differ']:.2%} of neurons x samples differ; "
               f"spikes per sample {loss['spikes_per_sample']:,.1f} -> "
               f"{loss['plain_spikes_per_sample']:,.1f}")
    acc = "" if "accuracy" not in loss else (
        f"accuracy {loss['accuracy']:.4f} -> {loss['plain_accuracy']:.4f}; ")
    click.echo(f"  {acc}predictions agree on {loss['predictions_agree']:.2%} of samples")


@click.command("export", cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(tuple(EXPORTERS)), default="nir",
              show_default=True, help="File format to write.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (atomically; an existing file needs --force).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--dt", type=FiniteFloat(min=0, min_open=True), default=1e-4, show_default=True,
              help="NIR: the step written into the time constants (tau = dt/decay); 1e-4 is "
                   "what snnTorch and SpikingJelly read with.")
@click.option("--lossy", is_flag=True,
              help="Write a graph that plain readers of the format compute differently "
                   "(soft reset, rate coupling, per-neuron windows, ...) and measure the loss "
                   "on --data.")
@click.option("--data", default="digits", show_default=True, metavar="SPEC",
              help=f"--lossy: data to measure on: {', '.join(SPECS)}.")
@click.option("--samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="--lossy: the first N samples of --data.")
def export_cmd(artifact: Path, fmt: str, out: Path, force: bool, dt: float, lossy: bool,
               data: str, samples: int) -> None:
    """Export a compiled ARTIFACT for other tools (NIR: snnTorch, Norse, SpikingJelly,
    sinabs, lava-dl, ...). The file always carries the pseudosnn extension, so
    `pseudosnn-compile model.nir` reads it back exactly.

    \b
    Example:
      pseudosnn export build/lif --format nir -o lif.nir
    """
    from pseudosnn.backends.registry import get_exporter
    from pseudosnn.compiler.artifact import load
    from pseudosnn.compiler.atomic import safe_output_path, write_atomic

    out = safe_output_path(out, [artifact], "-o")
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to replace it")
    graph = load(artifact)
    exporter = get_exporter(fmt, dt=dt)
    exported = exporter.export(graph)
    if exported.lossy and not lossy:
        more = len(exported.lossy) - SHOWN_REASONS
        raise UsageError(
            f"plain {fmt.upper()} readers would compute another network: "
            + "; ".join(exported.lossy[:SHOWN_REASONS]) + (f"; and {more} more" if more > 0
                                                           else "")
            + ". Our importer reads the file exactly (pseudosnn extension); pass --lossy to "
              "write it for other readers anyway and measure what they lose")
    payload = exporter.to_bytes(exported)
    if exported.lossy:
        from pseudosnn.simulator.datasets import check_labels, open_dataset

        source = open_dataset(data, graph.input.sample_shape).head(samples)
        x, y = source.x[:samples], source.y
        check_labels(y, graph.readout.shape[-1], data)
        click.echo(f"lossy for plain {fmt.upper()} readers: " + "; ".join(exported.lossy))
        _echo_loss(plain_loss(graph, exported, payload, dt, x, y), dt, data)
    write_atomic(out, payload)
    click.echo(f"wrote {out} ({len(exported.keys)} populations, "
               f"{'lossy for plain readers' if exported.lossy else 'exact for plain readers'}"
               f" up to one step per layer; pseudosnn extension included)")
