"""Energy check: training-time estimates against the deployed network's measured counts
and energy.

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

Energy (the chip of the simulator report, memory included): the deployed energy of
population ``k``'s spikes and updates is ``Σ_p SOPs_p·price_sop(target_p) + spikes_k·
(price_spike(k) + Σ_p price_event(target_p)) + updates_k·price_update(k)`` over its
outgoing projections ``p``, with the unit prices of the report's layers; the estimates
(b), (b') price their expected counts the same way in training
(:func:`pseudosnn.objective.spike_prices`). The total adds what no estimate predicts (the
encoder, idle updates) to both sides.

Relative error ``(estimate - deployed) / deployed``; a row is flagged when the magnitude
of an SOP or energy error exceeds ``tolerance``.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

DEFAULT_TOLERANCE = 0.05
ESTIMATES = ("paper", "spike", "calibrated")
ENERGY_ESTIMATES = ("spike", "calibrated")


def relative_error(estimate: float, truth: float) -> float:
    """``(estimate - truth) / truth``; 0 when both are 0, ``inf`` when only truth is 0."""
    if truth == 0:
        return 0.0 if estimate == 0 else math.inf
    return (estimate - truth) / truth


def deployed_by_source(report: dict) -> dict[str, dict[str, float]]:
    """Per source population, per sample: deployed SOPs its spikes cause (through its spike
    pools too), spikes, T and the energy of its spikes and updates (module docstring), from
    a simulator report."""
    layers = {r["layer"]: r for r in report["layers"]}
    rows = {}
    for r in report["layers"]:
        if r["kind"] == "population":
            p = r["prices_pj"]
            rows[r["layer"]] = {"sops": 0.0, "spikes": r["spikes_per_sample"], "T": r["T_mean"],
                                "energy_pj": r["spikes_per_sample"] * p["spike"]
                                + r["active_updates_per_sample"] * p["update"]}
    for pr in report["projections"]:
        if pr["source"] == "input":
            continue
        row, p = rows[pr["source_population"]], layers[pr["target"]]["prices_pj"]
        row["sops"] += pr["sops_per_sample"]
        row["energy_pj"] += pr["sops_per_sample"] * p["sop"] \
            + row["spikes"] * p["conv_event" if pr["kind"] == "conv" else "event"]
    return rows


def _row(name: str, dep: dict, est: dict, tolerance: float) -> dict:
    """One layer: deployed counts and energy beside the estimates, errors and flags."""
    row = {"layer": name, "T": dep["T"], "deployed_spikes": dep["spikes"],
           "expected_spikes": est["expected_spikes"], "deployed_sops": dep["sops"],
           "paper_sops": est["flops"] * est["timesteps"], "spike_sops": est["expected_sops"],
           "deployed_energy_pj": dep["energy_pj"]}
    if "calibrated_sops" in est:
        row["calibrated_sops"] = est["calibrated_sops"]
    for kind in ENERGY_ESTIMATES:
        key = "expected_energy_pj" if kind == "spike" else f"{kind}_energy_pj"
        if est.get(key) is not None and not math.isnan(est[key]):
            row[f"{kind}_energy_pj"] = est[key]
    _errors(row, tolerance)
    return row


def _errors(row: dict, tolerance: float) -> None:
    """Relative errors and flags of every estimate present in ``row`` (SOPs and energy)."""
    for kind in ESTIMATES:
        if f"{kind}_sops" in row:
            row[f"{kind}_rel_err"] = relative_error(row[f"{kind}_sops"], row["deployed_sops"])
            row[f"{kind}_flag"] = abs(row[f"{kind}_rel_err"]) > tolerance
        if f"{kind}_energy_pj" in row:
            err = relative_error(row[f"{kind}_energy_pj"], row["deployed_energy_pj"])
            row[f"{kind}_energy_rel_err"] = err
            row[f"{kind}_energy_flag"] = abs(err) > tolerance


def compare(estimates: dict[str, dict[str, float]], report: dict,
            tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Put the estimates (per population: ``flops``, ``timesteps``, ``expected_spikes``,
    ``expected_sops``, optionally ``calibrated_sops``, ``expected_energy_pj``,
    ``calibrated_energy_pj``, per sample) beside the deployed counts of ``report``."""
    deployed = deployed_by_source(report)
    missing = sorted(set(deployed) ^ set(estimates))
    if missing:
        raise ValueError(
            f"training-time layers and deployed populations differ: {missing}; the "
            "artifact must be compiled from this model")
    rows = [_row(name, dep, estimates[name], tolerance) for name, dep in deployed.items()]
    tot: dict[str, float] = defaultdict(float)
    for row in rows:
        for k, v in row.items():
            if k.endswith(("_sops", "_spikes", "_energy_pj")):
                tot[k] += v
    # what no estimate predicts (encoder, idle updates, ...) is added to every side
    rest = report["totals"]["energy_pj_per_sample"] - tot["deployed_energy_pj"]
    for k in [k for k in tot if k.endswith("_energy_pj")]:
        tot[k] += rest
    totals = dict(tot, encoder_macs=report["totals"]["encoder_macs_per_sample"])
    _errors(totals, tolerance)
    flagged = [r["layer"] for r in rows if any(v for k, v in r.items() if k.endswith("_flag"))]
    return {"energy_model": report["energy_model"]["name"], "tolerance": tolerance,
            "layers": rows, "totals": totals, "flagged": flagged}


def _pct(v: float) -> str:
    return "inf" if math.isinf(v) else f"{100 * v:+.1f}%"


TITLES = {"paper": "paper est.", "spike": "spike-aware", "calibrated": "calibrated"}


def format_table(check: dict) -> str:
    """Plain-text tables: per layer and in total, SOPs per sample and their relative errors,
    then the energy of each layer's spikes and updates and its errors."""
    kinds = [k for k in ESTIMATES if f"{k}_rel_err" in check["totals"]]
    lines = _table(check, "SOPs", "deployed_sops", [(f"{k}_sops", f"{k}_rel_err",
                                                     f"{k}_flag", TITLES[k]) for k in kinds])
    energy = [k for k in ENERGY_ESTIMATES if f"{k}_energy_rel_err" in check["totals"]]
    if energy:
        lines += ["", f"energy per sample, pJ ({check['energy_model']}; a layer's spikes and "
                  "updates; the total adds the encoder and idle updates to every column):"]
        lines += _table(check, "energy pJ", "deployed_energy_pj", [
            (f"{k}_energy_pj", f"{k}_energy_rel_err", f"{k}_energy_flag", TITLES[k])
            for k in energy])
    per_kind = [f"{TITLES[k]}: " + (", ".join(r["layer"] for r in check["layers"]
                                              if r.get(f"{k}_flag") or r.get(f"{k}_energy_flag"))
                                    or "none") for k in kinds]
    lines.append(f"layers off by more than {100 * check['tolerance']:.0f}%: "
                 + "; ".join(per_kind))
    return "\n".join(lines)


def _table(check: dict, what: str, truth: str, cols: list[tuple[str, str, str, str]]
           ) -> list[str]:
    head = f"{'layer':<20}{'T':>6}{'deployed ' + what:>20}" + "".join(
        f"{title:>14}{'err':>9}" for *_, title in cols) + "  flag"
    lines = [head, "-" * len(head)]

    def line(name, T, r):
        flags = " ".join(title for _, _, flag, title in cols if r.get(flag))
        t = f"{T:6.2f}" if T is not None else " " * 6
        lines.append(f"{name:<20}{t}{r[truth]:>20.7g}" + "".join(
            f"{r[value]:>14.7g}{_pct(r[err]):>9}" for value, err, *_ in cols) + f"  {flags}")

    for r in check["layers"]:
        line(r["layer"], r["T"], r)
    lines.append("-" * len(head))
    line("total", None, check["totals"])
    return lines


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
                     "ann_energy_nj_per_sample": _ann_nj(rep)})
    return rows


def _ann_nj(rep: dict) -> float | None:
    """The quantised ANN's energy (the full-precision one for artifacts without routes)."""
    if rep["ann"] is None:
        return None
    variants = rep["ann"]["variants"]
    return variants.get("quantised", variants["full"])["energy_pj_per_sample"] / 1e3


def _mean_T(rep: dict) -> float:
    pops = [r for r in rep["layers"] if r["kind"] == "population"]
    return sum(r["T_mean"] for r in pops) / max(len(pops), 1)


def format_deployments(rows: list[dict]) -> str:
    head = (f"{'model':<18}{'accuracy':>9}{'latency':>9}{'mean T':>8}{'spikes':>10}"
            f"{'SOPs':>12}{'energy nJ':>11}{'QNN nJ':>9}")
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
    """Grouped bars per layer: deployed SOPs, paper-implied and spike-aware estimates; and,
    when present, each estimate's energy error per layer against the tolerance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from pseudosnn.compiler.atomic import write_atomic

    rows, t = check["layers"], check["totals"]
    x = np.arange(len(rows))
    energy = [k for k in ENERGY_ESTIMATES if rows and f"{k}_energy_rel_err" in rows[0]]
    fig, axes = plt.subplots(1, 2 if energy else 1, squeeze=False,
                             figsize=(max(6, 0.9 * len(rows) + 3) * (2 if energy else 1), 4))
    ax = axes[0, 0]
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
    ax.set_title(f"training-time estimates vs deployed SOPs\ntotal error: spike-aware "
                 f"{_pct(t['spike_rel_err'])}, paper {_pct(t['paper_rel_err'])}", fontsize=10)
    ax.legend()
    if energy:
        ax = axes[0, 1]
        for i, k in enumerate(energy):
            ax.bar(x + (i - (len(energy) - 1) / 2) * 0.4,
                   [100 * r[f"{k}_energy_rel_err"] for r in rows], 0.4, label=TITLES[k])
        tol = 100 * check["tolerance"]
        ax.axhspan(-tol, tol, color="tab:green", alpha=0.15, label=f"±{tol:.0f}%")
        ax.set_xticks(x, [r["layer"] for r in rows], rotation=45, ha="right")
        ax.set(ylabel="energy error, % of deployed",
               title=f"energy of each layer's spikes and updates ({check['energy_model']})\n"
                     f"total error: spike-aware {_pct(t['spike_energy_rel_err'])}")
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
