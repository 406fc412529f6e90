"""A user's chip as a YAML file: the fields of :class:`.model.EnergyModel`, optionally on
top of a preset (``base: 45nm``). Example::

    name: my-chip
    base: 45nm                 # start from a preset; without it give source, add_pj, mult_pj
    source: datasheet rev. B
    add_pj: 0.03
    mult_pj: 0.2
    weight_bits: 8
    memory:                    # [capacity bytes, pJ per byte], increasing capacities
      - [16384, 0.8]
      - [2097152, 6.0]

Unknown fields, wrong types, negative or non-finite energies are errors naming the field.
"""

from __future__ import annotations

import difflib
from dataclasses import fields, replace
from pathlib import Path

import yaml
from pseudosnn.simulator.energy.model import EnergyModel, EnergyModelError
from pseudosnn.simulator.energy.presets import DEFAULT_MODEL, get_model

FIELDS = tuple(f.name for f in fields(EnergyModel))
REQUIRED = ("name", "source", "add_pj", "mult_pj")


class ChipError(EnergyModelError):
    """A chip file that cannot be read or breaks the energy model's rules."""


def _unknown(path: Path, key: object) -> ChipError:
    close = difflib.get_close_matches(str(key), [*FIELDS, "base"], n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else \
        f"; known fields: base, {', '.join(FIELDS)}"
    return ChipError(f"chip file {path}: unknown field {key!r}{hint}")


def _value(path: Path, key: str, v):
    """YAML reads ``1e-3`` as a string: numbers in strings are accepted for energies."""
    if key.endswith("_pj") and isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise ChipError(f"chip file {path}: field {key!r} must be a number of pJ, "
                            f"got {v!r}") from None
    if key == "memory":
        if not isinstance(v, list) or not all(isinstance(p, list) for p in v):
            raise ChipError(f"chip file {path}: field 'memory' must be a list of "
                            "[capacity_bytes, pJ_per_byte] pairs")
        try:
            return tuple(tuple(float(x) if isinstance(x, str) else x for x in p) for p in v)
        except ValueError:
            raise ChipError(f"chip file {path}: field 'memory' holds a value that is not a "
                            "number") from None
    return v


def load_chip(path: str | Path) -> EnergyModel:
    """The energy model a chip YAML file describes (see the module docstring)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ChipError(f"chip file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ChipError(f"chip file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ChipError(f"chip file {p} must hold a mapping of fields to values")
    for key in data:
        if key not in FIELDS and key != "base":
            raise _unknown(p, key)
    values = {k: _value(p, k, v) for k, v in data.items() if k != "base"}
    try:
        if "base" in data:
            base = get_model(str(data["base"]))
            return replace(base, **{"name": p.stem,
                                    "source": f"{base.source}; changed by {p.name}", **values})
        missing = [f for f in REQUIRED if f not in values]
        if missing:
            raise ChipError(f"chip file {p}: missing field(s) {', '.join(missing)} (or start "
                            "from a preset with base: NAME)")
        return EnergyModel(**values)
    except ChipError:
        raise
    except EnergyModelError as e:
        raise ChipError(f"chip file {p}: {e}") from None


def resolve(energy_model: str = DEFAULT_MODEL, chip: str | Path | None = None) -> EnergyModel:
    """The chip file when given, else the preset named ``energy_model``."""
    return load_chip(chip) if chip is not None else get_model(energy_model)
