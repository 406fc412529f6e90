"""``pseudosnn simulate``: run compiled artifacts on the cycle-accurate simulator and report
spike counts, SOPs, latency and energy (terminal table, JSON, CSV, PNG plots)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from pseudosnn.compiler.artifact import load
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.simulator.datasets import LAYOUTS, DataError, check_labels, open_dataset
from pseudosnn.simulator.energy import DEFAULT_MODEL, DEFAULT_TIME_PER_STEP_US, PRESETS, resolve
from pseudosnn.simulator.engine import SimulationError
from pseudosnn.simulator.engine import simulate as simulate_graph
from pseudosnn.simulator.metrics.report import build_report, format_table, write_reports
from pseudosnn.simulator.sharding import parse_cluster, simulate_dataset

from pseudosnn.cli_base import Command, FiniteFloat

DATA_HELP = ("Inputs, read batch by batch: 'digits' (sklearn 8x8 test split), "
             "'cifar10:PATH' / 'cifar100:PATH' (the python-pickle test batch or its folder), "
             "'imagenet:PATH' (class folders, val/<class>/<image>; the trainer's eval "
             "transform), 'cifar10_dvs:PATH' (class folders of .npz event frames), 'npz:PATH' "
             "(arrays x of the network's input shape and optional labels y).")


def _stems(paths: list[Path]) -> list[str]:
    """Unique file stems for the artifacts' reports."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.resolve().name or "artifact"
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def run_simulation(
    artifacts: list[Path], data: str, batch: int = 64, limit: int | None = None,
    energy_model: str = DEFAULT_MODEL, fixed_point: bool = False, report_dir: Path | None = None,
    workers: int | None = None, time_per_step_us: float = DEFAULT_TIME_PER_STEP_US,
    mean_hops: float = 0.0, raster_neurons: int = 16, progress: bool = True,
    echo=click.echo, precision: str = "float64", chip: Path | None = None,
    layout: str | None = None, threads: int | None = None, cluster: str | None = None,
) -> list[dict]:
    """Simulate every artifact on the data set (read batch by batch); return one report
    dict per artifact (energy on the chip file ``chip`` when given, else on the preset
    ``energy_model``)."""
    from tqdm import tqdm

    model = resolve(energy_model, chip)
    if batch < 1:
        raise DataError(f"--batch must be >= 1, got {batch}")
    parse_cluster(cluster)  # a bad spec fails before any work
    reports = []
    for path, stem in zip(artifacts, _stems(artifacts), strict=True):
        graph = load(path)
        if fixed_point and not graph.fixed_point:
            raise SimulationError(
                f"{path} holds a float graph; --fixed-point needs an artifact compiled with "
                "fixed-point quantisation (pseudosnn-compile ... --fixed-point)")
        source = open_dataset(data, graph.input.sample_shape, layout).head(limit)
        if source.warning:
            click.echo(source.warning, err=True)
        xs, y = source.x, source.y
        check_labels(y, graph.readout.shape[-1], data)
        with tqdm(total=len(xs), desc=f"simulate {stem}", unit="sample",
                  disable=not progress) as bar:
            tally = simulate_dataset(graph, xs, y, batch_size=batch, workers=workers,
                                     on_batch=bar.update, precision=precision,
                                     threads=threads, cluster=cluster)
        rep = build_report(graph, tally, model, time_per_step_us, mean_hops, name=stem,
                           fixed_point=graph.fixed_point)
        rep["artifact"] = str(path)
        rep["precision"] = "int (fixed point)" if graph.fixed_point else precision
        rep["data"] = data
        reports.append(rep)
        echo(format_table(rep))
        if report_dir is not None:
            from pseudosnn.simulator.plots import (
                plot_break_even,
                plot_energy,
                plot_layers,
                plot_raster,
                plot_spikes_per_step,
            )

            written = write_reports(rep, report_dir, stem, tally)
            written.append(plot_layers(rep, report_dir / f"{stem}_layers.png"))
            written.append(plot_energy(rep, report_dir / f"{stem}_energy.png"))
            if rep["ann"] is not None and rep["ann"]["per_layer_known"]:
                written.append(plot_break_even(rep, report_dir / f"{stem}_break_even.png"))
            written.append(plot_spikes_per_step(rep, report_dir / f"{stem}_spikes_per_step.png"))
            one = simulate_graph(graph, xs[:1], record_spikes=True, precision=precision,
                                 threads=threads)
            written.append(plot_raster({k: v[0] for k, v in one.spikes.items()},
                                       report_dir / f"{stem}_raster.png", raster_neurons,
                                       title=f"{stem}: spike raster, sample 0"))
            echo("wrote " + ", ".join(str(p) for p in written))
    if report_dir is not None and len(reports) > 1:
        from pseudosnn.simulator.plots import plot_accuracy_vs_energy

        summary = [{k: r[k] for k in ("name", "artifact", "accuracy", "latency_steps")}
                   | {"energy_pj_per_sample": r["totals"]["energy_pj_per_sample"],
                      "sops_per_sample": r["totals"]["sops_per_sample"]} for r in reports]
        p1 = write_atomic(report_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
        p2 = plot_accuracy_vs_energy(reports, report_dir / "accuracy_vs_energy.png")
        echo(f"wrote {p1}, {p2}")
    return reports


@click.command("simulate", cls=Command)
@click.argument("artifacts", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", required=True, metavar="SPEC", help=DATA_HELP)
@click.option("--layout", type=click.Choice(LAYOUTS), default=None,
              help="npz only: how x's samples are laid out when not exactly the network's "
                   "input shape: HWC (channels last) or flat (C order).")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Samples simulated at once.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Simulate only the first N samples.")
@click.option("--energy-model", default=DEFAULT_MODEL, show_default=True,
              help=f"Energy preset: {', '.join(sorted(PRESETS))} (constants and sources: "
                   "simulator/energy/; README 'How energy is counted').")
@click.option("--chip", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Your chip's energies as a YAML file (fields of the energy model, "
                   "optionally 'base: PRESET'); replaces --energy-model.")
@click.option("--fixed-point", is_flag=True,
              help="Require bit-exact integer simulation (the artifact must be fixed point).")
@click.option("--precision", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True, help="Float mode arithmetic: float64 equals the compiler's "
              "reference bit for bit; float32 is faster (fixed point is always exact).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write JSON, CSV and PNG plots into this directory.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes to shard batches across (counts merge exactly). Default 1; "
                   "with --cluster ray, the CPUs of the local Ray instance (default: all).")
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="Threads per batch (BLAS and onnxruntime). Default: every core in one "
                   "process, cores/workers with --workers, 1 per Ray task.")
@click.option("--cluster", default=None, metavar="ray[:ADDRESS]",
              help="Distribute batches over Ray: 'ray' starts a local instance with "
                   "--workers CPUs, 'ray:ADDRESS' joins a running cluster (ray:auto on a "
                   "cluster node, ray:ray://HEAD:10001 from outside). Needs "
                   "pip install 'pseudosnn[cluster]'. Counts merge exactly.")
@click.option("--time-per-step-us", default=DEFAULT_TIME_PER_STEP_US, show_default=True,
              type=FiniteFloat(min=0, min_open=True),
              help="Wall time of one global step, for latency in microseconds.")
@click.option("--mean-hops", default=0.0, show_default=True, type=FiniteFloat(min=0),
              help="Mean mesh hops per spike (Loihi routing energy; 0 = within tile).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate_cmd(artifacts, data, layout, batch, limit, energy_model, chip, fixed_point,
                 precision, report_dir, workers, threads, cluster, time_per_step_us, mean_hops,
                 quiet):
    """Simulate compiled ARTIFACT(s) step by step and report spike counts, synaptic
    operations, latency and energy (and accuracy when the data have labels).

    \b
    Example:
      pseudosnn simulate build/cnn --data digits --energy-model loihi --report reports/cnn
    """
    run_simulation(list(artifacts), data, batch, limit, energy_model, fixed_point, report_dir,
                   workers, time_per_step_us, mean_hops, progress=not quiet, precision=precision,
                   chip=chip, layout=layout, threads=threads, cluster=cluster)
