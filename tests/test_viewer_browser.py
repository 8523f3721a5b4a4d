"""The attribution viewer in a real browser: headless Chromium from Debian's packages, driven by selenium
through Debian's chromium-driver (`.ci/run` installs both and sets TRACESIEVE_REQUIRE_BROWSER, so that CI
fails rather than skips when they are missing)."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import needs_browser
from tracesieve.reporting import attribution_viewer_html
from tracesieve.selection import segment_metrics

pytestmark = [needs_browser, pytest.mark.browser]  # the browser fixture is in conftest.py

PROMPT = "Q: two? "
REASONING = "Take 2 and 2.\n\nWait, check it again.\n\nSo 4."
WORDS = [(0, 4, 0.8), (5, 6, -0.4), (7, 10, 0.1), (11, 13, 0.2), (15, 20, -0.1), (21, 26, 0.05), (27, 29, 0.0), (30, 36, 0.3), (38, 40, 0.1), (41, 43, 0.6)]


@pytest.fixture
def viewer(tmp_path, browser):
    traces = pd.DataFrame({"trace_id": ["a"], "question": ["two?"], "reasoning": [REASONING], "answer": ["4"]})
    bounds = [(0, 13), (13, 36), (36, len(REASONING))]  # the second and third start with a blank line
    metrics = segment_metrics([("a", 0, np.array([1.0, 0.5])), ("a", 1, np.array([0.2, -0.1])), ("a", 2, np.array([0.7]))])
    metrics = metrics.assign(char_start=[start for start, _ in bounds], char_end=[end for _, end in bounds])
    offset = len(PROMPT)
    tokens = pd.DataFrame(
        {
            "trace_id": ["a"],
            "reasoning_start": [offset],
            "token_starts": [[0] + [offset + start for start, _, _ in WORDS]],
            "token_ends": [[offset] + [offset + end for _, end, _ in WORDS]],
            "attributions": [[3.0] + [value for _, _, value in WORDS]],
        }
    )
    page = tmp_path / "viewer.html"
    page.write_text(attribution_viewer_html(traces, metrics, {"a": [0, 2]}, ["a"], strategy="paper", token_attributions=tokens))
    browser.get(page.as_uri())  # one file, opened as a file: nothing else to fetch
    return browser


def _style(driver, element, prop):
    return driver.execute_script("return getComputedStyle(arguments[0])[arguments[1]]", element, prop)


def _rgba(text):
    """``rgba(r, g, b, a)`` / ``rgb(r, g, b)`` -> (r, g, b, a)."""
    values = [float(part) for part in text[text.index("(") + 1 : -1].split(",")]
    return (*values, 1.0) if len(values) == 3 else tuple(values)


def test_segments_render_with_their_strength_colours_and_selection_outlines(viewer):
    from selenium.webdriver.common.by import By

    segments = viewer.find_elements(By.CSS_SELECTOR, ".segment")
    assert [segment.text for segment in segments] == ["Take 2 and 2.", "Wait, check it again.", "So 4."]
    colours = [_rgba(_style(viewer, segment, "backgroundColor")) for segment in segments]
    assert all(colour[:3] == (214, 39, 40) and colour[3] > 0.05 for colour in colours)
    assert colours[0][3] > colours[2][3] > colours[1][3]  # darker = larger strength share
    for segment, selected in zip(segments, (True, False, True)):
        if selected:
            assert (_style(viewer, segment, "outlineStyle"), _style(viewer, segment, "outlineWidth")) == ("solid", "2px")
            assert _rgba(_style(viewer, segment, "outlineColor"))[:3] == (32, 96, 192)
        else:
            assert _style(viewer, segment, "outlineStyle") == "none"


def test_a_segment_after_a_blank_line_is_outlined_on_its_own_line_only(viewer):
    from selenium.webdriver.common.by import By

    first, _, last = viewer.find_elements(By.CSS_SELECTOR, ".segment")
    rects = viewer.execute_script("return Array.from(arguments[0].getClientRects()).map(r => [r.top, r.bottom, r.width])", last)
    assert len(rects) == 1 and rects[0][2] > 0  # one box: no outline piece on the empty line above
    line_height = first.rect["height"]
    assert rects[0][0] - first.rect["y"] > 1.5 * line_height  # two lines down: the blank line is left unmarked


def test_the_token_heatmap_toggles_for_every_segment_and_for_one(viewer):
    from selenium.webdriver.common.by import By

    def token_colours():
        return [_rgba(_style(viewer, token, "backgroundColor")) for token in viewer.find_elements(By.CSS_SELECTOR, ".tok")]

    assert len(token_colours()) == len(WORDS) and all(colour[3] == 0 for colour in token_colours())  # off by default
    viewer.find_element(By.ID, "token-toggle").click()
    colours = token_colours()
    assert colours[0][:3] == (214, 39, 40) and colours[0][3] == pytest.approx(0.8, abs=0.01)  # the largest token: full red
    assert colours[1][:3] == (31, 119, 180)  # negative attribution: blue
    segment = viewer.find_element(By.CSS_SELECTOR, ".segment")
    assert _rgba(_style(viewer, segment, "backgroundColor"))[3] == 0  # the segment colour gives way to its tokens'
    viewer.find_element(By.ID, "token-toggle").click()
    assert all(colour[3] == 0 for colour in token_colours())
    # A click on one segment shows its tokens alone.
    viewer.find_elements(By.CSS_SELECTOR, ".segment")[1].click()
    shown = [colour[3] > 0 for colour in token_colours()]
    assert shown == [False] * 4 + [True] * 4 + [False] * 2
