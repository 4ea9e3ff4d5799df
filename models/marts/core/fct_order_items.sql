{{
    config(
        materialized='incremental',
        unique_key='order_item_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
-- One row per order line, priced in the order currency and in USD. Product attributes live in
-- dim_products (join on product_id), so a renamed category never leaves stale copies here.
with

lines as (
    select * from {{ ref('int_order_lines_priced') }}
),

changed as (
    select
        *,
        greatest(order_updated_at, customer_erased_at) as source_updated_at
    from lines
    {% if is_incremental() -%}
        where greatest(order_updated_at, customer_erased_at) >= (
            select max(existing.source_updated_at) - to_days({{ var('incremental_lookback_days') }})
            from {{ this }} as existing
        )
    {%- endif %}
),

final as (
    select
        order_item_id,
        order_id,
        line_number,
        product_id,
        sku,
        quantity,
        currency,
        fx_rate,
        unit_price,
        line_amount,
        unit_price_usd,
        line_amount_usd,
        placed_at,
        cast(placed_at as date) as placed_date,
        cast(date_trunc('month', placed_at) as date) as placed_month,
        source_updated_at
    from changed
)

select * from final
