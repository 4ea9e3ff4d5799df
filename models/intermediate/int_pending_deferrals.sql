-- Deferred records (stg_ops__deferred_records) that raw has not caught up with yet: the record is absent
-- from staging or held there at a version older than the one left for the next run. Such a record is in
-- flight: its raw version may predate changes other services' loads already reflect, so the order it
-- belongs to cannot be settled (int_order_settlement). An erased customer's deferred versions are done.
with

deferred as (
    select * from {{ ref('stg_ops__deferred_records') }}
),

customers as (
    select * from {{ ref('stg_customers__customers') }}
),

erasures as (
    select * from {{ ref('stg_customers__deletions') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

orders as (
    select * from {{ ref('stg_orders__orders') }}
),

payments as (
    select * from {{ ref('stg_payments__payments') }}
),

refunds as (
    select * from {{ ref('stg_payments__refunds') }}
),

loaded as (
    select
        'customer' as record_kind,
        customer_id as record_id,
        updated_at as loaded_version_at
    from customers
    union all
    select
        'erasure' as record_kind,
        customer_id as record_id,
        erased_at as loaded_version_at
    from erasures
    union all
    select
        'product' as record_kind,
        product_id as record_id,
        updated_at as loaded_version_at
    from products
    union all
    select
        'order' as record_kind,
        order_id as record_id,
        updated_at as loaded_version_at
    from orders
    union all
    select
        'payment' as record_kind,
        payment_id as record_id,
        updated_at as loaded_version_at
    from payments
    union all
    select
        'refund' as record_kind,
        refund_id as record_id,
        updated_at as loaded_version_at
    from refunds
),

final as (
    select
        deferred.record_kind,
        deferred.record_id,
        deferred.order_id,
        deferred.deferred_version_at,
        loaded.loaded_version_at
    from deferred
    left join loaded
        on
            deferred.record_kind = loaded.record_kind
            and deferred.record_id = loaded.record_id
    left join erasures
        on
            deferred.record_kind = 'customer'
            and deferred.record_id = erasures.customer_id
    where
        (loaded.loaded_version_at is null or loaded.loaded_version_at < deferred.deferred_version_at)
        and erasures.customer_id is null
)

select * from final
