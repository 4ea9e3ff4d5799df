-- Payment attempts in USD at their order's booking rate, with each payment's refunds attached (converted
-- once, in int_refunds_converted, and summed here as the order-level netting sums them).
with

payments as (
    select * from {{ ref('stg_payments__payments') }}
),

refunds as (
    select * from {{ ref('int_refunds_converted') }}
),

orders as (
    select * from {{ ref('int_orders_converted') }}
),

refunds_per_payment as (
    select
        payment_id,
        count(*) as refund_count,
        sum(amount) as refunded_amount,
        sum(amount_usd) as refunded_amount_usd,
        max(updated_at) as last_refund_updated_at
    from refunds
    group by payment_id
),

final as (
    select
        payments.payment_id,
        payments.order_id,
        payments.payment_method,
        payments.payment_status,
        payments.failure_reason,
        payments.currency,
        orders.fx_rate,
        payments.amount,
        {{ convert_amount('payments.amount', 'orders.fx_rate') }} as amount_usd,
        coalesce(refunds_per_payment.refund_count, 0) as refund_count,
        cast(coalesce(refunds_per_payment.refunded_amount, 0) as decimal(20, 4)) as refunded_amount,
        cast(coalesce(refunds_per_payment.refunded_amount_usd, 0) as decimal(18, 2)) as refunded_amount_usd,
        payments.created_at,
        greatest(payments.updated_at, refunds_per_payment.last_refund_updated_at) as source_updated_at
    from payments
    left join orders
        on payments.order_id = orders.order_id
    left join refunds_per_payment
        on payments.payment_id = refunds_per_payment.payment_id
)

select * from final
