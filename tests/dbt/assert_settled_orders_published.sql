-- The cross-service facts publish exactly the settled orders (docs/consistency.md): every settled order
-- is in fct_orders at its current version, with all its lines in fct_order_items and all its payment
-- attempts in fct_payments; no published version is newer than what the loads hold (an order in flight
-- is there at an older, settled version, or not yet); nothing is published for an order the loads do
-- not hold.
with

settlement as (
    select * from {{ ref('int_order_settlement') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

order_items as (
    select * from {{ ref('fct_order_items') }}
),

payments as (
    select * from {{ ref('fct_payments') }}
),

source_lines as (
    select * from {{ ref('int_order_lines_priced') }}
),

source_payments as (
    select * from {{ ref('int_payments_converted') }}
),

published_lines as (
    select
        order_id,
        count(*) as line_count
    from order_items
    group by order_id
),

expected_lines as (
    select
        order_id,
        count(*) as line_count
    from source_lines
    group by order_id
),

published_payments as (
    select
        order_id,
        count(*) as payment_count
    from payments
    group by order_id
),

expected_payments as (
    select
        order_id,
        count(*) as payment_count
    from source_payments
    group by order_id
),

checked as (
    select
        coalesce(settlement.order_id, orders.order_id) as order_id,
        settlement.is_settled,
        settlement.last_changed_at,
        orders.source_updated_at as published_change_at,
        case
            when settlement.order_id is null then 'published but not in the loads'
            when settlement.is_settled and orders.order_id is null then 'settled but not published'
            when settlement.is_settled and orders.source_updated_at != settlement.last_changed_at
                then 'settled at a newer change than published'
            when orders.source_updated_at > settlement.last_changed_at
                then 'published at a change newer than the loads hold'
            when
                settlement.is_settled
                and coalesce(published_lines.line_count, 0) != coalesce(expected_lines.line_count, 0)
                then 'settled with lines missing from fct_order_items'
            when
                settlement.is_settled
                and coalesce(published_payments.payment_count, 0)
                != coalesce(expected_payments.payment_count, 0)
                then 'settled with payments missing from fct_payments'
        end as problem
    from settlement
    full outer join orders
        on settlement.order_id = orders.order_id
    left join published_lines
        on settlement.order_id = published_lines.order_id
    left join expected_lines
        on settlement.order_id = expected_lines.order_id
    left join published_payments
        on settlement.order_id = published_payments.order_id
    left join expected_payments
        on settlement.order_id = expected_payments.order_id
),

final as (
    select * from checked
    where problem is not null
)

select * from final
