-- Every delivered order was shipped first: a delivery time implies an earlier (or equal) shipping time,
-- and the statuses past `shipped` carry both.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

final as (
    select
        order_id,
        order_status,
        shipped_at,
        delivered_at
    from orders
    where
        (delivered_at is not null and (shipped_at is null or shipped_at > delivered_at))
        or (order_status = 'delivered' and delivered_at is null)
        or (order_status in ('shipped', 'delivered') and shipped_at is null)
)

select * from final
