"""Which analysed tokens each model leans on: the gradient norm of the response loss at every input embedding.

For a model M and an example (context X, reference response y), L_M = mean cross-entropy of y given X
(context labels masked); g_i = ||dL_M/de_i||_2 for every token i of the analysed span: the question
(instruction level) or a prefix of the reasoning moved into the context (response level). Each model's g
is min-max normalised over the span; the teacher's is carried onto the student's tokens through character
offsets (tokenizers may differ); delta = g_T - g_S is min-max normalised again. Low delta: a token the
student attends to much more than the teacher does, a confounder candidate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tracesieve.content_keys import content_key, trace_key
from tracesieve.leaf.examples import EncodedLeafExample, encode_leaf_example, leaf_example
from tracesieve.modeling import input_gradient_mode, right_pad, right_padded_batch
from tracesieve.result_store import ResultStore, ResumableResult

if TYPE_CHECKING:  # the schemas import this package's names
    from tracesieve.config import LeafConfig

logger = logging.getLogger(__name__)
GRADIENT_COLUMNS = ["trace_id", "token_index", "start", "end", "text", "g_teacher", "g_student", "delta"]
REJECT_COLUMNS = ["trace_id", "kind", "reason"]


class TokenAlignmentError(ValueError):
    """The teacher's and the student's tokens cannot be matched through character offsets."""


def response_loss_gradient_norms(model, encoded: Sequence[EncodedLeafExample], *, pad_token_id: int) -> list[np.ndarray]:
    """g_i = ||dL/de_i||_2 at each example's analysed tokens, L its mean response cross-entropy; one batch.

    Rows are right-padded: under the causal mask no real position sees a pad, and the summed per-example
    losses give every row the gradient of its own loss. Weights are frozen; only the embeddings get gradients.
    """
    embedding = model.get_input_embeddings()
    device = embedding.weight.device
    ids, attention = right_padded_batch([example.input_ids for example in encoded], pad_token_id, device)
    response = right_pad([example.response_mask for example in encoded], 0, device).bool()
    with input_gradient_mode(model, gradient_checkpointing=False):
        embeds = embedding(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeds, attention_mask=attention, use_cache=False).logits
        # Logits at position t predict token t + 1: the loss of response token t + 1 is read at t.
        targets = response[:, 1:]
        token_loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none")
        per_example = (token_loss * targets).sum(1) / targets.sum(1).clamp(min=1)
        (gradient,) = torch.autograd.grad(per_example.sum(), embeds)
    norms = gradient.float().norm(dim=-1).cpu().numpy()
    return [norms[row, example.analysed_positions] for row, example in enumerate(encoded)]


def min_max(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant vector (nothing to tell apart) becomes all zeros."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    return np.zeros_like(values) if high - low <= 0 else (values - low) / (high - low)


def align_scores(
    target_offsets: Sequence[tuple[int, int]], source_offsets: Sequence[tuple[int, int]], source_scores: np.ndarray, *, names: tuple[str, str]
) -> np.ndarray:
    """``source_scores`` carried onto the target tokens: each target token takes the overlap-weighted mean
    of the source tokens sharing its characters. Identical tokenisations pass through unchanged."""
    if list(target_offsets) == list(source_offsets):
        return np.asarray(source_scores, dtype=np.float64)
    target = np.asarray(target_offsets, dtype=np.int64).reshape(-1, 2)
    source = np.asarray(source_offsets, dtype=np.int64).reshape(-1, 2)
    overlap = np.minimum(target[:, None, 1], source[None, :, 1]) - np.maximum(target[:, None, 0], source[None, :, 0])
    overlap = np.clip(overlap, 0, None).astype(np.float64)
    covered = overlap.sum(1)
    if np.any(covered == 0):
        start, end = target[np.argmax(covered == 0)]
        raise TokenAlignmentError(
            f"cannot align the tokens of {names[1]} with those of {names[0]}: characters {start}-{end} of the analysed "
            f"text belong to a token of {names[1]} but to no token of {names[0]}"
        )
    return overlap @ np.asarray(source_scores, dtype=np.float64) / covered


def gradient_delta(teacher_scores: np.ndarray, student_scores: np.ndarray) -> np.ndarray:
    """delta = min-max(g_T - g_S) for scores already min-max normalised and on the same tokens."""
    return min_max(np.asarray(teacher_scores) - np.asarray(student_scores))


def _tokenizer_name(tokenizer) -> str:
    return f"{type(tokenizer).__name__}({tokenizer.name_or_path or 'unnamed'}, {len(tokenizer)} tokens)"


@dataclass(kw_only=True)
class GradientComparison(ResumableResult):
    """Per student token of every analysed example: g_T, g_S, delta; beside the rejects and counts every
    resumable stage has."""

    scores: pd.DataFrame


def compare_gradients(
    traces: pd.DataFrame,
    teacher,
    student,
    teacher_tokenizer,
    config: LeafConfig,
    *,
    student_tokenizer=None,
    store: ResultStore | None = None,
) -> GradientComparison:
    """Teacher-versus-student gradient comparison for every trace of a ``traces`` table.

    ``config`` gives the level, the response prefix share, the batch size and ``max_tokens``. Scores are on
    the student's tokens. A trace is rejected with its reason when it cannot be analysed
    (too long, nothing to analyse, no paragraph break at the response level); a trace whose tokens cannot
    be aligned across two different tokenizers stops the run, naming both. Finished examples are saved to
    ``store`` after each batch, so a killed run resumes without redoing them.
    """
    level, response_prefix_share = config.level, config.response_prefix_share
    batch_size, max_tokens = config.gradient_batch_size, config.max_tokens
    student_tokenizer = student_tokenizer or teacher_tokenizer
    names = (_tokenizer_name(teacher_tokenizer), _tokenizer_name(student_tokenizer))
    settings = {"level": level, "response_prefix_share": response_prefix_share if level == "response" else None}
    fingerprint = "leaf-" + content_key(settings, models=[teacher, student], tokenizers=[teacher_tokenizer, student_tokenizer])
    keys = [trace_key(row.trace_id, row.question, row.reasoning, row.answer) for row in traces.itertuples(index=False)]
    finished = store.finished(fingerprint, keys, "the gradient comparison") if store else {}
    pending, rejects, records = [], [], []
    resumed = 0
    for row, key in zip(traces.itertuples(index=False), keys, strict=True):
        if (record := finished.get(key)) is not None:
            records.append(record)
            resumed += 1
            continue
        try:
            examples = [
                leaf_example(tokenizer, row.trace_id, row.question, row.reasoning, row.answer, level=level, response_prefix_share=response_prefix_share)
                for tokenizer in (teacher_tokenizer, student_tokenizer)
            ]
            encoded = [encode_leaf_example(tokenizer, example) for tokenizer, example in zip((teacher_tokenizer, student_tokenizer), examples, strict=True)]
        except ValueError as error:
            rejects.append({"trace_id": row.trace_id, "kind": "cannot_render", "reason": f"trace {row.trace_id!r}: {error}"})
            continue
        longest = max(len(item.input_ids) for item in encoded)
        if longest > max_tokens:
            reason = f"trace {row.trace_id!r}: {longest} tokens, over leaf.max_tokens={max_tokens}"
            rejects.append({"trace_id": row.trace_id, "kind": "too_long", "reason": reason})
            continue
        if not encoded[1].analysed_positions:
            rejects.append({"trace_id": row.trace_id, "kind": "nothing_to_analyse", "reason": f"trace {row.trace_id!r}: the analysed span has no tokens"})
            continue
        pending.append((row, key, examples[1].analysed_text, *encoded))  # the student's tokens carry the scores
    # Similar lengths share a batch, so little compute goes to padding.
    pending.sort(key=lambda item: len(item[4].input_ids))
    for start in tqdm(range(0, len(pending), batch_size), desc="gradient comparison", unit="batch", mininterval=2):
        batch = pending[start : start + batch_size]
        teacher_norms = response_loss_gradient_norms(teacher, [item[3] for item in batch], pad_token_id=teacher_tokenizer.pad_token_id)
        student_norms = response_loss_gradient_norms(student, [item[4] for item in batch], pad_token_id=student_tokenizer.pad_token_id)
        for (row, key, text, on_teacher, on_student), g_teacher, g_student in zip(batch, teacher_norms, student_norms, strict=True):
            teacher_scores = align_scores(on_student.analysed_offsets, on_teacher.analysed_offsets, min_max(g_teacher), names=names)
            student_scores = min_max(g_student)
            record = {
                "trace_id": row.trace_id,
                "starts": [start for start, _end in on_student.analysed_offsets],
                "ends": [end for _start, end in on_student.analysed_offsets],
                "texts": [text[start:end] for start, end in on_student.analysed_offsets],
                "g_teacher": teacher_scores.tolist(),
                "g_student": student_scores.tolist(),
                "delta": gradient_delta(teacher_scores, student_scores).tolist(),
            }
            if store:
                store.save(fingerprint, key, record)
            records.append(record)
    rows = [
        {
            "trace_id": record["trace_id"],
            "token_index": index,
            "start": record["starts"][index],
            "end": record["ends"][index],
            "text": record["texts"][index],
            "g_teacher": record["g_teacher"][index],
            "g_student": record["g_student"][index],
            "delta": record["delta"][index],
        }
        for record in records
        for index in range(len(record["starts"]))
    ]
    scores = pd.DataFrame(rows, columns=GRADIENT_COLUMNS).sort_values(["trace_id", "token_index"], ignore_index=True)
    return GradientComparison(scores=scores, rejects=pd.DataFrame(rejects, columns=REJECT_COLUMNS), resumed=resumed,
                              computed=len(records) - resumed)


def gradient_comparison_summary(comparison: GradientComparison, seconds: float) -> dict[str, float]:
    """Traces analysed, rejected and resumed, analysed tokens per trace, seconds."""
    analysed = comparison.scores["trace_id"].nunique()
    return {
        "traces_analysed": analysed,
        "traces_rejected": len(comparison.rejects),
        "traces_resumed": comparison.resumed,
        "analysed_tokens_mean": comparison.scores.groupby("trace_id").size().mean() if analysed else float("nan"),
        "gradient_seconds": seconds,
    }
