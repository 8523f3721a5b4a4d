"""LeaF's intervention check: what each model is asked, and which counterfactuals are kept."""

import pandas as pd

import tracesieve.leaf.intervention as intervention
from tests.leaf.conftest import tiny_llama
from tracesieve.config import LeafConfig
from tracesieve.generation import Completion
from tracesieve.leaf.examples import leaf_example


def _counterfactuals(traces):
    rows = []
    for index, trace in enumerate(traces.head(3).itertuples(index=False)):
        rows.append({"trace_id": trace.trace_id, "counterfactual_index": 0, "spans": [[0, 4]], "answer": str(trace.answer), "row": index})
    return pd.DataFrame(rows)


def test_both_models_answer_the_pruned_prompt_and_only_counterfactuals_both_solve_are_kept(world, monkeypatch):
    tokenizer, _, traces = world
    counterfactuals = _counterfactuals(traces)
    teacher, student = tiny_llama(tokenizer, seed=1), tiny_llama(tokenizer, seed=2)
    # Which counterfactuals each model solves, set by hand: the rule under test is "kept = both right".
    solved = {id(teacher): [True, True, False], id(student): [True, False, False]}
    # The student on the unpruned examples: wrong on the first two, right on the third.
    solved_originals = [False, False, True]
    asked = {}

    def answers(model, tokenizer_, prompts, *, max_new_tokens, batch_size):
        originals = id(model) in asked  # the student's second call: the original examples
        asked[(id(model), "originals") if originals else id(model)] = list(prompts)
        rights = solved_originals if originals else solved[id(model)]
        return [
            Completion(prompt_index=i, sample_index=0, text=f"\\boxed{{{gold if right else 'wrong'}}}", n_tokens=3, truncated=False)
            for i, (right, gold) in enumerate(zip(rights, counterfactuals["answer"]))
        ]

    monkeypatch.setattr(intervention, "generate_from_prompts", answers)
    config = LeafConfig()
    checked = intervention.check_counterfactuals(counterfactuals, traces, teacher, student, tokenizer, config)
    assert checked["teacher_correct"].tolist() == [True, True, False]
    assert checked["student_correct"].tolist() == [True, False, False]
    assert checked["kept"].tolist() == [True, False, False]
    # Each model is asked the counterfactual prompt: the chat context with the span deleted from the question.
    for trace, prompt in zip(traces.head(3).itertuples(index=False), asked[id(teacher)]):
        example = leaf_example(tokenizer, trace.trace_id, trace.question, trace.reasoning, trace.answer)
        assert prompt == example.pruned([(0, 4)]).context and trace.question[4:] in prompt and trace.question not in prompt
    assert asked[id(student)] == asked[id(teacher)]
    # The student is also asked each original example, once per trace, unpruned.
    first = traces.iloc[0]
    assert asked[(id(student), "originals")][0] == leaf_example(tokenizer, first.trace_id, first.question, first.reasoning, first.answer).context
    assert checked["student_original_correct"].tolist() == [False, False, True]
    summary = intervention.intervention_summary(checked)
    # Of the two counterfactuals whose original the student got wrong, pruning turned one right.
    assert summary == {"counterfactuals": 3, "teacher_correct": 2, "student_correct": 1, "kept": 1, "kept_share": 1 / 3,
                       "traces_with_kept_counterfactual": 1, "student_wrong_to_right_share": 0.5}


def test_with_the_check_off_nothing_is_generated_and_everything_is_kept(world, monkeypatch):
    tokenizer, _, traces = world
    monkeypatch.setattr(intervention, "generate_from_prompts", lambda *args, **kwargs: (_ for _ in ()).throw(AssertionError("generated")))
    config = LeafConfig(intervention_check=False)
    checked = intervention.check_counterfactuals(_counterfactuals(traces), traces, None, None, tokenizer, config)
    assert checked["kept"].all() and checked["teacher_correct"].isna().all()
    assert intervention.intervention_summary(checked) == {"counterfactuals": 3, "kept": 3}
