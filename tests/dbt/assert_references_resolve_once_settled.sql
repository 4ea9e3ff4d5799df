-- References across services resolve for every record the consistent cut has settled (docs/consistency.md):
-- a payment or refund stamped before settled_before has its order in the orders load, an order line of
-- such an order has its product in the catalog load, and such an order's customer is in the customers
-- load (or was erased). The one exception is a referent the loaders saw and left for their next run
-- (int_pending_deferrals): it changed again after the run's cutoff and raw has no version of it yet.
-- Records stamped after the cut may still be waiting for another service's next load; the marts do not
-- publish them yet.
with

horizon as (
    select * from {{ ref('int_settled_horizon') }}
),

orders as (
    select * from {{ ref('stg_orders__orders') }}
),

order_items as (
    select * from {{ ref('stg_orders__order_items') }}
),

payments as (
    select * from {{ ref('stg_payments__payments') }}
),

refunds as (
    select * from {{ ref('stg_payments__refunds') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

customers as (
    select * from {{ ref('stg_customers__customers') }}
),

erased as (
    select * from {{ ref('stg_customers__deletions') }}
),

pending as (
    select * from {{ ref('int_pending_deferrals') }}
),

settled_orders as (
    select orders.*
    from orders
    cross join horizon
    where orders.updated_at < horizon.settled_before
),

payments_without_order as (
    select
        'payment' as record_kind,
        payments.payment_id as record_id,
        'order' as missing_kind,
        payments.order_id as missing_id
    from payments
    cross join horizon
    left join orders
        on payments.order_id = orders.order_id
    left join pending
        on pending.record_kind = 'order' and payments.order_id = pending.record_id
    where payments.updated_at < horizon.settled_before and orders.order_id is null and pending.record_id is null
),

refunds_without_order as (
    select
        'refund' as record_kind,
        refunds.refund_id as record_id,
        'order' as missing_kind,
        refunds.order_id as missing_id
    from refunds
    cross join horizon
    left join orders
        on refunds.order_id = orders.order_id
    left join pending
        on pending.record_kind = 'order' and refunds.order_id = pending.record_id
    where refunds.updated_at < horizon.settled_before and orders.order_id is null and pending.record_id is null
),

lines_without_product as (
    select
        'order line' as record_kind,
        order_items.order_id as record_id,
        'product' as missing_kind,
        order_items.product_id as missing_id
    from order_items
    inner join settled_orders
        on order_items.order_id = settled_orders.order_id
    left join products
        on order_items.product_id = products.product_id
    left join pending
        on pending.record_kind = 'product' and order_items.product_id = pending.record_id
    where products.product_id is null and pending.record_id is null
),

orders_without_customer as (
    select
        'order' as record_kind,
        settled_orders.order_id as record_id,
        'customer' as missing_kind,
        settled_orders.customer_id as missing_id
    from settled_orders
    left join customers
        on settled_orders.customer_id = customers.customer_id
    left join erased
        on settled_orders.customer_id = erased.customer_id
    left join pending
        -- a customer changed or erased after the run's cutoff, whom raw has no version of yet
        on pending.record_kind in ('customer', 'erasure') and settled_orders.customer_id = pending.record_id
    where customers.customer_id is null and erased.customer_id is null and pending.record_id is null
),

final as (
    select * from payments_without_order
    union all
    select * from refunds_without_order
    union all
    select * from lines_without_product
    union all
    select * from orders_without_customer
)

select * from final
