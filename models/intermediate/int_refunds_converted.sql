-- Refunds in USD at their order's booking rate, one row per refund. The one place a refund is converted:
-- each refund is rounded to the cent on its own and only then summed (per payment in int_payments_converted,
-- per order in int_order_payments_netted), so both totals agree to the cent.
with

refunds as (
    select * from {{ ref('stg_payments__refunds') }}
),

orders as (
    select * from {{ ref('int_orders_converted') }}
),

final as (
    select
        refunds.refund_id,
        refunds.payment_id,
        refunds.order_id,
        refunds.currency,
        orders.fx_rate,
        refunds.amount,
        {{ convert_amount('refunds.amount', 'orders.fx_rate') }} as amount_usd,
        refunds.updated_at
    from refunds
    -- a refund of an order staging does not hold (not yet loaded, or its customer erased) waits for it
    inner join orders
        on refunds.order_id = orders.order_id
)

select * from final
