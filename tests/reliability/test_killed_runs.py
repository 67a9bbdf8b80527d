"""kill -9 at any point of `pinlanding run` never needs a person: the next run completes, and its
marts and site are the uninterrupted run's.

One data directory goes through a run killed at each stage in turn (each kill lands early in its
stage, on a cold start: nothing trained, nothing titled, no site yet), then a run that completes;
it is compared with the reference run (conftest). A cheaper test kills the publisher alone at many
moments and checks the live site is always one complete publish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    PROJECT_DIR, RUN_ARGS, assert_same_as_reference, new_root, run_env, run_ok, site_files, start,
)

pytestmark = pytest.mark.integration


def llama_servers(data_dir: Path) -> list[int]:
    """Live llama.cpp server processes serving this data directory's model."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            args = entry.joinpath("cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"llama_cpp.server" in args and any(str(data_dir).encode() in a for a in args):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # a zombie has none
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = entry.joinpath("stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == pgid and alive(int(entry.name)):
            members.append(int(entry.name))
    return members


@pytest.mark.slow
def test_runs_killed_at_every_stage_recover_by_themselves(tmp_path_factory, real_catalog, reference):
    root = new_root(tmp_path_factory, "killed", real_catalog)
    data, env = root / "data", run_env(root)
    warehouse = data / "warehouse"

    # 1. ingest, while raw_products is being written
    run = start(root, ["run", *RUN_ARGS], env, "1-ingest")
    writing = warehouse / "pinlanding_raw.db/raw_products/_temporary"
    seen = []  # the write is short: when the poll misses it, the kill lands early in dbt build

    def ingest_writing_or_done() -> bool:
        seen.append(writing.exists())
        return seen[-1] or run.saw("== dbt build")

    run.wait_until(ingest_writing_or_done, 300)
    run.kill_group()
    in_ingest = seen[-1]

    # 2. a Python model (stg_product_images) half-written: the wedge that used to need a person
    run = start(root, ["run", *RUN_ARGS], env, "2-python-model")
    assert run.wait_until(lambda: (warehouse / "pinlanding.db/stg_product_images/_temporary").exists(), 900)
    run.kill_group()
    if in_ingest:  # this run found the half-written raw_products and cleared it
        assert "removed pinlanding_raw.db/raw_products" in run.output, run.output[-4000:]

    # 3. training the dual encoder (no champion yet), after its first epoch's checkpoint
    run = start(root, ["run", *RUN_ARGS], env, "3-train")
    assert run.wait_until(lambda: any((data / "training/checkpoints").glob("*/epoch_*.pt")), 1500)
    run.kill_group()
    assert "pinlanding.db/stg_product_images" in run.output and "recovered the warehouse" in run.output

    # 4. titling collections with the local LLM. Only the pipeline's own process is killed, as a
    # user's `kill -9 PID` would: its JVM exits with it, its llama.cpp server is orphaned.
    run = start(root, ["run", *RUN_ARGS], env, "4-titles")
    assert run.wait_until(lambda: run.saw("START python incremental model pinlanding.collection_title_attempts"), 1500)
    assert run.wait_until(lambda: bool(llama_servers(data)), 300)
    time.sleep(3)  # a few titles asked
    os.kill(run.pid, signal.SIGKILL)
    run.proc.wait()
    orphans = llama_servers(data)
    assert orphans, "the killed run's llama.cpp server should have outlived it"
    deadline = time.monotonic() + 60
    while set(group_members(run.pid)) - set(orphans) and time.monotonic() < deadline:
        time.sleep(0.5)  # the JVM exits on its own when its Python driver is gone
    assert not set(group_members(run.pid)) - set(orphans), "the killed run's JVM is still running"

    # 5. publishing the site, once the new site is being written
    run = start(root, ["run", *RUN_ARGS], env, "5-publish")
    assert run.wait_until(lambda: (data / ".site.staging").exists(), 1500)
    run.kill_group()
    assert f"stopped {len(orphans)} llama.cpp server(s) left by a killed run" in run.output, run.output[-4000:]
    assert not any(alive(pid) for pid in orphans)

    # 6. a plain run completes, with what an uninterrupted run built
    final = run_ok(root, ["run", *RUN_ARGS], env, "6-final")
    assert "checkpoint staged_catalog: PASSED" in final.output
    assert_same_as_reference(data, reference["snapshot"])
    assert not list(warehouse.rglob("_temporary")) and not list(data.glob(".site.*"))
    assert not llama_servers(data)


PUBLISH_SCRIPT = r"""
import sys
from pinlanding.marts import read_mart
from pinlanding.publish import COLLECTION_COLUMNS, FEED_COLUMNS, REDIRECT_COLUMNS, publish_site

version, out = sys.argv[1], sys.argv[2]
marts = {"collections": read_mart("collections", COLLECTION_COLUMNS),
         "collection_feeds": read_mart("collection_feeds", FEED_COLUMNS),
         "collection_redirects": read_mart("collection_redirects", REDIRECT_COLUMNS)}
if version == "B":  # a later build: every other collection gone, the rest retitled
    c = marts["collections"]
    keep = c.index % 2 == 0
    c.loc[~keep, "status"] = "held_back"
    c.loc[keep, "title"] = c.loc[keep, "title"] + " (new)"
    c.loc[keep, "content_hash"] = c.loc[keep, "content_hash"] + "-b"
publish_site(marts, out, "https://shop.example")
"""


def test_a_publish_killed_at_any_moment_leaves_the_last_complete_site(tmp_path, reference):
    """The live site is always one whole publish (the old or the new), whenever the publisher dies."""
    env = run_env(reference["root"])

    def publish(version: str, out: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", PUBLISH_SCRIPT, version, str(out)], cwd=PROJECT_DIR, env=env)

    def pages(out: Path) -> dict:  # the manifest is the publisher's own bookkeeping, not the site
        return {k: v for k, v in site_files(out).items() if k != "_publish_manifest.json"}

    expected = {}
    for version in ("A", "B"):
        assert publish(version, tmp_path / f"full-{version}").wait(timeout=300) == 0
        expected[version] = pages(tmp_path / f"full-{version}")
    assert expected["A"] != expected["B"]

    site = tmp_path / "site"
    staging = tmp_path / ".site.staging"
    assert publish("A", site).wait(timeout=300) == 0
    outcomes = []
    for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2, 2.0):
        proc = publish("B", site)
        deadline = time.monotonic() + 120
        while not staging.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = pages(site)
        assert not [p for p in site.rglob("*.tmp")], "a killed write's temp file is in the live site"
        assert state in (expected["A"], expected["B"]), f"killed {delay}s into publishing: a mixed site"
        outcomes.append("B" if state == expected["B"] else "A")
        if state == expected["B"]:  # start the next kill from the old site again
            assert publish("A", site).wait(timeout=300) == 0
    assert "A" in outcomes, outcomes  # at least one kill landed before the swap
    assert publish("B", site).wait(timeout=300) == 0  # and the next publish completes, incrementally
    assert pages(site) == expected["B"] and not staging.exists()
