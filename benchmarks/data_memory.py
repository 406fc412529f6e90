"""Peak memory of ``pseudosnn simulate`` on a 10,000-sample CIFAR-format file (issue 12).

Writes a CIFAR-10 ``test_batch`` of 10,000 random images in the real file format (Python
2's pickle, the pixels as one raw string: ~30 MB) and a compiled CIFAR-shaped artifact
(a small conv network, so that the data dominate), then runs, each in a fresh process,
side by side:

* ``pseudosnn simulate ART --data cifar10:FILE --batch 64`` on the first 640 samples
  (``--limit``: a few batches) and on all 10,000: the data are read batch by batch;
* the same simulation with the whole data set loaded first as one float64 array (what
  ``simulate`` did before: ~245 MB for 10,000 CIFAR images).

Peak RSS is each process's own high-water mark at its end (``VmHWM`` of
``/proc/self/status``, imports included; ``ru_maxrss`` would inherit the parent's, which
wrote the file). Prints a table and writes ``benchmarks/results/data_memory.json``.

    .venv/bin/python benchmarks/data_memory.py [--samples 10000]
"""

from __future__ import annotations

import argparse
import json
import pickle
import pickletools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from pseudosnn.compiler.atomic import write_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "data_memory.json"

CHILD = """
import sys, time
import numpy as np
art, spec, mode, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.perf_counter()
if mode == "stream":
    from pseudosnn.cli import main
    main(["simulate", art, "--data", spec, "--batch", "64", "--limit", str(limit), "--quiet"],
         standalone_mode=False)
else:  # the data set materialised as one float64 array first, then simulated
    from pseudosnn.compiler.artifact import load
    from pseudosnn.simulator.datasets import open_dataset
    from pseudosnn.simulator.sharding import simulate_dataset
    graph = load(art)
    source = open_dataset(spec, graph.input.sample_shape).head(limit)
    x = np.array(source.x[:])
    simulate_dataset(graph, x, source.y, batch_size=64)
hwm = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")).split()[1]
print("RESULT", hwm, time.perf_counter() - t0)
"""


def write_cifar_test_batch(path: Path, n: int, seed: int = 0) -> None:
    """A CIFAR-10 ``test_batch`` as the real file is written (Python 2 cPickle: raw
    bytes as ``BINSTRING``)."""
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": rng.integers(0, 10, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    data = bytearray(pickle.dumps(batch, protocol=3))
    for op, _, pos in pickletools.genops(bytes(data)):
        if op.name == "BINBYTES":
            data[pos] = ord("T")
    path.write_bytes(bytes(data))


def write_artifact(out: Path) -> Path:
    """A small compiled CIFAR-shaped network: conv 3->8 3x3/2, neuron, linear 10."""
    from pseudosnn.compiler import artifact, ir, pipeline

    rng = np.random.default_rng(1)
    nodes = (ir.conv("conv", "input", rng.normal(0, 0.3, (8, 3, 3, 3)), rng.normal(0, 0.1, 8),
                     stride=(2, 2), padding=(1, 1)),
             ir.neuron("sn", "conv", np.int64(4)),
             ir.gemm("fc", "sn", rng.normal(0, 0.05, (10, 8 * 16 * 16)), np.zeros(10)))
    graph = pipeline.run(ir.Graph((3, 32, 32), nodes, "fc")).graph
    return artifact.save(graph, out)


def measure(art: Path, spec: str, mode: str, limit: int) -> tuple[float, float]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(art), spec, mode, str(limit)],
                          capture_output=True, text=True, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    _, kib, seconds = line.split()
    return int(kib) / 1024, float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="data-memory-") as tmp:
        data = Path(tmp) / "test_batch"
        write_cifar_test_batch(data, args.samples)
        art = write_artifact(Path(tmp) / "art")
        spec = f"cifar10:{data}"
        for mode, limit in (("stream", 640), ("stream", args.samples),
                            ("in-memory", 640), ("in-memory", args.samples)):
            mib, seconds = measure(art, spec, mode, limit)
            rows.append({"mode": mode, "samples": limit, "peak_rss_mib": round(mib, 1),
                         "seconds": round(seconds, 2)})
            print(f"{mode:>10}  {limit:>6} samples  peak RSS {mib:7.1f} MiB  "
                  f"{seconds:6.1f} s", flush=True)
        file_mib = data.stat().st_size / 2 ** 20
    result = {"what": "peak RSS of pseudosnn simulate on a CIFAR-10 test_batch file",
              "file_mib": round(file_mib, 1), "batch": 64, "rows": rows}
    write_atomic(RESULTS, json.dumps(result, indent=1) + "\n")
    print(f"file {file_mib:.1f} MiB; wrote {RESULTS}")


if __name__ == "__main__":
    main()
