{#- dlt creates a column only once a non-null value has been seen: `deleted_at`, `returned_at`,
    `failure_reason`, `line2` or an event property may be missing from a young raw table. Staging asks the
    warehouse which columns exist and reads a missing one as NULL, so a small load still builds (callers
    cast the result). At parse time, or when the relation does not exist yet, the column name is emitted. -#}
{% macro column_or_null(relation, column_name) -%}
    {#- a unit test's fixture stands in for the relation as a CTE: nothing to ask the warehouse (Spark would
        log a failed lookup for it) -#}
    {%- if execute and not relation.identifier.startswith('__dbt__cte__') -%}
        {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
        {%- if columns | length > 0 and column_name | lower not in columns -%}
            null
        {%- else -%}
            {{ column_name }}
        {%- endif -%}
    {%- else -%}
        {{ column_name }}
    {%- endif -%}
{%- endmacro %}
