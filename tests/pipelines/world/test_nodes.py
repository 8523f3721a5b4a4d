"""The world pipeline's node functions on their own: tables, the evaluation export, the world's summary."""

import pandas as pd
import pytest

from tests.conftest import tiny_world_params
from tracesieve.config import WorldConfig
from tracesieve.pipelines.world.nodes import (
    build_world_tokenizer,
    export_eval_problems,
    generate_world_tables,
    position_role_shares,
    summarize_world,
)
from tracesieve.world.problems import FILLER


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    config = WorldConfig.model_validate(tiny_world_params(tmp_path_factory.mktemp("world")))
    problems, segments, distractors, records, sample = generate_world_tables(config)
    return config, problems, segments, distractors, records, sample


def test_world_tables_hold_every_split_the_records_and_a_sample_naming_roles(world):
    config, problems, segments, _distractors, records, sample = world
    traces = problems[problems["split"] == "traces"]
    assert len(records) == len(traces) and [record["trace_id"] for record in records] == list(traces["trace_id"])
    assert set(segments["trace_id"]) <= set(problems["trace_id"])
    shown = traces.head(config.n_sample_traces)["trace_id"]
    assert sample.count("\n## ") == len(shown) and all(f"## {trace_id} " in sample for trace_id in shown)
    assert "- `final`:" in sample


def test_the_evaluation_export_is_the_held_out_split_with_string_answers(world):
    _config, problems, *_ = world
    exported = export_eval_problems(problems)
    held_out = problems[problems["split"] == "eval"]
    assert len(held_out) > 0 and list(exported["problem_id"]) == list(held_out["trace_id"])
    assert exported["answer"].map(type).eq(str).all() and list(exported["answer"]) == [str(a) for a in held_out["answer"]]
    assert set(exported.columns) == {"problem_id", "question", "answer", "has_distractor", "heldout_skeleton"}


def test_the_summary_counts_what_the_tables_hold_and_the_filler_share_of_trace_tokens(world):
    config, problems, segments, distractors, *_ = world
    tokenizer = build_world_tokenizer(problems, config)
    metrics = {name: entry["value"] for name, entry in summarize_world(problems, segments, distractors, tokenizer).items()}
    assert metrics["problems_traces"] == (problems["split"] == "traces").sum()
    assert metrics["distractors"] == len(distractors) and metrics["vocab_size"] == len(tokenizer)
    assert sum(value for name, value in metrics.items() if name.startswith("segments_")) == len(segments)
    # The filler share recomputed by hand over the exported traces' segments.
    traces = problems[problems["split"] == "traces"].set_index("trace_id")["reasoning"]
    own = segments[segments["trace_id"].isin(traces.index)]
    tokens = [len(tokenizer(traces[row.trace_id][row.start:row.end], add_special_tokens=False)["input_ids"]) for row in own.itertuples()]
    filler = sum(n for n, role in zip(tokens, own["role"], strict=True) if role in (*FILLER, "decoy"))
    assert metrics["filler_token_share"] == pytest.approx(filler / sum(tokens))


def test_position_role_shares_say_how_often_position_tells_the_role():
    segments = pd.DataFrame(
        [  # trace a: position tells every role; trace b: none of them
            ("a", 0, "source"), ("a", 1, "check"), ("a", 2, "source"), ("a", 3, "final"),
            ("b", 0, "check"), ("b", 1, "final"), ("b", 2, "detour"),
        ],
        columns=["trace_id", "segment_index", "role"],
    ).sample(frac=1, random_state=0)  # the order of the rows must not matter
    shares = position_role_shares(segments)
    assert shares == {
        "position_role_share.first_is_step": 0.5,
        "position_role_share.penultimate_is_source": 0.5,
        "position_role_share.last_is_final": 0.5,
    }
