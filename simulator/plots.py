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
    bottom = np.zeros(len(layers))
    for cat in report["totals"]["energy_by_category_pj"]:
        vals = np.array([r[f"energy_{cat}_pj"] for r in layers])
        if vals.any():
            ax[1, 1].bar(jdx, vals, bottom=bottom, label=cat)
            bottom += vals
    ax[1, 1].set(title=f"energy per sample, pJ ({report['energy_model']['name']})", xticks=jdx)
    ax[1, 1].set_xticklabels(all_names, rotation=45, ha="right")
    ax[1, 1].legend()
    fig.suptitle(report.get("name") or "network")
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
