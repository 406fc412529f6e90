"""Simulator speed and memory on the networks users have, side by side (issue 14).

Networks (random weights, compiled from a checkpoint file like a user's):

* ``vggsnn``: the paper's VGGSNN (CIFAR) in its own checkpoint layout (deng-ai-lab/PseudoSNN
  keys and ``args``), per-layer T chosen so that two layers are stream-coupled, batch 16;
* ``resnet19``: our ResNet-19 at 3x32x32, batch 8; ``sew_resnet34``: our SEW-ResNet-34 at
  3x224x224 (1000 classes), batch 2;
* ``toy``: the 4-layer CIFAR-sized CNN of earlier benchmarks (built as a spiking graph).

Contenders, each at one thread and at every core (``--threads-all``, default all):

* ``simulator``: ``simulate(graph, x)`` (float64, bit-identical to the closed-form
  reference); ``simulator_float32``; ``simulator_fixed_point`` (the compiler's quantised
  graph, integer-exact);
* ``onnxruntime``: the artifact's ``model.onnx``, i.e. the *trained layers* (float32) — the
  baseline of the targets; ``onnxruntime_compiled``: the rate-equivalent ONNX of the compiled
  projections (``graph_to_onnx``, composed weights);
* ``torch_time_loop``: the compiled graph stepped through the global clock in torch
  (float32), as a time-stepped SNN framework runs it.

Timing: repetitions interleaved (every contender once per repetition, in turn), medians;
images/s from CPU time at one thread (robust to other jobs on a shared machine) and from
wall time at all threads; the machine's load average is recorded. Peak memory: each
contender in a fresh process (``--probe``), peak RSS (VmHWM) after one warm-up and one timed
batch. ``--kernels`` times the conv kernels on zoo layer shapes; ``--ray`` the Ray cluster
option (2 local workers vs 1, one thread each). Writes ``benchmarks/results/simulate.json``.

    .venv/bin/python benchmarks/simulate.py [--only resnet19 ...] [--reps 5] [--kernels]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pseudosnn.compiler import artifact
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.compiler.spiking.graph import (
    InputNode,
    Population,
    Projection,
    Readout,
    SpikingGraph,
)
from pseudosnn.compiler.spiking.schedule import POOL_DELAY, schedule
from pseudosnn.simulator import threads

RESULTS = Path(__file__).resolve().parent / "results" / "simulate.json"
NETWORKS = {  # name -> batch
    "vggsnn": 16, "resnet19": 8, "sew_resnet34": 2, "toy": 16,
}
PAPER_VGGSNN_T = (4, 6, 6, 3, 5, 5, 7, 2)
"""Per-layer T of the paper-layout VGGSNN: layers 3 and 6 repeat their input's T, so the
paper's rule couples them by stream (two stream layers, as asked)."""
PAPER_T_RANGE = (1, 8)
TARGETS = {"float32_over_ort": 1.5, "float64_over_ort": 2.0, "stream_over_ort": 2.5,
           "torch_over_sim": 5.0, "memory_over_ort": 2.0}


# --- networks ----------------------------------------------------------------------------
def toy_graph(seed: int = 0, t_max: int = 8) -> SpikingGraph:
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
                     tuple(projs), meta={"source": f"toy_graph(seed={seed})"})
    g = schedule(g)
    g.validate()
    return g


def paper_vggsnn_checkpoint(path: Path, seed: int = 0) -> None:
    """A checkpoint of the paper's ``vggsnn_cifar`` in its code's layout (keys
    ``feature.<i>.0.weight``, BN, PseudoNeuron ``logit/scale/bias``; ``args``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lo, hi = PAPER_T_RANGE
    sd, cin, idx, k = {}, 3, 0, 0
    for item in [64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "AA3"]:
        if isinstance(item, str):
            idx += 1
            continue
        sd[f"feature.{idx}.0.weight"] = torch.randn(item, cin, 3, 3, generator=g) * \
            (2.0 / (cin * 9)) ** 0.5
        p = f"feature.{idx + 1}.0"
        sd[f"{p}.weight"] = 0.5 + torch.rand(item, generator=g)
        sd[f"{p}.bias"] = torch.randn(item, generator=g) * 0.2 + 0.1
        sd[f"{p}.running_mean"] = torch.randn(item, generator=g) * 0.1
        sd[f"{p}.running_var"] = 0.5 + torch.rand(item, generator=g)
        sd[f"{p}.num_batches_tracked"] = torch.tensor(100)
        r = min(max((PAPER_VGGSNN_T[k] - lo) / (hi - lo), 1e-3), 1 - 1e-3)
        sd[f"feature.{idx + 2}.logit"] = torch.tensor(math.log(r / (1 - r)))
        sd[f"feature.{idx + 2}.scale"] = torch.tensor(1.0)
        sd[f"feature.{idx + 2}.bias"] = torch.tensor(0.05)
        idx, k, cin = idx + 3, k + 1, item
    sd["classifier.0.0.weight"] = torch.randn(10, 512 * 9, generator=g) / (512 * 9) ** 0.5
    sd["classifier.0.0.bias"] = torch.zeros(10)
    args = argparse.Namespace(model="vggsnn_cifar", min_T=lo, max_T=hi, use_noise=True)
    torch.save({"model": sd, "args": args, "epoch": 0}, path)


def zoo_checkpoint(arch: str, shape: tuple[int, ...], path: Path, classes: int) -> None:
    from pseudosnn.compiler.frontend.testing import randomize

    from pseudosnn.checkpoint import make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    model = build_model(arch, num_classes=classes, input_shape=shape)
    randomize(model, seed=0)
    save_checkpoint(make_checkpoint(model, epoch=0), path)


def build_networks(work: Path, names: list[str]) -> dict[str, dict]:
    """Compile every network into ``work`` (kept: reruns reuse it); float and fixed point."""
    out = {}
    for name in names:
        art, fixed = work / name, work / f"{name}-fixed"
        ckpt = work / f"{name}.pth"
        if name == "toy":
            if not art.is_dir():
                artifact.save(toy_graph(), art)
            ckpt = None
        elif not (art / "manifest.json").is_file():
            from pseudosnn.compiler.command import compile_path

            if name == "vggsnn":
                paper_vggsnn_checkpoint(ckpt)
            elif name == "resnet19":
                zoo_checkpoint("resnet19", (3, 32, 32), ckpt, 10)
            else:
                zoo_checkpoint("sew_resnet34", (3, 224, 224), ckpt, 1000)
            compile_path(ckpt, art)
        if not (fixed / "manifest.json").is_file():
            from pseudosnn.compiler.quantize import quantize

            artifact.save(quantize(artifact.load(art))[0], fixed)
        out[name] = {"artifact": art, "fixed": fixed, "batch": NETWORKS[name],
                     "checkpoint_bytes": None if ckpt is None else ckpt.stat().st_size,
                     "artifact_bytes": _size(art)}
    return out


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- contenders ----------------------------------------------------------------------------
def ort_session(model: bytes | str, n_threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = n_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x.astype(np.float32)})[0]


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

    pooled = {pool.source for pool in graph.pools}

    def send(name, s, t, pending):
        for pr in graph.outgoing(name):
            key = (pr.target, t + pr.delay)
            y = apply(pr, s)
            pending[key] = pending[key] + y if key in pending else y

    @torch.no_grad()
    def run(x_np):
        x = torch.as_tensor(x_np.astype(np.float32))
        B = x.shape[0]
        v = {p.name: torch.full((B, *p.shape), p.v0) for p in pops}
        acc = {p.name: 0 for p in pops}
        ro = 0
        pending: dict[tuple[str, int], torch.Tensor] = {}
        to_pool: dict[tuple[str, int], torch.Tensor] = {}  # (source, step) -> spikes
        for pr in graph.projections:
            if pr.is_encoder:
                key = (pr.target, 0)
                y = apply(pr, x)
                pending[key] = pending[key] + y if key in pending else y
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
                if p.name in pooled:
                    to_pool[(p.name, t)] = sf
                send(p.name, sf, t, pending)
            for pool in graph.pools:  # spike max pooling, POOL_DELAY steps late
                src = to_pool.pop((pool.source, t - POOL_DELAY), None)
                if src is not None and 0 <= t - pool.start < pool.t_max:
                    send(pool.name, F.max_pool2d(src, pool.kernel, pool.stride, pool.padding),
                         t, pending)
            arrived = pending.pop((graph.readout.name, t), None)
            if arrived is not None:
                ro = ro + arrived
        return (ro + torch.as_tensor(np.asarray(graph.readout.bias, np.float32))).numpy()

    return run


@functools.cache
def _load(path: Path) -> SpikingGraph:
    return artifact.load(path)


@functools.cache
def _torch_loop(path: Path):
    return torch_time_loop(_load(path))


def contender(name: str, net: dict, n_threads: int):
    """``x -> readout`` of one contender at ``n_threads`` threads (graphs shared)."""
    from pseudosnn.simulator.engine import simulate

    art = net["artifact"]
    if name in ("simulator", "simulator_float32", "simulator_fixed_point"):
        g = _load(net["fixed"] if name.endswith("fixed_point") else art)
        precision = "float32" if name.endswith("float32") else "float64"
        return lambda x: simulate(g, x, precision=precision, threads=n_threads).output
    if name == "onnxruntime":
        model = art / "model.onnx"
        if model.is_file():
            return ort_session(str(model), n_threads)
        name = "onnxruntime_compiled"  # a graph built by hand has no trained layers
    if name == "onnxruntime_compiled":
        from pseudosnn.backends.onnx_backend import graph_to_onnx

        return ort_session(graph_to_onnx(_load(art)).SerializeToString(), n_threads)
    if name == "torch_time_loop":
        import torch

        run = _torch_loop(art)

        def stepped(x):
            torch.set_num_threads(n_threads)
            return run(x)
        return stepped
    raise ValueError(name)


CONTENDERS = ("simulator", "simulator_float32", "simulator_fixed_point", "onnxruntime",
              "onnxruntime_compiled", "torch_time_loop")


def inputs(net: dict) -> np.ndarray:
    g = _load(net["artifact"])
    return np.random.default_rng(0).normal(size=(net["batch"], *g.input.sample_shape))


# --- measurement ----------------------------------------------------------------------------
def time_network(name: str, net: dict, reps: int, all_threads: int) -> dict:
    """Interleaved repetitions of every contender at 1 and ``all_threads`` threads."""
    x = inputs(net)
    runs = {(c, n): contender(c, net, n) for n in sorted({1, all_threads}) for c in CONTENDERS}
    ref = runs[("simulator", 1)](x)
    agree = {}
    for (c, n), fn in runs.items():  # warm-up, and everyone computes the same network
        out = np.asarray(fn(x), np.float64)
        if n == 1:
            agree[c] = {"argmax_agreement": float(np.mean(out.argmax(1) == ref.argmax(1))),
                        "max_abs_readout_diff": float(np.abs(out - ref).max())}
    cpu = {k: [] for k in runs}
    wall = {k: [] for k in runs}
    load = []
    for _ in range(reps):
        load.append(os.getloadavg()[0])
        for k, fn in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn(x)
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    b = int(x.shape[0])
    per = {}
    for n in sorted({1, all_threads}):
        # one thread: CPU time (robust to other jobs); all threads: wall time
        secs = {c: statistics.median(cpu[(c, n)] if n == 1 else wall[(c, n)])
                for c in CONTENDERS}
        per[str(n)] = {
            "seconds_per_batch": secs, "images_per_s": {c: b / s for c, s in secs.items()},
            "wall_seconds_per_batch": {c: statistics.median(wall[(c, n)]) for c in CONTENDERS},
            "over_onnxruntime": {c: secs[c] / secs["onnxruntime"] for c in CONTENDERS},
            "torch_loop_over": {c: secs["torch_time_loop"] / secs[c] for c in CONTENDERS
                                if c.startswith("simulator")},
        }
    g = artifact.load(net["artifact"])
    return {"network": name, "batch": b, "reps": reps, "latency_steps": g.latency_steps,
            "stream_populations": [p.name for p in g.populations if p.coupling == "stream"],
            "timing": "medians of interleaved repetitions; 1 thread: CPU seconds, all "
                      "threads: wall seconds", "load_average_during": load, "threads": per,
            "agreement_with_simulator": agree, "checkpoint_bytes": net["checkpoint_bytes"],
            "artifact_bytes": net["artifact_bytes"]}


def probe(net: dict, name: str, n_threads: int) -> dict:
    """Peak RSS of one contender in this (fresh) process: imports, load, warm-up, a batch."""
    x = inputs(net)
    fn = contender(name, net, n_threads)
    fn(x)
    t0 = time.perf_counter()
    fn(x)
    return {"peak_rss_bytes": _status("VmHWM"), "seconds": time.perf_counter() - t0}


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return -1


def memory(name: str, work: Path, n_threads: int) -> dict:
    """Each contender's peak RSS, one fresh process each."""
    out = {}
    for c in CONTENDERS:
        cmd = [sys.executable, __file__, "--probe", name, c, str(n_threads), "--work", str(work)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        lines = res.stdout.strip().splitlines()
        out[c] = json.loads(lines[-1]) if res.returncode == 0 and lines else \
            {"error": res.stderr.strip().splitlines()[-1:]}
    ort = out["onnxruntime"].get("peak_rss_bytes")
    for c in CONTENDERS:
        if ort and "peak_rss_bytes" in out[c]:
            out[c]["over_onnxruntime"] = out[c]["peak_rss_bytes"] / ort
    return out


# --- kernels ----------------------------------------------------------------------------
KERNEL_LAYERS = [  # (name, C_in, C_out, k, stride, H, batch): zoo layer shapes
    ("resnet19 128-128 3x3 32x32", 128, 128, 3, 1, 32, 8),
    ("resnet19 512-512 3x3 8x8", 512, 512, 3, 1, 8, 8),
    ("sew34 64-64 3x3 56x56", 64, 64, 3, 1, 56, 2),
    ("sew34 512-512 3x3 7x7", 512, 512, 3, 1, 7, 2),
]


def _kernel_contenders(ci: int, co: int, k: int, s: int, h: int, b: int, rng) -> dict:
    """The conv kernels on one layer shape, and the exact integer result they must give."""
    from pseudosnn.compiler.spiking.synapses import conv2d
    from pseudosnn.simulator.kernels import Kernels

    counts = rng.integers(0, 9, size=(b, ci, h, h))
    wf = rng.normal(0, 0.05, (co, ci, k, k)).astype(np.float32)
    wi = rng.integers(-128, 128, (co, ci, k, k)).astype(np.int8)
    pf = Projection("f", "a", "b", "conv", wf, stride=(s, s), padding=(k // 2,) * 2)
    pi = Projection("i", "a", "b", "conv", wi, stride=(s, s), padding=(k // 2,) * 2)
    k32, kfx = Kernels("float32"), Kernels("fixed")
    c64, c32, w64 = counts.astype(np.float64), counts.astype(np.float32), wf.astype(np.float64)
    fns = {"numpy_float64": lambda: conv2d(c64, w64, pf.stride, pf.padding),
           "numpy_float32": lambda: conv2d(c32, wf, pf.stride, pf.padding),
           "onnxruntime_float32": lambda: k32(pf, c32),
           "fixed_matmul_integer": lambda: kfx(pi, counts, 8),  # counts <= 127: MatMulInteger
           "fixed_exact_float32": lambda: kfx(pi, counts, 300)}  # > 127: exact float32
    return fns, conv2d(counts, wi.astype(np.int64), pi.stride, pi.padding)


def bench_kernels(reps: int) -> list[dict]:
    """ms per conv: numpy float64/float32 im2col GEMM, onnxruntime Conv float32, and the fixed
    point kernels (MatMulInteger; exact float32), on counts 0..8 (1 thread, interleaved)."""
    rng = np.random.default_rng(0)
    rows = []
    for name, *shape in KERNEL_LAYERS:
        fns, exact = _kernel_contenders(*shape, rng)
        t = {n: [] for n in fns}
        with threads.using(1):
            assert np.array_equal(fns["fixed_matmul_integer"](), exact)
            assert np.array_equal(fns["fixed_exact_float32"](), exact)
            for _ in range(reps):
                for n, fn in fns.items():
                    c0 = time.process_time()
                    fn()
                    t[n].append(time.process_time() - c0)
        ms = {n: 1e3 * statistics.median(v) for n, v in t.items()}
        rows.append({"layer": name, "ms": ms})
        print(f"{name:28s} " + "  ".join(f"{n} {v:7.2f}" for n, v in ms.items()), flush=True)
    return rows


# --- Ray ----------------------------------------------------------------------------------
def bench_ray(net: dict, n_batches: int, reps: int) -> dict:
    """``simulate_dataset`` on a local Ray instance with 1 and with 2 workers (one thread per
    task), ``reps`` alternating runs each (Ray's start-up excluded: a warm-up batch per
    worker first); the counts must be the same bit for bit."""
    import ray
    from pseudosnn.simulator.sharding import simulate_dataset

    g = artifact.load(net["artifact"])
    b = net["batch"]
    x = np.random.default_rng(1).normal(size=(n_batches * b, *g.input.sample_shape))
    times: dict[int, list[float]] = {1: [], 2: []}
    tallies = {}
    for _ in range(reps):
        for workers in (1, 2):
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR")
            try:
                simulate_dataset(g, x[:workers * b], batch_size=b, cluster="ray", threads=1)
                t0 = time.perf_counter()
                tallies[workers] = simulate_dataset(g, x, batch_size=b, cluster="ray",
                                                    threads=1)
                times[workers].append(time.perf_counter() - t0)
            finally:
                ray.shutdown()
    one, two = tallies[1], tallies[2]
    same = one.output.tobytes() == two.output.tobytes() and one.sops == two.sops and all(
        np.array_equal(one.spikes[k], two.spikes[k]) for k in one.spikes)
    med = {w: statistics.median(v) for w, v in times.items()}
    return {"samples": int(x.shape[0]), "batch": b, "wall_seconds": med,
            "images_per_s": {w: x.shape[0] / v for w, v in med.items()},
            "speedup_2_workers": med[1] / med[2], "counts_bit_identical": bool(same),
            "load_average": os.getloadavg()[0]}


# --- report ---------------------------------------------------------------------------------
def print_table(rows: list[dict]) -> None:
    for r in rows:
        print(f"\n{r['network']} (batch {r['batch']}, {r['latency_steps']} steps, stream "
              f"populations: {len(r['stream_populations'])}; load {r['load_average_during']})")
        mem = r.get("memory", {})
        for n, per in r["threads"].items():
            print(f"  {n} thread(s)")
            for c in CONTENDERS:
                line = (f"    {c:<24}{per['images_per_s'][c]:>10.3g} img/s   "
                        f"time/ort {per['over_onnxruntime'][c]:6.2f}")
                if c in per["torch_loop_over"]:
                    line += f"   torch/this {per['torch_loop_over'][c]:6.2f}"
                m = mem.get(n, {}).get(c, {})
                if "peak_rss_bytes" in m:
                    line += f"   peak {m['peak_rss_bytes'] / 2**20:7.0f} MiB"
                    line += f" ({m['over_onnxruntime']:.2f}x ort)" if "over_onnxruntime" in m \
                        else ""
                print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=list(NETWORKS), help="networks (default all)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads-all", type=int, default=threads.cores(),
                    help="the 'all threads' setting (default: every core)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "pseudosnn-bench",
                    help="where the compiled networks are kept between runs")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS probes")
    ap.add_argument("--kernels", action="store_true", help="also time the conv kernels")
    ap.add_argument("--ray", metavar="NET", choices=list(NETWORKS),
                    help="also time simulate --cluster ray with 1 and 2 local workers on NET")
    ap.add_argument("--ray-batches", type=int, default=8)
    ap.add_argument("--probe", nargs=3, metavar=("NET", "CONTENDER", "THREADS"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.probe:
        net, c, n = args.probe
        print(json.dumps(probe(build_networks(args.work, [net])[net], c, int(n))))
        return
    names = args.only or list(NETWORKS)
    nets = build_networks(args.work, names)
    rows = []
    for name in names:
        print(f"timing {name} ...", flush=True)
        row = time_network(name, nets[name], args.reps, args.threads_all)
        _load.cache_clear()  # one network's contenders at a time in memory
        _torch_loop.cache_clear()
        if not args.no_memory:
            row["memory"] = {str(n): memory(name, args.work, n)
                             for n in sorted({1, args.threads_all})}
        rows.append(row)
        print_table([row])
    result = {"rows": rows, "cpu_count": os.cpu_count(), "cores": threads.cores(),
              "targets": TARGETS}
    if args.only and args.out.is_file():  # a partial rerun keeps the other networks' rows
        old = json.loads(args.out.read_text())
        result = {**old, **result, "rows": [r for r in old.get("rows", [])
                                             if r["network"] not in names] + rows}
    if args.kernels:
        result["kernels"] = bench_kernels(max(3, args.reps))
    if args.ray:
        net = build_networks(args.work, [args.ray])[args.ray]
        result["ray"] = {"network": args.ray, **bench_ray(net, args.ray_batches,
                                                           max(1, args.reps // 2))}
        print(f"ray: {result['ray']}")
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
