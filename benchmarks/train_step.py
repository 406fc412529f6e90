"""Training-step cost of PseudoSN (one pass) vs vanilla BPTT (IF, T=4 and 8) vs ASGL, on the
same zoo architectures with CIFAR-sized inputs (3x32x32), small batch, CPU.

For every (architecture, neuron config) it measures, side by side in one process with the
repetitions interleaved (config order shuffled each round):

* **step time**: forward + cross-entropy + backward + SGD(momentum) step; median of
  ``--reps`` timed steps after ``--warmup`` untimed ones, both wall-clock and process CPU
  time (on a shared machine the CPU time is the steadier figure; with ``--threads 1`` it
  is the work done). Ratios are given for both.
* **saved activations**: bytes of the tensors autograd saves for backward during one
  training forward, counted with ``torch.autograd.graph.saved_tensors_hooks`` and
  de-duplicated by storage (a storage saved twice counts once); parameters are left out.
  This is the activation memory a training step must hold at its peak.
* **peak RSS rise** (default on, ``--no-rss`` skips it): in a fresh subprocess per config,
  after one warm-up step (which faults in library code and allocates gradients and
  optimizer state) and ``malloc_trim``, the resident set is sampled every ~1 ms during one
  more training step; the figure is its maximum minus the RSS just before the step. It
  includes transient buffers and allocator slack, so it is a coarser, upper-bound view of
  the same activation memory.

Target (issue 3): at T=4 and 8, PseudoSN is >= 0.6*T times faster than BPTT and needs
<= 1/(0.6*T) of its peak activation memory. The table reports the measured ratios.

``--spikingjelly PYTHON``: additionally runs this script in another venv that has
``spikingjelly`` (not a project dependency) as a subprocess; that run times SpikingJelly's
multi-step IFNode with BPTT next to our PseudoSN and IF configs, and its rows are merged
into the JSON under ``"spikingjelly_peer"`` (its ratios are computed within that run).

Usage: ``python benchmarks/train_step.py [--archs vggsnn_cifar resnet18] [--batch 4]``;
writes ``benchmarks/results/train_step.json`` (atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pseudosnn.compiler.atomic import write_atomic  # noqa: E402

from pseudosnn.models import build_model  # noqa: E402
from pseudosnn.neurons.vanilla import IFNeuron, expand_time  # noqa: E402

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
CONFIGS: dict[str, dict] = {
    "pseudo": {"family": "pseudo"},
    "bptt_if_T4": {"family": "if", "T": 4},
    "bptt_if_T8": {"family": "if", "T": 8},
    "asgl_T4": {"family": "asgl", "T": 4},
}
SJ_CONFIGS = {"sj_if_T4": 4, "sj_if_T8": 8}
"""SpikingJelly peers: its multi-step IFNode (soft reset, sigmoid surrogate, detached
reset; SpikingJelly 2.x, CPU) in place of our IF neurons, T steps, BPTT."""


class SpikingJellyIF(nn.Module):
    """SpikingJelly's multi-step IFNode on our time-major layout (direct encoding)."""

    def __init__(self, T: int) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate

        self.T = T
        self.node = neuron.IFNode(v_threshold=1.0, v_reset=None, detach_reset=True,
                                  surrogate_function=surrogate.Sigmoid(), step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.node.reset()
        return self.node(expand_time(x, self.T).contiguous())


def make_model(arch: str, config: str) -> nn.Module:
    if config in SJ_CONFIGS:
        model = build_model(arch, num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE,
                            neuron={"family": "if", "T": SJ_CONFIGS[config]})
        for name, m in list(model.named_modules()):
            if isinstance(m, IFNeuron):
                parent, _, attr = name.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, attr,
                        SpikingJellyIF(m.T))
        return model
    return build_model(arch, num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE,
                       neuron=CONFIGS[config])


class Case:
    """One (architecture, config) with its model, optimiser and fixed batch."""

    def __init__(self, arch: str, config: str, batch: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.arch, self.config = arch, config
        self.model = make_model(arch, config).train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch, *INPUT_SHAPE, generator=g)
        self.y = torch.randint(0, NUM_CLASSES, (batch,), generator=g)
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def step(self) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        loss = nn.functional.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.times.append(time.perf_counter() - t0)
        self.cpu_times.append(time.process_time() - c0)

    def saved_activation_bytes(self) -> int:
        params = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr not in params:
                seen[ptr] = max(seen.get(ptr, 0), st.nbytes())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = nn.functional.cross_entropy(self.model(self.x), self.y)
        bytes_saved = sum(seen.values())
        del loss
        return bytes_saved


def rss_bytes_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_worker(arch: str, config: str, batch: int, seed: int) -> dict:
    """Peak-RSS rise over one warm training step in this (fresh) process, sampled by a
    background thread (torch kernels release the GIL, so the sampler keeps running)."""
    case = Case(arch, config, batch, seed)
    case.step()  # warm-up: library pages, grads, optimizer state
    gc.collect()
    with contextlib.suppress(OSError):  # return freed heap pages to the OS (glibc)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = rss_bytes_now()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes_now())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    case.step()
    done.set()
    sampler.join()
    peak[0] = max(peak[0], rss_bytes_now())
    return {"rss_step_delta_bytes": max(0, peak[0] - before)}


def measure_rss(arch: str, config: str, batch: int, seed: int, python: str) -> int | None:
    cmd = [python, str(Path(__file__).resolve()), "--worker", "rss", "--archs", arch,
           "--configs", config, "--batch", str(batch), "--seed", str(seed), "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    if proc.returncode != 0:
        print(f"  rss worker failed for {arch}/{config}: {proc.stderr.strip()[-400:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["rss_step_delta_bytes"]


def run_benchmark(archs: list[str], configs: list[str], batch: int, reps: int, warmup: int,
                  seed: int, rss: bool) -> list[dict]:
    rows = []
    for arch in archs:
        cases = [Case(arch, c, batch, seed) for c in configs]
        for case in cases:
            for _ in range(warmup):
                case.step()
            case.times.clear()
            case.cpu_times.clear()
        rng = random.Random(seed)
        order = list(range(len(cases)))
        for _ in range(reps):  # interleaved: one step of every config per round
            rng.shuffle(order)
            for i in order:
                cases[i].step()
        for case in cases:
            row = {
                "arch": arch, "config": case.config, "batch": batch,
                "step_time_median_s": statistics.median(case.times),
                "step_time_min_s": min(case.times), "step_times_s": case.times,
                "step_cpu_median_s": statistics.median(case.cpu_times),
                "step_cpu_times_s": case.cpu_times,
                "saved_activation_bytes": case.saved_activation_bytes(),
            }
            if rss:
                row["rss_step_delta_bytes"] = measure_rss(arch, case.config, batch, seed,
                                                          sys.executable)
            rows.append(row)
            print(f"  {arch:14s} {case.config:12s} median {row['step_time_median_s']:.3f} s "
                  f"(cpu {row['step_cpu_median_s']:.3f} s)  "
                  f"saved {row['saved_activation_bytes'] / 2**20:.1f} MiB", flush=True)
        del cases
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict]) -> None:
    """Per architecture, each config's cost relative to PseudoSN and the issue's target."""
    for arch in {r["arch"] for r in rows}:
        ref = next((r for r in rows if r["arch"] == arch and r["config"] == "pseudo"), None)
        if ref is None:
            continue
        for r in rows:
            if r["arch"] != arch:
                continue
            r["speedup_of_pseudo"] = r["step_time_median_s"] / ref["step_time_median_s"]
            r["cpu_speedup_of_pseudo"] = r["step_cpu_median_s"] / ref["step_cpu_median_s"]
            r["pseudo_memory_fraction"] = (ref["saved_activation_bytes"]
                                           / r["saved_activation_bytes"])
            if r.get("rss_step_delta_bytes") and ref.get("rss_step_delta_bytes"):
                r["pseudo_rss_fraction"] = (ref["rss_step_delta_bytes"]
                                            / r["rss_step_delta_bytes"])
            T = CONFIGS.get(r["config"], {}).get("T") or SJ_CONFIGS.get(r["config"])
            if T and r["config"] != "pseudo":
                r["target_speedup"] = 0.6 * T
                r["target_memory_fraction"] = 1.0 / (0.6 * T)
                r["meets_speed_target"] = r["speedup_of_pseudo"] >= 0.6 * T
                r["meets_cpu_speed_target"] = r["cpu_speedup_of_pseudo"] >= 0.6 * T
                r["meets_memory_target"] = r["pseudo_memory_fraction"] <= 1.0 / (0.6 * T)


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    head = (f"{'arch':14s} {'config':12s} {'step ms':>9s} {'cpu ms':>8s} {'saved MiB':>10s} "
            f"{'RSS MiB':>8s} {'speedup':>8s} {'cpu spd':>8s} {'target':>7s} {'mem frac':>9s} "
            f"{'RSS frac':>9s} {'target':>7s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        rss = r.get("rss_step_delta_bytes")
        rss_s = f"{rss / 2**20:8.1f}" if rss else f"{'-':>8s}"
        tgt_s = f"{r['target_speedup']:7.2f}" if "target_speedup" in r else f"{'':7s}"
        tgt_m = f"{r['target_memory_fraction']:7.3f}" if "target_memory_fraction" in r else ""
        nan = float("nan")
        print(f"{r['arch']:14s} {r['config']:12s} {1000 * r['step_time_median_s']:9.1f} "
              f"{1000 * r['step_cpu_median_s']:8.1f} "
              f"{r['saved_activation_bytes'] / 2**20:10.1f} {rss_s} "
              f"{r.get('speedup_of_pseudo', nan):8.2f} {r.get('cpu_speedup_of_pseudo', nan):8.2f} "
              f"{tgt_s} {r.get('pseudo_memory_fraction', nan):9.3f} "
              f"{r.get('pseudo_rss_fraction', nan):9.3f} {tgt_m}")


def peer_agreement(arch: str, seed: int) -> dict:
    """Same weights, same batch: SpikingJelly's IFNode vs our IFNeuron (T=4), max abs
    difference of logits and of parameter gradients (0.0 = identical computation)."""
    torch.manual_seed(seed)
    ours = make_model(arch, "bptt_if_T4").train()
    peer = make_model(arch, "sj_if_T4").train()
    peer.load_state_dict(ours.state_dict())
    x = torch.randn(2, *INPUT_SHAPE, generator=torch.Generator().manual_seed(seed))
    ya, yb = ours(x), peer(x)
    ya.sum().backward()
    yb.sum().backward()
    grad_diff = max((a.grad - b.grad).abs().max().item()
                    for a, b in zip(ours.parameters(), peer.parameters(), strict=True))
    return {"arch": arch, "max_abs_logit_diff": (ya - yb).abs().max().item(),
            "max_abs_grad_diff": grad_diff}


def run_spikingjelly_peer(python: str, args: argparse.Namespace) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", "peer", "--archs", *args.archs,
           "--configs", "pseudo", "bptt_if_T4", "bptt_if_T8", *SJ_CONFIGS,
           "--batch", str(args.batch), "--reps", str(args.peer_reps), "--warmup", "1",
           "--seed", str(args.seed), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["vggsnn_cifar", "resnet18"],
                   help="zoo architectures (CIFAR-sized input 3x32x32)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS),
                   help=f"neuron configs to compare, from {list(CONFIGS) + list(SJ_CONFIGS)}")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--reps", type=int, default=5, help="timed steps per config (interleaved)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per config first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--no-rss", dest="rss", action="store_false",
                   help="skip the per-config peak-RSS subprocesses")
    p.add_argument("--spikingjelly", metavar="PYTHON", default=None,
                   help="python of a venv with spikingjelly: add its IFNode as a peer")
    p.add_argument("--peer-reps", type=int, default=3, help="timed steps in the peer run")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/train_step.json")
    p.add_argument("--worker", choices=["rss", "peer"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.worker == "rss":
        print(json.dumps(rss_worker(args.archs[0], args.configs[0], args.batch, args.seed)))
        return
    if args.worker == "peer":
        from importlib.metadata import version

        rows = run_benchmark(args.archs, args.configs, args.batch, args.reps, args.warmup,
                             args.seed, rss=False)
        print(json.dumps({"spikingjelly_version": version("spikingjelly"),
                          "agreement_with_our_if": peer_agreement(args.archs[0], args.seed),
                          "rows": rows}))
        return

    unknown = [c for c in args.configs if c not in CONFIGS and c not in SJ_CONFIGS]
    if unknown:
        p.error(f"unknown configs {unknown}; choose from {list(CONFIGS) + list(SJ_CONFIGS)}")
    t0 = time.time()
    print(f"train-step benchmark: archs={args.archs} batch={args.batch} reps={args.reps} "
          f"threads={args.threads}")
    rows = run_benchmark(args.archs, args.configs, args.batch, args.reps, args.warmup,
                         args.seed, args.rss)
    print_table(rows, "PseudoSN vs BPTT vs ASGL (speedup = t_config / t_pseudo; "
                      "mem frac = saved_pseudo / saved_config)")
    result = {
        "description": "training step time and activation memory, PseudoSN vs BPTT vs ASGL",
        "memory_method": "saved_tensors_hooks bytes (dedup by storage, params excluded); "
                         "rss = sampled RSS peak minus RSS before one warm step, fresh subprocess",
        "input_shape": list(INPUT_SHAPE), "batch": args.batch, "reps": args.reps,
        "threads": args.threads, "torch": torch.__version__,
        "machine": platform.platform(), "configs": CONFIGS, "rows": rows,
    }
    if args.spikingjelly:
        print("\nrunning the SpikingJelly peer ...", flush=True)
        peer = run_spikingjelly_peer(args.spikingjelly, args)
        result["spikingjelly_peer"] = peer
        if "rows" in peer:
            print_table(peer["rows"], f"SpikingJelly peer run (spikingjelly "
                                      f"{peer.get('spikingjelly_version')}), same harness")
        else:
            print(f"SpikingJelly peer failed: {peer.get('error', '')[-500:]}")
    result["wall_time_s"] = time.time() - t0
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out} ({result['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
