"""Great Expectations checkpoint over the staged catalog.

The validated batch is `int_products` (every staged product with its photo verdict) plus the load's
quarantine rate, so one checkpoint covers ids, facets, prices, photos and quarantine volume.
A failed expectation makes `pinlanding check` (and so `make run` and CI) exit non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pinlanding.settings import project_var

SUITE = "staged_catalog"
CHECKPOINT = "staged_catalog"

# The dbt vars the staging tests use: one definition, in dbt_project.yml.
ACCEPTED_GENDERS = list(project_var("accepted_genders"))
ACCEPTED_MASTER_CATEGORIES = list(project_var("accepted_master_categories"))


@dataclass(frozen=True)
class Thresholds:
    max_price: float = float(project_var("max_price"))
    min_image_valid_rate: float = 0.99
    max_quarantine_rate: float = 0.05


def staged_catalog_frame(spark, schema: str):
    """int_products with `image_valid` (null when no photo was sent) and the load's quarantine rate."""
    return spark.sql(f"""
        select p.product_id, p.gender, p.master_category, p.price,
               case p.image_status when 'valid' then true when 'rejected' then false end as image_valid,
               s.quarantine_rate
        from {schema}.int_products as p
        cross join (select max(quarantine_rate) as quarantine_rate from {schema}.catalog_load_summary) as s
    """)


def expectations(t: Thresholds) -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToNotBeNull(column="product_id"),
        gxe.ExpectColumnValuesToBeUnique(column="product_id"),
        gxe.ExpectColumnValuesToBeInSet(column="gender", value_set=ACCEPTED_GENDERS),
        gxe.ExpectColumnValuesToBeInSet(column="master_category", value_set=ACCEPTED_MASTER_CATEGORIES),
        gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=t.max_price),
        # Null (no photo sent) is ignored; of the photos sent, this share must be valid.
        gxe.ExpectColumnValuesToBeInSet(column="image_valid", value_set=[True], mostly=t.min_image_valid_rate),
        gxe.ExpectColumnMaxToBeBetween(column="quarantine_rate", min_value=0, max_value=t.max_quarantine_rate),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ]


def run_checkpoint(spark, schema: str, project_dir: Path, thresholds: Thresholds = Thresholds(),
                   build_docs: bool = True):
    """Run the checkpoint over the warehouse; returns the CheckpointResult."""
    import great_expectations as gx

    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # logs, not tqdm bars
    source = context.data_sources.add_or_update_spark(name="pinlanding_warehouse")
    asset = next((a for a in source.assets if a.name == "staged_catalog"), None) or \
        source.add_dataframe_asset(name="staged_catalog")
    batch = next((b for b in asset.batch_definitions if b.name == "whole"), None) or \
        asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=SUITE, expectations=expectations(thresholds)))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=SUITE, data=batch, suite=suite)
    )
    actions = [gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")] if build_docs else []
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(name=CHECKPOINT, validation_definitions=[validation], actions=actions,
                      result_format="SUMMARY")
    )
    return checkpoint.run(batch_parameters={"dataframe": staged_catalog_frame(spark, schema)})


def summarize(result) -> list[str]:
    """One line per expectation: PASS/FAIL, type, column, observed value."""
    lines = []
    for validation in result.run_results.values():
        for r in validation.results:
            cfg = r.expectation_config
            if "observed_value" in r.result:
                observed = f"observed {r.result['observed_value']}"
            else:
                observed = f"{r.result.get('unexpected_percent', 0.0):.2f}% unexpected"
            lines.append(f"{'PASS' if r.success else 'FAIL'}  {cfg.type:<40} {cfg.kwargs.get('column', ''):<16} {observed}")
    return lines
