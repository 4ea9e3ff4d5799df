{#- The row drop guard's shared parts: the counts of one raw table, the baseline table, the accepted list,
    and the on-run-end hook that records a new baseline. The test itself is macros/tests/row_drop_guard.sql;
    docs/dbt.md ("Row drop guard") explains the design.

    Why a baseline of our own: dlt's _dlt_loads says which loads committed, not how many rows a table held
    after them, and a replace (full refresh) that comes back with a tenth of the rows commits like any
    other load. What the guard must compare with is what the last *accepted* build saw. -#}

{#- Where the last accepted counts live: ops.row_count_baselines, next to the flow's run log. Qualified by
    the database so a warehouse file named ops.duckdb (catalog "ops") cannot make it ambiguous. -#}
{% macro row_drop_baseline_relation() -%}
    {#- the spark target has no database (Spark's schemas are Hive databases) -#}
    {%- set database = target.database if target.database is defined else none -%}
    {{ return(api.Relation.create(database=database, schema='ops', identifier='row_count_baselines')) }}
{%- endmacro %}

{#- The tables whose drop the operator accepted for this invocation:
    --vars '{accept_row_drop: [raw_customers.customers]}' (a list, or one comma-separated string). -#}
{% macro row_drop_accepted() -%}
    {%- set value = var('accept_row_drop', []) -%}
    {%- if value is string -%}
        {%- set value = value.split(',') -%}
    {%- endif -%}
    {{ return(value | map('trim') | reject('equalto', '') | list) }}
{%- endmacro %}

{#- "raw_customers.customers": how messages and the baseline table name a raw table. -#}
{% macro row_drop_table_name(relation) -%}
    {{ return(relation.schema ~ '.' ~ relation.identifier) }}
{%- endmacro %}

{#- One row: table_name, row_count, key_count (distinct key_column), explained_count (committed rows of the
    `explained_by` table in the same schema: the erasure feed, whose growth explains rows the loader removed).
    Committed loads only, as staging reads them. A table dlt has not created yet counts 0 rows. -#}
{% macro row_drop_counts(relation, key_column, explained_by=none) -%}
    {%- set name = row_drop_table_name(relation) -%}
    {%- set loads = api.Relation.create(
        database=relation.database, schema=relation.schema, identifier='_dlt_loads'
    ) -%}
    {%- set committed -%}
        _dlt_load_id in (select load_id from {{ loads }} where status = 0)
    {%- endset -%}
    {%- set explained = 'cast(0 as bigint)' -%}
    {%- if explained_by is not none -%}
        {%- set feed = api.Relation.create(
            database=relation.database, schema=relation.schema, identifier=explained_by
        ) -%}
        {%- if adapter.get_relation(database=feed.database, schema=feed.schema, identifier=feed.identifier) -%}
            {%- set explained = '(select count(*) from ' ~ feed ~ ' where ' ~ committed ~ ')' -%}
        {%- endif -%}
    {%- endif -%}
    {%- if adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier
    ) is none %}
        select
            '{{ name }}' as table_name,
            cast(0 as bigint) as row_count,
            cast(0 as bigint) as key_count,
            {{ explained }} as explained_count
    {%- else %}
        select
            '{{ name }}' as table_name,
            count(*) as row_count,
            count(distinct {{ key_column }}) as key_count,
            {{ explained }} as explained_count
        from {{ relation }}
        where {{ committed }}
    {%- endif %}
{%- endmacro %}

{#- on-run-end (dbt_project.yml): after a `dbt build` in which nothing errored, failed or was skipped,
    record the current counts of every raw table whose row_drop_guard test ran and passed in this
    invocation. Nothing else records a baseline: a `dbt run` (the stream's `dbt run -s tag:realtime`, or
    any selection that leaves the sources out) ran no guard, so it records nothing; a failed build records
    nothing, so the next build is compared with the same accepted counts. The counts are taken again here
    with the same macro the test used; the build held the warehouse's single write connection throughout,
    so raw cannot have changed in between. -#}
{% macro record_row_count_baselines(results) -%}
    {%- if not execute or flags.WHICH != 'build' -%}
        {{ return('') }}
    {%- endif -%}
    {%- set passed = [] -%}
    {%- for result in results -%}
        {%- if result.status in ('error', 'fail', 'runtime error', 'skipped') -%}
            {{ return('') }}
        {%- endif -%}
        {%- set node = result.node -%}
        {%- if node.resource_type == 'test' and node.test_metadata and node.test_metadata.name == 'row_drop_guard'
            and result.status == 'pass' -%}
            {%- do passed.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not passed -%}
        {{ return('') }}
    {%- endif -%}
    {%- set baseline = row_drop_baseline_relation() -%}
    {%- set accepted = row_drop_accepted() -%}
    {{ row_drop_baseline_create(baseline) }}
    insert into {{ baseline }}
    {%- for node in passed %}
        {%- set parent = graph.sources[node.depends_on.nodes[0]] -%}
        {%- set relation = api.Relation.create(
            database=parent.database, schema=parent.schema, identifier=parent.identifier
        ) -%}
        {%- set kwargs = node.test_metadata.kwargs %}
    select
        counts.table_name,
        counts.row_count,
        counts.key_count,
        counts.explained_count,
        {{ 'true' if row_drop_table_name(relation) in accepted else 'false' }} as accepted_drop,
        '{{ invocation_id }}' as invocation_id,
        current_timestamp as recorded_at
    from ({{ row_drop_counts(relation, kwargs['key_column'], kwargs.get('explained_by')) }}) as counts
    {{ 'union all' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The statements that create the baseline table when missing, ahead of the hook's insert.

    Arguments:
      baseline - row_drop_baseline_relation() -#}
{% macro row_drop_baseline_create(baseline) -%}
    {{ return(adapter.dispatch('row_drop_baseline_create')(baseline)) }}
{%- endmacro %}

{#- DuckDB: in the hook's own SQL. -#}
{% macro duckdb__row_drop_baseline_create(baseline) -%}
    create schema if not exists {{ adapter.quote(baseline.database) }}.ops;
    create table if not exists {{ baseline }} (
        table_name varchar not null,
        row_count bigint not null,
        key_count bigint not null,
        explained_count bigint not null,
        accepted_drop boolean not null,
        invocation_id varchar not null,
        recorded_at timestamp with time zone not null
    );
{%- endmacro %}

{#- Spark runs one statement per call: created here, the hook keeps the insert alone. -#}
{% macro spark__row_drop_baseline_create(baseline) -%}
    {%- do run_query('create schema if not exists ' ~ baseline.schema) -%}
    {%- do run_query(
        'create table if not exists ' ~ baseline ~ ' (table_name string, row_count bigint, key_count bigint,'
        ~ ' explained_count bigint, accepted_drop boolean, invocation_id string, recorded_at timestamp)'
        ~ ' using parquet'
    ) -%}
{%- endmacro %}
