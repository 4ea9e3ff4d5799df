-- Per order: its last change in any service (the order itself, its payments and refunds, its customer's
-- erasure) and whether that change is settled, i.e. older than the consistent cut (int_settled_horizon):
-- then every service's load holds the order's whole state as of that change. The cross-service marts
-- publish settled orders only; an order in flight keeps its last settled version there.
with

orders as (
    select * from {{ ref('int_orders_converted') }}
),

money as (
    select * from {{ ref('int_order_payments_netted') }}
),

horizon as (
    select * from {{ ref('int_settled_horizon') }}
),

changes as (
    select
        orders.order_id,
        orders.is_customer_erased,
        greatest(orders.updated_at, money.money_updated_at, orders.customer_erased_at) as last_changed_at
    from orders
    inner join money
        on orders.order_id = money.order_id
),

final as (
    select
        changes.order_id,
        changes.is_customer_erased,
        changes.last_changed_at,
        coalesce(changes.last_changed_at < horizon.settled_before, false) as is_settled
    from changes
    cross join horizon
)

select * from final
