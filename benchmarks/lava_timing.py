"""Lava timings for the benchmarks (main environment; runs Lava in its venv).

``lava_seconds_per_sample(artifact_dir, x)`` is the Lava column of
``benchmarks/simulate.py``: seconds per sample while Lava steps the network (all samples
in one run, state reset between samples), excluding the fixed start-up (Python and lava
imports, compiling the process graph, spawning one OS process per Lava process), which
:func:`lava_timings` reports separately.

    .venv/bin/python benchmarks/lava_timing.py ARTIFACT [--samples 8]

compares, on one artifact, the simulator with Lava (lava's own Conv model and the im2col
one) and "reset between samples" (one Lava run) with "rebuild per sample" (one Lava run
per sample), and writes ``benchmarks/results/lava.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from pseudosnn.backends.lava_backend import run_artifact

REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "benchmarks" / "results" / "lava.json"


def lava_timings(artifact_dir, x: np.ndarray, conv_model: str = "lava", batch: int = 0,
                 timeout: float = 600.0) -> dict:
    """One Lava run of ``x`` through the artifact; every phase in seconds."""
    from pseudosnn.compiler.artifact import load

    graph = load(artifact_dir)
    res = run_artifact(artifact_dir, x, fixed_point=graph.fixed_point, batch=batch,
                       conv_model=conv_model, timeout=timeout)
    n = int(x.shape[0])
    ex = res.extra
    return {
        "samples": n, "conv_model": conv_model, "lava_runs": ex["lava_runs"],
        "steps_per_sample": res.steps,
        "seconds_wall": ex["seconds_wall"],  # the whole subprocess, as a user waits
        "seconds_startup": ex["seconds_wall"] - ex["seconds_run"],
        "seconds_compile": ex["seconds_compile"],  # lava compile + process spawn
        "seconds_run": ex["seconds_run"],  # stepping
        "run_seconds_per_sample": ex["seconds_run"] / n,
        "run_seconds_per_step": ex["seconds_run"] / (n * res.steps),
        "wall_seconds_per_sample": ex["seconds_wall"] / n,
    }


def lava_seconds_per_sample(artifact_dir, x: np.ndarray, conv_model: str = "lava") -> float:
    """Seconds per sample while Lava steps the network (start-up excluded)."""
    return lava_timings(artifact_dir, x, conv_model=conv_model)["run_seconds_per_sample"]


def _simulator_seconds_per_sample(graph, x: np.ndarray, reps: int = 3) -> float:
    from pseudosnn.simulator.engine import simulate

    simulate(graph, x)
    best = []
    for _ in range(reps):
        t0 = time.perf_counter()
        simulate(graph, x)
        best.append(time.perf_counter() - t0)
    return float(np.median(best)) / x.shape[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Lava vs simulator seconds per sample.")
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from pseudosnn.compiler.artifact import load
    from pseudosnn.compiler.atomic import write_atomic
    from pseudosnn.simulator.datasets import fit_to_input, load_digits_test

    ds = load_digits_test()
    rows = []
    for art in args.artifacts:
        graph = load(art)
        x = fit_to_input(ds.x[:args.samples], graph.input.sample_shape, "digits")
        sim = _simulator_seconds_per_sample(graph, x)
        row = {"artifact": str(art), "fixed_point": graph.fixed_point,
               "latency_steps": graph.latency_steps, "samples": len(x),
               "simulator_seconds_per_sample": sim}
        for label, kw in (("lava", {}), ("lava_im2col", {"conv_model": "im2col"}),
                          ("lava_rebuild_per_sample", {"batch": 1})):
            t = lava_timings(art, x, **kw)
            row[label] = t
            row[f"{label}_over_simulator_run"] = t["run_seconds_per_sample"] / sim
            row[f"{label}_over_simulator_wall"] = t["wall_seconds_per_sample"] / sim
        rows.append(row)
        print(f"{art.name:<16} T-latency {graph.latency_steps:>3} steps  simulator "
              f"{sim * 1e3:8.2f} ms/sample")
        for label in ("lava", "lava_im2col", "lava_rebuild_per_sample"):
            t = row[label]
            print(f"  {label:<24} stepping {t['run_seconds_per_sample'] * 1e3:9.1f} ms/sample "
                  f"({t['run_seconds_per_step'] * 1e3:6.1f} ms/step; "
                  f"x{row[f'{label}_over_simulator_run']:,.0f} the simulator), "
                  f"wall {t['wall_seconds_per_sample']:6.2f} s/sample incl. start-up "
                  f"{t['seconds_startup']:.1f} s")
    write_atomic(args.out, json.dumps(rows, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
