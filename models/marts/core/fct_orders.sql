{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        partition_by=('placed_month' if target.type == 'spark' else none),
    )
}}
-- One row per settled order: money in USD at the booking rate (gross, discount, shipping, total due,
-- paid, refunded, net paid), status and lifecycle stage, timings. An order is published once every
-- service's load has passed its last change (int_order_settlement, docs/consistency.md); while a newer
-- change is in flight the order keeps its last settled version here, except that a customer's erasure
-- applies at once. Incremental: an order is (re)written when it is settled at a version this table does
-- not hold (no high-water mark: an order can settle late with an old stamp, once its customer or products
-- reach the loads).
with

orders as (
    select * from {{ ref('int_orders_converted') }}
),

money as (
    select * from {{ ref('int_order_payments_netted') }}
),

settlement as (
    select * from {{ ref('int_order_settlement') }}
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
        settlement.last_changed_at as source_updated_at
    from orders
    inner join money
        on orders.order_id = money.order_id
    inner join settlement
        on orders.order_id = settlement.order_id
    where settlement.is_settled
),

changed as (
    select * from joined
    -- a settled order this table does not hold at that version (new, or settled at a newer change)
    where {{ not_held_at_version('order_id', 'joined') }}
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
        {{ rounded_ratio(shop_date_diff('second', 'placed_at', 'paid_at'), 3600, 2) }} as hours_to_pay,
        {{ rounded_ratio(shop_date_diff('second', 'placed_at', 'shipped_at'), 3600, 2) }} as hours_to_ship,
        {{ rounded_ratio(shop_date_diff('second', 'placed_at', 'delivered_at'), 3600, 2) }}
            as hours_to_deliver,
        source_updated_at
    from changed
),

{% if is_incremental() -%}
    -- in flight, the order's last settled version stays; an erasure since then unlinks the customer now
    erased_in_flight as (
        select {{ shop_star_replace(
            'existing', this, {'customer_id': 'cast(null as bigint)', 'is_customer_erased': 'true'}
        ) }}
        from {{ this }} as existing
        inner join settlement
            on existing.order_id = settlement.order_id
        where
            not settlement.is_settled
            and settlement.is_customer_erased
            and existing.customer_id is not null
    ),

{% endif -%}

published as (
    select * from final
    {% if is_incremental() -%}
        union all
        select * from erased_in_flight
    {%- endif %}
)

select * from published
