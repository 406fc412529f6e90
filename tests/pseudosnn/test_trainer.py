"""Trainer: the recipe's pieces, exact resume, the digits target, CLI errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pseudosnn.checkpoint import load_checkpoint, model_from_checkpoint
from pseudosnn.config import load_config
from pseudosnn.models import build_model
from pseudosnn.train_command import train as train_cmd
from pseudosnn.trainer import noise_prob_at, split_params, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class PaperScheduler:
    """The paper's stateful multi-step noise-rate scheduler (models/scheduler.py),
    restated to check :func:`noise_prob_at` against it."""

    def __init__(self, init_p, ratio, milestones, num_epoch):
        self.p, self.ratio = init_p, ratio
        self.milestones = [int(m * num_epoch) for m in milestones]
        self.prob = None

    def __call__(self, epoch):
        if epoch <= 0:
            self.prob = 1 - self.p
        if epoch in self.milestones:
            self.p *= self.ratio
            self.prob = 1 - self.p
        return self.prob


@pytest.mark.parametrize("epochs", [8, 15, 100])
def test_noise_schedule_matches_the_paper(epochs):
    ms = [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875]
    paper = PaperScheduler(0.8, 0.8, ms, epochs)
    for e in range(epochs):
        assert noise_prob_at(e, epochs, 0.8, 0.8, ms) == pytest.approx(paper(e))
    assert noise_prob_at(0, epochs, 0.8, 0.8, ms) == pytest.approx(0.2)


def test_split_params_groups():
    model = build_model("cnn_digits", num_classes=10, input_shape=(1, 8, 8))
    logits, weights, rest = split_params(model)
    assert len(logits) == 4 and all(p.dim() == 0 for p in logits)
    assert len(weights) == 5  # 3 convs, the hidden linear and the readout
    assert len(logits) + len(weights) + len(rest) == len(list(model.parameters()))


def tiny_config(**kw):
    cfg = load_config(CONFIGS / "digits" / "mlp.yaml",
                      {"epochs": 3, "calib_epochs": 1, "batch_size": 256, "progress": False})
    cfg.update(kw)
    return cfg


def test_resume_continues_bit_for_bit(tmp_path):
    cfg = tiny_config()
    full = train(cfg, tmp_path / "full", log=lambda s: None)
    part = train(cfg, tmp_path / "part", stop_after=1, log=lambda s: None)
    assert part["epochs_run"] == 2
    assert load_checkpoint(tmp_path / "part" / "last.pth")["epoch"] == 1
    resumed = train(cfg, tmp_path / "part", resume=tmp_path / "part" / "last.pth",
                    log=lambda s: None)
    assert resumed["epochs_run"] == 4 and full["epochs_run"] == 4
    a = load_checkpoint(tmp_path / "full" / "last.pth")
    b = load_checkpoint(tmp_path / "part" / "last.pth")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert [h["test_acc"] for h in a["extra"]["history"]] == \
        [h["test_acc"] for h in b["extra"]["history"]]


def test_calibration_freezes_timesteps(tmp_path):
    cfg = tiny_config(epochs=2, calib_epochs=2, calib_from_best=False)
    train(cfg, tmp_path, stop_after=1, log=lambda s: None)
    before = load_checkpoint(tmp_path / "last.pth")["state_dict"]
    train(cfg, tmp_path, resume=tmp_path / "last.pth", log=lambda s: None)
    after = load_checkpoint(tmp_path / "last.pth")["state_dict"]
    logits = [k for k in before if k.endswith(".logit")]
    assert logits and all(torch.equal(before[k], after[k]) for k in logits)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))


@pytest.mark.slow
def test_digits_mlp_reaches_95_percent_with_heterogeneous_T(tmp_path):
    cfg = load_config(CONFIGS / "digits" / "mlp.yaml", {"progress": False})
    lines = []
    summary = train(cfg, tmp_path, log=lines.append)
    assert summary["final_test_acc"] >= 0.95
    assert summary["final_mean_T"] < summary["initial_mean_T"]
    model = model_from_checkpoint(load_checkpoint(tmp_path / "last.pth"))
    ts = {int(n.timesteps()) for _, n in model.neurons()}
    assert len(ts) > 1, ts
    assert any(line.startswith("layer") and "scale" in line for line in lines)
    assert (tmp_path / "best.pth").is_file() and (tmp_path / "summary.json").is_file()


# --- CLI: errors, not tracebacks ------------------------------------------------------
def run_cli(args):
    result = CliRunner().invoke(train_cmd, args)
    return result


def assert_clean_error(result, *needles):
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for n in needles:
        assert n in result.output, result.output


def test_cli_unknown_config_key(tmp_path):
    r = run_cli(["--config", str(CONFIGS / "digits" / "mlp.yaml"), "--epoch", "3",
                 "--out", str(tmp_path)])
    assert_clean_error(r, "unknown config key 'epoch'", "epochs")


def test_cli_unknown_architecture(tmp_path):
    r = run_cli(["--config", str(CONFIGS / "digits" / "mlp.yaml"), "--model", "resnet91",
                 "--out", str(tmp_path)])
    assert_clean_error(r, "unknown architecture 'resnet91'", "resnet19")


def test_cli_missing_data_path(tmp_path):
    r = run_cli(["--config", str(CONFIGS / "digits" / "mlp.yaml"), "--data_type", "cifar10",
                 "--data_path", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert_clean_error(r, "does not exist", "data_batch_1")


def test_cli_corrupt_and_untrusted_checkpoints(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    assert_clean_error(run_cli(["--resume", str(bad)]), "corrupt")
    from fractions import Fraction

    torch.save({"format": "pseudosnn.checkpoint", "x": Fraction(1, 2)}, tmp_path / "u.pth")
    assert_clean_error(run_cli(["--resume", str(tmp_path / "u.pth")]), "--trust-checkpoint")


def test_cli_trains_and_resumes(tmp_path):
    args = ["--config", str(CONFIGS / "digits" / "mlp.yaml"), "--epochs", "1",
            "--calib_epochs", "0", "--batch_size", "512", "--out", str(tmp_path)]
    r = run_cli(args)
    assert r.exit_code == 0, r.output
    assert "done: best test accuracy" in r.output and "layer" in r.output
    r = run_cli(["--resume", str(tmp_path / "last.pth"), "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 1


def test_cli_help_lists_options():
    r = run_cli(["--help"])
    assert r.exit_code == 0
    for opt in ("--config", "--resume", "--out", "--trust-checkpoint", "--key value"):
        assert opt in r.output


def test_tensorboard_without_package_is_a_clear_error(tmp_path, monkeypatch):
    # tensorboard may be installed (SpikingJelly pulls it in): make its import fail
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    r = run_cli(["--config", str(CONFIGS / "digits" / "mlp.yaml"), "--tensorboard", "true",
                 "--out", str(tmp_path)])
    assert_clean_error(r, "tensorboard")


def test_paper_eval_rule_trains_and_evaluates_on_spike_trains(tmp_path):
    cfg = tiny_config(epochs=1, calib_epochs=0)
    cfg["neuron"] = {**cfg["neuron"], "eval_rule": "paper"}
    summary = train(cfg, tmp_path, log=lambda s: None)
    assert summary["final_test_acc"] > 0.3
    model = model_from_checkpoint(load_checkpoint(tmp_path / "last.pth"))
    name, sn = next(iter(model.neurons()))
    out = []
    sn.register_forward_hook(lambda m, i, o: out.append(o))
    with torch.no_grad():
        model(torch.randn(2, 1, 8, 8))
    assert out[0].shape[0] == int(sn.timesteps())  # a spike train of the layer's T
    assert set(out[0].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("args, needle", [
    (["--neuron.granularity", "pixel"], "granularity"),
    (["--neuron.family", "psuedo"], "unknown neuron family"),
    (["--neuron.bogus", "1"], "bogus"),
])
def test_cli_bad_neuron_config(tmp_path, args, needle):
    r = run_cli(["--config", str(CONFIGS / "digits" / "mlp.yaml"), "--out", str(tmp_path),
                 *args])
    assert_clean_error(r, needle)
