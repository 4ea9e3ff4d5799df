{{
    config(
        materialized='incremental',
        unique_key=['event_minute', 'event_type'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- Events per minute and type, for the stream mode's live dashboards. Each run re-aggregates only the
-- minutes from the newest stored one (minus 5 minutes for stragglers) onwards; delete+insert on
-- (event_minute, event_type) replaces those buckets whole.
with

events as (
    select * from {{ ref('stg_events__events') }}
    {% if is_incremental() -%}
        where occurred_at >= (
            select max(existing.event_minute) - to_minutes(5) from {{ this }} as existing
        )
    {%- endif %}
),

final as (
    select
        date_trunc('minute', occurred_at) as event_minute,
        event_type,
        count(*) as event_count,
        count(distinct session_id) as session_count,
        max(event_id) as last_event_id
    from events
    group by date_trunc('minute', occurred_at), event_type
)

select * from final
