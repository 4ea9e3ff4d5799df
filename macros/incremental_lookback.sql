{#- The filter of an incremental model's new rows: `column` at or after the model's high-water mark
    minus a look-back. Why a look-back: a change can be committed after newer ones (a late commit: its
    updated_at lies in the past when it lands), so it reaches raw behind the newest value the model
    already holds; a plain `>= max(...)` would never merge it.

    Arguments:
      column      - the source column to filter (a timestamp)
      lookback    - how far behind the mark to re-read, a non-negative number of `unit`s
      high_water  - the model's column holding the mark (default: `column`)
      unit        - seconds, minutes, hours or days (default seconds)
      grain       - truncate the bound to this date_trunc part, for models that aggregate into
                    buckets: delete+insert replaces a bucket whole, so it must be re-read whole

    Renders `true` on a full build (and when the model is not incremental). An empty model (e.g. after
    rt_orders_today's midnight post-hook) re-reads everything. -#}
{% macro incremental_since(column, lookback, high_water=none, unit='seconds', grain=none) -%}
    {%- if is_incremental() -%}
        {{ column }} >= {{ incremental_bound(column, lookback, high_water, unit, grain) }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- The bound itself, as a scalar subquery on the model's table (same arguments as incremental_since;
    only meaningful when is_incremental()): for a second predicate on the same bound, e.g.
    event_id_floor. -#}
{% macro incremental_bound(column, lookback, high_water=none, unit='seconds', grain=none) -%}
    {%- set units = ['seconds', 'minutes', 'hours', 'days'] -%}
    {%- if unit not in units -%}
        {{ exceptions.raise_compiler_error(
            "incremental_since: unit must be one of " ~ units | join(', ') ~ ", got '" ~ unit ~ "'"
        ) }}
    {%- endif -%}
    {%- if lookback is string or lookback is not number or lookback < 0 -%}
        {{ exceptions.raise_compiler_error(
            "incremental_since: the look-back must be a non-negative number of " ~ unit
            ~ " (check the var passed with --vars)"
        ) }}
    {%- endif -%}
    {%- set bound -%}
        max(existing.{{ high_water or column }}) - {{ shop_interval(lookback, unit) }}
    {%- endset -%}
    (
        select coalesce({% if grain %}{{ shop_trunc(grain, bound) }}{% else %}{{ bound }}{% endif %},
            {{ shop_min_timestamp() }})
        from {{ this }} as existing
    )
{%- endmacro %}

{#- The filter of an incremental fact's rows to write: those this table does not hold at that version.
    Why not a high-water mark: a fact row changes when any of several sources changes (an order, its
    payments, an erasure), settles in whatever order the services commit, and an order in flight keeps its
    last settled version; comparing (key, source_updated_at) with what the table holds writes exactly the
    rows that are new or at a newer version, however late they arrive.

    Arguments:
      key       - the table's unique key column
      relation  - the alias of the CTE or table being filtered (its columns: `key`, source_updated_at)

    Renders `true` on a full build (and when the model is not incremental). -#}
{% macro not_held_at_version(key, relation) -%}
    {%- if is_incremental() -%}
        not exists (
            select 1
            from {{ this }} as existing
            where
                existing.{{ key }} = {{ relation }}.{{ key }}
                and existing.source_updated_at = {{ relation }}.source_updated_at
        )
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- A scalar query (`select` of one value) as a literal when the build can run it now, else as a scalar
    subquery: the same value either way. Why: DuckDB pushes `event_id >= <literal>` below the staging
    events view's deduplication, but not the same comparison with a subquery once windows sit above it
    (int_sessions' sessionize): the whole history would be deduplicated on every incremental run. The
    query runs at execution, in the build that then reads the same data; a unit test (its inputs are
    fixtures in the model's SQL, not tables) and parsing get the subquery.

    Arguments:
      sql - the scalar query; its one value may be null (then the literal is null) -#}
{% macro scalar_literal(sql) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set value = run_query(sql).columns[0].values()[0] -%}
        {{- 'null' if value is none else value -}}
    {%- else -%}
        ({{ sql }})
    {%- endif -%}
{%- endmacro %}
