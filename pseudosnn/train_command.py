"""``pseudosnn train``: train a model from a YAML config with ``--key value`` overrides."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pseudosnn.cli_base import Command

EPILOG = """\b
Examples:
  pseudosnn train --config configs/digits/cnn.yaml
  pseudosnn train --config configs/digits/cnn.yaml --epochs 5 --penalty 0 --neuron.init_T 4
  pseudosnn train --resume runs/digits-cnn/last.pth
  torchrun --nproc_per_node 2 -m pseudosnn.cli train --config configs/digits/mlp.yaml
"""


@click.command(
    "train", cls=Command, epilog=EPILOG,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                      "help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML config (see configs/); keys not given take pseudosnn.config.DEFAULTS.")
@click.option("--resume", type=click.Path(dir_okay=False),
              help="Continue an interrupted run from its last.pth (uses the checkpoint's "
                   "config unless --config is given).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder for last.pth, best.pth, history.json, summary.json "
                   "[default: output_dir of the config, else runs/<config name>].")
@click.option("--trust-checkpoint", is_flag=True,
              help="Allow --resume to unpickle a checkpoint that is not weights-only "
                   "(only for files you trust: unpickling can run code).")
@click.pass_context
def train(ctx: click.Context, config_path: str | None, resume: str | None, out_dir: str | None,
          trust_checkpoint: bool) -> None:
    """Train a PseudoSNN (or another neuron family) on a data set from a local path.

    Any config key can be overridden with --key value (nested neuron arguments with
    --neuron.key value), e.g. --epochs 5 --lr 0.05 --neuron.granularity channel.
    """
    from pseudosnn.checkpoint import load_checkpoint
    from pseudosnn.config import ConfigError, load_config, merge, parse_overrides

    overrides = parse_overrides(list(ctx.args))
    if config_path is None and resume is None:
        raise ConfigError("give --config CONFIG.yaml (or --resume PATH)")
    if config_path is None:
        base = load_checkpoint(resume, trusted=trust_checkpoint).get("config") or {}
        config = merge(load_config(), base)
        config = merge(config, overrides)
    else:
        config = load_config(config_path, overrides)
    if out_dir is None:
        if config["output_dir"]:
            out_dir = config["output_dir"]
        elif resume is not None:
            out_dir = str(Path(resume).parent)
        else:
            stem = Path(config_path).with_suffix("")
            out_dir = str(Path("runs") / f"{stem.parent.name}-{stem.name}")
    from pseudosnn.trainer import train as run

    summary = run(config, out_dir, resume=resume, trust_checkpoint=trust_checkpoint,
                  log=click.echo)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: only rank 0 reports
        return
    click.echo(f"done: best test accuracy {summary['best_test_acc']:.4f}, final "
               f"{summary['final_test_acc']:.4f}; mean T {summary['initial_mean_T']:.2f} -> "
               f"{summary['final_mean_T']:.2f}; {summary['seconds']:.1f}s; outputs in {out_dir}")
