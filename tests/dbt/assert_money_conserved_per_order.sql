-- Money is conserved: for every published order, its succeeded payments minus the refunds against them
-- (as published in fct_payments) equal the order's net paid amount in fct_orders, to the cent. Both hold
-- settled orders only (docs/consistency.md), so this holds strictly while the sources keep changing.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

payments as (
    select * from {{ ref('fct_payments') }}
),

payment_money as (
    select
        order_id,
        sum(paid_amount_usd) as paid_usd,
        sum(refunded_amount_usd) as refunded_usd
    from payments
    group by order_id
),

final as (
    select
        orders.order_id,
        orders.net_paid_amount_usd,
        coalesce(payment_money.paid_usd, 0) - coalesce(payment_money.refunded_usd, 0) as payments_net_usd
    from orders
    left join payment_money
        on orders.order_id = payment_money.order_id
    where
        orders.net_paid_amount_usd
        != coalesce(payment_money.paid_usd, 0) - coalesce(payment_money.refunded_usd, 0)
)

select * from final
