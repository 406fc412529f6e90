"""Checkpoints: weights-only loading, atomic writes, trust flag, safetensors export."""

from __future__ import annotations

import os
from fractions import Fraction

import pytest
import torch

from pseudosnn.checkpoint import (
    FORMAT,
    CheckpointError,
    export_safetensors,
    load_checkpoint,
    load_safetensors,
    make_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from pseudosnn.models import build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = build_model("rescnn_digits", num_classes=10, input_shape=(1, 8, 8),
                    neuron={"family": "pseudo", "granularity": "channel", "init_T": 5})
    with torch.no_grad():
        for _, n in m.neurons():
            n.logit.add_(torch.randn_like(n.logit))
    m.train()(torch.randn(8, 1, 8, 8))  # move BN running stats
    return m


def make(model, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    return make_checkpoint(model, epoch=3, config={"lr": 0.1, "neuron": {"init_T": 5}},
                           optimizer=opt, scheduler=sched, class_names=list("abcdefghij"),
                           best_acc=0.5, **kw)


def test_roundtrip_weights_only_and_rebuild(model, tmp_path):
    ckpt = make(model)
    path = tmp_path / "sub" / "last.pth"
    save_checkpoint(ckpt, path)
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]  # no temp files left
    raw = torch.load(path, weights_only=True)  # loadable without unpickling anything else
    assert raw["format"] == FORMAT and raw["epoch"] == 3
    loaded = load_checkpoint(path)
    assert loaded["model"]["class_names"] == list("abcdefghij")
    assert loaded["model"]["neuron"]["granularity"] == "channel"
    rebuilt = model_from_checkpoint(loaded)
    assert not rebuilt.training
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))
    for (_, a), (_, b) in zip(rebuilt.neurons(), model.neurons(), strict=True):
        assert torch.equal(a.timesteps(), b.timesteps())


def test_untrusted_checkpoint_needs_the_flag(model, tmp_path):
    ckpt = make(model)
    ckpt["config"]["custom"] = Fraction(1, 3)  # a class outside the weights-only allowlist
    path = tmp_path / "evil.pth"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        load_checkpoint(path)
    assert load_checkpoint(path, trusted=True)["epoch"] == 3


def test_corrupt_and_foreign_files(model, tmp_path):
    path = tmp_path / "c.pth"
    save_checkpoint(make(model), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not a PseudoSNN checkpoint"):
        load_checkpoint(tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")


def test_atomic_write_keeps_old_file_on_failure(model, tmp_path):
    path = tmp_path / "last.pth"
    save_checkpoint(make(model), path)
    before = path.read_bytes()
    bad = make(model)
    bad["config"]["x"] = lambda: None  # cannot be pickled
    with pytest.raises(Exception):  # noqa: B017 - torch raises various pickling errors
        save_checkpoint(bad, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pth"]


def test_safetensors_export_same_dict_shape(model, tmp_path):
    ckpt = make(model)
    export_safetensors(ckpt, tmp_path / "m.safetensors")
    st = load_safetensors(tmp_path / "m.safetensors")
    assert st["model"] == ckpt["model"]
    assert st["state_dict"].keys() == ckpt["state_dict"].keys()
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(st["state_dict"][k], v)
    assert st["format"] == FORMAT and st["epoch"] == 3
    via_load = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model_from_checkpoint(via_load)(x), model.eval()(x))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_safetensors(tmp_path / "bad.safetensors")


def test_weights_that_do_not_fit(model, tmp_path):
    ckpt = make(model)
    ckpt["model"]["arch"] = "cnn_digits"
    with pytest.raises(CheckpointError, match="does not match architecture .cnn_digits."):
        model_from_checkpoint(ckpt)
