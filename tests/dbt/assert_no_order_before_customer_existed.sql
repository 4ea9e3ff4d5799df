-- No order was placed before its customer signed up.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

final as (
    select
        orders.order_id,
        orders.customer_id,
        orders.placed_at,
        customers.created_at as customer_created_at
    from orders
    inner join customers
        on orders.customer_id = customers.customer_id
    where orders.placed_at < customers.created_at
)

select * from final
