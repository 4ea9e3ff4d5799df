{{
    config(
        materialized='incremental',
        unique_key='payment_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        partition_by=('created_month' if target.type == 'spark' else none),
    )
}}
-- One row per payment attempt (succeeded or failed) of a settled order (fct_orders' rule:
-- int_order_settlement), with the refunds issued against it, in the payment currency and in USD at the
-- order's booking rate. An attempt's amount counts as paid only when it succeeded. Incremental: an
-- attempt is (re)written when its order is settled and this table does not hold it at that version; an
-- order in flight keeps the attempts of its last settled state.
with

payments as (
    select * from {{ ref('int_payments_converted') }}
),

settlement as (
    select * from {{ ref('int_order_settlement') }}
),

settled as (
    select payments.*
    from payments
    inner join settlement
        on payments.order_id = settlement.order_id
    where settlement.is_settled
),

changed as (
    select * from settled
    -- an attempt of a settled order this table does not hold at that version (payment or refunds)
    where {{ not_held_at_version('payment_id', 'settled') }}
),

final as (
    select
        payment_id,
        order_id,
        payment_method,
        payment_status,
        failure_reason,
        currency,
        fx_rate,
        amount as attempted_amount,
        amount_usd as attempted_amount_usd,
        cast(case when payment_status = 'succeeded' then amount else 0 end as decimal(20, 4)) as paid_amount,
        cast(case when payment_status = 'succeeded' then amount_usd else 0 end as decimal(18, 2))
            as paid_amount_usd,
        refund_count,
        refunded_amount,
        refunded_amount_usd,
        created_at,
        cast(created_at as date) as created_date,
        cast(date_trunc('month', created_at) as date) as created_month,
        source_updated_at
    from changed
)

select * from final
