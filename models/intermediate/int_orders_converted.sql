-- Orders with their lifecycle stage and every amount converted to the reporting currency at the rate of
-- the day the order was placed (the booking rate): payments and refunds of the order use the same rate,
-- so an order's money balances exactly in USD.
with

orders as (
    select * from {{ ref('stg_orders__orders') }}
),

fx_rates as (
    select * from {{ ref('int_fx_rates') }}
),

status_stages as (
    select * from {{ ref('order_status_stages') }}
),

erased_customers as (
    select * from {{ ref('stg_customers__deletions') }}
),

priced as (
    select
        orders.*,
        fx_rates.fx_rate
    from orders
    left join fx_rates
        on
            orders.currency = fx_rates.currency
            and cast(orders.placed_at as date) >= fx_rates.valid_from
            and (fx_rates.valid_to is null or cast(orders.placed_at as date) < fx_rates.valid_to)
),

final as (
    select
        priced.order_id,
        -- an erased customer's orders stay in the books but lose the link to the person
        case when erased_customers.customer_id is null then priced.customer_id end as customer_id,
        erased_customers.customer_id is not null as is_customer_erased,
        erased_customers.erased_at as customer_erased_at,
        priced.order_status,
        status_stages.lifecycle_stage,
        status_stages.is_revenue,
        priced.currency,
        priced.fx_rate,
        priced.subtotal_amount,
        priced.discount_amount,
        priced.shipping_amount,
        priced.total_amount,
        {{ convert_amount('priced.subtotal_amount', 'priced.fx_rate') }} as subtotal_amount_usd,
        {{ convert_amount('priced.discount_amount', 'priced.fx_rate') }} as discount_amount_usd,
        {{ convert_amount('priced.shipping_amount', 'priced.fx_rate') }} as shipping_amount_usd,
        {{ convert_amount('priced.total_amount', 'priced.fx_rate') }} as total_amount_usd,
        priced.placed_at,
        priced.paid_at,
        priced.shipped_at,
        priced.delivered_at,
        priced.cancelled_at,
        priced.returned_at,
        priced.updated_at,
        priced.shipping_country_code
    from priced
    left join status_stages
        on priced.order_status = status_stages.status
    left join erased_customers
        on priced.customer_id = erased_customers.customer_id
)

select * from final
