-- The erasure feed (hard deletes): committed loads only, typed, the latest erasure per customer.
with

source as (
    select *
    from {{ source_or_empty('customers', 'deletions', {
        'customer_id': 'bigint', 'deleted_at': 'timestamptz', '_dlt_load_id': 'varchar',
    }) }}
    where {{ committed_loads('customers') }}
),

renamed as (
    select
        cast(customer_id as bigint) as customer_id,
        {{ to_utc('deleted_at') }} as erased_at,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

final as (
    select
        customer_id,
        erased_at,
        load_id
    from renamed
    qualify row_number() over (
        partition by customer_id
        order by erased_at desc, {{ load_order('load_id') }} desc
    ) = 1
)

select * from final
