"""Compile time and artifact size of every zoo model (``pseudosnn-compile CKPT -o DIR``).

Each model is built with random weights, saved as a checkpoint, and compiled from that
file by :func:`pseudosnn.compiler.command.compile_path` (load, frontend, all passes,
lowering, scheduling, ONNX export, atomic artifact write). Input sizes: the digits models
at 8x8, CIFAR models at 3x32x32, ``vggsnn_dvs`` at 4 frames of 2x48x48 (its paper size),
the ImageNet models (SEW-ResNet-18/34, PreAct-ResNet-34) at 3x224x224. Wall and CPU
seconds are reported (the machine is shared), and each artifact's size against its
checkpoint file's. Writes ``benchmarks/results/compile.json``.

    python benchmarks/compile.py [--only resnet18 ...] [--fixed-point]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from pseudosnn.compiler.atomic import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "compile.json"
RESNET18_TARGET_S = 30.0
SHAPES = {
    "mlp_digits": (64,), "cnn_digits": (1, 8, 8), "rescnn_digits": (1, 8, 8),
    "vggsnn_dvs": (4, 2, 48, 48), "sew_resnet18": (3, 224, 224),
    "sew_resnet34": (3, 224, 224), "preact_resnet34": (3, 224, 224),
}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="architectures to run (default: all)")
    ap.add_argument("--fixed-point", action="store_true", help="also quantise")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from pseudosnn.compiler.command import compile_path
    from pseudosnn.compiler.frontend.testing import randomize

    from pseudosnn.checkpoint import make_checkpoint, save_checkpoint
    from pseudosnn.models import ARCHITECTURES, build_model

    archs = args.only or list(ARCHITECTURES)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    try:
        for arch in archs:
            shape = SHAPES.get(arch, (3, 32, 32))
            model = build_model(arch, num_classes=10, input_shape=shape)
            randomize(model, seed=0)
            ckpt = work / f"{arch}.pth"
            save_checkpoint(make_checkpoint(model, epoch=0), ckpt)
            params = sum(p.numel() for p in model.parameters())
            del model
            out = work / arch
            w0, c0 = time.perf_counter(), time.process_time()
            row = {"arch": arch, "input_shape": list(shape), "params": params,
                   "checkpoint_bytes": ckpt.stat().st_size}
            try:
                rep = compile_path(ckpt, out, fixed_point=args.fixed_point)
                row.update(wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0,
                           artifact_bytes=_size(out), populations=len(rep["layers"]) - 1,
                           latency_steps=rep["latency_steps"], status="ok")
                row["artifact_over_checkpoint"] = row["artifact_bytes"] / row["checkpoint_bytes"]
            except Exception as exc:  # reported, not hidden
                row.update(wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0,
                           status=f"error: {type(exc).__name__}: {str(exc)[:160]}")
            rows.append(row)
            print(f"{arch:16s} {row['status'][:60]:60s} wall {row['wall_s']:7.2f} s  "
                  f"cpu {row['cpu_s']:7.2f} s  "
                  f"{row.get('artifact_bytes', 0) / 1e6:8.1f} MB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r18 = next((r for r in rows if r["arch"] == "resnet18" and r["status"] == "ok"), None)
    summary = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "2 cores shared with other engineers' jobs; wall >= cpu"},
        "fixed_point": args.fixed_point, "rows": rows,
        "resnet18_target_s": RESNET18_TARGET_S,
        "resnet18_wall_s": r18 and r18["wall_s"],
        "resnet18_within_target": bool(r18 and r18["wall_s"] < RESNET18_TARGET_S),
    }
    print()
    print(f"{'arch':16s} {'input':>12s} {'params':>10s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'MB':>8s} {'/ckpt':>6s} {'pops':>5s} {'latency':>8s}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['arch']:16s} {r['status']}")
            continue
        print(f"{r['arch']:16s} {'x'.join(map(str, r['input_shape'])):>12s} {r['params']:>10,d} "
              f"{r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['artifact_bytes'] / 1e6:8.1f} "
              f"{r['artifact_over_checkpoint']:6.2f} {r['populations']:5d} {r['latency_steps']:8d}")
    if r18:
        print(f"\nresnet18: {r18['wall_s']:.1f} s wall (target < {RESNET18_TARGET_S:.0f} s): "
              f"{'OK' if summary['resnet18_within_target'] else 'MISSED'}")
    write_atomic(args.out, json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
