"""``pseudosnn compile`` / ``pseudosnn-compile``: checkpoint -> compiled artifact."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click
import numpy as np
from pseudosnn.backends.registry import BACKENDS
from pseudosnn.compiler.frontend.nir_dialects import DIALECTS
from pseudosnn.compiler.ir import DEFAULT_MAX_TIMESTEPS
from pseudosnn.compiler.spiking.graph import SpikingGraph

from pseudosnn.cli_base import Command, FiniteFloat
from pseudosnn.errors import UsageError

TARGETS = tuple(BACKENDS)


def _shape(value: str | None) -> tuple[int, ...] | None:
    if not value:
        return None
    try:
        shape = tuple(int(v) for v in value.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"{value!r} is not a shape of positive sizes like 3,32,32",
                                 param_hint="--input-shape")
    return shape


def _calibration(kind: str, input_shape: tuple[int, ...], samples: int):
    """A calibration batch: the digits test split, preprocessed as in training
    (:func:`pseudosnn.data.load_digits_data`), when it fits the model's input."""
    if kind == "none":
        return None, None
    from pseudosnn.data import load_digits_data

    if int(np.prod(input_shape)) != 64 or tuple(input_shape) not in ((64,), (1, 8, 8)):
        raise click.UsageError(f"--calib digits needs an input of (64,) or (1, 8, 8); the "
                               f"model takes {tuple(input_shape)}. Use --calib none")
    test = load_digits_data().test
    x, y = (t.numpy() for t in test.tensors)
    x = x.reshape(len(x), *input_shape).astype(np.float64)
    return x[:samples], y[:samples]


@click.command("compile", cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path),
              help="Artifact folder to write, atomically. It may replace only an empty "
                   "folder or another artifact (anything else needs --force), never the "
                   "input or the current folder.")
@click.option("--force", is_flag=True,
              help="Replace the output folder even if it is not an artifact (deletes what "
                   "it holds).")
@click.option("--target", type=click.Choice(TARGETS), default="numpy", show_default=True,
              help="Deployment target; every target writes the shared artifact, lava adds "
                   "its entry files.")
@click.option("--fixed-point", is_flag=True,
              help="Quantise: int8 weights with a per-projection exponent, integer "
                   "thresholds/biases, 24-bit membrane; prints what it changed.")
@click.option("--verify", is_flag=True,
              help="Check invariants after every pass and compare each stage with the one "
                   "before on random inputs; names the pass that broke.")
@click.option("--trust-checkpoint", is_flag=True,
              help="Allow full unpickling of a checkpoint (only for files you trust).")
@click.option("--coupling", type=click.Choice(["auto", "rate"]), default="auto",
              show_default=True,
              help="auto: each neuron's own rule (the paper's rule for paper checkpoints: "
                   "stream where T matches); rate: every population rate-coupled.")
@click.option("--max-timesteps", type=click.IntRange(min=1), default=None,
              help="Reject any layer whose T exceeds this [default: the neuron's max_T, "
                   f"and at most {DEFAULT_MAX_TIMESTEPS}; give a larger value to compile a "
                   "larger T].")
@click.option("--input-shape", default=None,
              help="Per-sample input shape of a paper checkpoint, e.g. 3,64,64, or T,C,H,W for "
                   "event frames (defaults: 3,32,32 CIFAR; 3,224,224 ImageNet models; "
                   "10,2,48,48 vggsnn_dvs).")
@click.option("--calib", type=click.Choice(["digits", "none"]), default="none",
              show_default=True,
              help="Calibration data (digits: the test split, preprocessed as in training): "
                   "the compiled network is simulated on it (SOPs, spikes, accuracy) and the "
                   "fixed-point report measures on it; none: random inputs, no accuracy.")
@click.option("--calib-samples", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration samples used (the first N of the data).")
@click.option("--from", "dialect", type=click.Choice(tuple(DIALECTS)), default=None,
              help="NIR files: the library that wrote it, which fixes the discretisation "
                   "(README 'NIR in and out'); not needed for files pseudosnn exported.")
@click.option("--dt", type=FiniteFloat(min=0, min_open=True), default=None,
              help="NIR files: the time step the library exported with, in the unit of the "
                   "file's tau (required where nodes have time constants, unless the "
                   "library fixes it: snntorch 1e-4, sinabs 1 step).")
@click.option("--timesteps", type=click.IntRange(min=1), default=None,
              help="NIR files: steps the imported network runs (every population); the same "
                   "input every step unless --frames.")
@click.option("--frames", is_flag=True,
              help="NIR files: the input varies per step: a sample is --timesteps inputs "
                   "(T, *the Input node's shape), input k fed at step k, like event frames.")
def compile_cmd(model: Path, out: Path, force: bool, target: str, fixed_point: bool,
                verify: bool, trust_checkpoint: bool, coupling: str, max_timesteps: int | None,
                input_shape: str | None, calib: str, calib_samples: int, dialect: str | None,
                dt: float | None, timesteps: int | None, frames: bool) -> None:
    """Compile MODEL (a .pth/.safetensors checkpoint, a paper checkpoint, a rate-equivalent
    .onnx file, a NIR graph (.nir) written by snnTorch, Norse, SpikingJelly, sinabs or
    pseudosnn, or an existing artifact directory to re-target) into an event-driven
    spiking graph artifact, and print the per-layer summary."""
    from pseudosnn.compiler.frontend.nir import NirOptions

    nir = NirOptions(dialect, dt, timesteps, frames) \
        if (dialect, dt, timesteps, frames) != (None, None, None, False) else None
    report = compile_path(model, out, target=target, fixed_point=fixed_point, verify=verify,
                          trusted=trust_checkpoint, coupling=coupling,
                          max_timesteps=max_timesteps, input_shape=_shape(input_shape),
                          calib=calib, calib_samples=calib_samples, force=force, nir=nir)
    click.echo(report["summary"])
    if report.get("quant"):
        _echo_quant(report["quant"])
    click.echo(f"wrote {out} (target {target}) in {report['seconds']:.2f} s")


def _echo_quant(q: dict) -> None:
    if q["max_output_error"] is not None:
        sat = q["membrane_saturations"]
        click.echo(f"fixed point: max readout error {q['max_output_error']:.4g}, count "
                   f"mismatches {q['count_mismatch_fraction']:.3%}, argmax agreement "
                   f"{q['agreement']:.3f}"
                   + ("" if sat is None else f", membrane saturations {sat}"))
    if q.get("accuracy_float") is not None:
        click.echo(f"calibration accuracy: float {q['accuracy_float']:.4f}, fixed "
                   f"{q['accuracy_fixed']:.4f}")
    for line in q.get("dynamics", []):
        click.echo(f"fixed point: {line}")
    for w in q["warnings"]:
        click.echo(f"warning: {w}")


@dataclass
class Compiled:
    """What a compile (or re-target) produced, before it is written."""

    graph: SpikingGraph  # the deployed graph (fixed point where asked)
    onnx: bytes | None = None
    quant: dict | None = None
    calib_x: np.ndarray | None = None
    calib_y: np.ndarray | None = None


def compile_path(model: Path, out: Path, *, target: str = "numpy", fixed_point: bool = False,
                 verify: bool = False, trusted: bool = False, coupling: str = "auto",
                 max_timesteps: int | None = None, input_shape=None, calib: str = "none",
                 calib_samples: int = 256, force: bool = False, nir=None) -> dict:
    """Compile and write the artifact; returns a JSON-able report (also written into the
    artifact as ``compile_report.json``). With calibration data (``calib``), the compiled
    graph is also simulated on it and the summary gives its SOPs per sample. ``out`` is
    checked before any work (:func:`pseudosnn.compiler.artifact.check_output`). ``nir``
    (:class:`~pseudosnn.compiler.frontend.nir.NirOptions`) reads a ``.nir`` file."""
    from pseudosnn.compiler import artifact
    from pseudosnn.compiler.summary import format_summary, layer_rows

    t0 = time.perf_counter()
    model = Path(model)
    artifact.check_output(out, force=force, keep=(model,))
    options = dict(fixed_point=fixed_point, max_timesteps=max_timesteps, coupling=coupling,
                   input_shape=input_shape, calib=calib, calib_samples=calib_samples)
    is_nir = model.suffix.lower() == ".nir"
    if nir is not None and not is_nir:
        raise UsageError(f"--from, --dt, --timesteps and --frames read NIR files; {model} is "
                         "not a .nir file")
    if model.is_dir():
        done = retarget(model, **options)
    elif is_nir:
        done = _compile_nir(model, nir, verify=verify, **options)
    else:
        done = _compile(model, verify=verify, trusted=trusted, **options)
    fixed = done.graph
    extra = {} if done.onnx is None else {"model.onnx": done.onnx}
    if target == "lava":
        from pseudosnn.backends.registry import get_backend

        extra.update(get_backend("lava").emit(fixed, out))
    measured = None if done.calib_x is None else _measure(fixed, done.calib_x, done.calib_y)
    report = {"source": str(model), "target": target, "fixed_point": fixed.fixed_point,
              "calibration_run": measured,
              "layers": layer_rows(fixed), "latency_steps": fixed.latency_steps,
              "pipeline_interval": fixed.pipeline_interval, "quant": done.quant,
              "warnings": list(fixed.meta.get("warnings", []))}
    report["seconds"] = time.perf_counter() - t0
    extra["compile_report.json"] = json.dumps(report, indent=1, default=str).encode()
    artifact.save(fixed, out, target=target, extra_files=extra, force=force, keep=(model,))
    report["seconds"] = time.perf_counter() - t0
    report["summary"] = format_summary(fixed)
    if measured is not None:
        report["summary"] += (
            f"\non {measured['samples']} calibration samples (simulator): "
            f"{measured['sops_per_sample']:,.1f} SOPs and {measured['spikes_per_sample']:,.1f} "
            f"spikes per sample" + ("" if measured["accuracy"] is None
                                    else f", accuracy {100 * measured['accuracy']:.2f}%"))
    return report


def _compile(model: Path, *, fixed_point: bool, verify: bool, trusted: bool, coupling: str,
             max_timesteps: int | None, input_shape, calib: str,
             calib_samples: int) -> Compiled:
    """A checkpoint or ONNX file through the whole pipeline. The graph's warnings say when
    no rate-equivalent ONNX model exists and what deploying a noisy family costs."""
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend.checkpoint import load_model_and_ir
    from pseudosnn.compiler.frontend.deploy_gap import gap_lines
    from pseudosnn.compiler.onnx_io import NotRateExpressible, to_onnx
    from tqdm import tqdm

    torch_model, ir_graph = load_model_and_ir(model, trusted=trusted,
                                              max_timesteps=max_timesteps,
                                              input_shape=input_shape)
    if coupling == "rate":
        ir_graph = ir_graph.with_nodes(
            replace(n, attrs={**n.attrs, "coupling": "rate"}) if n.op == "Neuron" else n
            for n in ir_graph.nodes)
    calib_x, calib_y = _calibration(calib, ir_graph.input_shape, calib_samples)
    bar = tqdm(total=len(pipeline.IR_PASSES) + 1 + fixed_point, desc="compile",
               leave=False, disable=None)
    try:
        result = pipeline.run(ir_graph, fixed_point=fixed_point, verify=verify,
                              max_timesteps=max_timesteps, calib_x=calib_x,
                              calib_y=calib_y, progress=lambda s: bar.update(1),
                              run_graph=_run_graph)
    finally:
        bar.close()
    graph, onnx = result.fixed or result.graph, None
    try:
        onnx = to_onnx(ir_graph).SerializeToString()
    except NotRateExpressible as exc:  # leaky/hard-reset neurons: no rate model
        graph = _with_warnings(graph, [f"model.onnx not written: {exc}"])
    notes = ir_graph.meta.get("deploy_notes")
    if notes:
        deployed = None if calib_y is None else _measure(result.graph, calib_x, calib_y)
        graph = _with_warnings(graph, gap_lines(torch_model, notes, calib_x, calib_y,
                                                deployed and deployed["accuracy"]))
    return Compiled(graph, onnx, result.quant.as_dict() if result.quant else None,
                    calib_x, calib_y)


def _compile_nir(model: Path, nir, *, verify: bool, fixed_point: bool,
                 max_timesteps: int | None, coupling: str, input_shape, calib: str,
                 calib_samples: int) -> Compiled:
    """A NIR file (:func:`pseudosnn.compiler.frontend.nir.load_nir`), quantised on request."""
    from pseudosnn.compiler.frontend.nir import NirOptions, load_nir

    if coupling == "rate" or input_shape is not None:
        raise UsageError("--coupling rate and --input-shape do not apply to NIR files (their "
                         "populations are stream-coupled; the Input node gives the shape)")
    nir = replace(nir or NirOptions(), max_timesteps=max_timesteps, verify=verify)
    graph = load_nir(model, nir)
    calib_x, calib_y = _calibration(calib, graph.input.sample_shape, calib_samples)
    graph, quant = _quantised(graph, fixed_point, calib_x, calib_y)
    return Compiled(graph, None, quant, calib_x, calib_y)


def _quantised(graph, fixed_point: bool, calib_x, calib_y):
    """``(graph, report dict)`` quantised when ``fixed_point`` asks and it is float."""
    from pseudosnn.compiler.quantize import quantize

    if not fixed_point or graph.fixed_point:
        return graph, None
    graph, report = quantize(graph, calib_x, calib_y, run=_run_graph)
    return graph, report.as_dict()


def retarget(path: Path, *, fixed_point: bool, max_timesteps: int | None, coupling: str,
             input_shape, calib: str, calib_samples: int) -> Compiled:
    """An existing artifact (hashes checked on load) under the options: quantised for
    ``fixed_point``, its T checked against ``max_timesteps``; options that only a
    checkpoint can honour (a new input shape, ``coupling="rate"`` over stream
    populations) are refused."""
    from pseudosnn.compiler import artifact
    from pseudosnn.compiler.ir import check_timesteps

    graph = artifact.load(path)
    shape = tuple(graph.input.sample_shape)
    if input_shape is not None and tuple(input_shape) != shape:
        raise UsageError(f"{path} is compiled for inputs of shape {shape}; "
                         "--input-shape cannot change an artifact: compile the checkpoint")
    stream = [p.name for p in graph.populations if p.coupling != "rate"]
    if coupling == "rate" and stream:
        raise UsageError(f"{path} has stream-coupled populations ({', '.join(stream)}); "
                         "--coupling rate needs the checkpoint: compile it with that option")
    for p in graph.populations:
        check_timesteps(f"{path}: population {p.name!r}", p.timesteps, max_timesteps)
    calib_x, calib_y = _calibration(calib, shape, calib_samples)
    graph, quant = _quantised(graph, fixed_point, calib_x, calib_y)
    onnx = path / "model.onnx"
    return Compiled(graph, onnx.read_bytes() if onnx.is_file() else None, quant,
                    calib_x, calib_y)


def _with_warnings(graph, lines: list[str]):
    """``graph`` with ``lines`` added to the warnings the summary and report show."""
    return replace(graph, meta={**graph.meta,
                                "warnings": [*graph.meta.get("warnings", []), *lines]})


def _run_graph(graph, x):
    """The simulator's spike counts and readout (the quantiser measures with it)."""
    from pseudosnn.backends.registry import get_backend

    run = get_backend("numpy").run(graph, x)
    return run.counts, run.output


def _measure(graph, x, y) -> dict:
    """The compiled graph simulated on the calibration batch: counts per sample."""
    import numpy as np
    from pseudosnn.backends.registry import get_backend

    run = get_backend("numpy").run(graph, x)
    n = len(x)
    return {"samples": n, "sops_per_sample": sum(run.sops.values()) / n,
            "encoder_macs_per_sample": run.macs / n,
            "spikes_per_sample": sum(int(c.sum()) for c in run.counts.values()) / n,
            "accuracy": None if y is None else float(np.mean(run.output.argmax(-1) == y))}
