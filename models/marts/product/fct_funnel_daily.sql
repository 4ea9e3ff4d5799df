-- The daily conversion funnel from the clickstream: sessions started that day, how many reached each
-- step (product view → add to cart → checkout → order placed), and step-to-step and overall
-- conversion. A session counts for a step when it reached it, whatever it skipped.
with

sessions as (
    select * from {{ ref('int_sessions') }}
),

daily as (
    select
        cast(started_at as date) as session_date,
        count(*) as sessions,
        count(*) filter (where first_product_view_at is not null) as product_view_sessions,
        count(*) filter (where first_add_to_cart_at is not null) as add_to_cart_sessions,
        count(*) filter (where first_checkout_at is not null) as checkout_sessions,
        count(*) filter (where first_order_placed_at is not null) as order_sessions
    from sessions
    group by cast(started_at as date)
),

final as (
    select
        session_date,
        sessions,
        product_view_sessions,
        add_to_cart_sessions,
        checkout_sessions,
        order_sessions,
        {{ safe_ratio('product_view_sessions', 'sessions') }} as view_rate,
        {{ safe_ratio('add_to_cart_sessions', 'product_view_sessions') }} as view_to_cart_rate,
        {{ safe_ratio('checkout_sessions', 'add_to_cart_sessions') }} as cart_to_checkout_rate,
        {{ safe_ratio('order_sessions', 'checkout_sessions') }} as checkout_to_order_rate,
        {{ safe_ratio('order_sessions', 'sessions') }} as conversion_rate
    from daily
)

select * from final
