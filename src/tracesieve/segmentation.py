"""Split a reasoning trace into segments (DESIGN.md, segment-level selective SFT, step 3).

The paper splits before each reflection keyword that opens a new paragraph; the keyword starts the next
segment, and the segments concatenate back to the exact trace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REFLECTION_KEYWORDS = (
    "Wait",
    "Alternatively",
    "But wait",
    "But alternatively",
    "But just to",
    "However",
    "Not sure",
    "Going back",
    "Backtrack",
    "Trace back",
    "Another",
)


def reflection_pattern(keywords: Sequence[str] = REFLECTION_KEYWORDS) -> re.Pattern[str]:
    """The paper's boundary: a blank line followed by one of ``keywords``."""
    return re.compile(r"\n\n(" + "|".join(re.escape(keyword) for keyword in keywords) + ")")


def split_segments(text: str, keywords: Sequence[str] = REFLECTION_KEYWORDS) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` that tile ``text``; each boundary sits before ``"\\n\\n" + keyword``."""
    starts = [0] + [match.start() for match in reflection_pattern(keywords).finditer(text) if match.start() > 0]
    ends = starts[1:] + [len(text)]
    return [(start, end) for start, end in zip(starts, ends, strict=True) if end > start]
