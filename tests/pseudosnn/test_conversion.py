"""ReLU ANN -> IF conversion by threshold calibration, on a small trained digits CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from pseudosnn.conversion import (
    ConversionError,
    calibrate_thresholds,
    convert_relu_model,
    replace_relus,
)
from pseudosnn.models import build_model
from pseudosnn.neurons.relu import ReLUNeuron


def _digits():
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return x[:1437], y[:1437], x[1437:], y[1437:]


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model.eval()(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def trained_ann():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared CI machine; this small CNN gains nothing from more
    torch.manual_seed(0)
    xtr, ytr, xte, yte = _digits()
    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                        neuron={"family": "relu"})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(6):
        model.train()
        perm = torch.randperm(len(ytr))
        for i in range(0, len(ytr), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    ann_acc = _accuracy(model, xte, yte)
    assert ann_acc > 0.9
    yield model, (xtr, ytr, xte, yte), ann_acc
    torch.set_num_threads(threads)


def _relu_outputs_by_hand(model, x) -> dict[str, torch.Tensor]:
    """Walk the flat body (cnn_digits has no residual blocks) and keep each ReLU's output."""
    outs, h = {}, x.unsqueeze(0)
    with torch.no_grad():
        for i, item in enumerate(model.body):
            h = item(h)
            if isinstance(item, ReLUNeuron):
                outs[f"body.{i}"] = h
    return outs


def test_max_and_percentile_thresholds_match_the_activations(trained_ann):
    model, (xtr, *_), _ = trained_ann
    calib = xtr[:200]
    by_hand = _relu_outputs_by_hand(model, calib)
    peaks = calibrate_thresholds(model, calib, method="max")
    assert set(peaks) == set(by_hand)
    for name, act in by_hand.items():
        assert peaks[name] == pytest.approx(act.max().item())
    assert calibrate_thresholds(model, calib, method="percentile", percentile=100.0) == \
        pytest.approx(peaks)
    # batches given as (x, y) pairs give the same thresholds as one tensor
    pairs = [(calib[:100], None), (calib[100:], None)]
    assert calibrate_thresholds(model, pairs, method="max") == pytest.approx(peaks)
    med = calibrate_thresholds(model, calib, method="percentile", percentile=50.0)
    for name, act in by_hand.items():
        pos = act[act > 0].numpy()
        assert med[name] == pytest.approx(np.percentile(pos, 50.0), rel=0.02)
        assert med[name] < peaks[name]


@pytest.mark.parametrize("method", ["max", "percentile"])
def test_rate_conversion_keeps_accuracy_and_is_deployable(trained_ann, method):
    model, (xtr, _, xte, yte), ann_acc = trained_ann
    conv = convert_relu_model(model, xtr[:256], T=16, method=method, percentile=99.9)
    acc = _accuracy(conv.model, xte, yte)
    assert acc >= ann_acc - 0.02, (acc, ann_acc)
    specs = [n.deploy_spec() for _, n in conv.model.neurons()]
    assert len(specs) == len(conv.thresholds) == 4
    for spec, theta in zip(specs, conv.thresholds.values(), strict=True):
        assert spec.coupling == "rate" and spec.threshold == pytest.approx(theta)
        assert spec.v0 == pytest.approx(theta / 2) and int(spec.timesteps) == 16
    # the original ANN is untouched
    assert all(isinstance(n, ReLUNeuron) for _, n in model.neurons())


def test_stream_conversion_approaches_the_ann_as_T_grows(trained_ann):
    model, (xtr, _, xte, yte), ann_acc = trained_ann
    accs = {}
    for T in (2, 32):
        conv = convert_relu_model(model, xtr[:256], T=T, method="max", coupling="stream")
        accs[T] = _accuracy(conv.model, xte, yte)
        for _, n in conv.model.neurons():
            spec = n.deploy_spec()
            assert spec.coupling == "stream" and spec.out_scale == spec.threshold
    assert accs[32] >= ann_acc - 0.02
    assert accs[32] > accs[2]


def test_rate_converted_model_rebuilds_from_config_and_state(trained_ann):
    model, (xtr, _, xte, _), _ = trained_ann
    conv = convert_relu_model(model, xtr[:128], T=8, method="max")
    rebuilt = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8),
                          neuron=conv.model.neuron_config)
    rebuilt.load_state_dict(conv.model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(xte), conv.model(xte))


def test_clear_errors(trained_ann):
    model, (xtr, *_), _ = trained_ann
    snn = build_model("mlp_digits", num_classes=10, input_shape=(1, 8, 8),
                      neuron={"family": "if"})
    with pytest.raises(ConversionError, match="relu"):
        calibrate_thresholds(snn, xtr[:8])
    with pytest.raises(ConversionError, match="empty"):
        calibrate_thresholds(model, [])
    with pytest.raises(ConversionError, match="method"):
        calibrate_thresholds(model, xtr[:8], method="mean")
    thresholds = calibrate_thresholds(model, xtr[:8], method="max")
    bad = dict(thresholds, **{next(iter(thresholds)): 0.0})
    with pytest.raises(ConversionError, match="positive"):
        replace_relus(model, bad, T=4)
    with pytest.raises(ConversionError, match="coupling"):
        replace_relus(model, thresholds, T=4, coupling="burst")
