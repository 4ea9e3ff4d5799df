-- Daily booked revenue by shipping country and product category, in USD. Counts lines of orders whose
-- status is revenue (paid, shipped, delivered: see seeds/order_status_stages.csv) on the day they were
-- placed. Product revenue is before order-level discounts and shipping, which fct_orders carries.
with

order_items as (
    select * from {{ ref('fct_order_items') }}
),

orders as (
    select * from {{ ref('int_orders_converted') }}
),

products as (
    select * from {{ ref('dim_products') }}
),

regions as (
    select * from {{ ref('country_regions') }}
),

revenue_lines as (
    select
        order_items.placed_date as revenue_date,
        orders.shipping_country_code as country_code,
        coalesce(regions.region, 'Unknown') as region,
        coalesce(products.category_name, 'Unknown') as category_name,
        order_items.order_id,
        order_items.quantity,
        order_items.line_amount_usd
    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
    left join products
        on order_items.product_id = products.product_id
    left join regions
        on orders.shipping_country_code = regions.country_code
    where orders.is_revenue
),

final as (
    select
        revenue_date,
        country_code,
        region,
        category_name,
        count(distinct order_id) as order_count,
        cast(sum(quantity) as bigint) as units_sold,
        cast(sum(line_amount_usd) as decimal(18, 2)) as revenue_usd
    from revenue_lines
    group by revenue_date, country_code, region, category_name
)

select * from final
