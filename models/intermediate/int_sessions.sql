{{
    config(
        materialized='incremental',
        unique_key='session_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- Every session in the clickstream with the funnel steps it reached (see macros/sessionize.sql for the
-- session rules). Incremental on the client session id: its visits are numbered over all its events, so
-- one new event can extend a visit, start one or join two, whatever its occurred_at. A run
-- re-sessionizes, from all their events, the session ids with an event above the newest event id stored
-- (every load commits only ids above the committed ones, docs/stream.md), and delete+insert on
-- session_id replaces every visit of those ids. The ids come from raw (macros/event_id_floor.sql); the
-- oldest event a re-read id can have (its stored first event, or the first new one) bounds the staging
-- view's deduplication, as a literal (scalar_literal: DuckDB prunes with it, not with a subquery).
with

{% if is_incremental() -%}
    {%- set newest_stored -%}
        (select coalesce(max(existing.last_event_id), -1) from {{ this }} as existing)
    {%- endset -%}
    {%- set event_floor -%}
        select min(starts.first_event_id)
        from (
            select existing.first_event_id
            from {{ this }} as existing
            inner join ({{ raw_session_ids_after(newest_stored) }}) as changed_ids
                on existing.session_id = changed_ids.session_id
            union all
            select {{ newest_stored }} + 1 as first_event_id
        ) as starts
    {%- endset %}

    changed_ids as (
        {{ raw_session_ids_after(newest_stored) }}
    ),

    events as (
        select * from {{ ref('stg_events__events') }}
        where
            event_id >= {{ scalar_literal(event_floor) }}
            and session_id in (select changed_ids.session_id from changed_ids)
    ),

{%- else -%}

    events as (
        select * from {{ ref('stg_events__events') }}
    ),

{%- endif %}

sessions as (
    {{ sessionize('events') }}
)

select * from sessions
