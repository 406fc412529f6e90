"""``pseudosnn compile``: end to end on digits checkpoints, and every documented error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pseudosnn.compiler import artifact
from pseudosnn.compiler.spiking import reference

from pseudosnn.cli import main

torch = pytest.importorskip("torch")


def _ckpt(tmp_path, arch="cnn_digits", shape=(1, 8, 8), name="m.pth", **neuron):
    from pseudosnn.compiler.frontend.testing import randomize

    from pseudosnn.checkpoint import make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    model = build_model(arch, num_classes=10, input_shape=shape,
                        neuron={"family": "pseudo", **neuron})
    randomize(model, seed=5)
    ckpt = make_checkpoint(model, epoch=1)
    path = tmp_path / name
    save_checkpoint(ckpt, path)
    return path, ckpt, model


def _run(*args):
    return CliRunner().invoke(main, ["compile", *map(str, args)])


@pytest.mark.parametrize("arch,shape", [("mlp_digits", (64,)), ("cnn_digits", (1, 8, 8)),
                                        ("rescnn_digits", (1, 8, 8))])
def test_compile_digits_models_end_to_end(tmp_path, arch, shape):
    path, _, model = _ckpt(tmp_path, arch, shape)
    res = _run(path, "-o", tmp_path / "art", "--verify")
    assert res.exit_code == 0, res.output
    assert "sops_max" in res.output and "latency:" in res.output
    graph = artifact.load(tmp_path / "art")
    files = set(json.loads((tmp_path / "art" / "manifest.json").read_text())["files"])
    assert {"graph.json", "weights.npz", "model.onnx", "compile_report.json"} <= files
    x = np.random.default_rng(0).uniform(0, 1, (3, *shape))
    with torch.no_grad():
        y = model.double().eval()(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(reference.evaluate(graph, x).output, y, atol=1e-9)


def test_fixed_point_stream_model_compiles_and_measures_with_the_simulator(tmp_path):
    """Vanilla IF (stream coupling): the closed-form reference cannot measure the
    quantisation error, so the compiler measures it with the simulator."""
    from pseudosnn.compiler.frontend.testing import randomize

    from pseudosnn.checkpoint import make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "if", "T": 4})
    randomize(model, seed=5)
    save_checkpoint(make_checkpoint(model, epoch=1), tmp_path / "if.pth")
    res = _run(tmp_path / "if.pth", "-o", tmp_path / "fx", "--fixed-point")
    assert res.exit_code == 0, res.output
    assert "fixed point: max readout error" in res.output
    assert "argmax agreement" in res.output and "saturations" not in res.output
    graph = artifact.load(tmp_path / "fx")
    assert graph.fixed_point and {p.coupling for p in graph.populations} == {"rate", "stream"}


def test_fixed_point_with_digits_calibration(tmp_path):
    path, _, _ = _ckpt(tmp_path)
    res = _run(path, "-o", tmp_path / "fx", "--fixed-point", "--calib", "digits",
               "--calib-samples", "64")
    assert res.exit_code == 0, res.output
    assert "calibration accuracy: float" in res.output and "int8" in res.output
    graph = artifact.load(tmp_path / "fx")
    assert graph.fixed_point
    rep = json.loads((tmp_path / "fx" / "compile_report.json").read_text())
    assert rep["quant"]["max_output_error"] is not None


def test_safetensors_and_onnx_inputs(tmp_path):
    from pseudosnn.checkpoint import export_safetensors

    path, ckpt, _ = _ckpt(tmp_path)
    export_safetensors(ckpt, tmp_path / "m.safetensors")
    assert _run(tmp_path / "m.safetensors", "-o", tmp_path / "a").exit_code == 0
    onnx_path = tmp_path / "a" / "model.onnx"
    res = _run(onnx_path, "-o", tmp_path / "b", "--target", "onnx")
    assert res.exit_code == 0, res.output
    ga, gb = artifact.load(tmp_path / "a"), artifact.load(tmp_path / "b")
    x = np.random.default_rng(1).uniform(0, 1, (2, 1, 8, 8))
    np.testing.assert_allclose(reference.evaluate(ga, x).output,
                               reference.evaluate(gb, x).output, atol=1e-5)


def test_untrusted_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"format": "pseudosnn.checkpoint", "obj": _Custom()}, path)
    res = _run(path, "-o", tmp_path / "o")
    assert res.exit_code != 0 and "--trust-checkpoint" in res.output
    assert not (tmp_path / "o").exists()


class _Custom:  # needs full unpickling
    pass


def test_state_dict_mismatch_lists_missing_and_unexpected(tmp_path):
    from pseudosnn.checkpoint import save_checkpoint

    path, ckpt, _ = _ckpt(tmp_path)
    sd = dict(ckpt["state_dict"])
    sd["body.0.0.extra"] = sd.pop("body.0.0.weight")
    save_checkpoint({**ckpt, "state_dict": sd}, path)
    res = _run(path, "-o", tmp_path / "o")
    assert res.exit_code != 0
    assert "missing keys (1): body.0.0.weight" in res.output
    assert "unexpected keys (1): body.0.0.extra" in res.output


def test_nan_weights_are_named(tmp_path):
    path, ckpt, _ = _ckpt(tmp_path)
    sd = dict(ckpt["state_dict"])
    w = sd["body.0.0.weight"].clone()
    w[0, 0, 0, 0] = float("nan")
    sd["body.0.0.weight"] = w
    torch.save({**ckpt, "state_dict": sd}, path)  # save_checkpoint refuses NaN weights
    res = _run(path, "-o", tmp_path / "o")
    assert res.exit_code != 0 and "NaN or Inf" in res.output and "body.0.0" in res.output


def test_timesteps_above_max_are_refused(tmp_path):
    path, _, _ = _ckpt(tmp_path, init_T=12)
    res = _run(path, "-o", tmp_path / "o", "--max-timesteps", "4")
    assert res.exit_code != 0 and "outside 1..4" in res.output


def test_max_pools_without_an_event_form_are_refused_by_name(tmp_path):
    """Max pooling deploys on spikes (SpikePool) and on the analog stem before any neuron;
    of a rate neuron's rates, of currents mid-network, or with ceil_mode it is refused."""
    from pseudosnn.compiler import pipeline
    from pseudosnn.compiler.frontend.torch_model import FrontendError, model_to_ir
    from pseudosnn.compiler.lower import LoweringError
    from pseudosnn.compiler.onnx_io import UnsupportedLayerError

    from pseudosnn.models import SeqToANN, build_model

    def cnn():
        return build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8))

    model = cnn()  # body.3 is a rate PseudoSN, body.4 its 2x2 average pool
    model.body[4] = SeqToANN(torch.nn.MaxPool2d(2))
    with pytest.raises(FrontendError, match=r"'body.4.0' max-pools the rates of neuron "
                                            r"'body.3'.*SpikePool.*average pooling"):
        model_to_ir(model.eval())
    model = cnn()
    model.body[4] = SeqToANN(torch.nn.MaxPool2d(2, ceil_mode=True))
    with pytest.raises(UnsupportedLayerError, match="MaxPool2d with dilation/ceil_mode.*"
                                                    "body.4.0.*Supported:"):
        model_to_ir(model.eval())
    model = cnn()  # a max pool of body.2's currents, after neuron body.1
    model.body[2].append(torch.nn.MaxPool2d(3, 1, 1))
    with pytest.raises(LoweringError, match="acts on currents after a neuron.*no event form "
                                            "beyond the encoder.*average pooling"):
        pipeline.run(model_to_ir(model.eval()))


def test_not_deployable_neuron_is_a_compile_error(tmp_path):
    from pseudosnn.compiler.frontend.torch_model import FrontendError, model_to_ir

    from pseudosnn.models import build_model

    model = build_model("mlp_digits", num_classes=10, input_shape=(64,),
                        neuron={"family": "relu"})
    with pytest.raises(FrontendError, match=r"neuron 'body\.2' .*cannot be compiled"):
        model_to_ir(model.eval())


@pytest.mark.parametrize("neuron,message", [
    ({"family": "nsnn", "tau": 0.5}, r"voltage decay dv=-1 is outside \[0, 1\]"),
    ({"family": "if", "reset": "hard", "v_reset": 1.0},
     r"hard-reset value v_reset=1 is at or above the threshold 1"),
    ({"family": "lif", "reset": "hard", "v_reset": 2.0, "threshold": 1.5},
     r"hard-reset value v_reset=2 is at or above the threshold 1\.5"),
    ({"family": "asgl", "eval_spike": False}, r"eval_spike=False outputs the analog"),
])
def test_bad_neuron_dynamics_name_the_layer(neuron, message):
    """A leak outside [0, 1], a hard-reset value at or above threshold, an analog eval
    forward: one error naming the layer and the problem, no traceback in the CLI."""
    from pseudosnn.compiler.frontend.torch_model import FrontendError, model_to_ir

    from pseudosnn.models import build_model

    model = build_model("mlp_digits", num_classes=10, input_shape=(64,), neuron=neuron)
    with pytest.raises(FrontendError, match=r"neuron 'body\.2' .*cannot be compiled: .*"
                       + message):
        model_to_ir(model.eval())


def test_fixed_point_overflow_is_a_clear_error(tmp_path):
    from pseudosnn.checkpoint import save_checkpoint

    path, ckpt, _ = _ckpt(tmp_path, "mlp_digits", (64,))
    sd = dict(ckpt["state_dict"])
    sd["body.3.0.weight"] = sd["body.3.0.weight"] * 1e9
    save_checkpoint({**ckpt, "state_dict": sd}, path)
    res = _run(path, "-o", tmp_path / "o", "--fixed-point")
    assert res.exit_code == 1 and "too large for a threshold" in res.output


def test_artifact_with_a_bad_hash_is_refused(tmp_path):
    path, _, _ = _ckpt(tmp_path)
    assert _run(path, "-o", tmp_path / "a").exit_code == 0
    with open(tmp_path / "a" / "weights.npz", "ab") as f:
        f.write(b"tampered")
    res = _run(tmp_path / "a", "-o", tmp_path / "b", "--target", "onnx")
    assert res.exit_code != 0 and "sha256" in res.output and "weights.npz" in res.output


def test_retarget_an_artifact_to_lava(tmp_path):
    path, _, _ = _ckpt(tmp_path)
    assert _run(path, "-o", tmp_path / "a").exit_code == 0
    res = _run(tmp_path / "a", "-o", tmp_path / "l", "--target", "lava")
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "l" / "manifest.json").read_text())
    assert man["target"] == "lava" and len(man["files"]) > 4  # the Lava entry files


def test_help_describes_options():
    res = CliRunner().invoke(main, ["compile", "--help"])
    assert res.exit_code == 0 and "--fixed-point" in res.output and "--verify" in res.output


def test_noisy_family_compiles_saying_what_deploying_costs(tmp_path):
    """NSNN (stochastic eval): the compiler names the layers, says which neuron is deployed
    and measures the accuracy of the noisy forward against the deployed network on the
    calibration data; there is no rate-equivalent model.onnx; fixed point says what
    quantising the leak changed; the ONNX target refuses the graph in one line."""
    from pseudosnn.checkpoint import make_checkpoint, save_checkpoint
    from pseudosnn.models import build_model

    model = build_model("mlp_digits", num_classes=10, input_shape=(64,),
                        neuron={"family": "nsnn", "tau": 3.0})
    path = tmp_path / "nsnn.pth"
    save_checkpoint(make_checkpoint(model, epoch=1), path)
    res = _run(path, "-o", tmp_path / "art", "--fixed-point", "--calib", "digits",
               "--calib-samples", "40")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "neurons body.2, body.4: NSNN fires stochastically in training and at eval" in out
    assert "deterministic threshold neuron [u >= theta]" in out
    assert "noisy forward (mean of 5 draws) vs" in out and "on 40 calibration samples" in out
    assert "model.onnx not written: neuron 'body.2' leaks or resets hard" in out
    assert "fixed point: population 'body.2': dv 0.666667 -> 0.666748 (2731/4096); fires " \
           "on v > θ" in out
    files = set(json.loads((tmp_path / "art" / "manifest.json").read_text())["files"])
    assert "model.onnx" not in files
    run = CliRunner().invoke(main, ["run", str(tmp_path / "art"), "--target", "onnx",
                                    "--samples", "2"])
    assert run.exit_code == 1 and "Traceback" not in run.output
    assert "the onnx target does not support" in run.output and "leaky neurons" in run.output
    res = _run(path, "-o", tmp_path / "nocalib")
    assert "accuracy difference not measured (compile with --calib digits)" in res.output
