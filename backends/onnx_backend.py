"""The "onnx" target: the rate-equivalent ONNX model run by onnxruntime.

The compiler writes ``model.onnx`` into every artifact. ``run`` executes it and recovers
each population's spike counts from its neuron's rate output ``y = a·n/T`` as
``n = round(y·T/a)`` (neuron nodes carry the population names). SOPs follow from the
counts and the graph's structural fan-out; ``macs`` are the encoder's. Only rate-coupled
graphs have a closed-form rate model, so stream-coupled populations are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compiler.graph import SpikingGraph
from ..simulator.result import RunResult

MODEL_FILE = "model.onnx"


class OnnxBackend:
    name = "onnx"
    capabilities = frozenset({"float"})

    def __init__(self, model: bytes | str | Path | None = None) -> None:
        self.model = model

    @classmethod
    def from_artifact(cls, art_dir: str | Path) -> OnnxBackend:
        from ..compiler.artifact import read_manifest

        read_manifest(art_dir)  # hashes checked before a byte is trusted
        path = Path(art_dir) / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{art_dir} has no {MODEL_FILE}; recompile it with "
                                    "`pseudosnn-compile MODEL -o DIR`")
        return cls(path.read_bytes())

    def emit(self, graph: SpikingGraph, out_dir: Path) -> dict[str, bytes]:
        """Nothing extra: ``model.onnx`` is written by the compiler for every target."""
        return {}

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        import onnx
        from onnx import numpy_helper

        from ..compiler.onnx_io import run_onnxruntime
        from ..compiler.summary import encoder_macs

        if self.model is None:
            raise ValueError("OnnxBackend needs the artifact's model.onnx: use "
                             "OnnxBackend.from_artifact(DIR) or OnnxBackend(model_bytes)")
        if record_spikes:
            raise ValueError("the onnx target computes rates, not spike trains; use the "
                             "numpy or lava target to record spikes")
        if any(p.coupling != "rate" for p in graph.populations):
            raise ValueError("the onnx target runs rate-coupled graphs only; this graph has "
                             "stream-coupled populations: use the numpy or lava target")
        data = self.model if isinstance(self.model, bytes) else Path(self.model).read_bytes()
        model = onnx.load_from_string(data)
        inits = {t.name: t for t in model.graph.initializer}
        pops = [p.name for p in graph.populations if f"{p.name}.T" in inits]
        outs = run_onnxruntime(model, x, extra_outputs=pops)
        counts = {}
        for name in pops:
            T = numpy_helper.to_array(inits[f"{name}.T"]).astype(np.float64)
            a = float(numpy_helper.to_array(inits[f"{name}.out_scale"]))
            n = np.rint(outs[name].astype(np.float64) * T / a)
            counts[name] = np.broadcast_to(n, outs[name].shape).astype(np.int64)
        sops = {}
        for pr in graph.projections:
            if not pr.analog and pr.source in counts:
                fan = pr.fanout(graph.shape_of(pr.source))
                sops[pr.name] = int(np.sum(counts[pr.source] * fan))
        output = outs[model.graph.output[0].name].astype(np.float64)
        return RunResult(output=output, counts=counts, sops=sops,
                         macs=encoder_macs(graph) * len(x), steps=graph.latency_steps,
                         extra={"missing_counts": [p.name for p in graph.populations
                                                   if p.name not in counts]})
