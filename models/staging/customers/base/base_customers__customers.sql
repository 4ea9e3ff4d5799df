{%- set raw = source('customers', 'customers') -%}
-- Customers as the service holds them: committed loads only, typed and renamed, the latest version per
-- customer. Erasures are applied in staging (stg_customers__customers), not here.
with

source as (
    select * from {{ raw }}
    where {{ committed_loads('customers') }}
),

renamed as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(email as varchar) as email,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(phone as varchar) as phone,
        upper(cast(country as varchar)) as country_code,
        cast(marketing_opt_in as boolean) as has_marketing_opt_in,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        {{ to_utc(column_or_null(raw, 'deleted_at')) }} as deleted_at,
        cast(_dlt_load_id as varchar) as load_id
    from source
),

latest as (
    select * from renamed
    qualify row_number() over (
        partition by customer_id
        order by updated_at desc, {{ load_order('load_id') }} desc
    ) = 1
),

final as (
    select
        customer_id,
        email,
        first_name,
        last_name,
        phone,
        country_code,
        has_marketing_opt_in,
        created_at,
        updated_at,
        deleted_at,
        deleted_at is not null as is_deleted,
        load_id
    from latest
)

select * from final
