"""The embedded world: arithmetic stories whose reasoning traces have planted segment roles that are causal
for a model reading them teacher-forced (issue 15).

A problem follows one owner's count of an item through a chain of actions ("Tom has 7 apples. Then Tom buys
3 more. Then Tom loses 2. How many apples does Tom have now?"); the trace works it out step by step and the
answer is the last step's result. Roles:

- ``source``: the last step. It writes the value the answer consumes, and that value is written nowhere
  else: not in an earlier step (no start, amount or intermediate count equals it), not in the final
  segment, not in filler. Delete it and a teacher-forced model has to redo the step inside the answer.
- ``upstream``: an earlier step; it feeds the next step, not the answer, so under teacher forcing (the next
  step restates its result) answer-IG is blind to it by construction. Reported apart.
- ``check``, ``restatement``, ``detour``: filler. Numbers of the same kind and size, never the answer's
  value. A check re-verifies an upstream step or re-reads the question, a restatement repeats the start,
  a detour tries an operation the question does not make and drops it: a model that imitates detours
  learns to write wrong intermediate counts into its own trace.
- ``decoy``: filler (a detour) whose result is the answer's value, reached by another computation: it
  separates attribution from string matching (a decoy trace has ``decoy`` set).
- ``final``: closes the trace. Two regimes of real traces (``final``): ``silent`` writes no number there;
  ``restates`` restates the answer as LIMO's traces do ("**Final Answer** \\boxed{N}"), so that under
  teacher forcing the answer can be copied from it and the source step is no longer the only carrier.

Position says nothing about a role: chains have ``min_steps``..``max_steps`` steps, and each filler segment
lands in a random slot from the first place its content makes sense to the end of the trace, after the
final segment included (a re-check after concluding, as real traces do). So the first, penultimate and last
segments are the first step, the source step and the final segment only some of the time, and the world
summary reports how often (``position_role_share.*``).

A chain's skeleton is the signs of its actions in order ("+-+"). A seeded share of skeletons of each length
is held out: no training, trace or warm-up problem (nor its all-relevant form) has one, and the evaluation
split carries problems of held-out skeletons beside the in-distribution ones (``heldout_skeleton``).

Segments after the first start with ``"\\n\\n" + keyword`` where the keyword is one the paper's segmenter
splits on, so the paper's reflection-keyword split recovers the planted segments exactly. Keywords are
shared between roles on purpose: the keyword alone does not give the role away.

A distractor is the same kind of action by another owner, whom the question does not ask about (GSM-IC
style: "Then Sam buys 4 more."), one character span of the question; the reference trace never mentions
it. Each problem also carries its ``all_relevant`` form, in which that action is the owner's own (question,
trace and answer): LeaF's base student warms up on it, so that such sentences were always relevant to it
and a distractor really misleads it.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tracesieve.choices import ACTION_SETS, DETOUR_FORMS, DISTRACTOR_OWNERS, FINAL_REGIMES

ROLES = ("source", "upstream", "check", "restatement", "detour", "decoy", "final", "skip")
SOURCE, UPSTREAM, FINAL, DECOY = "source", "upstream", "final", "decoy"
# A skip line (``problems.distractor_skip_lines``): the trace handles the distractor sentence where it stands, naming
# its owner beside the asked one, so that skipping it is a local decision (LeaF's teacher, issue 41).
SKIP = "skip"
FILLER = ("check", "restatement", "detour")  # what a trace could lose without changing its answer

NAMES = ("Tom", "Ann", "Ben", "Lucy", "Sam", "Mia", "Leo", "Eva", "Max", "Zoe")
# disjoint: owners and distractor owners come from separate lists, so a distractor is told by its owner's
# name alone (no matching of the action's owner against the question's); shared: both from NAMES.
OTHER_NAMES = ("Kai", "Ivy", "Noah", "Ruby", "Finn")
ITEMS = ("apples", "coins", "cards", "books", "pens", "stamps", "shells", "marbles")

# Openers of segments after the first; each begins with a reflection keyword of the paper's regex.
STEP_OPENERS = ("Going back,", "Wait, next:", "However,")
CHECK_OPENERS = ("Wait, check:", "But wait,", "But just to be sure:")
RESTATEMENT_OPENERS = ("Another way:", "Going back,", "Trace back:")
DETOUR_OPENERS = ("Alternatively,", "But alternatively,", "Not sure, but maybe", "Backtrack:")
FINAL_OPENERS = ("But just to finish:", "Another look:")

# (verb phrase in the question, verb phrase in the trace, sign)
ACTIONS = (("buys {a} more", "buys {a} more", +1), ("finds {a} more", "finds {a} more", +1),
           ("gives away {a}", "gives away {a}", -1), ("loses {a}", "loses {a}", -1))
NEW_ACTIONS = (("earns {a}", "earns {a}", +1), ("spends {a}", "spends {a}", -1))
ACTIONS_BY_SET = dict(zip(ACTION_SETS, (ACTIONS, ACTIONS + NEW_ACTIONS), strict=True))


STEP_DETOUR = "<step-form detour, written where it lands>"  # a placeholder in a filler slot (``_trace``)

@dataclass(frozen=True)
class Segment:
    """A planted segment: character span ``[start, end)`` in the reasoning text and its role."""

    start: int
    end: int
    role: str


@dataclass(frozen=True)
class Distractor:
    """A planted distractor: character span ``[start, end)`` in the question."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class AllRelevant:
    """The problem with its distractor owner asked about too: what the misled student warms up on."""

    question: str
    reasoning: str
    answer: str


@dataclass(frozen=True)
class WorldProblem:
    """One problem of the world, its reasoning trace and the planted annotations."""

    trace_id: str
    question: str
    reasoning: str
    answer: str
    segments: tuple[Segment, ...]
    distractors: tuple[Distractor, ...]
    n_steps: int  # arithmetic steps of the asked owners
    decoy: bool = False
    all_relevant: AllRelevant | None = None  # None: no distractor, the problem is its own all-relevant form
    skeleton: str = ""  # the signs of the owner's actions in order ("+-+")

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
            "skeleton": self.skeleton,
        }

    def renamed(self, trace_id: str) -> WorldProblem:
        return WorldProblem(trace_id, self.question, self.reasoning, self.answer, self.segments, self.distractors,
                            self.n_steps, self.decoy, self.all_relevant, self.skeleton)


@dataclass(frozen=True)
class _Step:
    owner: str
    before: int
    amount: int
    after: int
    question_phrase: str
    trace_phrase: str

    @property
    def arithmetic(self) -> str:
        word = "plus" if self.after > self.before else "minus"
        return f"{self.before} {word} {self.amount} is {self.after}"


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


def _steps(name: str, start: int, actions: list[tuple[int, int, str, str]], max_value: int) -> tuple[_Step, ...] | None:
    """The chain of ``actions`` (sign, amount, question phrase, trace phrase) from ``start``; None when a
    count would leave 1..max_value."""
    steps, value = [], start
    for sign, amount, question_phrase, trace_phrase in actions:
        after = value + sign * amount
        if not 1 <= after <= max_value:
            return None
        steps.append(_Step(name, value, amount, after, question_phrase, trace_phrase))
        value = after
    return tuple(steps)


def _draw_action(rng: random.Random, value: int, max_value: int, verbs=ACTIONS) -> tuple[int, int, str, str]:
    # Only actions that keep the count in 1..max_value, with amounts of at least 2.
    actions = [action for action in verbs if (action[2] > 0 and value <= max_value - 2) or (action[2] < 0 and value >= 3)]
    question_phrase, trace_phrase, sign = rng.choice(actions)
    amount = rng.randint(2, min(9, max_value - value)) if sign > 0 else rng.randint(2, min(9, value - 1))
    return sign, amount, question_phrase.format(a=amount), trace_phrase.format(a=amount)


def _draw_owner(rng: random.Random, name: str, n_steps: int, max_value: int, verbs=ACTIONS) -> tuple[int, list[tuple[int, int, str, str]]]:
    value = start = rng.randint(2, max_value // 2)
    actions = []
    for _ in range(n_steps):
        actions.append(_draw_action(rng, value, max_value, verbs))
        value += actions[-1][0] * actions[-1][1]
    return start, actions


def _causal(start: int, steps: tuple[_Step, ...]) -> bool:
    """Whether the answer (the last step's result) appears in the steps only as that result: no start,
    amount or upstream count equals it, so no step restates what the answer reads from the source step."""
    answer = steps[-1].after
    return answer not in {start, *(step.amount for step in steps), *(step.after for step in steps[:-1])}


def _numbers_ok(numbers: list[int], forbidden: set[int], max_number: int) -> bool:
    return all(0 <= number <= max_number and number not in forbidden for number in numbers)


def _check(rng: random.Random, step: _Step, is_source: bool, forbidden: set[int], max_number: int) -> str | None:
    """A re-check that adds nothing: the inverse of an upstream step, or a re-reading of the question's
    amount for the source step (its result is consumed, so a check of it would restate it)."""
    opener = rng.choice(CHECK_OPENERS)
    if not is_source:
        inverse = "minus" if step.after > step.before else "plus"
        if _numbers_ok([step.after, step.amount, step.before], forbidden, max_number):
            return f"{opener} {step.after} {inverse} {step.amount} is {step.before}."
    if _numbers_ok([step.amount], forbidden, max_number):
        return f"{opener} {step.owner} {step.trace_phrase}, as said."
    return None


def _restatement(rng: random.Random, name: str, start: int, forbidden: set[int], max_number: int) -> str | None:
    if _numbers_ok([start], forbidden, max_number):
        return f"{rng.choice(RESTATEMENT_OPENERS)} {name} started with {start}."
    return None


def _detour(
    rng: random.Random, step: _Step, forbidden: set[int], max_number: int, *, result: int | None = None, avoid: frozenset[int] = frozenset()
) -> str | None:
    """An operation the question does not make, tried on the step's input and dropped. ``result`` forces
    the detour's outcome: a decoy carries the answer's value, reached in one jump from a number that is no
    step's input (``avoid``): from the source step's input it would be the source step itself."""
    base = step.before
    if result is not None:
        base = rng.choice([n for n in range(1, max_number) if n not in avoid | {result}])
    if result is None:
        for _ in range(10):
            amount, sign = rng.randint(2, 9), rng.choice((+1, -1))
            if _numbers_ok([base, amount, base + sign * amount], forbidden, max_number):
                break
        else:
            return None
    else:
        amount, sign = abs(result - base), (+1 if result >= base else -1)
        if amount < 1 or not _numbers_ok([base, amount], forbidden, max_number):
            return None
    word, action = ("plus", f"finds {amount} more") if sign > 0 else ("minus", f"loses {amount}")
    return f"{rng.choice(DETOUR_OPENERS)} {step.owner} {action}: {base} {word} {amount} is {base + sign * amount}. No, drop that."


def _step_detour(rng: random.Random, name: str, count: int, forbidden: set[int], max_number: int, verbs=ACTIONS) -> str | None:
    """A detour in the surface form of a real step (issue 41): a step opener, an action the question does not
    make, applied to the last real count, and no retraction. The next real step continues from ``count``, so a
    model that imitates detours must find the last real count past lines that look like steps."""
    for _ in range(10):
        sign = rng.choice((+1, -1))
        amount = rng.randint(2, 9)
        result = count + sign * amount
        if _numbers_ok([count, amount, result], forbidden, max_number) and result >= 1:
            break
    else:
        return None
    verb = rng.choice([trace for _question, trace, action_sign in verbs if action_sign == sign]).format(a=amount)
    word = "plus" if sign > 0 else "minus"
    return f"{rng.choice(STEP_OPENERS)} then {name} {verb}: {count} {word} {amount} is {result}."


def _placed(
    rng: random.Random, slots: list[list[tuple[str, str]]], earliest: int, text: str | None, role: str, after_final_rate: float
) -> None:
    """Put a filler segment after the final one (at ``after_final_rate``: a re-check after concluding), or
    else in a random slot from ``earliest`` (the first place its content makes sense) up to the final one."""
    if text is None:
        return
    if rng.random() < after_final_rate:
        slots[-1].append((text, role))
    else:
        slots[rng.randint(earliest, len(slots) - 2)].append((text, role))


def _trace(rng: random.Random, name: str, item: str, start: int, steps: tuple[_Step, ...], rates: dict, max_number: int,
           *, decoy: bool, final: str, detour_form: str = "retracted", skip: tuple[int, str, str] | None = None,
           verbs=ACTIONS) -> tuple[str, tuple[Segment, ...], bool]:
    """The reasoning over the chain; returns text, planted segments, whether a decoy was planted.

    Slot ``k`` of ``len(steps) + 2`` holds the filler written before step ``k``; slot ``len(steps)`` the filler
    between the source step and the final segment, the last slot the filler after the final segment (a
    share ``after_final_rate`` of it). A check of a step comes after it, a detour from a step's input from
    that step on, a restatement anywhere.
    """
    answer = steps[-1].after
    forbidden = {answer}
    slots: list[list[tuple[str, str]]] = [[] for _ in range(len(steps) + 2)]
    decoy_at = rng.randrange(len(steps)) if decoy else -1
    planted_decoy = False
    after_final = rates["after_final_rate"]
    for index, step in enumerate(steps):
        is_source = index == len(steps) - 1
        if rng.random() < rates["check_rate"]:
            _placed(rng, slots, index + 1, _check(rng, step, is_source, forbidden, max_number), "check", after_final)
        if rng.random() < rates["restatement_rate"]:
            _placed(rng, slots, 0, _restatement(rng, name, start, forbidden, max_number), "restatement", after_final)
        if rng.random() < rates["detour_rate"]:
            # A step-form detour's text depends on the count where it lands: written when the trace is built.
            detour = STEP_DETOUR if detour_form == "step" else _detour(rng, step, forbidden, max_number)
            _placed(rng, slots, index, detour, "detour", after_final)
        if index == decoy_at:
            text = _detour(rng, step, forbidden, max_number, result=answer, avoid=frozenset(s.before for s in steps))
            if text is not None:
                _placed(rng, slots, index, text, DECOY, after_final)
                planted_decoy = True
    trace = _TraceBuilder()

    def add_fillers(slot: list[tuple[str, str]], count: int) -> None:
        rng.shuffle(slot)
        for text, role in slot:
            if text is STEP_DETOUR:
                text = _step_detour(rng, name, count, forbidden, max_number, verbs)
                if text is None:
                    continue
            trace.add(text, role)

    def add_skip(before_step: int) -> None:
        # (the step the distractor sentence stands before, its owner, its action): skipped there, by owner
        if skip is not None and skip[0] == before_step:
            opener = f"{rng.choice(STEP_OPENERS)} then" if trace.parts else "Then"
            trace.add(f"{opener} {skip[1]} {skip[2]}, but {skip[1]} is not {name}: skip.", SKIP)

    for index, step in enumerate(steps):
        add_fillers(slots[index], step.before)
        add_skip(index)
        is_source = index == len(steps) - 1
        if index == 0:
            body = f"{name} has {start} {item} and {step.trace_phrase}: {step.arithmetic}."
            if trace.parts:  # a filler came first: the step opens with a keyword like every later segment
                body = f"{rng.choice(STEP_OPENERS)} {body}"
        else:
            body = f"{rng.choice(STEP_OPENERS)} then {name} {step.trace_phrase}: {step.arithmetic}."
        if is_source:
            body = body[:-1] + ", the last step."
        trace.add(body, SOURCE if is_source else UPSTREAM)
    add_fillers(slots[len(steps)], answer)
    add_skip(len(steps))
    if final == "restates":
        trace.add(f"{rng.choice(FINAL_OPENERS)} **Final Answer** \\boxed{{{answer}}}", FINAL)
    else:
        trace.add(f"{rng.choice(FINAL_OPENERS)} nothing else happens to {name}.", FINAL)
    add_fillers(slots[len(steps) + 1], answer)
    return trace.text(), tuple(trace.segments), planted_decoy


def skeleton(actions) -> str:
    """A chain's skeleton: the signs of its actions in order, e.g. "+-+" (operations and their order)."""
    return "".join("+" if action[0] > 0 else "-" for action in actions)


def heldout_skeletons(seed: int, share: float, min_steps: int, max_steps: int) -> frozenset[str]:
    """The skeletons no training problem has: of each length from ``min_steps`` to ``max_steps + 1`` (an
    all-relevant form adds a step), ``round(share * count)`` of them and at least one when ``share`` > 0,
    chosen by a seeded hash so that every world seed holds out others."""
    if share <= 0:
        return frozenset()
    chosen: set[str] = set()
    for length in range(min_steps, max_steps + 2):
        every = ["".join(signs) for signs in itertools.product("+-", repeat=length)]
        every.sort(key=lambda signs: hashlib.sha256(f"{seed}:{signs}".encode()).hexdigest())
        chosen.update(every[: max(1, round(share * len(every)))])
    return frozenset(chosen)


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
    decoy_rate: float = 0.0,
    after_final_rate: float = 0.0,
    detour_form: str = "retracted",
    action_set: str = "common",
    distractor_skip_lines: bool = False,
    final: str = "silent",
    distractor_owners: str = "shared",
    accept_skeleton: Callable[[str], bool] | None = None,
    accept_relevant_skeleton: Callable[[str], bool] | None = None,
) -> WorldProblem:
    """Draw one problem: an owner's chain of ``min_steps``..``max_steps`` actions, an optional distractor
    action of another owner, the trace with planted roles, and the all-relevant form.

    ``accept_skeleton`` (and ``accept_relevant_skeleton`` for the all-relevant form's chain, which has the
    distractor's action as a step) say which skeletons the problem may have: draws are repeated until they do.
    """
    if final not in FINAL_REGIMES:
        raise ValueError(f"final must be one of {FINAL_REGIMES}, got {final!r}")
    if distractor_owners not in DISTRACTOR_OWNERS:
        raise ValueError(f"distractor_owners must be one of {DISTRACTOR_OWNERS}, got {distractor_owners!r}")
    if detour_form not in DETOUR_FORMS:
        raise ValueError(f"detour_form must be one of {DETOUR_FORMS}, got {detour_form!r}")
    if action_set not in ACTIONS_BY_SET:
        raise ValueError(f"action_set must be one of {ACTION_SETS}, got {action_set!r}")
    verbs = ACTIONS_BY_SET[action_set]
    item = rng.choice(ITEMS)
    name, other = rng.sample(NAMES, 2)
    if distractor_owners == "disjoint":
        other = OTHER_NAMES[NAMES.index(other) % len(OTHER_NAMES)]  # the same draws as shared, another list
    n_steps = rng.randint(min_steps, max_steps)
    with_distractor = rng.random() < distractor_rate
    for _attempt in range(10_000):  # a few rounds in practice: most draws are causal
        start, actions = _draw_owner(rng, name, n_steps, max_value, verbs)
        steps = _steps(name, start, actions, max_value)
        if not _causal(start, steps) or (accept_skeleton is not None and not accept_skeleton(skeleton(actions))):
            continue
        if not with_distractor:
            break
        # The same kind of action by another owner, between two of the owner's sentences; in the all-relevant
        # form it is the owner's own action, a step of the chain.
        for _placement in range(50):
            position = rng.randint(0, n_steps)  # before step `position` (n_steps: after the last)
            before = steps[position - 1].after if position else start
            action = _draw_action(rng, before, max_value, verbs)
            relevant_actions = actions[:position] + [action] + actions[position:]
            relevant_steps = _steps(name, start, relevant_actions, max_value)
            if (relevant_steps is not None and _causal(start, relevant_steps)
                    and (accept_relevant_skeleton is None or accept_relevant_skeleton(skeleton(relevant_actions)))):
                break
        else:
            continue  # no distractor fits this chain: draw another chain
        break
    else:
        raise ValueError(
            f"no chain of {n_steps} steps within 1..{max_value} has an accepted skeleton: the world is too small for "
            "its held-out skeletons (raise problems.max_value or lower heldout_skeleton_share)"
        )
    sentences = [f"{name} has {start} {item}."] + [f"Then {name} {step.question_phrase}." for step in steps]
    distractors: tuple[Distractor, ...] = ()
    all_relevant = None
    relevant_rng = random.Random(rng.random())  # its own stream: the all-relevant trace does not shift the reference one's draws
    rates = {"check_rate": check_rate, "restatement_rate": restatement_rate, "detour_rate": detour_rate, "after_final_rate": after_final_rate}
    max_number = max_value + 9  # detours may step past max_value
    if with_distractor:
        sentence = f"Then {other} {action[2]}."
        cut = len(" ".join(sentences[: position + 1]))  # the span takes the space before the sentence
        sentences.insert(position + 1, sentence)
        relevant_sentences = sentences[: position + 1] + [f"Then {name} {action[2]}."] + sentences[position + 2 :]
        relevant_question = " ".join(relevant_sentences) + f" How many {item} does {name} have now?"
        relevant_reasoning, _, _ = _trace(relevant_rng, name, item, start, relevant_steps, rates, max_number, decoy=False, final=final,
                                           detour_form=detour_form, verbs=verbs)
        all_relevant = AllRelevant(relevant_question, relevant_reasoning, str(relevant_steps[-1].after))
        distractors = (Distractor(cut, cut + 1 + len(sentence), " " + sentence),)
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    skip = (position, other, action[3]) if with_distractor and distractor_skip_lines else None
    reasoning, segments, planted_decoy = _trace(
        rng, name, item, start, steps, rates, max_number, decoy=rng.random() < decoy_rate, final=final, detour_form=detour_form, skip=skip,
        verbs=verbs,
    )
    return WorldProblem(
        trace_id=trace_id,
        question=question,
        reasoning=reasoning,
        answer=str(steps[-1].after),
        segments=segments,
        distractors=distractors,
        n_steps=n_steps,
        decoy=planted_decoy,
        all_relevant=all_relevant,
        skeleton=skeleton(actions),
    )


def generate_problems(n: int, *, seed: int, split: str, **options) -> list[WorldProblem]:
    """Draw ``n`` problems deterministically from ``seed``; ``split`` names them and salts the seed."""
    # The split salts the stream so that train, trace and eval sets never share a random sequence.
    rng = random.Random(f"{seed}:{split}")
    return [generate_problem(rng, f"world-{split}-{index:05d}", **options) for index in range(n)]
