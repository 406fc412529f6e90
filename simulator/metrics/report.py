"""The deployment report of one simulated artifact: per-layer counts, latency, energy.

Layers are the populations (topological order) and the readout. A layer owns the work
done *at* it: the SOPs of its incoming projections, the encoder MACs when it is fed by
the input, its neuron updates, and the routing of the spikes it emits (energy is
attributed that way). ``sops_out_*`` are the SOPs its own spikes cause downstream (what a
training-time estimate per neuron layer predicts). Per-sample figures are the exact
totals divided by the number of samples.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.simulator.energy import CATEGORIES, EnergyModel, ann_energy_pj, layer_energy_pj
from pseudosnn.simulator.metrics.tally import Tally

CSV_COLUMNS = (
    "layer", "kind", "coupling", "shape", "neurons", "T_mean", "T_min", "T_max", "start",
    "end", "spikes_per_sample", "firing_rate", "sops_per_sample", "macs_per_sample",
    "active_updates_per_sample", *(f"energy_{c}_pj" for c in CATEGORIES), "energy_pj",
)


def ann_baseline(graph: SpikingGraph, model: EnergyModel) -> dict | None:
    """The trained network run as an ANN (``counting.ann_ops`` of the layers the compiler
    recorded, before any fusion), or None when the artifact does not record them."""
    layers = graph.meta.get("trained_layers")
    if not layers:
        return None
    ops = counting.ann_ops([counting.Layer.from_dict(d) for d in layers])
    return {"macs_per_sample": ops["macs"], "adds_per_sample": ops["adds"],
            "energy_pj_per_sample": ann_energy_pj(model, ops["macs"], ops["adds"])}


def build_report(
    graph: SpikingGraph, tally: Tally, model: EnergyModel, time_per_step_us: float,
    mean_hops: float = 0.0, name: str = "", fixed_point: bool = False,
) -> dict:
    """A JSON-able report of ``tally`` (totals over ``tally.samples`` samples)."""
    n = max(tally.samples, 1)
    steps = graph.latency_steps
    updates = counting.neuron_updates(graph)
    layers = []
    tot = dict.fromkeys(CATEGORIES, 0.0)
    for pop in [*graph.topological_populations(), graph.readout]:
        incoming = graph.incoming(pop.name)
        sops = sum(tally.sops.get(pr.name, 0) for pr in incoming if not pr.is_encoder)
        # the SOPs its spikes cause downstream, through its spike pools too
        sops_out = sum(tally.sops.get(pr.name, 0) for src in
                       [pop.name, *(p.name for p in graph.pools_of(pop.name))]
                       for pr in graph.outgoing(src))
        macs = tally.macs if any(pr.is_encoder for pr in incoming) else 0
        is_pop = pop is not graph.readout
        row = {"layer": pop.name, "kind": "population" if is_pop else "readout",
               "shape": list(pop.shape), "neurons": int(np.prod(pop.shape))}
        if is_pop:
            T = pop.timesteps_full()
            spikes = int(np.sum(tally.spikes.get(pop.name, 0)))
            active = int(tally.neuron_updates.get(pop.name, 0))
            inactive = tally.samples * updates[pop.name][1]
            row.update(coupling=pop.coupling, T_mean=float(T.mean()), T_min=int(T.min()),
                       T_max=int(T.max()), start=pop.start, end=pop.end,
                       spikes_per_sample=spikes / n,
                       firing_rate=spikes / active if active else 0.0,
                       active_updates_per_sample=active / n,
                       spikes_per_step=np.asarray(
                           tally.spikes_per_step.get(pop.name, np.zeros(steps)), float) / n)
        else:
            spikes = active = inactive = 0
            row.update(coupling="", T_mean=None, T_min=None, T_max=None, start=None,
                       end=graph.readout_step + 1, spikes_per_sample=0.0, firing_rate=None,
                       active_updates_per_sample=0.0)
        row.update(sops_per_sample=sops / n, macs_per_sample=macs / n, sops_total=sops,
                   macs_total=macs, spikes_total=spikes, sops_out_per_sample=sops_out / n,
                   sops_out_total=sops_out)
        energy = layer_energy_pj(model, sops, macs, active, inactive, spikes, mean_hops)
        for c in CATEGORIES:
            row[f"energy_{c}_pj"] = energy[c] / n
            tot[c] += energy[c] / n
        row["energy_pj"] = sum(energy.values()) / n
        layers.append(row)
    for row in layers:
        if "spikes_per_step" in row:
            row["spikes_per_step"] = row["spikes_per_step"].tolist()
    snn_pj = sum(tot.values())
    ann = ann_baseline(graph, model)
    if ann is not None:
        ann["ann_over_snn_energy"] = ann["energy_pj_per_sample"] / snn_pj if snn_pj else None
    interval = graph.pipeline_interval
    acc = tally.accuracy
    return {
        "name": name,
        "samples": tally.samples,
        "fixed_point": fixed_point,
        "accuracy": acc,
        "latency_steps": steps,
        "latency_us": steps * time_per_step_us,
        "time_per_step_us": time_per_step_us,
        "pipeline_interval_steps": interval,
        "throughput_samples_per_s": 1e6 / (interval * time_per_step_us),
        "energy_model": model.as_dict(),
        "mean_hops": mean_hops,
        "totals": {
            "spikes_per_sample": sum(r["spikes_total"] for r in layers) / n,
            "sops_per_sample": sum(tally.sops.values()) / n,
            "encoder_macs_per_sample": tally.macs / n,
            "sops_total": int(sum(tally.sops.values())),
            "encoder_macs_total": int(tally.macs),
            "compares_per_sample": sum(tally.compares.values()) / n,
            "compares": {k: v / n for k, v in tally.compares.items()},
            "energy_pj_per_sample": snn_pj,
            "energy_by_category_pj": tot,
        },
        "ann": ann,
        "layers": layers,
        "projections": [
            {"name": pr.name, "source": pr.source, "target": pr.target, "kind": pr.kind,
             "synapses": counting.synapses(pr, graph.shape_of(pr.source)), "delay": pr.delay,
             "sops_total": int(tally.sops.get(pr.name, 0)),
             "sops_per_sample": tally.sops.get(pr.name, 0) / n if not pr.is_encoder else 0.0,
             "macs_per_sample": tally.macs / n if pr.is_encoder else 0.0}
            for pr in graph.projections],
    }


def _fmt(v, width: int = 10) -> str:
    if v is None or v == "":
        return "-".rjust(width)
    if isinstance(v, float):
        return (f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}").rjust(width)
    return str(v).rjust(width)


def format_table(report: dict) -> str:
    """The terminal table: one row per layer, then totals."""
    head = ("layer", "T(mean)", "spk/smp", "rate", "SOP/smp", "MAC/smp", "E pJ/smp")
    lines = [f"{report['name'] or 'network'}: {report['samples']} samples, "
             f"{'fixed point' if report['fixed_point'] else 'float'}, energy model "
             f"{report['energy_model']['name']}"]
    name_w = max(12, *(len(r["layer"]) for r in report["layers"]))
    lines.append(head[0].ljust(name_w) + "".join(h.rjust(11) for h in head[1:]))
    for r in report["layers"]:
        lines.append(r["layer"].ljust(name_w) + " " + " ".join(_fmt(v) for v in (
            r["T_mean"], r["spikes_per_sample"], r["firing_rate"], r["sops_per_sample"],
            r["macs_per_sample"], r["energy_pj"])))
    t, a = report["totals"], report["ann"]
    acc = report["accuracy"]
    lines += [
        f"accuracy: {'-' if acc is None else f'{100 * acc:.2f}%'}   latency: "
        f"{report['latency_steps']} steps = {report['latency_us']:.4g} us   pipelined: one "
        f"sample every {report['pipeline_interval_steps']} steps "
        f"({report['throughput_samples_per_s']:.4g} samples/s)",
        f"per sample: {t['spikes_per_sample']:,.1f} spikes, {t['sops_per_sample']:,.1f} SOPs, "
        f"{t['encoder_macs_per_sample']:,.1f} encoder MACs, "
        + (f"{t['compares_per_sample']:,.1f} max-pool compares, " if t["compares"] else "")
        + "energy "
        f"{t['energy_pj_per_sample'] / 1e3:.6g} nJ ("
        + ", ".join(f"{k} {v / 1e3:.4g}" for k, v in t["energy_by_category_pj"].items() if v)
        + ")",
        "as an ANN (the trained network): " + ("not recorded in this artifact" if a is None
                                               else f"{a['macs_per_sample']:,} MACs + "
                                               f"{a['adds_per_sample']:,} adds = "
                                               f"{a['energy_pj_per_sample'] / 1e3:.6g} nJ"),
    ]
    return "\n".join(lines)


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in report["layers"]:
        w.writerow({**r, "shape": "x".join(map(str, r["shape"]))})
    return buf.getvalue()


def write_reports(report: dict, out_dir, stem: str = "report",
                  tally: Tally | None = None) -> list:
    """Write ``STEM.json``, ``STEM.csv`` and (with ``tally``) ``STEM_counts.npz`` (spikes
    of every neuron summed over the data set, ``spikes/<pop>``; spikes per step,
    ``per_step/<pop>``; readout outputs) into ``out_dir``, each atomically."""
    from pathlib import Path

    from pseudosnn.compiler.atomic import write_atomic_with

    out = Path(out_dir)
    written = [write_atomic(out / f"{stem}.json", json.dumps(report, indent=1) + "\n"),
               write_atomic(out / f"{stem}.csv", to_csv(report))]
    if tally is not None:
        arrays = {f"spikes/{k}": np.asarray(v) for k, v in tally.spikes.items()}
        arrays |= {f"per_step/{k}": np.asarray(v) for k, v in tally.spikes_per_step.items()}
        arrays["output"] = tally.output
        written.append(write_atomic_with(out / f"{stem}_counts.npz",
                                         lambda f: np.savez(f, **arrays)))
    return written
