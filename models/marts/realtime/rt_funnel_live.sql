-- Today's funnel by hour of session start (UTC), rebuilt on every stream tick: it sessionizes only the
-- events since yesterday's start (so a session crossing midnight is whole), then keeps today's sessions.
with

events as (
    select * from {{ ref('stg_events__events') }}
    where
        occurred_at >= {{ utc_today() }} - {{ shop_interval(1, 'days') }}
        and {{ event_id_floor(utc_today() ~ ' - ' ~ shop_interval(1, 'days')) }}
),

sessions as (
    {{ sessionize('events') }}
),

final as (
    select
        {{ shop_trunc('hour', 'started_at') }} as session_hour,
        count(*) as sessions,
        count(*) filter (where first_product_view_at is not null) as product_view_sessions,
        count(*) filter (where first_add_to_cart_at is not null) as add_to_cart_sessions,
        count(*) filter (where first_checkout_at is not null) as checkout_sessions,
        count(*) filter (where first_order_placed_at is not null) as order_sessions,
        {{ safe_ratio("count(*) filter (where first_order_placed_at is not null)", "count(*)") }}
            as conversion_rate
    from sessions
    where started_at >= {{ utc_today() }}
    group by {{ shop_trunc('hour', 'started_at') }}
)

select * from final
