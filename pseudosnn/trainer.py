"""The training loop: PseudoSNN's recipe (noisy training with a hardware-aware penalty,
the multi-step noise-rate scheduler, then calibration epochs), checkpoints every epoch,
exact resume, DDP through torchrun.

Loss: ``cross_entropy + penalty * cost`` (``cost`` from :mod:`pseudosnn.objective`).
Reproducibility: every epoch reseeds torch/numpy/python from ``(seed, epoch, rank)``, so
a run resumed from ``last.pth`` after epoch ``k`` continues bit for bit (CPU).
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from pseudosnn import distributed
from pseudosnn.checkpoint import (
    CheckpointError,
    check_state_dict,
    load_checkpoint,
    make_checkpoint,
    nonfinite_tensors,
    save_checkpoint,
    set_rng_state,
)
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.config import ConfigError, check_values
from pseudosnn.data import load_data
from pseudosnn.errors import PseudoSNNError
from pseudosnn.models import UnknownArchitecture, build_model, check_arch
from pseudosnn.models.zoo import resolve_pooling
from pseudosnn.neurons import SpikingNeuron, UnknownNeuronFamily
from pseudosnn.objective import HardwareCost


def noise_prob_at(epoch: int, epochs: int, init_p: float, ratio: float,
                  milestones: list[float]) -> float:
    """The paper's multi-step noise-rate scheduler as a function of the epoch:
    ``1 - init_p * ratio^k`` with ``k = #{m : int(m * epochs) <= epoch, m > 0}``."""
    k = sum(1 for m in milestones if 0 < int(m * epochs) <= epoch)
    return 1.0 - init_p * ratio ** k


def split_params(model: nn.Module) -> tuple[list, list, list]:
    """(timestep logits, conv/linear weights, everything else): weight decay only on the
    second group; the first is frozen during calibration."""
    logits, weights, rest = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, SpikingNeuron) and name == "logit":
                logits.append(p)
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight":
                weights.append(p)
            else:
                rest.append(p)
    return logits, weights, rest


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def timestep_table(model: nn.Module) -> str:
    """Per-layer table: T (mean, and range for per-channel/neuron T), scale, bias."""
    lines = [f"{'layer':<22}{'T':>7}{'T range':>10}{'scale':>9}{'bias':>9}"]
    for name, n in model.neurons():
        t = n.timesteps().float()
        rng = f"{int(t.min())}-{int(t.max())}" if t.numel() > 1 else ""
        scale = float(getattr(n, "scale", torch.tensor(1.0)).detach().mean())
        bias = float(getattr(n, "bias", torch.tensor(0.0)).detach().mean())
        lines.append(f"{name:<22}{t.mean().item():>7.2f}{rng:>10}{scale:>9.3f}{bias:>9.3f}")
    return "\n".join(lines)


def mean_timesteps(model: nn.Module) -> float:
    """Mean over layers of each layer's mean T (integer T, as deployed)."""
    ts = [n.timesteps().float().mean().item() for _, n in model.neurons()]
    return sum(ts) / len(ts) if ts else math.nan


RUN_FILES = ("last.pth", "best.pth")
"""The checkpoints that mark a folder as holding a run."""
RUN_INDEPENDENT_KEYS = ("output_dir", "progress", "threads", "tensorboard", "workers")
"""Config keys that do not change what a run computes (ignored when comparing runs)."""


class TrainingDiverged(PseudoSNNError):
    """The loss or a parameter became NaN or Inf; nothing non-finite was written."""


def describe_run(ckpt: dict[str, Any]) -> str:
    """``cnn_digits, epoch 3 of 17, best test accuracy 96.11%``."""
    cfg = ckpt.get("config") or {}
    total = int(cfg.get("epochs", 0)) + int(cfg.get("calib_epochs", 0))
    return (f"{ckpt['model'].get('arch', '?')}, epoch {int(ckpt.get('epoch', -1)) + 1}"
            f"{f' of {total}' if total else ''}, best test accuracy "
            f"{100 * float(ckpt.get('best_acc', 0.0)):.2f}%")


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``key: a -> b`` for every run-relevant key that differs."""
    keys = sorted((set(a) | set(b)) - set(RUN_INDEPENDENT_KEYS))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


class WithCost(nn.Module):
    """``forward(x) -> (logits, cost)``: the penalty is computed inside ``forward`` (as in
    the paper's code) so that DistributedDataParallel sees every parameter it uses."""

    def __init__(self, model: nn.Module, cost: HardwareCost | None) -> None:
        super().__init__()
        self.model, self._cost = model, cost

    def forward(self, x: torch.Tensor, with_cost: bool = False):
        out = self.model(x)
        return out, (self._cost.cost() if with_cost and self._cost is not None else None)


class Trainer:
    """Runs ``config`` (see :mod:`pseudosnn.config`), writing into ``out_dir``."""

    def __init__(self, config: dict[str, Any], out_dir: str | Path, *,
                 resume: str | Path | None = None, trust_checkpoint: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.cfg = config
        self.out = Path(out_dir)
        self.dist = distributed.setup()
        self.log = log if self.dist.main else (lambda s: None)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if torch.cuda.is_available()
                                   else "cpu")
        self._threads_before = torch.get_num_threads()
        self.cost = None
        if config["threads"]:
            torch.set_num_threads(int(config["threads"]))
        try:
            self._build(config, resume, trust_checkpoint)
        except BaseException:
            self.close()
            raise

    def _build(self, config: dict[str, Any], resume: str | Path | None,
               trust_checkpoint: bool) -> None:
        check_values(config)
        ckpt = load_checkpoint(resume, trusted=trust_checkpoint) if resume is not None \
            else None
        resume, ckpt = self._claim_output(resume, ckpt)
        seed_everything(config["seed"])
        check_arch(config["model"])
        try:
            resolve_pooling(config["model"], config["pooling"])
        except ValueError as e:
            raise ConfigError(str(e)) from e
        self.data = load_data(config["data_type"], config["data_path"],
                              augment=config["augment"], cutout_size=config["cutout"],
                              image_size=config["image_size"])
        try:
            self.model = build_model(config["model"], num_classes=self.data.num_classes,
                                     input_shape=self.data.input_shape,
                                     neuron=config["neuron"],
                                     residual_mode=config["residual_mode"],
                                     pooling=config["pooling"]).to(self.device)
        except UnknownArchitecture:
            raise
        except UnknownNeuronFamily as e:
            raise ConfigError(str(e)) from e
        except (TypeError, ValueError) as e:  # an argument the family does not take/accept
            raise ConfigError(f"neuron config {config['neuron']} does not fit the neuron "
                              f"family: {e}") from e
        self.pseudo = all(hasattr(n, "timesteps_float") for _, n in self.model.neurons())
        if config["penalty"] > 0 and not self.pseudo:
            raise ConfigError("penalty > 0 needs neurons with learnable timesteps (family "
                              "'pseudo'); set --penalty 0 for other families")
        self.cost = HardwareCost.from_config(self.model, config) if self.pseudo else None
        self.initial_mean_T = mean_timesteps(self.model)

        logits, weights, rest = split_params(self.model)
        groups = [{"params": logits, "weight_decay": 0.0,
                   "lr": config["lr"] * config["logit_lr_scale"]},
                  {"params": weights, "weight_decay": config["weight_decay"]},
                  {"params": rest, "weight_decay": 0.0}]
        if config["optimizer"] == "sgd":
            self.opt = torch.optim.SGD(groups, lr=config["lr"], momentum=config["momentum"])
        else:
            self.opt = torch.optim.AdamW(groups, lr=config["lr"])
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.opt, T_max=max(config["epochs"], 1), eta_min=0.0)
        self.use_amp = bool(config["amp"]) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None

        self.net: nn.Module = WithCost(self.model, self.cost)
        if self.dist.enabled:
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.dist.local_rank] if self.device.type == "cuda"
                else None, find_unused_parameters=True)

        self.start_epoch, self.best_acc, self.history = 0, 0.0, []
        self.run_id = uuid.uuid4().hex
        if ckpt is not None:
            self._resume(ckpt, resume)
        self.tb = self._tensorboard() if config["tensorboard"] and self.dist.main else None

    # --- setup helpers ------------------------------------------------------------------
    def _claim_output(self, resume: str | Path | None,
                      ckpt: dict[str, Any] | None) -> tuple[Path | None, dict | None]:
        """Make sure writing into ``out`` replaces no other run's checkpoints. A folder
        holding a run (``last.pth``/``best.pth``) takes only the same run: the one resumed
        (same run id), or, without ``resume``, a run of the same config, which is then
        resumed from its ``last.pth``. Returns the (possibly new) resume path and dict."""
        held_path = next((self.out / n for n in RUN_FILES if (self.out / n).is_file()), None)
        if held_path is None:
            return resume, ckpt
        try:
            held = load_checkpoint(held_path)
        except CheckpointError as e:
            raise ConfigError(f"{self.out} holds {held_path.name}, which cannot be read ({e}); "
                              "move it away or choose another --out") from e
        if ckpt is not None:
            ids = ((ckpt.get("extra") or {}).get("run_id"), (held.get("extra") or {}).get("run_id"))
            same = ids[0] == ids[1] if any(ids) else \
                Path(resume).resolve().parent == self.out.resolve()
            if not same:
                raise ConfigError(f"{self.out} already holds another run ({describe_run(held)}); "
                                  f"resuming {resume} there would replace its checkpoints. "
                                  "Choose another --out")
            return resume, ckpt
        diffs = config_differences(held.get("config") or {}, self.cfg)
        last = self.out / "last.pth"
        if diffs or not last.is_file():
            raise ConfigError(
                f"{self.out} already holds a run ({describe_run(held)}) of another config "
                f"({'; '.join(diffs[:4]) or 'no last.pth'}); training there would replace its "
                f"best.pth. Resume it with --resume {last}, or choose another --out")
        self.log(f"{self.out} holds a run of this config ({describe_run(held)}): resuming it "
                 "(choose another --out for a new run)")
        return last, held if held_path == last else load_checkpoint(last)

    def _resume(self, ckpt: dict[str, Any], path: str | Path) -> None:
        """Continue the run of ``ckpt``: its weights, optimizer, scheduler, RNG and history,
        after checking that they fit this config and hold no NaN or Inf."""
        bad = nonfinite_tensors(ckpt["state_dict"])
        if bad:
            raise CheckpointError(f"{path} holds NaN or Inf values ({', '.join(bad[:3])}): "
                                  "the run had diverged. Resume from an earlier checkpoint "
                                  "(best.pth) with a lower learning rate")
        fix = ("resume it without --config (its own config is used) or with the config it "
               "was trained with")
        arch = ckpt["model"].get("arch")
        if arch != self.cfg["model"]:
            raise ConfigError(f"{path} holds a {arch!r} model, the config asks for "
                              f"{self.cfg['model']!r}: {fix}")
        check_state_dict(self.model.state_dict(), ckpt["state_dict"],
                         f"the configured model {self.cfg['model']!r}", fix)
        self.model.load_state_dict(ckpt["state_dict"])
        trained_with = (ckpt.get("config") or {}).get("optimizer", self.cfg["optimizer"])
        if ckpt.get("optimizer") and trained_with != self.cfg["optimizer"]:
            raise ConfigError(f"{path} holds {trained_with} optimizer state; --optimizer "
                              f"{self.cfg['optimizer']} cannot continue it: resume with "
                              f"--optimizer {trained_with}, or start a new run")
        try:
            if ckpt.get("optimizer"):
                self.opt.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scheduler"):
                self.sched.load_state_dict(ckpt["scheduler"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: its optimizer state does not fit this model and "
                                  f"optimizer ({e}); resume with the run's own config") from e
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_acc = float(ckpt.get("best_acc", 0.0))
        extra = ckpt.get("extra") or {}
        self.history = list(extra.get("history", []))
        self.initial_mean_T = float(extra.get("initial_mean_T", self.initial_mean_T))
        self.run_id = extra.get("run_id") or self.run_id
        self.log(f"resumed from {path} at epoch {self.start_epoch}")

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError("tensorboard: true needs the tensorboard package "
                              "(pip install tensorboard), or set --tensorboard false") from e
        return SummaryWriter(str(self.out / "tb"))

    def _loader(self, dataset, train: bool) -> DataLoader:
        if self.dist.enabled:
            idx = list(range(self.dist.rank, len(dataset), self.dist.world_size))
            dataset = Subset(dataset, idx)
        return DataLoader(dataset, batch_size=self.cfg["batch_size"], shuffle=train,
                          num_workers=self.cfg["workers"], drop_last=False)

    # --- phases ---------------------------------------------------------------------------
    def _set_phase(self, epoch: int) -> bool:
        """Configure neurons and learning rates for ``epoch``; returns ``calibrating``."""
        cfg = self.cfg
        calibrating = epoch >= cfg["epochs"]
        for _, n in self.model.neurons():
            if hasattr(n, "set_epoch"):  # families with their own epoch schedule (ASGL)
                n.set_epoch(epoch, cfg["epochs"])
            if hasattr(n, "calibrating"):
                n.calibrating = calibrating
            if cfg["noise_schedule"] and n.family == "pseudo" and not calibrating:
                n.noise_prob = noise_prob_at(epoch, cfg["epochs"], cfg["noise_init_p"],
                                             cfg["noise_reduce_ratio"], cfg["noise_milestones"])
        if calibrating:
            lrs = (0.0, cfg["calib_lr"], cfg["calib_lr"])
            for g, lr in zip(self.opt.param_groups, lrs, strict=True):
                g["lr"] = lr
        return calibrating

    def _enter_calibration(self) -> None:
        best = self.out / "best.pth"
        if self.cfg["calib_from_best"] and best.is_file():
            self.model.load_state_dict(load_checkpoint(best)["state_dict"])
            self.log("calibration starts from best.pth")

    # --- loops -----------------------------------------------------------------------------
    def train_epoch(self, epoch: int, calibrating: bool) -> dict[str, float]:
        from tqdm import tqdm

        self.net.train()
        loader = self._loader(self.data.train, train=True)
        penalty = 0.0 if calibrating else self.cfg["penalty"]
        total, correct, loss_sum, cost_sum = 0, 0, 0.0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}{' (calib)' if calibrating else ''}",
                   leave=False, disable=not (self.cfg["progress"] and self.dist.main))
        for step, (x, y) in enumerate(bar):
            x, y = x.to(self.device), y.to(self.device)
            out, loss, cost = self._step(x, y, penalty, epoch, step)
            n = y.numel()
            total += n
            correct += int((out.argmax(1) == y).sum())
            loss_sum += loss * n
            cost_sum += cost * n
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{correct / total:.3f}")
        total, correct, loss_sum, cost_sum = distributed.all_reduce_sum(
            [total, correct, loss_sum, cost_sum], self.dist, self.device)
        return {"train_loss": loss_sum / total, "train_acc": correct / total,
                "train_cost": cost_sum / total, "train_samples": int(total)}

    def _step(self, x: torch.Tensor, y: torch.Tensor, penalty: float, epoch: int,
              step: int) -> tuple[torch.Tensor, float, float]:
        """One optimisation step; returns the logits, the loss and the cost. Stops the run
        (:class:`TrainingDiverged`) when the loss or a parameter is no longer finite. The
        check follows the update, so that under DDP every rank sees the same parameters
        and stops at the same step."""
        with torch.autocast(self.device.type, enabled=self.use_amp):
            out, cost = self.net(x, with_cost=penalty > 0)
            loss = F.cross_entropy(out, y)
            total_loss = loss + penalty * cost if cost is not None else loss
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total_loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            total_loss.backward()
        if self.cost is not None:
            self.cost.currents.clear()  # release this step's graph
        if self.cfg["clip_grad_norm"] > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["clip_grad_norm"])
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        value = total_loss.item()
        if not math.isfinite(value):
            self._diverged(epoch, step, f"the loss is {value}")
        if not torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all():
            name = next(k for k, p in self.model.named_parameters() if not torch.isfinite(p).all())
            self._diverged(epoch, step, f"parameter {name} became NaN or Inf")
        return out, loss.item(), 0.0 if cost is None else cost.item()

    def _diverged(self, epoch: int, step: int, what: str) -> None:
        kept = "last.pth keeps the last finite epoch" if (self.out / "last.pth").is_file() \
            else "no checkpoint was written"
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}, step {step}: {what}; stopped before saving "
            f"({kept}). Lower the learning rate (lr {self.cfg['lr']:g}) or the penalty "
            f"({self.cfg['penalty']:g}), or clip gradients (clip_grad_norm)")

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        total, correct, loss_sum = 0, 0, 0.0
        for x, y in self._loader(self.data.test, train=False):
            x, y = x.to(self.device), y.to(self.device)
            out = self.model(x)
            total += y.numel()
            correct += int((out.argmax(1) == y).sum())
            loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
        total, correct, loss_sum = distributed.all_reduce_sum(
            [total, correct, loss_sum], self.dist, self.device)
        return {"test_loss": loss_sum / total, "test_acc": correct / total}

    def _save(self, epoch: int, is_best: bool) -> None:
        if not self.dist.main:
            return
        extra = {"history": self.history, "initial_mean_T": self.initial_mean_T,
                 "run_id": self.run_id}
        ckpt = make_checkpoint(self.model, epoch=epoch, config=self.cfg, optimizer=self.opt,
                               scheduler=self.sched, class_names=self.data.class_names,
                               best_acc=self.best_acc, extra=extra)
        save_checkpoint(ckpt, self.out / "last.pth")
        if is_best:
            save_checkpoint(ckpt, self.out / "best.pth")
        write_atomic(self.out / "history.json", json.dumps(self.history, indent=1))

    def fit(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train from ``start_epoch``; ``stop_after`` ends the run after that epoch (an
        interruption, for tests). Returns a summary."""
        cfg = self.cfg
        last = cfg["epochs"] + cfg["calib_epochs"]
        start = time.perf_counter()
        self.log(f"training {cfg['model']} on {cfg['data_type']} "
                 f"({len(self.data.train)} train / {len(self.data.test)} test) -> {self.out}")
        if self.start_epoch >= last:
            self.log(f"the run in {self.out} is complete ({last} epoch{'s' * (last != 1)}): "
                     "nothing to train")
        for epoch in range(self.start_epoch, last):
            seed_everything(cfg["seed"] * 100_003 + epoch * 1_009 + self.dist.rank)
            if epoch == cfg["epochs"] and cfg["calib_epochs"] > 0:
                distributed.barrier(self.dist)
                self._enter_calibration()
            calibrating = self._set_phase(epoch)
            t0 = time.perf_counter()
            metrics = self.train_epoch(epoch, calibrating)
            if not calibrating:
                self.sched.step()
            metrics.update(self.evaluate())
            metrics.update(epoch=epoch, calibrating=calibrating,
                           mean_T=mean_timesteps(self.model),
                           seconds=time.perf_counter() - t0)
            self.history.append(metrics)
            is_best = metrics["test_acc"] > self.best_acc
            self.best_acc = max(self.best_acc, metrics["test_acc"])
            self.log(f"epoch {epoch}{' (calib)' if calibrating else ''}: "
                     f"loss {metrics['train_loss']:.4f} train {metrics['train_acc']:.4f} "
                     f"test {metrics['test_acc']:.4f} mean T {metrics['mean_T']:.2f} "
                     f"({metrics['seconds']:.1f}s)")
            self.log(timestep_table(self.model))
            if self.tb is not None:
                for k, v in metrics.items():
                    if isinstance(v, float):
                        self.tb.add_scalar(k, v, epoch)
            self._save(epoch, is_best)
            if stop_after is not None and epoch >= stop_after:
                break
        summary = {
            "final_test_acc": self.history[-1]["test_acc"] if self.history else math.nan,
            "best_test_acc": self.best_acc,
            "initial_mean_T": self.initial_mean_T,
            "final_mean_T": mean_timesteps(self.model),
            "seconds": time.perf_counter() - start,
            "epochs_run": len(self.history),
            "world_size": self.dist.world_size,
            "rank_divergence": distributed.param_divergence(self.model, self.dist),
        }
        if self.dist.enabled:
            self.log(f"{self.dist.world_size} processes; largest parameter difference "
                     f"between ranks: {summary['rank_divergence']:.3g}")
        if self.dist.main:
            write_atomic(self.out / "summary.json", json.dumps(summary, indent=1))
        if self.tb is not None:
            self.tb.close()
        return summary

    def close(self) -> None:
        torch.set_num_threads(self._threads_before)
        if self.cost is not None:
            self.cost.remove()
        distributed.teardown(self.dist)


def train(config: dict[str, Any], out_dir: str | Path, *, resume: str | Path | None = None,
          trust_checkpoint: bool = False, stop_after: int | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build a :class:`Trainer` and run it; returns the summary."""
    trainer = Trainer(config, out_dir, resume=resume, trust_checkpoint=trust_checkpoint,
                      log=log)
    try:
        return trainer.fit(stop_after=stop_after)
    finally:
        trainer.close()
