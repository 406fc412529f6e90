"""Which neurons the spike raster shows."""

import numpy as np
from pseudosnn.simulator.plots import choose_neurons


def test_raster_prefers_firing_neurons_and_tops_up_with_silent_ones():
    counts = np.zeros(100, dtype=np.int64)
    counts[[3, 50, 97]] = [1, 2, 5]
    chosen = choose_neurons(counts, 5)
    assert len(chosen) == 5 and {3, 50, 97} <= set(chosen.tolist())
    many = np.arange(1, 201)  # every neuron fires: spread evenly, no duplicates
    chosen = choose_neurons(many, 16)
    assert len(chosen) == 16 and chosen[0] == 0 and chosen[-1] == 199
    assert len(choose_neurons(np.zeros((2, 3, 3)), 40)) == 18
