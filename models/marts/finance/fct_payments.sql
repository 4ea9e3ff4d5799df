{{
    config(
        materialized='incremental',
        unique_key='payment_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- One row per payment attempt (succeeded or failed) with the refunds issued against it, in the payment
-- currency and in USD at the order's booking rate.
with

payments as (
    select * from {{ ref('int_payments_converted') }}
),

changed as (
    select * from payments
    {% if is_incremental() -%}
        where source_updated_at >= (
            select max(existing.source_updated_at) - to_days({{ var('incremental_lookback_days') }})
            from {{ this }} as existing
        )
    {%- endif %}
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
        amount,
        amount_usd,
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
