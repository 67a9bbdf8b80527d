"""dbt docs stay complete: checked statically from the project files (dbt itself needs Spark and
the metastore; the integration test runs the real `dbt docs generate`).

- every model (SQL under models/, Python under python_models/) is described in a YAML file;
- every mart (a model named without a stg_/int_ prefix; what pages and BI read) documents its
  columns; every documented column of any model, seed or source has a description;
- YAML entries name existing models, and exposures depend on existing models.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
MODEL_DIRS = [PROJECT_DIR / "models", PROJECT_DIR / "python_models"]
LAYER_PREFIXES = ("stg_", "int_")  # every other model is a mart some reader relies on


def is_mart(name: str) -> bool:
    return not name.startswith(LAYER_PREFIXES)


def model_files() -> dict[str, Path]:
    files = list((PROJECT_DIR / "models").rglob("*.sql")) + list((PROJECT_DIR / "python_models").rglob("*.py"))
    return {path.stem: path for path in files}


def yaml_files() -> list[Path]:
    return sorted(p for d in [*MODEL_DIRS, PROJECT_DIR / "seeds"] for p in d.rglob("*.yml"))


def load_all() -> dict[Path, dict]:
    return {path: yaml.safe_load(path.read_text()) or {} for path in yaml_files()}


def documented_models() -> dict[str, dict]:
    return {entry["name"]: entry for doc in load_all().values() for entry in doc.get("models") or []}


def blank(text) -> bool:
    return not isinstance(text, str) or not text.strip()


def test_every_yaml_file_parses():
    broken = []
    for path in yaml_files():
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            broken.append(f"{path.relative_to(PROJECT_DIR)}: {exc}")
    assert not broken, "\n".join(broken)


def test_every_model_has_a_description():
    docs = documented_models()
    missing = [f"{name} ({path.relative_to(PROJECT_DIR)})" for name, path in sorted(model_files().items())
               if name not in docs or blank(docs[name].get("description"))]
    assert not missing, f"models without a YAML description: {missing}"


def test_yaml_entries_name_existing_models():
    stale = sorted(set(documented_models()) - set(model_files()))
    assert not stale, f"documented models with no model file: {stale}"


def test_mart_models_document_every_column():
    docs = documented_models()
    undocumented = []
    for name, path in sorted(model_files().items()):
        if not is_mart(name):
            continue
        columns = docs.get(name, {}).get("columns") or []
        if not columns:
            undocumented.append(f"{name}: no columns documented")
        undocumented += [f"{name}.{c['name']}" for c in columns if blank(c.get("description"))]
    assert not undocumented, f"mart columns without a description: {undocumented}"


def test_every_documented_column_has_a_description():
    undocumented = []
    for path, doc in load_all().items():
        where = path.relative_to(PROJECT_DIR)
        for entry in (doc.get("models") or []) + (doc.get("seeds") or []):
            undocumented += [f"{where}: {entry['name']}.{c['name']}" for c in entry.get("columns") or []
                             if blank(c.get("description"))]
        for source in doc.get("sources") or []:
            for table in source.get("tables") or []:
                undocumented += [f"{where}: {source['name']}.{table['name']}.{c['name']}"
                                 for c in table.get("columns") or [] if blank(c.get("description"))]
    assert not undocumented, "columns without a description:\n" + "\n".join(undocumented)


def test_exposures_depend_on_existing_models():
    models = model_files()
    exposures = [e for doc in load_all().values() for e in doc.get("exposures") or []]
    assert exposures, "models/exposures.yml declares the dashboard"
    for exposure in exposures:
        assert not blank(exposure.get("description")) and exposure.get("owner"), exposure["name"]
        refs = [re.fullmatch(r"ref\(['\"](\w+)['\"]\)", dep) for dep in exposure["depends_on"]]
        assert all(refs), exposure["depends_on"]
        missing = [ref.group(1) for ref in refs if ref.group(1) not in models]
        assert not missing, f"exposure {exposure['name']} depends on models that do not exist: {missing}"
