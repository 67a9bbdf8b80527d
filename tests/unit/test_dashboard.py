"""The dashboard script without a browser (Streamlit's AppTest): what it shows before a build and
with partial metrics, and how it reads MLflow metric names. The charts in a real browser are
tested in tests/browser/test_dashboard.py."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pinlanding import dashboard

SCRIPT = Path(dashboard.__file__)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PINLANDING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PINLANDING_SCHEMA", "pinlanding")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return tmp_path


def run_app() -> AppTest:
    app = AppTest.from_file(str(SCRIPT), default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_before_any_build_each_section_says_to_run_the_pipeline(data_dir):
    app = run_app()
    notes = [info.value for info in app.info]
    for mart in ("collection_metrics", "collection_metrics_history", "attribute_curation_steps"):
        assert any(f"`{mart}` has not been built yet" in note and "make run" in note for note in notes), mart
    assert any(note.startswith("No champion model to show") and "make run" in note for note in notes)
    assert not app.get("vega_lite_chart")
    # Looking for a champion must not create an MLflow store in the data directory.
    assert not (data_dir / "mlflow.db").exists()


def test_metrics_missing_from_the_build_are_named_instead_of_charted(data_dir):
    table = data_dir / "warehouse" / "pinlanding.db" / "collection_metrics"
    table.mkdir(parents=True)
    pd.DataFrame({"metric": ["collections", "collections", "held_back"],
                  "dimension": ["published", "held_back", "contradiction"],
                  "value": [12.0, 1.0, 1.0],
                  "computed_at": pd.Timestamp("2026-11-20 09:30:00")}).to_parquet(table / "part-0.parquet")
    app = run_app()
    notes = [info.value for info in app.info]
    for metric in ("collections_by_attribute_type", "precision_at_10", "product_coverage_by_attribute_type"):
        assert f"No `{metric}` rows in this build's metrics." in notes
    # collections by status, held back by reason, and the facet comparison's pipeline bar
    assert len(app.get("vega_lite_chart")) == 3
    assert [m.value for m in app.metric if m.label == "Published collections"] == ["12"]
    assert [m.value for m in app.metric if m.label == "Precision@10 (pipeline)"] == ["—"]


def test_recall_series_come_from_the_final_test_metrics_only():
    logged = {
        "test.image_text.recall_at_1": 0.4, "test.image_text.recall_at_10": 0.6,
        "test.image_text.recall_at_10.colour": 0.7, "test.image_text.recall_at_10.pattern": 0.3,
        "validation.image_text.recall_at_10": 0.9,  # model selection, not the reported split
        "baseline.bm25.recall_at_10": 0.2, "train.loss": 1.5,
    }
    recall = dashboard.recall_at_k(logged)
    assert sorted(zip(recall["series"], recall["at_k"], recall["recall"])) == [
        ("BM25 baseline", "R@10", 0.2), ("dual encoder, image+text", "R@1", 0.4),
        ("dual encoder, image+text", "R@10", 0.6)]
    by_type = dashboard.recall_by_type(logged)
    assert list(zip(by_type["attribute_type"], by_type["recall"])) == [("colour", 0.7), ("pattern", 0.3)]


def test_curation_steps_run_in_pipeline_order():
    steps = pd.DataFrame({"attribute_type": ["colour"], "after_safety_review": [30], "raw_values": [90],
                          "after_frequency_filter": [40], "after_normalisation": [70],
                          "after_blocklist_and_dedup": [33]})
    funnel = dashboard.curation_funnel(steps)
    assert list(funnel["values"]) == [90, 70, 40, 33, 30]
    assert list(funnel["step"]) == list(dashboard.CURATION_STEPS.values())
