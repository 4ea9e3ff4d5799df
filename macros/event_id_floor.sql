{#- A predicate on event_id implied by `occurred_at >= bound`, for a model reading stg_events__events:
    `event_id >=` the smallest raw event_id that occurred at or after `bound` (a scalar SQL expression).

    Why: the staging view keeps one row per event_id with a window over all of raw (a replayed package
    must not double-count), and the warehouse pushes a filter on the window's partition key (event_id)
    below the window, but not a filter on occurred_at: a model that only filters on occurred_at
    deduplicates the whole history on every run. The predicate is implied by the occurred_at filter
    (the minimum is taken over raw, a superset of staging, with staging's own conversion of
    occurred_at), so adding it never changes a result; with no event at or after the bound the minimum
    is null and, like the occurred_at filter, it keeps nothing. -#}
{% macro event_id_floor(bound) -%}
    event_id >= (
        select min(raw_events.event_id)
        from {{ source('events', 'events') }} as raw_events
        where {{ occurred_since('raw_events.occurred_at', bound) }}
    )
{%- endmacro %}

{#- `to_utc(column) >= bound` for a raw column, written so the warehouse can skip the blocks whose
    minimum/maximum rule them out (raw arrives in event_id order, so only the newest blocks are read). -#}
{% macro occurred_since(column, bound) -%}
    {{ return(adapter.dispatch('occurred_since')(column, bound)) }}
{%- endmacro %}

{#- Any warehouse: staging's own conversion of the column (exact, but every row is converted). -#}
{% macro default__occurred_since(column, bound) -%}
    {{ to_utc(column) }} >= {{ bound }}
{%- endmacro %}

{#- DuckDB: the bound (a UTC wall clock) as an instant, compared with the raw column as it is; equal to
    the default for a zoned column and for a naive one (both go through the session zone). -#}
{% macro duckdb__occurred_since(column, bound) -%}
    {{ column }} >= timezone('UTC', {{ bound }})
{%- endmacro %}

{#- The client session ids of the raw events with an event_id above `after` (a select of one column,
    session_id, cast as staging casts it). Read from raw, not staging, for event_id_floor's reason: the
    staging view deduplicates all of raw before any filter but one on event_id. Raw holds a superset
    of staging's events (rows of a load not committed yet), so a model re-reading these ids may re-read
    an id for nothing, never miss one.

    Arguments:
      after - a scalar SQL expression: an event id -#}
{% macro raw_session_ids_after(after) -%}
    select distinct cast(raw_events.session_id as {{ dbt.type_string() }}) as session_id
    from {{ source('events', 'events') }} as raw_events
    where raw_events.event_id > {{ after }}
{%- endmacro %}
