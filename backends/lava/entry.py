"""Run a compiled artifact on Lava (the Lava venv's Python: 3.10 + lava-nc 0.10.0).

    python -m pseudosnn.backends.lava.entry ARTIFACT --inputs X.npz --out RESULT.npz
        [--samples N] [--fixed-point] [--record-spikes] [--batch K] [--timeout S]

``X.npz`` holds the analog inputs as array ``x`` of shape ``(B, *input shape)``. Samples run
back to back, ``latency_steps`` each, in one Lava run per batch of ``K`` (default: all;
every process resets its state at a sample boundary). ``RESULT.npz`` (written atomically)
holds ``output`` (B, *readout shape), ``counts/<pop>`` (B, *shape), ``spikes/<pop>``
(B, steps, *shape; with ``--record-spikes``) and timings: what the run observed. SOPs,
MACs and latency are derived on the main side by the counting module, as for every
backend.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pseudosnn.compiler.atomic import write_atomic_with

EXIT_TIMEOUT = 124
EXIT_FAILED = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m pseudosnn.backends.lava.entry",
        description="Run a compiled PseudoSNN artifact on Lava and write spikes, readouts "
                    "and counters to an .npz file.")
    ap.add_argument("artifact", nargs="?",
                    help="compiled artifact directory (pseudosnn-compile -o DIR)")
    ap.add_argument("--inputs", help="npz file with array 'x' of shape (B, *input shape)")
    ap.add_argument("--out", help="result .npz file (written atomically)")
    ap.add_argument("--jobs", default=None, metavar="JOBS.json",
                    help="run several artifacts in this one process (saves the start-up): a "
                         "JSON list of {artifact, inputs, out, fixed_point, record_spikes}")
    ap.add_argument("--samples", type=int, default=None, help="run the first N samples")
    ap.add_argument("--fixed-point", action="store_true",
                    help="require the bit-accurate fixed-point models (the artifact's graph "
                         "must be quantised)")
    ap.add_argument("--record-spikes", action="store_true",
                    help="record every spike of every population (B, steps, *shape)")
    ap.add_argument("--batch", type=int, default=0,
                    help="samples per Lava run (0 = all in one run; 1 = rebuild per sample)")
    ap.add_argument("--conv-model", choices=("lava", "im2col"), default="lava",
                    help="ProcessModel of lava's Conv process: lava's own (default) or the "
                         "same arithmetic as one GEMM (faster)")
    ap.add_argument("--timeout", type=float, default=0,
                    help="abort with exit code 124 after this many seconds (0 = never)")
    ap.add_argument("--inject-fault", default=None, metavar="POP:raise|hang:STEP",
                    help="testing aid: make population POP's process raise (or hang) at "
                         "global step STEP")
    args = ap.parse_args(argv)
    if args.jobs is None and not (args.artifact and args.inputs and args.out):
        ap.error("give ARTIFACT --inputs X.npz --out RESULT.npz, or --jobs JOBS.json")
    return args


def _abort(message: str, code: int) -> None:
    sys.stderr.write(f"\n[pseudosnn lava] {message}; killing the run\n")
    sys.stderr.flush()
    for child in multiprocessing.active_children():
        child.kill()
    os._exit(code)


def _watchdog(seconds: float, failure_file: Path) -> threading.Event:
    """A daemon thread that ends the run when a Lava process reports a failure (Lava
    itself usually hangs then) or after ``seconds`` (0 = no limit). Set the returned
    event to stop watching."""
    done = threading.Event()
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")

    def watch():
        while not done.wait(0.1):
            if failure_file.exists() and failure_file.stat().st_size:
                _abort("a Lava process failed (traceback above)", EXIT_FAILED)
            if time.monotonic() > deadline:
                _abort(f"not finished after --timeout {seconds:g} s (slow or hung)",
                       EXIT_TIMEOUT)

    threading.Thread(target=watch, daemon=True).start()
    return done


def load_inputs(path: str, samples: int | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as npz:
        if "x" not in npz.files:
            raise SystemExit(f"{path} has no array 'x' (found {npz.files}); save the inputs "
                             "with np.savez(path, x=batch)")
        x = np.asarray(npz["x"], dtype=np.float64)
    if samples is not None:
        if samples < 1:
            raise SystemExit(f"--samples must be >= 1, got {samples}")
        x = x[:samples]
    return x


def run(graph, x: np.ndarray, record_spikes: bool = False, batch: int = 0,
        fault: tuple[str, str, int] | None = None,
        conv_model: str = "lava") -> dict[str, np.ndarray]:
    """Run ``x`` through Lava; return the result arrays (the ``RESULT.npz`` keys)."""
    from pseudosnn.backends.lava.build import build_network, run_network

    n = x.shape[0]
    batch = n if batch <= 0 else batch
    runs, t_build = [], 0.0
    for lo in range(0, n, batch):
        t0 = time.perf_counter()
        net = build_network(graph, x[lo:lo + batch], record_spikes=record_spikes, fault=fault)
        t_build += time.perf_counter() - t0
        runs.append(run_network(net, record_spikes=record_spikes, conv_model=conv_model))
    out: dict[str, np.ndarray] = {}
    values = np.concatenate([r.values for r in runs])
    out["readout_raw"] = values
    ro = graph.readout
    out["output"] = values / ro.units_per_float if graph.fixed_point else values
    for p in (*graph.populations, *graph.pools):
        out[f"counts/{p.name}"] = np.concatenate([r.counts[p.name] for r in runs])
        if record_spikes:
            out[f"spikes/{p.name}"] = np.concatenate([r.spikes[p.name] for r in runs])
    out["samples"] = np.int64(n)
    out["seconds_build"] = np.float64(t_build)
    out["seconds_compile"] = np.float64(sum(r.seconds_compile for r in runs))
    out["seconds_run"] = np.float64(sum(r.seconds_run for r in runs))
    out["seconds_read"] = np.float64(sum(r.seconds_read for r in runs))
    out["lava_runs"] = np.int64(len(runs))
    out["lava_lif"] = np.array(runs[0].lava_lif, dtype=str)  # on lava's own LIF process
    return out


def write_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
    """The result file, written atomically (:mod:`pseudosnn.compiler.atomic`)."""
    write_atomic_with(path, lambda f: np.savez(f, **arrays))


def parse_fault(spec: str | None) -> tuple[str, str, int] | None:
    if not spec:
        return None
    try:
        pop, kind, step = spec.rsplit(":", 2)
        if kind not in ("raise", "hang"):
            raise ValueError
        return pop, kind, int(step)
    except ValueError:
        raise SystemExit(f"--inject-fault {spec!r}: expected POP:raise:STEP or "
                         "POP:hang:STEP") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    from pseudosnn.backends.lava.models import FAILURE_FILE_ENV
    from pseudosnn.compiler.artifact import ArtifactError, load
    from pseudosnn.compiler.spiking.graph import GraphError

    fd, failure_file = tempfile.mkstemp(prefix="pseudosnn-lava-failure.")
    os.close(fd)
    os.environ[FAILURE_FILE_ENV] = failure_file  # inherited by the Lava processes
    watching = _watchdog(args.timeout, Path(failure_file))
    if args.jobs:
        jobs = json.loads(Path(args.jobs).read_text())
    else:
        jobs = [dict(artifact=args.artifact, inputs=args.inputs, out=args.out,
                     fixed_point=args.fixed_point, record_spikes=args.record_spikes)]
    try:
        for job in jobs:
            t_job = time.perf_counter()
            graph = load(job["artifact"])
            if job.get("fixed_point") and not graph.fixed_point:
                raise GraphError(f"{job['artifact']} holds a float graph; --fixed-point needs "
                                 "a quantised one (compile the model with quantisation)")
            x = load_inputs(job["inputs"], args.samples)
            shape = graph.input.sample_shape
            if tuple(x.shape[1:]) != tuple(shape) or x.shape[0] == 0:
                raise GraphError(f"inputs have shape {x.shape}, the graph expects (B, "
                                 f"{', '.join(map(str, shape))}) with B >= 1")
            result = run(graph, x, record_spikes=bool(job.get("record_spikes")),
                         batch=args.batch, fault=parse_fault(args.inject_fault),
                         conv_model=args.conv_model)
            result["seconds_total"] = np.float64(time.perf_counter() - t_job)
            result["seconds_process"] = np.float64(time.perf_counter() - t_start)
            result["mode"] = np.array("fixed_pt" if graph.fixed_point else "floating_pt")
            write_arrays(job["out"], result)
            summary = {k: result[k].item() for k in ("samples", "seconds_total")}
            print(json.dumps({"artifact": str(job["artifact"]), **summary}), flush=True)
    except (ArtifactError, GraphError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_FAILED
    finally:
        watching.set()
        Path(failure_file).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
