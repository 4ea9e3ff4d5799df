{{
    config(
        materialized='incremental',
        unique_key='order_item_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        partition_by=('placed_month' if target.type == 'spark' else none),
    )
}}
-- One row per order line of a settled order (fct_orders' rule: int_order_settlement), priced in the order
-- currency and in USD. Product attributes live in dim_products (join on product_id), so a renamed
-- category never leaves stale copies here. Incremental: a line is (re)written when its order is settled
-- and this table does not hold the line at that version; a line of an order in flight keeps the version
-- of the order's last settled state.
with

lines as (
    select * from {{ ref('int_order_lines_priced') }}
),

settlement as (
    select * from {{ ref('int_order_settlement') }}
),

changed as (
    select
        lines.*,
        greatest(lines.order_updated_at, lines.customer_erased_at) as source_updated_at
    from lines
    inner join settlement
        on lines.order_id = settlement.order_id
    where settlement.is_settled
),

new_versions as (
    select * from changed
    -- a line of a settled order this table does not hold at that version
    where {{ not_held_at_version('order_item_id', 'changed') }}
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
    from new_versions
)

select * from final
