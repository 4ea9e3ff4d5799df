{{
    config(
        materialized='incremental',
        unique_key=['event_minute', 'event_type'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- Events per minute and type, for the stream mode's live dashboards. Each run re-aggregates only the
-- minutes from the newest stored one minus the look-back (var realtime_lookback_seconds, for events
-- committed late) onwards, from a whole minute; delete+insert on (event_minute, event_type) replaces
-- those buckets whole. event_id_floor prunes the staging view's deduplication to those events, and
-- sessions are counted by grouping on them first, not count(distinct): DuckDB plans a distinct
-- aggregate as a shared subplan and then, in some runs, read every event of the view (docs/stream.md).
with

events as (
    select * from {{ ref('stg_events__events') }}
    {% if is_incremental() -%}
        {%- set bound = incremental_bound(
            'occurred_at', var('realtime_lookback_seconds'), high_water='event_minute', grain='minute'
        ) -%}
        where occurred_at >= {{ bound }} and {{ event_id_floor(bound) }}
    {%- endif %}
),

per_session as (
    select
        {{ shop_trunc('minute', 'occurred_at') }} as event_minute,
        event_type,
        session_id,
        count(*) as event_count,
        max(event_id) as last_event_id
    from events
    group by {{ shop_trunc('minute', 'occurred_at') }}, event_type, session_id
),

final as (
    select
        event_minute,
        event_type,
        cast(sum(event_count) as bigint) as event_count,
        count(session_id) as session_count,
        max(last_event_id) as last_event_id
    from per_session
    group by event_minute, event_type
)

select * from final
