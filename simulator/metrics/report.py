"""The deployment report of one simulated artifact: per-layer counts, latency, energy by
term, the trained network as ANNs on the same chip, and where each layer breaks even.

Layers are the populations (topological order) and the readout. A layer owns the work
done *at* it: the SOPs of its incoming projections, the events it reads from its input
queue, the encoder MACs when it is fed by the input, its neuron updates, and the spikes
it emits (energy is attributed that way, :mod:`pseudosnn.simulator.energy.snn`).
``sops_out_*`` are the SOPs its own spikes cause downstream (what a training-time
estimate per neuron layer predicts). Per-sample figures are the exact totals divided by
the number of samples. A layer's ANN counterpart is the trained layers whose output
drives it (``Layer.feeds``); ``spikes_per_synapse`` is its SOPs per structural synapse,
``break_even`` the value at which it would cost as much as that counterpart.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
from pseudosnn.compiler.atomic import write_atomic
from pseudosnn.compiler.spiking import counting
from pseudosnn.compiler.spiking.graph import SpikingGraph
from pseudosnn.simulator.energy import ann as ann_energy
from pseudosnn.simulator.energy import snn
from pseudosnn.simulator.energy.model import EnergyModel
from pseudosnn.simulator.metrics.tally import Tally

CSV_COLUMNS = (
    "layer", "kind", "coupling", "shape", "neurons", "T_mean", "T_min", "T_max", "start",
    "end", "spikes_per_sample", "firing_rate", "events_in_per_sample", "sops_per_sample",
    "macs_per_sample", "active_updates_per_sample", "spikes_per_synapse",
    *(f"energy_{t}_pj" for t in snn.TERMS), "energy_pj", "ann_full_pj", "ann_quantised_pj",
    "break_even_full", "break_even_quantised",
)


def _schedule_stats(graph: SpikingGraph, pop, tally: Tally, n: int) -> dict:
    """Timing and firing of one population (or the readout) per sample."""
    if pop is graph.readout:
        return {"coupling": "", "T_mean": None, "T_min": None, "T_max": None, "start": None,
                "end": graph.readout_step + 1, "spikes_per_sample": 0.0, "firing_rate": None,
                "active_updates_per_sample": 0.0}
    T = pop.timesteps_full()
    spikes = int(np.sum(tally.spikes.get(pop.name, 0)))
    active = int(tally.neuron_updates.get(pop.name, 0))
    per_step = tally.spikes_per_step.get(pop.name, np.zeros(graph.latency_steps))
    return {"coupling": pop.coupling, "T_mean": float(T.mean()), "T_min": int(T.min()),
            "T_max": int(T.max()), "start": pop.start, "end": pop.end,
            "spikes_per_sample": spikes / n, "firing_rate": spikes / active if active else 0.0,
            "active_updates_per_sample": active / n,
            "spikes_per_step": (np.asarray(per_step, float) / n).tolist()}


def layer_counts(graph: SpikingGraph, tally: Tally) -> list[counting.LayerCounts]:
    """Per-sample counts of every deployed layer (what the energy model prices)."""
    n = max(tally.samples, 1)
    spikes = {p.name: float(np.sum(tally.spikes.get(p.name, 0))) / n
              for p in (*graph.populations, *graph.pools)}
    return counting.deployed_layers(graph, spikes, {k: v / n for k, v in tally.sops.items()},
                                    {k: v / n for k, v in tally.compares.items()})


def layer_rows(graph: SpikingGraph, tally: Tally, model: EnergyModel,
               mean_hops: float = 0.0) -> list[dict]:
    """One row per layer: counts, timing, energy by term and part, unit prices."""
    n = max(tally.samples, 1)
    rows = []
    for c, node in zip(layer_counts(graph, tally),
                       [*graph.topological_populations(), graph.readout], strict=True):
        sops = sum(tally.sops.get(pr.name, 0) for pr in graph.incoming(node.name)
                   if not pr.is_encoder)
        # the SOPs its spikes cause downstream, through its spike pools too
        sops_out = sum(tally.sops.get(pr.name, 0) for src in
                       [node.name, *(p.name for p in graph.pools_of(node.name))]
                       for pr in graph.outgoing(src))
        macs = sum(counting.layer_ops(enc)["macs"] for enc in c.encoders) * c.encoder_passes
        energy = snn.layer_energy(model, c, mean_hops)
        row = {"layer": c.name, "kind": c.kind, "shape": list(node.shape),
               "neurons": c.neurons, **_schedule_stats(graph, node, tally, n),
               "events_in_per_sample": c.events_in,
               "conv_events_in_per_sample": c.conv_events_in, "sops_per_sample": sops / n,
               "macs_per_sample": macs, "sops_total": sops, "macs_total": macs * tally.samples,
               "spikes_total": int(np.sum(tally.spikes.get(node.name, 0))),
               "sops_out_per_sample": sops_out / n, "sops_out_total": sops_out,
               "synapses": c.synapses,
               "spikes_per_synapse": c.sops / c.synapses if c.synapses else None,
               "stored": {"weights": c.weights, "biases": c.biases, "state": c.neurons},
               **{f"energy_{t}_pj": v for t, v in snn.by_term(energy).items()},
               "energy_pj": snn.total(energy), "energy_parts_pj": energy,
               "prices_pj": snn.unit_prices(model, c, mean_hops)}
        rows.append(row)
    return rows


def ann_section(graph: SpikingGraph, model: EnergyModel, rows: list[dict]) -> dict | None:
    """The trained network as ANNs (:mod:`pseudosnn.simulator.energy.ann`) on the chip:
    totals per variant with the SNN/ANN ratio, per trained layer, and per deployed layer
    (its ANN counterpart and break-even); None when the artifact records no trained
    layers."""
    recorded = graph.meta.get("trained_layers")
    if not recorded:
        return None
    layers = [counting.Layer.from_dict(d) for d in recorded]
    routed = any(layer.reads for layer in layers)  # older artifacts lack the routes
    T = {p.name: int(p.timesteps_full().max()) for p in graph.populations}
    per_variant = ann_energy.baselines(model, layers, T)
    if not routed:
        per_variant = {v: e for v, e in per_variant.items() if v.startswith("full")}
    snn_pj = sum(r["energy_pj"] for r in rows)
    ops = counting.ann_ops(layers)
    variants = {}
    for v, energies in per_variant.items():
        pj = sum(sum(e.values()) for e in energies)
        variants[v] = {"energy_pj_per_sample": pj,
                       "energy_by_term_pj": {t: sum(e[t] for e in energies) for t in snn.TERMS},
                       "snn_over_ann": snn_pj / pj if pj else None}
    if routed:
        _attach_counterparts(rows, layers, per_variant, graph.readout.name)
    return {"macs_per_sample": ops["macs"], "adds_per_sample": ops["adds"],
            "per_layer_known": routed, "variants": variants,
            "layers": [{"name": layer.name, "op": layer.op, "feeds": layer.feeds or
                        graph.readout.name, **counting.layer_ops(layer),
                        "bits": _bits(model, layer, T) if routed else None,
                        **{f"{v}_pj": sum(e[i].values()) for v, e in per_variant.items()}}
                       for i, layer in enumerate(layers)]}


def _bits(model: EnergyModel, layer: counting.Layer, T: dict[str, int]) -> dict[str, float]:
    ar = ann_energy.arithmetic(model, layer, T, quantised=True)
    return {"in": ar.in_bits, "out": ar.out_bits, "weight": ar.weight_bits}


def _attach_counterparts(rows: list[dict], layers, per_variant: dict, readout: str) -> None:
    """Per deployed layer: its ANN counterpart's energy per variant and the break-even
    spikes per synapse against it."""
    for row in rows:
        mine = [i for i, layer in enumerate(layers) if (layer.feeds or readout) == row["layer"]]
        p, conv = row["prices_pj"], row["conv_events_in_per_sample"]
        variable = row["sops_per_sample"] * p["sop"] + conv * p["conv_event"] \
            + (row["events_in_per_sample"] - conv) * p["event"]
        row["ann_pj"] = {v: sum(sum(e[i].values()) for i in mine)
                         for v, e in per_variant.items()}
        row["break_even"] = {v: ann_energy.break_even(row["energy_pj"], pj, variable,
                                                      row["sops_per_sample"], row["synapses"])
                             for v, pj in row["ann_pj"].items()}


def _totals(rows: list[dict], tally: Tally) -> dict:
    n = max(tally.samples, 1)
    parts: dict[str, dict[str, float]] = {t: {} for t in snn.TERMS}
    for r in rows:
        for t, ps in r["energy_parts_pj"].items():
            for k, v in ps.items():
                parts[t][k] = parts[t].get(k, 0.0) + v
    return {"spikes_per_sample": sum(r["spikes_total"] for r in rows) / n,
            "sops_per_sample": sum(tally.sops.values()) / n,
            "encoder_macs_per_sample": tally.macs / n,
            "sops_total": int(sum(tally.sops.values())), "encoder_macs_total": int(tally.macs),
            "compares_per_sample": sum(tally.compares.values()) / n,
            "compares": {k: v / n for k, v in tally.compares.items()},
            "energy_pj_per_sample": sum(r["energy_pj"] for r in rows),
            "energy_by_term_pj": {t: sum(ps.values()) for t, ps in parts.items()},
            "energy_parts_pj": parts}


def check_energies(obj, where: str = "report", energy: bool = False) -> None:
    """Every energy (a number under a key containing ``pj``) is finite and >= 0; a bug
    otherwise."""
    if isinstance(obj, dict):
        for key, v in obj.items():
            check_energies(v, f"{where}.{key}", energy or "pj" in str(key))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            check_energies(v, f"{where}[{i}]", energy)
    elif energy and isinstance(obj, float | int) and not isinstance(obj, bool) \
            and not (math.isfinite(obj) and obj >= 0):
        raise ValueError(f"{where} = {obj}: an energy must be finite and >= 0")


def build_report(
    graph: SpikingGraph, tally: Tally, model: EnergyModel, time_per_step_us: float,
    mean_hops: float = 0.0, name: str = "", fixed_point: bool = False,
) -> dict:
    """A JSON-able report of ``tally`` (totals over ``tally.samples`` samples)."""
    rows = layer_rows(graph, tally, model, mean_hops)
    interval = graph.pipeline_interval
    pools = {p.name: p.source for p in graph.pools}
    report = {
        "name": name, "samples": tally.samples, "fixed_point": fixed_point,
        "source_framework": graph.meta.get("source_framework"), "accuracy": tally.accuracy,
        "latency_steps": graph.latency_steps,
        "latency_us": graph.latency_steps * time_per_step_us,
        "time_per_step_us": time_per_step_us, "pipeline_interval_steps": interval,
        "throughput_samples_per_s": 1e6 / (interval * time_per_step_us),
        "energy_model": model.as_dict(), "mean_hops": mean_hops,
        "totals": _totals(rows, tally), "ann": ann_section(graph, model, rows),
        "layers": rows,
        "projections": [
            {"name": pr.name, "source": pr.source, "target": pr.target, "kind": pr.kind,
             # whose spikes it carries (a spike pool's are its source population's)
             "source_population": pools.get(pr.source, pr.source),
             "synapses": counting.synapses(pr, graph.shape_of(pr.source)), "delay": pr.delay,
             "sops_total": int(tally.sops.get(pr.name, 0)),
             "sops_per_sample": tally.sops.get(pr.name, 0) / max(tally.samples, 1)
             if not pr.is_encoder else 0.0,
             "macs_per_sample": tally.macs / max(tally.samples, 1) if pr.is_encoder else 0.0}
            for pr in graph.projections]}
    check_energies(report)
    return report


def _fmt(v, width: int = 10) -> str:
    if v is None or v == "":
        return "-".rjust(width)
    if isinstance(v, float):
        return (f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}").rjust(width)
    return str(v).rjust(width)


VARIANT_TITLES = {"full": "ANN, full precision", "full_max_reuse": "ANN, full, max reuse",
                  "quantised": "quantised ANN", "quantised_max_reuse": "quantised ANN, max reuse"}


def format_table(report: dict) -> str:
    """The terminal table: one row per layer, then totals, the ANN baselines and the
    layers where the SNN does not win."""
    head = ("layer", "T(mean)", "spk/smp", "SOP/smp", "compute", "memory", "address",
            "routing", "E nJ/smp", "QNN nJ", "spk/syn", "break-even")
    m = report["energy_model"]
    source = report.get("source_framework")
    lines = [f"{report['name'] or 'network'}"
             + (f" ({source} network, imported via NIR)" if source else "")
             + f": {report['samples']} samples, "
             f"{'fixed point' if report['fixed_point'] else 'float'}, energy model "
             f"{m['name']} ({m['source']}); energy in nJ per sample; QNN: the quantised ANN "
             "counterpart; spk/syn: SOPs per synapse, break-even: where it equals the QNN"]
    name_w = max(12, *(len(r["layer"]) for r in report["layers"]))
    lines.append(head[0].ljust(name_w) + "".join(h.rjust(11) for h in head[1:]))
    for r in report["layers"]:
        ann = r.get("ann_pj", {}).get("quantised")
        lines.append(r["layer"].ljust(name_w) + " " + " ".join(_fmt(v) for v in (
            r["T_mean"], r["spikes_per_sample"], r["sops_per_sample"],
            *(r[f"energy_{t}_pj"] / 1e3 for t in snn.TERMS), r["energy_pj"] / 1e3,
            None if ann is None else ann / 1e3, r["spikes_per_synapse"],
            r.get("break_even", {}).get("quantised"))))
    return "\n".join(lines + summary_lines(report))


def summary_lines(report: dict) -> list[str]:
    """Accuracy, latency, energy by term, the SNN/ANN ratios and a plain verdict."""
    t, a, acc = report["totals"], report["ann"], report["accuracy"]
    lines = [
        f"accuracy: {'-' if acc is None else f'{100 * acc:.2f}%'}   latency: "
        f"{report['latency_steps']} steps = {report['latency_us']:.4g} us   pipelined: one "
        f"sample every {report['pipeline_interval_steps']} steps "
        f"({report['throughput_samples_per_s']:.4g} samples/s)",
        f"per sample: {t['spikes_per_sample']:,.1f} spikes, {t['sops_per_sample']:,.1f} SOPs, "
        f"{t['encoder_macs_per_sample']:,.1f} encoder MACs, "
        + (f"{t['compares_per_sample']:,.1f} max-pool compares, " if t["compares"] else "")
        + f"energy {t['energy_pj_per_sample'] / 1e3:.6g} nJ (" + ", ".join(
            f"{k} {v / 1e3:.4g}" for k, v in t["energy_by_term_pj"].items() if v) + ")"]
    if a is None:
        return [*lines, "as an ANN: the artifact does not record the trained layers"]
    lines.append(f"as an ANN (the trained network: {a['macs_per_sample']:,} MACs + "
                 f"{a['adds_per_sample']:,} adds), SNN/ANN energy:")
    for v, d in a["variants"].items():
        ratio = d["snn_over_ann"]
        lines.append(f"  {VARIANT_TITLES[v]:<26} {d['energy_pj_per_sample'] / 1e3:>12.6g} nJ  "
                     f"SNN/ANN {'-' if ratio is None else f'{ratio:.3g}'}"
                     + ("  (SNN does not win)" if ratio is not None and ratio >= 1 else ""))
    losers = [r["layer"] for r in report["layers"]
              if r.get("ann_pj") and r["ann_pj"].get("quantised") is not None
              and r["energy_pj"] >= r["ann_pj"]["quantised"] > 0]
    if a["per_layer_known"]:
        lines.append("layers costing at least their quantised-ANN counterpart: "
                     + (", ".join(losers) or "none"))
    return lines


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in report["layers"]:
        flat = {f"ann_{v}_pj": pj for v, pj in r.get("ann_pj", {}).items()}
        flat |= {f"break_even_{v}": x for v, x in r.get("break_even", {}).items()}
        w.writerow({**r, **flat, "shape": "x".join(map(str, r["shape"]))})
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
