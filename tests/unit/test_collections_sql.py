"""SQL of the collections layer that must agree with Python: the model_split macro
(macros/model_split.sql) is the warehouse's copy of ml/data.py `split_of`, which decides which
products the dual encoder never saw in training. collection_precision's "unseen" precision is only
honest while the two agree, so this pins the macro's SQL, run on a real local SparkSession, to
split_of for a few hundred product ids."""

from __future__ import annotations

from pathlib import Path

import jinja2

PROJECT_DIR = Path(__file__).resolve().parents[2]
MACRO = PROJECT_DIR / "macros" / "model_split.sql"

# catalog-like numeric ids, then ids that exercise the UTF-8 encoding and odd characters
IDS = ([str(i) for i in range(10000, 10400)]
       + ["sku-ä", "产品-42", "💡", "a b", "O'Brien", "x" * 64, "", "0", "-1", "ID_with_underscore"])


def render_model_split(column: str, **kwargs) -> str:
    """The macro as dbt renders it (it uses plain Jinja only)."""
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    template = jinja2.Environment().from_string(MACRO.read_text() + f"{{{{ model_split({column!r}{args}) }}}}")
    return template.render().strip()


def spark_splits(spark, sql_expression: str) -> dict[str, str]:
    frame = spark.createDataFrame([(i,) for i in IDS], "product_id string")
    return {r.product_id: r.split for r in frame.selectExpr("product_id", f"{sql_expression} as split").collect()}


def test_macro_matches_split_of_for_every_id(spark):
    from ml.data import split_of

    got = spark_splits(spark, render_model_split("product_id"))
    expected = {i: split_of(i) for i in IDS}
    assert got == expected
    # the sample reaches all three splits, so a macro that mislabels one of them fails here
    assert set(expected.values()) == {"train", "validation", "test"}
    assert sum(v == "test" for v in expected.values()) >= 20


def test_macro_follows_split_of_fractions(spark):
    from ml.data import split_of

    got = spark_splits(spark, render_model_split("product_id", validation=0.25, test=0.3))
    assert got == {i: split_of(i, validation=0.25, test=0.3) for i in IDS}


def test_an_off_by_one_digit_copy_would_be_caught(spark):
    """The comparison is sharp: hashing 11 hex digits instead of 12 moves some ids across a boundary."""
    from ml.data import split_of

    wrong = render_model_split("product_id").replace("1, 12), 16, 10", "1, 11), 16, 10")
    assert wrong != render_model_split("product_id")
    assert spark_splits(spark, wrong) != {i: split_of(i) for i in IDS}


def test_the_rule_has_one_sql_definition_and_the_feeds_use_it():
    """No model re-implements the split (its 16**12 denominator or its 12-digit prefix): they call
    the macro, and collection_feeds (what collection_precision's unseen numbers read) does."""
    copies = [p.relative_to(PROJECT_DIR) for d in ("models", "macros", "python_models")
              for p in (PROJECT_DIR / d).rglob("*") if p.suffix in {".sql", ".py"} and p != MACRO
              and ("281474976710656" in p.read_text() or "16**12" in p.read_text() or "1, 12), 16" in p.read_text())]
    assert copies == []
    assert "{{ model_split('f.product_id') }} as model_split" in (
        PROJECT_DIR / "models" / "collections" / "collection_feeds.sql").read_text()
