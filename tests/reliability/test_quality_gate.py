"""A batch that fails the Great Expectations checkpoint never reaches the site: `pinlanding run`
exits non-zero, says which expectation failed, and the last good site stays as it was."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import RUN_ARGS, run_env, run_ok, site_files, start

pytestmark = pytest.mark.integration


def test_a_failed_checkpoint_keeps_the_last_good_site(reference):
    root = reference["root"]
    site = root / "data" / "site"
    before = site_files(site)
    manifest_mtime = (site / "_publish_manifest.json").stat().st_mtime_ns
    # A new site URL makes the publisher rewrite every page: the site would change if it ran.
    env = dict(run_env(root), PINLANDING_SITE_BASE_URL="https://gate.example")
    # This feed's photos are 89% valid: the default threshold (99%) fails the checkpoint.
    strict = [("0.99" if a == "0.5" else a) for a in RUN_ARGS]

    run = start(root, ["run", *strict], env, "gate")
    code = run.wait()
    out = run.output
    assert code != 0, out[-4000:]
    assert "checkpoint staged_catalog: FAILED" in out
    assert "quality gate failed: Great Expectations checkpoint staged_catalog, 1 expectation(s) failed" in out
    assert "FAIL  expect_column_values_to_be_in_set" in out.split("quality gate failed:")[1] and "image_valid" in out
    assert "the site was NOT published" in out and "== publish (static site)" not in out
    assert site_files(site) == before
    assert (site / "_publish_manifest.json").stat().st_mtime_ns == manifest_mtime

    # The gate is what held it back: publishing these marts with that URL does change the site ...
    run_ok(root, ["publish"], env, "gate-publish")
    assert site_files(site) != before
    # ... and the default URL brings back the very same site (incremental publish, nothing lost).
    run_ok(root, ["publish"], run_env(root), "gate-restore")
    assert site_files(site) == before
