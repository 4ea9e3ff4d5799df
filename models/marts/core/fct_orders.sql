{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- One row per order: money in USD at the booking rate (gross, discount, shipping, total, paid, refunded,
-- net), status and lifecycle stage, timings. Incremental: an order is rebuilt when it, its payments or
-- refunds, or its customer's erasure changed since the last build (minus a look-back for late commits).
with

orders as (
    select * from {{ ref('int_orders_converted') }}
),

money as (
    select * from {{ ref('int_order_payments_netted') }}
),

joined as (
    select
        orders.*,
        money.payment_attempts,
        money.failed_payment_attempts,
        money.refund_count,
        money.paid_amount_usd,
        money.refunded_amount_usd,
        money.net_paid_amount_usd,
        money.first_payment_at,
        greatest(orders.updated_at, money.money_updated_at, orders.customer_erased_at) as source_updated_at
    from orders
    inner join money
        on orders.order_id = money.order_id
),

changed as (
    select * from joined
    {% if is_incremental() -%}
        where source_updated_at >= (
            select max(existing.source_updated_at) - to_days({{ var('incremental_lookback_days') }})
            from {{ this }} as existing
        )
    {%- endif %}
),

final as (
    select
        order_id,
        customer_id,
        is_customer_erased,
        order_status,
        lifecycle_stage,
        shipping_country_code,
        currency,
        fx_rate,
        subtotal_amount_usd as gross_amount_usd,
        discount_amount_usd,
        shipping_amount_usd,
        total_amount_usd,
        paid_amount_usd,
        refunded_amount_usd,
        net_paid_amount_usd,
        total_amount as total_amount_order_currency,
        payment_attempts,
        failed_payment_attempts,
        refund_count,
        placed_at,
        cast(placed_at as date) as placed_date,
        cast(date_trunc('month', placed_at) as date) as placed_month,
        paid_at,
        shipped_at,
        delivered_at,
        cancelled_at,
        returned_at,
        first_payment_at,
        round(date_diff('second', placed_at, paid_at) / 3600.0, 2) as hours_to_pay,
        round(date_diff('second', placed_at, shipped_at) / 3600.0, 2) as hours_to_ship,
        round(date_diff('second', placed_at, delivered_at) / 3600.0, 2) as hours_to_deliver,
        source_updated_at
    from changed
)

select * from final
