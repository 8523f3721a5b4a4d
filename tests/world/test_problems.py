import re

import pytest

from tracesieve.config import WorldConfig
from tracesieve.segmentation import split_segments
from tracesieve.world.generate import generate_world
from tracesieve.world.problems import ROLES, generate_problems

OPTIONS = dict(min_steps=2, max_steps=4, max_value=30, distractor_rate=0.5, check_rate=0.5, restatement_rate=0.5, detour_rate=0.5)


def test_same_seed_gives_identical_problems_and_other_seed_differs():
    first = generate_problems(50, seed=7, split="train", **OPTIONS)
    again = generate_problems(50, seed=7, split="train", **OPTIONS)
    other = generate_problems(50, seed=8, split="train", **OPTIONS)
    assert first == again
    assert [p.reasoning for p in first] != [p.reasoning for p in other]


def test_planted_segments_tile_the_trace_and_match_the_papers_keyword_split():
    for problem in generate_problems(300, seed=1, split="train", **OPTIONS):
        spans = [(s.start, s.end) for s in problem.segments]
        assert spans[0][0] == 0 and spans[-1][1] == len(problem.reasoning)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        # The paper's segmenter recovers the planted segments exactly, so planted roles line up with segments.
        assert split_segments(problem.reasoning) == spans


def test_roles_and_their_content_are_what_they_claim():
    problems = generate_problems(300, seed=2, split="train", **OPTIONS)
    seen_roles = set()
    for problem in problems:
        roles = [s.role for s in problem.segments]
        seen_roles.update(roles)
        assert roles[-1] == "final" and roles.count("final") == 1
        # One necessary segment states the start, then one per arithmetic step of the chain.
        assert roles.count("necessary") == problem.n_steps + 1
        final_text = problem.reasoning[problem.segments[-1].start : problem.segments[-1].end]
        assert f" {problem.answer} " in final_text
        # Every arithmetic statement anywhere in the trace is true (detours are irrelevant, not wrong).
        for a, op, b, result in re.findall(r"(\d+) (plus|minus|times) (\d+) is (\d+)", problem.reasoning):
            expected = {"plus": int(a) + int(b), "minus": int(a) - int(b), "times": int(a) * int(b)}[op]
            assert expected == int(result), problem.reasoning
        # The last necessary step computes the answer.
        last_necessary = max(index for index, role in enumerate(roles) if role == "necessary")
        last_step = problem.reasoning[problem.segments[last_necessary].start :]
        assert re.search(rf"is {problem.answer}\.", last_step)
    assert seen_roles == set(ROLES)


def test_distractor_spans_are_character_exact_and_irrelevant_to_the_answer():
    problems = generate_problems(200, seed=4, split="train", **OPTIONS)
    with_distractor = [p for p in problems if p.distractors]
    assert 0.3 < len(with_distractor) / len(problems) < 0.7
    for problem in with_distractor:
        (distractor,) = problem.distractors
        assert problem.question[distractor.start : distractor.end] == distractor.text
        assert " also has " in distractor.text
        # Removing the distractor leaves a well-formed question.
        pruned = problem.question[: distractor.start] + problem.question[distractor.end :].lstrip()
        assert pruned.endswith("now?") and "also has" not in pruned


def test_values_stay_in_range():
    for problem in generate_problems(300, seed=5, split="train", **OPTIONS):
        numbers = [int(n) for n in re.findall(r"\d+", problem.reasoning)]
        assert min(numbers) >= 0
        assert 0 <= int(problem.answer) <= OPTIONS["max_value"]


def test_world_splits_are_deterministic_and_heldout_questions_are_unseen(tmp_path):
    config = WorldConfig(n_train=400, n_traces=50, n_eval=100)
    tables = generate_world(config)
    again = generate_world(config)
    assert tables.problems.equals(again.problems)
    counts = tables.problems["split"].value_counts().to_dict()
    assert counts == {"train": 400, "traces": 50, "eval": 100}
    train = set(tables.problems.loc[tables.problems["split"] == "train", "question"])
    held_out = tables.problems.loc[tables.problems["split"] != "train", "question"]
    assert not train & set(held_out) and held_out.is_unique
    assert [record["trace_id"] for record in tables.trace_records] == list(
        tables.problems.loc[tables.problems["split"] == "traces", "trace_id"]
    )
    assert set(tables.segments["trace_id"]) == set(tables.problems["trace_id"])


def test_too_small_a_world_fails_with_a_clear_message():
    config = WorldConfig(n_train=1, n_traces=1, n_eval=6000, problems={"min_steps": 1, "max_steps": 1, "max_value": 10, "distractor_rate": 0})
    with pytest.raises(ValueError, match="too small"):
        generate_world(config)
