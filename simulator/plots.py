"""PNG plots of deployment reports (matplotlib, Agg backend; files written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pseudosnn.compiler.atomic import write_atomic_with  # noqa: E402


def _save(fig, path: Path) -> Path:
    write_atomic_with(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def _pop_rows(report: dict) -> list[dict]:
    return [r for r in report["layers"] if r["kind"] == "population"]


def plot_layers(report: dict, path: Path) -> Path:
    """Per-layer T (min/mean/max), firing rate, SOPs and energy (by category)."""
    pops = _pop_rows(report)
    layers = report["layers"]
    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    names = [r["layer"] for r in pops]
    idx = np.arange(len(pops))
    t_mean = np.array([r["T_mean"] for r in pops])
    err = np.array([[m - r["T_min"], r["T_max"] - m] for m, r in zip(t_mean, pops, strict=True)])
    ax[0, 0].bar(idx, t_mean, yerr=err.T if len(pops) else None, capsize=3, color="tab:blue")
    ax[0, 0].set(title="timesteps T per layer (mean, min-max)", xticks=idx)
    ax[0, 0].set_xticklabels(names, rotation=45, ha="right")
    ax[0, 1].bar(idx, [r["firing_rate"] for r in pops], color="tab:orange")
    ax[0, 1].set(title="firing rate (spikes per neuron-step in window)", xticks=idx)
    ax[0, 1].set_xticklabels(names, rotation=45, ha="right")
    all_names = [r["layer"] for r in layers]
    jdx = np.arange(len(layers))
    ax[1, 0].bar(jdx, [r["sops_per_sample"] for r in layers], label="SOPs", color="tab:green")
    ax[1, 0].bar(jdx, [r["macs_per_sample"] for r in layers],
                 bottom=[r["sops_per_sample"] for r in layers], label="encoder MACs",
                 color="tab:red")
    ax[1, 0].set(title="operations per sample (incoming)", xticks=jdx)
    ax[1, 0].set_xticklabels(all_names, rotation=45, ha="right")
    ax[1, 0].legend()
    _stacked_terms(ax[1, 1], jdx, layers, report)
    ax[1, 1].set(title=f"energy per sample, pJ ({report['energy_model']['name']})", xticks=jdx)
    ax[1, 1].set_xticklabels(all_names, rotation=45, ha="right")
    ax[1, 1].legend()
    fig.suptitle(report.get("name") or "network")
    fig.tight_layout()
    return _save(fig, path)


def _stacked_terms(ax, x, rows: list[dict], report: dict, width: float = 0.8,
                   prefix: str = "") -> None:
    """Bars of each row's energy stacked by term (compute, memory, addressing, routing)."""
    bottom = np.zeros(len(rows))
    for i, term in enumerate(report["totals"]["energy_by_term_pj"]):
        vals = np.array([r[f"energy_{term}_pj"] for r in rows])
        if vals.any():
            ax.bar(x, vals, width, bottom=bottom, label=prefix + term, color=f"C{i}")
            bottom += vals


def plot_energy(report: dict, path: Path) -> Path:
    """Energy per sample: per layer, the SNN by term beside its ANN counterparts; in total,
    the SNN by term beside every ANN baseline by term."""
    from pseudosnn.simulator.metrics.report import VARIANT_TITLES

    layers, ann = report["layers"], report["ann"]
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(layers))
    _stacked_terms(ax[0], x - 0.2, layers, report, width=0.4, prefix="SNN ")
    if ann is not None and ann["per_layer_known"]:
        for j, (v, style) in enumerate((("full", "k_"), ("quantised", "r_"))):
            ax[0].plot(x + 0.2, [r["ann_pj"][v] for r in layers], style, markersize=18,
                       markeredgewidth=2, label=VARIANT_TITLES[v], zorder=3 + j)
    ax[0].set(yscale="log", ylabel="pJ per sample", xticks=x,
              title=f"per layer ({report['energy_model']['name']})")
    ax[0].set_xticklabels([r["layer"] for r in layers], rotation=45, ha="right")
    ax[0].legend(fontsize=8)
    totals = [{"name": "SNN", **{f"energy_{t}_pj": v for t, v in
                                 report["totals"]["energy_by_term_pj"].items()}}]
    for v, d in (ann or {}).get("variants", {}).items():
        totals.append({"name": VARIANT_TITLES[v].replace("ANN, ", "ANN\n"),
                       **{f"energy_{t}_pj": e for t, e in d["energy_by_term_pj"].items()}})
    _stacked_terms(ax[1], np.arange(len(totals)), totals, report)
    ax[1].set(ylabel="pJ per sample", title="total", xticks=np.arange(len(totals)))
    ax[1].set_xticklabels([t["name"] for t in totals], rotation=30, ha="right", fontsize=8)
    ax[1].legend(fontsize=8)
    fig.suptitle(f"{report.get('name') or 'network'}: energy by term")
    fig.tight_layout()
    return _save(fig, path)


def plot_break_even(report: dict, path: Path) -> Path:
    """Per layer with spiking input: its measured spikes per synapse and the value at which
    it would cost as much as its ANN counterpart (below the marker the SNN layer wins)."""
    rows = [r for r in report["layers"] if r.get("spikes_per_synapse") is not None]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rows) + 3), 4.5))
    x = np.arange(len(rows))
    ax.bar(x, [r["spikes_per_synapse"] for r in rows], 0.6, color="tab:blue",
           label="measured spikes per synapse")
    for v, style in (("quantised", "rv"), ("full", "k^")):
        y = [r["break_even"][v] for r in rows]
        ax.plot(x, [np.nan if b is None else max(b, 1e-4) for b in y], style, markersize=9,
                label=f"break-even vs {v} ANN (0: never wins)")
    ax.set(yscale="log", ylabel="spikes per synapse per sample", xticks=x,
           title=f"where each layer sits ({report['energy_model']['name']})\na layer beats its "
                 "ANN counterpart while its bar stays below the marker")
    ax.set_xticklabels([r["layer"] for r in rows], rotation=45, ha="right")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_spikes_per_step(report: dict, path: Path) -> Path:
    """Spikes per global step, one line per layer (the schedule made visible)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    for r in _pop_rows(report):
        ax.plot(r["spikes_per_step"], label=r["layer"], marker=".")
    ax.set(xlabel="global step", ylabel="spikes per sample", title="spikes per step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def choose_neurons(counts: np.ndarray, k: int) -> np.ndarray:
    """``k`` flat neuron indices of a layer (``counts``: spikes per neuron), spread evenly
    over the neurons that fire, topped up with silent ones when fewer than ``k`` fire."""
    flat = counts.reshape(-1)
    active, silent = np.flatnonzero(flat > 0), np.flatnonzero(flat == 0)

    def spread(idx: np.ndarray, n: int) -> np.ndarray:
        return idx[np.unique(np.linspace(0, len(idx) - 1, min(n, len(idx))).astype(int))] \
            if len(idx) else idx

    chosen = spread(active, k)
    return np.sort(np.concatenate([chosen, spread(silent, k - len(chosen))]))


def plot_raster(spikes: dict[str, np.ndarray], path: Path, per_layer: int = 16,
                title: str = "") -> Path:
    """Spike raster of one sample: ``spikes[pop]`` bool ``(steps, *shape)``; ``per_layer``
    neurons of each layer (firing ones first, see :func:`choose_neurons`), layers stacked
    bottom-up."""
    fig, ax = plt.subplots(figsize=(9, 5))
    row, ticks, labels = 0, [], []
    for i, (name, s) in enumerate(spikes.items()):
        flat = s.reshape(s.shape[0], -1)
        chosen = choose_neurons(flat.sum(axis=0), per_layer)
        for j, n in enumerate(chosen):
            t = np.nonzero(flat[:, n])[0]
            ax.scatter(t, np.full(t.shape, row + j), s=40, marker="|", linewidths=1.5,
                       color=f"C{i % 10}")
        ticks.append(row + len(chosen) / 2)
        labels.append(name)
        row += len(chosen) + 2
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels)
    ax.set(xlabel="global step", title=title or "spike raster (one sample)")
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_vs_energy(reports: list[dict], path: Path) -> Path:
    """One point per artifact: energy per sample against accuracy."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, r in enumerate(reports):
        e = r["totals"]["energy_pj_per_sample"] / 1e3
        a = r["accuracy"]
        ax.scatter([e], [100 * (a or 0)], color=f"C{i % 10}", label=r["name"])
        ax.annotate(r["name"], (e, 100 * (a or 0)), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
    ax.set(xlabel=f"energy per sample, nJ ({reports[0]['energy_model']['name']})",
           ylabel="accuracy (%)", title="accuracy vs energy")
    fig.tight_layout()
    return _save(fig, path)
