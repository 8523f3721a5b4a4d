"""Segment occlusion: how much the gold answer's log-probability drops when one segment of the trace is
deleted, teacher-forced. No gradients and no planted labels: it works on any model and any trace, and it is
the reference an attribution method is read against (the world's label-validity gate, issue 15).

For a trace with segments S_1..S_n, drop(S_k) = f(trace) - f(trace without S_k), where f is the summed
log-probability of the answer tokens inside ``\\boxed{}`` (the same target as ``attribution``). A segment the
model reads the answer from has a large positive drop; filler has a drop near 0.
"""

from __future__ import annotations

import pandas as pd
import torch
from tqdm.auto import tqdm

from tracesieve.modeling import answer_score, input_gradient_mode, right_padded_batch
from tracesieve.rendering import encode_example

OCCLUSION_COLUMNS = ["trace_id", "segment_index", "answer_log_prob", "occluded_log_prob", "drop"]


@torch.no_grad()
def answer_log_probs(model, encoded: list, *, pad_token_id: int) -> list[float]:
    """f for each encoded example (``rendering.EncodedExample``): the summed teacher-forced log-probability
    of its answer tokens, in float64. One right-padded batch: under the causal mask no real position sees a pad."""
    device = model.get_input_embeddings().weight.device
    ids, attention = right_padded_batch([example.input_ids for example in encoded], pad_token_id, device)
    with input_gradient_mode(model, gradient_checkpointing=False):  # eval mode, restored afterwards
        logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
    scores = []
    for row, example in enumerate(encoded):
        targets = torch.tensor(example.target_positions, device=device)
        # Logits at position t - 1 predict token t; the softmax is taken only where the answer is read.
        scores.append(float(answer_score(logits[row, targets - 1], ids[row, targets], accumulate=torch.float64)))
    return scores


def segment_occlusion(model, tokenizer, traces: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """drop(S) for every segment of every trace (``OCCLUSION_COLUMNS``): the trace and each of its one-segment
    deletions are scored in one batch. ``segments`` has the segmentation table's ``char_start``/``char_end``."""
    by_trace = {trace_id: group.sort_values("segment_index") for trace_id, group in segments.groupby("trace_id")}
    rows = []
    for trace in tqdm(list(traces.itertuples(index=False)), desc="segment occlusion", unit="trace", mininterval=2):
        own = by_trace.get(trace.trace_id)
        if own is None:
            raise ValueError(f"trace {trace.trace_id!r} has no segments; re-run segmentation")
        variants = [trace.reasoning] + [trace.reasoning[: row.char_start] + trace.reasoning[row.char_end :] for row in own.itertuples()]
        encoded = [encode_example(tokenizer, trace.question, reasoning, trace.answer) for reasoning in variants]
        full, *occluded = answer_log_probs(model, encoded, pad_token_id=tokenizer.pad_token_id)
        for segment, score in zip(own.itertuples(), occluded, strict=True):
            rows.append(
                {"trace_id": trace.trace_id, "segment_index": int(segment.segment_index), "answer_log_prob": full,
                 "occluded_log_prob": score, "drop": full - score}
            )
    return pd.DataFrame(rows, columns=OCCLUSION_COLUMNS)
