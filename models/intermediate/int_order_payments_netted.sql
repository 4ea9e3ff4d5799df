-- Per order: what was paid (succeeded attempts only), what was refunded, and the net, in the order
-- currency and in USD; plus attempt counts and the latest change, which drives fct_orders' increments.
with

payments as (
    select * from {{ ref('int_payments_converted') }}
),

refunds as (
    select * from {{ ref('int_refunds_converted') }}
),

orders as (
    select * from {{ ref('int_orders_converted') }}
),

payment_totals as (
    select
        order_id,
        count(*) as payment_attempts,
        count(*) filter (where payment_status = 'failed') as failed_payment_attempts,
        coalesce(sum(amount) filter (where payment_status = 'succeeded'), 0) as paid_amount,
        coalesce(sum(amount_usd) filter (where payment_status = 'succeeded'), 0) as paid_amount_usd,
        min(created_at) filter (where payment_status = 'succeeded') as first_payment_at,
        max(source_updated_at) as payments_updated_at
    from payments
    group by order_id
),

refund_totals as (
    select
        order_id,
        count(*) as refund_count,
        sum(amount) as refunded_amount,
        sum(amount_usd) as refunded_amount_usd,
        max(updated_at) as refunds_updated_at
    from refunds
    group by order_id
),

final as (
    select
        orders.order_id,
        coalesce(payment_totals.payment_attempts, 0) as payment_attempts,
        coalesce(payment_totals.failed_payment_attempts, 0) as failed_payment_attempts,
        coalesce(refund_totals.refund_count, 0) as refund_count,
        cast(coalesce(payment_totals.paid_amount, 0) as decimal(20, 4)) as paid_amount,
        cast(coalesce(refund_totals.refunded_amount, 0) as decimal(20, 4)) as refunded_amount,
        cast(
            coalesce(payment_totals.paid_amount, 0) - coalesce(refund_totals.refunded_amount, 0) as decimal(20, 4)
        ) as net_paid_amount,
        cast(coalesce(payment_totals.paid_amount_usd, 0) as decimal(18, 2)) as paid_amount_usd,
        cast(coalesce(refund_totals.refunded_amount_usd, 0) as decimal(18, 2)) as refunded_amount_usd,
        cast(
            coalesce(payment_totals.paid_amount_usd, 0) - coalesce(refund_totals.refunded_amount_usd, 0)
            as decimal(18, 2)
        ) as net_paid_amount_usd,
        payment_totals.first_payment_at,
        greatest(payment_totals.payments_updated_at, refund_totals.refunds_updated_at) as money_updated_at
    from orders
    left join payment_totals
        on orders.order_id = payment_totals.order_id
    left join refund_totals
        on orders.order_id = refund_totals.order_id
)

select * from final
