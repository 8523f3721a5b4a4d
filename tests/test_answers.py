import pytest

from tracesieve.answers import exact_match, last_boxed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{14}", "14"),
        ("first \\boxed{3} then \\boxed{4}", "4"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{ 7 }", "7"),
        ("\\fbox{x+1}", "x+1"),
        ("no answer here", None),
        ("truncated \\boxed{\\frac{1}{2", None),
        ("empty \\boxed{} then nothing", None),
        ("\\boxed{5} and an unclosed \\boxed{6", "5"),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_exact_match_ignores_spaces_only():
    assert exact_match("\\boxed{ 1 2 }", "12")
    assert not exact_match("\\boxed{12}", "13")
    assert not exact_match("12", "12")  # no box, no answer
