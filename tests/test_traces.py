"""read_traces: every format, every kind of bad input, and every record accounted for."""

import json

import pandas as pd
import pytest

from tracesieve.traces import read_traces

LIMO = {"question": "What is 2+3?", "solution": "2 plus 3 is 5.", "answer": "5"}
MESSAGES = {
    "messages": [
        {"role": "user", "content": "What is 1/2 of 3?"},
        {"role": "assistant", "content": "<think>\nHalf of 3 is 3/2.\n</think>\n\nThe answer is \\boxed{\\frac{3}{2}}."},
    ]
}
R1 = {"problem": "What is 6*7?", "generation": "6 times 7 is 42.\n</think>\n\n\\boxed{42}", "answer": "42"}
WORLD = {"trace_id": "world-traces-00000", "question": "Q?", "reasoning": "R.", "answer": "3", "segments": [], "distractors": []}


def _write_jsonl(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines) + b"\n")
    return path


def test_each_format_is_read_into_the_same_columns(tmp_path):
    _write_jsonl(tmp_path / "a.jsonl", [LIMO, MESSAGES, R1, WORLD])
    traces, rejected = read_traces(tmp_path / "a.jsonl")
    assert rejected.empty
    assert list(traces["format"]) == ["limo", "messages", "r1", "world"]
    assert {"trace_id", "question", "reasoning", "answer", "source"} <= set(traces.columns)
    by_format = traces.set_index("format")
    assert by_format.loc["messages", "question"] == "What is 1/2 of 3?"
    assert by_format.loc["messages", "reasoning"] == "Half of 3 is 3/2."
    assert by_format.loc["messages", "answer"] == "\\frac{3}{2}"
    assert by_format.loc["r1", "reasoning"] == "6 times 7 is 42."
    assert by_format.loc["world", "trace_id"] == "world-traces-00000"
    assert traces["trace_id"].is_unique
    assert list(traces["line"]) == [1, 2, 3, 4]


def test_r1_answer_falls_back_to_the_last_box_and_open_think_tag_is_stripped(tmp_path):
    record = {"problem": "P", "generation": "<think>\nwork\n</think> so \\boxed{7}"}
    _write_jsonl(tmp_path / "r1.jsonl", [record])
    traces, rejected = read_traces(tmp_path / "r1.jsonl", format="r1")
    assert rejected.empty
    assert traces.loc[0, "reasoning"] == "work" and traces.loc[0, "answer"] == "7"


def test_bad_records_are_rejected_with_reasons_and_every_record_is_accounted_for(tmp_path):
    lines = [
        LIMO,
        b"{not json",
        b'{"question": "caf\xe9", "solution": "x", "answer": "1"}',  # Latin-1 byte: invalid UTF-8
        {"question": "Q", "solution": "S"},  # no answer field
        {"question": "Q", "solution": "  ", "answer": "1"},  # empty solution
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>a</think> no box"}]},
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>cut off mid-way"}]},
        {"problem": "P", "generation": "<think>x</think> nothing boxed"},
        LIMO,  # exact duplicate of line 1
        {"question": "Q", "solution": "y" * 101, "answer": "1"},  # over max_chars
        {"foo": 1},
        [1, 2],
        b"",  # blank lines are not records
        {"question": 5, "solution": "five", "answer": 5},  # numbers are fine as text
    ]
    path = _write_jsonl(tmp_path / "bad.jsonl", lines)
    traces, rejected = read_traces(path, max_chars=100)
    records = len([line for line in lines if line != b""])
    assert len(traces) + len(rejected) == records
    assert list(traces["line"]) == [1, 14]
    reasons = dict(zip(rejected["line"], rejected["reason"]))
    assert reasons[2].startswith("malformed JSON")
    assert reasons[3].startswith("invalid UTF-8")
    assert reasons[4] == "missing field 'answer' (format limo)"
    assert reasons[5] == "empty field 'solution'"
    assert "no complete \\boxed{}" in reasons[6]
    assert "has no </think>" in reasons[7]
    assert "no complete \\boxed{}" in reasons[8]
    assert reasons[9] == f"exact duplicate of the record at {path}:1"
    assert "over max_chars=100" in reasons[10]
    assert reasons[11].startswith("record matches no known format")
    assert "expected an object" in reasons[12]
    assert set(rejected["source"]) == {str(path)}
    assert list(rejected["kind"]) == [
        "malformed_json", "invalid_utf8", "missing_field", "empty_field", "no_answer", "no_reasoning", "no_answer",
        "duplicate", "too_long", "unknown_format", "not_an_object",
    ]


def test_folders_globs_json_arrays_and_parquet(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "arr.json").write_text(json.dumps([LIMO, {"question": "Q", "solution": "S", "answer": ""}]))
    pd.DataFrame([R1]).to_parquet(folder / "rows.parquet")
    (folder / "notes.txt").write_text("ignored: not a trace file type")
    traces, rejected = read_traces(folder)
    assert sorted(traces["format"]) == ["limo", "r1"]
    assert list(rejected["reason"]) == ["empty field 'answer'"]
    globbed, _ = read_traces(str(folder / "**" / "*.json"))
    assert list(globbed["format"]) == ["limo"]


def test_unreadable_whole_files_are_rejected_not_raised(tmp_path):
    (tmp_path / "broken.json").write_text("{ this is not json")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    _write_jsonl(tmp_path / "ok.jsonl", [LIMO])
    traces, rejected = read_traces(tmp_path)
    assert len(traces) == 1
    assert sorted(rejected["reason"].str.split(":").str[0]) == ["malformed JSON", "unreadable Parquet file"]


def test_missing_path_and_unknown_format_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        read_traces(tmp_path / "nowhere.jsonl")
    with pytest.raises(FileNotFoundError, match="matches no files"):
        read_traces(str(tmp_path / "*.jsonl"))
    path = _write_jsonl(tmp_path / "a.jsonl", [LIMO])
    with pytest.raises(ValueError, match=r"Unknown trace format 'sharegpt' for .*a\.jsonl"):
        read_traces(path, format="sharegpt")
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(ValueError, match="unsupported type"):
        read_traces(tmp_path / "a.csv")


def test_explicit_format_rejects_records_of_another_format(tmp_path):
    path = _write_jsonl(tmp_path / "a.jsonl", [LIMO, R1])
    traces, rejected = read_traces(path, format="limo")
    assert len(traces) == 1 and list(rejected["reason"]) == ["missing field 'question' (format limo)"]


def test_json_with_bad_bytes_rejects_only_the_affected_records(tmp_path):
    good = json.dumps(LIMO).encode()
    bad = b'{"question": "caf\xe9", "solution": "x", "answer": "1"}'
    (tmp_path / "mixed.json").write_bytes(good + b"\n" + bad + b"\n")
    traces, rejected = read_traces(tmp_path / "mixed.json")
    assert len(traces) == 1 and list(rejected["kind"]) == ["invalid_utf8"] and list(rejected["line"]) == [2]


def test_a_chat_of_several_exchanges_gives_its_last_exchange_or_is_rejected_as_ambiguous(tmp_path):
    chat = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "<think>2 and 2 make 4.</think> \\boxed{4}"},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "<think>3 and 3 make 6.</think> \\boxed{6}"},
        ]
    }
    unanswered = {"messages": [{"role": "assistant", "content": "<think>x</think> \\boxed{1}"}, {"role": "user", "content": "Q?"}]}
    path = _write_jsonl(tmp_path / "chats.jsonl", [chat, unanswered])
    traces, rejected = read_traces(path)
    # Question and answer from the same exchange: the user turn the last assistant turn answers.
    assert traces[["question", "reasoning", "answer"]].values.tolist() == [["And 3+3?", "3 and 3 make 6.", "6"]]
    assert list(rejected["line"]) == [2] and "no non-empty user message before the last assistant message" in rejected["reason"].iloc[0]
    strict, rejected = read_traces(path, multi_turn="reject")
    assert strict.empty and list(rejected["kind"]) == ["ambiguous", "missing_field"]
    assert "2 user turns before the last assistant message (ingestion.multi_turn: reject)" in rejected["reason"].iloc[0]
    one_exchange = _write_jsonl(tmp_path / "one.jsonl", [MESSAGES])
    assert len(read_traces(one_exchange, multi_turn="reject")[0]) == 1  # a single exchange is never ambiguous
    with pytest.raises(ValueError, match="multi_turn policy 'first'"):
        read_traces(path, multi_turn="first")
