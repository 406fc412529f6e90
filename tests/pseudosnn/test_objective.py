"""Hardware-aware objective: structure tracing, exact fan-out, both costs, the report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.graph import Projection
from torch import nn

from pseudosnn.models import build_model
from pseudosnn.objective import (
    HardwareCost,
    format_rows,
    layer_report,
    term_fanout,
    term_flops,
    trace_structure,
)


@pytest.mark.parametrize("k, s, p", [(3, 1, 1), (3, 2, 1), (1, 2, 0), (7, 2, 3), (5, 3, 0)])
def test_conv_fanout_matches_compiler_projection(k, s, p):
    conv = nn.Conv2d(4, 6, k, s, p)
    pr = Projection(name="p", source="a", target="b", kind="conv",
                    weight=np.ones((6, 4, k, k)), stride=(s, s), padding=(p, p))
    np.testing.assert_array_equal(term_fanout((4, 9, 11), (conv,)),
                                  counting.fanout(pr, (4, 9, 11)))


def test_pool_then_conv_fanout_equals_the_fused_projection():
    """AvgPool(2) then Conv3x3(pad 1) is one projection with a 6x6 kernel, stride 2, pad 2."""
    fused = Projection(name="p", source="a", target="b", kind="conv",
                       weight=np.ones((6, 4, 6, 6)), stride=(2, 2), padding=(2, 2))
    ops = (nn.AvgPool2d(2), nn.Conv2d(4, 6, 3, 1, 1))
    np.testing.assert_array_equal(term_fanout((4, 8, 8), ops), counting.fanout(fused, (4, 8, 8)))


def test_fanout_by_brute_force_reachability():
    """A chain conv(s2) -> avgpool(3, s1, p1) -> adaptive pool: count reachable outputs by
    propagating a one-hot through all-ones (non-negative) ops. (The adaptive pool has
    windows of one size, 6 -> 3: the compiler deploys only such pools.)"""
    ops = (nn.Conv2d(2, 3, 3, 2, 1), nn.AvgPool2d(3, 1, 1), nn.AdaptiveAvgPool2d(3))
    for op in ops:
        if isinstance(op, nn.Conv2d):
            nn.init.ones_(op.weight)
            nn.init.zeros_(op.bias)
    shape = (2, 12, 12)
    got = term_fanout(shape, ops)
    for idx in np.ndindex(*shape):
        x = torch.zeros(1, *shape)
        x[(0, *idx)] = 1.0
        y = x
        with torch.no_grad():
            for op in ops:
                y = op(y)
        assert got[idx] == int((y > 0).sum()), idx


def test_dense_and_identity_fanout():
    assert np.all(term_fanout((4, 2, 2), (nn.Flatten(), nn.Linear(16, 5))) == 5)
    assert np.all(term_fanout((7,), (nn.Linear(7, 3),)) == 3)
    assert np.all(term_fanout((3, 2, 2), ()) == 1)


def test_flops():
    assert term_flops((4, 8, 8), (nn.Conv2d(4, 6, 3, 1, 1),)) == 6 * 64 * 4 * 9
    assert term_flops((4, 8, 8), (nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))) \
        == 4 * 64 + 640


def test_trace_basic_block_has_two_projections_into_sn2():
    model = build_model("rescnn_digits", num_classes=10, input_shape=(1, 8, 8))
    st = trace_structure(model)
    srcs = {t: sorted(term.source for term in terms) for t, terms in st.inputs.items()}
    assert srcs["body.2.sn2"] == ["body.1", "body.2.sn1"]  # conv2 + shortcut conv
    assert srcs["body.3.sn2"] == ["body.2.sn2", "body.3.sn1"]  # conv2 + identity
    identity = [t for t in st.inputs["body.3.sn2"] if t.source == "body.2.sn2"][0]
    assert identity.ops == ()
    assert srcs["readout"] == ["body.3.sn2"]


def test_trace_sew_sum_feeds_next_conv():
    model = build_model("sew_resnet20", num_classes=10, input_shape=(3, 8, 8))
    st = trace_structure(model)
    # the second block's conv1 reads block 1's output = sn2 of block 1 + its identity input
    assert sorted(t.source for t in st.inputs["body.3.sn1"]) == ["body.1", "body.2.sn2"]


def test_paper_cost_formula():
    model = build_model("mlp_digits", num_classes=10, input_shape=(1, 8, 8))
    cost = HardwareCost(model, "paper")
    # flops: encoder 64*128, body.2 drives 128*128, body.4 drives the readout 128*10
    assert cost.encoder_flops == 64 * 128
    assert cost.flops == {"body.2": 128 * 128, "body.4": 128 * 10}
    total = 64 * 128 + 128 * 128 + 1280
    expected = 8 * (128 * 128 + 1280) / total + 8
    assert cost.paper_cost().item() == pytest.approx(expected)
    cost.paper_cost().backward()
    assert all(n.logit.grad is not None and n.logit.grad.abs().sum() > 0
               for _, n in model.neurons())


def test_spike_cost_and_rows_are_exact_sums():
    torch.manual_seed(0)
    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "pseudo", "granularity": "channel"}).train()
    cost = HardwareCost(model, "spike")
    x = torch.randn(5, 1, 8, 8)
    model(x)
    c = cost.spike_cost()
    c.backward()
    assert model.body[0][0].weight.grad is not None  # gradient reaches the weights
    sops = 0.0
    for name, n in model.neurons():
        cur = cost.currents[name].detach()
        spikes = (n.timesteps().float() * cur.clamp(0, 1)).mean(0)
        sops += float((spikes.double() * torch.from_numpy(cost.fanout[name])).sum())
    expected = sops / cost.total_fanout + cost.mean_timesteps().item()
    assert c.item() == pytest.approx(expected, rel=1e-5)
    rows = cost.rows()
    assert [r.name for r in rows] == [n for n, _ in model.neurons()]
    assert sum(r.expected_sops for r in rows) == pytest.approx(sops, rel=1e-5)
    assert sum(r.paper_share for r in rows) + cost.encoder_flops / cost.total_flops \
        == pytest.approx(1.0)


def test_layer_report_restores_state_and_formats():
    model = build_model("rescnn_digits", num_classes=10, input_shape=(1, 8, 8)).eval()
    bn = model.body[0][1]
    before = bn.running_mean.clone()
    rows = layer_report(model, torch.randn(4, 1, 8, 8))
    assert not model.training and torch.equal(bn.running_mean, before)
    assert all(r.expected_spikes >= 0 and r.expected_sops >= 0 for r in rows)
    text = format_rows(rows)
    assert "body.2.sn1" in text and "E[SOPs]" in text


def test_cost_rejects_bad_kind_and_foreign_neurons():
    model = build_model("mlp_digits", num_classes=10, input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="cost="):
        HardwareCost(model, "joules")
    with pytest.raises(ValueError, match="needs an energy model"):
        HardwareCost(model, "energy")
    relu = build_model("mlp_digits", num_classes=10, input_shape=(1, 8, 8),
                       neuron={"family": "relu"})
    with pytest.raises(ValueError, match="learnable timesteps"):
        HardwareCost(relu)


@pytest.mark.parametrize("arch, shape", [("cnn_digits", (1, 8, 8)),
                                         ("rescnn_digits", (1, 8, 8)),
                                         ("sew_resnet20", (3, 8, 8))])
def test_fanout_equals_the_compiled_graph(arch, shape):
    """Differential: per population, the cost model's fan-out equals the sum of
    ``Projection.fanout`` over the projections the compiler emits from it."""
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend.torch_model import model_to_ir

    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, input_shape=shape).eval()
    graph = pipeline.run(model_to_ir(model)).graph
    cost = HardwareCost(model)
    for name, mine in cost.fanout.items():
        pop = graph.node(name)
        total = sum((counting.fanout(pr, pop.shape).reshape(mine.shape)
                     for pr in graph.projections
                     if pr.source == name), np.zeros(mine.shape, np.int64))
        np.testing.assert_array_equal(total, mine, err_msg=name)


def test_layer_report_forwards_count_what_their_neurons_pass_on():
    """``calibrated`` + ``quantised`` counts the deployed spikes: the eval-mode rate output
    times T; ``expected`` passes ``clip(c, 0, 1)`` on, so its counts differ downstream."""
    torch.manual_seed(0)
    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "pseudo", "init_T": 5}).eval()
    x = torch.randn(6, 1, 8, 8)
    deployed = {}
    hooks = [n.register_forward_hook(
        lambda m, i, o, k=k: deployed.__setitem__(k, (o[0] * m.timesteps()).sum() / len(x)))
        for k, n in model.neurons()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    quantised = layer_report(model, x, "calibrated", quantised=True)
    for row in quantised:
        assert row.expected_spikes == pytest.approx(float(deployed[row.name]), rel=1e-6)
    expected = layer_report(model, x, "expected")
    assert expected[0].expected_spikes == pytest.approx(
        layer_report(model, x, "calibrated")[0].expected_spikes)  # same first-layer input
    assert not model.training
    assert all(not n.calibrating and n.noise_prob > 0 for _, n in model.neurons())
    with pytest.raises(ValueError, match="forward="):
        layer_report(model, x, "noisy")


@pytest.mark.parametrize("arch, shape", [("cnn_digits", (1, 8, 8)),
                                         ("rescnn_digits", (1, 8, 8)),
                                         ("mlp_digits", (64,)),
                                         ("sew_resnet20", (3, 8, 8)),
                                         ("sew_resnet18", (3, 32, 32)),
                                         ("preact_resnet34", (3, 16, 16))])
def test_projection_weights_equal_the_compiled_graph(arch, shape):
    """Differential: the deployed projection the cost model prices for every term (kind and
    stored weights, ``counting.chain_projection``) is the one the compiler emits."""
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend.torch_model import model_to_ir

    from pseudosnn.objective import READOUT, chain_layers, trace_structure

    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, input_shape=shape).eval()
    graph = pipeline.run(model_to_ir(model)).graph
    st = trace_structure(model)
    for target, terms in st.inputs.items():
        mine = sorted(counting.chain_projection(st.shapes[t.source], chain_layers(
            st.shapes[t.source], t.ops)) for t in terms)
        name = graph.readout.name if target == READOUT else target
        theirs = sorted((pr.kind, pr.weight.size) for pr in graph.incoming(name))
        assert mine == theirs, target


def test_energy_cost_prices_expected_spikes_and_updates():
    """cost='energy': Σ_k (Σ_i E[n_ki]·w_ki + u_k·Σ_i T_ki) / Σ_k Σ_i (w_ki + u_k) + mean T,
    differentiable in T; the prices grow with memory (45nm) over compute only."""
    from pseudosnn.simulator.energy import get_model

    torch.manual_seed(0)
    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "pseudo", "init_T": 4})
    cost = HardwareCost(model, "energy", energy_model=get_model("45nm"))
    model(torch.randn(8, 1, 8, 8))
    c = cost.cost()
    energy, norm = 0.0, 0.0
    for k, n in cost.neurons.items():
        spikes = cost.expected_spikes(k).detach().numpy()
        T = float(n.timesteps_float().detach())
        w, u = cost.spike_pj[k], cost.update_pj[k]
        energy += float((spikes * w).sum()) + u * T * w.size
        norm += float(w.sum()) + u * w.size
    assert c.item() == pytest.approx(energy / norm + cost.mean_timesteps().item(), rel=1e-5)
    c.backward()
    assert all(n.logit.grad is not None and n.logit.grad.abs().sum() > 0
               for _, n in model.neurons())
    compute_only = HardwareCost(model, "energy", energy_model=get_model("compute-only"))
    for k in cost.spike_pj:  # compute only: 0.9 pJ per SOP, nothing per update
        np.testing.assert_allclose(compute_only.spike_pj[k], 0.9 * cost.fanout[k])
        assert compute_only.update_pj[k] == 0.0
        assert (cost.spike_pj[k] > compute_only.spike_pj[k]).all()


def test_energy_cost_from_a_training_config(tmp_path):
    from pseudosnn.simulator.energy import ChipError

    from pseudosnn.config import load_config

    model = build_model("mlp_digits", num_classes=10, input_shape=(1, 8, 8))
    cost = HardwareCost.from_config(model, load_config(None, {"cost": "energy",
                                                              "energy_model": "lemaire"}))
    assert cost.kind == "energy" and cost.update_pj
    chip = tmp_path / "chip.yaml"
    chip.write_text("base: 45nm\nmult_pj: 0.2\n")
    cfg = load_config(None, {"cost": "energy", "chip": str(chip)})
    assert HardwareCost.from_config(model, cfg).spike_pj
    chip.write_text("base: 45nm\nmult_pj: -2\n")
    with pytest.raises(ChipError, match="mult_pj"):
        HardwareCost.from_config(model, cfg)
    assert HardwareCost.from_config(model, load_config(None, {})).spike_pj == {}
