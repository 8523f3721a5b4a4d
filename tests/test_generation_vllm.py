"""The vLLM evaluation engine against the hf one on SmolLM2: the same generations table, greedy and sampled.

vLLM is an optional extra (``make setup-vllm`` on a CPU machine): without it these tests are skipped, and
the engine setting says how to install it. CI does not install it (docs/scaling.md: evaluation engines).
"""

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tracesieve.config import EvaluationConfig
from tracesieve.evaluation import evaluate_on_problems
from tracesieve.generation import generate_completions

QUESTIONS = [
    "Tom has 5 apples and eats 2. How many apples are left?",
    "A box holds 12 pencils. How many pencils are in 3 boxes?",
    "Sara reads 15 pages a day. How many pages does she read in 4 days?",
    "There are 40 birds on a tree and 15 fly away. How many are left?",
    "A train travels 60 km each hour. How far does it go in 3 hours?",
    "Ben had 30 marbles and gave 12 to Ann. How many marbles does he have now?",
]


def test_without_vllm_the_engine_setting_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    model = torch.nn.Linear(1, 1)
    with pytest.raises(ImportError, match="make setup-vllm"):
        generate_completions(model, None, [], max_new_tokens=1, engine="vllm")
    with pytest.raises(ValueError, match="engine must be one of"):
        generate_completions(model, None, [], max_new_tokens=1, engine="sglang")


@pytest.fixture(scope="module")
def smollm2_model(smollm2):
    pytest.importorskip("vllm", reason="the vllm extra is not installed (make setup-vllm)")
    return AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(smollm2)


@pytest.mark.e2e
def test_vllm_gives_the_hf_engines_generations_table(smollm2_model):
    model, tokenizer = smollm2_model
    problems = pd.DataFrame({"problem_id": [f"p{i}" for i in range(len(QUESTIONS))], "question": QUESTIONS, "answer": ["3", "36", "60", "25", "180", "18"]})
    config = EvaluationConfig(max_new_tokens=48, batch_size=8)
    hf, hf_summary = evaluate_on_problems(model, tokenizer, problems, config)
    vllm, vllm_summary = evaluate_on_problems(model, tokenizer, problems, config.model_copy(update={"engine": "vllm"}))
    assert list(vllm.columns) == list(hf.columns) and vllm.dtypes.equals(hf.dtypes)
    assert vllm["problem_id"].tolist() == hf["problem_id"].tolist() and set(vllm["sample_index"]) == {0}
    # Greedy, float32 on both: the same text, up to a floating-point tie between two tokens somewhere.
    same = vllm["completion"] == hf["completion"]
    assert same.sum() >= len(QUESTIONS) - 1, list(zip(hf["completion"], vllm["completion"]))
    for column in ("n_tokens", "truncated", "predicted", "correct"):
        assert vllm.loc[same, column].tolist() == hf.loc[same, column].tolist(), column
    assert set(vllm_summary) == set(hf_summary)


@pytest.mark.e2e
def test_vllm_samples_n_per_prompt_reproducibly_from_the_seed(smollm2_model):
    model, tokenizer = smollm2_model
    options = dict(max_new_tokens=24, num_samples=3, temperature=0.7, top_p=0.9, engine="vllm", progress=False,
                   engine_options=EvaluationConfig().vllm)  # vLLM's own default takes 92% of memory
    first = generate_completions(model, tokenizer, QUESTIONS[:2], seed=1, **options)
    again = generate_completions(model, tokenizer, QUESTIONS[:2], seed=1, **options)
    other = generate_completions(model, tokenizer, QUESTIONS[:2], seed=2, **options)
    assert [(c.prompt_index, c.sample_index) for c in first] == [(p, s) for p in range(2) for s in range(3)]
    assert [c.text for c in first] == [c.text for c in again]
    assert [c.text for c in first] != [c.text for c in other]
    assert len({c.text for c in first if c.prompt_index == 0}) > 1  # samples, not three copies of one
    assert all(0 < c.n_tokens <= 24 for c in first) and all(c.n_tokens == 24 for c in first if c.truncated)
