-- Order lines priced in the order currency (minor units → amounts with the currency's exponent) and
-- converted to USD at the order's booking rate.
with

order_items as (
    select * from {{ ref('stg_orders__order_items') }}
),

orders as (
    select * from {{ ref('int_orders_converted') }}
),

priced as (
    select
        order_items.order_item_id,
        order_items.order_id,
        order_items.line_number,
        order_items.product_id,
        order_items.sku,
        order_items.quantity,
        orders.currency,
        orders.fx_rate,
        {{ minor_to_amount('order_items.unit_price_minor', 'orders.currency') }} as unit_price,
        {{ minor_to_amount('order_items.unit_price_minor * order_items.quantity', 'orders.currency') }}
            as line_amount,
        orders.placed_at,
        orders.updated_at as order_updated_at,
        orders.customer_erased_at
    from order_items
    inner join orders
        on order_items.order_id = orders.order_id
),

final as (
    select
        order_item_id,
        order_id,
        line_number,
        product_id,
        sku,
        quantity,
        currency,
        fx_rate,
        unit_price,
        line_amount,
        {{ convert_amount('unit_price', 'fx_rate') }} as unit_price_usd,
        {{ convert_amount('line_amount', 'fx_rate') }} as line_amount_usd,
        placed_at,
        order_updated_at,
        customer_erased_at
    from priced
)

select * from final
