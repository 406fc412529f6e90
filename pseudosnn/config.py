"""Training configuration: YAML files in the spirit of the paper's configs, plus
``--key value`` overrides on the command line (``--neuron.init_T 4`` for nested keys).

Every top-level key must be one of ``DEFAULTS`` (an unknown key is an error naming the
close matches); values are coerced to the type of their default (``1e-2`` is a float
even though YAML reads it as a string). ``neuron`` is the neuron family's constructor
arguments plus ``family``; its keys are checked when the model is built.
"""

from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Any

import yaml

from pseudosnn.errors import UsageError

DEFAULTS: dict[str, Any] = {
    # model and data
    "model": "cnn_digits",
    "data_type": "digits",
    "data_path": None,
    "neuron": {"family": "pseudo", "granularity": "layer", "init_T": 8, "min_T": 1,
               "max_T": 16, "noise_type": "gaussian", "noise_prob": 0.5,
               "noise_scope": "layer", "scale": 1.0, "eval_rule": "rate"},
    "residual_mode": "mean",
    # "default": the paper's (max-pool stems in sew_resnet18/34 and preact_resnet34,
    # average pooling elsewhere); "avg": average pooling there too; "max": spike max
    # pooling also in cnn_digits and the VGGs
    "pooling": "default",
    "augment": True,
    "cutout": 0,
    "image_size": 224,
    # optimisation
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "epochs": 30,
    "clip_grad_norm": 1.0,
    "amp": True,
    "seed": 0,
    "workers": 0,
    # hardware-aware objective: cost paper (FLOPs x T), spike (expected SOPs) or energy (the
    # deployed energy of the spike-aware estimate on a chip: a preset of
    # pseudosnn.simulator.energy, or a chip YAML file that replaces it)
    "penalty": 1e-2,
    "cost": "paper",
    "energy_model": "45nm",
    "chip": None,
    # learning-rate factor of the timestep logits (per-channel/neuron T get 1/C of a layer's
    # penalty gradient each, so with SGD they move slower than per-layer T)
    "logit_lr_scale": 1.0,
    # the paper's multi-step noise-rate scheduler: noise_prob = 1 - init_p * ratio^k after
    # k of the milestones (fractions of the epochs) have passed
    "noise_schedule": True,
    "noise_init_p": 0.8,
    "noise_reduce_ratio": 0.8,
    "noise_milestones": [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875],
    # calibration: T frozen, penalty 0, deployed forward with a straight-through gradient
    "calib_epochs": 0,
    "calib_lr": 1e-3,
    "calib_from_best": True,
    # output
    "output_dir": None,
    "tensorboard": False,
    "progress": True,
    "threads": 0,
}

CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "cost": ("paper", "spike", "energy"),
    "residual_mode": ("mean", "mirror"),
    "pooling": ("default", "max", "avg"),
    "data_type": ("digits", "cifar10", "cifar100", "imagenet", "cifar10_dvs"),
}


RANGES: dict[str, tuple[str, ...]] = {
    "(0, inf)": ("lr",),
    "[0, inf)": ("weight_decay", "clip_grad_norm", "workers", "penalty", "logit_lr_scale",
                 "calib_epochs", "calib_lr", "cutout", "threads"),
    "[1, inf)": ("batch_size", "epochs", "image_size"),
    "[0, 1)": ("momentum",),
    "[0, 1]": ("noise_init_p", "noise_reduce_ratio"),
}
"""Allowed values of the numeric keys, by interval (a bracket includes its end, a
parenthesis excludes it). Every value must also be finite."""


class ConfigError(UsageError):
    """A configuration problem: unknown key, bad value or unreadable file (exit code 2)."""


def _in_range(value: float, interval: str) -> bool:
    low, high = (float(v) for v in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    below = value < high if interval[-1] == ")" else value <= high
    return math.isfinite(value) and above and below


def check_values(config: dict[str, Any]) -> None:
    """Refuse a value outside :data:`RANGES` (NaN and Inf included), naming the key."""
    for interval, keys in RANGES.items():
        for key in keys:
            if not _in_range(float(config[key]), interval):
                raise ConfigError(f"{key} must be in {interval}, got {config[key]}")
    for m in config["noise_milestones"]:
        if not _in_range(float(m), "[0, 1]"):
            raise ConfigError(f"noise_milestones are fractions of the epochs in [0, 1], got {m}")


def _unknown(key: str, known) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}")


def _parse_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}")


def coerce(key: str, value: Any, default: Any) -> Any:
    """Convert ``value`` to the type of ``default`` (strings from YAML or the CLI)."""
    if value is None or default is None:
        return _yaml_scalar(value) if isinstance(value, str) else value
    try:
        if isinstance(default, bool):
            return _parse_bool(value, key)
        if isinstance(default, int):
            f = float(value)
            if f != int(f):
                raise ValueError
            return int(f)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            v = yaml.safe_load(value) if isinstance(value, str) else value
            if not isinstance(v, list):
                raise ValueError
            return [float(x) if isinstance(default[0], float) else x for x in v] \
                if default else v
        if isinstance(default, str):
            return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        kind = {bool: "true or false", int: "an integer", float: "a number",
                list: "a list"}.get(type(default), type(default).__name__)
        raise ConfigError(f"{key} must be {kind}, got {value!r}") from None
    return value


def _yaml_scalar(text: str | None) -> Any:
    if text is None:
        return None
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(v, str):
        try:
            return float(v) if any(c in v for c in ".eE") else int(v)
        except ValueError:
            return v
    return v


def merge(config: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``config`` updated with ``updates`` (checked and coerced); nested ``neuron`` keys
    may be given as ``neuron.key``."""
    out = copy.deepcopy(config)
    for key, value in updates.items():
        key = key.replace("-", "_") if key not in DEFAULTS else key
        if key.startswith("neuron."):
            sub = key.split(".", 1)[1]
            ref = DEFAULTS["neuron"].get(sub, out["neuron"].get(sub))
            out["neuron"][sub] = coerce(key, value, ref) if ref is not None \
                else _yaml_scalar(value) if isinstance(value, str) else value
            continue
        if key not in DEFAULTS:
            raise _unknown(key, DEFAULTS)
        if key == "neuron":
            if not isinstance(value, dict):
                raise ConfigError(f"neuron must be a mapping of neuron arguments, got {value!r}")
            family = value.get("family", out["neuron"].get("family", "pseudo"))
            base = out["neuron"] if family == out["neuron"].get("family") else {"family": family}
            merged = dict(base)
            for k, v in value.items():
                ref = DEFAULTS["neuron"].get(k) if family == "pseudo" else None
                merged[k] = coerce(f"neuron.{k}", v, ref) if ref is not None else v
            out["neuron"] = merged
            continue
        out[key] = coerce(key, value, DEFAULTS[key])
        if key in CHOICES and out[key] not in CHOICES[key]:
            raise ConfigError(f"{key}={out[key]!r} is not one of {', '.join(CHOICES[key])}")
        if key == "energy_model":
            from pseudosnn.simulator.energy import PRESETS

            if out[key] not in PRESETS:
                raise ConfigError(f"energy_model={out[key]!r} is not one of "
                                  f"{', '.join(PRESETS)} (a chip of your own: chip: PATH)")
    return out


def load_config(path: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``DEFAULTS`` updated by the YAML file at ``path`` and then by ``overrides``."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of keys to values")
        config = merge(config, data)
    return merge(config, overrides or {})


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``["--lr", "0.1", "--epochs=3"]`` -> ``{"lr": "0.1", "epochs": "3"}``."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or a == "--":
            raise ConfigError(f"unexpected argument {a!r}: overrides are --key value pairs")
        key = a[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(args):
            value = args[i + 1]
            i += 2
        else:
            raise ConfigError(f"override --{key} has no value")
        out[key] = value
    return out
