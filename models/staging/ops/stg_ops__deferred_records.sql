-- The newest version per record that a loader run saw but left for the next run (at or after its cutoff):
-- raw holds an older version of such a record, or none yet. One row per record; the order it belongs
-- to for orders, payments and refunds. Committed loads only.
with

customers as (
    select * from {{ source_or_empty('customers_deferred', 'customers__deferred', {
        'customer_id': 'bigint', 'updated_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('customers') }}
),

deletions as (
    select * from {{ source_or_empty('customers_deferred', 'deletions__deferred', {
        'customer_id': 'bigint', 'deleted_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('customers') }}
),

products as (
    select * from {{ source_or_empty('catalog_deferred', 'products__deferred', {
        'product_id': 'bigint', 'updated_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('catalog') }}
),

orders as (
    select * from {{ source_or_empty('orders_deferred', 'orders__deferred', {
        'order_id': 'bigint', 'updated_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('orders') }}
),

payments as (
    select * from {{ source_or_empty('payments_deferred', 'payments__deferred', {
        'payment_id': 'bigint', 'order_id': 'bigint', 'updated_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('payments') }}
),

refunds as (
    select * from {{ source_or_empty('payments_deferred', 'refunds__deferred', {
        'refund_id': 'bigint', 'order_id': 'bigint', 'updated_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('payments') }}
),

unioned as (
    select
        'customer' as record_kind,
        cast(customer_id as bigint) as record_id,
        cast(null as bigint) as order_id,
        {{ to_utc('updated_at') }} as deferred_version_at
    from customers
    union all
    select
        'erasure' as record_kind,
        cast(customer_id as bigint) as record_id,
        cast(null as bigint) as order_id,
        {{ to_utc('deleted_at') }} as deferred_version_at
    from deletions
    union all
    select
        'product' as record_kind,
        cast(product_id as bigint) as record_id,
        cast(null as bigint) as order_id,
        {{ to_utc('updated_at') }} as deferred_version_at
    from products
    union all
    select
        'order' as record_kind,
        cast(order_id as bigint) as record_id,
        cast(order_id as bigint) as order_id,
        {{ to_utc('updated_at') }} as deferred_version_at
    from orders
    union all
    select
        'payment' as record_kind,
        cast(payment_id as bigint) as record_id,
        cast(order_id as bigint) as order_id,
        {{ to_utc('updated_at') }} as deferred_version_at
    from payments
    union all
    select
        'refund' as record_kind,
        cast(refund_id as bigint) as record_id,
        cast(order_id as bigint) as order_id,
        {{ to_utc('updated_at') }} as deferred_version_at
    from refunds
),

final as (
    select
        record_kind,
        record_id,
        order_id,
        deferred_version_at
    from unioned
    qualify row_number() over (
        partition by record_kind, record_id order by deferred_version_at desc
    ) = 1
)

select * from final
