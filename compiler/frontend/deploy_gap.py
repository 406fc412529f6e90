"""What deploying costs a family whose training forward is not its deployed neuron
(ASGL's spike noise, NSNN's stochastic firing): accuracy of the noisy forward against the
deployed network, measured on calibration data, said in one line at compile time.

The noisy forward is the model in eval mode with only the named neurons switched to
training mode (their noise on; BatchNorm keeps its running statistics), averaged over
``draws`` seeded draws; the deployed accuracy is the compiled graph's, from the caller.
"""

from __future__ import annotations

import numpy as np

NOISE_DRAWS = 5
"""Forward passes averaged for the accuracy of a stochastic forward."""


def noisy_forward_accuracy(model, layers: list[str], x: np.ndarray, y: np.ndarray,
                           draws: int = NOISE_DRAWS, seed: int = 0) -> float:
    """Mean accuracy over ``draws`` of ``model`` with the neurons ``layers`` in training
    mode (the rest in eval mode); the model is left in eval mode."""
    import torch

    model.eval()
    neurons = [model.get_submodule(name) for name in layers]
    xt = torch.as_tensor(x, dtype=next(model.parameters()).dtype)
    accs = []
    try:
        for m in neurons:
            m.train()
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            for _ in range(draws):
                pred = model(xt).argmax(-1).numpy()
                accs.append(float(np.mean(pred == np.asarray(y))))
    finally:
        model.eval()
    return float(np.mean(accs))


def gap_lines(model, notes: list[dict], x: np.ndarray | None, y: np.ndarray | None,
              deployed_accuracy: float | None) -> list[str]:
    """One line per note of ``IR.meta["deploy_notes"]``: the layers, the note, and the
    accuracy of their noisy forward against the deployed network (when there are labelled
    calibration data and a model)."""
    lines = []
    for note in notes:
        layers = note["layers"]
        more = f" and {len(layers) - 4} more" if len(layers) > 4 else ""
        where = f"neurons {', '.join(layers[:4])}{more}"
        if model is None or y is None or deployed_accuracy is None:
            measured = "accuracy difference not measured (compile with --calib digits)"
        else:
            noisy = noisy_forward_accuracy(model, layers, x, y)
            measured = (f"accuracy {100 * noisy:.2f}% noisy forward (mean of {NOISE_DRAWS} "
                        f"draws) vs {100 * deployed_accuracy:.2f}% deployed on {len(y)} "
                        f"calibration samples ({100 * (deployed_accuracy - noisy):+.2f} points)")
        lines.append(f"{where}: {note['note']}: {measured}")
    return lines
