{#- Run first by require_raw_data (on-run-start): on the spark target, register the raw Parquet lake that
    transform/spark/lake.py exported from the DuckDB warehouse, under the same schema and table names, so
    the sources resolve as they do on DuckDB. The Spark runner passes the export as var `spark_raw_lake`
    (a mapping: root, the folder; tables, the table names per schema); without it (a plain
    `dbt build --target spark`) the tables registered by the last run stay. Each table is dropped and
    created again (an external table: the drop leaves the files), so a new column in raw appears.
    Nothing on DuckDB. -#}
{% macro register_raw_lake() -%}
    {{ return(adapter.dispatch('register_raw_lake')()) }}
{%- endmacro %}

{#- DuckDB reads raw where the loaders wrote it. -#}
{% macro default__register_raw_lake() -%}
    {{ return('') }}
{%- endmacro %}

{#- Spark: one external Parquet table per raw table. -#}
{% macro spark__register_raw_lake() -%}
    {%- set lake = var('spark_raw_lake', none) -%}
    {%- if not execute or not lake -%}
        {{ return('') }}
    {%- endif -%}
    {%- for schema, tables in lake['tables'].items() -%}
        {%- do run_query('create schema if not exists ' ~ schema) -%}
        {%- for table in tables -%}
            {%- do run_query('drop table if exists ' ~ schema ~ '.' ~ table) -%}
            {%- do run_query(
                'create table ' ~ schema ~ '.' ~ table ~ " using parquet location '"
                ~ lake['root'] ~ '/' ~ schema ~ '/' ~ table ~ "'"
            ) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ log('registered the raw lake ' ~ lake['root'] ~ ' in Spark', info=True) }}
    {{ return('') }}
{%- endmacro %}
