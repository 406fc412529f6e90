"""Config loading, coercion, overrides and unknown keys."""

from __future__ import annotations

import pytest

from pseudosnn.config import DEFAULTS, ConfigError, load_config, merge, parse_overrides


def test_yaml_values_are_coerced(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: vgg11\npenalty: 1e-2\nepochs: '3'\naugment: 'no'\n"
                 "neuron:\n  family: pseudo\n  init_T: 4\n")
    cfg = load_config(p)
    assert cfg["penalty"] == 0.01 and isinstance(cfg["penalty"], float)
    assert cfg["epochs"] == 3 and cfg["augment"] is False
    assert cfg["neuron"]["init_T"] == 4 and cfg["neuron"]["max_T"] == 16  # defaults kept


def test_overrides_and_nested_keys():
    args = ["--lr", "0.05", "--epochs=2", "--neuron.granularity", "channel",
            "--neuron.init_T", "3"]
    cfg = load_config(None, parse_overrides(args))
    assert cfg["lr"] == 0.05 and cfg["epochs"] == 2
    assert cfg["neuron"]["granularity"] == "channel" and cfg["neuron"]["init_T"] == 3


def test_other_family_replaces_pseudo_arguments():
    cfg = merge(dict(DEFAULTS), {"neuron": {"family": "lif", "tau": 2.0}})
    assert cfg["neuron"] == {"family": "lif", "tau": 2.0}


def test_unknown_key_names_close_matches(tmp_path):
    with pytest.raises(ConfigError, match="did you mean penalty"):
        load_config(None, {"penalti": "0.1"})
    p = tmp_path / "c.yaml"
    p.write_text("calib_epoch: 3\n")
    with pytest.raises(ConfigError, match="calib_epochs"):
        load_config(p)


@pytest.mark.parametrize("key, value, match", [
    ("epochs", "many", "epochs must be an integer"),
    ("augment", "maybe", "true or false"),
    ("optimizer", "lion", "sgd, adamw"),
    ("cost", "joules", "paper, spike, energy"),
    ("energy_model", "tpu", "45nm, lemaire, loihi .*chip: PATH"),
])
def test_bad_values(key, value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, {key: value})


def test_bad_files_and_args(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "l.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "l.yaml")
    with pytest.raises(ConfigError, match="no value"):
        parse_overrides(["--lr"])
    with pytest.raises(ConfigError, match="--key value"):
        parse_overrides(["lr", "3"])


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.glob("*/*.yaml"))
    assert len(files) >= 3
    for f in files:
        cfg = load_config(f)
        assert cfg["model"]
