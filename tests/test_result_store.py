"""The per-trace result store: results come back as saved, nothing half-written is ever served."""

from tracesieve.result_store import ResultStore


def test_results_round_trip_per_fingerprint_and_key(tmp_path):
    store = ResultStore(tmp_path)
    assert not store.has("run-a", "trace-1") and store.load("run-a", "trace-1") is None
    record = {"trace_id": "t1", "attributions": [0.5, -0.25], "n_tokens": 2}
    store.save("run-a", "trace-1", record)
    assert store.has("run-a", "trace-1") and store.load("run-a", "trace-1") == record
    assert store.load("run-b", "trace-1") is None  # another fingerprint (model, tokenizer, settings) sees nothing
    store.save("run-a", "trace-1", {**record, "n_tokens": 3})
    assert store.load("run-a", "trace-1")["n_tokens"] == 3
    assert sorted(path.name for path in (tmp_path / "run-a").iterdir()) == ["trace-1.parquet"]  # no partial file left
