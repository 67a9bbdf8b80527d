"""Collections dashboard: the latest build's collection metrics, their history across builds,
vocabulary curation and the champion dual encoder's Recall@K.

    make dashboard                      # http://127.0.0.1:8501
    python -m pinlanding.dashboard      # same, without the streamlit CLI
    streamlit run pinlanding/dashboard.py --server.address 127.0.0.1 --server.headless true

It reads the warehouse tables' Parquet directories (pinlanding/marts.py), never Spark: the embedded
Derby metastore admits one process at a time, so the dashboard can stay open while `make run`
rebuilds the marts. Declared to dbt as the exposure `collections_dashboard` (models/exposures.yml).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import pyarrow as pa

from ml.registry import CHAMPION_ALIAS, REGISTERED_MODEL, champion_version  # light: no torch import
from pinlanding.marts import MartNotFoundError, mart_location, read_mart
from pinlanding.tracking import configure, tracking_uri

# Marts are rebuilt in place by `make run`; re-read them at most this often.
CACHE_SECONDS = 30
SERVER_FLAGS = ["--server.address", "127.0.0.1", "--server.port", "8501", "--server.headless", "true",
                "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]

# attribute_curation_steps columns in pipeline order, with the label each step gets.
CURATION_STEPS = {
    "raw_values": "1 raw",
    "after_normalisation": "2 normalised + synonyms",
    "after_frequency_filter": "3 frequency filter",
    "after_blocklist_and_dedup": "4 blocklist + dedup",
    "after_safety_review": "5 safety review",
}
# (label, MLflow metric prefix) of the Recall@K rows ml/train.py logs for the test split.
RECALL_SERIES = [
    ("dual encoder, image+text", "test.image_text"),
    ("dual encoder, image-only", "test.image_only"),
    ("dual encoder, text-only", "test.text_only"),
    ("no frequency reweighting", "ablation.no_reweighting.image_text"),
    ("BM25 baseline", "baseline.bm25"),
    ("MiniLM zero-shot", "baseline.minilm_zero_shot"),
]
# Metrics in [0, 1] that share one axis in the history chart, with their series label.
RATE_HISTORY = {("precision_at_10", "pipeline"): "precision@10, pipeline",
                ("precision_at_10", "pipeline_unseen"): "precision@10, unseen products",
                ("precision_at_10", "bm25_baseline"): "precision@10, BM25 baseline",
                ("product_coverage", "all"): "product coverage"}
# precision_at_10 dimensions (models/collections/collection_metrics.sql) and how the page names them.
PRECISION_LABELS = {
    "pipeline": "pipeline, all feed products",
    "pipeline_unseen": "pipeline, unseen (test-split) products",
    "pipeline_unseen_full": "pipeline, unseen products, full matches",
    "pipeline_before_feed_diversity": "pipeline, feed before variants + diversity",
    "bm25_baseline": "BM25 title search",
}
# Series of the precision breakdowns: (label, metric) per breakdown (arity or anchor type).
PRECISION_BREAKDOWNS = {
    "arity": [("all feed products", "precision_at_10_by_arity"),
              ("unseen products", "precision_at_10_unseen_by_arity")],
    "anchor_type": [("all feed products", "precision_at_10_by_anchor_type"),
                    ("unseen products", "precision_at_10_unseen_by_anchor_type")],
}
# First-page metrics: (label, metric), each with dimensions before / after.
FIRST_PAGE = [("distinct products", "feed_first_page_distinct_products"),
              ("distinct brands", "feed_first_page_distinct_brands")]
# collection_outcomes breakdowns shown, with their axis titles.
OUTCOME_BREAKDOWNS = {"n_attributes": "attributes", "anchor_type": "anchor type"}
# Outcome reasons first in this order (then the held-back reasons alphabetically).
OUTCOME_ORDER = {"published": 0, "disambiguated_title": 1, "near_duplicate_feed": 2}


# ------------------------------------------------------------------ pure helpers (no Streamlit)

def metric_rows(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The (dimension, value) rows of one metric, largest value first; null values (a ratio over
    an empty baseline) are left out."""
    rows = metrics.loc[metrics["metric"] == metric, ["dimension", "value"]].dropna(subset=["value"])
    return rows.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


# collection_metrics dimensions of the facet-only baseline (models/collections/collection_metrics.sql)
FACET_PAGES = "gender x article_type x colour"
COARSER_FACET_PAGES = "coarser facet subsets"


def metric_value(metrics: pd.DataFrame, metric: str, dimension: str = "all") -> float | None:
    hit = metrics.loc[(metrics["metric"] == metric) & (metrics["dimension"] == dimension), "value"]
    return float(hit.iloc[0]) if len(hit) and pd.notna(hit.iloc[0]) else None


def precision_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """precision_at_10 rows with readable dimension names, in PRECISION_LABELS order."""
    rows = metrics.loc[metrics["metric"] == "precision_at_10", ["dimension", "value"]].dropna(subset=["value"])
    order = {key: i for i, key in enumerate(PRECISION_LABELS)}
    rows = rows.assign(order=rows["dimension"].map(order).fillna(len(order)))
    rows = rows.sort_values(["order", "dimension"], kind="stable")
    rows["dimension"] = rows["dimension"].map(lambda d: PRECISION_LABELS.get(d, d))
    return rows[["dimension", "value"]].reset_index(drop=True)


def precision_breakdown(metrics: pd.DataFrame, by: str) -> pd.DataFrame:
    """(dimension, series, value): precision@10 over all feed products and over unseen products,
    per arity or anchor type. A dimension with no unseen product has no unseen bar."""
    parts = [metric_rows(metrics, metric).assign(series=label) for label, metric in PRECISION_BREAKDOWNS[by]]
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["dimension", "value", "series"])
    if by == "arity":
        rows["dimension"] = rows["dimension"].map(lambda d: f"{d} attribute" + ("" if d == "1" else "s"))
    return rows.sort_values(["dimension", "series"], kind="stable").reset_index(drop=True)[
        ["dimension", "series", "value"]]


def first_page_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """(dimension, series, value): the first page's distinct products and brands, before / after."""
    rows = []
    for label, metric in FIRST_PAGE:
        for when in ("before", "after"):
            value = metric_value(metrics, metric, when)
            if value is not None:
                rows.append({"dimension": label, "series": when, "value": value})
    return pd.DataFrame(rows, columns=["dimension", "series", "value"])


def outcome_rows(outcomes: pd.DataFrame, breakdown: str) -> pd.DataFrame:
    """(dimension, series, value) of one collection_outcomes breakdown: collections per breakdown
    value and reason (published, disambiguated_title, near_duplicate_feed, held-back reasons)."""
    rows = outcomes.loc[outcomes["breakdown"] == breakdown, ["breakdown_value", "reason", "collections"]]
    rows = rows.rename(columns={"breakdown_value": "dimension", "reason": "series", "collections": "value"})
    return rows.sort_values(["dimension", "series"], kind="stable").reset_index(drop=True)


def outcome_table(outcomes: pd.DataFrame, breakdown: str) -> pd.DataFrame:
    """One row per breakdown value, one column per outcome reason, plus totals and the share published."""
    rows = outcomes.loc[outcomes["breakdown"] == breakdown]
    table = rows.pivot_table(index="breakdown_value", columns="reason", values="collections", aggfunc="sum",
                             fill_value=0)
    table.columns.name = None
    published = [c for c in ("published", "disambiguated_title") if c in table.columns]
    table["candidates"] = table.sum(axis=1)
    table["published share"] = table[published].sum(axis=1) / table["candidates"]
    table.index.name = OUTCOME_BREAKDOWNS.get(breakdown, breakdown)
    return table


def curation_funnel(steps: pd.DataFrame) -> pd.DataFrame:
    """attribute_curation_steps in long form: (attribute_type, step, values), steps in pipeline order."""
    present = [c for c in CURATION_STEPS if c in steps.columns]
    long = steps.melt(id_vars="attribute_type", value_vars=present, var_name="column", value_name="values")
    long["step"] = long["column"].map(CURATION_STEPS)
    return long[["attribute_type", "step", "values"]]


def recall_at_k(run_metrics: dict[str, float]) -> pd.DataFrame:
    """(series, k, recall) for every RECALL_SERIES prefix and K the run logged."""
    rows = []
    for label, prefix in RECALL_SERIES:
        pattern = re.compile(rf"^{re.escape(prefix)}\.recall_at_(\d+)$")
        for name, value in run_metrics.items():
            if match := pattern.match(name):
                rows.append({"series": label, "k": int(match.group(1)), "recall": value})
    frame = pd.DataFrame(rows, columns=["series", "k", "recall"])
    frame["at_k"] = "R@" + frame["k"].astype(str)
    return frame.sort_values(["k", "series"]).reset_index(drop=True)


def recall_by_type(run_metrics: dict[str, float], prefix: str = "test.image_text", k: int = 10) -> pd.DataFrame:
    """(attribute_type, recall) from the per-type metrics `<prefix>.recall_at_<k>.<type>`."""
    head = f"{prefix}.recall_at_{k}."
    rows = [{"attribute_type": name[len(head):], "recall": value}
            for name, value in run_metrics.items() if name.startswith(head)]
    return pd.DataFrame(rows, columns=["attribute_type", "recall"]).sort_values("recall", ascending=False)


def champion_run(uri: str) -> dict | str:
    """The champion version and its training run's metrics, or why there is none."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        # Looking must not create an empty store (MLflow would, and migrate it).
        return f"no MLflow store at {uri}"
    mlflow = configure()
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        version = champion_version(client)
    except MlflowException as exc:  # the page stays up and says why
        return f"the MLflow registry could not be read: {exc.message}"
    if version is None:
        return f"no `{CHAMPION_ALIAS}` version of {REGISTERED_MODEL} yet"
    run = client.get_run(version.run_id)
    return {"version": str(version.version), "run_id": version.run_id,
            "registered_at": pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC"),
            "metrics": dict(run.data.metrics)}


# ------------------------------------------------------------------ charts
# Every mark gets a `description` (its aria-label in Vega's SVG) that states its values at full
# precision: axis labels are rounded, screen readers and the browser test read the marks.

LABEL_LIMIT = 260  # px; Vega's default truncates reason codes and legend entries


def bar_chart(rows: pd.DataFrame, title: str, category: str, value_title: str, value_format: str = ",.0f",
              axis_format: str | None = None, share: bool = False, category_field: str = "dimension",
              value_field: str = "value", sort: str = "-x") -> alt.Chart:
    """Horizontal bars, one per category, largest first unless `sort` says otherwise. Formats are
    d3 format strings; a share (precision, recall, coverage) gets the whole 0-1 axis."""
    counts = value_format == ",.0f"
    return alt.Chart(rows, title=title).mark_bar().transform_calculate(
        label=f"datum['{category_field}'] + ': ' + format(datum['{value_field}'], '{value_format}')",
    ).encode(
        y=alt.Y(f"{category_field}:N", title=category, sort=sort, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        x=alt.X(f"{value_field}:Q", title=value_title,
                scale=alt.Scale(domain=[0, 1]) if share else alt.Undefined,
                axis=alt.Axis(format=axis_format or value_format, tickMinStep=1 if counts else alt.Undefined,
                              tickCount=5 if share else alt.Undefined)),
        description=alt.Description("label:N"),
        tooltip=[alt.Tooltip(f"{category_field}:N", title=category),
                 alt.Tooltip(f"{value_field}:Q", title=value_title, format=value_format)],
    )


def history_chart(rows: pd.DataFrame, title: str, value_title: str, value_format: str,
                  axis_format: str | None = None) -> alt.Chart:
    """One line per series across builds (rows: run_started_at, series, value)."""
    return alt.Chart(rows, title=title).mark_line(point=True).transform_calculate(
        label=f"datum.series + ', ' + timeFormat(datum.run_started_at, '%Y-%m-%d %H:%M') + ': ' "
              f"+ format(datum.value, '{value_format}')",
    ).encode(
        x=alt.X("run_started_at:T", title="build started", axis=alt.Axis(format="%b %d %H:%M", labelAngle=0)),
        y=alt.Y("value:Q", title=value_title, axis=alt.Axis(format=axis_format or value_format, tickCount=5)),
        color=alt.Color("series:N", title=None, legend=alt.Legend(labelLimit=LABEL_LIMIT)),
        description=alt.Description("label:N"),
        tooltip=[alt.Tooltip("run_started_at:T", title="build started", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("series:N"), alt.Tooltip("value:Q", title=value_title, format=value_format)],
    )


def grouped_bar_chart(rows: pd.DataFrame, title: str, category: str, value_title: str, value_format: str = ",.0f",
                      axis_format: str | None = None, share: bool = False, series_order: list[str] | None = None,
                      stacked: bool = False) -> alt.Chart:
    """Horizontal bars per category (rows: dimension, series, value), one bar per series side by
    side, or stacked into one bar per category."""
    counts = value_format == ",.0f"
    return alt.Chart(rows, title=title).mark_bar().transform_calculate(
        label=f"datum.series + ', ' + datum.dimension + ': ' + format(datum.value, '{value_format}')",
    ).encode(
        y=alt.Y("dimension:N", title=category, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        yOffset=alt.Undefined if stacked else alt.YOffset("series:N", sort=series_order),
        x=alt.X("value:Q", title=value_title, stack="zero" if stacked else None,
                scale=alt.Scale(domain=[0, 1]) if share else alt.Undefined,
                axis=alt.Axis(format=axis_format or value_format, tickMinStep=1 if counts else alt.Undefined,
                              tickCount=5 if share else alt.Undefined)),
        color=alt.Color("series:N", title=None, sort=series_order, legend=alt.Legend(labelLimit=LABEL_LIMIT)),
        description=alt.Description("label:N"),
        tooltip=[alt.Tooltip("dimension:N", title=category), alt.Tooltip("series:N"),
                 alt.Tooltip("value:Q", title=value_title, format=value_format)],
    )


def curation_chart(funnel: pd.DataFrame) -> alt.Chart:
    # symlog: raw spellings run to thousands while curated vocabularies have tens, and 0 stays drawable;
    # its default ticks are sparse, so give it a 1-3-10 ladder up to the largest value.
    ladder = [0] + [m * 10 ** e for e in range(7) for m in (1, 3)]
    ticks = [v for v in ladder if v <= max(1, funnel["values"].max())]
    return alt.Chart(funnel, title="Vocabulary size per curation step").mark_line(point=True).transform_calculate(
        label="datum.attribute_type + ', ' + datum.step + ': ' + format(datum.values, ',')",
    ).encode(
        x=alt.X("step:O", title=None, sort=list(CURATION_STEPS.values()),
                axis=alt.Axis(labelAngle=0, labelLimit=LABEL_LIMIT)),
        y=alt.Y("values:Q", title="distinct values", scale=alt.Scale(type="symlog"), axis=alt.Axis(values=ticks)),
        color=alt.Color("attribute_type:N", title="attribute type"),
        description=alt.Description("label:N"),
        tooltip=["attribute_type:N", "step:O", alt.Tooltip("values:Q", format=",.0f")],
    )


def recall_chart(recall: pd.DataFrame) -> alt.Chart:
    order = [label for label, _ in RECALL_SERIES]
    return alt.Chart(recall, title="Champion Recall@K (test split)").mark_bar().transform_calculate(
        label="datum.series + ', ' + datum.at_k + ': ' + format(datum.recall, '.3f')",
    ).encode(
        x=alt.X("at_k:N", title=None, sort=alt.EncodingSortField("k"), axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("series:N", sort=order),
        y=alt.Y("recall:Q", title="recall", axis=alt.Axis(format=".1f"), scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("series:N", title=None, sort=order, legend=alt.Legend(labelLimit=LABEL_LIMIT)),
        description=alt.Description("label:N"),
        tooltip=["series:N", "at_k:N", alt.Tooltip("recall:Q", format=".3f")],
    )


# ------------------------------------------------------------------ page
# render() loads the marts and calls one function per section; each section gets the Streamlit
# module and a Page with the shared loaders.

class Page:
    """What every section needs: Streamlit, the mart loader and the chart-or-note helper."""

    def __init__(self, st, mart, chart_or_note):
        self.st, self.mart, self.chart_or_note = st, mart, chart_or_note


def section_headline(page: Page, metrics: pd.DataFrame) -> None:
    st = page.st
    st.caption(f"Build computed at {pd.Timestamp(metrics['computed_at'].max()):%Y-%m-%d %H:%M:%S} UTC "
               f"· warehouse `{mart_location('collection_metrics')}`")
    published = metric_value(metrics, "collections", "published")
    coverage = metric_value(metrics, "product_coverage")
    precision = metric_value(metrics, "precision_at_10", "pipeline")
    unseen = metric_value(metrics, "precision_at_10", "pipeline_unseen")
    bm25 = metric_value(metrics, "precision_at_10", "bm25_baseline")
    vs_facets = metric_value(metrics, "coverage_vs_facet_baseline", FACET_PAGES)
    row = st.columns(5)
    row[0].metric("Published collections", "—" if published is None else f"{published:,.0f}")
    row[1].metric("Product coverage", "—" if coverage is None else f"{coverage:.1%}",
                  help="Share of products in at least one published collection.")
    row[2].metric("Precision@10 (pipeline)", "—" if precision is None else f"{precision:.3f}",
                  delta=None if precision is None or bm25 is None else f"{precision - bm25:+.3f} vs BM25",
                  help="Collection feeds' top 10 checked against the merchant's own attributes.")
    row[3].metric("Precision@10 (unseen products)", "—" if unseen is None else f"{unseen:.3f}",
                  delta=None if unseen is None or precision is None else f"{unseen - precision:+.3f} vs all",
                  help="The same check on each feed's first 10 products from the dual encoder's test split: "
                       "products it never trained on (most feed products were training labels).")
    row[4].metric("Coverage vs facet baseline", "—" if vs_facets is None else f"{vs_facets:.2f}×",
                  help="Published collections per collection the merchant's facets alone would give.")


def section_collections(page: Page, metrics: pd.DataFrame) -> None:
    st, chart_or_note = page.st, page.chart_or_note
    st.header("Collections")
    left, right = st.columns(2)
    with left:
        rows = metric_rows(metrics, "collections")
        chart_or_note(rows, bar_chart(rows, "Collections by status", "status", "collections"), "collections")
    with right:
        rows = metric_rows(metrics, "held_back")
        chart_or_note(rows, bar_chart(rows, "Held-back collections by reason", "reason", "collections"),
                      "held_back")
    left, right = st.columns(2)
    with left:
        rows = metric_rows(metrics, "collections_by_attribute_type")
        chart_or_note(rows, bar_chart(rows, "Collections by attribute type", "attribute type", "collections"),
                      "collections_by_attribute_type")
    with right:
        rows = metric_rows(metrics, "collections_by_size")
        # bucket names start with their rank ("1: <50"), so sorting by name orders them by size
        chart_or_note(rows, bar_chart(rows, "Published collections by size", "products", "collections",
                                      sort="ascending"), "collections_by_size")
    size = st.columns(4)
    for column, (label, metric, fmt) in zip(size, [
            ("Median collection size", "collection_size_p50", "{:,.0f}"),
            ("Mean collection size", "collection_size_mean", "{:,.1f}"),
            ("Mean feed score", "mean_feed_score", "{:.3f}"),
            ("Partial matches in feeds", "feed_partial_share", "{:.1%}")]):
        value = metric_value(metrics, metric)
        column.metric(label, "—" if value is None else fmt.format(value))
    st.caption("Size = products carrying all of a published collection's attributes; feed score = mean "
               "attribute match score of its feed; partial matches carry all attributes but one.")


def section_precision(page: Page, metrics: pd.DataFrame) -> None:
    st, chart_or_note = page.st, page.chart_or_note
    st.header("Precision and coverage")
    left, right = st.columns(2)
    with left:
        rows = precision_rows(metrics)
        chart_or_note(rows, bar_chart(rows, "Precision@10: pipeline vs BM25 baseline", "retrieval",
                                      "precision@10", ".3f", ".1f", share=True, sort="ascending"),
                      "precision_at_10")
    with right:
        rows = metric_rows(metrics, "product_coverage_by_attribute_type")
        chart_or_note(rows, bar_chart(rows, "Product coverage by attribute type", "attribute type",
                                      "share of products", ".1%", ".0%", share=True),
                      "product_coverage_by_attribute_type")
    series = [label for label, _ in PRECISION_BREAKDOWNS["arity"]]
    left, right = st.columns(2)
    with left:
        rows = precision_breakdown(metrics, "arity")
        chart_or_note(rows, grouped_bar_chart(rows, "Precision@10 by number of attributes", "collection",
                                              "precision@10", ".3f", ".1f", share=True, series_order=series),
                      "precision_at_10_by_arity")
    with right:
        rows = precision_breakdown(metrics, "anchor_type")
        chart_or_note(rows, grouped_bar_chart(rows, "Precision@10 by anchor type", "anchor type",
                                              "precision@10", ".3f", ".1f", share=True, series_order=series),
                      "precision_at_10_by_anchor_type")
    judged = metric_value(metrics, "precision_at_10_collections", "pipeline_unseen")
    total = metric_value(metrics, "precision_at_10_collections", "pipeline")
    if judged is not None and total is not None:
        st.caption(f"Unseen = each feed's first 10 products from the dual encoder's test split (never trained on); "
                   f"{judged:,.0f} of {total:,.0f} published collections have any.")
    published = metric_value(metrics, "collections", "published")
    facet_pages = metric_value(metrics, "facet_baseline_collections", FACET_PAGES)
    coarser = metric_value(metrics, "facet_baseline_collections", COARSER_FACET_PAGES)
    rows = pd.DataFrame([{"dimension": "pipeline (published)", "value": published},
                         {"dimension": "merchant facets (gender x type x colour)", "value": facet_pages},
                         {"dimension": "every facet subset",
                          "value": None if facet_pages is None else facet_pages + (coarser or 0)}]).dropna()
    chart_or_note(rows, bar_chart(rows, "Published collections vs facet baseline", "collections from",
                                  "collections"), "facet_baseline_collections")


def section_feeds(page: Page, metrics: pd.DataFrame) -> None:
    st, chart_or_note = page.st, page.chart_or_note
    st.header("Feeds")
    left, right = st.columns(2)
    with left:
        rows = first_page_rows(metrics)
        chart_or_note(rows, grouped_bar_chart(rows, "First page: before vs after variants and brand diversity",
                                              None, "mean per published collection", ",.1f", ",.0f",
                                              series_order=["before", "after"]),
                      "feed_first_page_distinct_products")
    with right:
        folded = metric_value(metrics, "feed_variants_collapsed")
        st.metric("Products folded into variants", "—" if folded is None else f"{folded:,.0f}",
                  help="Near-identical products (same photo, or same brand and title) shown on another "
                       "product's card instead of a card of their own.")
        st.caption("Before: the feed as ranked by match score alone. After: one card per group of "
                   "near-identical products, and the best two pages reordered so one brand does not fill "
                   "the first page (a card loses a little score per better card of its brand above it).")


def section_outcomes(page: Page) -> None:
    st, chart_or_note = page.st, page.chart_or_note
    st.header("Candidates: published or held back, and why")
    outcomes = page.mart("collection_outcomes")
    if outcomes is None:
        return
    columns = st.columns(len(OUTCOME_BREAKDOWNS))
    for column, (breakdown, category) in zip(columns, OUTCOME_BREAKDOWNS.items()):
        with column:
            rows = outcome_rows(outcomes, breakdown)
            reasons = sorted(set(rows["series"]), key=lambda r: (OUTCOME_ORDER.get(r, len(OUTCOME_ORDER)), r))
            chart_or_note(rows, grouped_bar_chart(rows, f"Candidates by {category} and outcome", category,
                                                  "collections", stacked=True, series_order=reasons),
                          breakdown, "collection_outcomes")
    with st.expander("Candidates per attribute type, arity and anchor type"):
        for breakdown in ("attribute_type", *OUTCOME_BREAKDOWNS):
            st.dataframe(outcome_table(outcomes, breakdown), width="stretch")


def section_history(page: Page) -> None:
    st, chart_or_note = page.st, page.chart_or_note
    st.header("Run history")
    history = page.mart("collection_metrics_history")
    if history is None:
        return
    history = history.assign(run_started_at=pd.to_datetime(history["run_started_at"]))
    st.caption(f"{history['run_started_at'].nunique()} builds recorded.")
    left, right = st.columns(2)
    with left:
        rows = history[history["metric"] == "collections"].rename(columns={"dimension": "series"})
        chart_or_note(rows, history_chart(rows, "Collections per build", "collections", ",.0f"), "collections")
    with right:
        keys = list(zip(history["metric"], history["dimension"]))
        rows = history.assign(series=[RATE_HISTORY.get(key) for key in keys]).dropna(subset=["series"])
        chart_or_note(rows, history_chart(rows, "Precision@10 and coverage per build", "value", ".3f", ".1f"),
                      "precision_at_10 / product_coverage")


def section_curation(page: Page) -> None:
    st = page.st
    st.header("Vocabulary curation")
    steps = page.mart("attribute_curation_steps")
    if steps is None:
        return
    st.altair_chart(curation_chart(curation_funnel(steps)), width="stretch")
    with st.expander("Values per step and type"):
        st.dataframe(steps.set_index("attribute_type"), width="stretch")


def section_model(page: Page, champion: dict | str) -> None:
    st, chart_or_note = page.st, page.chart_or_note
    st.header("Matching model")
    if isinstance(champion, str):
        st.info(f"No champion model to show ({champion}). `make run` trains and registers one.")
        return
    metrics_logged = champion["metrics"]
    best = metrics_logged.get("test.image_text.recall_at_10")
    row = st.columns(3)
    row[0].metric("Champion", f"v{champion['version']}",
                  help=f"{REGISTERED_MODEL}@{CHAMPION_ALIAS}, run {champion['run_id']}")
    row[1].metric("Test Recall@10 (image+text)", "—" if best is None else f"{best:.3f}")
    bm25_recall = metrics_logged.get("baseline.bm25.recall_at_10")
    row[2].metric("Test Recall@10 (BM25 baseline)", "—" if bm25_recall is None else f"{bm25_recall:.3f}")
    st.caption(f"Registered {champion['registered_at']:%Y-%m-%d %H:%M} UTC; metrics of the training run "
               f"that produced the version (test split, frequency-reweighted unless noted).")
    left, right = st.columns(2)
    with left:
        recall = recall_at_k(metrics_logged)
        chart_or_note(recall, recall_chart(recall), "<split>.<mode>.recall_at_<k>", "the champion's run")
    with right:
        rows = recall_by_type(metrics_logged)
        chart_or_note(rows, bar_chart(rows, "Champion Recall@10 by attribute type", "attribute type", "recall@10",
                                      ".3f", ".1f", share=True, category_field="attribute_type",
                                      value_field="recall"),
                      "test.image_text.recall_at_10.<type>", "the champion's run")


def render() -> None:
    import streamlit as st
    from pyspark.errors import PySparkException

    st.set_page_config(page_title="PinLanding collections", layout="wide")

    @st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
    def load(name: str, location: str) -> pd.DataFrame | str:
        """The mart, or why it cannot be shown; `location` keys the cache by data directory."""
        try:
            return read_mart(name)
        except MartNotFoundError:
            return f"`{name}` has not been built yet (looked in `{location}`): run `make run`."
        except (OSError, pa.ArrowException, PySparkException) as exc:  # a build may be rewriting it now
            return f"`{name}` could not be read ({exc}); if `make run` is rebuilding it, reload in a minute."

    @st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
    def load_champion(uri: str) -> dict | str:
        return champion_run(uri)

    def mart(name: str) -> pd.DataFrame | None:
        frame = load(name, mart_location(name))
        if isinstance(frame, str):
            st.info(frame)
            return None
        if frame.empty:
            st.info(f"`{name}` is empty: run `make run`.")
            return None
        return frame

    def chart_or_note(rows: pd.DataFrame, chart, what: str, where: str = "this build's metrics") -> None:
        if rows.empty:
            st.info(f"No `{what}` rows in {where}.")
        else:
            st.altair_chart(chart, width="stretch")

    page = Page(st, mart, chart_or_note)
    st.title("PinLanding collections")
    metrics = mart("collection_metrics")
    if metrics is not None:
        section_headline(page, metrics)
        section_collections(page, metrics)
        section_precision(page, metrics)
        section_feeds(page, metrics)
    section_outcomes(page)
    section_history(page)
    section_curation(page)
    section_model(page, load_champion(tracking_uri()))


def main() -> None:
    """`python -m pinlanding.dashboard [streamlit flags]`: serve this file on loopback."""
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(Path(__file__).resolve()), *SERVER_FLAGS, *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    # Streamlit (`streamlit run`, its AppTest) executes this file as __main__ inside a script run.
    if get_script_run_ctx(suppress_warning=True) is not None:
        render()
    else:
        main()
