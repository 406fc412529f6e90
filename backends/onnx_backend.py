"""The "onnx" target: onnxruntime as an independent executor of rate-coupled graphs.

Two rate-equivalent models, both float32 (onnxruntime has no float64 convolution):

* an artifact's ``model.onnx``, the *trained* layers exported by the compiler (neurons as
  model-local functions named after their populations): each population's counts are
  recovered from its rate output ``y = a·n/T`` as ``n = round(y·T/a)``;
* for any graph, :func:`graph_to_onnx`: the *compiled* projections, each population's
  count in closed form ``n = clamp(floor((v0 + T·c)/θ), 0, T)`` exposed as ``<pop>.n``, a
  spike pool's count over its source's closed-form train
  (:func:`~pseudosnn.compiler.onnx_io.spike_pool_nodes`), the analog stem as ``Conv`` +
  ``MaxPool`` and event frames as their time mean.

Only rate-coupled graphs have a closed-form rate model: stream coupling is refused
(:func:`~pseudosnn.compiler.spiking.backend.check_supported`). SOPs, MACs and the rest
come from the counting module like every backend's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from pseudosnn.compiler.onnx_io import spike_pool_nodes
from pseudosnn.compiler.spiking.backend import check_supported
from pseudosnn.compiler.spiking.graph import Projection, SpikePool, SpikingGraph
from pseudosnn.compiler.spiking.result import RunResult, run_result

from pseudosnn.errors import PseudoSNNError

MODEL_FILE = "model.onnx"


def graph_to_onnx(graph: SpikingGraph) -> onnx.ModelProto:
    """The rate-coupled spiking graph as a float32 ONNX model computing the same counts
    (outputs ``<pop>.n``) and readout (the first output)."""
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def proj(pr: Projection) -> str:
        src = encoded if pr.is_encoder else f"{pr.source}.n"
        if pr.event_scale is not None:
            es = const(f"{pr.name}.es", pr.event_scale[None])
            nodes.append(helper.make_node("Mul", [src, es], [f"{pr.name}.in"]))
            src = f"{pr.name}.in"
        out = f"{pr.name}.y"
        if pr.kind == "conv":
            kh, kw = pr.weight.shape[2:]
            nodes.append(helper.make_node(
                "Conv", [src, const(f"{pr.name}.w", pr.weight)], [out], kernel_shape=[kh, kw],
                strides=list(pr.stride), pads=[*pr.padding, *pr.padding], group=pr.groups))
        else:
            nodes.append(helper.make_node("Flatten", [src], [f"{pr.name}.flat"], axis=1))
            nodes.append(helper.make_node("Gemm", [f"{pr.name}.flat", const(f"{pr.name}.w",
                                                   pr.weight)], [out], transB=1))
        return out

    def drive(target: str, bias) -> str:
        terms = [proj(pr) for pr in graph.incoming(target)]
        nodes.append(helper.make_node("Sum", terms, [f"{target}.sum"]))
        nodes.append(helper.make_node("Add", [f"{target}.sum", const(f"{target}.b",
                                              np.asarray(bias)[None])], [f"{target}.c"]))
        return f"{target}.c"

    encoded = _encoder_input(graph, nodes, const)
    for p in graph.topological_sources():
        if isinstance(p, SpikePool):
            nodes += _pool_count(graph, p, const)
            continue
        c = drive(p.name, p.bias)
        T = np.broadcast_to(np.asarray(p.timesteps, np.float32), p.shape)[None]
        nm = p.name
        nodes += [
            helper.make_node("Mul", [c, const(f"{nm}.T", T)], [f"{nm}.Tc"]),
            helper.make_node("Add", [f"{nm}.Tc", const(f"{nm}.v0", p.v0)], [f"{nm}.u"]),
            helper.make_node("Div", [f"{nm}.u", const(f"{nm}.th", p.threshold)], [f"{nm}.q"]),
            helper.make_node("Floor", [f"{nm}.q"], [f"{nm}.f"]),
            helper.make_node("Max", [f"{nm}.f", const(f"{nm}.zero", 0.0)], [f"{nm}.lo"]),
            helper.make_node("Min", [f"{nm}.lo", f"{nm}.T"], [f"{nm}.n"]),
        ]
    out = drive(graph.readout.name, graph.readout.bias)
    outputs = [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", *graph.readout.shape])]
    outputs += [helper.make_tensor_value_info(f"{p.name}.n", TensorProto.FLOAT, ["N", *p.shape])
                for p in (*graph.populations, *graph.pools)]
    g = helper.make_graph(
        nodes, "rate_equivalent",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["N", *graph.input.sample_shape])],
        outputs, initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model




def _encoder_input(graph: SpikingGraph, nodes: list, const) -> str:
    """The value the encoder projections read: the input, the time mean of its frames,
    or the analog stem's output."""
    x, stem = "x", graph.input.stem
    if graph.input.frames:  # rate targets only (stream is refused): the frames' time mean
        nodes.append(helper.make_node("ReduceMean", [x], ["x.mean"], axes=[1], keepdims=0))
        x = "x.mean"
    if stem is None:
        return x
    if stem.weight is not None:
        args = [x, const("stem.w", stem.weight)]
        if stem.bias is not None:
            args.append(const("stem.b", stem.bias))
        nodes.append(helper.make_node(
            "Conv", args, ["stem.conv"], kernel_shape=list(stem.weight.shape[2:]),
            strides=list(stem.stride), pads=[*stem.padding, *stem.padding], group=stem.groups))
        x = "stem.conv"
    nodes.append(helper.make_node(
        "MaxPool", [x], ["stem.y"], kernel_shape=list(stem.pool_kernel),
        strides=list(stem.pool_stride), pads=[*stem.pool_padding, *stem.pool_padding]))
    return "stem.y"


def _pool_count(graph: SpikingGraph, pool: SpikePool, const) -> list:
    """Nodes of ``<pool>.n``: the count of the pooled closed-form train of its source."""
    src = graph.population(pool.source)
    nm = pool.name

    def max_pool(inp, out):
        return helper.make_node("MaxPool", [inp], [out], kernel_shape=list(pool.kernel),
                                strides=list(pool.stride), pads=[*pool.padding, *pool.padding])

    T = np.broadcast_to(np.asarray(src.timesteps, np.float32), src.shape)[None]
    nodes, m = spike_pool_nodes(f"{nm}/", f"{src.name}.c", const(f"{nm}.T", T),
                                const(f"{nm}.v0", src.v0), const(f"{nm}.th", src.threshold),
                                src.t_max, max_pool)
    return [*nodes, helper.make_node("Identity", [m], [f"{nm}.n"])]


class OnnxBackend:
    """Runs the rate-equivalent ONNX model in onnxruntime (float32)."""

    name = "onnx"
    capabilities = frozenset({"float", "rate", "heterogeneous_T", "event_scale", "delays",
                              "spike_pool", "analog_stem", "event_frames"})

    def __init__(self, model: bytes | str | Path | None = None) -> None:
        self.model = model  # an artifact's model.onnx (trained layers); None: graph_to_onnx

    @classmethod
    def from_artifact(cls, art_dir: str | Path, **options) -> OnnxBackend:
        from pseudosnn.compiler.artifact import read_manifest

        read_manifest(art_dir)  # hashes checked before a byte is trusted
        path = Path(art_dir) / MODEL_FILE
        return cls(path.read_bytes() if path.is_file() else None)

    def emit(self, graph: SpikingGraph, out_dir: Path | None = None) -> dict[str, bytes]:
        """Nothing extra: ``model.onnx`` is written by the compiler for every target."""
        return {}

    def run(self, graph: SpikingGraph, x: np.ndarray, record_spikes: bool = False) -> RunResult:
        from pseudosnn.compiler.onnx_io import run_onnxruntime

        check_supported(self, graph, record_spikes)
        if self.model is None:
            outs = run_onnxruntime(graph_to_onnx(graph), x)
            output = next(iter(outs.values()))
            counts = {p.name: np.rint(outs[f"{p.name}.n"]).astype(np.int64)
                      for p in (*graph.populations, *graph.pools)}
        else:
            output, counts = self._run_trained(graph, x)
        return run_result(graph, output, counts, extra={"model": "compiled projections"
                                                         if self.model is None else MODEL_FILE})

    def _run_trained(self, graph: SpikingGraph, x: np.ndarray):
        from pseudosnn.compiler.onnx_io import run_onnxruntime

        data = self.model if isinstance(self.model, bytes) else Path(self.model).read_bytes()
        model = onnx.load_from_string(data)
        inits = {t.name: t for t in model.graph.initializer}
        missing = [p.name for p in graph.populations if f"{p.name}.T" not in inits]
        if missing:
            raise PseudoSNNError(
                f"the ONNX model does not name populations {missing}; it was not exported "
                "from this artifact's network (recompile the artifact)")
        # a rate output a·n/T (a pool's: of its neuron's T and a) back to its count n
        neuron_of = {p.name: p.name for p in graph.populations} | \
            {p.name: p.source for p in graph.pools}
        if graph.input.frames:  # the trained layers read the frames' time mean (rate rule)
            x = np.asarray(x, np.float64).mean(axis=1)
        outs = run_onnxruntime(model, x, extra_outputs=list(neuron_of))
        counts = {}
        for name, neuron in neuron_of.items():
            T = numpy_helper.to_array(inits[f"{neuron}.T"]).astype(np.float64)
            a = float(numpy_helper.to_array(inits[f"{neuron}.out_scale"]))
            n = np.rint(outs[name].astype(np.float64) * T / a)
            counts[name] = np.broadcast_to(n, outs[name].shape).astype(np.int64)
        return outs[model.graph.output[0].name].astype(np.float64), counts
