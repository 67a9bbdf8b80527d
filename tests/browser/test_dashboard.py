"""The Streamlit dashboard in headless Chromium, over fixture marts and a real MLflow registry.

The test writes the marts the dashboard reads as Parquet tables in a temporary warehouse (the
layout Spark gives managed tables), registers two versions of a tiny pyfunc in a temporary MLflow
store (only the first holds the `champion` alias), serves the dashboard on a free loopback port and
checks every chart's marks against the fixture rows. Screenshot: $PINLANDING_TEST_ARTIFACTS
(default: pytest's tmp dir); also docs/img/dashboard.png when PINLANDING_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.browser

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Debian's packages (`make setup`), overridable like in tests/browser/conftest.py.
CHROMIUM = Path(os.environ.get("PINLANDING_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PINLANDING_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCHEMA = "pinlanding"
COMPUTED_AT = pd.Timestamp("2026-11-20 09:30:00")

# collection_metrics of the "current" build: (metric, dimension, value), following the contract.
CURRENT_METRICS = [
    ("collections", "published", 42), ("collections", "duplicate", 6), ("collections", "held_back", 9),
    ("held_back", "contradiction", 3), ("held_back", "low_quality_title", 2),
    ("held_back", "title_failed_validation", 2), ("held_back", "duplicate_title", 1), ("held_back", "title_error", 1),
    ("collections_by_attribute_type", "article_type", 31), ("collections_by_attribute_type", "colour", 24),
    ("collections_by_attribute_type", "pattern", 11), ("collections_by_attribute_type", "sleeve_length", 7),
    ("product_coverage_by_attribute_type", "article_type", 0.712),
    ("product_coverage_by_attribute_type", "colour", 0.645),
    ("product_coverage_by_attribute_type", "pattern", 0.238),
    ("product_coverage_by_attribute_type", "sleeve_length", 0.181),
    ("product_coverage", "all", 0.784),
    ("collections_by_size", "1: <50", 18), ("collections_by_size", "2: 50-199", 16),
    ("collections_by_size", "3: 200-999", 7), ("collections_by_size", "4: 1000+", 1),
    ("collection_size_p50", "all", 57), ("collection_size_mean", "all", 83.4), ("mean_feed_score", "all", 0.612),
    ("feed_partial_share", "all", 0.137), ("vocabulary_active", "all", 109),
    ("precision_at_10", "pipeline", 0.873), ("precision_at_10", "bm25_baseline", 0.552),
    ("precision_at_10", "pipeline_unseen", 0.716), ("precision_at_10", "pipeline_unseen_full", 0.801),
    ("precision_at_10", "pipeline_before_feed_diversity", 0.868),
    ("precision_at_10_collections", "pipeline", 42), ("precision_at_10_collections", "pipeline_unseen", 39),
    ("precision_at_10_by_arity", "1", 0.951), ("precision_at_10_by_arity", "2", 0.884),
    ("precision_at_10_by_arity", "3", 0.812),
    ("precision_at_10_unseen_by_arity", "1", 0.802), ("precision_at_10_unseen_by_arity", "2", 0.733),
    ("precision_at_10_unseen_by_arity", "3", 0.611),
    ("precision_at_10_by_anchor_type", "article_type", 0.891), ("precision_at_10_by_anchor_type", "style", 0.774),
    ("precision_at_10_unseen_by_anchor_type", "article_type", 0.745),
    ("precision_at_10_unseen_by_anchor_type", "style", 0.58),
    ("feed_first_page_distinct_products", "before", 39.4), ("feed_first_page_distinct_products", "after", 46.2),
    ("feed_first_page_distinct_brands", "before", 9.1), ("feed_first_page_distinct_brands", "after", 14.7),
    ("feed_variants_collapsed", "all", 311),
    ("facet_baseline_collections", "gender x article_type x colour", 35),
    ("facet_baseline_collections", "coarser facet subsets", 20),
    ("coverage_vs_facet_baseline", "gender x article_type x colour", 1.42),
]
# Earlier builds for collection_metrics_history (the current build is appended as the last run).
EARLIER_BUILDS = {
    pd.Timestamp("2026-11-18 08:00:00"): {("collections", "published"): 30, ("collections", "duplicate"): 4,
                                          ("collections", "held_back"): 14, ("precision_at_10", "pipeline"): 0.801,
                                          ("precision_at_10", "bm25_baseline"): 0.552, ("product_coverage", "all"): 0.655,
                                          ("precision_at_10", "pipeline_unseen"): 0.65},
    pd.Timestamp("2026-11-19 08:00:00"): {("collections", "published"): 37, ("collections", "duplicate"): 5,
                                          ("collections", "held_back"): 11, ("precision_at_10", "pipeline"): 0.846,
                                          ("precision_at_10", "bm25_baseline"): 0.552, ("product_coverage", "all"): 0.731,
                                          ("precision_at_10", "pipeline_unseen"): 0.688},
}
CURRENT_RUN_STARTED_AT = pd.Timestamp("2026-11-20 09:12:00")
# collection_outcomes: (breakdown, breakdown_value, status, reason, collections)
OUTCOMES = [
    ("n_attributes", "1", "published", "published", 14), ("n_attributes", "1", "duplicate", "near_duplicate_feed", 1),
    ("n_attributes", "2", "published", "published", 17), ("n_attributes", "2", "published", "disambiguated_title", 3),
    ("n_attributes", "2", "held_back", "contradiction", 3), ("n_attributes", "2", "duplicate", "near_duplicate_feed", 2),
    ("n_attributes", "3", "published", "published", 8), ("n_attributes", "3", "held_back", "low_quality_title", 2),
    ("n_attributes", "3", "held_back", "title_failed_validation", 2), ("n_attributes", "3", "held_back", "duplicate_title", 1),
    ("n_attributes", "3", "held_back", "title_error", 1), ("n_attributes", "3", "duplicate", "near_duplicate_feed", 3),
    ("anchor_type", "article_type", "published", "published", 35),
    ("anchor_type", "article_type", "published", "disambiguated_title", 3),
    ("anchor_type", "article_type", "held_back", "contradiction", 3),
    ("anchor_type", "article_type", "duplicate", "near_duplicate_feed", 6),
    ("anchor_type", "style", "published", "published", 4), ("anchor_type", "style", "held_back", "low_quality_title", 2),
    ("anchor_type", "style", "held_back", "title_failed_validation", 2),
    ("anchor_type", "style", "held_back", "duplicate_title", 1), ("anchor_type", "style", "held_back", "title_error", 1),
    ("attribute_type", "colour", "published", "published", 20), ("attribute_type", "colour", "held_back", "contradiction", 1),
]
CURATION_STEPS = pd.DataFrame({
    "attribute_type": ["article_type", "colour", "pattern", "sleeve_length"],
    "raw_values": [412, 96, 133, 18],
    "after_normalisation": [301, 71, 88, 9],
    "after_frequency_filter": [64, 38, 21, 6],
    "after_blocklist_and_dedup": [58, 33, 17, 4],
    "after_safety_review": [57, 33, 15, 4],
})
# Test-split metrics of the champion's training run, named as ml/train.py logs them.
CHAMPION_RECALL = {
    "test.image_text": (0.412, 0.571, 0.634), "test.image_only": (0.205, 0.377, 0.452),
    "test.text_only": (0.389, 0.548, 0.612), "ablation.no_reweighting.image_text": (0.371, 0.533, 0.598),
    "baseline.bm25": (0.143, 0.297, 0.356), "baseline.minilm_zero_shot": (0.118, 0.262, 0.331),
}
CHAMPION_RECALL_BY_TYPE = {"article_type": 0.815, "colour": 0.702, "pattern": 0.433, "sleeve_length": 0.526}
# A later, non-champion version: none of its numbers may reach the page.
CHALLENGER_RECALL_AT_10 = 0.111

EXPECTED_CHARTS = {
    "Collections by status", "Held-back collections by reason", "Collections by attribute type",
    "Published collections by size",
    "Precision@10: pipeline vs BM25 baseline", "Product coverage by attribute type",
    "Precision@10 by number of attributes", "Precision@10 by anchor type",
    "First page: before vs after variants and brand diversity",
    "Candidates by attributes and outcome", "Candidates by anchor type and outcome",
    "Published collections vs facet baseline", "Collections per build", "Precision@10 and coverage per build",
    "Vocabulary size per curation step", "Champion Recall@K (test split)", "Champion Recall@10 by attribute type",
}


def metric_rows(metric: str) -> list[tuple[str, float]]:
    return [(d, v) for m, d, v in CURRENT_METRICS if m == metric]


def write_table(warehouse: Path, name: str, frame: pd.DataFrame) -> None:
    table = warehouse / name
    table.mkdir(parents=True)
    frame.to_parquet(table / "part-0.parquet", index=False)
    (table / "_SUCCESS").touch()  # as Spark leaves it; readers must skip it


def write_marts(warehouse: Path) -> None:
    current = pd.DataFrame(CURRENT_METRICS, columns=["metric", "dimension", "value"]).astype({"value": "float64"})
    current["computed_at"] = COMPUTED_AT
    write_table(warehouse, "collection_metrics", current)
    history = [current.assign(run_started_at=CURRENT_RUN_STARTED_AT)]
    for started, values in EARLIER_BUILDS.items():
        rows = pd.DataFrame([(m, d, float(v)) for (m, d), v in values.items()], columns=["metric", "dimension", "value"])
        history.append(rows.assign(computed_at=started + pd.Timedelta(minutes=20), run_started_at=started))
    write_table(warehouse, "collection_metrics_history", pd.concat(history, ignore_index=True))
    outcomes = pd.DataFrame(OUTCOMES, columns=["breakdown", "breakdown_value", "status", "reason", "collections"])
    outcomes["share_of_candidates"] = outcomes["collections"] / outcomes.groupby(
        ["breakdown", "breakdown_value"])["collections"].transform("sum")
    write_table(warehouse, "collection_outcomes", outcomes)
    write_table(warehouse, "attribute_curation_steps", CURATION_STEPS.astype({c: "int64" for c in CURATION_STEPS
                                                                             if c != "attribute_type"}))


def register_models(data_dir: Path) -> None:
    """Two registered versions with real training-run metrics; `champion` points at the first."""
    import mlflow
    from mlflow import MlflowClient

    from pinlanding.tracking import configure, get_or_create_experiment

    class EchoModel(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[str], params=None) -> list[str]:
            return model_input

    def log_version(metrics: dict[str, float]) -> str:
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_metrics(metrics)
            info = mlflow.pyfunc.log_model(name="model", python_model=EchoModel(), pip_requirements=["mlflow"],
                                           registered_model_name="pinlanding-dual-encoder")
        return str(info.registered_model_version)

    configure()
    experiment_id = get_or_create_experiment("pinlanding-dual-encoder")
    champion = {f"{prefix}.recall_at_{k}": v for prefix, values in CHAMPION_RECALL.items()
                for k, v in zip((1, 5, 10), values)}
    champion |= {f"test.image_text.recall_at_10.{t}": v for t, v in CHAMPION_RECALL_BY_TYPE.items()}
    champion |= {"validation.image_text.recall_at_10": 0.641, "reweight_beta": 0.02}
    champion_version = log_version(champion)
    MlflowClient().set_registered_model_alias("pinlanding-dual-encoder", "champion", champion_version)
    log_version({name: CHALLENGER_RECALL_AT_10 for name in champion})
    assert champion_version == "1"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dashboard-data")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PINLANDING_DATA_DIR", str(root))
        env.setenv("PINLANDING_SCHEMA", SCHEMA)
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        env.delenv("MLFLOW_REGISTRY_URI", raising=False)
        write_marts(root / "warehouse" / f"{SCHEMA}.db")
        register_models(root)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard_url(data_dir: Path, tmp_path_factory):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {"PINLANDING_DATA_DIR": str(data_dir), "PINLANDING_SCHEMA": SCHEMA}
    log_path = tmp_path_factory.mktemp("dashboard-log") / "streamlit.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "pinlanding.dashboard", "--server.port", str(port)],
                                  cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dashboard did not come up on {url}:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} not found: `make setup` installs Debian's chromium and "
                    "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1200",
                # loopback only: every other host fails to resolve
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--no-proxy-server", "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


# Every Vega chart on the page: its title and the aria labels of its data marks. Vega's SVG renderer
# puts each mark's `description` (the dashboard writes "<what>: <value>") in its aria-label.
CHARTS_JS = """
return Array.from(document.querySelectorAll('.vega-embed')).map(embed => ({
  title: Array.from(embed.querySelectorAll('svg .role-title-text text')).map(t => t.textContent).join(' '),
  bars: Array.from(embed.querySelectorAll('svg .mark-rect.role-mark path[aria-label]')).map(p => p.getAttribute('aria-label')),
  points: Array.from(embed.querySelectorAll('svg .mark-symbol.role-mark path[aria-label]')).map(p => p.getAttribute('aria-label')),
  lines: embed.querySelectorAll('svg .mark-line.role-mark path').length,
}));
"""


@pytest.fixture(scope="module")
def page(browser, dashboard_url) -> dict:
    """The loaded dashboard: its charts by title and its visible text, once every chart has drawn."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(dashboard_url)

    def charts_drawn(driver):
        charts = driver.execute_script(CHARTS_JS)
        titles = {c["title"] for c in charts if c["bars"] or c["points"]}
        return charts if EXPECTED_CHARTS <= titles else False

    try:
        charts = WebDriverWait(browser, 120, poll_frequency=0.5).until(charts_drawn)
    except TimeoutException:
        drawn = [c["title"] for c in browser.execute_script(CHARTS_JS)]
        pytest.fail(f"charts drawn: {drawn}; page text:\n{browser.find_element('tag name', 'body').text[:3000]}")
    return {"charts": {c["title"]: c for c in charts},
            "text": browser.find_element("tag name", "body").text,
            "exceptions": browser.find_elements("css selector", '[data-testid="stException"]'),
            "alerts": [a.text for a in browser.find_elements("css selector", '[data-testid="stAlert"]')]}


def test_page_renders_without_errors_or_missing_data_notes(page):
    assert not page["exceptions"]
    assert page["alerts"] == []
    assert set(page["charts"]) == EXPECTED_CHARTS


@pytest.mark.parametrize("title, metric, value_format", [
    ("Collections by status", "collections", "{:,.0f}"),
    ("Held-back collections by reason", "held_back", "{:,.0f}"),
    ("Collections by attribute type", "collections_by_attribute_type", "{:,.0f}"),
    ("Published collections by size", "collections_by_size", "{:,.0f}"),
    ("Product coverage by attribute type", "product_coverage_by_attribute_type", "{:.1%}"),
])
def test_metric_bar_charts_draw_one_bar_per_row_with_its_value(page, title, metric, value_format):
    expected = [f"{dimension}: {value_format.format(value)}" for dimension, value in metric_rows(metric)]
    assert sorted(page["charts"][title]["bars"]) == sorted(expected)


def test_precision_chart_names_all_unseen_before_and_baseline(page):
    labels = {"pipeline": "pipeline, all feed products", "pipeline_unseen": "pipeline, unseen (test-split) products",
              "pipeline_unseen_full": "pipeline, unseen products, full matches",
              "pipeline_before_feed_diversity": "pipeline, feed before variants + diversity",
              "bm25_baseline": "BM25 title search"}
    assert sorted(page["charts"]["Precision@10: pipeline vs BM25 baseline"]["bars"]) == sorted(
        f"{labels[d]}: {v:.3f}" for d, v in metric_rows("precision_at_10"))


@pytest.mark.parametrize("title, series", [
    ("Precision@10 by number of attributes", {"precision_at_10_by_arity": "all feed products",
                                              "precision_at_10_unseen_by_arity": "unseen products"}),
    ("Precision@10 by anchor type", {"precision_at_10_by_anchor_type": "all feed products",
                                     "precision_at_10_unseen_by_anchor_type": "unseen products"}),
])
def test_precision_breakdowns_draw_all_and_unseen_bars(page, title, series):
    def name(metric, dimension):
        if "arity" in metric:
            return f"{dimension} attribute" + ("" if dimension == "1" else "s")
        return dimension
    expected = [f"{label}, {name(metric, d)}: {v:.3f}" for metric, label in series.items()
                for d, v in metric_rows(metric)]
    assert sorted(page["charts"][title]["bars"]) == sorted(expected)


def test_first_page_chart_compares_before_and_after(page):
    expected = [f"{when}, {label}: {v:,.1f}"
                for label, metric in [("distinct products", "feed_first_page_distinct_products"),
                                      ("distinct brands", "feed_first_page_distinct_brands")]
                for when, v in metric_rows(metric)]
    chart = page["charts"]["First page: before vs after variants and brand diversity"]
    assert sorted(chart["bars"]) == sorted(expected)


@pytest.mark.parametrize("title, breakdown", [("Candidates by attributes and outcome", "n_attributes"),
                                              ("Candidates by anchor type and outcome", "anchor_type")])
def test_outcome_charts_stack_every_reason(page, title, breakdown):
    expected = [f"{reason}, {value}: {n:,}" for b, value, _, reason, n in OUTCOMES if b == breakdown]
    assert sorted(page["charts"][title]["bars"]) == sorted(expected)


def test_facet_baseline_chart_compares_published_collections_with_the_baseline(page):
    assert sorted(page["charts"]["Published collections vs facet baseline"]["bars"]) == [
        "every facet subset: 55", "merchant facets (gender x type x colour): 35", "pipeline (published): 42"]


def history_labels(series_of: dict[tuple[str, str], str], value_format: str) -> list[str]:
    builds = {started: {key: values[key] for key in series_of} for started, values in EARLIER_BUILDS.items()}
    builds[CURRENT_RUN_STARTED_AT] = {(m, d): v for m, d, v in CURRENT_METRICS if (m, d) in series_of}
    return sorted(f"{series_of[key]}, {started:%Y-%m-%d %H:%M}: {value_format.format(value)}"
                  for started, values in builds.items() for key, value in values.items())


def test_history_charts_draw_every_series_of_every_build(page):
    collections = page["charts"]["Collections per build"]
    statuses = {("collections", s): s for s in ("published", "duplicate", "held_back")}
    assert collections["lines"] == len(statuses)
    assert sorted(collections["points"]) == history_labels(statuses, "{:,.0f}")
    rates = page["charts"]["Precision@10 and coverage per build"]
    series = {("precision_at_10", "pipeline"): "precision@10, pipeline",
              ("precision_at_10", "pipeline_unseen"): "precision@10, unseen products",
              ("precision_at_10", "bm25_baseline"): "precision@10, BM25 baseline",
              ("product_coverage", "all"): "product coverage"}
    assert rates["lines"] == len(series)
    assert sorted(rates["points"]) == history_labels(series, "{:.3f}")


def test_curation_chart_draws_every_step_of_every_type(page):
    steps = ["1 raw", "2 normalised + synonyms", "3 frequency filter", "4 blocklist + dedup", "5 safety review"]
    expected = [f"{row.attribute_type}, {step}: {value:,}" for row in CURATION_STEPS.itertuples(index=False)
                for step, value in zip(steps, row[1:])]
    chart = page["charts"]["Vocabulary size per curation step"]
    assert chart["lines"] == len(CURATION_STEPS)
    assert sorted(chart["points"]) == sorted(expected)


def test_champion_recall_comes_from_the_champion_versions_run(page):
    labels = {"test.image_text": "dual encoder, image+text", "test.image_only": "dual encoder, image-only",
              "test.text_only": "dual encoder, text-only", "ablation.no_reweighting.image_text": "no frequency reweighting",
              "baseline.bm25": "BM25 baseline", "baseline.minilm_zero_shot": "MiniLM zero-shot"}
    expected = [f"{labels[prefix]}, R@{k}: {value:.3f}" for prefix, values in CHAMPION_RECALL.items()
                for k, value in zip((1, 5, 10), values)]
    assert sorted(page["charts"]["Champion Recall@K (test split)"]["bars"]) == sorted(expected)
    assert sorted(page["charts"]["Champion Recall@10 by attribute type"]["bars"]) == sorted(
        f"{t}: {v:.3f}" for t, v in CHAMPION_RECALL_BY_TYPE.items())
    assert f"{CHALLENGER_RECALL_AT_10:.3f}" not in page["text"]


def test_headline_numbers_are_shown(page):
    text = page["text"]
    for shown in ("Published collections\n42", "Product coverage\n78.4%", "Precision@10 (pipeline)\n0.873",
                  "+0.321 vs BM25", "Precision@10 (unseen products)\n0.716", "-0.157 vs all",
                  "Products folded into variants\n311", "39 of 42 published collections have any", "Coverage vs facet baseline\n1.42×",
                  "Median collection size\n57", "Mean collection size\n83.4", "Mean feed score\n0.612",
                  "Partial matches in feeds\n13.7%",
                  "Champion\nv1", "Test Recall@10 (image+text)\n0.634", "Test Recall@10 (BM25 baseline)\n0.356",
                  "3 builds recorded", "Build computed at 2026-11-20 09:30:00"):
        assert shown in text, shown


def test_screenshot(browser, page, tmp_path_factory):
    # Streamlit scrolls inside its main container: grow the window to it so the shot has the whole page.
    height = browser.execute_script(
        "return document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    browser.set_window_size(1400, height + 120)
    time.sleep(1)  # charts re-layout to the new size
    artifacts = Path(os.environ.get("PINLANDING_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    if os.environ.get("PINLANDING_UPDATE_SCREENSHOTS") == "1":
        (PROJECT_DIR / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, PROJECT_DIR / "docs" / "img" / "dashboard.png")
