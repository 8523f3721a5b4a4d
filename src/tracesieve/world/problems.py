"""Synthetic multi-step arithmetic problems with long reasoning traces whose segments have planted roles.

Every trace is a sequence of segments, each with a known role:

- ``necessary``: one arithmetic step of the solution chain;
- ``check``: a reflective re-check of the step just made (correct, but adds nothing new);
- ``restatement``: repeats a quantity already known;
- ``detour``: an abandoned side computation (often on a distractor quantity);
- ``final``: states the final answer.

Segments after the first start with ``"\\n\\n" + keyword`` where the keyword is one the paper's segmenter
splits on, so the paper's reflection-keyword split recovers the planted segments exactly. Keywords are
shared between roles on purpose: the keyword alone must not give the role away.

Prompts may carry distractor sentences (irrelevant quantities) whose character spans are recorded, for
LeaF's confounder analysis.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ROLES = ("necessary", "check", "restatement", "detour", "final")

NAMES = ("Tom", "Ann", "Ben", "Lucy", "Sam", "Mia", "Leo", "Eva", "Max", "Zoe")
ITEMS = ("apples", "coins", "cards", "books", "pens", "stamps", "shells", "marbles")
OTHER_ITEMS = ("cats", "chairs", "lamps", "boats", "hats", "kites")

# Openers of segments after the first; each begins with a reflection keyword of the paper's regex.
STEP_OPENERS = ("Going back to the question:", "Wait, there is more:", "However, the story goes on:")
CHECK_OPENERS = ("Wait, let me check:", "But wait, is that right?", "But just to be sure:")
RESTATEMENT_OPENERS = ("Another way to say it:", "Going back over it:", "Trace back:")
DETOUR_OPENERS = ("Alternatively,", "But alternatively,", "Not sure, but maybe", "Backtrack:")
FINAL_OPENERS = ("But just to finish:", "Another look at the end:")
# Each change in a question opens with an ordinal marker, so the order of the steps is stated in words
# rather than left to counting sentences (which a model of a few hundred thousand parameters cannot do).
ORDINALS = {1: ("Then",), 2: ("First", "Last"), 3: ("First", "Then", "Last"), 4: ("First", "Then", "Next", "Last")}


@dataclass(frozen=True)
class Segment:
    """A planted segment: character span ``[start, end)`` in the reasoning text and its role."""

    start: int
    end: int
    role: str


@dataclass(frozen=True)
class Distractor:
    """A planted distractor sentence: character span ``[start, end)`` in the question."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class WorldProblem:
    """One problem of the world, its reasoning trace and the planted annotations."""

    trace_id: str
    question: str
    reasoning: str
    answer: str
    segments: tuple[Segment, ...]
    distractors: tuple[Distractor, ...]
    n_steps: int

    def to_record(self) -> dict:
        """The world's own JSON record format (what the ingestion pipeline reads back)."""
        return {
            "trace_id": self.trace_id,
            "question": self.question,
            "reasoning": self.reasoning,
            "answer": self.answer,
            "segments": [{"start": s.start, "end": s.end, "role": s.role} for s in self.segments],
            "distractors": [{"start": d.start, "end": d.end, "text": d.text} for d in self.distractors],
            "n_steps": self.n_steps,
        }


@dataclass(frozen=True)
class _Step:
    op: str  # "add", "sub" or "double"
    amount: int
    before: int
    after: int
    sentence: str  # the question's sentence for this step


@dataclass
class _TraceBuilder:
    parts: list[str] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    length: int = 0

    def add(self, text: str, role: str) -> None:
        if self.parts:
            text = "\n\n" + text
        self.segments.append(Segment(self.length, self.length + len(text), role))
        self.parts.append(text)
        self.length += len(text)

    def text(self) -> str:
        return "".join(self.parts)


def _choose_steps(rng: random.Random, start: int, n_steps: int, max_value: int, item: str) -> list[_Step]:
    steps: list[_Step] = []
    value = start
    for marker in ORDINALS[n_steps]:
        ops = []
        if value <= max_value - 2:
            ops.append("add")
        if value >= 2:
            ops.append("sub")
        if 2 <= value <= max_value // 2:
            ops.append("double")
        op = rng.choice(ops)
        if op == "add":
            amount = rng.randint(2, min(9, max_value - value))
            after = value + amount
            sentence = rng.choice((f"{marker}, they buy {amount} more {item}.", f"{marker}, they find {amount} more {item}."))
        elif op == "sub":
            amount = rng.randint(2, min(9, value))
            after = value - amount
            sentence = rng.choice((f"{marker}, they give away {amount} {item}.", f"{marker}, they lose {amount} {item}."))
        else:
            amount = 2
            after = value * 2
            sentence = f"{marker}, the number of {item} doubles."
        steps.append(_Step(op, amount, value, after, sentence))
        value = after
    return steps


def _arithmetic(step: _Step) -> str:
    if step.op == "add":
        return f"{step.before} plus {step.amount} is {step.after}."
    if step.op == "sub":
        return f"{step.before} minus {step.amount} is {step.after}."
    return f"{step.before} times 2 is {step.after}."


def _inverse_check(step: _Step) -> str:
    if step.op == "add":
        return f"{step.after} minus {step.amount} is {step.before}, so {step.after} is right."
    if step.op == "sub":
        return f"{step.after} plus {step.amount} is {step.before}, so {step.after} is right."
    return f"{step.before} plus {step.before} is {step.after}, so {step.after} is right."


def _detour(rng: random.Random, value: int, distractor_amount: int | None, other_item: str | None, max_value: int) -> str:
    opener = rng.choice(DETOUR_OPENERS)
    if distractor_amount is not None and value + distractor_amount <= max_value and rng.random() < 0.6:
        total = value + distractor_amount
        return (
            f"{opener} the {distractor_amount} {other_item} matter: {value} plus {distractor_amount} is {total}. "
            f"No, the {other_item} are not part of the question, so I drop this."
        )
    if 2 <= value <= max_value // 2:
        return (
            f"{opener} the number doubles again: {value} times 2 is {value * 2}. "
            "No, the question does not say that, so I drop this."
        )
    amount = rng.randint(1, min(9, value)) if value > 0 else 0
    return (
        f"{opener} some are lost again: {value} minus {amount} is {value - amount}. "
        "No, the question does not say that, so I drop this."
    )


def generate_problem(
    rng: random.Random,
    trace_id: str,
    *,
    min_steps: int,
    max_steps: int,
    max_value: int,
    distractor_rate: float,
    check_rate: float,
    restatement_rate: float,
    detour_rate: float,
) -> WorldProblem:
    """Draw one problem, its question with optional distractor, and its trace with planted roles."""
    name = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    n_steps = rng.randint(min_steps, max_steps)
    start = rng.randint(2, max_value // 2)
    steps = _choose_steps(rng, start, n_steps, max_value, item)

    sentences = [f"{name} has {start} {item}."] + [step.sentence for step in steps]
    distractor_amount: int | None = None
    other_item: str | None = None
    distractor_index = -1
    if rng.random() < distractor_rate:
        distractor_amount = rng.randint(2, 9)
        other_item = rng.choice(OTHER_ITEMS)
        distractor_index = rng.randint(1, len(sentences))
        sentences.insert(distractor_index, f"{name} also has {distractor_amount} {other_item}.")
    sentences.append(f"How many {item} does {name} have now?")

    question = ""
    distractors: list[Distractor] = []
    for index, sentence in enumerate(sentences):
        if question:
            question += " "
        if index == distractor_index:
            distractors.append(Distractor(len(question), len(question) + len(sentence), sentence))
        question += sentence

    trace = _TraceBuilder()
    trace.add(f"{name} starts with {start} {item}.", "necessary")
    for step_index, step in enumerate(steps):
        # The step quotes its question sentence token for token, so a small model can copy it.
        trace.add(f"{rng.choice(STEP_OPENERS)} {step.sentence} {_arithmetic(step)}", "necessary")
        if rng.random() < check_rate:
            trace.add(f"{rng.choice(CHECK_OPENERS)} {_inverse_check(step)}", "check")
        if step_index < len(steps) - 1 and rng.random() < restatement_rate:
            trace.add(f"{rng.choice(RESTATEMENT_OPENERS)} {name} now has {step.after} {item}.", "restatement")
        if rng.random() < detour_rate:
            trace.add(_detour(rng, step.after, distractor_amount, other_item, max_value), "detour")
    answer = steps[-1].after
    trace.add(f"{rng.choice(FINAL_OPENERS)} {name} has {answer} {item} in the end.", "final")

    return WorldProblem(
        trace_id=trace_id,
        question=question,
        reasoning=trace.text(),
        answer=str(answer),
        segments=tuple(trace.segments),
        distractors=tuple(distractors),
        n_steps=n_steps,
    )


def generate_problems(n: int, *, seed: int, split: str, **options) -> list[WorldProblem]:
    """Draw ``n`` problems deterministically from ``seed``; ``split`` names them and salts the seed."""
    # The split salts the stream so that train, trace and eval sets never share a random sequence.
    rng = random.Random(f"{seed}:{split}")
    return [generate_problem(rng, f"world-{split}-{index:05d}", **options) for index in range(n)]
