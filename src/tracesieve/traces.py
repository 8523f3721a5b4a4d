"""Read reasoning-trace files into one ``traces`` table and one ``rejected`` table.

Every input record ends up in exactly one of the two: a record that cannot be used is never dropped
silently, it is rejected with a reason that names the problem. Reading is split in two steps so that the
Kedro dataset does only I/O and the validation is testable on its own:

1. :func:`read_raw_records` lists the files under a path and yields one raw record per JSON line, JSON
   array element or Parquet row, with a decoding error where the bytes were not a JSON object;
2. :func:`parse_trace_records` recognises the format of each record, extracts question, reasoning and
   answer, and rejects what is malformed, empty, answerless, duplicated or too long.

:func:`read_traces` does both.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tracesieve.answers import last_boxed
from tracesieve.choices import FORMATS, MULTI_TURN_POLICIES
from tracesieve.rendering import THINK_CLOSE, THINK_OPEN

logger = logging.getLogger(__name__)

# A chat record with several user/assistant exchanges: its last exchange, or a rejection as ambiguous.
SUFFIXES = (".jsonl", ".json", ".parquet")
TRACE_COLUMNS = ["trace_id", "question", "reasoning", "answer", "source", "line", "format"]
REJECTED_COLUMNS = ["source", "line", "kind", "reason", "excerpt"]
# Fields each format needs; "answer" of r1 is optional (taken from the last \boxed{} when absent).
REQUIRED_FIELDS = {
    "limo": ("question", "solution", "answer"),
    "messages": ("messages",),
    "r1": ("problem", "generation"),
    "world": ("trace_id", "question", "reasoning", "answer"),
}
EXCERPT_CHARS = 300


@dataclass(frozen=True)
class RawRecord:
    """One record as read from disk: the decoded object, or the reason it could not be decoded."""

    source: str
    line: int | None  # line of a JSONL file; element or row number (1-based) in JSON arrays and Parquet
    record: dict[str, Any] | None
    error: Rejection | None = None
    excerpt: str = ""


class Rejection(ValueError):
    """A record that cannot become a trace: a short ``kind`` for counting, and the reason for people."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


def find_trace_files(path: str | Path) -> list[Path]:
    """Files named by ``path``: one file, every trace file under a folder, or a glob pattern."""
    text = str(path)
    if any(char in text for char in "*?["):
        files = sorted(Path(match) for match in glob.glob(text, recursive=True) if Path(match).is_file())
        if not files:
            raise FileNotFoundError(f"Trace path {text!r} matches no files.")
    elif Path(text).is_dir():
        files = sorted(file for file in Path(text).rglob("*") if file.is_file() and file.suffix in SUFFIXES)
        if not files:
            raise FileNotFoundError(f"Trace folder {text!r} holds no {', '.join(SUFFIXES)} files.")
    elif Path(text).is_file():
        files = [Path(text)]
    else:
        raise FileNotFoundError(f"Trace path {text!r} does not exist.")
    unsupported = [str(file) for file in files if file.suffix not in SUFFIXES]
    if unsupported:
        raise ValueError(
            f"Trace path {text!r} names files of an unsupported type: {unsupported[:3]}; "
            f"expected {', '.join(SUFFIXES)}."
        )
    return files


def _excerpt(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:EXCERPT_CHARS]


def _decode_object(source: str, line: int | None, raw: bytes) -> RawRecord:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return RawRecord(source, line, None, Rejection("invalid_utf8", f"invalid UTF-8 at byte {error.start}"), _excerpt(raw))
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return RawRecord(
            source, line, None, Rejection("malformed_json", f"malformed JSON: {error.msg} at column {error.colno}"), _excerpt(text)
        )
    if not isinstance(record, dict):
        return RawRecord(
            source, line, None, Rejection("not_an_object", f"a JSON {type(record).__name__}, expected an object"), _excerpt(text)
        )
    return RawRecord(source, line, record, None, _excerpt(text))


def _read_jsonl(file: Path) -> Iterator[RawRecord]:
    for number, raw in enumerate(file.read_bytes().split(b"\n"), start=1):
        if raw.strip():  # blank lines hold no record
            yield _decode_object(str(file), number, raw)


def _read_json(file: Path) -> Iterator[RawRecord]:
    raw = file.read_bytes()
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        # Bad bytes: read line by line, so that only the records holding them are rejected.
        yield from _read_jsonl(file)
        return
    except json.JSONDecodeError as error:
        if len([line for line in raw.split(b"\n") if line.strip()]) > 1:  # JSON Lines named .json
            yield from _read_jsonl(file)
            return
        reason = Rejection("malformed_json", f"malformed JSON: {error.msg} at line {error.lineno}")
        yield RawRecord(str(file), None, None, reason, _excerpt(raw))
        return
    if isinstance(document, list):
        for number, record in enumerate(document, start=1):
            if isinstance(record, dict):
                yield RawRecord(str(file), number, record, None, _excerpt(json.dumps(record)))
            else:
                reason = Rejection("not_an_object", f"a JSON {type(record).__name__}, expected an object")
                yield RawRecord(str(file), number, None, reason, _excerpt(json.dumps(record)))
    elif isinstance(document, dict):
        yield RawRecord(str(file), 1, document, None, _excerpt(json.dumps(document)))
    else:
        reason = Rejection("not_an_object", f"a JSON {type(document).__name__}, expected objects")
        yield RawRecord(str(file), None, None, reason, _excerpt(raw))


def _read_parquet(file: Path) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(file).to_pylist()
    except Exception as error:  # noqa: BLE001 - any reader failure rejects the file, it must not stop the run
        yield RawRecord(str(file), None, None, Rejection("unreadable_file", f"unreadable Parquet file: {error}"), "")
        return
    for number, row in enumerate(rows, start=1):
        yield RawRecord(str(file), number, row, None, _excerpt(json.dumps(row, default=str)))


def read_raw_records(path: str | Path) -> list[RawRecord]:
    """Every record of every trace file under ``path``, decoded or with its decoding error."""
    readers = {".jsonl": _read_jsonl, ".json": _read_json, ".parquet": _read_parquet}
    records: list[RawRecord] = []
    for file in find_trace_files(path):
        records.extend(readers[file.suffix](file))
    return records


def detect_format(record: dict[str, Any]) -> str:
    """The format a record is written in, judged by its keys."""
    if "messages" in record:
        return "messages"
    if "reasoning" in record and "trace_id" in record:
        return "world"
    if "generation" in record:
        return "r1"
    if "solution" in record:
        return "limo"
    raise Rejection(
        "unknown_format",
        f"record matches no known format (keys: {sorted(record)[:8]}); expected limo {{question, solution, answer}}, "
        "messages {messages}, r1 {problem, generation[, answer]} or world {trace_id, question, reasoning, answer}"
    )


def _text_field(record: dict[str, Any], name: str) -> str:
    if name not in record or record[name] is None:
        raise Rejection("missing_field", f"missing field {name!r}")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Rejection("wrong_type", f"field {name!r} is a {type(value).__name__}, expected text")
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        raise Rejection("empty_field", f"empty field {name!r}")
    return text


def split_thinking(text: str, *, field: str) -> tuple[str, str]:
    """Split a response into (reasoning inside ``<think>``, text after ``</think>``).

    The opening tag may be missing (R1 prompts often end with it); the closing one may not: without it
    the response is truncated or carries no reasoning block.
    """
    if THINK_CLOSE not in text:
        raise Rejection("no_reasoning", f"{field} has no {THINK_CLOSE}: the reasoning is missing or truncated")
    thinking, after = text.split(THINK_CLOSE, 1)
    if THINK_OPEN in thinking:
        thinking = thinking.split(THINK_OPEN, 1)[1]
    thinking = thinking.strip("\n")
    if not thinking.strip():
        raise Rejection("no_reasoning", f"{field} has an empty <think> block")
    return thinking, after


def _answer_from(text: str, where: str) -> str:
    answer = last_boxed(text)
    if answer is None:
        raise Rejection("no_answer", f"no answer: no complete \\boxed{{}} in {where}")
    return answer


def _extract(record: dict[str, Any], record_format: str, multi_turn: str = "last_exchange") -> tuple[str, str, str, str | None]:
    """(question, reasoning, answer, trace_id or None) of one record in ``record_format``. A chat with
    several exchanges (``messages``) gives its last one (``multi_turn: last_exchange``) or is rejected as
    ambiguous (``reject``)."""
    missing = [name for name in REQUIRED_FIELDS[record_format] if name not in record]
    if missing:
        raise Rejection("missing_field", f"missing field {missing[0]!r} (format {record_format})")
    if record_format == "limo":
        return _text_field(record, "question"), _text_field(record, "solution"), _text_field(record, "answer"), None
    if record_format == "world":
        return (
            _text_field(record, "question"),
            _text_field(record, "reasoning"),
            _text_field(record, "answer"),
            _text_field(record, "trace_id"),
        )
    if record_format == "r1":
        question = _text_field(record, "problem")
        reasoning, after = split_thinking(_text_field(record, "generation"), field="generation")
        if record.get("answer") is not None and str(record["answer"]).strip():
            answer = _text_field(record, "answer")
        else:
            answer = _answer_from(after, "the generation after </think> and no 'answer' field")
        return question, reasoning, answer, None
    messages = record["messages"]
    if not isinstance(messages, list) or not all(isinstance(message, dict) for message in messages):
        raise Rejection("wrong_type", "field 'messages' is not a list of {role, content} objects")
    roles = [message.get("role") for message in messages]
    if "assistant" not in roles:
        raise Rejection("missing_field", "messages hold no non-empty assistant message")
    last_assistant = len(roles) - 1 - roles[::-1].index("assistant")
    reply = messages[last_assistant].get("content")
    if not isinstance(reply, str) or not reply.strip():
        raise Rejection("missing_field", "messages hold no non-empty assistant message")
    # The question is the user turn the last assistant turn answers, not the conversation's first one.
    asked = [index for index in range(last_assistant) if roles[index] == "user"]
    question = messages[asked[-1]].get("content") if asked else None
    if not isinstance(question, str) or not question.strip():
        raise Rejection("missing_field", "messages hold no non-empty user message before the last assistant message")
    if len(asked) > 1 and multi_turn == "reject":
        raise Rejection(
            "ambiguous", f"messages hold {len(asked)} user turns before the last assistant message (ingestion.multi_turn: reject)"
        )
    reasoning, after = split_thinking(reply, field="assistant message")
    return question, reasoning, _answer_from(after, "the assistant message after </think>"), None


def _require_known_format(format: str, where: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"Unknown trace format {format!r}{where}; expected one of {', '.join(FORMATS)}.")


def content_trace_id(question: str, reasoning: str, answer: str) -> str:
    """A stable id from the content, so the same trace gets the same id from any file or order."""
    digest = hashlib.sha1("\0".join((question, reasoning, answer)).encode("utf-8")).hexdigest()
    return f"t-{digest[:16]}"


def parse_trace_records(
    records: Iterable[RawRecord], *, format: str = "auto", max_chars: int = 200_000, multi_turn: str = "last_exchange"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn raw records into (traces, rejected); every record lands in exactly one of them."""
    _require_known_format(format, "")
    if multi_turn not in MULTI_TURN_POLICIES:
        raise ValueError(f"Unknown multi_turn policy {multi_turn!r}; expected one of {', '.join(MULTI_TURN_POLICIES)}.")
    traces: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    seen_content: dict[tuple[str, str, str], str] = {}
    seen_ids: dict[str, str] = {}
    for raw in records:
        where = f"{raw.source}:{raw.line}" if raw.line is not None else raw.source
        try:
            if raw.error is not None:
                raise raw.error
            record_format = detect_format(raw.record) if format == "auto" else format
            question, reasoning, answer, trace_id = _extract(raw.record, record_format, multi_turn)
            answer = answer.strip()
            if len(reasoning) > max_chars:
                raise Rejection("too_long", f"reasoning is {len(reasoning)} characters, over max_chars={max_chars}")
            key = (question, reasoning, answer)
            if key in seen_content:
                raise Rejection("duplicate", f"exact duplicate of the record at {seen_content[key]}")
            trace_id = trace_id or content_trace_id(*key)
            if trace_id in seen_ids:
                raise Rejection("duplicate", f"trace_id {trace_id!r} already used by the record at {seen_ids[trace_id]}")
        except Rejection as reason:
            rejected.append(
                {"source": raw.source, "line": raw.line, "kind": reason.kind, "reason": str(reason), "excerpt": raw.excerpt}
            )
            continue
        seen_content[key] = where
        seen_ids[trace_id] = where
        traces.append(
            {
                "trace_id": trace_id,
                "question": question,
                "reasoning": reasoning,
                "answer": answer,
                "source": raw.source,
                "line": raw.line,
                "format": record_format,
            }
        )
    traces_table = pd.DataFrame(traces, columns=TRACE_COLUMNS).astype({"line": "Int64"})
    rejected_table = pd.DataFrame(rejected, columns=REJECTED_COLUMNS).astype({"line": "Int64"})
    if len(rejected_table):
        logger.warning(
            "Rejected %d of %d trace records; reasons: %s",
            len(rejected_table),
            len(rejected_table) + len(traces_table),
            rejected_table["kind"].value_counts().to_dict(),
        )
    return traces_table, rejected_table


def read_traces(
    path: str | Path, format: str = "auto", *, max_chars: int = 200_000, multi_turn: str = "last_exchange"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read trace files (a file, a folder or a glob of JSONL, JSON or Parquet) into (traces, rejected).

    ``traces`` has ``trace_id, question, reasoning, answer, source, line, format``; ``rejected`` has
    ``source, line, reason, excerpt``. A missing path or an unknown format raises an error naming the path.
    """
    _require_known_format(format, f" for {str(path)!r}")  # before any file is read
    return parse_trace_records(read_raw_records(path), format=format, max_chars=max_chars, multi_turn=multi_turn)


def ingestion_summary(raw_records: Sequence[RawRecord], traces: pd.DataFrame, rejected: pd.DataFrame) -> dict[str, float]:
    """Records read, accepted and rejected (by kind), files read, and accepted traces by format."""
    counts: dict[str, float] = {
        "records_read": len(raw_records),
        "traces_accepted": len(traces),
        "records_rejected": len(rejected),
        "files_read": len({record.source for record in raw_records}),
    }
    # Counted by kind (missing_field, malformed_json, ...), so MLflow shows few, stable metric names.
    for kind, count in rejected["kind"].value_counts().items():
        counts[f"rejected_{kind}"] = count
    for record_format, count in traces["format"].value_counts().items():
        counts[f"traces_{record_format}"] = count
    return counts
