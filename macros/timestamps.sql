{#- Raw timestamps land as timestamp with time zone. Calendar logic (days, months, minutes) on a
    timestamptz depends on the session's TimeZone setting, so staging turns every timestamp into a
    plain UTC timestamp once and the layers above never see a zone. -#}
{% macro to_utc(column_expression) -%}
    {{ return(adapter.dispatch('to_utc')(column_expression)) }}
{%- endmacro %}

{#- DuckDB: through timestamptz, so a zoned raw value lands on its UTC wall clock. -#}
{% macro duckdb__to_utc(column_expression) -%}
    cast(timezone('UTC', cast({{ column_expression }} as timestamptz)) as timestamp)
{%- endmacro %}

{#- Spark: raw Parquet timestamps read as zoned (UTC-adjusted) ones; the spark target's session zone is
    UTC and its `timestamp` is zone-less (spark.sql.timestampType), so one cast gives the UTC wall clock. -#}
{% macro spark__to_utc(column_expression) -%}
    cast({{ column_expression }} as timestamp)
{%- endmacro %}

{#- dlt load ids are "<unix seconds>.<fraction>"; newer loads sort higher. -#}
{% macro load_order(load_id_column='_dlt_load_id') -%}
    try_cast({{ load_id_column }} as double)
{%- endmacro %}

{#- Today in UTC. DuckDB's current_date follows the session TimeZone; the marts' days are UTC days. -#}
{% macro utc_today() -%}
    {{ return(adapter.dispatch('utc_today')()) }}
{%- endmacro %}

{#- DuckDB: the UTC wall clock of now. -#}
{% macro duckdb__utc_today() -%}
    cast(timezone('UTC', current_timestamp) as date)
{%- endmacro %}

{#- Spark: the spark target's session zone is UTC. -#}
{% macro spark__utc_today() -%}
    current_date()
{%- endmacro %}
