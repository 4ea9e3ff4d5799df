-- The erasure feed as the rest of the project reads it: one row per erased customer. The typed, deduplicated
-- rows live in the base model so that customers and addresses can anti-join them inside staging.
with

erased as (
    select * from {{ ref('base_customers__deletions') }}
),

final as (
    select
        customer_id,
        erased_at,
        load_id
    from erased
)

select * from final
