"""DDP with two CPU processes (gloo) through torchrun, on digits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "pseudosnn.cli", "train", "--config", str(CONFIGS / "digits" / "mlp.yaml"),
           "--epochs", "1", "--calib_epochs", "0", "--progress", "false",
           "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["rank_divergence"] == 0.0  # gradients were averaged: ranks stay equal
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["train_samples"] for h in history] == [1437]  # two halves, reduced
    assert history[-1]["test_acc"] > 0.5
    assert proc.stdout.count("done: best test accuracy") == 1  # only rank 0 reports
