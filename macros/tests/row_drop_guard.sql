{#- A raw table (a source) may not have lost more than `max_drop_share` (var row_drop_max_share, 10 %) of
    its rows or of its distinct `key_column` values since the last accepted build (ops.row_count_baselines,
    written by the on-run-end hook in macros/row_drop_guard.sql). Erasures explain a drop: the rows that the
    `explained_by` feed (raw_customers.deletions) gained since then are subtracted from the keys expected,
    and the rows expected shrink in proportion. Soft deletes keep their rows, so they need no allowance.

    Why at the sources: `dbt build` runs a source's tests before anything that reads it and skips every
    downstream node when one fails, so a source that came back with a tenth of its rows (a broken service,
    a bad full refresh) stops before the snapshots close their rows and before any mart is rebuilt.
    No baseline yet (first build): passes. Accepted drop (var accept_row_drop): passes, and the build's
    counts become the new baseline. The one-line explanation is logged when the guard fails. -#}
{% test row_drop_guard(model, key_column, explained_by=none, max_drop_share=none) %}
    {%- set name = row_drop_table_name(model) -%}
    {%- set share = max_drop_share if max_drop_share is not none else var('row_drop_max_share', 0.1) -%}
    {%- set accepted = name in row_drop_accepted() -%}
    {%- set baseline = row_drop_baseline_relation() -%}
    {%- set has_baseline = execute and adapter.get_relation(
        database=baseline.database, schema=baseline.schema, identifier=baseline.identifier
    ) is not none -%}
    {%- set check -%}
        with

        current_counts as (
            {{ row_drop_counts(model, key_column, explained_by) }}
        ),

        {% if has_baseline -%}
            last_accepted as (
                select
                    row_count,
                    key_count,
                    explained_count
                from {{ baseline }}
                where table_name = '{{ name }}'
                order by recorded_at desc
                limit 1
            ),
        {%- else -%}
            last_accepted as (
                select
                    cast(null as bigint) as row_count,
                    cast(null as bigint) as key_count,
                    cast(null as bigint) as explained_count
                where false
            ),
        {%- endif %}

        compared as (
            select
                current_counts.table_name,
                last_accepted.row_count as accepted_rows,
                current_counts.row_count as current_rows,
                last_accepted.key_count as accepted_keys,
                current_counts.key_count as current_keys,
                greatest(current_counts.explained_count - last_accepted.explained_count, 0) as erased_since,
                cast({{ share }} as double) as max_drop_share
            from current_counts
            cross join last_accepted
        ),

        expected as (
            select
                *,
                greatest(accepted_keys - erased_since, 0) as expected_keys,
                case
                    when accepted_keys > 0
                        then accepted_rows * greatest(accepted_keys - erased_since, 0) / accepted_keys
                    else accepted_rows
                end as expected_rows
            from compared
        )

        select
            table_name,
            accepted_rows,
            current_rows,
            accepted_keys,
            current_keys,
            erased_since,
            max_drop_share
        from expected
        where
            current_keys < (1 - max_drop_share) * expected_keys
            or current_rows < (1 - max_drop_share) * expected_rows
    {%- endset -%}
    {%- if execute -%}
        {%- set found = run_query(check) -%}
        {%- if found and found.rows | length > 0 -%}
            {%- set r = found.rows[0] -%}
            {%- set counts = r['current_rows'] ~ ' rows / ' ~ r['current_keys'] ~ ' keys; the last accepted build had '
                ~ r['accepted_rows'] ~ ' rows / ' ~ r['accepted_keys'] ~ ' keys, erasures since explain '
                ~ r['erased_since'] ~ ' key(s)' -%}
            {%- if accepted -%}
                {{ log('row drop guard: ' ~ name ~ ' has ' ~ counts ~ '; drop ACCEPTED by var accept_row_drop: '
                    ~ 'if this build succeeds these counts become the new baseline', info=True) }}
            {%- else -%}
                {{ log('row drop guard: ' ~ name ~ ' has ' ~ counts ~ ': more than ' ~ (share * 100) | round(1)
                    ~ '% lost, so nothing built from it runs (snapshots, marts). Repair the source and re-run '
                    ~ '(e.g. a full refresh of the service once it serves all its rows), or accept the drop: '
                    ~ 'python -m elt run --accept-row-drop ' ~ name ~ " (dbt: --vars '{accept_row_drop: ["
                    ~ name ~ "]}')", info=True) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif %}
    select * from ({{ check }}) as guard
    where {{ 'false' if accepted else 'true' }}
{% endtest %}
