-- An order that reached `paid` has succeeded payments summing exactly to its total (in the order
-- currency, where no conversion rounding can blur it); an order that never reached paid has none, and
-- refunds never exceed what was paid. Over the published (settled) orders and their payments: a payment
-- loaded before its order turned paid in raw is not published until both have (docs/consistency.md).
with

orders as (
    select * from {{ ref('fct_orders') }}
),

payments as (
    select * from {{ ref('fct_payments') }}
),

paid as (
    select
        order_id,
        coalesce(sum(paid_amount), 0) as paid_amount,
        coalesce(sum(refunded_amount), 0) as refunded_amount
    from payments
    group by order_id
),

final as (
    select
        orders.order_id,
        orders.order_status,
        orders.total_amount_order_currency,
        coalesce(paid.paid_amount, 0) as paid_amount,
        coalesce(paid.refunded_amount, 0) as refunded_amount
    from orders
    left join paid
        on orders.order_id = paid.order_id
    where
        (orders.paid_at is not null and coalesce(paid.paid_amount, 0) != orders.total_amount_order_currency)
        or (orders.paid_at is null and coalesce(paid.paid_amount, 0) != 0)
        or coalesce(paid.refunded_amount, 0) > coalesce(paid.paid_amount, 0)
)

select * from final
