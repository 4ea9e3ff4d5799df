-- One row per customer (soft-deleted ones flagged, erased ones gone) with their order history as
-- published in fct_orders (settled orders: docs/consistency.md): orders placed, orders paid (reached
-- `paid`, the marts' one definition: paid, shipped, delivered or returned) and lifetime net paid.
-- No personal data: the e-mail is a keyed hash (macros/pii_hash.sql) usable as a join key across
-- exports; names, phone and street addresses are dropped.
with

customers as (
    select * from {{ ref('stg_customers__customers') }}
),

regions as (
    select * from {{ ref('country_regions') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

order_history as (
    select
        customer_id,
        count(*) as order_count,
        count(*) filter (where paid_at is not null) as paid_order_count,
        min(placed_at) as first_order_at,
        max(placed_at) as last_order_at,
        sum(net_paid_amount_usd) as lifetime_net_paid_usd
    from orders
    where customer_id is not null
    group by customer_id
),

joined as (
    select
        customers.customer_id,
        {{ pii_hash('customers.email') }} as email_hash,
        customers.country_code,
        regions.region,
        customers.has_marketing_opt_in,
        customers.is_deleted,
        customers.created_at,
        customers.updated_at,
        customers.deleted_at,
        coalesce(order_history.order_count, 0) as order_count,
        coalesce(order_history.paid_order_count, 0) as paid_order_count,
        order_history.first_order_at,
        order_history.last_order_at,
        cast(coalesce(order_history.lifetime_net_paid_usd, 0) as decimal(18, 2)) as lifetime_net_paid_usd
    from customers
    left join regions
        on customers.country_code = regions.country_code
    left join order_history
        on customers.customer_id = order_history.customer_id
),

final as (
    select
        *,
        case
            when order_count = 0 then 'prospect'
            when lifetime_net_paid_usd >= 1000 or paid_order_count >= 5 then 'vip'
            when paid_order_count >= 2 then 'repeat'
            when paid_order_count = 1 then 'one_time'
            else 'unpaid'
        end as customer_segment
    from joined
)

select * from final
