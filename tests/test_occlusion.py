"""Segment occlusion: the answer's teacher-forced log-probability with and without each segment."""

import pandas as pd
import pytest
import torch

from tracesieve.modeling import build_llama
from tracesieve.occlusion import OCCLUSION_COLUMNS, answer_log_probs, segment_occlusion
from tracesieve.rendering import encode_example
from tracesieve.segmentation import split_segments
from tracesieve.world.tokenizer import build_word_tokenizer

QUESTION = "Tom has 3 books. How many books does Tom have now?"
REASONING = "First, 3 plus 4 is 7.\n\nWait, 7 books.\n\nAlternatively, 3 and 4 make 7."


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tokenizer = build_word_tokenizer([QUESTION, REASONING], numbers_up_to=20)
    model = build_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=256, seed=0)
    return model, tokenizer


def _direct(model, tokenizer, reasoning):
    """f by hand, one unpadded example: sum over answer tokens t of log softmax(logits[t - 1])[x_t]."""
    example = encode_example(tokenizer, QUESTION, reasoning, "7")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([example.input_ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    return float(sum(log_probs[t - 1, example.input_ids[t]] for t in example.target_positions))


def test_batched_log_probs_equal_a_direct_computation_per_example(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.train()  # left as it was found
    reasonings = [REASONING, "First, 3 plus 4 is 7.", ""]
    encoded = [encode_example(tokenizer, QUESTION, reasoning, "7") for reasoning in reasonings]
    scores = answer_log_probs(model, encoded, pad_token_id=tokenizer.pad_token_id)
    assert model.training
    model.eval()
    assert scores == pytest.approx([_direct(model, tokenizer, reasoning) for reasoning in reasonings], rel=1e-4)


def test_each_segments_drop_is_the_score_lost_by_deleting_exactly_it(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    model.eval()
    spans = split_segments(REASONING)
    traces = pd.DataFrame({"trace_id": ["t"], "question": [QUESTION], "reasoning": [REASONING], "answer": ["7"]})
    segments = pd.DataFrame({"trace_id": "t", "segment_index": range(len(spans)), "char_start": [s for s, _ in spans], "char_end": [e for _, e in spans]})
    table = segment_occlusion(model, tokenizer, traces, segments)
    assert list(table.columns) == OCCLUSION_COLUMNS and len(table) == len(spans) == 3
    full = _direct(model, tokenizer, REASONING)
    for row, (start, end) in zip(table.itertuples(), spans):
        without = _direct(model, tokenizer, REASONING[:start] + REASONING[end:])
        assert row.answer_log_prob == pytest.approx(full, rel=1e-4)
        assert row.drop == pytest.approx(full - without, rel=1e-3, abs=1e-5)
    with pytest.raises(ValueError, match="trace 'u' has no segments"):
        segment_occlusion(model, tokenizer, traces.assign(trace_id="u"), segments)
