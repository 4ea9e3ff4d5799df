-- Per order: its last change in any service (the order itself, its payments and refunds, its customer's
-- erasure, and any version of them a loader left for its next run) and whether that change is settled:
-- older than the consistent cut (int_settled_horizon), with the customer and products it refers to in
-- the loads. Then every service's load holds the order's whole state as of that change. The
-- cross-service marts publish settled orders only; an order in flight keeps its last settled version.
with

orders as (
    select * from {{ ref('int_orders_converted') }}
),

money as (
    select * from {{ ref('int_order_payments_netted') }}
),

lines as (
    select * from {{ ref('int_order_lines_priced') }}
),

customers as (
    select * from {{ ref('stg_customers__customers') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

pending as (
    select * from {{ ref('int_pending_deferrals') }}
),

horizon as (
    select * from {{ ref('int_settled_horizon') }}
),

pending_per_order as (
    select
        order_id,
        max(deferred_version_at) as pending_version_at
    from pending
    where order_id is not null
    group by order_id
),

missing_products as (
    select
        lines.order_id,
        count(*) as missing_product_count
    from lines
    left join products
        on lines.product_id = products.product_id
    where products.product_id is null
    group by lines.order_id
),

changes as (
    select
        orders.order_id,
        orders.is_customer_erased,
        greatest(
            orders.updated_at, money.money_updated_at, orders.customer_erased_at, pending_per_order.pending_version_at
        ) as last_changed_at,
        pending_per_order.pending_version_at is not null as has_pending_version,
        (orders.customer_id is null or customers.customer_id is not null)
        and missing_products.order_id is null as has_references
    from orders
    inner join money
        on orders.order_id = money.order_id
    left join pending_per_order
        on orders.order_id = pending_per_order.order_id
    left join customers
        on orders.customer_id = customers.customer_id
    left join missing_products
        on orders.order_id = missing_products.order_id
),

final as (
    select
        changes.order_id,
        changes.is_customer_erased,
        changes.last_changed_at,
        changes.has_pending_version,
        changes.has_references,
        coalesce(changes.last_changed_at < horizon.settled_before, false) and changes.has_references
            as is_settled
    from changes
    cross join horizon
)

select * from final
