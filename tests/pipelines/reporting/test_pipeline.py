"""The reporting pipeline's wiring, with and without the embedded world's planted roles."""

from tracesieve.pipelines.reporting import create_pipeline


def test_planted_roles_feed_the_viewer_figures_and_report_only_on_the_embedded_world():
    world = {node.name: node for node in create_pipeline().nodes}
    real = {node.name: node for node in create_pipeline(embedded_world=False).nodes}
    assert "world_segments" in world["render_attribution_viewer"].inputs and "planted_role_table" in world["write_summary_report"].inputs
    assert all("world_segments" not in node.inputs and "planted_role_table" not in node.inputs for node in real.values())
    # The loss figure reads every configured variant's training log.
    assert {f"{variant}.training_log" for variant in ("full_sft", "selective_sft", "random_sft")} <= set(world["draw_figures"].inputs)
    assert world["draw_figures"].outputs == ["figure_accuracy_vs_length", "figure_selection_boundaries", "figure_training_loss"]
