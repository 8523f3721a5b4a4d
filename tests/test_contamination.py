"""Held-out problems checked against the training traces: a planted copy is dropped and named."""

import logging

import pandas as pd
import pytest

from tracesieve.contamination import apply_policy, contamination_summary, contamination_table, normalise

TRACES = pd.DataFrame(
    {
        "trace_id": ["t1", "t2"],
        "question": [
            "Tom has 7 apples. Then Tom buys 3 more. Then Tom loses 2. Then Tom finds 4 more. How many apples does Tom have now?",
            "Ann has 5 pens. Then Ann gives away 2. How many pens does Ann have now?",
        ],
    }
)


def _problems():
    return pd.DataFrame(
        {
            "problem_id": ["copy", "near", "new", "short"],
            "question": [
                "ann has 5 PENS.  Then Ann gives away 2 -- how many pens does Ann have now?",  # the same after normalising
                # One number changed at the end: most of its 13-grams are the trace's.
                "Tom has 7 apples. Then Tom buys 3 more. Then Tom loses 2. Then Tom finds 4 more. How many apples does Tom have left?",
                "Mia has 9 cards. Then Mia loses 4. Then Mia buys 2 more. How many cards does Mia have now?",
                "Ann has 5 pens.",
            ],
            "answer": ["3", "12", "7", "5"],
        }
    )


def test_exact_copies_and_near_duplicates_are_found_and_named_by_the_trace_they_copy():
    assert normalise("Ann has 5 PENS.  Then -- Ann") == "ann has 5 pens then ann"
    table = contamination_table(_problems(), TRACES).set_index("problem_id")
    assert table.loc["copy", "exact_match"] and table.loc["copy", "reason"] == "exact_match" and table.loc["copy", "nearest_trace_id"] == "t2"
    assert table.loc["near", "reason"] == "13gram_overlap" and table.loc["near", "ngram_overlap"] > 0.5 and table.loc["near", "nearest_trace_id"] == "t1"
    assert not table.loc["new", "contaminated"] and table.loc["new", "ngram_overlap"] == 0
    assert not table.loc["short", "contaminated"]  # shorter than 13 words and not a copy: exact match only


def test_drop_grades_without_them_flag_marks_them_and_fail_names_them(caplog):
    problems = _problems()
    table = contamination_table(problems, TRACES)
    with caplog.at_level(logging.WARNING, logger="tracesieve.contamination"):
        kept = apply_policy(problems, table, "drop")
    assert kept["problem_id"].tolist() == ["new", "short"]
    assert "2 evaluation problems are in the training traces (drop): 'copy' (exact_match, trace 't2'), 'near' (13gram_overlap, trace 't1')" in caplog.text
    flagged = apply_policy(problems, table, "flag")
    assert flagged["contaminated"].tolist() == [True, True, False, False] and len(flagged) == 4
    with pytest.raises(ValueError, match=r"2 evaluation problems are in the training traces: 'copy' .*evaluation.contamination: drop"):
        apply_policy(problems, table, "fail")
    copies = problems.iloc[:1]
    with pytest.raises(ValueError, match="every one of the 1 evaluation problems is in the training traces .*leaves nothing to grade"):
        apply_policy(copies, contamination_table(copies, TRACES), "drop")
    assert contamination_summary(table, "drop") == {"problems": 4.0, "contaminated": 2.0, "exact_matches": 1.0, "ngram_overlap_max": 1.0, "dropped": 2.0}


def test_the_report_names_the_contaminated_problems():
    from tracesieve.reporting import contamination_markdown

    lines = contamination_markdown(contamination_table(_problems(), TRACES))
    assert lines[0] == "## Contamination"
    assert lines[2] == "2 of 4 held-out problems are in the training traces (1 exact copies): `copy` (exact_match, like `t2`), `near` (13gram_overlap, like `t1`)."
