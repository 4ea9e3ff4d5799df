{%- set raw = source('customers', 'customers__addresses') -%}
-- Addresses as the service holds them: committed loads only, typed and renamed, the latest version per
-- address. Erasures are applied in staging (stg_customers__addresses), not here.
with

source as (
    select * from {{ raw }}
    where {{ committed_loads('customers') }}
),

renamed as (
    select
        cast(address_id as bigint) as address_id,
        cast(customer_id as bigint) as customer_id,
        lower(cast(kind as {{ dbt.type_string() }})) as address_kind,
        cast(line1 as {{ dbt.type_string() }}) as street_line_1,
        cast({{ column_or_null(raw, 'line2') }} as {{ dbt.type_string() }}) as street_line_2,
        cast(city as {{ dbt.type_string() }}) as city,
        cast(postal_code as {{ dbt.type_string() }}) as postal_code,
        upper(cast(country as {{ dbt.type_string() }})) as country_code,
        cast(is_default as boolean) as is_default,
        cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id
    from source
),

latest as (
    select * from renamed
    qualify row_number() over (
        partition by address_id
        order by {{ load_order('load_id') }} desc
    ) = 1
),

final as (
    select
        address_id,
        customer_id,
        address_kind,
        street_line_1,
        street_line_2,
        city,
        postal_code,
        country_code,
        is_default,
        load_id
    from latest
)

select * from final
