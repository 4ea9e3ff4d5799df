with

customers as (
    select * from {{ ref('base_customers__customers') }}
),

erased as (
    select * from {{ ref('base_customers__deletions') }}
),

final as (
    select
        customers.customer_id,
        customers.email,
        customers.first_name,
        customers.last_name,
        customers.phone,
        customers.country_code,
        customers.has_marketing_opt_in,
        customers.created_at,
        customers.updated_at,
        customers.deleted_at,
        customers.is_deleted,
        customers.load_id
    from customers
    left join erased
        on customers.customer_id = erased.customer_id
    -- erased (hard-deleted) customers are gone for good, even if an old version is still in raw
    where erased.customer_id is null
)

select * from final
