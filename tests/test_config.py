"""The parameter schemas: cross-field rules, unknown keys and bad values are errors that name the key, and
Kedro validates every block a pipeline reads before its first node."""

import pytest
from kedro.validation.exceptions import ParameterValidationError
from pydantic import ValidationError

from tests.conftest import kedro_parameters
from tracesieve.config import AttributionConfig, IngestionConfig, SelectionConfig, WorldConfig
from tracesieve.pipelines import attribution, selection


def test_world_defaults_validate_and_cross_field_rules_hold():
    assert WorldConfig().problems.max_steps >= WorldConfig().problems.min_steps
    with pytest.raises(ValidationError, match=r"(?s)problems.*min_steps \(3\) is larger than max_steps \(2\)"):
        WorldConfig.model_validate({"problems": {"min_steps": 3, "max_steps": 2}})
    with pytest.raises(ValidationError, match=r"(?s)teacher.*not divisible"):
        WorldConfig.model_validate({"teacher": {"hidden_size": 30, "num_heads": 4}})


def test_unknown_keys_and_bad_values_name_the_key():
    with pytest.raises(ValidationError, match=r"n_eval\s+Input should be greater than or equal to 1"):
        WorldConfig.model_validate({"n_eval": 0})
    with pytest.raises(ValidationError, match=r"max_char\s+Extra inputs are not permitted"):
        IngestionConfig.model_validate({"max_char": 10})


def test_choices_are_the_library_names():
    from tracesieve.choices import METHODS, STRATEGIES

    assert SelectionConfig().strategies == STRATEGIES
    for method in METHODS:
        assert AttributionConfig(method=method).method == method
    with pytest.raises(ValidationError, match="'adaptive', 'gausslegendre'"):
        AttributionConfig(method="simpson")


def test_a_fixed_budget_and_a_tolerance_are_not_silently_mixed():
    """steps would be ignored while the adaptive rule refines to the tolerance: say so instead."""
    with pytest.raises(ValidationError, match="set tolerance: null to use steps"):
        AttributionConfig(steps=8)
    assert AttributionConfig().refines and AttributionConfig(max_steps=64).max_steps == 64
    assert not AttributionConfig(tolerance=None, steps=8).refines
    # A fixed rule keeps its steps; the tolerance is then what its converged flag is held to.
    fixed = AttributionConfig(method="authors_linspace", steps=50)
    assert not fixed.refines and fixed.tolerance == 0.02
    with pytest.raises(ValidationError, match="unconverged_policy"):
        AttributionConfig(unconverged_policy="drop")


def test_kedro_hands_nodes_validated_blocks_and_names_every_bad_one():
    pipeline = attribution.create_pipeline() + selection.create_pipeline()
    validated = kedro_parameters(pipeline, {"attribution": {"tolerance": None, "steps": 4}, "selection": {"tau": 0.5}})
    assert validated["attribution"] == AttributionConfig(tolerance=None, steps=4) and validated["selection"].tau == 0.5
    with pytest.raises(ParameterValidationError, match=r"(?s)Parameter 'attribution'.*steps.*Parameter 'selection'.*tau"):
        kedro_parameters(pipeline, {"attribution": {"steps": 1}, "selection": {"tau": 2}})
