import re

import pytest

from tracesieve.config import WorldConfig
from tracesieve.leaf.examples import delete_spans
from tracesieve.segmentation import split_segments
from tracesieve.world.generate import generate_world
from tracesieve.world.problems import (
    DECOY,
    FILLER,
    FINAL,
    ROLES,
    SKIP,
    SOURCE,
    UPSTREAM,
    generate_problems,
    heldout_skeletons,
)

OPTIONS = dict(
    min_steps=1, max_steps=3, max_value=30, distractor_rate=0.5, check_rate=0.5, restatement_rate=0.5, detour_rate=0.5, decoy_rate=0.3
)
NUMBER = re.compile(r"\d+")


def _segment_texts(problem):
    return [(s.role, problem.reasoning[s.start : s.end]) for s in problem.segments]


def _source_values(problem) -> list[int]:
    return [int(re.search(r"is (\d+), the last step", text).group(1)) for role, text in _segment_texts(problem) if role == SOURCE]


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


def test_the_answer_sums_the_source_values_and_every_statement_is_true():
    problems = generate_problems(300, seed=2, split="train", **OPTIONS)
    seen_roles = set()
    for problem in problems:
        roles = [s.role for s in problem.segments]
        seen_roles.update(roles)
        assert roles.count("final") == 1
        # One source (the last step), one step segment per arithmetic step.
        assert roles.count(SOURCE) == 1 and roles.count(SOURCE) + roles.count(UPSTREAM) == problem.n_steps
        assert sum(_source_values(problem)) == int(problem.answer)
        for a, op, b, result in re.findall(r"(\d+) (plus|minus) (\d+) is (\d+)", problem.reasoning):
            assert {"plus": int(a) + int(b), "minus": int(a) - int(b)}[op] == int(result), problem.reasoning
    assert seen_roles == set(ROLES) - {SKIP}  # skip lines only with problems.distractor_skip_lines


@pytest.mark.parametrize("final", ["silent", "restates"])
def test_consumed_values_are_written_once_and_only_decoys_carry_the_answer(final):
    """The causal design: the value the answer consumes appears in its source segment and nowhere else in
    the trace (no filler) but in decoys, which reach it by another computation, and, in the ``restates``
    regime only, in the final segment, which restates it as LIMO's traces do."""
    problems = generate_problems(400, seed=3, split="train", **OPTIONS, final=final)
    for problem in problems:
        consumed = set(_source_values(problem))
        answer = int(problem.answer)
        for role, text in _segment_texts(problem):
            numbers = {int(number) for number in NUMBER.findall(text)}
            if role in FILLER or (role == FINAL and final == "silent"):
                assert not numbers & (consumed | {answer}), (role, text, problem.reasoning)
            if role == FINAL and final == "restates":
                assert numbers == {answer} and f"\\boxed{{{answer}}}" in text
            if role == DECOY:
                # It carries the answer's value, but not by the source step's own computation.
                assert answer in numbers
                source = next(t for r, t in _segment_texts(problem) if r == SOURCE)
                assert re.search(r"\d+ (?:plus|minus) \d+", text).group(0) not in source
        # After its source segment, no later segment writes an owner's consumed value.
        texts = _segment_texts(problem)
        for index, (role, text) in enumerate(texts):
            if role == SOURCE:
                value = int(re.search(r"is (\d+), the last step", text).group(1))
                later = " ".join(t for later_role, t in texts[index + 1 :] if later_role not in (DECOY, FINAL))
                assert value not in {int(n) for n in NUMBER.findall(later)}, problem.reasoning
    decoys = sum(problem.decoy for problem in problems)
    assert 0.1 < decoys / len(problems) < 0.35
    assert all((DECOY in [s.role for s in p.segments]) == p.decoy for p in problems)


def test_filler_is_a_large_share_of_the_trace():
    problems = generate_problems(300, seed=6, split="train", **OPTIONS)
    filler = sum(s.end - s.start for p in problems for s in p.segments if s.role in (*FILLER, DECOY))
    assert filler / sum(len(p.reasoning) for p in problems) > 0.3


def test_distractors_are_another_owners_action_that_the_trace_never_mentions():
    problems = generate_problems(300, seed=4, split="train", **OPTIONS)
    with_distractor = [p for p in problems if p.distractors]
    assert 0.3 < len(with_distractor) / len(problems) < 0.7
    for problem in with_distractor:
        (distractor,) = problem.distractors
        assert problem.question[distractor.start : distractor.end] == distractor.text
        owner = problem.question.split()[0]
        other = distractor.text.split()[1]
        assert distractor.text.startswith(" Then ") and other != owner and other not in problem.reasoning
        # Deleting the span leaves a well-formed question with single spaces.
        pruned = delete_spans(problem.question, [(distractor.start, distractor.end)])
        assert "  " not in pruned and other not in pruned and pruned.endswith(f"does {owner} have now?")
        # The all-relevant form makes the action the owner's own: one more step, and an answer that follows it.
        relevant = problem.all_relevant
        assert relevant.question == problem.question.replace(f"Then {other} ", f"Then {owner} ")
        assert len(re.findall(r"\d+ (?:plus|minus) \d+ is \d+(?:\.|, the last step)", relevant.reasoning)) >= problem.n_steps + 1
        assert re.search(rf"is {relevant.answer}, the last step", relevant.reasoning)
    assert all(p.all_relevant is None for p in problems if not p.distractors)


def test_values_stay_in_range():
    for problem in generate_problems(300, seed=5, split="train", **OPTIONS):
        numbers = [int(n) for n in NUMBER.findall(problem.reasoning)]
        assert min(numbers) >= 0 and max(numbers) <= OPTIONS["max_value"] + 9  # detours may step past it
        assert 1 <= int(problem.answer) <= OPTIONS["max_value"]


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
    # Problems without a distractor are their own all-relevant form.
    plain = tables.problems[~tables.problems["has_distractor"]]
    assert (plain["question_all_relevant"] == plain["question"]).all() and (plain["answer_all_relevant"] == plain["answer"]).all()


def test_too_small_a_world_fails_with_a_clear_message(monkeypatch):
    from tracesieve.world import problems

    monkeypatch.setattr(problems, "NAMES", ("Tom", "Ann"))
    monkeypatch.setattr(problems, "ITEMS", ("apples",))
    config = WorldConfig(n_train=1, n_traces=1, n_eval=6000, problems={"min_steps": 1, "max_steps": 1, "max_value": 10, "distractor_rate": 0})
    with pytest.raises(ValueError, match="too small"):
        generate_world(config)


def test_position_does_not_tell_the_role():
    """Chains of several lengths and filler before, between and after the steps: the first, penultimate and
    last segments are the first step, the source and the final segment only part of the time."""
    options = {**OPTIONS, "min_steps": 2, "max_steps": 4, "check_rate": 0.4, "restatement_rate": 0.3, "detour_rate": 0.4, "after_final_rate": 0.15}
    problems = generate_problems(600, seed=9, split="train", **options)
    first_is_step = penultimate_is_source = last_is_final = 0
    for problem in problems:
        roles = [s.role for s in problem.segments]
        steps = [index for index, role in enumerate(roles) if role in (SOURCE, UPSTREAM)]
        assert roles[steps[-1]] == SOURCE and all(roles[index] == UPSTREAM for index in steps[:-1])  # steps keep their order
        first_is_step += roles[0] in (SOURCE, UPSTREAM)
        penultimate_is_source += roles[-2] == SOURCE
        last_is_final += roles[-1] == FINAL
    assert {p.n_steps for p in problems} == {2, 3, 4}
    for count in (first_is_step, penultimate_is_source, last_is_final):
        assert 0.1 < count / len(problems) < 0.9, (first_is_step, penultimate_is_source, last_is_final)


def test_heldout_skeletons_are_seeded_and_cover_every_length():
    chosen = heldout_skeletons(0, 0.15, 2, 4)
    assert chosen == heldout_skeletons(0, 0.15, 2, 4) and chosen != heldout_skeletons(1, 0.15, 2, 4)
    assert {len(signs) for signs in chosen} == {2, 3, 4, 5}  # the all-relevant form adds a step
    assert sum(len(signs) == 5 for signs in chosen) == round(0.15 * 32)
    assert heldout_skeletons(0, 0.0, 2, 4) == frozenset()


def test_no_training_problem_has_a_heldout_skeleton():
    config = WorldConfig(n_train=600, n_traces=50, n_eval=60, n_eval_heldout_skeleton=40)
    tables = generate_world(config)
    held_out = heldout_skeletons(config.seed, config.heldout_skeleton_share, config.problems.min_steps, config.problems.max_steps)
    problems = tables.problems
    training = problems[problems["split"] != "eval"]
    assert not set(training["skeleton"]) & held_out
    # Nor the all-relevant forms the student warms up on: their chains have the distractor's action as a step
    # (a step writes "buys 3 more: a plus b is c." or "..., the last step."; a detour's ends "No, drop that.").
    relevant_signs = {
        "".join("+" if op == "plus" else "-" for op in re.findall(r"(?:more|away \d+|loses \d+): \d+ (plus|minus) \d+ is \d+(?:\.(?! No)|, the last step)", reasoning))
        for reasoning in training.loc[training["has_distractor"], "reasoning_all_relevant"]
    }
    assert relevant_signs and not relevant_signs & held_out
    evaluation = problems[problems["split"] == "eval"]
    assert evaluation["heldout_skeleton"].sum() == 40 and evaluation.loc[evaluation["heldout_skeleton"], "skeleton"].isin(held_out).all()
    assert not evaluation.loc[~evaluation["heldout_skeleton"], "skeleton"].isin(held_out).any()
    assert not (problems.loc[problems["split"] != "eval", "heldout_skeleton"]).any()


def test_disjoint_distractor_owners_come_from_their_own_names_and_leave_the_rest_of_the_draw_alone():
    from tracesieve.world import problems

    options = {"min_steps": 2, "max_steps": 3, "max_value": 20, "distractor_rate": 1.0, "check_rate": 0.4,
               "restatement_rate": 0.3, "detour_rate": 0.4}
    shared = problems.generate_problems(50, seed=7, split="traces", **options)
    disjoint = problems.generate_problems(50, seed=7, split="traces", distractor_owners="disjoint", **options)
    for one, other in zip(shared, disjoint, strict=True):
        owner = one.question.split()[0]
        distractor_owner = other.distractors[0].text.split()[1]
        assert distractor_owner in problems.OTHER_NAMES and owner in problems.NAMES
        assert other.question.split()[0] == owner and other.answer == one.answer and other.reasoning == one.reasoning
    with pytest.raises(ValueError, match="distractor_owners must be one of"):
        problems.generate_problems(1, seed=7, split="traces", distractor_owners="mixed", **options)


def test_step_form_detours_look_like_steps_and_the_next_step_continues_from_the_count_before_them():
    import re

    from tracesieve.world.problems import generate_problems

    step = re.compile(r"then (\w+) (?:buys|finds|gives away|loses) (\d+)(?: more)?: (\d+) (plus|minus) (\d+) is (\d+)\.")
    problems = generate_problems(300, seed=3, split="traces", min_steps=3, max_steps=5, max_value=20, distractor_rate=0.0,
                                 check_rate=0.0, restatement_rate=0.0, detour_rate=0.6, detour_form="step")
    detours = 0
    for problem in problems:
        last_real = int(re.match(r"\w+ has (\d+) ", problem.question).group(1))  # the start, before the first step
        for segment in problem.segments:
            text = problem.reasoning[segment.start:segment.end]
            if segment.role == "detour":
                detours += 1
                match = step.search(text)
                assert match is not None and "drop" not in text, text  # a real step's surface form, never retracted
                assert int(match.group(3)) == last_real  # applied to the last real count
                assert match.group(6) != problem.answer  # the answer's value stays the source step's alone
            elif segment.role in ("upstream", "source"):
                numbers = re.findall(r"(\d+) (?:plus|minus) (\d+) is (\d+)", text)[0]
                assert int(numbers[0]) == last_real  # continues from the count before any detour
                last_real = int(numbers[2])
    assert detours > 200
    with pytest.raises(ValueError, match="detour_form must be one of"):
        generate_problems(1, seed=0, split="x", min_steps=3, max_steps=3, max_value=20, distractor_rate=0.0, check_rate=0.0,
                          restatement_rate=0.0, detour_rate=0.5, detour_form="sideways")


def test_skip_lines_handle_each_distractor_where_it_stands_naming_its_owner_beside_the_asked_one():
    from tracesieve.world.problems import generate_problems

    problems = generate_problems(100, seed=5, split="traces", min_steps=2, max_steps=3, max_value=20, distractor_rate=1.0,
                                 check_rate=0.3, restatement_rate=0.0, detour_rate=0.0, distractor_skip_lines=True)
    for problem in problems:
        (distractor,) = problem.distractors
        (skip,) = [s for s in problem.segments if s.role == SKIP]
        text = problem.reasoning[skip.start:skip.end]
        owner, action = distractor.text.strip().removeprefix("Then ").rstrip(".").split(" ", 1)
        asked = problem.question.split(" ", 1)[0]
        assert text.strip().endswith(f"{owner} {action}, but {owner} is not {asked}: skip.")
        # in the order of the question: as many of the owner's steps come before it as sentences do
        steps_before = sum(s.role in ("upstream", "source") for s in problem.segments if s.start < skip.start)
        assert steps_before == problem.question[: distractor.start].count(". Then ")
    plain = generate_problems(20, seed=5, split="traces", min_steps=2, max_steps=3, max_value=20, distractor_rate=1.0,
                              check_rate=0.3, restatement_rate=0.0, detour_rate=0.0)
    assert not any(s.role == SKIP for problem in plain for s in problem.segments)  # off by default: the reference trace never mentions it


def test_the_new_verbs_appear_only_in_worlds_that_ask_for_them_and_count_as_their_sign_says():
    """``action_set: with_new`` adds "earns" (+) and "spends" (-): the skill a base warmed up on the common verbs
    lacks. The common set draws exactly what it drew before the option existed (same seed, same problems)."""
    options = dict(min_steps=2, max_steps=4, max_value=20, distractor_rate=0.3, check_rate=0.3, restatement_rate=0.2, detour_rate=0.4,
                   detour_form="step")
    common = generate_problems(200, seed=7, split="traces", **options)
    assert common == generate_problems(200, seed=7, split="traces", action_set="common", **options)
    assert not any(re.search(r"\b(earns|spends)\b", p.question + p.reasoning) for p in common)
    new = generate_problems(200, seed=7, split="traces", action_set="with_new", **options)
    assert sum(bool(re.search(r"\b(earns|spends)\b", p.question)) for p in new) > 100
    for problem in new:
        for verb, amount, before, word, _, after in re.findall(r"then \w+ (earns|spends) (\d+): (\d+) (plus|minus) (\d+) is (\d+)", problem.reasoning):
            assert word == ("plus" if verb == "earns" else "minus")
            assert int(after) == int(before) + (int(amount) if verb == "earns" else -int(amount))
    with pytest.raises(ValueError, match="action_set must be one of"):
        generate_problems(1, seed=0, split="x", action_set="exotic", **options)
