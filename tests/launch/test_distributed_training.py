"""The distributed-training launcher finds the project's training nodes, and only those."""

import pytest
from kedro.pipeline import Node, Pipeline

from tracesieve.launch.distributed_training import training_nodes


def _identity(x):
    return x


def test_only_training_nodes_can_be_launched_and_unknown_names_list_the_choices():
    pipeline = Pipeline([
        Node(_identity, "a", "b", name="full_sft.train_variant"),
        Node(_identity, "b", "c", name="score_segments"),
        Node(_identity, "c", "d", name="kd.distill_variant"),
    ])
    assert [node.name for node in training_nodes([pipeline], ["kd.distill_variant"])] == ["kd.distill_variant"]
    with pytest.raises(ValueError, match=r"'score_segments' is not a training node.*\['full_sft.train_variant', 'kd.distill_variant'\]"):
        training_nodes([pipeline], ["score_segments"])
    with pytest.raises(ValueError, match="'selective_sft.train_variant' is not a training node"):
        training_nodes([pipeline], ["selective_sft.train_variant"])
