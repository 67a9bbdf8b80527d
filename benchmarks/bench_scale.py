"""The whole pipeline at growing catalog sizes: per-stage and per-dbt-model seconds, rows/s, peak
RSS, growth ratio per stage between sizes, and an "incremental day" (1% changed) rerun.

    make bench-scale                  # N=43441,250000,1000000
    make bench-scale N=250000
    .venv/bin/python benchmarks/bench_scale.py --sizes 43441,250000 [--scratch /tmp/pinlanding-bench-scale]

For each size N (smallest first):

1. generate a synthetic catalog of N products from the real one (`synthetic_catalog.py`; not timed,
   reused when the scratch dir already holds it for the same N and seed);
2. run `pinlanding run` on it in a fresh data dir under the scratch dir, as one child process whose
   whole process tree (Python driver, Spark JVM, Python workers, llama.cpp server) is sampled for
   RSS with psutil every 200 ms (split by kind of process at the peak; a Spark Connect or cluster
   JVM started outside the run is not in its tree, so the figures are for the embedded target). Stage times come from the pipeline's banners (`== ingest`,
   `== dbt build ...`, ...), per-model times from dbt's `run_results.json` of each dbt build
   (DBT_TARGET_PATH in the scratch dir, copied when the next banner appears);
3. the "incremental day": the same catalog with `--changed-share` of products changed or new,
   `pinlanding run` again in the same data dir (warm caches, incremental models), as a share of the
   full run.

The model: the first size's run trains one (`--train-config`, default ml/configs/tiny.yaml: the
point is the data path, not training) and later sizes point MLFLOW_TRACKING_URI at that run's
store, so every size scores with the same champion; the training stage is reported and left out
of the pipeline total. `--mlflow-uri` reuses an existing store instead (no training at all).
dbt vars default to `{llm_sample_size: 20}` so the LLM labels a fixed, small sample; collection
titles are still written by the local LLM (one per new candidate collection: a cost that grows
with collections, not products, reported per model).

Results: printed, and written as JSON to SCRATCH/bench_scale_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import synthetic_catalog as synth  # noqa: E402
from procstats import tree_rss  # noqa: E402

TRAINING_STAGE = "dual encoder"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# dbt's per-node result line, e.g. "40 of 122 OK created sql table model pinlanding.stg_products .... [OK in 5.17s]"
DBT_NODE_LINE = re.compile(r"\d+ of \d+ (?:OK \w+ .*?(model|seed file) (?:[\w-]+\.)?([\w-]+)|(?:PASS|FAIL|WARN|ERROR) ()(\S+))"
                           r".*\[.* in ([\d.]+)s\]")
DEFAULT_VARS = "{llm_sample_size: 20}"


def run_pipeline(argv: list[str], env: dict, target_dir: Path, log_path: Path, time_limit: float | None = None) -> dict:
    """Run `pinlanding run`, timing each banner-delimited stage and its peak tree RSS. Past
    `time_limit` seconds the process tree is stopped and what finished so far is returned
    (stages and dbt nodes completed; the interrupted stage is marked)."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    child = subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, bufsize=1)
    state = {"stage": "(startup)", "peak": 0, "stage_peak": {"(startup)": 0}, "peak_parts": {}}
    kinds = {}
    stop = threading.Event()

    cpu_by_pid = {}  # CPU seconds of every process of the tree seen so far (ended ones keep their last value)

    def sample():
        proc = psutil.Process(child.pid)
        while not stop.is_set():
            try:
                for p in [proc, *proc.children(recursive=True)]:
                    try:
                        t = p.cpu_times()
                        cpu_by_pid[(p.pid, p.create_time())] = t.user + t.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            rss, parts = tree_rss(proc, kinds)
            if rss > state["peak"]:
                state["peak"], state["peak_parts"] = rss, parts
            stage = state["stage"]
            state["stage_peak"][stage] = max(state["stage_peak"].get(stage, 0), rss)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timed_out = threading.Event()

    def stop_at_limit():
        if not stop.wait(time_limit):
            timed_out.set()
            procs = psutil.Process(child.pid)
            procs = [procs, *procs.children(recursive=True)]
            for p in procs:  # this run's own process tree only
                try:
                    p.terminate()
                except psutil.Error:
                    pass
            psutil.wait_procs(procs, timeout=20)
            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass

    if time_limit:
        threading.Thread(target=stop_at_limit, daemon=True).start()
    stages, order, dbt_results, node_lines = {}, [], {}, {}
    stage_started, stage = started, "(startup)"
    summary_lines, in_summary = [], False

    stage_cpu_started = [0.0]
    stage_wall_started = [time.time()]
    stages_cpu = {}

    def close_stage(now):
        stages[stage] = stages.get(stage, 0.0) + (now - stage_started)
        cpu_now = sum(cpu_by_pid.values())
        stages_cpu[stage] = stages_cpu.get(stage, 0.0) + (cpu_now - stage_cpu_started[0])
        stage_cpu_started[0] = cpu_now
        if stage.startswith("dbt build"):
            results = target_dir / "run_results.json"
            # only a file this build wrote (a build stopped early leaves the previous build's file)
            if results.exists() and results.stat().st_mtime >= stage_wall_started[0]:
                dbt_results[stage] = json.loads(results.read_text())
                shutil.copyfile(results, log_path.with_name(f"{log_path.stem}_run_results_{len(dbt_results)}.json"))

    with open(log_path, "w", encoding="utf-8") as log:
        for line in child.stdout:
            now = time.perf_counter()
            log.write(f"[{now - started:8.1f}] {line}")
            log.flush()
            match = DBT_NODE_LINE.search(ANSI.sub("", line))
            if match:
                kind, name, test_kind, test_name, seconds = match.groups()
                key = name if kind else f"(tests: {stage})"
                node_lines[key] = node_lines.get(key, 0.0) + float(seconds)
            if line.startswith("== "):
                close_stage(now)
                stage, stage_started = line[3:].strip(), now
                stage_wall_started[0] = time.time()
                state["stage"] = stage
                order.append(stage)
                in_summary = stage == "summary"
                continue
            if in_summary:
                if line.startswith("MLflow run"):
                    in_summary = False
                else:
                    summary_lines.append(line)
        code = child.wait()
        now = time.perf_counter()
        close_stage(now)
    stop.set()
    sampler.join()
    summary = {}
    try:
        summary = json.loads("".join(summary_lines)) if summary_lines else {}
    except json.JSONDecodeError:
        pass
    models = dbt_model_times(dbt_results)
    for name, seconds in node_lines.items():  # nodes of a build that did not finish (time limit)
        models.setdefault(name, seconds)
    if timed_out.is_set():
        stages[f"{stage} (stopped at the time limit)"] = stages.pop(stage)
        stages_cpu[f"{stage} (stopped at the time limit)"] = stages_cpu.pop(stage)
    return {"returncode": code, "wall_s": now - started, "timed_out": timed_out.is_set(), "stages_s": dict(stages), "stages_cpu_s": dict(stages_cpu),
            "cpu_s": sum(cpu_by_pid.values()),
            "stage_peak_rss_mib": {k: v / 2**20 for k, v in state["stage_peak"].items()},
            "peak_rss_mib": state["peak"] / 2**20, "dbt_models": models,
            "peak_rss_parts_mib": {k: v / 2**20 for k, v in state["peak_parts"].items()},
            "summary": summary, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "log": str(log_path)}


def dbt_model_times(results_by_stage: dict) -> dict:
    """Seconds per dbt node (models and seeds by name; tests summed per build)."""
    out = {}
    for stage, results in results_by_stage.items():
        tests = 0.0
        for node in results.get("results", []):
            uid, seconds = node["unique_id"], float(node.get("execution_time") or 0.0)
            kind, name = uid.split(".")[0], uid.split(".")[-1]
            if kind in ("test", "unit_test"):
                tests += seconds
            else:
                out[name] = out.get(name, 0.0) + seconds
        out[f"(tests: {stage})"] = tests
    return out


def pipeline_env(scratch_run: Path, catalog: Path, mlflow_uri: str | None) -> dict:
    env = dict(os.environ,
               PINLANDING_DATA_DIR=str(scratch_run / "data"), PINLANDING_CATALOG_DIR=str(catalog),
               DBT_TARGET_PATH=str(scratch_run / "target"), DBT_LOG_PATH=str(scratch_run / "logs"),
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, PYTHONUNBUFFERED="1")
    env.pop("PINLANDING_SITE_DIR", None)
    if mlflow_uri:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri
    else:
        env.pop("MLFLOW_TRACKING_URI", None)
    return env


def ensure_catalog(real, out: Path, products: int, seed: int, photo_share: float) -> dict:
    manifest = out / synth.MANIFEST
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("kind") == "generated" and m.get("products") == products and m.get("seed") == seed \
                and m.get("photo_share") == photo_share:
            return m
    shutil.rmtree(out, ignore_errors=True)
    return synth.generate(real, out, products, seed, photo_share)


def ensure_incremental(real, old: Path, out: Path, share: float) -> dict:
    manifest = out / synth.MANIFEST
    if manifest.exists():
        m = json.loads(manifest.read_text())
        if m.get("kind") == "incremental" and m.get("changed_share") == share and m.get("from") == str(old.resolve()):
            return m
    shutil.rmtree(out, ignore_errors=True)
    return synth.incremental(real, old, out, share)


def pipeline_seconds(run: dict) -> float:
    """Wall time without the training stage (training is not what this benchmark measures)."""
    return run["wall_s"] - run["stages_s"].get(TRAINING_STAGE, 0.0)


def fmt_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{c:,.1f}" if isinstance(c, float) else f"{c:,}" if isinstance(c, int) else str(c)
                         for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: dict, top_models: int) -> str:
    sizes = [r for r in results["sizes"] if r.get("full")]
    if not sizes:
        return "no completed runs"
    out = []
    stages = []
    for r in sizes:
        for s in r["full"]["stages_s"]:
            if s not in stages:
                stages.append(s)
    header = ["stage"] + [f"N={r['products']:,} s" for r in sizes] + [f"N={r['products']:,} rows/s" for r in sizes]
    header += [f"growth {a['products'] // 1000}k->{b['products'] // 1000}k" for a, b in zip(sizes, sizes[1:])]
    rows = []
    for s in stages:
        secs = [r["full"]["stages_s"].get(s) for r in sizes]
        row = [s] + [float(x) if x is not None else "-" for x in secs]
        row += [round(r["products"] / x) if x and s != TRAINING_STAGE else "-" for r, x in zip(sizes, secs)]
        for (a, xa), (b, xb) in zip(zip(sizes, secs), zip(sizes[1:], secs[1:])):
            row.append(f"{(xb / xa) / (b['products'] / a['products']):.2f}" if xa and xb and s != TRAINING_STAGE else "-")
        rows.append(row)
    totals = [pipeline_seconds(r["full"]) for r in sizes]
    done = [not r["full"].get("timed_out") for r in sizes]
    row = ["pipeline (excl. training)"] + [t if ok else f"> {t:,.0f} (stopped)" for t, ok in zip(totals, done)]
    row += [round(r["products"] / t) if ok else "-" for r, t, ok in zip(sizes, totals, done)]
    row += [f"{(tb / ta) / (b['products'] / a['products']):.2f}" if oka and okb else "-"
            for (a, ta, oka), (b, tb, okb) in zip(zip(sizes, totals, done), zip(sizes[1:], totals[1:], done[1:]))]
    rows.append(row)
    out.append("Per stage (growth = time ratio / data ratio; target <= 1.1):")
    out.append(fmt_table(header, rows))
    with_cpu = [r for r in sizes if r["full"].get("stages_cpu_s")]
    if with_cpu:
        rows = []
        for s in stages:
            secs = [r["full"]["stages_cpu_s"].get(s) for r in with_cpu]
            row = [s] + [float(x) if x is not None else "-" for x in secs]
            for (a, xa), (b, xb) in zip(zip(with_cpu, secs), zip(with_cpu[1:], secs[1:])):
                row.append(f"{(xb / xa) / (b['products'] / a['products']):.2f}" if xa and xb and s != TRAINING_STAGE else "-")
            rows.append(row)
        out.append("\nCPU seconds of the process tree per stage (less sensitive to other load on the machine):")
        out.append(fmt_table(["stage"] + [f"N={r['products']:,} CPU s" for r in with_cpu]
                             + [f"growth {a['products'] // 1000}k->{b['products'] // 1000}k" for a, b in zip(with_cpu, with_cpu[1:])],
                             rows))

    complete = [r for r in sizes if not r["full"].get("timed_out")]
    if len(complete) >= 2:
        out.append("\nFixed + per-product cost per stage (least squares over the completed sizes) and a projection:")
        rows = []
        for s in [*stages, "pipeline (excl. training)"]:
            pts = [(r["products"], pipeline_seconds(r["full"]) if s == "pipeline (excl. training)" else r["full"]["stages_s"].get(s))
                   for r in complete]
            pts = [(n, t) for n, t in pts if t is not None]
            if len(pts) < 2 or s == TRAINING_STAGE:
                continue
            slope, fixed = np.polyfit([n for n, _ in pts], [t for _, t in pts], 1)
            rows.append([s, float(fixed), float(slope * 1000), float(fixed + slope * 1_000_000)])
        out.append(fmt_table(["stage", "fixed s", "s per 1k products", "projected s at 1M"], rows))

    out.append("\nPeak RSS of the process tree (driver + JVM + Python workers + llama.cpp), MiB:")
    rows = [[f"N={r['products']:,}", r["full"]["peak_rss_mib"],
             max(r["full"]["stage_peak_rss_mib"].items(), key=lambda kv: kv[1])[0],
             r["incremental"]["peak_rss_mib"] if r.get("incremental") else "-"] for r in sizes]
    out.append(fmt_table(["size", "full run", "in stage", "incremental day"], rows))
    for r in sizes:
        parts = r["full"].get("peak_rss_parts_mib")
        if parts:
            out.append(f"  N={r['products']:,} at its peak: " + ", ".join(
                f"{kind} {mib:,.0f}" for kind, mib in sorted(parts.items(), key=lambda kv: -kv[1])))

    # dbt models: the slowest at the largest size, with their growth
    models = {}
    for r in sizes:
        for name, s in r["full"]["dbt_models"].items():
            models.setdefault(name, {})[r["products"]] = s
    largest = sizes[-1]["products"]
    ranked = sorted(models, key=lambda m: -(models[m].get(largest) or 0))[:top_models]
    header = ["dbt model"] + [f"N={r['products']:,} s" for r in sizes]
    header += [f"growth {a['products'] // 1000}k->{b['products'] // 1000}k" for a, b in zip(sizes, sizes[1:])]
    rows = []
    for m in ranked:
        secs = [models[m].get(r["products"]) for r in sizes]
        row = [m] + [float(x) if x is not None else "-" for x in secs]
        for (a, xa), (b, xb) in zip(zip(sizes, secs), zip(sizes[1:], secs[1:])):
            row.append(f"{(xb / xa) / (b['products'] / a['products']):.2f}" if xa and xb and xa > 0.05 else "-")
        rows.append(row)
    out.append(f"\nSlowest dbt nodes (execution_time from run_results.json; top {top_models} at N={largest:,}):")
    out.append(fmt_table(header, rows))

    rows = []
    for r in sizes:
        inc = r.get("incremental")
        if not inc:
            continue
        full = pipeline_seconds(r["full"])
        rows.append([f"N={r['products']:,}", full, inc["wall_s"], f"{inc['wall_s'] / full:.1%}",
                     f"{r['incremental_catalog']['changed_share_actual']:.2%}"])
    if rows:
        out.append("\nIncremental day (rerun on the changed catalog, same data dir; target <= 10% of the full run):")
        out.append(fmt_table(["size", "full run s", "incremental s", "share", "products changed/new"], rows))
        rows = []
        for r in sizes:
            inc = r.get("incremental")
            if inc:
                top = sorted(inc["dbt_models"].items(), key=lambda kv: -kv[1])[:5]
                rows.append([f"N={r['products']:,}", ", ".join(f"{k} {v:.0f}s" for k, v in top)])
        out.append(fmt_table(["size", "incremental day: slowest dbt nodes"], rows))
        rows = []
        for r in sizes:
            inc = r.get("incremental")
            if inc:
                rows.append([f"N={r['products']:,}"] + [f"{k} {v:.0f}s" for k, v in inc["stages_s"].items()])
        out.append("incremental day stages: " + "; ".join(" ".join(r) for r in rows))

    out.append("\nContext: " + "; ".join(
        f"N={r['products']:,}: load average {r['full']['loadavg_before'][0]:.1f} -> {r['full']['loadavg_after'][0]:.1f}"
        f" on {os.cpu_count()} cores, collections published {r['full']['summary'].get('collections_published', '?')}"
        for r in sizes))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("N") or "43441,250000,1000000",
                        help="comma-separated catalog sizes (default 43441,250000,1000000; env N)")
    parser.add_argument("--scratch", type=Path, default=Path(os.environ.get("PINLANDING_BENCH_SCRATCH",
                                                                           "/tmp/pinlanding-bench-scale")))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photo-share", type=float, default=0.2)
    parser.add_argument("--changed-share", type=float, default=0.01, help="incremental day; 0 skips it")
    parser.add_argument("--vars", default=DEFAULT_VARS, help="dbt vars for every run (YAML)")
    parser.add_argument("--train-config", default=str(PROJECT_DIR / "ml/configs/tiny.yaml"))
    parser.add_argument("--mlflow-uri", help="reuse this MLflow store's champion (no training)")
    parser.add_argument("--real", type=Path, default=synth.DEFAULT_REAL)
    parser.add_argument("--top-models", type=int, default=15)
    parser.add_argument("--time-limit", type=float, help="stop a run after this many seconds and report what finished")
    parser.add_argument("--fresh", action="store_true",
                        help="forget results of earlier invocations in the scratch dir (default: sizes not run now are kept)")
    parser.add_argument("--report-only", action="store_true", help="print the report of the scratch dir's results; run nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        saved = json.loads((args.scratch.resolve() / "bench_scale_results.json").read_text())
        print(report(saved, args.top_models))
        return 0
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    scratch = args.scratch.resolve()
    if scratch.is_relative_to(args.real.resolve()):
        parser.error("--scratch must not be inside the real catalog")
    scratch.mkdir(parents=True, exist_ok=True)
    results_path = scratch / "bench_scale_results.json"
    earlier = []
    if results_path.exists() and not args.fresh:
        earlier = [r for r in json.loads(results_path.read_text()).get("sizes", []) if r["products"] not in sizes]
    results = {"sizes": earlier, "vars": args.vars, "train_config": args.train_config, "seed": args.seed,
               "ingest_docstring": _ingest_doc(), "cores": os.cpu_count(),
               "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)}
    print(f"ingest under test: {results['ingest_docstring']}")
    real = synth.RealCatalog(args.real)
    mlflow_uri = args.mlflow_uri
    if mlflow_uri is None:  # an earlier invocation's trained model, if its store is still there
        for r in sorted(earlier, key=lambda r: r["products"]):
            store = Path(r.get("mlflow_store", ""))
            if r.get("full", {}).get("returncode") == 0 and store.is_file():
                mlflow_uri = f"sqlite:///{store}"
                print(f"reusing the champion model of the N={r['products']:,} run: {mlflow_uri}")
                break
    for n in sizes:
        entry = {"products": n}
        results["sizes"].append(entry)
        results["sizes"].sort(key=lambda r: r["products"])
        catalog = scratch / "catalogs" / str(n)
        print(f"\n##### N={n:,}: generating the catalog (not timed) -> {catalog}", flush=True)
        entry["catalog"] = ensure_catalog(real, catalog, n, args.seed, args.photo_share)
        print(f"  {entry['catalog']['products_with_photo']:,} products with a photo; generated in "
              f"{entry['catalog']['seconds']:.1f}s ({entry['catalog']['products_per_s']:,} products/s)")
        run_dir = scratch / "runs" / str(n)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        argv = [str(BIN / "pinlanding"), "run", "--catalog-dir", str(catalog), "--vars", args.vars,
                "--train-config", args.train_config]
        print(f"  full run: {' '.join(argv)}  (log: {run_dir / 'full.log'})", flush=True)
        full = run_pipeline(argv, pipeline_env(run_dir, catalog, mlflow_uri), run_dir / "target", run_dir / "full.log",
                            args.time_limit)
        entry["full"] = full
        entry["mlflow_store"] = mlflow_uri.removeprefix("sqlite:///") if mlflow_uri else str(run_dir / "data" / "mlflow.db")
        print(f"  full run: exit {full['returncode']} in {full['wall_s']:.0f}s, peak RSS {full['peak_rss_mib']:.0f} MiB; "
              + ", ".join(f"{k} {v:.0f}s" for k, v in full["stages_s"].items()), flush=True)
        results_path.write_text(json.dumps(results, indent=2, default=str))
        if full["timed_out"]:
            print(f"N={n:,}: stopped at the time limit ({args.time_limit:.0f}s); stages and dbt nodes that finished are reported")
            break
        if full["returncode"] != 0:
            print(Path(full["log"]).read_text()[-4000:])
            print(f"pipeline failed at N={n}; stopping")
            break
        if mlflow_uri is None:
            mlflow_uri = f"sqlite:///{run_dir / 'data' / 'mlflow.db'}"  # every later size: the same champion
        if args.changed_share > 0:
            day2 = scratch / "catalogs" / f"{n}-day2"
            entry["incremental_catalog"] = ensure_incremental(real, catalog, day2, args.changed_share)
            print(f"  incremental day: {entry['incremental_catalog']['modified']:,} changed + "
                  f"{entry['incremental_catalog']['new']:,} new products -> {day2}", flush=True)
            inc = run_pipeline([*argv[:3], str(day2), *argv[4:]], pipeline_env(run_dir, day2, mlflow_uri),
                               run_dir / "target", run_dir / "incremental.log", args.time_limit)
            entry["incremental"] = inc
            print(f"  incremental day: exit {inc['returncode']} in {inc['wall_s']:.0f}s "
                  f"({inc['wall_s'] / pipeline_seconds(full):.1%} of the full run)", flush=True)
            results_path.write_text(json.dumps(results, indent=2, default=str))
            if inc["returncode"] != 0:
                print(Path(inc["log"]).read_text()[-4000:])
    text = report(results, args.top_models)
    print("\n" + text)
    results["report"] = text
    results_path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {results_path}")
    return 0 if all(r.get("full", {}).get("returncode") == 0 for r in results["sizes"]) else 1


def _ingest_doc() -> str:
    import ast

    doc = ast.get_docstring(ast.parse((PROJECT_DIR / "pinlanding" / "ingest.py").read_text())) or ""
    spark = next((line for line in doc.splitlines() if "Spark parses" in line), None)
    return ("Spark-parsed feed (pinlanding/ingest.py: " + spark.strip() + ")") if spark else \
        "pinlanding/ingest.py: " + (doc.splitlines()[0] if doc else "no docstring")


if __name__ == "__main__":
    sys.exit(main())
