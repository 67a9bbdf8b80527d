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
    for mart in ("collection_metrics", "collection_metrics_history", "attribute_curation_steps",
                 "collection_outcomes"):
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
    for metric in ("collections_by_attribute_type", "precision_at_10", "product_coverage_by_attribute_type",
                   "precision_at_10_by_arity", "precision_at_10_by_anchor_type", "feed_first_page_distinct_products"):
        assert f"No `{metric}` rows in this build's metrics." in notes
    # collections by status, held back by reason, and the facet comparison's pipeline bar
    assert len(app.get("vega_lite_chart")) == 3
    assert [m.value for m in app.metric if m.label == "Published collections"] == ["12"]
    assert [m.value for m in app.metric if m.label == "Precision@10 (pipeline)"] == ["—"]
    assert [m.value for m in app.metric if m.label == "Precision@10 (unseen products)"] == ["—"]


def test_each_section_is_its_own_function():
    sections = [name for name in vars(dashboard) if name.startswith("section_")]
    assert sorted(sections) == sorted(["section_headline", "section_collections", "section_precision",
                                       "section_feeds", "section_outcomes", "section_history",
                                       "section_curation", "section_model"])


METRICS = pd.DataFrame([
    ("precision_at_10", "bm25_baseline", 0.5), ("precision_at_10", "pipeline", 0.9),
    ("precision_at_10", "pipeline_unseen", 0.7), ("precision_at_10", "pipeline_before_feed_diversity", 0.91),
    ("precision_at_10_by_arity", "1", 0.95), ("precision_at_10_by_arity", "3", 0.8),
    ("precision_at_10_unseen_by_arity", "1", 0.75),
    ("precision_at_10_by_anchor_type", "style", 0.85), ("precision_at_10_unseen_by_anchor_type", "style", None),
    ("feed_first_page_distinct_products", "before", 41.5), ("feed_first_page_distinct_products", "after", 48.0),
    ("feed_first_page_distinct_brands", "before", 6.0), ("feed_first_page_distinct_brands", "after", 11.25),
], columns=["metric", "dimension", "value"])


def test_precision_rows_name_every_measurement_in_a_fixed_order():
    rows = dashboard.precision_rows(METRICS)
    assert list(zip(rows["dimension"], rows["value"])) == [
        ("pipeline, all feed products", 0.9), ("pipeline, unseen (test-split) products", 0.7),
        ("pipeline, feed before variants + diversity", 0.91), ("BM25 title search", 0.5)]


def test_precision_breakdowns_pair_all_and_unseen_and_skip_missing_values():
    by_arity = dashboard.precision_breakdown(METRICS, "arity")
    assert list(zip(by_arity["dimension"], by_arity["series"], by_arity["value"])) == [
        ("1 attribute", "all feed products", 0.95), ("1 attribute", "unseen products", 0.75),
        ("3 attributes", "all feed products", 0.8)]
    by_anchor = dashboard.precision_breakdown(METRICS, "anchor_type")
    assert list(zip(by_anchor["dimension"], by_anchor["series"], by_anchor["value"])) == [
        ("style", "all feed products", 0.85)]


def test_first_page_rows_compare_before_and_after():
    rows = dashboard.first_page_rows(METRICS)
    assert list(zip(rows["dimension"], rows["series"], rows["value"])) == [
        ("distinct products", "before", 41.5), ("distinct products", "after", 48.0),
        ("distinct brands", "before", 6.0), ("distinct brands", "after", 11.25)]


OUTCOMES = pd.DataFrame([
    ("n_attributes", "1", "published", "published", 4), ("n_attributes", "2", "published", "disambiguated_title", 1),
    ("n_attributes", "2", "held_back", "contradiction", 3), ("n_attributes", "2", "published", "published", 2),
    ("anchor_type", "style", "duplicate", "near_duplicate_feed", 5),
], columns=["breakdown", "breakdown_value", "status", "reason", "collections"])


def test_outcome_rows_and_table_per_breakdown():
    rows = dashboard.outcome_rows(OUTCOMES, "n_attributes")
    assert list(zip(rows["dimension"], rows["series"], rows["value"])) == [
        ("1", "published", 4), ("2", "contradiction", 3), ("2", "disambiguated_title", 1), ("2", "published", 2)]
    table = dashboard.outcome_table(OUTCOMES, "n_attributes")
    assert table.loc["2", "candidates"] == 6 and table.loc["2", "published share"] == 0.5
    assert table.loc["1", "contradiction"] == 0 and table.loc["1", "published share"] == 1.0
    assert table.index.name == "attributes"


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
