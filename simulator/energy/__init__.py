"""Energy models: what a deployed network and its ANN counterpart cost on a chip.

* :mod:`.constants`: every hardware number, named, with its source;
* :mod:`.model`: a chip (:class:`EnergyModel`: energy per operation, memory priced by its
  size, data widths), validated;
* :mod:`.presets`: ``compute-only``, ``45nm`` (default), ``lemaire``, ``loihi``;
* :mod:`.chip`: a user's chip from a YAML file;
* :mod:`.snn`: a deployed layer's energy by term (compute, memory, addressing, routing)
  from its counts (``compiler.spiking.counting.LayerCounts``), and its unit prices;
* :mod:`.ann`: the trained network as a full-precision and a quantised ANN on the same
  chip, and the break-even firing rate of each layer.
"""

from pseudosnn.simulator.energy.chip import ChipError, load_chip, resolve
from pseudosnn.simulator.energy.constants import DEFAULT_TIME_PER_STEP_US
from pseudosnn.simulator.energy.model import EnergyModel, EnergyModelError
from pseudosnn.simulator.energy.presets import (
    DEFAULT_MODEL,
    PRESETS,
    UnknownEnergyModel,
    get_model,
)

__all__ = ["DEFAULT_MODEL", "DEFAULT_TIME_PER_STEP_US", "PRESETS", "ChipError", "EnergyModel",
           "EnergyModelError", "UnknownEnergyModel", "get_model", "load_chip", "resolve"]
