-- Daily sales of paid orders by shipping country and product category, in USD, on the day the orders were
-- placed. A paid order is one that reached `paid` (paid_at set: paid, shipped, delivered or returned),
-- the one definition of "paid" across the marts. Amounts are gross line values: before the order-level
-- discount and shipping (fct_orders carries those, and the money actually paid and refunded). Returned
-- orders are split out; kept = paid minus returned. Built from the published facts, so it holds settled
-- orders only (docs/consistency.md).
with

order_items as (
    select * from {{ ref('fct_order_items') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

products as (
    select * from {{ ref('dim_products') }}
),

regions as (
    select * from {{ ref('country_regions') }}
),

paid_lines as (
    select
        order_items.placed_date as revenue_date,
        orders.shipping_country_code as country_code,
        coalesce(regions.region, 'Unknown') as region,
        coalesce(products.category_name, 'Unknown') as category_name,
        order_items.order_id,
        orders.returned_at is not null as is_returned,
        order_items.quantity,
        order_items.line_amount_usd
    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    left join products
        on order_items.product_id = products.product_id
    left join regions
        on orders.shipping_country_code = regions.country_code
    where orders.paid_at is not null
),

final as (
    select
        revenue_date,
        country_code,
        region,
        category_name,
        count(distinct order_id) as paid_order_count,
        count(distinct order_id) filter (where is_returned) as returned_order_count,
        cast(sum(quantity) as bigint) as paid_units,
        cast(sum(line_amount_usd) as decimal(18, 2)) as paid_gross_amount_usd,
        cast(coalesce(sum(line_amount_usd) filter (where is_returned), 0) as decimal(18, 2))
            as returned_gross_amount_usd,
        cast(coalesce(sum(line_amount_usd) filter (where not is_returned), 0) as decimal(18, 2))
            as kept_gross_amount_usd
    from paid_lines
    group by revenue_date, country_code, region, category_name
)

select * from final
