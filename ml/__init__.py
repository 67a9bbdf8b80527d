"""The ML library: dual encoder (model, loss, data, train, evaluate, pyfunc, registry), attribute
extraction (extractors, llm_client, llm_server) and collection titles (titles).

A library in open_clip's sense: it never imports the pipeline (`pinlanding/`); callers pass paths,
Spark sessions and the MLflow experiment in. The pipeline's CLI (`pinlanding train`) and dbt Python
models are its entry points.
"""
