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
        cast(email as {{ dbt.type_string() }}) as email,
        cast(first_name as {{ dbt.type_string() }}) as first_name,
        cast(last_name as {{ dbt.type_string() }}) as last_name,
        cast(phone as {{ dbt.type_string() }}) as phone,
        upper(cast(country as {{ dbt.type_string() }})) as country_code,
        cast(marketing_opt_in as boolean) as has_marketing_opt_in,
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        {{ to_utc(column_or_null(raw, 'deleted_at')) }} as deleted_at,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
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
