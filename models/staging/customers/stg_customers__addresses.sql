with

addresses as (
    select * from {{ ref('base_customers__addresses') }}
),

erased as (
    select * from {{ ref('base_customers__deletions') }}
),

final as (
    select
        addresses.address_id,
        addresses.customer_id,
        addresses.address_kind,
        addresses.street_line_1,
        addresses.street_line_2,
        addresses.city,
        addresses.postal_code,
        addresses.country_code,
        addresses.is_default,
        addresses.load_id
    from addresses
    left join erased
        on addresses.customer_id = erased.customer_id
    -- erased (hard-deleted) customers are gone for good, even if an old version is still in raw
    where erased.customer_id is null
)

select * from final
