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
-- one new event can extend a visit, start a new one or join two. A run re-sessionizes, from all their
-- events, the session ids that got an event at or after the newest stored visit end minus the look-back
-- (var realtime_lookback_seconds, for events committed late), and delete+insert on session_id replaces
-- every visit of those ids. The ids and an event id floor come from raw (macros/event_id_floor.sql), so
-- the staging view deduplicates only the events from the oldest re-read visit on.
with

{% if is_incremental() -%}
    {%- set bound = incremental_bound('occurred_at', var('realtime_lookback_seconds'), high_water='ended_at') -%}
    {#- the oldest event a re-read id can have: its stored visits' first event, or its first new one -#}
    {%- set event_floor -%}
        select min(starts.first_event_id)
        from (
            select existing.first_event_id
            from {{ this }} as existing
            inner join ({{ raw_session_ids_since(bound) }}) as changed_ids
                on existing.session_id = changed_ids.session_id
            union all
            select {{ raw_event_id_since(bound) }} as first_event_id
        ) as starts
    {%- endset %}

    changed_ids as (
        {{ raw_session_ids_since(bound) }}
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
