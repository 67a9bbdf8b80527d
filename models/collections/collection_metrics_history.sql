-- collection_metrics of every build, for run-over-run charts. Appended once per build
-- (run_started_at); full_refresh is off so history survives rebuilds.

{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false) }}

select
    metric,
    dimension,
    value,
    computed_at as run_started_at
from {{ ref('collection_metrics') }}
{% if is_incremental() %}
where computed_at not in (select distinct run_started_at from {{ this }})
{% endif %}
