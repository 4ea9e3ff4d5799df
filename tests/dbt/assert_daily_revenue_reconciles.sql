-- The daily revenue mart neither gains nor loses money: per day, its revenue equals the USD line
-- amounts of that day's revenue-status orders in fct_order_items.
with

revenue as (
    select * from {{ ref('fct_daily_revenue') }}
),

order_items as (
    select * from {{ ref('fct_order_items') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

status_stages as (
    select * from {{ ref('order_status_stages') }}
),

mart_daily as (
    select
        revenue_date,
        sum(revenue_usd) as revenue_usd
    from revenue
    group by revenue_date
),

lines_daily as (
    select
        order_items.placed_date as revenue_date,
        sum(order_items.line_amount_usd) as revenue_usd
    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    inner join status_stages
        on orders.order_status = status_stages.status
    where status_stages.is_revenue
    group by order_items.placed_date
),

final as (
    select
        coalesce(mart_daily.revenue_date, lines_daily.revenue_date) as revenue_date,
        mart_daily.revenue_usd as mart_revenue_usd,
        lines_daily.revenue_usd as lines_revenue_usd
    from mart_daily
    full outer join lines_daily
        on mart_daily.revenue_date = lines_daily.revenue_date
    where coalesce(mart_daily.revenue_usd, -1) != coalesce(lines_daily.revenue_usd, -1)
)

select * from final
