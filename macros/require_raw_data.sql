{#- on-run-start (dbt_project.yml): a build, run, test or snapshot whose selected nodes read a source schema
    that no load has created yet stops at once with one line saying what to run first. Without it a fresh
    clone (or a warehouse moved away) failed with one "Catalog Error: ... does not exist" per model.

    The schemas checked are those of the sources upstream (through their parents) of the selected models,
    seeds and snapshots (of the selected tests when there are none: `dbt test`), in one information_schema
    query, none when they read no source: `dbt seed` and a selection that reads no source pass, and a
    source that is loaded but young (a table dlt has not created yet, read through source_or_empty) is not
    refused. Tests are not followed when models are selected: dbt also selects a test with one selected
    parent, and its other parents (a relationship to another service's model) would refuse a build of the
    loaded lineage, e.g. the stream's `build -s +tag:realtime` with only events and orders loaded.
    Commands that run no model SQL (parse, ls, compile, docs generate, seed, show) are left alone.
    On the spark target the raw lake is registered first (macros/spark_lake.sql). -#}
{% macro require_raw_data() -%}
    {%- do register_raw_lake() -%}
    {%- if not execute or flags.WHICH not in ('build', 'run', 'test', 'snapshot') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set needed = {} -%}
    {%- set queue = [] -%}
    {%- for unique_id in selected_resources
        if unique_id in graph.nodes and graph.nodes[unique_id].resource_type != 'test' -%}
        {%- do queue.append(unique_id) -%}
    {%- endfor -%}
    {%- if not queue -%}
        {%- do queue.extend(selected_resources) -%}
    {%- endif -%}
    {%- set seen = {} -%}
    {#- a breadth-first walk up the graph: the loop also visits the parents appended to `queue` -#}
    {%- for unique_id in queue if unique_id not in seen -%}
        {%- do seen.update({unique_id: true}) -%}
        {%- if unique_id in graph.sources -%}
            {%- set source = graph.sources[unique_id] -%}
            {%- do needed.update({shop_schema_key(source.database, source.schema): source.schema}) -%}
        {%- elif unique_id in graph.nodes -%}
            {%- do queue.extend(graph.nodes[unique_id].depends_on.nodes) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not needed -%}
        {{ return('') }}
    {%- endif -%}
    {%- set loaded = shop_loaded_schemas() -%}
    {%- set missing = [] -%}
    {%- for key, schema in needed | dictsort if key not in loaded -%}
        {%- do missing.append(schema) -%}
    {%- endfor -%}
    {%- if missing -%}
        {%- do exceptions.raise_compiler_error(
            "no raw data yet: run make elt (or make extract) first (nothing has been loaded into "
            ~ missing | join(", ") ~ ")"
        ) -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- How require_raw_data names a schema: `database.schema`, lower-case (Spark: the schema alone, its
    relations carry no database).

    Arguments:
      database, schema - a source's -#}
{% macro shop_schema_key(database, schema) -%}
    {{ return(adapter.dispatch('shop_schema_key')(database, schema)) }}
{%- endmacro %}

{#- DuckDB: the attached database and the schema. -#}
{% macro duckdb__shop_schema_key(database, schema) -%}
    {{ return((database ~ '.' ~ schema) | lower) }}
{%- endmacro %}

{#- Spark: the schema (a Hive database). -#}
{% macro spark__shop_schema_key(database, schema) -%}
    {{ return(schema | lower) }}
{%- endmacro %}

{#- The keys (shop_schema_key) of the schemas that hold at least one table. -#}
{% macro shop_loaded_schemas() -%}
    {{ return(adapter.dispatch('shop_loaded_schemas')()) }}
{%- endmacro %}

{#- DuckDB: one information_schema query. -#}
{% macro duckdb__shop_loaded_schemas() -%}
    {%- set loaded_query -%}
        select distinct lower(table_catalog || '.' || table_schema) as loaded_schema
        from information_schema.tables
    {%- endset -%}
    {{ return(run_query(loaded_query).columns[0].values()) }}
{%- endmacro %}

{#- Spark: the metastore's databases (the raw lake registers one per raw schema, with its tables). -#}
{% macro spark__shop_loaded_schemas() -%}
    {{ return(run_query('show databases').columns[0].values() | map('lower') | list) }}
{%- endmacro %}
