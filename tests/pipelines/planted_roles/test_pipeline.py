"""The planted_roles pipeline: attribution quality per planted role, in a table and as metrics."""

from tests.pipelines.conftest import run_pipeline
from tests.world.test_roles import _tables
from tracesieve.pipelines.planted_roles import create_pipeline


def test_the_role_table_and_auroc_reach_the_catalog():
    planted, metrics, selections = _tables()
    catalog = run_pipeline(create_pipeline(), {"segment_metrics": metrics, "selections": selections, "world_segments": planted})
    assert set(catalog.load("planted_role_table")["role"]) == {"necessary", "detour", "final"}
    quality = catalog.load("planted_role_metrics")
    assert quality["auroc_strength_share_necessary_vs_filler"]["value"] == 1.0
    assert "auroc_strength_share_necessary_vs_restatement" not in quality  # NaN: no restatement to compare with
