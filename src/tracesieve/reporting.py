"""What a researcher looks at: the attribution viewer, the figures and the summary report.

Framework-free: DataFrames in, HTML / matplotlib figures / Markdown out, so a notebook renders the same
viewer inline that the pipeline logs to MLflow.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tracesieve.selection import share_of_stronger_segments  # noqa: E402

ROLE_COLOURS = {
    "source": "#1b9e77",
    "upstream": "#66a61e",
    "final": "#7570b3",
    "decoy": "#a6761d",
    "check": "#e6ab02",
    "restatement": "#d95f02",
    "detour": "#e7298a",
}

_VIEWER_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
.trace { border: 1px solid #ccc; border-radius: 6px; padding: 1rem; margin-bottom: 1.5rem; }
.reasoning { white-space: pre-wrap; line-height: 1.6; font-family: ui-monospace, monospace; font-size: 0.9rem; }
.segment { border-radius: 3px; padding: 0 1px; background: var(--strength); cursor: pointer;
           -webkit-box-decoration-break: clone; box-decoration-break: clone; }
.segment.selected { outline: 2px solid #2060c0; }
/* Token heatmap (signed attribution: red supports the answer, blue works against it), for every segment
   (the page toggle) or for one segment (a click on it): the segment's own colour gives way to its tokens'. */
.tokens .segment, .segment.tokens { background: none; }
.tokens .tok, .segment.tokens .tok { background: var(--signed); }
table { border-collapse: collapse; font-size: 0.85rem; margin-top: 0.8rem; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
td.text { text-align: left; max-width: 30rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.legend { font-size: 0.85rem; color: #555; }
"""

# No external resources: the page is one file that works offline and as an MLflow artifact.
_VIEWER_SCRIPT = """
document.getElementById('token-toggle').addEventListener('change', function (event) {
  document.body.classList.toggle('tokens', event.target.checked);
});
document.querySelectorAll('.segment').forEach(function (segment) {
  segment.addEventListener('click', function () { segment.classList.toggle('tokens'); });
});
"""


def _signed_colour(value: float, scale: float) -> str:
    """Red for positive attribution, blue for negative, opacity by magnitude relative to the trace's largest."""
    weight = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    rgb = "214, 39, 40" if value >= 0 else "31, 119, 180"
    return f"rgba({rgb}, {0.05 + 0.75 * weight:.3f})"


def _segment_body(text: str, char_start: int, tokens: Sequence[tuple[int, int, float]] | None, scale: float) -> str:
    """A segment's text as HTML, each attributed token (reasoning-relative ``start, end, value``) wrapped in a
    span carrying its signed colour; text between tokens (spaces) stays plain."""
    if not tokens:
        return html.escape(text)
    pieces, cursor = [], 0
    for start, end, value in tokens:
        start, end = max(start - char_start, cursor), min(end - char_start, len(text))
        if end <= start:
            continue
        pieces.append(html.escape(text[cursor:start]))
        pieces.append(
            f"<span class='tok' style='--signed: {_signed_colour(value, scale)}' title='attribution {value:+.4f}'>{html.escape(text[start:end])}</span>"
        )
        cursor = end
    pieces.append(html.escape(text[cursor:]))
    return "".join(pieces)


def _reasoning_tokens(row) -> list[tuple[int, int, float]]:
    """A trace's tokens as (start, end, attribution), offsets made relative to its reasoning text."""
    offset = int(row["reasoning_start"])
    return [(int(start) - offset, int(end) - offset, float(value)) for start, end, value in zip(row["token_starts"], row["token_ends"], row["attributions"])]


def attribution_viewer_html(
    traces: pd.DataFrame,
    segment_metrics: pd.DataFrame,
    selected: Mapping[str, Sequence[int]],
    trace_ids: Sequence[str],
    *,
    strategy: str,
    roles: pd.Series | None = None,
    token_attributions: pd.DataFrame | None = None,
) -> str:
    """A self-contained HTML page: each trace's reasoning coloured by segment strength share.

    Darker red means a larger share of the trace's attribution strength; a blue outline marks the segments
    ``strategy`` selected. Hovering shows strength share, consistency and (in the embedded world) the planted
    role; a table under each trace lists the same per segment. ``roles`` is indexed like ``segment_metrics``.
    With ``token_attributions`` (the attribution table: offsets and signed values per token), a toggle, or a
    click on one segment, shows the signed token heatmap inside the segments instead.

    A segment's leading and trailing whitespace (the blank line a new paragraph starts with) is written
    outside its span, so that outline and colour cover its text, not an empty line.
    """
    by_trace = dict(tuple(segment_metrics.groupby("trace_id", sort=False)))
    texts = traces.set_index("trace_id")
    token_rows = token_attributions.set_index("trace_id") if token_attributions is not None else None
    toggle = (
        "<p class='legend'><label><input type='checkbox' id='token-toggle'> Token heatmap: signed attribution of each token "
        "(red supports the answer, blue works against it). Click a segment to show its tokens alone.</label></p>"
        if token_rows is not None
        else ""
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>TraceSieve attribution viewer</title>",
        f"<style>{_VIEWER_STYLE}</style></head><body><h1>Attribution viewer</h1>",
        f"<p class='legend'>Background: segment strength share (darker = more of the trace's attribution). "
        f"Blue outline: selected by <b>{html.escape(strategy)}</b>. Hover a segment for its numbers.</p>",
        toggle,
    ]
    for trace_id in trace_ids:
        if trace_id not in by_trace or trace_id not in texts.index:
            raise ValueError(f"trace {trace_id!r} has no segment metrics or no text; pick an attributed trace")
        trace = texts.loc[trace_id]
        segments = by_trace[trace_id].sort_values("segment_index")
        chosen = set(selected.get(trace_id, ()))
        top = max(float(segments["strength_share"].max()), 1e-12)
        tokens = _reasoning_tokens(token_rows.loc[trace_id]) if token_rows is not None and trace_id in token_rows.index else None
        scale = max((abs(value) for start, _, value in tokens or () if start >= 0), default=0.0)
        reasoning, cursor = trace["reasoning"], 0
        spans, rows = [], []
        for index, segment in segments.iterrows():
            role = roles.loc[index] if roles is not None else None
            char_start, char_end = int(segment["char_start"]), int(segment["char_end"])
            text = reasoning[char_start:char_end]
            core_start = char_start + len(text) - len(text.lstrip())
            core_end = max(core_start, char_end - (len(text) - len(text.rstrip())))
            alpha = float(segment["strength_share"]) / top
            tip = f"segment {int(segment['segment_index'])}: strength share {segment['strength_share']:.3f}, consistency {segment['consistency']:.3f}"
            tip += f", {'selected' if segment['segment_index'] in chosen else 'not selected'}" + (f", role {role}" if role else "")
            css = "segment selected" if segment["segment_index"] in chosen else "segment"
            inside = [token for token in tokens if token[0] < core_end and token[1] > core_start] if tokens else None
            spans.append(html.escape(reasoning[cursor:core_start]))  # whitespace between segments, unmarked
            spans.append(
                f"<span class='{css}' data-segment='{int(segment['segment_index'])}' style='--strength: rgba(214, 39, 40, {0.08 + 0.6 * alpha:.3f})' "
                f"title='{html.escape(tip, quote=True)}'>{_segment_body(reasoning[core_start:core_end], core_start, inside, scale)}</span>"
            )
            cursor = core_end
            rows.append(
                f"<tr><td>{int(segment['segment_index'])}</td><td>{segment['strength_share']:.3f}</td>"
                f"<td>{segment['consistency']:.3f}</td><td>{'yes' if segment['segment_index'] in chosen else ''}</td>"
                + (f"<td>{html.escape(str(role))}</td>" if roles is not None else "")
                + f"<td class='text'>{html.escape(text.strip()[:80])}</td></tr>"
            )
        spans.append(html.escape(reasoning[cursor:]))
        role_header = "<th>planted role</th>" if roles is not None else ""
        parts.append(
            f"<div class='trace'><h2>{html.escape(str(trace_id))}</h2>"
            f"<p><b>Question:</b> {html.escape(trace['question'])}<br><b>Answer:</b> {html.escape(str(trace['answer']))}</p>"
            f"<div class='reasoning'>{''.join(spans)}</div>"
            f"<table><tr><th>segment</th><th>strength share</th><th>consistency</th><th>selected</th>{role_header}<th>text</th></tr>"
            f"{''.join(rows)}</table></div>"
        )
    parts.append(f"<script>{_VIEWER_SCRIPT}</script>" if token_rows is not None else "")
    parts.append("</body></html>")
    return "".join(parts)


def plot_accuracy_vs_length(comparison: pd.DataFrame):
    """Accuracy (95% interval) against mean response length, one point per model."""
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for row in comparison.itertuples(index=False):
        error = [[row.accuracy - row.accuracy_ci_low], [row.accuracy_ci_high - row.accuracy]]
        axes.errorbar(row.mean_response_tokens, row.accuracy, yerr=error, fmt="o", capsize=4)
        axes.annotate(row.model, (row.mean_response_tokens, row.accuracy), textcoords="offset points", xytext=(6, 4))
    axes.set_xlabel("mean response length (tokens)")
    axes.set_ylabel("accuracy (95% interval)")
    axes.set_title("Accuracy versus response length")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_selection_boundaries(segment_metrics: pd.DataFrame, tau: float, beta: float, roles: pd.Series | None = None):
    """Every segment at (share of stronger segments in its trace, consistency), with tau and beta drawn.

    On these axes the paper's rule is a rectangle: x < tau (the strength prefix, crossing segment
    included) and y <= beta. Points are coloured by planted role where the world provides one.
    """
    before = pd.concat([share_of_stronger_segments(group) for _, group in segment_metrics.groupby("trace_id", sort=False)])
    points = segment_metrics.assign(share_before=before.reindex(segment_metrics.index))
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    if roles is None:
        axes.scatter(points["share_before"], points["consistency"], s=10, alpha=0.6)
    else:
        for role, group in points.groupby(roles.reindex(points.index).to_numpy()):
            axes.scatter(group["share_before"], group["consistency"], s=10, alpha=0.6, label=role, color=ROLE_COLOURS.get(role))
        axes.legend(title="planted role", fontsize=8)
    axes.axvline(tau, color="black", linestyle="--", linewidth=1)
    axes.axhline(beta, color="black", linestyle=":", linewidth=1)
    axes.text(tau, 1.02, f" tau = {tau}", fontsize=8)
    axes.text(0.0, beta + 0.01, f"beta = {beta}", fontsize=8)
    axes.set_xlabel("strength share of the stronger segments of the trace")
    axes.set_ylabel("direction consistency")
    axes.set_title("Segment selection: selected = left of tau and below beta")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.08)
    figure.tight_layout()
    return figure


def plot_training_loss(histories: Mapping[str, Sequence[Mapping[str, float]]]):
    """Training loss per step, one line per variant (losses are over each variant's own supervised tokens)."""
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for name, history in histories.items():
        if history:
            axes.plot([entry["step"] for entry in history], [entry["loss"] for entry in history], label=name)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss (supervised tokens)")
    axes.set_title("Training loss")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _interval(mean: float, low: float, high: float, digits: int = 3) -> str:
    if any(isinstance(value, float) and math.isnan(value) for value in (mean, low, high)):
        return "n/a"
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def verdict(comparison: pd.DataFrame, candidate: str, reference: str) -> str:
    """One honest sentence: does ``candidate`` beat ``reference`` in accuracy and length, given the intervals?"""
    row = comparison.set_index("model").loc[candidate]
    accuracy = (row[f"accuracy_diff_vs_{reference}"], row["accuracy_diff_ci_low"], row["accuracy_diff_ci_high"])
    length = (row[f"mean_response_tokens_diff_vs_{reference}"], row["mean_response_tokens_diff_ci_low"], row["mean_response_tokens_diff_ci_high"])

    def direction(low: float, high: float, better_if_positive: bool) -> str:
        if low > 0:
            return "better" if better_if_positive else "worse"
        if high < 0:
            return "worse" if better_if_positive else "better"
        return "not distinguishable"

    return (
        f"{candidate} versus {reference}: accuracy difference {_interval(*accuracy)} "
        f"({direction(accuracy[1], accuracy[2], True)}); mean response length difference "
        f"{_interval(*length, digits=1)} tokens ({direction(length[1], length[2], False)})."
    )


# Each of the world's gates: its headline figure, the interval around it where it has one, the threshold in
# words, and the verdicts that a failing gate invalidates.
GATES = (
    ("label_validity", "label_validity_auroc", None, ">= 0.9 (within-trace AUROC, occlusion drop, source vs filler)",
     "attribution quality against the planted roles (every scorer's AUROC)"),
    ("label_validity_upstream", "label_validity_upstream_auroc", None,
     ">= 0.9 (AUROC, drop of the count the next step starts from, upstream step vs earlier filler)",
     "what the oracle's mask keeps beyond the source step (its upstream steps)"),
    ("sft_effect", "sft_effect_accuracy", "sft_effect_accuracy", "full SFT minus the base student >= +0.20, interval low >= +0.10 (accuracy)",
     "every fine-tuning verdict (SFT on the traces teaches too little: no mask can show anything)"),
    ("oracle_headroom", "oracle_headroom_accuracy", "oracle_headroom_accuracy",
     "oracle minus full SFT >= +0.06, interval low above 0 (accuracy), and fewer tokens than full SFT",
     "selective SFT and its ablations against full SFT (no headroom: none can be better)"),
    ("oracle_vs_budget", "oracle_vs_budget_accuracy", "oracle_vs_budget_accuracy",
     "interval of oracle minus a random mask at the oracle's own token budget above 0 (accuracy)",
     "every selective verdict (the headroom may be the loss's reweighting of a smaller mask, not the selection)"),
    ("position_only", "position_only_share", None, "<= 0.25 of the oracle's headroom recovered by first, penultimate and last alone",
     "the authors' variant and every rule that always keeps segments by position"),
    ("distractor_effect", "distractor_effect", "distractor_effect", ">= 0.30, interval low >= 0.15 (student accuracy without minus with a distractor)",
     "LeaF against KD (the student is not misled: nothing to unlearn)"),
    ("distractor_teacher", "distractor_effect_teacher", "distractor_effect_teacher",
     "<= 0.05, interval high <= 0.10 (the teacher's own distractor effect); teacher >= 0.90 without a distractor",
     "LeaF against KD (a misled teacher's gradients do not point at the distractor)"),
    ("kd_effect", "kd_effect_accuracy", "kd_effect_accuracy", "KD minus the base student >= +0.10, interval low above 0 (accuracy)",
     "LeaF against KD (a KD that teaches nothing leaves nothing to improve on)"),
    ("leaf_oracle", "leaf_oracle_accuracy", "leaf_oracle_accuracy", "interval of oracle-pruned distillation minus KD above 0 (accuracy)",
     "LeaF against KD (even perfect pruning would not beat KD here)"),
)


def gates_markdown(gates: Mapping[str, float]) -> list[str]:
    """The report's section on the world's method-agnostic gates: one row per gate that was measured, and
    which verdicts a failing gate invalidates (said, never hidden)."""
    lines = ["## The world's gates", "", "| gate | value | threshold | passed | if failing, invalidates |", "| --- | --- | --- | --- | --- |"]
    failing = []
    for name, headline, interval, threshold, governs in GATES:
        if headline not in gates:
            lines.append(f"| {name} | not measured | {threshold} | **no** (missing) | {governs} |")
            failing.append(f"- **{name} is not measured**: a missing gate counts as failing, so the verdicts on {governs} are not verdicts on the method.")
            continue
        value = gates[headline]
        if interval is not None and f"{interval}_ci_low" in gates:
            shown = _interval(value, gates[f"{interval}_ci_low"], gates[f"{interval}_ci_high"])
        else:
            shown = f"{value:.3f}"
        passed = bool(gates.get(f"{name}_passed", 0.0))
        lines.append(f"| {name} | {shown} | {threshold} | {'yes' if passed else '**no**'} | {governs} |")
        if not passed:
            failing.append(f"- **{name} fails**: the verdicts on {governs} are about this world, not the method.")
    if "oracle_headroom_tokens" in gates:
        lines += ["", "Oracle minus full SFT in mean response tokens: "
                  + _interval(gates["oracle_headroom_tokens"], gates["oracle_headroom_tokens_ci_low"], gates["oracle_headroom_tokens_ci_high"], digits=1) + "."]
    if "position_only_accuracy" in gates:
        lines += ["", "Position-only control minus full SFT in accuracy: "
                  + _interval(gates["position_only_accuracy"], gates["position_only_accuracy_ci_low"], gates["position_only_accuracy_ci_high"]) + "."]
    if "distractor_pruning_fixes_share" in gates:
        lines += ["", f"Deleting the distractor turns {gates['distractor_pruning_fixes_share']:.1%} of the student's wrong answers right."]
    lines += ["", *(failing or ["Every measured gate passes."]), ""]
    return lines


def contamination_markdown(table: pd.DataFrame) -> list[str]:
    """The held-out problems found in the training traces (``contamination.contamination_table``), named."""
    found = table[table["contaminated"].astype(bool)]
    line = f"{len(found)} of {len(table)} held-out problems are in the training traces ({int(table['exact_match'].sum())} exact copies)"
    if len(found):
        line += ": " + ", ".join(f"`{row.problem_id}` ({row.reason}, like `{row.nearest_trace_id}`)" for row in found.head(10).itertuples())
    return ["## Contamination", "", line + ".", ""]


def summary_report_markdown(
    comparison: pd.DataFrame,
    *,
    reference: str,
    figures: Mapping[str, str],
    selection_table: pd.DataFrame | None = None,
    planted_roles: pd.DataFrame | None = None,
    gates: Mapping[str, float] | None = None,
    attribution_quality: str | None = None,
    contamination: pd.DataFrame | None = None,
) -> str:
    """The run's report: the world's gates first (embedded world), how far the attributions converged,
    then the comparison table, verdicts against the reference, selection budgets, planted roles, figures."""
    columns = [
        column
        for column in (
            "model", "strategy", "supervised_tokens", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
            "mean_response_tokens", "median_response_tokens", "truncated_share",
        )
        if column in comparison
    ]
    lines = [
        "# TraceSieve run report",
        "",
        *(gates_markdown(gates) if gates is not None else []),
        *(["## Attribution quality", "", attribution_quality, ""] if attribution_quality else []),
        *(contamination_markdown(contamination) if contamination is not None else []),
        "## Models on the held-out problems",
        "",
        comparison[columns].to_markdown(index=False, floatfmt=".3f"),
        "",
        f"Differences are problem by problem against `{reference}`, with 95% intervals:",
        "",
    ]
    # A failing headroom gate invalidates every positive verdict of a selective variant over full SFT.
    no_headroom = gates is not None and "oracle_headroom_passed" in gates and not gates["oracle_headroom_passed"]
    marker = " *Oracle-headroom gate failing: this world leaves no headroom, so this is not a verdict on the method.*"
    lines += [
        f"- {verdict(comparison, name, reference)}" + (marker if no_headroom and name not in ("base", "oracle_sft") else "")
        for name in comparison["model"]
        if name != reference
    ]
    if selection_table is not None:
        lines += ["", "## Selection budgets", "", selection_table.to_markdown(index=False, floatfmt=".3f")]
    if planted_roles is not None:
        lines += ["", "## Attribution against the planted roles", "", planted_roles.to_markdown(index=False, floatfmt=".3f")]
    lines += ["", "## Figures", ""]
    lines += [f"### {title}\n\n![{title}]({path})\n" for title, path in figures.items()]
    return "\n".join(lines) + "\n"


def _struck(text: str, spans: Sequence[Sequence[int]]) -> str:
    """``text`` with each deleted span shown struck through, for Markdown."""
    pieces, cursor = [], 0
    for start, end in spans:
        pieces += [text[cursor:start], f"~~{text[start:end]}~~"]
        cursor = end
    return "".join([*pieces, text[cursor:]])


def leaf_report_markdown(
    comparison: pd.DataFrame,
    counterfactuals: pd.DataFrame,
    config,
    planted: Mapping[str, float] | None = None,
    confounders: pd.DataFrame | None = None,
    examples: int = 6,
) -> str:
    """LeaF's report: settings, what the intervention check kept, planted-distractor scores, KD versus LeaF."""
    variants = ", ".join(f"{name}: lambda {variant.original_weight}" for name, variant in config.variants.items())
    lines = [
        "# LeaF run report",
        "",
        f"Level `{config.level}`, quantile {config.quantile}, `{config.pruning}` pruning, intervention check "
        f"{'on' if config.intervention_check else 'off'}; temperature {config.distillation.temperature}; {variants}.",
        "",
        "## Counterfactuals",
        "",
    ]
    total = len(counterfactuals)
    kept = int(counterfactuals["kept"].sum()) if total else 0
    if config.intervention_check and total:
        lines.append(
            f"{total} counterfactuals; the teacher answered {int(counterfactuals['teacher_correct'].sum())} correctly, "
            f"the student {int(counterfactuals['student_correct'].sum())}; {kept} kept (both correct)."
        )
    else:
        lines.append(f"{total} counterfactuals, all kept (intervention check off).")
    if confounders is not None and len(confounders):
        analysed = confounders["trace_id"].nunique()
        with_kept = counterfactuals.loc[counterfactuals["kept"].astype(bool), "trace_id"].nunique() if total else 0
        items = kept + analysed - with_kept  # one item per kept counterfactual, one alone per trace without
        share = kept / items if items else float("nan")
        lines += ["", f"LeaF trains on {items} items, {share:.1%} of them with a counterfactual that differs from the original "
                  f"({with_kept} of {analysed} analysed traces have one); the rest repeat the original in the second term, as KD does."]
        if share < 0.5:
            why = (f"the intervention check kept {kept} of {total} counterfactuals" if config.intervention_check and total
                   else f"only {total} counterfactuals were built")
            lines.append(f"Under half: {why}, so LeaF is close to KD by construction on this data.")
    if planted is not None:
        lines += [
            "",
            "## Confounders against the planted distractors",
            "",
            f"Token precision {planted['precision']:.3f} (flagging at random: {planted['chance_precision']:.3f}), recall "
            f"{planted['recall']:.3f}; {planted['confounder_tokens']:.0f} confounder tokens, {planted['distractor_tokens']:.0f} "
            f"distractor tokens; in {planted['traces_with_distractor_hit']:.1%} of the traces with a distractor, at least one "
            "confounder lies in it.",
        ]
    if confounders is not None and confounders["confounder"].any():
        common = confounders.loc[confounders["confounder"], "text"].str.strip().value_counts().head(10)
        lines += ["", "Most frequent confounder tokens: " + ", ".join(f"`{text}` ({count})" for text, count in common.items()) + "."]
    shown = counterfactuals[counterfactuals["kept"].astype(bool)].head(examples)
    if len(shown):
        lines += ["", "Kept counterfactuals (deleted text struck through):", ""]
        lines += [f"- `{row.trace_id}`: {_struck(row.original_text, row.spans)}" for row in shown.itertuples()]
    reference = config.reference
    lines += ["", f"## Held-out accuracy, problem by problem against `{reference}`", ""]
    columns = ["subset", "model", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens"]
    lines += [comparison[columns].to_markdown(index=False, floatfmt=".3f"), ""]
    for subset, rows in comparison.groupby("subset", sort=False):
        lines += [f"- {subset}: {verdict(rows, name, reference)}" for name in rows["model"] if name not in (reference, "base")]
    return "\n".join(lines) + "\n"
