-- The daily revenue mart neither gains nor loses money: per day, its paid, returned and kept gross
-- amounts equal the USD line amounts in fct_order_items of that day's paid orders (paid_at set), of the
-- returned ones among them, and of the rest; and kept = paid − returned in every cell.
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

mart_daily as (
    select
        revenue_date,
        sum(paid_gross_amount_usd) as paid_usd,
        sum(returned_gross_amount_usd) as returned_usd,
        sum(kept_gross_amount_usd) as kept_usd,
        count(*) filter (
            where kept_gross_amount_usd != paid_gross_amount_usd - returned_gross_amount_usd
        ) as unbalanced_cells
    from revenue
    group by revenue_date
),

lines_daily as (
    select
        order_items.placed_date as revenue_date,
        sum(order_items.line_amount_usd) as paid_usd,
        coalesce(sum(order_items.line_amount_usd) filter (where orders.returned_at is not null), 0)
            as returned_usd,
        coalesce(sum(order_items.line_amount_usd) filter (where orders.returned_at is null), 0) as kept_usd
    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    where orders.paid_at is not null
    group by order_items.placed_date
),

final as (
    select
        coalesce(mart_daily.revenue_date, lines_daily.revenue_date) as revenue_date,
        mart_daily.paid_usd as mart_paid_usd,
        lines_daily.paid_usd as lines_paid_usd,
        mart_daily.returned_usd as mart_returned_usd,
        lines_daily.returned_usd as lines_returned_usd,
        mart_daily.kept_usd as mart_kept_usd,
        lines_daily.kept_usd as lines_kept_usd,
        mart_daily.unbalanced_cells
    from mart_daily
    full outer join lines_daily
        on mart_daily.revenue_date = lines_daily.revenue_date
    where
        coalesce(mart_daily.paid_usd, -1) != coalesce(lines_daily.paid_usd, -1)
        or coalesce(mart_daily.returned_usd, -1) != coalesce(lines_daily.returned_usd, -1)
        or coalesce(mart_daily.kept_usd, -1) != coalesce(lines_daily.kept_usd, -1)
        or coalesce(mart_daily.unbalanced_cells, 0) > 0
)

select * from final
