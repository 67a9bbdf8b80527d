{# spark_session inherits every macro from dbt-spark through adapter dispatch (spark__*). #}
