"""IR <-> standard ONNX (the rate-equivalent network), torch-free.

Linear operators map to ``Conv``, ``Gemm`` (after a ``Flatten``), ``BatchNormalization``,
``AveragePool``, ``GlobalAveragePool``, ``Flatten``, ``Add``/``Sum``. A neuron is one node
``ai.pseudosnn::SpikingNeuron`` whose model-local function body is standard ops::

    n = Min(Max(Floor((T·(scale·x + bias) + v0) / θ), 0), T);   y = out_scale · n / T

so onnx.checker accepts the model and onnxruntime inlines and runs it; its inputs
(``T``, ``scale``, ``bias``, ``θ``, ``v0``, ``out_scale``) are initializers and its
attributes ``coupling``/``reset`` keep the spiking semantics for the reader. Leaky and
hard-reset neurons have no such closed form (their count is a time loop): a graph with
one, pooled or not, is not exported (:class:`NotRateExpressible`).

A max pool of currents is the standard ``MaxPool``. A max pool of a neuron's *spikes* is
``ai.pseudosnn::SpikeMaxPool<K>`` (attribute ``neuron`` names the neuron), a model-local
function of the neuron's input and parameters whose body unrolls the closed-form train
over its ``K = max T`` steps (:func:`spike_pool_nodes`)::

    N_k = Min(Max(Floor((v0 + min(k, T)·c)/θ), 0), min(k, T));  m = Σ_k MaxPool(N_{k+1} − N_k)
    y = out_scale · m / T
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper
from pseudosnn.compiler.ir import (
    INPUT,
    Graph,
    IRError,
    Node,
    infer_shapes,
    neuron_dynamics,
    plain,
)
from pseudosnn.compiler.spiking.semantics import has_closed_form

from pseudosnn.errors import PseudoSNNError

DOMAIN = "ai.pseudosnn"
NEURON_OP = "SpikingNeuron"
SPIKE_POOL_OP = "SpikeMaxPool"
OPSET = 17
SUPPORTED_ONNX = ("Conv", "Gemm", "BatchNormalization", "AveragePool", "GlobalAveragePool",
                  "MaxPool", "Flatten", "Add", "Sum", f"{DOMAIN}::{NEURON_OP}",
                  f"{DOMAIN}::{SPIKE_POOL_OP}<K>")
NEURON_INPUTS = ("T", "scale", "bias", "threshold", "v0", "out_scale")


class UnsupportedLayerError(PseudoSNNError, ValueError):
    """A layer or operator with no event-driven equivalent."""


class NotRateExpressible(PseudoSNNError, ValueError):
    """A network with leaky or hard-reset neurons: no rate-equivalent ONNX model."""


def check_rate_expressible(graph: Graph) -> None:
    """Raise :class:`NotRateExpressible` naming the first neuron without a rate closed form."""
    for n in graph.neurons():
        if not has_closed_form(neuron_dynamics(n)):
            raise NotRateExpressible(
                f"neuron {n.name!r} leaks or resets hard: its spike count has no rate closed "
                "form, so no rate-equivalent ONNX model exists; run it on the simulator or Lava")


def unsupported(kind: str, where: str) -> UnsupportedLayerError:
    """The error for an unsupported layer: names it and lists what is supported."""
    hint = ""
    if any(op in kind for op in RECURRENT_OPS):
        hint = (" Recurrent layers (LSTM, GRU, RNN) have no event-driven equivalent in the "
                "spiking graph: use a convolutional or fully connected network.")
    return UnsupportedLayerError(
        f"unsupported layer {kind} at {where!r}.{hint} Supported: Conv2d, Linear, "
        "BatchNorm2d/1d, "
        "AvgPool2d, AdaptiveAvgPool2d (to 1x1 or an exact divisor), MaxPool2d (of a neuron's "
        "spikes, or of the analog stem before any neuron), Flatten, Dropout/Identity, "
        "residual addition, and neurons that implement deploy_spec()")


def _neuron_function() -> onnx.FunctionProto:
    c = helper.make_node
    nodes = [
        c("Mul", ["x", "scale"], ["sx"]),
        c("Add", ["sx", "bias"], ["cur"]),
        c("Mul", ["cur", "T"], ["tc"]),
        c("Add", ["tc", "v0"], ["vt"]),
        c("Div", ["vt", "threshold"], ["q"]),
        c("Floor", ["q"], ["fq"]),
        c("Constant", [], ["zero"], value=numpy_helper.from_array(np.zeros((), np.float32))),
        c("Max", ["fq", "zero"], ["pos"]),
        c("Min", ["pos", "T"], ["n"]),
        c("Div", ["n", "T"], ["r"]),
        c("Mul", ["r", "out_scale"], ["y"]),
    ]
    return helper.make_function(
        DOMAIN, NEURON_OP, ["x", *NEURON_INPUTS], ["y"], nodes,
        [helper.make_opsetid("", OPSET)], attributes=["coupling", "reset"])


def spike_pool_nodes(prefix: str, cur: str, T: str, v0: str, theta: str, steps: int,
                     pool: Callable[[str, str], onnx.NodeProto]) -> tuple[list, str]:
    """Nodes computing the spike count ``m = Σ_k pool(s_k)`` of a max pool of the spikes of
    neurons with constant current ``cur`` (closed-form train, module docstring) over
    ``steps`` steps; ``pool(input, output)`` makes one step's ``MaxPool``. Tensor names
    start with ``prefix``; returns the nodes and the name of ``m``."""
    c = helper.make_node

    def const(name, value):
        return c("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value,
                                                                                  np.float32)))

    nodes = [const(f"{prefix}zero", 0.0)]
    for k in range(steps + 1):
        p = f"{prefix}k{k}"
        nodes += [const(f"{p}.k", float(k)), c("Min", [f"{p}.k", T], [f"{p}.kk"]),
                  c("Mul", [f"{p}.kk", cur], [f"{p}.kc"]), c("Add", [f"{p}.kc", v0], [f"{p}.u"]),
                  c("Div", [f"{p}.u", theta], [f"{p}.q"]), c("Floor", [f"{p}.q"], [f"{p}.f"]),
                  c("Max", [f"{p}.f", f"{prefix}zero"], [f"{p}.lo"]),
                  c("Min", [f"{p}.lo", f"{p}.kk"], [f"{p}.N"])]
    pooled = []
    for k in range(steps):
        s, m = f"{prefix}k{k}.s", f"{prefix}k{k}.m"
        nodes += [c("Sub", [f"{prefix}k{k + 1}.N", f"{prefix}k{k}.N"], [s]), pool(s, m)]
        pooled.append(m)
    nodes.append(c("Sum", pooled, [f"{prefix}m"]))
    return nodes, f"{prefix}m"


def _spike_pool_function(steps: int) -> onnx.FunctionProto:
    """``SpikeMaxPool<steps>``: ``y = out_scale · m/T`` of the pooled spikes of neurons
    (inputs as the neuron's); attributes of the ``MaxPool`` by reference."""
    c = helper.make_node

    def pool(inp, out):
        node = c("MaxPool", [inp], [out])
        for name in ("kernel_shape", "strides", "pads"):
            attr = onnx.AttributeProto(name=name, ref_attr_name=name,
                                       type=onnx.AttributeProto.INTS)
            node.attribute.append(attr)
        return node

    body, m = spike_pool_nodes("", "cur", "T", "v0", "threshold", steps, pool)
    nodes = [c("Mul", ["x", "scale"], ["sx"]), c("Add", ["sx", "bias"], ["cur"]), *body,
             c("Div", [m, "T"], ["r"]), c("Mul", ["r", "out_scale"], ["y"])]
    return helper.make_function(
        DOMAIN, f"{SPIKE_POOL_OP}{steps}", ["x", *NEURON_INPUTS], ["y"], nodes,
        [helper.make_opsetid("", OPSET)],
        attributes=["kernel_shape", "strides", "pads", "neuron"])


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def to_onnx(graph: Graph, name: str = "pseudosnn") -> onnx.ModelProto:
    """Write ``graph`` as a standard ONNX model (batch dimension ``N``)."""
    check_rate_expressible(graph)
    shapes = infer_shapes(graph)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    functions: dict[int, onnx.FunctionProto] = {}  # SpikeMaxPool<K> bodies by K

    def init(key: str, arr) -> str:
        inits.append(numpy_helper.from_array(_f32(arr), key))
        return key

    for n in graph.nodes:
        n = plain(n, shapes[n.inputs[0]]) if n.op in ("Conv", "Gemm") else n
        a, p = n.attrs, n.params
        ins = list(n.inputs)
        if n.op == "Conv":
            args = [ins[0], init(f"{n.name}.weight", p["weight"])]
            if p.get("bias") is not None:
                args.append(init(f"{n.name}.bias", p["bias"]))
            kh, kw = p["weight"].shape[2:]
            nodes.append(helper.make_node(
                "Conv", args, [n.name], name=n.name, kernel_shape=[kh, kw],
                strides=list(a["stride"]), pads=[*a["padding"], *a["padding"]],
                group=a.get("groups", 1)))
        elif n.op == "Gemm":
            src = ins[0]
            if len(shapes[src]) != 1:
                nodes.append(helper.make_node("Flatten", [src], [f"{n.name}/flat"], axis=1,
                                              name=f"{n.name}/flat"))
                src = f"{n.name}/flat"
            args = [src, init(f"{n.name}.weight", p["weight"])]
            if p.get("bias") is not None:
                args.append(init(f"{n.name}.bias", p["bias"]))
            nodes.append(helper.make_node("Gemm", args, [n.name], name=n.name, transB=1))
        elif n.op == "BatchNorm":
            keys = ("gamma", "beta", "mean", "var")
            args = [ins[0]] + [init(f"{n.name}.{k}", p[k]) for k in keys]
            nodes.append(helper.make_node("BatchNormalization", args, [n.name], name=n.name,
                                          epsilon=float(a["eps"])))
        elif n.op == "AvgPool":
            nodes.append(helper.make_node(
                "AveragePool", ins, [n.name], name=n.name, kernel_shape=list(a["kernel"]),
                strides=list(a["stride"]), pads=[*a["padding"], *a["padding"]],
                count_include_pad=1))
        elif n.op == "GlobalAvgPool":
            nodes.append(helper.make_node("GlobalAveragePool", ins, [n.name], name=n.name))
        elif n.op == "MaxPool":
            nodes.append(helper.make_node(
                "MaxPool", ins, [n.name], name=n.name, kernel_shape=list(a["kernel"]),
                strides=list(a["stride"]), pads=[*a["padding"], *a["padding"]]))
        elif n.op == "SpikeMaxPool":
            src = graph.node(ins[0])
            steps = int(np.max(src.params["timesteps"]))
            functions.setdefault(steps, _spike_pool_function(steps))
            nodes.append(helper.make_node(
                f"{SPIKE_POOL_OP}{steps}", [src.inputs[0]] + [f"{src.name}.{k}"
                                                               for k in NEURON_INPUTS],
                [n.name], name=n.name, domain=DOMAIN, kernel_shape=list(a["kernel"]),
                strides=list(a["stride"]), pads=[*a["padding"], *a["padding"]],
                neuron=src.name))
        elif n.op == "Flatten":
            nodes.append(helper.make_node("Flatten", ins, [n.name], name=n.name, axis=1))
        elif n.op == "Add":
            nodes.append(helper.make_node("Add" if len(ins) == 2 else "Sum", ins, [n.name],
                                          name=n.name))
        elif n.op == "Neuron":
            vals = {"T": np.asarray(p["timesteps"]), "scale": p.get("scale", 1.0),
                    "bias": p.get("bias", 0.0), "threshold": a["threshold"], "v0": a["v0"],
                    "out_scale": a.get("out_scale", 1.0)}
            args = [ins[0]] + [init(f"{n.name}.{k}", _batched(vals[k])) for k in NEURON_INPUTS]
            nodes.append(helper.make_node(
                NEURON_OP, args, [n.name], name=n.name, domain=DOMAIN,
                coupling=a.get("coupling", "rate"), reset=a.get("reset", "soft")))
        else:
            raise IRError(f"cannot export op {n.op!r} of node {n.name!r}")
    x = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", *graph.input_shape])
    y = helper.make_tensor_value_info(graph.output, TensorProto.FLOAT,
                                      ["N", *shapes[graph.output]])
    g = helper.make_graph(nodes, name, [x], [y], initializer=inits)
    model = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
        functions=[_neuron_function(), *functions.values()], producer_name="pseudosnn")
    model.ir_version = 8
    meta = {k: str(v) for k, v in graph.meta.items() if isinstance(v, str | int | float)}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def _batched(v) -> np.ndarray:
    """Neuron parameters broadcast against ``(N, *shape)``: keep as given (they broadcast to
    the per-sample shape, so they broadcast with a leading batch axis too)."""
    return np.asarray(v, dtype=np.float64)


# --- reading ------------------------------------------------------------------------------
PLUMBING_OPS = ("Constant", "ConstantOfShape", "Shape", "Gather", "Unsqueeze", "Squeeze",
                "Concat", "Reshape", "Slice", "Cast", "Identity", "Transpose", "Expand")
"""Shape bookkeeping exporters emit around the real layers; named last in errors."""
RECURRENT_OPS = ("LSTM", "GRU", "RNN")


class OnnxFileError(PseudoSNNError, ValueError):
    """A file that is not a readable, valid ONNX model."""


def load_model(model: onnx.ModelProto | str | bytes) -> onnx.ModelProto:
    """Parse and check an ONNX model (a path, bytes or a model); one-line errors for a
    truncated, corrupt, empty or invalid file."""
    what = f"{model}" if isinstance(model, str) else "the ONNX model"
    try:
        if isinstance(model, bytes):
            model = onnx.load_from_string(model)
        elif isinstance(model, str):
            model = onnx.load(model)
    except (DecodeError, ValueError, RuntimeWarning) as exc:
        raise OnnxFileError(f"{what} is not an ONNX model (unreadable: {_one_line(exc)}); it "
                            "may be truncated or another format: export it again") from exc
    if not model.graph.node:
        raise OnnxFileError(f"{what} holds no ONNX graph (an empty or non-ONNX file); "
                            "export the model again")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError,
            ValueError) as exc:
        raise OnnxFileError(f"{what} is not a valid ONNX model: {_one_line(exc)}") from exc
    return model


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def from_onnx(model: onnx.ModelProto | str | bytes) -> Graph:
    """Read a rate-equivalent ONNX model (as written by :func:`to_onnx`) into the IR: one
    IR node per ONNX node, by the readers of :data:`READERS` (``Constant`` nodes become
    initializers)."""
    model = load_model(model)
    g = model.graph
    _refuse_unsupported(g)
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inp, dims = _graph_input(g, inits)
    rename = {inp.name: INPUT}  # ONNX value name -> IR node name
    nodes: list[Node] = []
    for on in g.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in on.attribute}
        if on.op_type == "Constant":
            inits[on.output[0]] = _constant(attrs)
            continue
        name = on.name or on.output[0]
        ins = [rename.get(i, i) for i in on.input if i]
        rename[on.output[0]] = name
        op = _op_of(on)
        try:
            nodes.append(READERS[op](name, ins, attrs, inits))
        except IRError:
            raise
        except KeyError as exc:
            raise IRError(f"ONNX node {name!r} ({op}): input {exc} must be a constant "
                          "(an initializer); weights computed by other nodes are not "
                          "supported") from exc
        except (ValueError, TypeError, IndexError) as exc:
            raise IRError(f"ONNX node {name!r} ({op}) is malformed: {_one_line(exc)}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    return Graph(tuple(dims), tuple(nodes), rename.get(g.output[0].name, g.output[0].name),
                 meta=meta)


def _op_of(on: onnx.NodeProto) -> str:
    """The reader key of an ONNX node: ``op`` or ``domain::op`` (``SpikeMaxPool<K>`` of any
    ``K`` is one op)."""
    if on.domain == DOMAIN and on.op_type.startswith(SPIKE_POOL_OP):
        return f"{DOMAIN}::{SPIKE_POOL_OP}"
    return on.op_type if on.domain in ("", "ai.onnx") else f"{on.domain}::{on.op_type}"


def _refuse_unsupported(g: onnx.GraphProto) -> None:
    """One error naming every unsupported operator (real layers before the plumbing)."""
    found: dict[str, str] = {}
    for k, on in enumerate(g.node):
        op = _op_of(on)
        if op not in READERS and op != "Constant":
            found.setdefault(op, on.name or on.output[0] or f"node {k}")
    if not found:
        return
    ops = sorted(found, key=lambda op: op in PLUMBING_OPS)
    kind = f"ONNX operator{'s' if len(ops) > 1 else ''} {', '.join(ops)}"
    raise unsupported(kind, found[ops[0]])


def _constant(attrs: dict) -> np.ndarray:
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"]).astype(np.float64)
    for key in ("value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key], dtype=np.float64)
    raise IRError(f"ONNX Constant with attributes {sorted(attrs)} is not supported")


def _graph_input(g: onnx.GraphProto, inits: dict) -> tuple[onnx.ValueInfoProto, list[int]]:
    if len(g.input) - sum(i.name in inits for i in g.input) != 1:
        raise IRError("the ONNX model must have exactly one (non-initializer) input")
    inp = next(i for i in g.input if i.name not in inits)
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim][1:]
    if not dims or any(d <= 0 for d in dims):
        raise IRError(f"ONNX input {inp.name!r} needs a fixed per-sample shape, got "
                      f"{dims or 'none'}; export the model with a fixed input shape (only the "
                      "batch axis dynamic)")
    return inp, dims


def _symmetric_pads(attrs: dict, what: str) -> tuple[int, int]:
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise IRError(f"{what}: asymmetric padding {pads} is not supported")
    return tuple(pads[:2])


def _read_conv(name, ins, attrs, inits) -> Node:
    padding = _symmetric_pads(attrs, f"Conv {name!r}")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise unsupported("dilated Conv", name)
    params = {"weight": inits[ins[1]]}
    if len(ins) > 2:
        params["bias"] = inits[ins[2]]
    return Node(name, "Conv", (ins[0],), attrs={
        "stride": tuple(attrs.get("strides", [1, 1])), "padding": padding,
        "groups": int(attrs.get("group", 1))}, params=params)


def _read_gemm(name, ins, attrs, inits) -> Node:
    w = inits[ins[1]]
    w = w if attrs.get("transB", 0) else w.T
    params = {"weight": w * attrs.get("alpha", 1.0)}
    if len(ins) > 2:
        params["bias"] = inits[ins[2]] * attrs.get("beta", 1.0)
    return Node(name, "Gemm", (ins[0],), params=params)


def _read_batchnorm(name, ins, attrs, inits) -> Node:
    params = dict(zip(("gamma", "beta", "mean", "var"), (inits[i] for i in ins[1:5]),
                      strict=True))
    return Node(name, "BatchNorm", (ins[0],), attrs={"eps": float(attrs.get("epsilon", 1e-5))},
                params=params)


def _read_avgpool(name, ins, attrs, inits) -> Node:
    padding = _symmetric_pads(attrs, f"AveragePool {name!r}")
    if attrs.get("ceil_mode", 0):
        raise IRError(f"AveragePool {name!r}: ceil_mode is not supported")
    if any(padding) and not attrs.get("count_include_pad", 0):
        raise IRError(f"AveragePool {name!r}: padding must be counted "
                      "(count_include_pad=1) to be a linear projection")
    kernel = tuple(attrs["kernel_shape"])
    return Node(name, "AvgPool", (ins[0],), attrs={
        "kernel": kernel, "stride": tuple(attrs.get("strides", kernel)), "padding": padding})


def _pool_attrs(name, attrs, what: str) -> dict:
    padding = _symmetric_pads(attrs, f"{what} {name!r}")
    if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise IRError(f"{what} {name!r}: ceil_mode and dilation are not supported")
    kernel = tuple(attrs["kernel_shape"])
    return {"kernel": kernel, "stride": tuple(attrs.get("strides", [1, 1])),
            "padding": padding}


def _read_maxpool(name, ins, attrs, inits) -> Node:
    if len(ins) != 1:
        raise IRError(f"MaxPool {name!r}: the indices output is not supported")
    return Node(name, "MaxPool", (ins[0],), attrs=_pool_attrs(name, attrs, "MaxPool"))


def _read_spike_pool(name, ins, attrs, inits) -> Node:
    return Node(name, "SpikeMaxPool", (_s(attrs["neuron"]),),
                attrs=_pool_attrs(name, attrs, SPIKE_POOL_OP))


def _read_flatten(name, ins, attrs, inits) -> Node:
    if attrs.get("axis", 1) != 1:
        raise IRError(f"Flatten {name!r}: only axis=1 is supported")
    return Node(name, "Flatten", (ins[0],))


def _read_neuron(name, ins, attrs, inits) -> Node:
    v = dict(zip(NEURON_INPUTS, (inits[i] for i in ins[1:]), strict=True))
    T = v["T"]
    if not np.all(np.round(T) == T):
        raise IRError(f"neuron {name!r}: T must be integers, got {T}")
    return Node(name, "Neuron", (ins[0],), attrs={
        "threshold": float(v["threshold"]), "v0": float(v["v0"]),
        "out_scale": float(v["out_scale"]), "coupling": _s(attrs.get("coupling", b"rate")),
        "reset": _s(attrs.get("reset", b"soft"))},
        params={"timesteps": np.round(T).astype(np.int64), "scale": v["scale"],
                "bias": v["bias"]})


READERS = {
    "Conv": _read_conv,
    "Gemm": _read_gemm,
    "BatchNormalization": _read_batchnorm,
    "AveragePool": _read_avgpool,
    "GlobalAveragePool": lambda name, ins, attrs, inits: Node(name, "GlobalAvgPool", (ins[0],)),
    "Flatten": _read_flatten,
    "Add": lambda name, ins, attrs, inits: Node(name, "Add", tuple(ins)),
    "Sum": lambda name, ins, attrs, inits: Node(name, "Add", tuple(ins)),
    f"{DOMAIN}::{NEURON_OP}": _read_neuron,
    "MaxPool": _read_maxpool,
    f"{DOMAIN}::{SPIKE_POOL_OP}": _read_spike_pool,
}
"""ONNX operator -> reader ``(name, inputs, attributes, initializers) -> ir.Node``."""


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def run_onnxruntime(model: onnx.ModelProto | bytes, x: np.ndarray,
                    extra_outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` on ``x`` with onnxruntime (one thread); returns output name -> value.
    ``extra_outputs`` exposes intermediate node outputs (e.g. neuron rates)."""
    import onnxruntime as ort

    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    if extra_outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        have = {o.name for o in model.graph.output}
        for name in extra_outputs:
            if name not in have:
                model.graph.output.append(helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {sess.get_inputs()[0].name: np.asarray(x, np.float32)})
    return dict(zip(names, outs, strict=True))
