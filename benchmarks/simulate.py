"""Simulator throughput, side by side on the same network and batch (issue 5).

Columns (images/s from the median CPU time of this process: every contender runs in
one thread, repetitions interleaved; wall times are stored too):

* ``simulator``: ``pseudosnn.simulator.engine.simulate`` (float64, cycle-accurate).
* ``onnxruntime``: the rate-equivalent ONNX of the same spiking graph (float32): per
  population ``n = clip(floor((v0 + T*c)/theta), 0, T)`` with ``c = sum_k proj_k(n_k) + b``,
  i.e. the least work that yields the same counts. Built here from the spiking graph.
* ``onnxruntime_same_projections`` (compiled artifacts only): the ONNX built here from
  the compiled spiking graph, i.e. with the compiler's fused projections (an avgpool+conv
  becomes one larger conv), where ``model.onnx`` keeps the trained layers.
* ``torch time loop``: the same graph stepped through the global clock in torch (float32):
  every step each population integrates, every step's spikes are projected (conv/linear)
  and delivered one step later, as a time-stepped SNN framework would run it.
* ``lava``: ``benchmarks/lava_timing.py``, ``
  lava_seconds_per_sample(artifact_dir, x) -> float`` (wall time while Lava steps, start-up
  excluded; compared with the simulator's wall time), on the compiled artifacts only.

Networks: a compiled digits CNN artifact when given (``--artifact``), and a random
CIFAR-sized rate-coupled CNN (3x32x32, heterogeneous T). Writes
``benchmarks/results/simulate.json``.

    .venv/bin/python benchmarks/simulate.py [--artifact build/cnn] [--batch 64] [--reps 5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread for every contender, before numpy loads

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from pseudosnn.backends.onnx_backend import graph_to_onnx  # noqa: E402
from pseudosnn.compiler import artifact  # noqa: E402
from pseudosnn.compiler.atomic import write_atomic  # noqa: E402
from pseudosnn.compiler.spiking.graph import (  # noqa: E402
    InputNode,
    Population,
    Projection,
    Readout,
    SpikingGraph,
)
from pseudosnn.compiler.spiking.schedule import schedule  # noqa: E402
from pseudosnn.simulator.engine import simulate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.json"


# --- networks -------------------------------------------------------------------------
def cifar_like_graph(seed: int = 0, t_max: int = 8) -> SpikingGraph:
    """3x32x32 -> conv32 -> conv64/2 -> conv128/2 -> conv128 -> dense 10, rate coupling,
    per-layer T drawn from 2..t_max, weights scaled for moderate firing."""
    rng = np.random.default_rng(seed)
    specs = [("conv1", 3, 32, 1, 32), ("conv2", 32, 64, 2, 16), ("conv3", 64, 128, 2, 8),
             ("conv4", 128, 128, 1, 8)]
    pops, projs, prev, prev_T = [], [], "input", None
    for name, cin, cout, stride, size in specs:
        T = np.int64(rng.integers(2, t_max + 1))
        pops.append(Population(name, (cout, size, size), T, 1.0,
                               rng.normal(0.05, 0.1, size=(cout, 1, 1)), 0.5))
        w = rng.normal(0, 1.6 / np.sqrt(cin * 9), size=(cout, cin, 3, 3))
        if prev_T is not None:
            w = w / prev_T
        projs.append(Projection(f"{prev}->{name}", prev, name, "conv", w, stride=(stride,) * 2,
                                padding=(1, 1), delay=0 if prev == "input" else 1))
        prev, prev_T = name, T
    n = 128 * 8 * 8
    projs.append(Projection(f"{prev}->out", prev, "out", "dense",
                            rng.normal(0, 1 / np.sqrt(n), size=(10, n)) / prev_T))
    g = SpikingGraph(InputNode((3, 32, 32)), tuple(pops), Readout("out", (10,), np.zeros(10)),
                     tuple(projs), meta={"source": f"cifar_like_graph(seed={seed})"})
    g = schedule(g)
    g.validate()
    return g


# --- onnxruntime: the rate-equivalent network -----------------------------------------
def ort_session(model_bytes: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x.astype(np.float32)})[0]


# --- torch: the same graph stepped through time ---------------------------------------
def torch_time_loop(graph: SpikingGraph):
    """A function ``x -> readout`` that steps ``graph`` through the global clock in torch."""
    import torch
    import torch.nn.functional as F

    pops = list(graph.topological_populations())
    W = {pr.name: torch.as_tensor(np.asarray(pr.weight, np.float32)) for pr in graph.projections}

    def apply(pr, s):
        if pr.event_scale is not None:
            s = s * torch.as_tensor(np.asarray(pr.event_scale, np.float32))
        if pr.kind == "conv":
            return F.conv2d(s, W[pr.name], stride=pr.stride, padding=pr.padding,
                            groups=pr.groups)
        return F.linear(s.flatten(1), W[pr.name])

    meta = {p.name: (torch.as_tensor(p.timesteps_full().astype(np.float32)),
                     torch.as_tensor(np.asarray(p.bias, np.float32))) for p in pops}

    @torch.no_grad()
    def run(x_np):
        x = torch.as_tensor(x_np.astype(np.float32))
        B = x.shape[0]
        v = {p.name: torch.full((B, *p.shape), p.v0) for p in pops}
        acc = {p.name: 0 for p in pops}
        ro = 0
        pending: dict[tuple[str, int], torch.Tensor] = {}
        for pr in graph.projections:
            if pr.is_encoder:
                pending[(pr.target, 0)] = apply(pr, x)
        for t in range(graph.latency_steps):
            for p in pops:
                arrived = pending.pop((p.name, t), None)
                if p.coupling == "rate":
                    if arrived is not None:
                        acc[p.name] = acc[p.name] + arrived
                    inp = acc[p.name]
                else:
                    inp = arrived if arrived is not None else 0
                k = t - p.start
                if k < 0 or k >= p.t_max:
                    continue
                T, b = meta[p.name]
                active = k < T
                vv = v[p.name] + torch.where(active, inp + b, 0.0)
                s = (vv >= p.threshold) & active
                v[p.name] = vv - s.float() * p.threshold
                sf = s.float()
                for pr in graph.outgoing(p.name):
                    key = (pr.target, t + pr.delay)
                    y = apply(pr, sf)
                    pending[key] = pending[key] + y if key in pending else y
            arrived = pending.pop((graph.readout.name, t), None)
            if arrived is not None:
                ro = ro + arrived
        return (ro + torch.as_tensor(np.asarray(graph.readout.bias, np.float32))).numpy()

    return run


def fixed_point_version(graph: SpikingGraph) -> SpikingGraph | None:
    """The compiler's fixed-point quantisation of ``graph`` (None if it cannot)."""
    if graph.fixed_point:
        return None
    try:
        from pseudosnn.compiler.quantize import quantize
        return quantize(graph)[0]
    except Exception as exc:  # report, do not stop the benchmark
        print(f"  (no fixed-point version: {exc})")
        return None


def lava_hook():
    try:
        from lava_timing import lava_seconds_per_sample  # benchmarks/lava_timing.py
    except ImportError as exc:
        return None, f"hook not available ({exc})"
    return lava_seconds_per_sample, ""


# --- conv kernel choice: GEMM vs event list ------------------------------------------
def conv_events(s: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Stride-1 conv of binary spikes by scattering, for every event, its weights into the
    outputs it reaches (``np.add.at``): the event-list alternative to the GEMM."""
    b, c, h, wd = s.shape
    co, _, kh, kw = w.shape
    out = np.zeros((b, h + 2 * pad + kh, wd + 2 * pad + kw, co), dtype=w.dtype)
    eb, ec, ey, ex = np.nonzero(s)
    wt = w.transpose(1, 2, 3, 0)
    for u in range(kh):
        for v in range(kw):
            np.add.at(out, (eb, ey - u + pad + kh, ex - v + pad + kw), wt[ec, u, v])
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    return out[:, kh:kh + oh, kw:kw + ow].transpose(0, 3, 1, 2)


def bench_kernels(reps: int) -> list[dict]:
    from pseudosnn.compiler.spiking.synapses import conv2d

    rng = np.random.default_rng(0)
    w = rng.normal(size=(128, 128, 3, 3)).astype(np.float32)
    rows = []
    for rho in (0.01, 0.05, 0.2):
        s = rng.random((64, 128, 8, 8)) < rho
        fns = {"gemm": lambda s=s: conv2d(s.astype(np.float32), w, (1, 1), (1, 1)),
               "events": lambda s=s: conv_events(s, w, 1)}
        np.testing.assert_allclose(fns["events"](), fns["gemm"](), atol=1e-3)
        t = {"gemm": [], "events": []}
        for _ in range(reps):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                t[name].append(time.perf_counter() - t0)
        rows.append({"activity": rho, **{f"{k}_ms": 1e3 * statistics.median(v)
                                         for k, v in t.items()}})
        print(f"conv 128->128 3x3 on 64x128x8x8 spikes, activity {rho:4.0%}: GEMM "
              f"{rows[-1]['gemm_ms']:.1f} ms, event list {rows[-1]['events_ms']:.1f} ms")
    return rows


# --- measurement ----------------------------------------------------------------------
def bench_network(name: str, graph: SpikingGraph, x: np.ndarray, reps: int,
                  art_dir: Path | None, onnx_bytes: bytes | None = None,
                  with_lava: bool = True) -> dict:
    import torch

    torch.set_num_threads(1)
    ort_run = ort_session(onnx_bytes or graph_to_onnx(graph).SerializeToString())
    torch_run = torch_time_loop(graph)
    contenders = {
        "simulator": lambda: simulate(graph, x),
        "simulator_float32": lambda: simulate(graph, x, precision="float32"),
        "onnxruntime": lambda: ort_run(x),
        "torch_time_loop": lambda: torch_run(x),
    }
    if onnx_bytes is not None:  # also the ONNX of the compiled graph's own projections
        ort_graph = ort_session(graph_to_onnx(graph).SerializeToString())
        contenders["onnxruntime_same_projections"] = lambda: ort_graph(x)
    fixed = fixed_point_version(graph)
    if fixed is not None:
        contenders["simulator_fixed_point"] = lambda: simulate(fixed, x)
    # correctness first: everyone computes the same network
    ref = simulate(graph, x)
    agree = {
        "onnxruntime_argmax_agreement": float(np.mean(ort_run(x).argmax(1) ==
                                                      ref.output.argmax(1))),
        "torch_argmax_agreement": float(np.mean(torch_run(x).argmax(1) == ref.output.argmax(1))),
        "onnxruntime_max_abs_readout_diff": float(np.abs(ort_run(x) - ref.output).max()),
        "torch_max_abs_readout_diff": float(np.abs(torch_run(x) - ref.output).max()),
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():  # warm-up
        fn()
    for _ in range(reps):  # interleaved repetitions
        for k, fn in contenders.items():
            t0, w0 = time.process_time(), time.perf_counter()
            fn()
            times[k].append(time.process_time() - t0)
            wall[k].append(time.perf_counter() - w0)
    # CPU time of this (single-threaded) process: robust to other jobs on a shared machine
    med = {k: statistics.median(v) for k, v in times.items()}
    row = {
        "network": name, "batch": int(x.shape[0]), "reps": reps,
        "latency_steps": graph.latency_steps,
        "T": {p.name: float(np.mean(p.timesteps)) for p in graph.populations},
        "timing": "median CPU seconds of this process (all contenders single-threaded)",
        "seconds_per_batch": med,
        "wall_seconds_per_batch": {k: statistics.median(v) for k, v in wall.items()},
        "images_per_s": {k: x.shape[0] / v for k, v in med.items()},
        "simulator_over_onnxruntime_time": {
            k: med[k] / med["onnxruntime"] for k in med if k.startswith("simulator")},
        "torch_loop_over_simulator_time": {
            k: med["torch_time_loop"] / med[k] for k in med if k.startswith("simulator")},
        **agree,
    }
    fn, why = lava_hook()
    if fn is not None and art_dir is not None and with_lava:
        n_lava = min(4, x.shape[0])
        lava_s = fn(art_dir, x[:n_lava])
        sim_wall = row["wall_seconds_per_batch"]["simulator"] / x.shape[0]
        row["lava_seconds_per_sample"] = lava_s
        row["lava_timing"] = ("wall seconds per sample while Lava steps the network, start-up "
                              f"excluded, {n_lava} samples (benchmarks/lava_timing.py)")
        row["images_per_s"]["lava"] = 1.0 / lava_s
        row["lava_over_simulator_wall_time"] = lava_s / sim_wall
    else:
        row["lava"] = why or "not run on this network (a small network only; --lava-on-random)"
    return row


def build_digits_cnn(out: Path) -> Path:
    """Train the digits CNN config and compile it (float, rate coupling) with the CLI."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    bindir = Path(sys.executable).parent
    subprocess.run([bindir / "pseudosnn", "train", "--config",
                    repo / "configs" / "digits" / "cnn.yaml", "--out", out / "run"], check=True)
    subprocess.run([bindir / "pseudosnn-compile", out / "run" / "last.pth", "-o", out / "cnn"],
                   check=True)
    return out / "cnn"


def print_table(rows: list[dict]) -> None:
    """images/s per contender; then time ratios (sim/ort: target <= 2; torch/sim: >= 3)."""
    cols = ["simulator", "simulator_float32", "simulator_fixed_point", "onnxruntime",
            "onnxruntime_same_projections", "torch_time_loop", "lava"]
    for r in rows:
        print(f"\n{r['network']} (batch {r['batch']}, {r['latency_steps']} steps)")
        ips = r["images_per_s"]
        for c in cols:
            if c not in ips:
                print(f"  {c:<30}{'n/a':>12}")
                continue
            line = f"  {c:<30}{ips[c]:>10.3g}/s"
            if c.startswith("simulator"):
                vs_ort = r["simulator_over_onnxruntime_time"][c]
                vs_torch = r["torch_loop_over_simulator_time"][c]
                line += (f"   time vs onnxruntime {vs_ort:5.2f}x"
                         f"   torch loop time / this {vs_torch:5.2f}x")
            print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifact", type=Path, action="append", default=[],
                    help="compiled artifact(s) to benchmark (e.g. a digits CNN)")
    ap.add_argument("--build-digits-cnn", type=Path, metavar="DIR",
                    help="train configs/digits/cnn.yaml and compile it into DIR/cnn first "
                         "(about a minute), then benchmark that artifact")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-random", action="store_true", help="skip the CIFAR-sized network")
    ap.add_argument("--lava-on-random", action="store_true",
                    help="also run Lava on the CIFAR-sized network (~30 s per sample)")
    ap.add_argument("--no-lava", action="store_true",
                    help="skip the Lava column (e.g. to time another checkout of the package)")
    ap.add_argument("--kernels", action="store_true",
                    help="also time the conv kernel choice (GEMM vs event list)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    if args.build_digits_cnn:
        args.artifact.append(build_digits_cnn(args.build_digits_cnn))
    for art in args.artifact:
        g = artifact.load(art)
        if art.joinpath("model.onnx").is_file():
            onnx_bytes = art.joinpath("model.onnx").read_bytes()
        else:
            onnx_bytes = None
        if g.input.shape == (1, 8, 8):
            from pseudosnn.simulator.datasets import load_digits_test

            x = load_digits_test().x[: args.batch]
        else:
            x = rng.normal(size=(args.batch, *g.input.shape))
        rows.append(bench_network(f"compiled {art.name}", g, x, args.reps, art, onnx_bytes,
                                  with_lava=not args.no_lava))
        rows[-1]["artifact"] = str(art)
        rows[-1]["onnx_source"] = "artifact model.onnx" if onnx_bytes else "built from graph"
    if not args.no_random:
        g = cifar_like_graph()
        x = rng.normal(0, 1, size=(args.batch, 3, 32, 32))
        with tempfile.TemporaryDirectory() as tmp:
            art = artifact.save(g, Path(tmp) / "cifar_like")
            rows.append(bench_network("random cifar-like cnn", g, x, args.reps, art,
                                      with_lava=args.lava_on_random))
        rows[-1]["onnx_source"] = "built from graph"
    print_table(rows)
    result = {"rows": rows, "threads": 1, "cpu_count": os.cpu_count()}
    if args.kernels:
        result["conv_kernel_choice"] = bench_kernels(max(1, args.reps // 2))
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
