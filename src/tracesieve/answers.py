"""Find final answers in model text: the content of the last ``\\boxed{...}``, braces balanced."""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``; None when there is none.

    Braces inside are balanced, so ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``. An unclosed box, as in
    a truncated generation, does not count as an answer.
    """
    for match in reversed(list(_BOXED.finditer(text))):
        depth = 1
        for index in range(match.end(), len(text)):
            char = text[index]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    content = text[match.end() : index].strip()
                    if content:
                        return content
                    break
    return None


def exact_match(completion: str, gold: str) -> bool:
    """True when the last boxed answer of ``completion`` equals ``gold`` as a string, spaces ignored."""
    predicted = last_boxed(completion)
    return predicted is not None and predicted.replace(" ", "") == gold.replace(" ", "")
