"""The compiler's pass order, as one readable list, and ``--verify``.

IR passes (``ir.Graph -> ir.Graph``), then lowering to the spiking graph, scheduling and
(optionally) fixed-point quantisation. With ``verify=True`` every stage's invariants are
checked and the stage is evaluated on random inputs against the stage before it (IR:
:func:`ir.evaluate`; spiking graph: :func:`reference.evaluate`); a failure raises
:class:`VerifyError` naming the pass and what broke.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from pseudosnn.compiler import ir
from pseudosnn.compiler.lower import lower
from pseudosnn.compiler.passes.avgpool_fusion import fuse_avgpool
from pseudosnn.compiler.passes.bn_fold import fold_batchnorm
from pseudosnn.compiler.passes.dead_nodes import remove_dead
from pseudosnn.compiler.passes.flatten import resolve_flatten
from pseudosnn.compiler.passes.residual import distribute_add, identity_projections
from pseudosnn.compiler.passes.scale_fold import fold_scale
from pseudosnn.compiler.passes.schedule import schedule_graph
from pseudosnn.compiler.quantize import QuantReport, Runner, quantize
from pseudosnn.compiler.spiking.graph import SpikingGraph, validate
from pseudosnn.compiler.spiking.reference import evaluate
from pseudosnn.compiler.spiking.semantics import count_margin

from pseudosnn.errors import PseudoSNNError

IR_PASSES: list[tuple[str, Callable[[ir.Graph], ir.Graph]]] = [
    ("bn_fold", fold_batchnorm),
    ("residual", distribute_add),
    ("avgpool_fusion", fuse_avgpool),
    ("flatten", resolve_flatten),
    ("identity_projections", identity_projections),
    ("scale_fold", fold_scale),
    ("dead_nodes", remove_dead),
]
"""The IR pass order. Later stages: ``lower`` -> ``schedule`` -> ``quantize``."""

VERIFY_SAMPLES = 2
TIE_TOL = 1e-9


class VerifyError(PseudoSNNError, AssertionError):
    """A pass broke an invariant or changed what the network computes."""


@dataclass
class CompileResult:
    ir_in: ir.Graph
    ir_out: ir.Graph
    graph: SpikingGraph  # scheduled, float
    fixed: SpikingGraph | None = None
    quant: QuantReport | None = None
    stages: list[str] = field(default_factory=list)


def _margin(node: ir.Node, x: np.ndarray) -> np.ndarray:
    """How far a neuron's count is from flipping (``semantics.count_margin``)."""
    return count_margin(ir.neuron_current(node, x), node.params["timesteps"],
                        node.attrs["threshold"], node.attrs["v0"], ir.neuron_dynamics(node))


def compare_counts(stage: str, a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                   ties: dict[str, np.ndarray] | None = None) -> None:
    """Counts must agree for every population present in both (away from ties)."""
    for name in a:
        if name not in b:
            continue
        bad = a[name] != b[name]
        if ties is not None and name in ties:
            bad &= ties[name] > TIE_TOL
        if np.any(bad):
            raise VerifyError(f"pass {stage!r} changed the spike counts of {name!r} "
                              f"({int(bad.sum())} of {bad.size} neurons differ)")


def _check_ir_stage(stage: str, prev: ir.Graph, cur: ir.Graph, x: np.ndarray,
                    max_t: int | None, a: ir.Evaluation) -> ir.Evaluation:
    """Check ``cur`` (``a`` is the previous stage's evaluation); returns ``cur``'s."""
    try:
        ir.check(cur, max_t)
    except Exception as exc:
        raise VerifyError(f"pass {stage!r} broke an IR invariant: {exc}") from exc
    b = ir.evaluate(cur, x)
    if a.output.shape != b.output.shape or not np.allclose(a.output, b.output, rtol=1e-6,
                                                           atol=1e-6):
        err = np.abs(a.output - b.output).max() if a.output.shape == b.output.shape else "shape"
        raise VerifyError(f"pass {stage!r} changed the network's output (max error {err})")
    ties = {n.name: _margin(n, a.values[n.inputs[0]]) for n in prev.neurons()}
    compare_counts(stage, a.counts, b.counts, ties)
    return b


def run(graph: ir.Graph, *, fixed_point: bool = False, verify: bool = False,
        max_timesteps: int | None = None, calib_x: np.ndarray | None = None,
        calib_y: np.ndarray | None = None, seed: int = 0,
        verify_samples: int = VERIFY_SAMPLES,
        progress: Callable[[str], None] | None = None,
        run_graph: Runner | None = None) -> CompileResult:
    """Run the whole pipeline on an IR graph. ``run_graph`` (a cycle-accurate executor)
    lets the quantiser measure its error on stream-coupled graphs too."""
    ir.check(graph, max_timesteps)
    x = np.random.default_rng(seed).normal(0, 1, size=(verify_samples, *graph.input_shape))
    stages = []
    cur = graph
    last = ir.evaluate(graph, x) if verify else None
    for name, fn in IR_PASSES:
        if progress:
            progress(name)
        nxt = fn(cur)
        if verify:
            last = _check_ir_stage(name, cur, nxt, x, max_timesteps, last)
        cur, stages = nxt, [*stages, name]
    if progress:
        progress("lower")
    sg = lower(cur, fixed_point=fixed_point)
    trained = [layer.as_dict() for layer in ir.trained_layers(graph)]
    sg = schedule_graph(replace(sg, meta={**sg.meta, "trained_layers": trained}))
    stages += ["lower", "schedule"]
    if verify:
        _check_graph_stage("lower+schedule", cur, sg, x, last)
    result = CompileResult(ir_in=graph, ir_out=cur, graph=sg, stages=stages)
    if fixed_point:
        if progress:
            progress("quantize")
        result.fixed, result.quant = quantize(sg, calib_x, calib_y, seed=seed, run=run_graph)
        stages.append("quantize")
        if verify:
            try:
                validate(result.fixed)
            except Exception as exc:
                raise VerifyError(f"pass 'quantize' broke a graph invariant: {exc}") from exc
    return result


def _check_graph_stage(stage: str, prev: ir.Graph, sg: SpikingGraph, x: np.ndarray,
                       a: ir.Evaluation) -> None:
    try:
        validate(sg)
    except Exception as exc:
        raise VerifyError(f"pass {stage!r} broke a spiking-graph invariant: {exc}") from exc
    if any(p.coupling != "rate" for p in sg.populations):
        return  # stream populations are checked by the simulator, not the closed form
    frames = sg.input.frames  # the IR reads their time mean: feed that many equal frames
    b = evaluate(sg, np.repeat(x[:, None], frames, axis=1) if frames else x)
    a_out = a.output.reshape(b.output.shape)
    if not np.allclose(a_out, b.output, rtol=1e-6, atol=1e-6):
        raise VerifyError(f"pass {stage!r} changed the network's output "
                          f"(max error {np.abs(a_out - b.output).max()})")
    ties = {n.name: _margin(n, a.values[n.inputs[0]]) for n in prev.neurons()}
    compare_counts(stage, a.counts, b.counts, ties)
