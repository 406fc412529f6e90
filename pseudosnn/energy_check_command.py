"""``pseudosnn energy-check``: does the trained network cost what training estimated?

Compiles a checkpoint (or takes a compiled artifact plus ``--model``), simulates it on a
data set, computes the two training-time estimates on the same inputs (the paper's cost
as implied SOPs and the spike-aware expected SOPs, :mod:`pseudosnn.objective`), and puts
them beside the deployed counts (:mod:`pseudosnn.simulator.energy_check`). Also reports
torch-eval vs deployed accuracy, the fixed-point accuracy drop, and, with ``--baseline``,
other models (e.g. a vanilla BPTT SNN) side by side from deployed counts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import numpy as np

from pseudosnn.cli_base import Command, FiniteFloat
from pseudosnn.errors import UsageError
from pseudosnn.simulator.command import DATA_HELP
from pseudosnn.simulator.datasets import LAYOUTS
from pseudosnn.simulator.energy import DEFAULT_MODEL, PRESETS, EnergyModel


def load_torch_model(path: Path, trusted: bool = False):
    """A checkpoint (.pth) or safetensors export -> the model in eval mode."""
    from pseudosnn.checkpoint import load_checkpoint, load_safetensors, model_from_checkpoint

    ckpt = load_safetensors(path) if path.suffix == ".safetensors" \
        else load_checkpoint(path, trusted=trusted)
    return model_from_checkpoint(ckpt)


def torch_eval(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits of the model in eval mode (float32, the deployed reference)."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.as_tensor(x[i:i + batch], dtype=torch.float32)).numpy())
    return np.concatenate(outs)


def training_estimates(model, x: np.ndarray, energy_model: EnergyModel | None = None,
                       batch: int = 256) -> dict[str, dict] | None:
    """Per population, per sample (mean over ``x``), from the calibration-phase training
    forward (:func:`pseudosnn.objective.layer_report`): FLOPs, T, the spike-aware
    estimate ``expected_*`` (``T*clip(c, 0, 1)`` spikes times fan-out, and with
    ``energy_model`` their energy) and the quantised ``calibrated_*`` counts. ``None`` when
    the model has no learnable timesteps (the estimates are defined for PseudoSN models)."""
    import torch

    from pseudosnn.objective import layer_reports

    sums: dict[str, dict] = {}
    for i in range(0, len(x), batch):
        xb = torch.as_tensor(x[i:i + batch], dtype=torch.float32)
        try:
            expected, calibrated = layer_reports(model, xb, "calibrated", energy_model)
        except ValueError:
            return None
        reports = {"expected": expected, "calibrated": calibrated}
        for kind, rows in reports.items():
            for r in rows:
                s = sums.setdefault(r.name, {"flops": r.flops, "timesteps": r.timesteps})
                for what, v in (("spikes", r.expected_spikes), ("sops", r.expected_sops),
                                ("energy_pj", r.expected_energy_pj)):
                    s[f"{kind}_{what}"] = s.get(f"{kind}_{what}", 0.0) + v * len(xb) / len(x)
    return sums


def display_name(path: Path) -> str:
    """``runs/vanilla-cnn/last.pth`` -> ``vanilla-cnn``; ``build/cnn`` -> ``cnn``."""
    if path.is_file() and path.stem in ("last", "best", "checkpoint", "model"):
        return path.parent.name
    return path.stem if path.is_file() else path.name


def _artifact_for(path: Path, work: Path, trusted: bool, fixed_point: bool,
                  echo) -> tuple[Path, Path | None]:
    """Return ``(artifact_dir, checkpoint_or_None)``, compiling a checkpoint if needed."""
    from pseudosnn.compiler.command import compile_path

    if path.is_dir():
        return path, None
    suffix = "fixed" if fixed_point else "float"
    out = work / f"{path.stem}-{suffix}"
    echo(f"compiling {path} -> {out} ({suffix})")
    compile_path(path, out, target="numpy", fixed_point=fixed_point, trusted=trusted,
                 calib="none")
    return out, path


def run_energy_check(
    model_or_artifact: Path, data: str, *, checkpoint: Path | None = None,
    energy_model: str = DEFAULT_MODEL, report_dir: Path | None = None,
    limit: int | None = None, batch: int = 128, tolerance: float = 0.05,
    fixed_point: bool = False, baselines: tuple[Path, ...] = (), trusted: bool = False,
    progress: bool = True, echo=click.echo, chip: Path | None = None,
    layout: str | None = None,
) -> dict:
    """The whole check; returns a JSON-able dict (also written to ``report_dir``)."""
    from pseudosnn.simulator.command import run_simulation
    from pseudosnn.simulator.energy import resolve
    from pseudosnn.simulator.metrics.report import format_table

    emodel = resolve(energy_model, chip)
    tmp = tempfile.TemporaryDirectory(prefix="energy-check-")
    work = (report_dir / "artifacts") if report_dir is not None else Path(tmp.name)
    try:
        art, ckpt = _artifact_for(model_or_artifact, work, trusted, False, echo)
        ckpt = ckpt or checkpoint

        def simulate(artifact: Path) -> dict:
            (rep,) = run_simulation([artifact], data=data, batch=batch, limit=limit,
                                    energy_model=energy_model, chip=chip, progress=progress,
                                    echo=lambda *_: None, layout=layout)
            return rep

        report = simulate(art)
        echo(format_table(report))
        result: dict = {"artifact": str(art), "checkpoint": str(ckpt) if ckpt else None,
                        "data": data, "energy_model": emodel.as_dict(),
                        "deployed": {k: report[k] for k in ("accuracy", "latency_steps",
                                                             "totals", "ann", "samples",
                                                             "layers")}}
        if ckpt is not None:
            result |= _training_check(Path(ckpt), data, limit, report, emodel, tolerance,
                                      trusted, echo, layout)
        else:
            _echo_deployed_only(report, echo)
        _echo_accuracy(report["accuracy"], result.get("torch_eval_accuracy"), echo)
        if fixed_point:
            if ckpt is None:
                raise UsageError("--fixed-point needs the checkpoint (MODEL or --model)")
            fart, _ = _artifact_for(Path(ckpt), work, trusted, True, echo)
            result["fixed_point"] = _fixed_point_row(report, simulate(fart), echo)
        if baselines:
            result["comparison"] = _compare_baselines(model_or_artifact, report, baselines,
                                                      work, trusted, simulate, echo)
        if report_dir is not None:
            _write(result, report_dir, echo)
        return result
    finally:
        tmp.cleanup()


def _training_check(ckpt: Path, data: str, limit: int | None, report: dict, emodel,
                    tolerance: float, trusted: bool, echo, layout: str | None = None) -> dict:
    """Torch-eval accuracy and the training-time estimates beside the deployed counts
    (the data read batch by batch)."""
    from pseudosnn.simulator import energy_check as ec
    from pseudosnn.simulator.datasets import open_dataset

    model = load_torch_model(ckpt, trusted)
    source = open_dataset(data, tuple(model.input_shape), layout).head(limit)
    x, y = source.x, source.y
    logits = torch_eval(model, x)
    out: dict = {"torch_eval_accuracy": None if y is None
                 else float((logits.argmax(1) == y).mean())}
    estimates = training_estimates(model, x, emodel)
    if estimates is None:
        echo("note: the model has no learnable timesteps (not PseudoSN): training-time "
             "estimates are not defined; deployed counts only")
    else:
        out["check"] = ec.compare(estimates, report, tolerance)
        echo(ec.format_table(out["check"]))
    return out


def _echo_deployed_only(report: dict, echo) -> None:
    """Without the checkpoint only the deployed side exists: say so, and what is missing."""
    t = report["totals"]
    echo(f"deployed: {t['sops_per_sample']:,.1f} SOPs, {t['energy_pj_per_sample'] / 1e3:,.2f} "
         f"nJ per sample, latency {report['latency_steps']} steps")
    echo("note: no --model given: the training-time estimates (the paper's cost, the "
         "spike-aware estimate) and the torch-eval accuracy need the checkpoint the artifact "
         "was compiled from; pass --model CHECKPOINT")


def _echo_accuracy(deployed: float | None, torch_eval: float | None, echo) -> None:
    if deployed is None:
        return
    line = f"accuracy: deployed (simulator, float) {100 * deployed:.2f}%"
    if torch_eval is not None:
        line += f", torch eval {100 * torch_eval:.2f}%"
    echo(line)


def _fixed_point_row(report: dict, fixed: dict, echo) -> dict:
    acc = report["accuracy"]
    row = {"accuracy": fixed["accuracy"],
           "accuracy_drop": None if acc is None else acc - fixed["accuracy"],
           "energy_pj_per_sample": fixed["totals"]["energy_pj_per_sample"],
           "sops_per_sample": fixed["totals"]["sops_per_sample"]}
    if acc is not None:
        echo(f"fixed point: accuracy {100 * fixed['accuracy']:.2f}% (drop "
             f"{100 * (acc - fixed['accuracy']):+.2f} points)")
    return row


def _compare_baselines(model_or_artifact: Path, report: dict, baselines, work: Path,
                       trusted: bool, simulate, echo) -> list[dict]:
    """The model and every baseline side by side, from deployed counts."""
    from pseudosnn.simulator import energy_check as ec

    reports = {display_name(model_or_artifact): report}
    for b in baselines:
        bart, _ = _artifact_for(b, work / f"baseline{len(reports)}", trusted, False, echo)
        name = display_name(b)
        reports[name if name not in reports else f"{name}-{len(reports)}"] = simulate(bart)
    rows = ec.compare_deployments(reports)
    echo(ec.format_deployments(rows))
    return rows


def _write(result: dict, report_dir: Path, echo) -> None:
    from pseudosnn.compiler.atomic import write_atomic
    from pseudosnn.simulator import energy_check as ec

    report_dir.mkdir(parents=True, exist_ok=True)
    written = [write_atomic(report_dir / "energy_check.json",
                            json.dumps(result, indent=1, default=_json_default) + "\n")]
    if "check" in result:
        written.append(write_atomic(report_dir / "energy_check.csv",
                                    ec.to_csv(result["check"])))
        written.append(ec.plot_check(result["check"], report_dir / "energy_check.png"))
    echo("wrote " + ", ".join(str(p) for p in written))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@click.command("energy-check", cls=Command,
               context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model_or_artifact", type=click.Path(exists=True, path_type=Path))
@click.option("--data", required=True, metavar="SPEC", help=DATA_HELP)
@click.option("--layout", type=click.Choice(LAYOUTS), default=None,
              help="npz only: HWC (channels last) or flat (C order) samples.")
@click.option("--model", "checkpoint", type=click.Path(exists=True, path_type=Path),
              help="The checkpoint an ARTIFACT was compiled from (for the training-time "
                   "estimates and torch-eval accuracy).")
@click.option("--energy-model", type=click.Choice(sorted(PRESETS)), default=DEFAULT_MODEL,
              show_default=True, help="Energy preset (simulator/energy/, with sources).")
@click.option("--chip", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Your chip's energies as a YAML file; replaces --energy-model.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write energy_check.json/.csv/.png (and the compiled artifacts) here.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N samples.")
@click.option("--batch", type=click.IntRange(min=1), default=128, show_default=True,
              help="Samples simulated at once.")
@click.option("--tolerance", default=0.05, show_default=True,
              type=FiniteFloat(min=0),
              help="Flag layers whose estimate (SOPs or energy) is off by more than this "
                   "fraction.")
@click.option("--fixed-point", is_flag=True,
              help="Also compile and simulate the fixed-point network; report the drop.")
@click.option("--baseline", "baselines", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="Another model or artifact (e.g. a vanilla SNN) to compare from deployed "
                   "counts; repeatable.")
@click.option("--trust-checkpoint", is_flag=True,
              help="Allow full unpickling of checkpoints (only for files you trust).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def energy_check(model_or_artifact: Path, data: str, layout: str | None,
                 checkpoint: Path | None, energy_model: str, chip: Path | None,
                 report_dir: Path | None, limit: int | None, batch: int, tolerance: float,
                 fixed_point: bool, baselines: tuple[Path, ...], trust_checkpoint: bool,
                 quiet: bool) -> None:
    """Compare the training-time energy estimates of MODEL_OR_ARTIFACT (a checkpoint, or a
    compiled artifact with --model) with the synaptic operations, spikes and energy the
    simulator measures on the deployed network, layer by layer."""
    run_energy_check(model_or_artifact, data, checkpoint=checkpoint, energy_model=energy_model,
                     report_dir=report_dir, limit=limit, batch=batch, tolerance=tolerance,
                     fixed_point=fixed_point, baselines=baselines, trusted=trust_checkpoint,
                     progress=not quiet, chip=chip, layout=layout)
