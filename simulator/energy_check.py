"""Energy check: training-time estimates against the deployed network's measured counts.

Rows are keyed by *source population* (the neuron layer whose spikes are counted), since
a synaptic operation is caused by a spike of its source. Per sample, for population ``k``
with timesteps ``T_k``:

* (a) paper-implied SOPs: ``FLOPs_k * T_k`` — the paper's cost before normalisation, i.e.
  every input neuron firing at every one of its ``T_k`` steps (FLOPs counted as the paper
  does, padded taps included);
* (b) spike-aware estimate: ``sum_i fanout_i * T_i * clip(c_i/theta, 0, 1)`` — expected
  spike counts (the PseudoSN noise model: quantisation error of zero mean) from the
  training-mode forward that ends the paper's recipe (the calibration phase) times
  structural fan-out; it differs from (c) by each layer's own rounding;
* (b') calibrated: the same forward's quantised counts
  ``n_i = clamp(floor(T_i*c_i + 1/2), 0, T_i)`` computed in torch: equal to (c) up to
  float32 ties, unless deployment changed the network;
* (c) deployed: ``sum_i fanout_i * n_i`` measured by the simulator (ground truth).

Relative error ``(estimate - deployed) / deployed``; a row is flagged when its magnitude
exceeds ``tolerance``. Energy is ``E_sop * SOPs`` per row plus ``E_mac * MACs`` of the
encoder (which both estimates and the deployment share).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

from pseudosnn.simulator.energy import EnergyModel

DEFAULT_TOLERANCE = 0.05
ESTIMATES = ("paper", "spike", "calibrated")


def relative_error(estimate: float, truth: float) -> float:
    """``(estimate - truth) / truth``; 0 when both are 0, ``inf`` when only truth is 0."""
    if truth == 0:
        return 0.0 if estimate == 0 else math.inf
    return (estimate - truth) / truth


def deployed_by_source(report: dict) -> dict[str, dict[str, float]]:
    """Per source population: deployed SOPs its spikes cause (through its spike pools too)
    and spikes per sample, from a simulator report."""
    return {layer["layer"]: {"sops": layer["sops_out_per_sample"],
                             "spikes": layer["spikes_per_sample"], "T": layer["T_mean"]}
            for layer in report["layers"] if layer["kind"] == "population"}


def compare(
    estimates: dict[str, dict[str, float]], report: dict, model: EnergyModel,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict:
    """Put the estimates (per population: ``flops``, ``timesteps``, ``expected_spikes``,
    ``expected_sops`` and optionally ``calibrated_sops``, per sample) beside the deployed
    counts of ``report``."""
    deployed = deployed_by_source(report)
    missing = sorted(set(deployed) ^ set(estimates))
    if missing:
        raise ValueError(
            f"training-time layers and deployed populations differ: {missing}; the "
            "artifact must be compiled from this model")
    rows = []
    tot = defaultdict(float)
    for name, dep in deployed.items():
        est = estimates[name]
        paper = est["flops"] * est["timesteps"]
        spike = est["expected_sops"]
        row = {
            "layer": name, "T": dep["T"],
            "deployed_spikes": dep["spikes"], "expected_spikes": est["expected_spikes"],
            "deployed_sops": dep["sops"], "paper_sops": paper, "spike_sops": spike,
            "paper_rel_err": relative_error(paper, dep["sops"]),
            "spike_rel_err": relative_error(spike, dep["sops"]),
            "deployed_energy_pj": model.sop_pj * dep["sops"],
            "paper_energy_pj": model.sop_pj * paper,
            "spike_energy_pj": model.sop_pj * spike,
        }
        if "calibrated_sops" in est:
            row["calibrated_sops"] = est["calibrated_sops"]
            row["calibrated_rel_err"] = relative_error(est["calibrated_sops"], dep["sops"])
        for kind in ESTIMATES:
            if f"{kind}_rel_err" in row:
                row[f"{kind}_flag"] = abs(row[f"{kind}_rel_err"]) > tolerance
        for k in ("deployed_spikes", "expected_spikes", "deployed_sops", "paper_sops",
                  "spike_sops", "calibrated_sops"):
            if k in row:
                tot[k] += row[k]
        rows.append(row)
    encoder_macs = report["totals"]["encoder_macs_per_sample"]
    enc_pj = model.mac_pj * encoder_macs
    totals = dict(tot)
    totals.update(
        paper_rel_err=relative_error(tot["paper_sops"], tot["deployed_sops"]),
        spike_rel_err=relative_error(tot["spike_sops"], tot["deployed_sops"]),
        encoder_macs=encoder_macs,
        deployed_energy_pj=model.sop_pj * tot["deployed_sops"] + enc_pj,
        paper_energy_pj=model.sop_pj * tot["paper_sops"] + enc_pj,
        spike_energy_pj=model.sop_pj * tot["spike_sops"] + enc_pj,
    )
    if "calibrated_sops" in tot:
        totals["calibrated_rel_err"] = relative_error(tot["calibrated_sops"],
                                                      tot["deployed_sops"])
    for kind in ESTIMATES:
        if f"{kind}_rel_err" in totals:
            totals[f"{kind}_flag"] = abs(totals[f"{kind}_rel_err"]) > tolerance
    flagged = [r["layer"] for r in rows if any(r.get(f"{k}_flag") for k in ESTIMATES)]
    return {"energy_model": model.name, "tolerance": tolerance, "layers": rows,
            "totals": totals, "flagged": flagged}


def _pct(v: float) -> str:
    return "inf" if math.isinf(v) else f"{100 * v:+.1f}%"


def format_table(check: dict) -> str:
    """Plain-text table: per layer and in total, SOPs per sample and relative errors."""
    kinds = [k for k in ESTIMATES if f"{k}_rel_err" in check["totals"]]
    titles = {"paper": "paper est.", "spike": "spike-aware", "calibrated": "calibrated"}
    head = f"{'layer':<20}{'T':>6}{'deployed SOPs':>15}" + "".join(
        f"{titles[k]:>14}{'err':>9}" for k in kinds) + "  flag"
    lines = [head, "-" * len(head)]

    def line(name, T, r):
        flags = " ".join(k for k in kinds if r.get(f"{k}_flag"))
        t = f"{T:6.2f}" if T is not None else " " * 6
        lines.append(f"{name:<20}{t}{r['deployed_sops']:>15.1f}" + "".join(
            f"{r[f'{k}_sops']:>14.1f}{_pct(r[f'{k}_rel_err']):>9}" for k in kinds)
            + f"  {flags}")

    for r in check["layers"]:
        line(r["layer"], r["T"], r)
    lines.append("-" * len(head))
    line("total", None, check["totals"])
    t = check["totals"]
    lines.append(f"energy per sample ({check['energy_model']}): deployed "
                 f"{t['deployed_energy_pj'] / 1e3:.2f} nJ, paper estimate "
                 f"{t['paper_energy_pj'] / 1e3:.2f} nJ, spike-aware estimate "
                 f"{t['spike_energy_pj'] / 1e3:.2f} nJ (encoder MACs included)")
    per_kind = [f"{titles[k]}: " + (", ".join(r["layer"] for r in check["layers"]
                                              if r.get(f"{k}_flag")) or "none")
                for k in kinds]
    lines.append(f"layers off by more than {100 * check['tolerance']:.0f}%: "
                 + "; ".join(per_kind))
    return "\n".join(lines)


def to_csv(check: dict) -> str:
    buf = io.StringIO()
    keys = list(check["layers"][0]) if check["layers"] else ["layer"]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in check["layers"]:
        w.writerow(r)
    w.writerow({"layer": "total", **{k: v for k, v in check["totals"].items() if k in keys}})
    return buf.getvalue()


def compare_deployments(reports: dict[str, dict]) -> list[dict]:
    """Side by side from deployed counts: accuracy, latency, SOPs, spikes, energy."""
    rows = []
    for name, rep in reports.items():
        t = rep["totals"]
        rows.append({"model": name, "accuracy": rep["accuracy"],
                     "latency_steps": rep["latency_steps"],
                     "mean_T": _mean_T(rep),
                     "spikes_per_sample": t["spikes_per_sample"],
                     "sops_per_sample": t["sops_per_sample"],
                     "encoder_macs_per_sample": t["encoder_macs_per_sample"],
                     "energy_nj_per_sample": t["energy_pj_per_sample"] / 1e3,
                     "ann_energy_nj_per_sample": None if rep["ann"] is None
                     else rep["ann"]["energy_pj_per_sample"] / 1e3})
    return rows


def _mean_T(rep: dict) -> float:
    pops = [r for r in rep["layers"] if r["kind"] == "population"]
    return sum(r["T_mean"] for r in pops) / max(len(pops), 1)


def format_deployments(rows: list[dict]) -> str:
    head = (f"{'model':<18}{'accuracy':>9}{'latency':>9}{'mean T':>8}{'spikes':>10}"
            f"{'SOPs':>12}{'energy nJ':>11}{'ANN nJ':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
        lines.append(f"{r['model']:<18}{acc:>9}{r['latency_steps']:>9d}{r['mean_T']:>8.2f}"
                     f"{r['spikes_per_sample']:>10.1f}{r['sops_per_sample']:>12.1f}"
                     f"{r['energy_nj_per_sample']:>11.2f}" + ("        -"
                     if r["ann_energy_nj_per_sample"] is None
                     else f"{r['ann_energy_nj_per_sample']:>9.2f}"))
    return "\n".join(lines)


def plot_check(check: dict, path: Path) -> Path:
    """Grouped bars per layer: deployed SOPs, paper-implied and spike-aware estimates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from pseudosnn.compiler.atomic import write_atomic

    rows = check["layers"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 3), 4))
    series = [("deployed_sops", "deployed (simulator)"), ("spike_sops", "spike-aware estimate"),
              ("calibrated_sops", "calibrated estimate"), ("paper_sops", "paper estimate")]
    series = [(k, label) for k, label in series if rows and k in rows[0]]
    width = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [r[key] for r in rows], width,
               label=label)
    ax.set_yscale("log")
    ax.set_xticks(x, [r["layer"] for r in rows], rotation=45, ha="right")
    ax.set_ylabel("synaptic operations per sample")
    t = check["totals"]
    ax.set_title(f"training-time estimates vs deployed SOPs\ntotal error: spike-aware "
                 f"{_pct(t['spike_rel_err'])}, paper {_pct(t['paper_rel_err'])}", fontsize=10)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
