"""End to end on the bundled 8x8 digits: train a PseudoSNN model and two BPTT baselines
(vanilla IF and LIF), compile them, simulate them (and price PseudoSNN and IF on every
energy preset), run the PseudoSNN model on Lava (float and fixed point), check the
training-time energy estimate against deployed counts and energy, and write
``OUT/report.md`` with plots.

Every step is the public CLI, printed before it runs, so each line can be copied; the
full output of each step goes to ``OUT/logs/``. Run with ``make demo`` (it creates both
venvs) or ``.venv/bin/python examples/demo.py --out demo_output``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pseudosnn.cli"]


def step(i: int, n: int, title: str, args: list[str], log: Path) -> None:
    """Run one CLI step, logging its output; stop the demo with the log tail on failure."""
    shown = " ".join(shlex.quote(a) for a in ["pseudosnn", *args])
    print(f"[{i}/{n}] {title}\n      $ {shown}", flush=True)
    t0 = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        proc = subprocess.run([*CLI, *args], stdout=f, stderr=subprocess.STDOUT, cwd=REPO,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        sys.exit(f"step {i} failed after {dt:.1f}s (exit {proc.returncode}); log {log}:\n"
                 + "\n".join(tail))
    print(f"      done in {dt:.1f}s (log: {log.relative_to(log.parents[1])})", flush=True)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


PRESETS = ("compute-only", "45nm", "lemaire", "loihi")  # 45nm: the default, in simulate/


def energy_section(out: Path) -> list[str]:
    """Energy per sample on every preset, by term, against the full-precision and the
    quantised ANN (no data reuse, and the maximal-reuse bound); where the SNN does not win."""
    lines = ["## Energy on every preset (README: How energy is counted)", "",
             "| model | preset | SNN nJ | compute / memory / addressing / routing | ANN nJ "
             "| SNN/ANN | QNN nJ | SNN/QNN | SNN/QNN, max reuse |", "|---|---|---|---|---|---|"
             "---|---|---|"]
    losses = []
    for name in ("pseudosnn-cnn", "vanilla-cnn"):
        for preset in PRESETS:
            folder = "simulate" if preset == "45nm" else f"simulate/{preset}"
            rep = load(out / f"{folder}/{name}.json")
            t, v = rep["totals"], rep["ann"]["variants"]
            terms = " / ".join(f"{e / 1e3:.3g}" for e in t["energy_by_term_pj"].values())
            ratios = {k: v[k]["snn_over_ann"] for k in ("full", "quantised",
                                                         "quantised_max_reuse")}
            nj = {k: v[k]["energy_pj_per_sample"] / 1e3 for k in ("full", "quantised")}
            lines.append(f"| {name} | {preset} | {t['energy_pj_per_sample'] / 1e3:.4g} | {terms} "
                         f"| {nj['full']:.4g} | {ratios['full']:.3g} | {nj['quantised']:.4g} | "
                         f"{ratios['quantised']:.3g} | {ratios['quantised_max_reuse']:.3g} |")
            lost = [k.replace("_", " ") for k, r in ratios.items() if r >= 1]
            if lost:
                losses.append(f"{name} on {preset} (against the {', '.join(lost)} ANN)")
    return [*lines, "", "SNN/ANN < 1: the SNN uses less energy. **Where the SNN does not win:** "
            + ("; ".join(losses) or "nowhere") + ".", "",
            "![energy](simulate/pseudosnn-cnn_energy.png)", "",
            "![break-even](simulate/pseudosnn-cnn_break_even.png)", ""]


def write_report(out: Path, lava_samples: int) -> Path:
    """Assemble ``report.md`` from the JSON every step wrote."""
    pseudo_train = load(out / "runs/pseudosnn-cnn/summary.json")
    baselines = {f"vanilla {f.upper()} CNN (BPTT, fixed T)": load(out / f"runs/{n}/summary.json")
                 for f, n in (("if", "vanilla-cnn"), ("lif", "lif-cnn"))}
    sim = {name: load(out / f"simulate/{name}.json")
           for name in ("pseudosnn-cnn", "vanilla-cnn", "lif-cnn")}
    lava = {mode: load(out / f"lava_{mode}.json") for mode in ("float", "fixed")}
    check = load(out / "energy/energy_check.json")
    lines = [
        "# PseudoSNN demo report (8x8 digits, 360 test images)", "",
        "## Training", "",
        "| model | test accuracy | mean T (start -> end) | seconds |", "|---|---|---|---|",
        f"| PseudoSNN CNN (learned T) | {pct(pseudo_train['final_test_acc'])} | "
        f"{pseudo_train['initial_mean_T']:.2f} -> {pseudo_train['final_mean_T']:.2f} | "
        f"{pseudo_train['seconds']:.1f} |",
        *(f"| {name} | {pct(t['final_test_acc'])} | {t['initial_mean_T']:.2f} -> "
          f"{t['final_mean_T']:.2f} | {t['seconds']:.1f} |" for name, t in baselines.items()),
        "",
        "## Deployed (cycle-accurate simulator, float)", "",
        "| model | accuracy | latency (steps) | spikes / sample | SOPs / sample | "
        "energy / sample | quantised ANN, same chip |", "|---|---|---|---|---|---|---|",
    ]
    for name, rep in sim.items():
        t = rep["totals"]
        lines.append(
            f"| {name} | {pct(rep['accuracy'])} | {rep['latency_steps']} | "
            f"{t['spikes_per_sample']:.0f} | {t['sops_per_sample']:.0f} | "
            f"{t['energy_pj_per_sample'] / 1e3:.1f} nJ | "
            f"{rep['ann']['variants']['quantised']['energy_pj_per_sample'] / 1e3:.1f} nJ |")
    lines += ["", f"Energy model: {sim['pseudosnn-cnn']['energy_model']['name']} "
              f"({sim['pseudosnn-cnn']['energy_model']['source']}); the quantised ANN is the "
              "trained network with ceil(log2(T+1))-bit activations on the same chip.", "",
              "Per-layer T, firing rates, SOPs and energy of the PseudoSNN model:", "",
              "![layers](simulate/pseudosnn-cnn_layers.png)", "",
              "![raster](simulate/pseudosnn-cnn_raster.png)", "",
              "![accuracy vs energy](simulate/accuracy_vs_energy.png)", "",
              *energy_section(out)]
    lines += [
              f"## Lava (lava-nc 0.10.0), first {lava_samples} test images", "",
              "| mode | accuracy | latency (steps) | s / sample | agrees with simulator |",
              "|---|---|---|---|---|"]
    for mode, rep in lava.items():
        agree = rep.get("agreement_with_simulator", {})
        verdict = "yes (spike counts, SOPs, readouts)" if agree and all(agree.values()) \
            else f"NO: {agree}"
        lines.append(f"| {mode} | {pct(rep.get('accuracy'))} | {rep['latency_steps']} | "
                     f"{rep['seconds_per_sample']:.2f} | {verdict} |")
    c = check["check"]["totals"]
    lines += ["", "## Energy check: training-time estimates vs deployed SOPs and energy", "",
              "Paper: FLOPs x T (every input fires every step). Spike-aware: T*clip(c, 0, 1) "
              "expected spikes from the calibration-phase training forward. Calibrated: the "
              "same forward's quantised counts (in torch). Energy: each layer's spikes and "
              f"updates on the {check['check']['energy_model']} chip, memory included, priced "
              "in training as deployed.", "",
              "| layer | T | deployed SOPs | paper | error | spike-aware | error | calibrated "
              "| error | deployed nJ | spike-aware nJ | error | calibrated error |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in check["check"]["layers"] + [{"layer": "**total**", "T": None, **c}]:
        t = "" if r["T"] is None else f"{r['T']:.0f}"
        lines.append(f"| {r['layer']} | {t} | {r['deployed_sops']:.0f} | {r['paper_sops']:.0f}"
                     f" | {100 * r['paper_rel_err']:+.1f}% | {r['spike_sops']:.0f} | "
                     f"{100 * r['spike_rel_err']:+.1f}% | {r['calibrated_sops']:.0f} | "
                     f"{100 * r['calibrated_rel_err']:+.2f}% | "
                     f"{r['deployed_energy_pj'] / 1e3:.4g} | {r['spike_energy_pj'] / 1e3:.4g} | "
                     f"{100 * r['spike_energy_rel_err']:+.1f}% | "
                     f"{100 * r['calibrated_energy_rel_err']:+.2f}% |")
    fx = check.get("fixed_point", {})
    lines += ["", "![energy check](energy/energy_check.png)", "",
              f"Accuracy: torch eval {pct(check.get('torch_eval_accuracy'))}, deployed float "
              f"{pct(check['deployed']['accuracy'])}, deployed fixed point "
              f"{pct(fx.get('accuracy'))}.", ""]
    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "demo_output")
    ap.add_argument("--lava-samples", type=int, default=20,
                    help="test images run on Lava (Lava steps are slow: ~seconds each)")
    args = ap.parse_args()
    out = args.out.resolve()
    logs = out / "logs"
    if (out / "runs").is_dir():  # the demo's own earlier runs: train afresh, not resume
        print(f"removing the runs of an earlier demo in {out / 'runs'}")
        shutil.rmtree(out / "runs")
    n = 14
    t0 = time.perf_counter()
    step(1, n, "train PseudoSNN CNN (heterogeneous learned T)",
         ["train", "--config", "configs/digits/cnn.yaml", "--progress", "false", "--out",
          str(out / "runs/pseudosnn-cnn")],
         logs / "1_train_pseudosnn.log")
    step(2, n, "train vanilla IF CNN baseline (BPTT, T=4)",
         ["train", "--config", "configs/digits/if_cnn.yaml", "--progress", "false", "--out",
          str(out / "runs/vanilla-cnn")], logs / "2_train_vanilla.log")
    step(3, n, "train LIF CNN baseline (BPTT, tau 2, T=4: deployed with leak dv = 1/2)",
         ["train", "--config", "configs/digits/lif_cnn.yaml", "--progress", "false", "--out",
          str(out / "runs/lif-cnn")], logs / "3_train_lif.log")
    step(4, n, "compile PseudoSNN for Lava (float), checking every pass",
         ["compile", str(out / "runs/pseudosnn-cnn/last.pth"), "--target", "lava", "--verify",
          "-o", str(out / "build/pseudosnn-cnn")], logs / "4_compile.log")
    step(5, n, "compile PseudoSNN for Lava (fixed point: int8 weights, 24-bit membrane)",
         ["compile", str(out / "runs/pseudosnn-cnn/last.pth"), "--target", "lava",
          "--fixed-point", "-o", str(out / "build/pseudosnn-cnn-fixed")],
         logs / "5_compile_fixed.log")
    for i, name in ((6, "vanilla-cnn"), (7, "lif-cnn")):
        step(i, n, f"compile the {name.split('-')[0]} baseline",
             ["compile", str(out / f"runs/{name}/last.pth"), "-o", str(out / f"build/{name}")],
             logs / f"{i}_compile_{name}.log")
    step(8, n, "simulate all three on the digits test set (spikes, SOPs, latency, energy)",
         ["simulate", str(out / "build/pseudosnn-cnn"), str(out / "build/vanilla-cnn"),
          str(out / "build/lif-cnn"), "--data", "digits", "--report", str(out / "simulate"),
          "--quiet"], logs / "8_simulate.log")
    others = [p for p in PRESETS if p != "45nm"]
    for i, preset in enumerate(others, start=9):
        step(i, n, f"price both deployed networks on the {preset} energy preset",
             ["simulate", str(out / "build/pseudosnn-cnn"), str(out / "build/vanilla-cnn"),
              "--data", "digits", "--energy-model", preset, "--report",
              str(out / f"simulate/{preset}"), "--quiet"], logs / f"{i}_simulate_{preset}.log")
    for i, mode in ((12, "float"), (13, "fixed")):
        art = out / ("build/pseudosnn-cnn" if mode == "float" else "build/pseudosnn-cnn-fixed")
        extra = ["--fixed-point"] if mode == "fixed" else []
        step(i, n, f"run PseudoSNN on Lava ({mode}) and compare with the simulator",
             ["run", str(art), "--target", "lava", "--samples", str(args.lava_samples),
              "--check", "--out", str(out / f"lava_{mode}.json"), *extra],
             logs / f"{i}_lava_{mode}.log")
    step(14, n, "energy check: training-time estimates vs deployed counts and energy",
         ["energy-check", str(out / "runs/pseudosnn-cnn/last.pth"), "--data", "digits",
          "--fixed-point", "--baseline", str(out / "runs/vanilla-cnn/last.pth"),
          "--report", str(out / "energy"), "--quiet"], logs / "14_energy_check.log")
    report = write_report(out, args.lava_samples)
    print(f"\nall steps done in {time.perf_counter() - t0:.0f}s; report: {report}\n")
    print((logs / "14_energy_check.log").read_text())


if __name__ == "__main__":
    main()
