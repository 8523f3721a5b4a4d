import pytest

from tracesieve.config import IngestionConfig, WorldConfig


def test_world_defaults_validate_and_cross_field_rules_hold():
    assert WorldConfig().problems.max_steps >= WorldConfig().problems.min_steps
    with pytest.raises(ValueError, match=r"world\.problems.*min_steps \(3\) is larger than max_steps \(2\)"):
        WorldConfig.from_params({"problems": {"min_steps": 3, "max_steps": 2}}, name="world")
    with pytest.raises(ValueError, match=r"world\.teacher.*not divisible"):
        WorldConfig.from_params({"teacher": {"hidden_size": 30, "num_heads": 4}}, name="world")


def test_unknown_keys_and_bad_values_name_the_key():
    with pytest.raises(ValueError, match=r"world\.n_eval: Input should be greater than or equal to 1"):
        WorldConfig.from_params({"n_eval": 0}, name="world")
    with pytest.raises(ValueError, match=r"ingestion\.max_char: Extra inputs"):
        IngestionConfig.from_params({"max_char": 10}, name="ingestion")
