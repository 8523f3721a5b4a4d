"""The sweep launcher's parsing and identity: what decides which runs a restarted sweep skips."""

import pytest

from tracesieve.launch.sweep import parse_axis, sweep_id


def test_axes_read_their_values_as_yaml_and_refuse_malformed_ones():
    assert parse_axis("selection.tau=0.5,0.7,0.9") == ("selection.tau", [0.5, 0.7, 0.9])
    assert parse_axis("fine_tuning.lora=null") == ("fine_tuning.lora", [None])
    assert parse_axis("selection.strategies=paper") == ("selection.strategies", ["paper"])
    for bad in ("selection.tau", "=0.5", "selection.tau=", "selection.tau=0.5,0.5"):
        with pytest.raises(ValueError, match="selection.tau|NAME=V1"):
            parse_axis(bad)


def test_the_same_command_continues_the_same_sweep():
    axes = {"selection.tau": [0.5, 0.7]}
    assert sweep_id(axes, ["--env", "real_cpu"]) == sweep_id({"selection.tau": [0.5, 0.7]}, ["--env", "real_cpu"])
    assert sweep_id(axes, []) != sweep_id(axes, ["--env", "real_cpu"])
    assert sweep_id(axes, []) != sweep_id({"selection.tau": [0.5, 0.9]}, [])
