{#- How the spark target writes incremental models and snapshots into plain Parquet tables.

    Why our own: dbt-spark's incremental strategies for Parquet are `append` and `insert_overwrite`
    (`merge` needs Delta, Iceberg or Hudi, whose jars Spark fetches from Maven at run time: not available
    here), and its snapshots need one of those formats too. The facts here are delete+insert on a unique
    key. On Parquet that is done with insert_overwrite on partitions: the new rows are written to a table
    aside, the partitions they touch are rebuilt aside (their old rows minus the replaced keys, plus the
    new rows), and `insert overwrite ... partition (...)` swaps those partitions in (dynamic partition
    overwrite: untouched partitions stay as they are). A table without partition_by is rebuilt whole.
    Spark refuses to overwrite a table that the same statement reads, hence the tables aside.
    A key must stay in its partition (an order's placed_month never changes); unique tests would catch
    a key in two partitions. -#}

{#- A relation next to `relation` named with `suffix`, for the tables aside.

    Arguments:
      relation - the model's relation
      suffix   - appended to its identifier -#}
{% macro spark_aside(relation, suffix) -%}
    {{ return(api.Relation.create(schema=relation.schema, identifier=relation.identifier ~ suffix, type='table')) }}
{%- endmacro %}

{#- Run one statement (dbt-spark's session runs one per call). -#}
{% macro spark_run(sql) -%}
    {%- do run_query(sql) -%}
{%- endmacro %}

{#- The partition clause of an insert overwrite: `partition (a, b)`, or nothing.

    Arguments:
      partition_by - a column name, a list of them, or none -#}
{% macro spark_partition_clause(partition_by) -%}
    {%- if partition_by -%}
        {%- set columns = [partition_by] if partition_by is string else partition_by -%}
        partition ({{ columns | join(', ') }})
    {%- endif -%}
{%- endmacro %}

{#- Replace `relation`'s partitions (all of it when unpartitioned) with the rows of `source`, a table
    with the same columns, and drop `source`. Static mode when `whole` (every partition is replaced, the
    ones `source` has no row for emptied), dynamic otherwise.

    Arguments:
      relation     - the table to overwrite
      source       - the table aside holding the rows
      partition_by - the table's partition columns, or none
      whole        - replace every partition -#}
{% macro spark_overwrite_from(relation, source, partition_by, whole=false) -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- do spark_run('set spark.sql.sources.partitionOverwriteMode = ' ~ ('static' if whole else 'dynamic')) -%}
    {%- do spark_run(
        'insert overwrite table ' ~ relation ~ ' ' ~ spark_partition_clause(partition_by)
        ~ ' select ' ~ columns | join(', ') ~ ' from ' ~ source
    ) -%}
    {%- do spark_run('set spark.sql.sources.partitionOverwriteMode = dynamic') -%}
    {%- do spark_run('drop table if exists ' ~ source) -%}
{%- endmacro %}

{#- The rows of `relation` that match `condition` are deleted (a post-hook's `delete from`).

    Arguments:
      relation  - the table
      condition - an SQL condition on its columns -#}
{% macro shop_delete_where(relation, condition) -%}
    {{ return(adapter.dispatch('shop_delete_where')(relation, condition)) }}
{%- endmacro %}

{#- DuckDB: a delete statement, run by the hook. -#}
{% macro duckdb__shop_delete_where(relation, condition) -%}
    delete from {{ relation }} where {{ condition }}
{%- endmacro %}

{#- Spark (Parquet cannot delete rows): the rows kept are written aside and the table is overwritten
    whole with them; the hook itself is then empty. -#}
{% macro spark__shop_delete_where(relation, condition) -%}
    {%- if execute and load_relation(relation) is not none -%}
        {%- set kept = spark_aside(relation, '__dbt_kept') -%}
        {%- do spark_run('drop table if exists ' ~ kept) -%}
        {%- do spark_run(
            'create table ' ~ kept ~ ' using parquet as select * from ' ~ relation
            ~ ' where not coalesce(' ~ condition ~ ', false)'
        ) -%}
        {%- do spark_overwrite_from(relation, kept, config.get('partition_by'), whole=true) -%}
    {%- endif -%}
{%- endmacro %}

{#- The spark target's incremental materialization (Parquet; see the top of this file): a first build or a
    full refresh creates the table; an incremental one writes the model's rows aside and replaces, in the
    partitions they touch, the rows with the same unique_key (delete+insert). on_schema_change: 'fail'
    stops when the new rows' columns differ from the table's; anything else is treated the same. -#}
{% materialization incremental, adapter='spark' -%}
    {%- set unique_key = config.get('unique_key') -%}
    {%- set keys = [] if unique_key is none else ([unique_key] if unique_key is string else unique_key) -%}
    {%- set partition_by = config.get('partition_by') -%}
    {%- set parts = [] if not partition_by else ([partition_by] if partition_by is string else partition_by) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing = load_relation(this) -%}
    {{ run_hooks(pre_hooks) }}
    {%- if existing is none or existing.is_view or should_full_refresh() -%}
        {%- if existing is not none -%}
            {%- do adapter.drop_relation(existing) -%}
        {%- endif -%}
        {%- call statement('main') -%}
            {{ create_table_as(false, target_relation, sql) }}
        {%- endcall -%}
    {%- else -%}
        {%- set new_rows = spark_aside(this, '__dbt_new') -%}
        {%- set rebuilt = spark_aside(this, '__dbt_rebuilt') -%}
        {%- do spark_run('drop table if exists ' ~ new_rows) -%}
        {%- do spark_run('drop table if exists ' ~ rebuilt) -%}
        {%- do spark_run('create table ' ~ new_rows ~ ' using parquet as ' ~ sql) -%}
        {%- set columns = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
        {%- set new_columns = adapter.get_columns_in_relation(new_rows) | map(attribute='name') | list -%}
        {%- if columns | sort != new_columns | sort -%}
            {%- do spark_run('drop table if exists ' ~ new_rows) -%}
            {{ exceptions.raise_compiler_error(
                this ~ ": the model's columns " ~ new_columns ~ " differ from the table's " ~ columns
                ~ " (on_schema_change: fail): run it with --full-refresh"
            ) }}
        {%- endif -%}
        {%- set same_key -%}
            {%- for key in keys -%}
                new_rows.{{ key }} <=> old.{{ key }}{{ ' and ' if not loop.last }}
            {%- endfor -%}
        {%- endset -%}
        {%- set same_part -%}
            {%- for part in parts -%}
                touched.{{ part }} <=> old.{{ part }}{{ ' and ' if not loop.last }}
            {%- endfor -%}
        {%- endset -%}
        {%- call statement('main') -%}
            create table {{ rebuilt }} using parquet as
            select {{ columns | join(', ') }}
            from {{ this }} as old
            where
                {% if parts -%}
                    exists (select 1 from {{ new_rows }} as touched where {{ same_part }})
                {%- else -%}
                    true
                {%- endif %}
                {% if keys -%}
                    and not exists (select 1 from {{ new_rows }} as new_rows where {{ same_key }})
                {%- endif %}
            union all
            select {{ columns | join(', ') }}
            from {{ new_rows }}
        {%- endcall -%}
        {%- do spark_run('drop table if exists ' ~ new_rows) -%}
        {%- do spark_overwrite_from(this, rebuilt, partition_by) -%}
    {%- endif -%}
    {{ run_hooks(post_hooks) }}
    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}

{#- The spark target's snapshot materialization (Parquet): dbt's own strategies and staging query decide
    what changed; the merge dbt-spark would run on Delta is done as a rebuild aside — every row with its
    dbt_valid_to closed where the staging query closes it, plus the new versions — and an overwrite. -#}
{% materialization snapshot, adapter='spark' -%}
    {%- set strategy_name = config.get('strategy') -%}
    {%- set identifier = model.get('alias') or model.get('name') -%}
    {%- set target_exists, target_relation = get_or_create_relation(
        database=none, schema=model.schema, identifier=identifier, type='table'
    ) -%}
    {%- if not adapter.check_schema_exists(model.database, model.schema) -%}
        {%- do create_schema(target_relation) -%}
    {%- endif -%}
    {{ run_hooks(pre_hooks) }}
    {%- set strategy_macro = strategy_dispatch(strategy_name) -%}
    {%- set strategy = strategy_macro(model, 'snapshotted_data', 'source_data', model['config'], target_exists) -%}
    {%- if not target_exists -%}
        {%- call statement('main') -%}
            {{ create_table_as(false, target_relation, build_snapshot_table(strategy, model['compiled_code'])) }}
        {%- endcall -%}
    {%- else -%}
        {%- set names = config.get('snapshot_table_column_names') or get_snapshot_table_column_names() -%}
        {%- set staged = spark_aside(target_relation, '__dbt_staged') -%}
        {%- set rebuilt = spark_aside(target_relation, '__dbt_rebuilt') -%}
        {%- do spark_run('drop table if exists ' ~ staged) -%}
        {%- do spark_run('drop table if exists ' ~ rebuilt) -%}
        {%- do spark_run(
            'create table ' ~ staged ~ ' using parquet as '
            ~ snapshot_staging_table(strategy, model['compiled_code'], target_relation)
        ) -%}
        {%- set columns = adapter.get_columns_in_relation(target_relation) -%}
        {%- call statement('main') -%}
            create table {{ rebuilt }} using parquet as
            select
                {%- for column in columns %}
                    {%- if column.name == names.dbt_valid_to %}
                        cast(coalesce(closed.{{ names.dbt_valid_to }}, old.{{ column.name }}) as {{ column.data_type }})
                            as {{ column.name }}
                    {%- else %}
                        old.{{ column.name }}
                    {%- endif %}{{ ',' if not loop.last }}
                {%- endfor %}
            from {{ target_relation }} as old
            left join (
                select
                    {{ names.dbt_scd_id }},
                    {{ names.dbt_valid_to }}
                from {{ staged }}
                where dbt_change_type in ('update', 'delete')
            ) as closed
                on
                    old.{{ names.dbt_scd_id }} = closed.{{ names.dbt_scd_id }}
                    and old.{{ names.dbt_valid_to }} is null
            union all
            select
                {%- for column in columns %}
                    cast({{ column.name }} as {{ column.data_type }}) as {{ column.name }}{{ ',' if not loop.last }}
                {%- endfor %}
            from {{ staged }}
            where dbt_change_type = 'insert'
        {%- endcall -%}
        {%- do spark_run('drop table if exists ' ~ staged) -%}
        {%- do spark_overwrite_from(target_relation, rebuilt, none) -%}
    {%- endif -%}
    {{ run_hooks(post_hooks) }}
    {{ adapter.commit() }}
    {{ return({'relations': [target_relation]}) }}
{%- endmaterialization %}
